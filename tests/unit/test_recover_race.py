"""recover() reads our own runs (`active`) before the store: a run leaves `active` only once
its end is committed, so a run the store still shows running was ours when we looked. Read
the other way round, an end committed in between made its run look like one no worker holds,
and recovery recorded it abandoned though it had succeeded (found with the PostgreSQL drain,
where ends are written beside the loop, on a connection of their own)."""

from __future__ import annotations

import time
from pathlib import Path

from jobctl.clock import SystemClock
from jobctl.records import replace
from jobctl.runner import Runner
from jobctl.runner.workers import Active
from jobctl.store.base import RunFilter
from jobctl.store.sqlite import SQLiteStore
from tests.unit.test_pool_faults import queue


def test_an_end_committed_while_recovery_reads_is_not_taken_for_a_lost_run(
    tmp_path: Path,
) -> None:
    store = SQLiteStore(tmp_path / "jobctl.db")
    queued = queue(store, tmp_path, "a", ["true"])
    runner = Runner(store, workers=1, clock=SystemClock())
    ((claimed, job),) = store.claim(runner.owner, runner.host, time.time(), 1,
                                  lambda q, r, j, n: (q[:n], []))  # fmt: skip
    assert claimed.id == queued.id
    runner.pool.active[claimed.id or 0] = Active(run=claimed, job=job)
    real = store.list_runs

    def list_runs(where: RunFilter):  # type: ignore[no-untyped-def]
        seen = real(where)  # the store's answer: still running...
        # ... then the bookkeeper commits the end and the run leaves `active`
        now = time.time()
        store.finish_run(replace(claimed, status="succeeded", exit_code=0, started_at=now,
                                 finished_at=now))  # fmt: skip
        runner.pool.active.pop(claimed.id or 0)
        return seen

    store.list_runs = list_runs  # type: ignore[method-assign]
    runner.recover(time.time())
    store.list_runs = real  # type: ignore[method-assign]
    assert store.get_run(claimed.id or 0).status == "succeeded"
