"""The worker pool when something goes wrong: a store that refuses one end, a bug met while
keeping one run's books, a retry queued while other runs are active, a stalled log, a stop
that comes while runs wait at their gates. Real processes, a temporary SQLite store and the
system clock; every wait has a deadline (tests/waiting.py), none is an upper bound."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from jobctl.clock import SystemClock
from jobctl.errors import StoreDataError
from jobctl.models import Job, Run
from jobctl.runner import Runner
from jobctl.store.base import RunFilter
from jobctl.store.sqlite import SQLiteStore
from tests.waiting import DEADLINE_S, wait_for


def queue(store: SQLiteStore, tmp_path: Path, name: str, command: list[str], **kw) -> Run:
    store.add_job(Job(name=name, command=command, tz="UTC", cwd=str(tmp_path), **kw))
    now = time.time()
    return store.add_run(Run(job=name, scheduled_for=now, not_before=now, trigger="manual"))


def statuses(store: SQLiteStore) -> dict[str, str]:
    return {r.job: r.status for r in store.list_runs(RunFilter()) if r.attempt == 1}


def run_once(runner: Runner) -> None:
    """runner.run(once=True) in a thread; fails the test unless it returns in time."""
    t = threading.Thread(target=runner.run, kwargs={"once": True}, daemon=True)
    t.start()
    t.join(DEADLINE_S)
    assert not t.is_alive(), "the runner never finished its runs (a leaked slot?)"


def test_an_end_the_store_refuses_never_holds_back_the_others(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "jobctl.db")
    bad = queue(store, tmp_path, "bad", ["true"])
    queue(store, tmp_path, "good", ["sleep", "0.3"])
    real = store.finish_runs

    def finish_runs(ends, fence=None, started=()):  # type: ignore[no-untyped-def]
        if any(run.id == bad.id for run, _, _ in ends):
            raise StoreDataError("text fields cannot contain NUL")  # never goes away
        return real(ends, fence=fence, started=started)

    store.finish_runs = finish_runs  # type: ignore[method-assign]
    run_once(Runner(store, workers=2, clock=SystemClock()))
    assert statuses(store) == {"bad": "running", "good": "succeeded"}  # bad: for recovery


def test_a_bug_while_keeping_one_runs_books_frees_its_slot(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "jobctl.db")
    broken = queue(store, tmp_path, "broken", ["false"])  # a failure: its end reads the run
    queue(store, tmp_path, "fine", ["true"])
    real = store.get_run

    def get_run(run_id: int) -> Run:
        if run_id == broken.id:
            raise RuntimeError("a bug")
        return real(run_id)

    store.get_run = get_run  # type: ignore[method-assign]
    run_once(Runner(store, workers=1, clock=SystemClock()))
    assert statuses(store) == {"broken": "abandoned", "fine": "succeeded"}


def test_a_retry_wakes_the_loop_while_other_runs_are_active(tmp_path: Path) -> None:
    """The loop sleeps until the next time it knows of; a retry queued by an end (for later)
    must wake it to learn that time, even while the pool is busy with other runs."""
    store = SQLiteStore(tmp_path / "jobctl.db")
    queue(store, tmp_path, "long", ["sleep", "600"])
    queue(store, tmp_path, "flaky", ["false"], retries=1, retry_delay_s=30.0)
    runner = Runner(store, workers=2, clock=SystemClock())
    try:
        runner.start_queued(time.time())
        wait_for(lambda: statuses(store).get("flaky") == "failed")
        wait_for(lambda: any(r.attempt == 2 for r in store.list_runs(RunFilter(job="flaky"))))
        assert len(runner.active) == 1  # "long" still runs: the pool is not idle
        assert wait_for(lambda: _woken(runner))
    finally:
        runner.stop()
        for entry in list(runner.active.values()):
            runner._terminate(entry.run, "cancelled", "test over")
        wait_for(lambda: not runner.active)


def _woken(runner: Runner) -> bool:
    try:
        return bool(os.read(runner._wake_r, 4096))
    except BlockingIOError:
        return False


def test_a_stalled_log_never_stalls_a_timeout(tmp_path: Path) -> None:
    """The runner's log line for a start may block (a paused terminal, a full pipe): the
    process loop never writes it, so another job's timeout is still enforced meanwhile."""
    store = SQLiteStore(tmp_path / "jobctl.db")
    pidfile = tmp_path / "pid"
    queue(store, tmp_path, "hang", ["sh", "-c", f"echo $$ > {pidfile}.tmp; "
          f"mv {pidfile}.tmp {pidfile}; exec sleep 600"], timeout_s=0.5)  # fmt: skip
    release = threading.Event()

    def emit(event: str, text: str) -> None:
        if event == "start":
            release.wait(3 * DEADLINE_S)  # the log stalls on the first start line

    runner = Runner(store, workers=1, clock=SystemClock(), emit=emit)
    try:
        runner.start_queued(time.time())
        pid = int(wait_for(lambda: pidfile.exists() and pidfile.read_text().strip()))
        wait_for(lambda: not _alive(pid))  # timed out and killed, the log still stalled
        assert not release.is_set()
    finally:
        release.set()
        runner.stop()
        wait_for(lambda: not runner.active)
    assert statuses(store) == {"hang": "timed_out"}


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False


def test_a_stop_before_the_gate_opens_puts_the_run_back_in_the_queue(tmp_path: Path) -> None:
    """Stopping (SIGTERM) while a run waits at its gate, whatever the grace: it never ran,
    so it goes back to the queue (not abandoned, no attempt used up)."""
    store = SQLiteStore(tmp_path / "jobctl.db")
    ran = tmp_path / "ran"
    store.add_job(Job(name="g", command=["touch", str(ran)], tz="UTC", cwd=str(tmp_path)))
    at = time.time() + 2.0
    store.add_run(Run(job="g", scheduled_for=at, not_before=at, trigger="manual"))
    runner = Runner(store, workers=1, clock=SystemClock(), grace_s=0.0)
    runner.start_queued(at)  # claimed ahead of its time: spawned gated
    runner.stop()
    runner.pool.shutdown()  # grace 0: asks the waiting run to stop at once
    (run,) = store.list_runs(RunFilter(job="g"))
    assert (run.status, run.dead, run.owner) == ("queued", False, None)
    assert not ran.exists()


def test_runs_claimed_under_a_lease_lost_meanwhile_are_never_started(tmp_path: Path) -> None:
    """A claim that returns after the runner's lease went (fenced, or registered again under
    a new epoch while the claim's round trips went on: a slow link) starts nothing: another
    runner takes those runs over (found by the chaos suite, issue 10)."""
    store = SQLiteStore(tmp_path / "jobctl.db")
    ran = tmp_path / "ran"
    queue(store, tmp_path, "tick", ["touch", str(ran)])
    runner = Runner(store, workers=1, clock=SystemClock())
    runner.epoch = 4
    real = store.claim

    def claim(*args, **kw):  # type: ignore[no-untyped-def]
        out = real(*args, **kw)
        runner.epoch = 5  # registered again while the claim was under way
        return out

    store.claim = claim  # type: ignore[method-assign]
    runner.start_queued(time.time())
    assert not runner.active
    time.sleep(0.3)  # had it been spawned, `true` would have touched the file by now
    assert not ran.exists()


def test_due_runs_are_spawned_by_the_process_loop_after_their_claim_is_durable(
    tmp_path: Path, monkeypatch
) -> None:
    """The thread that claims and writes (the bookkeeper, or the runner's loop) hands due
    runs to the process loop, which spawns them: it goes back to recording ends meanwhile.
    Each spawn still comes after the flush that made its own claim durable (SPEC 7)."""
    from jobctl import executor

    store = SQLiteStore(tmp_path / "jobctl.db")
    for i in range(6):
        queue(store, tmp_path, f"j{i}", ["true"])
    events: list[tuple[str, object, str]] = []
    real_start, real_sync, real_claim = executor.start, store.sync, store.claim

    def claim(*args, **kw):  # type: ignore[no-untyped-def]
        got = real_claim(*args, **kw)
        events.append(("claim", {run.id for run, _ in got}, threading.current_thread().name))
        return got

    def start(spec, gated=False):  # type: ignore[no-untyped-def]
        run_id = int(spec.env[b"JOBCTL_RUN_ID"])
        events.append(("spawn", run_id, threading.current_thread().name))
        return real_start(spec, gated=gated)

    def sync() -> None:
        real_sync()
        events.append(("sync", None, threading.current_thread().name))

    monkeypatch.setattr(executor, "start", start)
    store.sync = sync  # type: ignore[method-assign]
    store.claim = claim  # type: ignore[method-assign]
    run_once(Runner(store, workers=2, clock=SystemClock()))
    assert set(statuses(store).values()) == {"succeeded"}
    spawns = [(at, run_id, thread) for at, (kind, run_id, thread) in enumerate(events)
              if kind == "spawn"]  # fmt: skip
    assert [thread for _, _, thread in spawns] == ["jobctl-loop"] * 6
    for at, run_id, _ in spawns:
        claimed = next(i for i, (kind, ids, _) in enumerate(events)
                       if kind == "claim" and run_id in ids)  # type: ignore[operator]  # fmt: skip
        assert any(kind == "sync" for kind, _, _ in events[claimed:at]), (run_id, events)


class _StepsBack:
    """The wall clock, stepped back 1 s (an NTP step) at the process loop's first reading."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        if threading.current_thread().name == "jobctl-loop" and not self.offset:
            self.offset = -1.0
        return time.time() + self.offset

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))


def test_a_run_judged_due_starts_though_the_clock_steps_back_before_its_spawn(
    tmp_path: Path,
) -> None:
    """A due run handed to the process loop is spawned as due: were it spawned behind a
    gate (it looks 0.5 s early on the stepped clock), no gate would ever open for it."""
    store = SQLiteStore(tmp_path / "jobctl.db")
    store.add_job(Job(name="j", command=["true"], tz="UTC", cwd=str(tmp_path)))
    due = time.time() - 0.5
    store.add_run(Run(job="j", scheduled_for=due, not_before=due, trigger="manual"))
    run_once(Runner(store, workers=2, clock=_StepsBack()))
    assert statuses(store) == {"j": "succeeded"}
