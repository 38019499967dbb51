"""Notifications: telling someone when a job fails, dies, recovers, misses fires (issue 11).

A job's `--notify EVENT=TARGET` entries (and the config file's defaults for events a job does
not set) name where each event goes: a shell command (the run's JOBCTL_* variables plus
JOBCTL_EVENT, JOBCTL_STATUS, JOBCTL_EXIT_CODE; the JSON body on stdin), an http(s) URL (POST of
the JSON body) or `mailto:ADDR` (through the local sendmail). `--ping URL` is healthchecks.io's
protocol: GET URL/start at start, URL on success, URL/fail on failure.

The runner hands events to a `Notifier`, which delivers them on its own threads: delivery
never blocks or slows the runner, times out (10 s), retries a failed webhook 3 times with
backoff, and records each outcome per run (`Store.add_notification`); a failing notification
never changes the run's status. This module knows nothing of the CLI or the loop.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from jobctl.errors import StoreError, UsageError
from jobctl.models import FAILED_STATUSES, Job, Run
from jobctl.store.base import Delivery

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

EVENTS = ("failure", "dead", "success", "recovered", "missed", "start")
TIMEOUT_S = 10.0
WEBHOOK_RETRIES = 3  # after the first try; backoff BACKOFF_S doubling
BACKOFF_S = 1.0
TAIL_BYTES = 4096  # the tail of the run's output sent in the body


def parse_notify(text: str) -> tuple[str, str]:
    """`EVENT=TARGET` from --notify (or a config default), checked; UsageError naming it."""
    event, sep, target = text.partition("=")
    event, target = event.strip(), target.strip()
    if not sep or not target:
        raise UsageError(f"--notify {text!r}: write EVENT=TARGET, e.g. failure=https://...")
    if event not in EVENTS:
        raise UsageError(f"--notify {text!r}: unknown event {event!r}: choose one of "
                         f"{', '.join(EVENTS)}")  # fmt: skip
    check_target(target, f"--notify {text!r}")
    return event, target


def check_target(target: str, what: str) -> None:
    kind = target_kind(target)
    if kind == "mailto":
        if not target[len("mailto:") :].strip() or "@" not in target:
            raise UsageError(f"{what}: no address after mailto:")
        if sendmail() is None:
            raise UsageError(f"{what}: mail needs a local sendmail (none found on PATH or in "
                             "/usr/sbin, /usr/lib); use a command or a URL")  # fmt: skip
    elif kind == "url" and not target.split("://", 1)[1].strip("/"):
        raise UsageError(f"{what}: no host in {target!r}")


def check_ping(url: str) -> str:
    if target_kind(url) != "url":
        raise UsageError(f"--ping {url!r}: must be an http:// or https:// URL")
    return url.rstrip("/")


def target_kind(target: str) -> str:
    low = target.lower()
    if low.startswith(("http://", "https://")):
        return "url"
    if low.startswith("mailto:"):
        return "mailto"
    return "command"


def sendmail() -> str | None:
    found = shutil.which("sendmail")
    if found:
        return found
    for path in ("/usr/sbin/sendmail", "/usr/lib/sendmail"):
        if os.access(path, os.X_OK):
            return path
    return None


def targets_for(job: Job, event: str, defaults: Sequence[tuple[str, str]]) -> list[str]:
    """Where `event` of `job` goes: the job's own entries for it, else the defaults' (like
    MAILTO covering a whole crontab, a job's own setting for an event wins)."""
    own = [t for e, t in job.notify if e == event]
    return own or [t for e, t in defaults if e == event]


def body(event: str, job: Job, run: Run, tail: bytes, host: str) -> dict[str, Any]:
    from jobctl import render

    return {
        "event": event,
        "job": job.name,
        "run": render.run_json(run),
        "output_tail": tail.decode("utf-8", "replace"),
        "host": host,
    }


def post(url: str, data: bytes, timeout_s: float) -> None:
    import urllib.request

    req = urllib.request.Request(url, data=data, method="POST",
                                 headers={"Content-Type": "application/json",
                                          "User-Agent": "jobctl"})  # fmt: skip
    with urllib.request.urlopen(req, timeout=timeout_s) as resp:
        resp.read(1024)


def get(url: str, timeout_s: float) -> None:
    import urllib.request

    req = urllib.request.Request(url, headers={"User-Agent": "jobctl"})
    with urllib.request.urlopen(req, timeout=timeout_s) as resp:
        resp.read(1024)


def run_command(target: str, payload: bytes, env: dict[str, str], timeout_s: float) -> None:
    p = subprocess.run(["/bin/sh", "-c", target], input=payload, env=env, timeout=timeout_s,
                       capture_output=True, check=False, start_new_session=True)  # fmt: skip
    if p.returncode != 0:
        err = p.stderr.decode("utf-8", "replace").strip().splitlines()
        raise RuntimeError(f"exit {p.returncode}" + (f": {err[-1]}" if err else ""))


def send_mail(address: str, subject: str, text: str, timeout_s: float) -> None:
    program = sendmail()
    if program is None:
        raise RuntimeError("no sendmail")
    message = f"To: {address}\nSubject: {subject}\n\n{text}\n".encode()
    p = subprocess.run([program, "-t"], input=message, timeout=timeout_s, capture_output=True,
                       check=False)  # fmt: skip
    if p.returncode != 0:
        raise RuntimeError(f"sendmail exit {p.returncode}")


class Notifier:
    """Delivers events on a few threads of its own and records each outcome."""

    def __init__(
        self,
        record: Callable[[int, Delivery], None],
        defaults: Sequence[tuple[str, str]] = (),
        host: str = "",
        output: Callable[[int], bytes] | None = None,
        emit: Callable[[str, str], None] | None = None,
        timeout_s: float = TIMEOUT_S,
        backoff_s: float = BACKOFF_S,
        last_outcome: Callable[[Run], str | None] | None = None,
    ) -> None:
        """`record(run_id, delivery)`: store the outcome (errors are swallowed); `output(id)`:
        the tail of a run's output; `last_outcome(run)`: the final status of the job's
        previous run, for `recovered`."""
        self.record = record
        self.defaults = list(defaults)
        self.host = host
        self.output = output
        self.emit = emit
        self.timeout_s = timeout_s
        self.backoff_s = backoff_s
        self.last_outcome = last_outcome
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._pending = 0
        self._idle = threading.Condition(self._lock)

    def wants(self, job: Job) -> bool:
        return bool(job.notify or job.ping or self.defaults)

    # ---- what the runner calls (never blocks) --------------------------------------------
    def started(self, job: Job, run: Run) -> None:
        if self.wants(job):
            self._submit(self._started, job, run)

    def ended(self, job: Job, run: Run, retry: Run | None) -> None:
        if self.wants(job):
            self._submit(self._ended, job, run, retry)

    def missed(self, job: Job, run: Run) -> None:
        if targets_for(job, "missed", self.defaults):
            self._submit(self._send_all, job, run, ["missed"])

    def wait(self, timeout_s: float) -> bool:
        """Wait until every event handed over so far is delivered (shutdown, tests)."""
        deadline = time.monotonic() + timeout_s
        with self._idle:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=False)

    # ---- on the notifier's threads -------------------------------------------------------
    def _submit(self, fn: Callable[..., None], *args: Any) -> None:
        with self._lock:
            if self._pool is None:
                from concurrent.futures import ThreadPoolExecutor

                self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="notify")
            self._pending += 1
        self._pool.submit(self._guarded, fn, *args)

    def _guarded(self, fn: Callable[..., None], *args: Any) -> None:
        try:
            fn(*args)
        except Exception as exc:  # a bug here must never reach the runner
            if self.emit is not None:
                self.emit("error", f"notification failed: {type(exc).__name__}: {exc}")
        finally:
            with self._idle:
                self._pending -= 1
                self._idle.notify_all()

    def _started(self, job: Job, run: Run) -> None:
        if job.ping:
            self._ping(job, run, "start", f"{job.ping}/start")
        self._send_all(job, run, ["start"])

    def _ended(self, job: Job, run: Run, retry: Run | None) -> None:
        events: list[str] = []
        if run.status == "succeeded":
            events.append("success")
            previous = self.last_outcome(run) if self.last_outcome else None
            if previous in FAILED_STATUSES:
                events.append("recovered")
        elif run.status in FAILED_STATUSES:
            events.append("failure")
            if run.dead:
                events.append("dead")
        if job.ping and run.status in ("succeeded", *FAILED_STATUSES):
            url = job.ping if run.status == "succeeded" else f"{job.ping}/fail"
            self._ping(job, run, "success" if run.status == "succeeded" else "failure", url)
        self._send_all(job, run, events)

    def _ping(self, job: Job, run: Run, event: str, url: str) -> None:
        self._deliver(run, event, f"ping {url}", lambda: get(url, self.timeout_s), tries=1)

    def _send_all(self, job: Job, run: Run, events: list[str]) -> None:
        for event in events:
            for target in targets_for(job, event, self.defaults):
                self._send(event, target, job, run)

    def _send(self, event: str, target: str, job: Job, run: Run) -> None:
        tail = b""
        if self.output is not None and event != "start" and run.id is not None:
            with contextlib.suppress(StoreError):
                tail = self.output(run.id)[-TAIL_BYTES:]
        payload = json.dumps(body(event, job, run, tail, self.host)).encode()
        kind = target_kind(target)
        if kind == "url":
            self._deliver(run, event, target, lambda: post(target, payload, self.timeout_s),
                          tries=1 + WEBHOOK_RETRIES)  # fmt: skip
        elif kind == "mailto":
            subject = f"jobctl: {job.name} {event} (run {run.id}, {run.status})"
            text = json.dumps(json.loads(payload), indent=2)
            address = target[len("mailto:") :].strip()
            self._deliver(run, event, target,
                          lambda: send_mail(address, subject, text, self.timeout_s))  # fmt: skip
        else:
            env = command_env(job, run, event)
            self._deliver(run, event, target,
                          lambda: run_command(target, payload, env, self.timeout_s))  # fmt: skip

    def _deliver(self, run: Run, event: str, target: str, send: Callable[[], None],
                 tries: int = 1) -> None:  # fmt: skip
        error: str | None = None
        attempt = 0
        for attempt in range(1, tries + 1):
            try:
                send()
                error = None
                break
            except Exception as exc:  # OSError, HTTPError, timeouts, a failing command
                error = " ".join(str(exc).split()) or type(exc).__name__
                if attempt < tries:
                    time.sleep(self.backoff_s * 2 ** (attempt - 1))
        outcome = Delivery(event, target, "failed" if error else "sent", attempt, error,
                           time.time())  # fmt: skip
        if error and self.emit is not None:
            self.emit("error", f"{run.job}: run {run.id}: {event} notification to {target} "
                      f"failed after {attempt} tries: {error}")  # fmt: skip
        if run.id is not None:
            with contextlib.suppress(StoreError):
                self.record(run.id, outcome)


def command_env(job: Job, run: Run, event: str) -> dict[str, str]:
    """A hook command's environment: the job's (as its runs get it), the run's JOBCTL_*
    variables, and the event's."""
    from jobctl.runner.execution import job_env

    env = {os.fsdecode(k): os.fsdecode(v) for k, v in job_env(job, run).items()}
    env.update(JOBCTL_EVENT=event, JOBCTL_STATUS=run.status,
               JOBCTL_EXIT_CODE="" if run.exit_code is None else str(run.exit_code))  # fmt: skip
    return env
