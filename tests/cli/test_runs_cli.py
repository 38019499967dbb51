"""CLI: run verbs in-process (foreground runs, history, logs, dead, prune, retention)."""

from __future__ import annotations

import pytest

# every test on SQLite and on PostgreSQL (tests/cli/conftest.py: any_store)
pytestmark = pytest.mark.usefixtures("any_store")

SPEC_VERBS = {
    "add", "list", "show", "edit", "rm", "pause", "resume", "next", "run", "retry", "cancel",
    "history", "logs", "dead", "status", "prune", "runner", "completion",
}  # fmt: skip


def test_help_lists_every_spec_verb(cli) -> None:
    r = cli("--help")
    assert r.code == 0
    listed = {
        line.split()[0] for line in r.out.splitlines() if line.startswith("  ") and line.split()
    }
    assert listed >= SPEC_VERBS, SPEC_VERBS - listed


@pytest.mark.usefixtures("any_store")
def test_foreground_run_records_and_shows_stats(cli) -> None:
    cli("add", "ok", "--", "sh", "-c", "echo out; sleep 0.1; echo err >&2")
    r = cli("run", "ok")
    # the job's two streams stay apart on the terminal (its stderr among jobctl's notes)...
    assert r.code == 0 and r.out == "out\n"
    assert "\nerr\n" in r.err
    # ...and the captured output has both, in the order they came
    runs = cli("history", "ok", "--json").json()
    assert [(x["trigger"], x["status"], x["exit_code"]) for x in runs] == [
        ("manual", "succeeded", 0)
    ]
    assert runs[0]["started_at"] <= runs[0]["finished_at"] and runs[0]["duration_s"] >= 0
    data = cli("show", "ok", "--json").json()
    assert data["last_run"]["id"] == runs[0]["id"]
    assert data["stats"]["runs"] == 1 and data["stats"]["success_rate"] == 1.0
    assert [x["id"] for x in data["recent_runs"]] == [runs[0]["id"]]
    assert cli("logs", str(runs[0]["id"])).out == "out\nerr\n"
    text = cli("show", "ok").out
    assert "100% of 1" in text and "p50" in text


@pytest.mark.usefixtures("any_store")
def test_failed_run_goes_dead_and_can_be_dismissed(cli) -> None:
    cli("add", "bad", "--", "sh", "-c", "exit 5")
    assert cli("run", "bad").code == 5
    assert cli("run", "bad").code == 5
    dead = cli("dead", "--json").json()
    assert len(dead) == 2 and all(d["dead"] for d in dead)
    assert cli("dead", "--dismiss", str(dead[0]["id"])).code == 0
    assert [d["id"] for d in cli("dead", "--json").json()] == [dead[1]["id"]]
    assert cli("dead", "--dismiss", str(dead[0]["id"])).code == 4  # no longer dead
    assert cli("dead", "--all").code == 0
    assert cli("dead", "--json").json() == []


@pytest.mark.usefixtures("any_store")
def test_keep_runs_retention_and_prune(cli) -> None:
    cli("add", "k", "--keep-runs", "3", "--", "true")
    for _ in range(5):
        assert cli("run", "k").code == 0
    ids = [x["id"] for x in cli("history", "k", "--json").json()]
    assert len(ids) == 3 and ids == sorted(ids, reverse=True)
    r = cli("prune", "--older-than", "0s", "--json")
    assert r.code == 0 and r.json() == {"deleted_runs": 3}
    assert cli("history", "k", "--json").json() == []


@pytest.mark.usefixtures("any_store")
def test_history_filters(cli) -> None:
    cli("add", "a", "--", "true")
    cli("add", "b", "--", "false")
    cli("run", "a")
    cli("run", "b")
    assert [x["job"] for x in cli("history", "--json").json()] == ["b", "a"]
    assert [x["job"] for x in cli("history", "--status", "failed", "--json").json()] == ["b"]
    assert len(cli("history", "--limit", "1", "--json").json()) == 1
    assert len(cli("history", "--since", "1h", "--json").json()) == 2
    plain = cli("history")
    assert plain.code == 0 and plain.out.splitlines()[0].split()[:3] == ["ID", "JOB", "TRY"]


@pytest.mark.parametrize(
    ("argv", "code", "needle"),
    [
        (["history", "--status", "weird"], 2, "weird"),
        (["history", "--limit", "x"], 2, "'x'"),
        (["history", "--since", "forever"], 2, "forever"),
        (["history", "ghost"], 4, "ghost"),
        (["logs", "ghost"], 4, "ghost"),
        (["logs", "12345"], 4, "12345"),
        (["retry", "abc"], 2, "abc"),
        (["retry", "999"], 4, "999"),
        (["cancel", "999"], 4, "999"),
        (["dead", "--dismiss", "999"], 4, "999"),
        (["run", "ghost"], 4, "ghost"),
        (["prune", "--older-than", "soon"], 2, "soon"),
        (["runner", "--workers", "0"], 2, "'0'"),
        (["runner", "--grace", "whenever"], 2, "whenever"),
    ],
)
def test_run_verbs_bad_input(cli, argv: list[str], code: int, needle: str) -> None:
    r = cli(*argv)
    assert r.code == code, (r.code, r.err)
    assert needle in r.err and len(r.err.strip().splitlines()) == 1


def test_overlap_skip_refuses_manual_run_while_running(cli, home) -> None:
    from jobctl.config import resolve_settings
    from jobctl.models import Run
    from jobctl.store import open_store

    cli("add", "s", "--", "true")
    store = open_store(resolve_settings())
    store.add_run(Run(job="s", scheduled_for=1.0, status="running", owner="elsewhere:1:1"))
    r = cli("run", "s")
    assert r.code == 3 and "overlap is skip" in r.err
    r = cli("rm", "s")
    assert r.code == 3 and "running" in r.err
    assert cli("run", "s", "--detach", "--force").code == 0


@pytest.mark.usefixtures("any_store")
def test_status_without_runner(cli) -> None:
    st = cli("status", "--json").json()
    assert st["runner"]["active"] is False and st["running"] == [] and st["queued"] == 0
    assert "not running" in cli("status").out


@pytest.mark.usefixtures("any_store")
def test_run_detach_queues_for_runner(cli) -> None:
    cli("add", "d", "--", "true")
    r = cli("run", "d", "--detach")
    assert r.code == 0 and r.out.strip().isdigit()
    assert "no runner is active" in r.err
    run = cli("history", "d", "--json").json()[0]
    assert (run["status"], run["trigger"], run["id"]) == ("queued", "manual", int(r.out))


def test_sparkline_only_on_a_utf8_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    from jobctl import render

    monkeypatch.setattr(render, "fancy", lambda: True)
    monkeypatch.setattr("sys.stdout", type("T", (), {"encoding": "utf-8"})())
    assert render.sparkline([1.0, 2.0, 3.0, 8.0]) == "▁▂▃█"
    assert render.sparkline([5.0]) is None
    monkeypatch.setattr(render, "fancy", lambda: False)
    assert render.sparkline([1.0, 2.0]) is None


def test_edit_paused_and_active(cli) -> None:
    cli("add", "p", "--every", "1m", "--", "true")
    assert cli("edit", "p", "--paused").code == 0
    j = cli("show", "p", "--json").json()
    assert (j["state"], j["next_run_at"]) == ("paused", None)
    assert cli("edit", "p", "--active").code == 0
    assert cli("show", "p", "--json").json()["state"] == "active"


@pytest.mark.usefixtures("any_store")
def test_dead_dismiss_all_spellings(cli) -> None:
    cli("add", "bad", "--", "false")
    cli("run", "bad")
    cli("run", "bad")
    assert len(cli("dead", "--json").json()) == 2
    r = cli("dead", "--dismiss", "--all")
    assert r.code == 0 and "dismissed 2" in r.err
    assert cli("dead", "--json").json() == []


@pytest.mark.usefixtures("any_store")
def test_rm_cancels_queued_runs_so_a_new_job_of_that_name_never_runs_them(cli) -> None:
    cli("add", "deploy", "--", "echo", "OLD")
    cli("run", "deploy", "--detach")
    assert cli("rm", "deploy").code == 0
    cli("add", "deploy", "--", "echo", "NEW")
    assert cli("history", "deploy", "--json").json() == []  # the new job's own history
    runs = cli("history", "deploy", "--all", "--json").json()
    assert [(r["status"], r["error"]) for r in runs] == [("cancelled", "job removed")]


def test_skipped_runs_respect_keep_runs(cli, home) -> None:
    import random

    from jobctl.config import resolve_settings
    from jobctl.models import Run
    from jobctl.planner import plan_fire
    from jobctl.store import open_store

    cli("add", "k", "--every", "1s", "--keep-runs", "3", "--", "true")
    store = open_store(resolve_settings())
    now = store.get_job("k").created_at  # a run of this job: created after it
    store.add_run(Run(job="k", scheduled_for=1.0, status="running", owner="x:1:1", created_at=now))
    for _ in range(6):  # each fire while it still runs records a skipped run
        job = store.get_job("k")
        assert job.next_run_at is not None
        t = job.next_run_at
        plan = plan_fire(
            job, t, [Run(job="k", scheduled_for=1.0, status="running")], random.Random(1)
        )
        store.fire(job, plan.runs, plan.next_run_at)
    runs = cli("history", "k", "--json").json()
    assert [r["status"] for r in runs].count("skipped") <= 3
    assert "running" in [r["status"] for r in runs]


def test_job_json_times_are_in_the_jobs_zone(cli) -> None:
    cli("add", "tokyo", "--cron", "0 9 * * *", "--tz", "Asia/Tokyo", "--", "true")
    j = cli("show", "tokyo", "--json").json()
    assert j["next_run_at"].endswith("T09:00:00+09:00")
    assert j["upcoming"][0] == j["next_run_at"]


def test_logs_name_shows_the_run_that_ran_not_a_newer_skipped_one(cli, home) -> None:
    from jobctl.config import resolve_settings
    from jobctl.models import Run
    from jobctl.store import open_store

    cli("add", "talk", "--", "true")
    store = open_store(resolve_settings())
    t = store.get_job("talk").created_at  # runs of this job: created after it
    ran = store.add_run(Run(job="talk", created_at=t, scheduled_for=1.0, status="succeeded"))
    store.append_output(ran.id, b"old output\n")
    live = store.add_run(
        Run(job="talk", created_at=t, scheduled_for=2.0, status="running", owner="x:1:1")
    )
    store.append_output(live.id, b"live output\n")
    store.add_run(Run(job="talk", created_at=t, scheduled_for=3.0, status="skipped"))
    assert cli("logs", "talk").out == "live output\n"
    store.update_run(live.id, status="succeeded")
    store.add_run(Run(job="talk", created_at=t, scheduled_for=4.0, status="skipped"))
    assert cli("logs", "talk").out == "live output\n"
    assert cli("logs", str(ran.id)).out == "old output\n"


def test_rich_tables_on_a_terminal(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    from jobctl import render

    monkeypatch.setattr(render, "fancy", lambda: True)
    cli("add", "ok", "--every", "1h", "--", "true")
    cli("add", "bad", "--", "false")
    cli("run", "ok")
    cli("run", "bad")
    listing = cli("list")
    assert listing.code == 0 and "ok" in listing.out and "every 1h" in listing.out
    assert "succeeded" in cli("show", "ok").out
    hist = cli("history")
    assert hist.code == 0 and "failed" in hist.out and "succeeded" in hist.out
    assert cli("status").code == 0
    assert "bad" in cli("dead").out


def test_debug_only_as_a_global_flag_and_exit_codes_kept(cli) -> None:
    assert cli("add", "big", "--", "mytool", "--debug").code == 0
    r = cli("add", "big", "--", "mytool", "--debug")  # --debug belongs to the job here
    assert r.code == 3 and r.err.strip().splitlines() == ["jobctl: job 'big' already exists"]
    r = cli("--debug", "show", "nosuch")
    assert r.code == 4 and "Traceback" in r.err and r.err.rstrip().endswith("no job named 'nosuch'")


def test_empty_value_clears_repeatable_options(cli) -> None:
    cli("add", "t", "--tag", "a", "--mutex", "m", "--env", "K=V", "--", "true")
    assert cli("edit", "t", "--tag", "", "--mutex", "", "--env", "").code == 0
    j = cli("show", "t", "--json").json()
    assert (j["tags"], j["mutexes"], j["env"]) == ([], [], {})


@pytest.mark.usefixtures("any_store")
def test_foreground_run_json_keeps_stdout_for_json(cli) -> None:
    cli("add", "j", "--", "sh", "-c", "echo job-output; exit 4")
    r = cli("run", "j", "--json")
    assert r.code == 4
    data = r.json()
    assert (data["status"], data["exit_code"], data["trigger"]) == ("failed", 4, "manual")
    assert "job-output" in r.err and "job-output" not in r.out
    assert cli("dead", "--dismiss", str(data["id"]), "--json").json() == {"dismissed": [data["id"]]}
    assert cli("dead", "--dismiss", "1", "--all").code == 2


@pytest.mark.usefixtures("any_store")
def test_messages_for_empty_filtered_results(cli) -> None:
    cli("add", "a", "--", "true")
    assert "no jobs tagged 'nope'" in cli("list", "--tag", "nope").err
    assert "no runs match" in cli("history", "--status", "running").err


def test_catchup_window_zero_and_none(cli) -> None:
    cli("add", "c", "--every", "1h", "--catchup-window", "0", "--", "true")
    assert cli("show", "c", "--json").json()["catchup_window_s"] == 0.0
    cli("edit", "c", "--catchup-window", "none")
    assert cli("show", "c", "--json").json()["catchup_window_s"] is None


def test_schedule_text_is_normalised(cli) -> None:
    cli("add", "e", "--every", "90", "--", "true")
    cli("add", "a", "--at", "+1h", "--", "true")
    jobs = {j["name"]: j for j in cli("list", "--json").json()}
    assert jobs["e"]["schedule"] == "1m30s"
    assert jobs["a"]["schedule"] == jobs["a"]["next_run_at"]  # the time itself, not '+1h'
    assert jobs["a"]["next_run_at"].endswith("+00:00") and "." not in jobs["a"]["next_run_at"]


def test_next_json_precision_is_uniform(cli) -> None:
    r = cli(
        "next", "--every", "500ms", "--tz", "UTC", "--from", "2026-01-01T00:00", "-n", "2", "--json"
    )
    assert r.json() == ["2026-01-01T00:00:00.500+00:00", "2026-01-01T00:00:01+00:00"]


@pytest.mark.parametrize(
    ("tz", "expected"),
    [("Asia/Tokyo", "Asia/Tokyo"), ("/usr/share/zoneinfo/Asia/Tokyo", "Asia/Tokyo"),
     (":Europe/Paris", "Europe/Paris")],
)  # fmt: skip
def test_local_zone_from_tz_forms(monkeypatch: pytest.MonkeyPatch, tz: str, expected: str) -> None:
    from jobctl.clock import local_zone_name

    monkeypatch.setenv("TZ", tz)
    assert local_zone_name() == expected


def test_posix_tz_rule_falls_back_to_the_system_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    from zoneinfo import ZoneInfo

    from jobctl.clock import local_zone_name

    monkeypatch.setenv("TZ", "CET-1CEST,M3.5.0,M10.5.0/3")
    ZoneInfo(local_zone_name())  # a usable IANA name, whatever the system's is


def test_missing_store_folder_is_one_line(cli, tmp_path) -> None:
    r = cli("--store", str(tmp_path / "nodir" / "x.db"), "list")
    assert r.code == 1 and r.err.startswith("jobctl: cannot open store") and "internal" not in r.err


@pytest.mark.usefixtures("any_store")
def test_logs_follow_does_not_wait_for_a_retry_in_backoff(cli) -> None:
    cli("add", "f", "--retries", "2", "--retry-delay", "1h", "--shell", "--", "echo boom; exit 1")
    assert cli("run", "f").code == 1
    assert [r["status"] for r in cli("history", "f", "--json").json()] == ["queued", "failed"]
    ran = cli("history", "f", "--json").json()[1]["id"]
    r = cli("logs", str(ran), "--follow")  # returns at once: the run has ended
    assert r.code == 0 and r.out == "boom\n"


def test_short_help_flag_lists_every_verb(cli) -> None:
    r = cli("-h", "list")
    assert r.code == 0
    listed = {line.split()[0] for line in r.out.splitlines() if line.startswith("  ")}
    assert listed >= SPEC_VERBS


def test_posix_tz_rule_still_shows_local_times(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    import time as _time

    from jobctl import render

    cli("add", "z", "--", "true")
    cli("run", "z")
    monkeypatch.setenv("TZ", "JST-9")
    _time.tzset()
    render.local_zone.cache_clear()
    try:
        started = cli("history", "--json").json()[0]["started_at"]
        assert started.endswith("+09:00"), started
    finally:
        monkeypatch.setenv("TZ", "UTC")
        _time.tzset()
        render.local_zone.cache_clear()


def test_a_zombie_owner_is_not_alive() -> None:
    import subprocess

    from jobctl import owners, procfs
    from tests.waiting import wait_for

    child = subprocess.Popen(["true"])
    start = owners.proc_start_time(child.pid)
    owner = f"{owners.host()}:{child.pid}:{start}"
    wait_for(
        lambda: getattr(procfs.stat(child.pid), "state", b"Z") == b"Z", interval=0.01
    )  # exited
    assert procfs.stat(child.pid)  # not yet reaped: still in /proc, as a zombie
    assert not owners.alive(owner)
    child.wait()
    assert owners.alive(owners.me())


def test_logs_follow_by_name_waits_for_each_next_run(home) -> None:
    """`logs NAME --follow` on a job that has not run waits for it (was: exit 4), and after a
    run ends it waits for the next one, like journalctl -f; Ctrl-C ends it with exit 0."""
    import os
    import signal
    import subprocess
    import sys
    import threading

    from tests.waiting import wait_for

    def jobctl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "jobctl", *args], capture_output=True,
                              text=True, timeout=60, env=os.environ)  # fmt: skip

    assert jobctl("add", "w", "--shell", "--", "echo out $JOBCTL_RUN_ID").returncode == 0
    argv = [sys.executable, "-m", "jobctl", "logs", "w", "--follow"]
    follow = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(follow.stdout or []), daemon=True)
    reader.start()
    try:
        for expected in (["out 1\n"], ["out 1\n", "out 2\n"]):
            assert jobctl("run", "w").returncode == 0
            wait_for(lambda e=expected: lines == e)
        assert follow.poll() is None  # still following, between runs
    finally:
        follow.send_signal(signal.SIGINT)
        follow.wait(timeout=30)
    assert follow.returncode == 0, follow.stderr.read() if follow.stderr else ""


def test_logs_follow_ends_an_unfinished_line_before_its_notes(home) -> None:
    """A run whose output does not end with a line break: the note that follows it (stderr,
    shown on the same terminal) starts on a line of its own (QA pass: `nonl--- run 4`)."""
    import os
    import signal
    import subprocess
    import sys

    from tests.waiting import wait_for

    def jobctl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "jobctl", *args], capture_output=True,
                              text=True, timeout=60, env=os.environ)  # fmt: skip

    assert jobctl("add", "w", "--shell", "--", "printf nonl").returncode == 0
    assert jobctl("run", "w").returncode == 0
    argv = [sys.executable, "-m", "jobctl", "logs", "w", "--follow"]
    log = home.parent / "follow.txt"
    with open(log, "wb") as sink:  # stdout and stderr together, as a terminal shows them
        follow = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: b"waiting" in log.read_bytes())
            assert jobctl("run", "w").returncode == 0
            wait_for(lambda: log.read_bytes().count(b"nonl") == 2)
        finally:
            follow.send_signal(signal.SIGINT)
            follow.wait(timeout=30)
    text = log.read_text()
    assert text.startswith("nonl\nwaiting for the next run of 'w'"), text
    assert "\n--- run 2 (attempt 1, manual)\nnonl" in text, text
