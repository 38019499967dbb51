"""Processes that leave the run's process group (`setsid` daemons) are stopped with the run.

Every test waits on conditions with deadlines. A kill grace of 60 s stands for "the run did
not wait for its grace": watch() must return well before the test's deadline (DEADLINE_S).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from jobctl import executor
from jobctl.executor import Outcome, Process, Spec
from tests.unit.test_executor import running

DEADLINE_S = 30.0  # far below LONG_GRACE_S: a watch that waited for the grace misses it
LONG_GRACE_S = 60.0
ROOT = Path(__file__).resolve().parents[2]


def spec(cmd: str, **kw: Any) -> Spec:
    kw.setdefault("cwd", os.getcwd())
    kw.setdefault("env", dict(os.environ))
    kw.setdefault("kill_grace_s", LONG_GRACE_S)
    return Spec(argv=[cmd], shell=True, **kw)


def marked(**kw: object) -> tuple[dict[str, object], bytes]:
    """kw for spec(), with a marker of this run in its environment and in Spec.markers."""
    marker = f"JOBCTL_TEST_RUN={uuid.uuid4().hex}"
    env = dict(os.environ, JOBCTL_TEST_RUN=marker.split("=", 1)[1])
    return kw | {"env": env, "markers": frozenset({marker.encode()})}, marker.encode()


def wait_until(cond: Callable[[], object], timeout: float = DEADLINE_S) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.01)  # (polling a condition, up to its deadline)
    return bool(cond())


def ppid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2 :].split()[1])


def read_pid(path: Path) -> int:
    assert wait_until(lambda: path.exists() and path.read_text().endswith("\n")), path
    return int(path.read_text())


def watch(proc: Process) -> tuple[Outcome, bytes]:
    """watch() in a thread; fails unless it returns within DEADLINE_S."""
    chunks: list[bytes] = []
    result: list[Outcome] = []
    watcher = threading.Thread(target=lambda: result.append(proc.watch(chunks.append)))
    watcher.daemon = True
    watcher.start()
    watcher.join(DEADLINE_S)
    if watcher.is_alive():
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail(f"watch() did not return within {DEADLINE_S}s")
    return result[0], b"".join(chunks)


def pgid(pid: int | None) -> int | None:
    try:
        return None if pid is None else os.getpgid(pid)
    except ProcessLookupError:
        return None


@pytest.fixture
def cleanup() -> Iterator[list[int]]:
    """Pids to SIGKILL after the test, whatever happened."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if running(pid):
            os.kill(pid, signal.SIGKILL)


def daemon(pidfile: Path) -> str:
    """A job whose child leaves the group (new session) and keeps the output pipe open."""
    return f"setsid sh -c 'echo $$ > {pidfile}; exec sleep 60' & sleep 60"


def test_timeout_stops_a_setsid_daemon_holding_the_pipe(tmp_path: Path, cleanup: list[int]):
    pidfile = tmp_path / "daemon.pid"
    proc = executor.start(spec(daemon(pidfile), timeout_s=0.2))
    pid = read_pid(pidfile)  # (the timeout counts from watch(): the daemon exists by then)
    cleanup.append(pid)
    assert os.getsid(pid) == pid != proc.pid  # it did leave the run's session and group
    outcome, _ = watch(proc)  # its grace is 60 s: the daemon's SIGTERM ended the run
    assert (outcome.status, outcome.signal) == ("timed_out", signal.SIGTERM)
    assert wait_until(lambda: not running(pid))


def test_cancel_stops_a_setsid_daemon(tmp_path: Path, cleanup: list[int]) -> None:
    pidfile = tmp_path / "daemon.pid"
    proc = executor.start(spec(daemon(pidfile)))
    pid = read_pid(pidfile)
    cleanup.append(pid)
    proc.terminate(reason="cancelled by a test")
    outcome, _ = watch(proc)
    assert (outcome.status, outcome.error) == ("cancelled", "cancelled by a test")
    assert wait_until(lambda: not running(pid))


def test_a_daemon_ignoring_sigterm_is_killed_after_the_grace(tmp_path: Path, cleanup: list[int]):
    pidfile = tmp_path / "daemon.pid"
    cmd = f"setsid sh -c 'trap \"\" TERM; echo $$ > {pidfile}; exec sleep 60' & sleep 60"
    proc = executor.start(spec(cmd, timeout_s=0.1, kill_grace_s=0.5))
    pid = read_pid(pidfile)  # written after the trap
    cleanup.append(pid)
    outcome, _ = watch(proc)
    assert (outcome.status, outcome.signal) == ("timed_out", signal.SIGTERM)
    assert wait_until(lambda: not running(pid))  # the SIGKILL came, with the group's


def test_a_double_forked_daemon_is_found_by_its_markers(tmp_path: Path, cleanup: list[int]):
    pidfile = tmp_path / "daemon.pid"
    kw, _ = marked(timeout_s=0.2)
    # the subshell forks the daemon and exits: the daemon is nobody's descendant any more
    cmd = f"(setsid sh -c 'echo $$ > {pidfile}; exec sleep 60' &); sleep 60"
    proc = executor.start(spec(cmd, **kw))
    pid = read_pid(pidfile)
    cleanup.append(pid)
    assert wait_until(lambda: pgid(ppid(pid)) not in (None, proc.pid))  # its parent left
    other = subprocess.Popen(  # the same marker name with another value: not this run's
        ["sleep", "60"], env=dict(os.environ, JOBCTL_TEST_RUN="another run")
    )
    try:
        outcome, _ = watch(proc)
        assert outcome.status == "timed_out"
        assert wait_until(lambda: not running(pid))
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


def test_a_daemon_that_cleared_its_environment_is_found_in_the_tree(
    tmp_path: Path, cleanup: list[int]
) -> None:
    pidfile = tmp_path / "daemon.pid"
    kw, marker = marked(timeout_s=0.2)
    cmd = f"setsid env -i /bin/sh -c 'echo $$ > {pidfile}; exec sleep 60' & sleep 60"
    proc = executor.start(spec(cmd, **kw))
    pid = read_pid(pidfile)
    cleanup.append(pid)
    assert marker not in Path(f"/proc/{pid}/environ").read_bytes()
    outcome, _ = watch(proc)
    assert outcome.status == "timed_out"
    assert wait_until(lambda: not running(pid))


def test_children_of_a_marked_orphan_are_found_even_without_the_marker(
    tmp_path: Path, cleanup: list[int]
) -> None:
    pidfile = tmp_path / "child.pid"
    kw, _ = marked()
    inner = f"env -i sleep 60 & echo $! > {pidfile}; wait"
    proc = executor.start(spec(f"(setsid sh -c '{inner}' &); sleep 60", **kw))
    pid = read_pid(pidfile)
    cleanup.append(pid)
    proc.terminate()
    outcome, _ = watch(proc)
    assert outcome.status == "cancelled"
    assert wait_until(lambda: not running(pid))


def test_a_normal_end_is_not_held_by_a_daemon_and_leaves_it_alone(
    tmp_path: Path, cleanup: list[int]
) -> None:
    """The run ends when its command does (plus at most DRAIN_S of output), even though a
    daemon holds the pipe; what a run that ended by itself leaves behind is not stopped
    (as with cron: a job may start a service)."""
    pidfile = tmp_path / "daemon.pid"
    kw, _ = marked()
    cmd = f"setsid sh -c 'echo $$ > {pidfile}; exec sleep 60' & echo done"
    proc = executor.start(spec(cmd, **kw))
    pid = read_pid(pidfile)
    cleanup.append(pid)
    outcome, out = watch(proc)
    assert (outcome.status, out) == ("succeeded", b"done\n")
    assert running(pid)


def test_never_signals_the_caller_or_its_group(tmp_path: Path) -> None:
    """The caller (a runner started from a job would carry that job's markers) and its
    process group share the run's marker: both are spared. In a child process, so that a
    failure kills the child, not pytest."""
    script = r"""
import os, signal, subprocess, sys
from jobctl import executor
marker = b"JOBCTL_TEST_RUN=" + os.environb[b"JOBCTL_TEST_RUN"]
sibling = subprocess.Popen(["sleep", "60"])  # in our group, with our environment
s = executor.Spec(argv=["sleep 60 & sleep 60"], shell=True, cwd=os.getcwd(),
                  env=dict(os.environ), kill_grace_s=60, markers=frozenset({marker}))
proc = executor.start(s)
proc.terminate()
outcome = proc.watch(lambda _: None)
print(outcome.status, sibling.poll(), flush=True)
sibling.kill()
sibling.wait()
"""
    env = dict(os.environ, JOBCTL_TEST_RUN=uuid.uuid4().hex, PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,
        start_new_session=True,  # its own group, as a runner's would be
    )
    assert (done.returncode, done.stdout) == (0, "cancelled None\n"), done.stderr


def test_the_subreaper_adopts_and_reaps_orphans_without_taking_a_jobs_status() -> None:
    """In a child process: become_subreaper() there, not in pytest."""
    script = r"""
import os, signal, subprocess, threading, time
from jobctl import executor

def until(cond):
    end = time.monotonic() + 30
    while not cond() and time.monotonic() < end:
        time.sleep(0.01)
    assert cond()

def ppid(pid):
    try:
        stat = open(f"/proc/{pid}/stat").read()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()

def orphan():  # a process whose parent died: re-parented to us (not to init), then killed
    parent = subprocess.Popen(["sh", "-c", "sleep 60 & echo $!"], stdout=subprocess.PIPE)
    pid = int(parent.stdout.readline())
    parent.wait()
    until(lambda: int(ppid(pid)[1]) == os.getpid())
    os.kill(pid, signal.SIGKILL)
    until(lambda: ppid(pid)[0] == "Z")  # a zombie until we reap it
    return pid

assert executor.reap_orphans() == []  # off until become_subreaper()
assert executor.become_subreaper()
job = executor.start(executor.Spec(argv=["exit 7"], shell=True, cwd="/", env={}))
until(lambda: os.waitid(os.P_PID, job.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT))
first = orphan()
reaped = executor.reap_orphans()
assert reaped == [first], reaped  # found behind the job's pending exit, which it left
assert ppid(first) is None
assert job.watch(lambda _: None).exit_code == 7  # the job's status was still there
second = orphan()
assert executor.reap_orphans() == [second]  # (nothing pending before it this time)
print("ok", flush=True)
"""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert (done.returncode, done.stdout) == (0, "ok\n"), done.stderr


def test_become_subreaper_is_false_where_unsupported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    assert executor.become_subreaper() is False
    assert executor.reap_orphans() == []


def test_an_empty_marker_set_marks_nothing() -> None:
    assert executor.marked_groups({1: set()}) == {}
