"""What wakes a sleeping runner (Runner._wake_kinds), and the bookkeeper's own connection on
a shared store. A runner woken by every change another runner commits (its claims, its pids,
its ends) never slept under the chaos suite's load; on one connection, the loop's reads held
up the bookkeeper's ends and claims."""

from __future__ import annotations

import time
from pathlib import Path

from jobctl.clock import SystemClock
from jobctl.models import Job, Run
from jobctl.runner import Runner
from jobctl.runner.workers import Active
from jobctl.store.base import RunFilter
from jobctl.store.sqlite import SQLiteStore
from tests.unit.test_pool_faults import queue, run_once
from tests.waiting import wait_for


def _fill(runner: Runner, n: int) -> None:
    for i in range(n):
        run = Run(job="x", scheduled_for=0.0, id=10_000 + i)
        runner.pool.active[run.id or 0] = Active(run=run, job=Job(name="x", command=["true"]))


def test_a_runner_wakes_for_queued_runs_only_while_a_slot_is_free(tmp_path: Path) -> None:
    runner = Runner(SQLiteStore(tmp_path / "jobctl.db"), workers=2, clock=SystemClock())
    assert runner._wake_kinds() == ("jobs", "queued")
    _fill(runner, 1)
    assert runner._wake_kinds() == ("jobs", "queued", "cancel")
    _fill(runner, 2)  # full: another runner's fires are for the others to claim
    assert runner._wake_kinds() == ("jobs", "cancel")
    runner.pool.blocked = True  # an end frees nothing we could use while we are full
    assert runner._wake_kinds() == ("jobs", "cancel")
    runner.pool.active.clear()
    assert runner._wake_kinds() == ("jobs", "queued", "ended")


def test_a_claim_that_leaves_due_runs_waiting_wakes_the_runner_for_ends(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "jobctl.db")
    for name in ("a", "b"):  # two runs sharing one mutex: one waits for the other's end
        queue(store, tmp_path, name, ["sleep", "30"], mutexes=["m"])
    runner = Runner(store, workers=4, clock=SystemClock(), grace_s=0.0)
    runner.start_queued(time.time())
    assert len(runner.active) == 1 and runner.pool.blocked
    assert "ended" in runner._wake_kinds()
    runner.stop()
    runner.pool.shutdown()


def test_nothing_waiting_is_not_blocked(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "jobctl.db")
    queue(store, tmp_path, "a", ["true"])
    runner = Runner(store, workers=4, clock=SystemClock())
    runner.pool.blocked = True
    run_once(runner)
    assert not runner.pool.blocked
    assert "ended" not in runner._wake_kinds()


def test_on_a_shared_store_the_bookkeeper_writes_on_a_connection_of_its_own(
    pg_url: str, tmp_path: Path
) -> None:
    from jobctl.store.postgres import PostgresStore

    main = PostgresStore(pg_url)
    main.add_job(Job(name="a", command=["true"], tz="UTC", cwd=str(tmp_path)))
    now = main.now()
    main.add_run(Run(job="a", scheduled_for=now, not_before=now, trigger="manual"))
    opened: list[PostgresStore] = []

    def open_store() -> PostgresStore:
        opened.append(PostgresStore(pg_url))
        return opened[-1]

    runner = Runner(main, workers=2, clock=SystemClock(), lease_store=open_store)

    def refused(*args, **kw):  # type: ignore[no-untyped-def]
        raise AssertionError("an end written on the loop's connection")

    main.finish_runs = refused  # type: ignore[method-assign]
    run_once(runner)
    (run,) = opened[0].list_runs(RunFilter(jobs=["a"]))
    assert run.status == "succeeded"
    assert runner.pool.store is not main
    assert runner.pool.store in opened
    main.close()


def test_on_a_shared_store_a_slot_is_claimed_again_while_its_end_is_written(
    pg_url: str, tmp_path: Path
) -> None:
    """The claimer claims for a slot as soon as its process is done, on its own connection,
    while the bookkeeper writes the end: here the first run's end is held until the second
    run has started (with claims made only after ends, it would never start)."""
    import threading

    from jobctl.store.postgres import PostgresStore
    from tests.waiting import DEADLINE_S

    main = PostgresStore(pg_url)
    second = tmp_path / "second"
    now = main.now()
    for name, command in (("a", ["true"]), ("b", ["touch", str(second)])):
        main.add_job(Job(name=name, command=command, tz="UTC", cwd=str(tmp_path)))
        main.add_run(Run(job=name, scheduled_for=now, not_before=now, trigger="manual"))
    begun = threading.Event()
    held: list[bool] = []

    def open_store() -> PostgresStore:
        store = PostgresStore(pg_url)
        real = store.finish_runs

        def finish_runs(ends, fence=None, started=()):  # type: ignore[no-untyped-def]
            if any(end[0].job == "a" for end in ends):
                held.append(begun.wait(DEADLINE_S))
            return real(ends, fence=fence, started=started)

        store.finish_runs = finish_runs  # type: ignore[method-assign]
        return store

    runner = Runner(main, workers=1, clock=SystemClock(), lease_store=open_store)
    real_claim = main.claim
    claims: list[int] = []

    def claim(*args, **kw):  # type: ignore[no-untyped-def]
        claims.append(1)  # the loop's connection claims the first run only
        return real_claim(*args, **kw) if len(claims) == 1 else []

    main.claim = claim  # type: ignore[method-assign]
    threading.Thread(target=lambda: wait_for(second.exists) and begun.set(), daemon=True).start()
    run_once(runner)
    assert held == [True]  # the second run started while the first one's end was held
    assert {r.job: r.status for r in main.list_runs(RunFilter())} == {
        "a": "succeeded",
        "b": "succeeded",
    }
    main.close()


def test_on_a_shared_store_an_end_waits_briefly_for_the_ends_of_other_running_runs(
    tmp_path: Path,
) -> None:
    """The bookkeeper gathers the ends that come within ENDS_WAIT_S while other processes
    run (one transaction for them; their slots are freed as they come), and waits for
    nothing once nothing else runs."""
    from jobctl.runner import workers

    runner = Runner(SQLiteStore(tmp_path / "jobctl.db"), workers=4, clock=SystemClock())
    pool = workers.WorkerPool(runner, 4, open_store=lambda: runner.store)
    job = Job(name="x", command=["true"])
    first, second, late = (Active(run=Run(job="x", scheduled_for=0.0, id=i), job=job)
                           for i in (1, 2, 3))  # fmt: skip
    for entry in (first, second, late):
        pool.active[entry.run.id or 0] = entry
    pool.free_slots([first])
    pool.book.put(("outcome", second, None))  # came while `first` was taken
    batch: list = [("outcome", first, None)]
    pool._gather_ends(batch)  # `late` still runs: its end is waited for, and never comes
    assert [e for _, e, _ in batch] == [first, second]
    assert second.ended and not late.ended  # the slot of the one that came is free at once
    pool.free_slots([late])  # now nothing runs: an item queued is left for the next batch
    pool.book.put(("output", late, b"x"))
    alone: list = [("outcome", late, None)]
    pool._gather_ends(alone)
    assert alone == [("outcome", late, None)]
    assert pool.book.get_nowait() == ("output", late, b"x")


def test_what_the_loop_reports_in_a_round_reaches_the_bookkeeper_as_one_batch() -> None:
    """Items the holding thread (the process loop, in a round) puts wait for flush() and go
    in together; another thread's go in at once; the bookkeeper takes them one by one."""
    import queue as queue_module
    import threading

    import pytest

    from jobctl.runner import workers

    inbox = workers._Inbox()
    job = Job(name="x", command=["true"])
    a, b, c = (Active(run=Run(job="x", scheduled_for=0.0, id=i), job=job) for i in (1, 2, 3))
    inbox.hold()
    inbox.put(("started", a, 0.0))
    inbox.put(("outcome", b, None))
    other = threading.Thread(target=inbox.put, args=(("requeue", c, None),))
    other.start()
    other.join()
    assert inbox.get_nowait() == ("requeue", c, None)  # another thread's: at once
    with pytest.raises(queue_module.Empty):  # the held ones: not before flush()
        inbox.get(timeout=0.01)
    assert inbox._q.qsize() == 0
    inbox.flush()
    assert inbox._q.qsize() == 1  # one batch: one wake-up of the bookkeeper
    assert [inbox.get(), inbox.get_nowait()] == [("started", a, 0.0), ("outcome", b, None)]
    inbox.put(("outcome", a, None))  # not holding any more: at once
    assert inbox.get_nowait() == ("outcome", a, None)
