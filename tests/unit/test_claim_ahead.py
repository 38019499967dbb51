"""Claiming ahead (workers.AHEAD_MAX, HOLD_S), on PostgreSQL and on SQLite.

A runner on PostgreSQL claims due runs beyond its free slots, and its process loop starts one
the moment a slot frees: without that, every slot waited a claim's round trips between one
run's end and the next start (the PostgreSQL drain at 0.5x the SQLite runner's). The SQLite
runner does the same since issue 13: one claim and one flush for several runs (its recovery
puts a run claimed and never spawned back in the queue: recovery.mark_waiting). The rules
tested here: how many are claimed and when; only runs due now wait for a slot; never more
processes than workers; a run that waits HOLD_S goes back to the queue; a held run that is
cancelled ends without starting.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from jobctl.clock import SystemClock
from jobctl.models import Job, Run
from jobctl.runner import Runner, workers
from jobctl.runner.workers import Active
from jobctl.store.base import RunFilter
from jobctl.store.sqlite import SQLiteStore
from tests.unit.test_pool_faults import run_once
from tests.waiting import DEADLINE_S, wait_for


class _Offer:
    """Stands in for the store's claim: offers `queued` to the pool's pick and records what
    the pool asked for (limit) and what pick chose; claims nothing."""

    def __init__(self, queued: list[Run]) -> None:
        self.queued = queued
        self.limits: list[int] = []
        self.picked: list[list[int]] = []

    def claim(self, owner: str, host: str, now: float, limit: int, pick: Any,
              epoch: int | None = None, due_by: float | None = None,
              ) -> list[tuple[Run, Job]]:  # fmt: skip
        jobs = {r.job: Job(name=r.job, command=["true"]) for r in self.queued}
        start, _ = pick(list(self.queued), [], jobs, limit)
        self.limits.append(limit)
        self.picked.append([r.id or 0 for r in start])
        return []


def _pool(tmp_path: Path, size: int, shared: bool = True) -> workers.WorkerPool:
    runner = Runner(SQLiteStore(tmp_path / "jobctl.db"), workers=size, clock=SystemClock())
    return workers.WorkerPool(runner, size, open_store=(lambda: runner.store) if shared else None)


def _runs(*not_before: float) -> list[Run]:
    return [Run(job=f"j{i}", scheduled_for=t, not_before=t, id=i + 1)
            for i, t in enumerate(not_before)]  # fmt: skip


def _busy(pool: workers.WorkerPool, n: int) -> None:
    for i in range(n):
        pool.active[1000 + i] = Active(run=Run(job="busy", scheduled_for=0.0, id=1000 + i),
                                       job=Job(name="busy", command=["true"]))  # fmt: skip


def test_a_free_slot_claims_twice_the_workers_ahead_but_only_runs_due_now(tmp_path: Path) -> None:
    now = time.time()
    pool = _pool(tmp_path, 1)
    assert pool.ahead == 2
    offer = _Offer(_runs(now - 1, now - 1, now - 1, now - 1))
    pool.start_queued(now, store=offer)  # type: ignore[arg-type]
    assert offer.limits == [3] and offer.picked == [[1, 2, 3]]
    # a run not due yet is claimed for a free slot only (it waits behind a gate, not for a slot)
    offer = _Offer(_runs(now - 1, now + 1))
    pool.start_queued(now + 2, store=offer)  # type: ignore[arg-type]
    assert offer.picked == [[1]]
    wide = _pool(tmp_path, 2)
    offer = _Offer(_runs(now - 1, now + 1))
    wide.start_queued(now + 2, store=offer)  # type: ignore[arg-type]
    assert offer.picked == [[1, 2]]
    assert _pool(tmp_path, 32).ahead == workers.AHEAD_MAX


def test_with_every_slot_busy_runs_are_claimed_ahead_only_for_slots_being_freed(
    tmp_path: Path,
) -> None:
    now = time.time()
    pool = _pool(tmp_path, 2)
    _busy(pool, 2)
    offer = _Offer(_runs(now - 1, now - 1, now - 1, now - 1, now - 1, now - 1))
    pool.start_queued(now, store=offer)  # type: ignore[arg-type]
    pool.start_queued(now, store=offer, freed=True)  # type: ignore[arg-type]
    pool.ahead_paused_until = time.monotonic() + 60  # a held run waited too long lately
    pool.start_queued(now, store=offer, freed=True)  # type: ignore[arg-type]
    assert offer.limits == [0, 4, 0]
    pool.ahead_paused_until = 0.0
    _busy(pool, 4)  # 2 running, 2 claimed ahead and waiting: too few to claim for (3 of 4)
    assert pool.ahead_batch == 3
    pool.start_queued(now, store=offer, freed=True)  # type: ignore[arg-type]
    assert offer.limits == [0, 4, 0]
    del pool.active[1003]  # one more started and ended
    pool.start_queued(now, store=offer, freed=True)  # type: ignore[arg-type]
    assert offer.limits == [0, 4, 0, 3]


def test_the_sqlite_runner_claims_ahead_after_ends_in_batches(tmp_path: Path) -> None:
    """The SQLite runner's bookkeeper claims after recording ends (`done`): ahead of the
    free slots too, and, with every slot covered by a running or waiting run, only once
    ahead_batch runs can be taken (a claim and a flush for several runs, not one each)."""
    now = time.time()
    pool = _pool(tmp_path, 2, shared=False)
    assert (pool.ahead, pool.ahead_batch) == (4, 3)
    offer = _Offer(_runs(*[now - 1] * 8))
    pool.start_queued(now, store=offer)  # type: ignore[arg-type]
    assert offer.limits == [6]  # both slots free: 2 + 4 ahead
    _busy(pool, 6)  # 2 running, 4 claimed ahead and waiting
    done = [pool.active[1000]]  # one ended: its slot goes to a waiting run
    pool.start_queued(now, done, store=offer)  # type: ignore[arg-type]
    assert offer.limits == [6]  # 1 to take: too few to claim for
    done = [pool.active[1000 + i] for i in range(3)]
    pool.start_queued(now, done, store=offer)  # type: ignore[arg-type]
    assert offer.limits == [6, 3]
    assert all(1000 + i not in pool.active for i in range(3))  # their slots given up


# ---- on PostgreSQL: the runner ----------------------------------------------------------------


def _queue(store: Any, tmp_path: Path, name: str, command: list[str]) -> Run:
    store.add_job(Job(name=name, command=command, tz="UTC", cwd=str(tmp_path)))
    now = store.now()
    return store.add_run(Run(job=name, scheduled_for=now, not_before=now, trigger="manual"))


def _runner(pg_url: str, size: int, said: list[str] | None = None) -> tuple[Any, Runner, list[int]]:
    """A runner on `pg_url` with `size` workers; the list gets the size of each claim;
    `said` the runner's log lines."""
    from jobctl.store.postgres import PostgresStore

    sizes: list[int] = []

    def counted() -> PostgresStore:
        store = PostgresStore(pg_url)
        real = store.claim

        def claim(*args: Any, **kw: Any) -> list[tuple[Run, Job]]:
            got = real(*args, **kw)
            sizes.append(len(got))
            return got

        store.claim = claim  # type: ignore[method-assign]
        return store

    main = counted()
    emit = (lambda event, text: said.append(f"{event} {text}")) if said is not None else None
    more = {"emit": emit} if emit is not None else {}
    return main, Runner(main, workers=size, clock=SystemClock(), lease_store=counted, **more), sizes


def test_runs_claimed_ahead_start_as_slots_free_never_beyond_the_workers(
    pg_url: str, tmp_path: Path
) -> None:
    log = tmp_path / "log"
    main, runner, sizes = _runner(pg_url, 1)
    for name in ("a", "b", "c"):  # each says when it starts and ends
        _queue(main, tmp_path, name, ["sh", "-c", f"echo s >> {log}; sleep 0.1; echo e >> {log}"])
    run_once(runner)
    assert sizes[0] == 3  # one for the free slot, two ahead
    assert log.read_text().split() == ["s", "e"] * 3  # one at a time
    assert {r.job: r.status for r in main.list_runs(RunFilter())} == dict.fromkeys(
        "abc", "succeeded"
    )
    main.close()


def test_a_run_held_too_long_goes_back_to_the_queue_and_claiming_ahead_pauses(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(workers, "HOLD_S", 0.2)
    said: list[str] = []
    main, runner, _ = _runner(pg_url, 1, said)
    flag = tmp_path / "go"
    wait = f"while [ ! -e {flag} ]; do sleep 0.05; done"
    long = _queue(main, tmp_path, "long", ["sh", "-c", wait])
    short = [_queue(main, tmp_path, f"s{i}", ["true"]) for i in (1, 2)]
    returned: list[int] = []
    t = threading.Thread(target=lambda: returned.append(runner.run(once=True)), daemon=True)
    t.start()

    def handed_back() -> bool:
        runs = {r.id: r for r in main.list_runs(RunFilter())}
        return runs[long.id].status == "running" and all(
            runs[r.id].status == "queued" and runs[r.id].owner is None for r in short
        )

    try:
        assert wait_for(handed_back), "the held runs never went back to the queue"
        assert runner.pool.ahead_paused_until > time.monotonic()
    finally:
        flag.touch()
    t.join(DEADLINE_S)
    assert not t.is_alive()
    assert {r.job: r.status for r in main.list_runs(RunFilter())} == {
        "long": "succeeded", "s1": "succeeded", "s2": "succeeded"}, (returned, said)  # fmt: skip
    main.close()


def test_a_held_run_that_is_cancelled_ends_without_starting(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(workers, "HOLD_S", DEADLINE_S)
    main, runner, _ = _runner(pg_url, 1)
    flag, ran = tmp_path / "go", tmp_path / "ran"
    _queue(main, tmp_path, "long", ["sh", "-c", f"while [ ! -e {flag} ]; do sleep 0.05; done"])
    held = _queue(main, tmp_path, "held", ["touch", str(ran)])
    t = threading.Thread(target=runner.run, kwargs={"once": True}, daemon=True)
    t.start()
    try:
        assert wait_for(lambda: main.get_run(held.id or 0).status == "running")
        assert wait_for(lambda: (held.id or 0) in runner.pool.active)
        runner.pool.terminate(main.get_run(held.id or 0), "cancelled", "cancelled")
        assert wait_for(lambda: main.get_run(held.id or 0).status == "cancelled")
    finally:
        flag.touch()
    t.join(DEADLINE_S)
    assert not t.is_alive()
    done = main.get_run(held.id or 0)
    assert (done.status, done.started_at, done.pid) == ("cancelled", None, None)
    assert not ran.exists()
    main.close()


def _held(pool: workers.WorkerPool, waited_s: float = 0.0) -> Active:
    """A due run claimed ahead, waiting in the process loop for `waited_s` already."""
    entry = Active(run=Run(job="x", scheduled_for=0.0, not_before=time.time() - 1, id=7),
                   job=Job(name="x", command=["true"]))  # fmt: skip
    entry.held = time.monotonic() - waited_s
    pool.active[7] = entry
    pool.loop._ready.append(entry)
    return entry


def test_a_run_being_launched_takes_its_slot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A gated run of an earlier claim, still being spawned (not yet the loop's), holds its
    slot: a run claimed ahead must not start in it (two processes with one worker)."""
    pool = _pool(tmp_path, 1)
    spawned: list[Active] = []
    monkeypatch.setattr(
        pool, "spawn", lambda entry, now, shift, due=False: spawned.append(entry) and False
    )
    entry = _held(pool)
    pool.launching = 1
    assert pool.loop._start_ready(pool.r.clock) == [] and spawned == []
    pool.launching = 0
    pool.loop._start_ready(pool.r.clock)
    assert spawned == [entry]


def test_a_held_run_that_waited_too_long_never_starts_even_in_a_free_slot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a freeze longer than HOLD_S (the lease may be gone and the run another runner's
    by now), or once fenced, a held run goes back to the queue instead of starting."""
    pool = _pool(tmp_path, 1)
    monkeypatch.setattr(pool, "spawn", lambda *a, **kw: pytest.fail("spawned"))
    late = _held(pool, waited_s=workers.HOLD_S + 1)
    pool.loop._start_ready(pool.r.clock)
    assert pool.book.get_nowait() == ("requeue", late, None)
    assert pool.ahead_paused_until > time.monotonic()
    fenced = _held(pool)
    pool.r.holding = False
    pool.loop._start_ready(pool.r.clock)
    assert pool.book.get_nowait() == ("requeue", fenced, None)


def test_a_run_handed_back_is_not_claimed_again_before_its_entry_leaves_the_pool(
    tmp_path: Path,
) -> None:
    """A held run handed back to the queue is `queued` in the store as soon as the release
    commits, but its entry leaves `active` a moment later (the bookkeeper). A claim in
    between must not take it: dropping the old entry would drop the new claim's with it
    (same run id), and the run would stay `running` with nobody watching it (seen as a
    `--once` runner returning with a run left `running`)."""
    now = time.time()
    pool = _pool(tmp_path, 2)
    leaving = _held(pool)  # run 7, released already, its entry not dropped yet
    pool.loop._ready.clear()
    offer = _Offer([leaving.run, *_runs(now - 1)])
    pool.start_queued(now, store=offer)  # type: ignore[arg-type]
    assert offer.picked == [[1]]
    with pool.lock:
        pool._forget_done([leaving])
    assert 7 not in pool.active
    offer = _Offer([leaving.run])
    pool.start_queued(now, store=offer)  # type: ignore[arg-type]
    assert offer.picked == [[7]]


def test_dropping_an_entry_never_drops_another_entry_of_the_same_run(tmp_path: Path) -> None:
    pool = _pool(tmp_path, 2)
    old = _held(pool)
    new = Active(run=old.run, job=old.job)
    pool.active[7] = new
    with pool.lock:
        pool._forget_done([old])
    assert pool.active[7] is new
