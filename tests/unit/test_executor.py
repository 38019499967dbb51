"""The executor against real processes: output capture, exit mapping, timeouts, cancellation.

Tests wait on conditions with deadlines and assert no upper bound on time or CPU (a loaded
machine may be slow: those measurements are bench/'s). A job that must be in a given state
when its timeout starts (a trap set, a pid written) writes a file that the test awaits before
watch(), where the timeout starts. "It did not wait for the kill grace" is a grace of
LONG_GRACE_S and a watch() that returns within DEADLINE_S.
"""

from __future__ import annotations

import contextlib
import io
import os
import selectors
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from jobctl import executor
from jobctl.executor import Outcome, SpawnError, Spec

PID_MAX = int(Path("/proc/sys/kernel/pid_max").read_text())
DEADLINE_S = 30.0  # how long a test waits for anything
LONG_GRACE_S = 60.0  # a kill grace that a watch() returning within DEADLINE_S did not wait for


def spec(cmd: str | list[str], **kw) -> Spec:
    argv, shell = ([cmd], True) if isinstance(cmd, str) else (cmd, False)
    kw.setdefault("cwd", os.getcwd())
    kw.setdefault("env", dict(os.environ))
    return Spec(argv=argv, shell=shell, **kw)


def run(
    s: Spec, tee: io.BytesIO | None = None, ready: Path | None = None
) -> tuple[Outcome, bytes, float]:
    """Start and watch a job; return its outcome, the kept output and the seconds from just
    before its start to the end of watch() (a lower bound on what the job did in between).
    With `ready`, watch() (hence the timeout) starts once the job has written that file."""
    t0 = time.monotonic()
    proc = executor.start(s)
    if ready is not None:
        assert wait_until(lambda: ready.exists() and ready.read_text().endswith("\n")), ready
    outcome, out = watch(proc, tee)
    return outcome, out, time.monotonic() - t0


def watch(proc: executor.Process, tee: io.BytesIO | None = None) -> tuple[Outcome, bytes]:
    """proc.watch() in a thread; the test fails unless it returns within DEADLINE_S."""
    chunks: list[bytes] = []
    result: list[Outcome] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            result.append(proc.watch(chunks.append, tee))
        except BaseException as e:
            errors.append(e)

    watcher = threading.Thread(target=target, daemon=True)
    watcher.start()
    watcher.join(DEADLINE_S)
    if watcher.is_alive():
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail(f"watch() did not return within {DEADLINE_S}s")
    if errors:
        raise errors[0]
    return result[0], b"".join(chunks)


class CountingSelector(selectors.DefaultSelector):
    """Counts watch()'s wake-ups (see count_wakeups)."""

    calls = 0

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        CountingSelector.calls += 1
        return super().select(timeout)


@pytest.fixture
def count_wakeups(monkeypatch: pytest.MonkeyPatch) -> type[CountingSelector]:
    """watch() wakes up for an event (output, EOF, the leader's exit: a few here) or after a
    wait of at least executor.IDLE_S (POLL_S when polling for the exit), never more often:
    so at most elapsed / that wait + a few. A loop spinning on a ready fd (e.g. the exited
    leader's pidfd) wakes thousands of times in that time, however loaded the machine."""
    CountingSelector.calls = 0
    monkeypatch.setattr(selectors, "DefaultSelector", CountingSelector)
    return CountingSelector


def wait_until(cond: Callable[[], bool], timeout: float = DEADLINE_S) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.01)
    return cond()


def running(pid: int) -> bool:
    """Alive and not a zombie (orphans may never be reaped by a container's pid 1)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def test_success_keeps_stdout_and_stderr_in_order_and_tees() -> None:
    tee = io.BytesIO()
    outcome, out, _ = run(spec("echo a; echo b >&2; echo c"), tee)
    assert out == tee.getvalue() == b"a\nb\nc\n"
    assert (outcome.status, outcome.exit_code, outcome.signal, outcome.error) == (
        "succeeded",
        0,
        None,
        None,
    )
    assert (outcome.output_bytes, outcome.dropped_bytes) == (6, 0)
    assert outcome.started_at <= outcome.finished_at <= time.time()


def test_process_exposes_group_and_start_time() -> None:
    proc = executor.start(spec(["sleep", "30"]))
    try:
        assert os.getpgid(proc.pid) == proc.pid  # a new session: pid == group id
        assert proc.proc_start is not None
        assert proc.proc_start == executor.proc_start_time(proc.pid)
        assert executor.group_alive(proc.pid)
    finally:
        proc.terminate()
        assert proc.watch(lambda _: None).status == "cancelled"


def test_exit_code_is_a_failure() -> None:
    outcome, _, _ = run(spec("echo oops; exit 3"))
    assert (outcome.status, outcome.exit_code, outcome.signal) == ("failed", 3, None)
    assert outcome.error == "exit code 3"


def test_killed_by_signal() -> None:
    outcome, _, _ = run(spec("kill -9 $$"))
    assert (outcome.status, outcome.exit_code, outcome.signal) == ("failed", None, 9)
    assert outcome.error == "killed by SIGKILL"


def test_command_not_found_is_127() -> None:
    with pytest.raises(SpawnError) as e:
        executor.start(spec(["jobctl-test-no-such-command", "x"]))
    assert e.value.exit_code == 127
    assert "jobctl-test-no-such-command" in str(e.value)
    # Through the shell it is the job's own exit code, not a spawn error.
    outcome, _, _ = run(spec("jobctl-test-no-such-command"))
    assert (outcome.status, outcome.exit_code) == ("failed", 127)


def test_not_executable_is_126(tmp_path: Path) -> None:
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)
    with pytest.raises(SpawnError) as e:
        executor.start(spec([str(script)]))
    assert e.value.exit_code == 126
    assert str(script) in str(e.value)


def test_missing_cwd_is_126(tmp_path: Path) -> None:
    missing = tmp_path / "gone"
    with pytest.raises(SpawnError) as e:
        executor.start(spec(["true"], cwd=str(missing)))
    assert e.value.exit_code == 126
    assert str(missing) in str(e.value) and "working directory" in str(e.value)


def test_env_is_the_whole_environment_and_cwd_applies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOBCTL_TEST_LEAK", "1")  # in our environment, not in the job's
    env = {"PATH": os.environ["PATH"], "GREETING": "hello world"}
    cmd = 'pwd; echo "$GREETING"; echo "${JOBCTL_TEST_LEAK-unset}"'
    outcome, out, _ = run(spec(cmd, cwd=str(tmp_path), env=env))
    assert outcome.status == "succeeded"
    assert out.decode().splitlines() == [os.path.realpath(tmp_path), "hello world", "unset"]


def test_timeout_kills_the_whole_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    cmd = f"sleep 30 & echo $! > {pidfile}; wait"
    outcome, _, took = run(spec(cmd, timeout_s=0.5), ready=pidfile)
    assert outcome.status == "timed_out"
    assert outcome.error == "timed out after 0.5s"
    assert (outcome.exit_code, outcome.signal) == (None, signal.SIGTERM)
    assert took >= 0.5
    grandchild = int(pidfile.read_text())
    assert wait_until(lambda: not running(grandchild))


def test_job_ignoring_sigterm_is_killed_after_the_grace(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    cmd = f"trap '' TERM; echo > {ready}; sleep 30"
    outcome, _, took = run(spec(cmd, timeout_s=0.3, kill_grace_s=0.3), ready=ready)
    assert outcome.status == "timed_out"
    assert outcome.signal == signal.SIGKILL
    assert took >= 0.6


def test_group_members_ignoring_sigterm_get_the_grace_then_sigkill(
    tmp_path: Path, count_wakeups: type[CountingSelector]
) -> None:
    pidfile = tmp_path / "straggler.pid"
    cmd = f"(trap '' TERM; sleep 30 & echo $! > {pidfile}; wait) & sleep 30"
    outcome, _, took = run(spec(cmd, timeout_s=0.2, kill_grace_s=0.8), ready=pidfile)
    assert (outcome.status, outcome.signal) == ("timed_out", signal.SIGTERM)  # the leader obeyed
    assert took >= 1.0  # but watch() waited for the stragglers until the SIGKILL
    assert count_wakeups.calls <= took / executor.IDLE_S + 10  # not spinning on the leader
    straggler = int(pidfile.read_text())
    assert wait_until(lambda: not running(straggler))


def test_stopping_kills_stragglers_that_left_the_pipe(tmp_path: Path) -> None:
    pidfile = tmp_path / "straggler.pid"
    cmd = f"(trap '' TERM; exec >/dev/null 2>&1; sleep 30 & echo $! > {pidfile}; wait) & sleep 30"
    s = spec(cmd, timeout_s=0.2, kill_grace_s=LONG_GRACE_S)
    outcome, _, _ = run(s, ready=pidfile)  # EOF and the leader's exit end the wait (no grace)
    assert outcome.status == "timed_out"
    straggler = int(pidfile.read_text())
    assert wait_until(lambda: not running(straggler))  # and no straggler escapes


def test_timeout_lets_the_job_clean_up_within_the_grace(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    cmd = f"trap 'echo bye; exit 0' TERM; echo > {ready}; sleep 30 & wait"
    s = spec(cmd, timeout_s=0.3, kill_grace_s=LONG_GRACE_S)
    outcome, out, _ = run(s, ready=ready)  # (it did not wait for the grace to run out)
    assert (outcome.status, outcome.exit_code) == ("timed_out", 0)
    assert out == b"bye\n"


def test_output_cap_keeps_head_marker_and_tail() -> None:
    data = bytes(i % 251 for i in range(300_000))  # the position is visible in every byte
    writer = (
        "import sys\n"
        "data = bytes(i % 251 for i in range(300_000))\n"
        "for i in range(0, len(data), 7_000):\n"
        "    sys.stdout.buffer.write(data[i : i + 7_000]); sys.stdout.flush()\n"
    )
    calls: list[bytes] = []
    tee = io.BytesIO()
    proc = executor.start(spec([sys.executable, "-c", writer], max_output=10_000))
    outcome = proc.watch(calls.append, tee)
    marker = b"\n[jobctl: 290000 bytes of output dropped]\n"
    assert b"".join(calls) == data[:5000] + marker + data[-5000:]
    assert (outcome.output_bytes, outcome.dropped_bytes) == (300_000, 290_000)
    assert tee.getvalue() == data  # the terminal gets everything, uncapped
    assert len(calls) <= 5  # batched, not one call per read


def test_output_at_the_cap_is_kept_whole() -> None:
    outcome, out, _ = run(spec("head -c 8000 /dev/zero; echo end", max_output=10_000))
    assert out == b"\0" * 8000 + b"end\n"
    assert (outcome.output_bytes, outcome.dropped_bytes) == (8004, 0)


def test_terminate_from_another_thread_cancels() -> None:
    proc = executor.start(spec("echo ready; sleep 30", kill_grace_s=LONG_GRACE_S))
    seen = threading.Event()
    result: list[Outcome] = []
    watcher = threading.Thread(target=lambda: result.append(proc.watch(lambda _: seen.set())))
    watcher.start()
    assert seen.wait(DEADLINE_S)
    proc.terminate(reason="replaced by a newer run")
    proc.terminate("timed_out", "ignored: the first call decides")
    watcher.join(DEADLINE_S)
    assert not watcher.is_alive()  # the job obeyed its SIGTERM: no wait for the grace
    (outcome,) = result
    assert (outcome.status, outcome.error) == ("cancelled", "replaced by a newer run")
    assert outcome.signal == signal.SIGTERM
    proc.terminate()  # after the end: a harmless no-op


def test_grandchild_holding_the_pipe_does_not_hang_watch() -> None:
    proc = executor.start(spec("sleep 600 & echo done"))
    try:
        outcome, out = watch(proc)  # the grandchild holds the pipe for 600 s
        assert (outcome.status, out) == ("succeeded", b"done\n")
        assert executor.group_alive(proc.pid)  # a normal exit leaves the group alone
    finally:
        os.killpg(proc.pid, signal.SIGKILL)


def test_job_that_closes_stdout_is_still_awaited(tmp_path: Path) -> None:
    last = tmp_path / "last"
    outcome, out, took = run(spec(f"echo early; exec >&-; sleep 0.3; touch {last}; exit 4"))
    assert (outcome.status, outcome.exit_code, out) == ("failed", 4, b"early\n")
    assert last.exists()  # watch() returned after the job's end, not at its EOF
    assert took >= 0.3


def test_sink_error_kills_the_job_and_propagates() -> None:
    def sink(_: bytes) -> None:
        raise RuntimeError("store is gone")

    proc = executor.start(spec("echo hi; sleep 30"))
    with pytest.raises(RuntimeError, match="store is gone"):
        proc.watch(sink)
    assert not running(proc.pid)


def test_proc_start_time_and_kill_group_refuse_a_reused_pid() -> None:
    assert executor.proc_start_time(os.getpid()) is not None
    assert executor.proc_start_time(PID_MAX + 1) is None
    assert not executor.group_alive(PID_MAX + 1)
    assert not executor.group_alive(0)
    assert not executor.kill_group(0, 0, 0)  # never "my own group"

    sleeper = executor.start(spec(["sleep", "30"]))
    start = sleeper.proc_start
    assert start is not None
    assert not executor.kill_group(sleeper.pid, start + 1, signal.SIGKILL)
    assert not executor.kill_group(sleeper.pid, None, signal.SIGKILL)
    assert running(sleeper.pid)
    assert executor.kill_group(sleeper.pid, start, signal.SIGKILL)
    outcome = sleeper.watch(lambda _: None)
    assert (outcome.status, outcome.signal) == ("failed", signal.SIGKILL)


def test_proc_start_time_survives_a_comm_with_spaces_and_parens() -> None:
    script = "open('/proc/self/comm', 'w').write('x) 1 2 (y'); import time; time.sleep(30)"
    proc = executor.start(spec([sys.executable, "-c", script]))
    try:
        comm = Path(f"/proc/{proc.pid}/comm")
        assert wait_until(lambda: comm.read_text().strip() == "x) 1 2 (y")
        assert executor.proc_start_time(proc.pid) == proc.proc_start
        assert executor.kill_group(proc.pid, proc.proc_start, 0)
    finally:
        proc.terminate()
        proc.watch(lambda _: None)


@pytest.mark.parametrize("pidfd", [True, False], ids=["pidfd", "polling"])
def test_idle_watch_does_not_busy_loop(
    pidfd: bool, monkeypatch: pytest.MonkeyPatch, count_wakeups: type[CountingSelector]
) -> None:
    if not pidfd:
        monkeypatch.delattr(os, "pidfd_open", raising=False)
    outcome, out, took = run(spec("echo hi; sleep 1", timeout_s=60))
    assert (outcome.status, out) == ("succeeded", b"hi\n")
    assert took >= 1.0
    wait = executor.IDLE_S if pidfd else executor.POLL_S
    assert count_wakeups.calls <= took / wait + 10  # a 1 ms polling loop: ~1000 here


# ---- the gate: the pid is known before the job can do anything ---------------------------


def test_gated_job_runs_nothing_until_released(tmp_path: Path) -> None:
    mark = tmp_path / "ran"
    proc = executor.start(spec(f"echo $$ > {mark}; echo hello"), gated=True)
    stat = Path(f"/proc/{proc.pid}/stat")
    assert wait_until(lambda: stat.read_text().rsplit(")", 1)[1].split()[0] == "S")  # blocked
    assert b"jobctl-gate" in Path(f"/proc/{proc.pid}/cmdline").read_bytes()  # in the gate
    assert not mark.exists()  # spawned, pid known, but the command has not started
    assert executor.group_alive(proc.pid)
    before = proc.started_at
    proc.release()
    assert proc.started_at >= before
    chunks: list[bytes] = []
    outcome = proc.watch(chunks.append)
    assert (outcome.status, b"".join(chunks)) == ("succeeded", b"hello\n")
    assert int(mark.read_text()) == proc.pid  # same process: pid and start time stay valid


@pytest.mark.parametrize("gate_mark", [True, False])
def test_gated_job_whose_starter_vanished_never_runs(tmp_path: Path, gate_mark: bool) -> None:
    mark, left = tmp_path / "ran", tmp_path / "never-ran"
    job = replace(spec(f"touch {mark}"), gate_mark=str(left) if gate_mark else None)
    proc = executor.start(job, gated=True)
    assert proc._gate is not None
    os.close(proc._gate)  # what a kill -9 of the runner does to the gate's write end
    proc._gate = None
    outcome = proc.watch(lambda _: None)
    assert outcome.exit_code == 125 and not mark.exists()
    assert left.exists() == gate_mark  # what tells the next runner it never ran


def test_a_released_gate_leaves_no_mark(tmp_path: Path) -> None:
    left = tmp_path / "never-ran"
    proc = executor.start(replace(spec("echo $# $1"), gate_mark=str(left)), gated=True)
    proc.release()
    chunks: list[bytes] = []
    outcome = proc.watch(chunks.append)
    assert (outcome.status, b"".join(chunks)) == ("succeeded", b"0\n")  # no argument leaks in
    assert not left.exists()


def test_gated_job_abort_kills_it_unrun(tmp_path: Path) -> None:
    mark = tmp_path / "ran"
    proc = executor.start(spec(f"touch {mark}"), gated=True)
    proc.abort()
    assert not executor.group_alive(proc.pid) or not Path(f"/proc/{proc.pid}").exists()
    assert not mark.exists()  # (it was reaped: nothing of it can run any more)


def test_gated_spawn_errors_are_known_up_front(tmp_path: Path) -> None:
    plain = tmp_path / "plain.sh"
    plain.write_text("echo hi\n")
    plain.chmod(0o644)
    for argv, code in (
        (["no-such-command-xyz"], 127),
        (["./missing.sh"], 127),
        ([str(plain)], 126),
    ):
        with pytest.raises(SpawnError) as e:
            executor.start(spec(argv, cwd=str(tmp_path)), gated=True)
        assert e.value.exit_code == code, argv


def test_path_is_searched_at_every_start(tmp_path: Path) -> None:
    """Like exec: a command removed from an earlier PATH entry is found in a later one, at
    once; one added earlier on PATH is used within executor.FOUND_TTL_S."""
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        tool = tmp_path / d / "mytool"
        tool.write_text(f"#!/bin/sh\necho {d}\n")
        tool.chmod(0o755)
    env = dict(os.environ, PATH=f"{tmp_path / 'a'}:{tmp_path / 'b'}:/usr/bin:/bin")
    first = spec(["mytool"], env=env)
    _, out, _ = run(first)
    assert out == b"a\n"
    (tmp_path / "a" / "mytool").unlink()  # gone from the first PATH entry: found in the next
    _, out, _ = run(spec(["mytool"], env=env))
    assert out == b"b\n"
    new = tmp_path / "a" / "mytool"  # a newer one earlier on PATH: used once the cache expires
    new.write_text("#!/bin/sh\necho new\n")
    new.chmod(0o755)
    executor._FOUND.clear()  # (as FOUND_TTL_S passing would)
    _, out, _ = run(spec(["mytool"], env=env))
    assert out == b"new\n"


def test_one_loop_supervises_several_processes_without_a_thread_each() -> None:
    """executor.Watch, driven by one selector as the runner's process loop drives it: each
    job's output stays its own, a timeout stops only its job, and every leader is reaped."""
    jobs = {
        "talk": executor.start(spec("echo one; sleep 0.2; echo two")),
        "fail": executor.start(spec("echo bad >&2; exit 3")),
        "hang": executor.start(spec(["sleep", "600"], timeout_s=0.3, kill_grace_s=1.0)),
    }
    out: dict[str, list[bytes]] = {name: [] for name in jobs}
    watches = {name: executor.Watch(p, out[name].append) for name, p in jobs.items()}
    sel = selectors.DefaultSelector()
    for name, w in watches.items():
        for fd in w.fds():
            sel.register(fd, selectors.EVENT_READ, name)
    due = {name: 0.0 for name in jobs}
    outcomes: dict[str, Outcome] = {}
    give_up = time.monotonic() + DEADLINE_S
    while due and time.monotonic() < give_up:
        ready: set[str] = set()
        for key, _ in sel.select(max(0.0, min(due.values()) - time.monotonic())):
            ready.add(key.data)
            if not watches[key.data].ready(key.fd):  # EOF, or the leader exited
                sel.unregister(key.fd)
        now = time.monotonic()
        for name in [n for n in due if n in ready or due[n] <= now]:
            wait = watches[name].step(now)
            if wait is None:
                for fd in watches[name].fds():
                    with contextlib.suppress(KeyError, ValueError):
                        sel.unregister(fd)
                outcomes[name] = watches[name].finish()
                del due[name]
            else:
                due[name] = now + wait
    assert not due, f"still running after {DEADLINE_S}s: {sorted(due)}"
    assert (outcomes["talk"].status, b"".join(out["talk"])) == ("succeeded", b"one\ntwo\n")
    assert (outcomes["fail"].exit_code, b"".join(out["fail"])) == (3, b"bad\n")
    assert outcomes["hang"].status == "timed_out"
    for p in jobs.values():
        with pytest.raises(ChildProcessError):  # reaped: no zombie left behind
            os.waitpid(p.pid, os.WNOHANG)


def test_every_job_reads_dev_null_on_stdin_and_cannot_write_it() -> None:
    """stdin is /dev/null, opened once for all jobs: each job reads EOF at once, and a job
    cannot write to it (read-only), whatever the jobs before it did."""
    for _ in range(3):
        outcome, out, _ = run(spec("cat; readlink /proc/self/fd/0; echo x >&0 || echo refused"))
        lines = out.decode().splitlines()
        assert outcome.exit_code == 0
        assert lines[0] == "/dev/null" and lines[-1] == "refused", lines


def test_old_gate_marks_are_swept(tmp_path: Path) -> None:
    from jobctl.runner.recovery import sweep_gate_marks

    old, new = tmp_path / "1-1000", tmp_path / "2-2000"
    old.touch()
    new.touch()
    os.utime(old, (1.0, 1.0))
    sweep_gate_marks(tmp_path, ttl_s=3600)
    assert not old.exists() and new.exists()
    sweep_gate_marks(tmp_path / "none")  # no folder: nothing to do
