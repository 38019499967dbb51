"""Notifications (notify.py): webhooks to a local HTTP server, hook commands, sendmail, pings.

Deliveries run on the Notifier's own threads; the tests wait on `Notifier.wait` (a deadline),
never on fixed sleeps, and use short timeouts and backoffs passed in.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from jobctl import notify
from jobctl.errors import UsageError
from jobctl.models import Job, Run
from jobctl.store.base import Delivery


class Server:
    """A local HTTP server that records what it receives; `fail` answers 500, `slow` waits."""

    def __init__(self) -> None:
        self.got: list[tuple[str, str, bytes]] = []  # (method, path, body)
        self.fail = 0  # answer 500 to this many requests first
        self.slow_s = 0.0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, method: str) -> None:
                size = int(self.headers.get("Content-Length") or 0)
                outer.got.append((method, self.path, self.rfile.read(size)))
                if outer.slow_s and self.path.startswith("/slow"):
                    time.sleep(outer.slow_s)
                code = 500 if outer.fail > 0 else 200
                outer.fail -= 1 if outer.fail > 0 else 0
                self.send_response(code)
                self.end_headers()

            def do_POST(self) -> None:
                self._answer("POST")

            def do_GET(self) -> None:
                self._answer("GET")

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    yield s
    s.close()


def job(**kw) -> Job:
    kw.setdefault("command", ["true"])
    return Job(name="backup", **kw)


def run(status: str = "failed", **kw) -> Run:
    kw.setdefault("id", 7)
    return Run(job="backup", scheduled_for=1_800_000_000.0, status=status, exit_code=3,
               started_at=1_800_000_000.0, finished_at=1_800_000_001.5, host="h", **kw)  # fmt: skip


def notifier(recorded: list, **kw) -> notify.Notifier:
    kw.setdefault("timeout_s", 2.0)
    kw.setdefault("backoff_s", 0.01)
    return notify.Notifier(lambda run_id, d: recorded.append((run_id, d)), host="box", **kw)


def test_a_failure_posts_the_run_json_with_the_output_tail(server: Server) -> None:
    recorded: list[tuple[int, Delivery]] = []
    n = notifier(recorded, output=lambda run_id: b"x" * 10000 + b"the end\n")
    n.ended(job(notify=[["failure", server.url + "/hook"]]), run("failed"), None)
    assert n.wait(10)
    ((method, path, raw),) = server.got
    assert (method, path) == ("POST", "/hook")
    body = json.loads(raw)
    assert (body["event"], body["job"], body["host"]) == ("failure", "backup", "box")
    assert body["run"]["id"] == 7 and body["run"]["status"] == "failed"
    assert body["run"]["exit_code"] == 3 and body["run"]["run_key"]
    assert body["output_tail"].endswith("the end\n") and len(body["output_tail"]) == 4096
    ((run_id, d),) = recorded
    assert (run_id, d.event, d.status, d.attempts, d.error) == (7, "failure", "sent", 1, None)


def test_a_failing_webhook_is_retried_three_times_then_recorded_failed(server: Server) -> None:
    recorded: list[tuple[int, Delivery]] = []
    server.fail = 10
    n = notifier(recorded)
    n.ended(job(notify=[["dead", server.url]]), run("failed", dead=True), None)
    assert n.wait(10)
    assert len(server.got) == 4  # the first try and 3 retries
    ((_, d),) = recorded
    assert (d.status, d.attempts) == ("failed", 4) and "500" in (d.error or "")
    server.got.clear()
    server.fail = 2  # succeeds at the third try
    n.ended(job(notify=[["dead", server.url]]), run("failed", dead=True), None)
    assert n.wait(10)
    assert len(server.got) == 3 and (recorded[-1][1].status, recorded[-1][1].attempts) == (
        "sent",
        3,
    )


def test_a_slow_webhook_times_out_without_delaying_the_others(server: Server) -> None:
    recorded: list[tuple[int, Delivery]] = []
    server.slow_s = 3.0
    n = notifier(recorded, timeout_s=0.5)
    n.ended(job(notify=[["failure", server.url + "/slow"]]), run("failed", id=1), None)
    t0 = time.monotonic()
    n.ended(job(notify=[["failure", server.url + "/fast"]]), run("failed", id=2), None)
    from tests.waiting import wait_for

    wait_for(lambda: any(r == 2 for r, _ in recorded))
    assert time.monotonic() - t0 < 2.5  # not queued behind the slow one
    assert n.wait(20)
    slow = [d for r, d in recorded if r == 1]
    assert slow and slow[-1].status == "failed" and "timed out" in (slow[-1].error or "")


def test_events_success_recovered_dead_and_defaults(server: Server) -> None:
    recorded: list[tuple[int, Delivery]] = []
    n = notifier(recorded, defaults=[("dead", server.url + "/default"),
                                     ("success", server.url + "/default")],
                 last_outcome=lambda r: "failed")  # fmt: skip
    mine = job(notify=[["success", server.url + "/mine"], ["recovered", server.url + "/rec"]])
    n.ended(mine, run("succeeded", id=1), None)  # the job's own success target wins
    n.ended(mine, run("failed", id=2, dead=True), None)  # no own dead target: the default
    assert n.wait(10)
    paths = sorted(p for _, p, _ in server.got)
    assert paths == ["/default", "/mine", "/rec"]
    events = sorted(d.event for _, d in recorded)
    assert events == ["dead", "recovered", "success"]


def test_ping_urls_follow_healthchecks(server: Server) -> None:
    recorded: list[tuple[int, Delivery]] = []
    n = notifier(recorded)
    pinged = job(ping=server.url + "/abc")
    n.started(pinged, run("running", id=1))
    assert n.wait(10)
    n.ended(pinged, run("succeeded", id=1), None)
    assert n.wait(10)
    n.ended(pinged, run("timed_out", id=2), None)
    assert n.wait(10)
    assert [(m, p) for m, p, _ in server.got] == [
        ("GET", "/abc/start"),
        ("GET", "/abc"),
        ("GET", "/abc/fail"),
    ]


def test_a_hook_command_gets_the_run_variables_and_the_body_on_stdin(tmp_path: Path) -> None:
    recorded: list[tuple[int, Delivery]] = []
    out = tmp_path / "hook"
    hook = (f'{{ env | grep ^JOBCTL_ | sort; echo ---; cat; }} > {out}; '
            'test "$JOBCTL_EVENT" = failure')  # fmt: skip
    n = notifier(recorded)
    n.ended(job(notify=[["failure", hook]], cwd=str(tmp_path)), run("failed"), None)
    assert n.wait(10)
    env_text, _, stdin = out.read_text().partition("---\n")
    env = dict(line.split("=", 1) for line in env_text.splitlines())
    assert env["JOBCTL_EVENT"] == "failure" and env["JOBCTL_STATUS"] == "failed"
    assert env["JOBCTL_EXIT_CODE"] == "3" and env["JOBCTL_JOB"] == "backup"
    assert env["JOBCTL_RUN_ID"] == "7" and env["JOBCTL_RUN_KEY"]
    assert json.loads(stdin)["event"] == "failure"
    assert recorded[0][1].status == "sent"
    n.ended(job(notify=[["failure", "echo nope >&2; exit 4"]]), run("failed"), None)
    assert n.wait(10)
    assert (recorded[-1][1].status, recorded[-1][1].error) == ("failed", "exit 4: nope")


def test_mailto_goes_through_sendmail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = os.environ["PATH"]
    monkeypatch.setenv("PATH", str(tmp_path))  # no sendmail on it (nor, here, in /usr/sbin)
    if notify.sendmail() is None:
        with pytest.raises(UsageError, match="needs a local sendmail"):
            notify.parse_notify("dead=mailto:me@example.org")
    mail = tmp_path / "mail"
    fake = tmp_path / "sendmail"
    fake.write_text(f'#!/bin/sh\necho "$@" > {mail}.args\ncat > {mail}\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{path}")
    assert notify.parse_notify("dead=mailto:me@example.org") == ("dead", "mailto:me@example.org")
    recorded: list[tuple[int, Delivery]] = []
    n = notifier(recorded)
    n.ended(job(notify=[["dead", "mailto:me@example.org"]]), run("failed", dead=True), None)
    assert n.wait(10)
    text = mail.read_text()
    assert "To: me@example.org" in text and "Subject: jobctl: backup dead" in text
    assert (tmp_path / "mail.args").read_text().strip() == "-t"
    assert recorded[0][1].status == "sent"


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("failure", "EVENT=TARGET"),
        ("oops=x", "unknown event 'oops'"),
        ("failure=", "EVENT=TARGET"),
        ("dead=https://", "no host"),
    ],
)
def test_bad_notify_entries_are_refused(text: str, why: str) -> None:
    with pytest.raises(UsageError, match=why):
        notify.parse_notify(text)
