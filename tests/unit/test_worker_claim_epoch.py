"""The worker pool must not start runs claimed under a lease the runner no longer holds
(found by the chaos suite, issue 10; see tests/store/test_postgres_claim_lease.py for the
store's half). A runner on a slow link sent a claim under epoch 4; while the claim's
transaction went on, its lease expired, it fenced itself and registered again (epoch 5);
the claim then returned runs committed under epoch 4, and WorkerPool.start_queued started
them: their ends are refused for certain, and another runner's reaper had already recorded
them abandoned and started their retries, so two attempts of each ran at once.

The lead is rewriting runner/workers.py (an event-loop executor with batched claims): this
test pins the check wanted after a claim returns (the runner still holding, under the epoch
the claim was made with; otherwise start nothing and leave the runs to the reaper) against
the current WorkerPool API, and is expected to fail until then.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from jobctl.models import Job, Run
from jobctl.runner.workers import Active, WorkerPool


class Runner:
    """What WorkerPool.start_queued reads of its runner."""

    def __init__(self) -> None:
        self.labels = ["h1"]
        self._stopping = False
        self.holding = True
        self.owner, self.host, self.epoch = "h1:1:1", "h1", 4
        self.store: Any = None

    def emit(self, event: str, text: str) -> None:
        pass

    def wake(self) -> None:
        pass


class SlowClaimStore:
    """A claim during which the runner's lease expired and it registered again."""

    def __init__(self, runner: Runner) -> None:
        self.r = runner
        self.epochs: list[int | None] = []

    def claim(self, owner: str, host: str, now: float, limit: int, pick: Any,
              epoch: int | None = None) -> list[tuple[Run, Job]]:  # fmt: skip
        self.epochs.append(epoch)
        self.r.epoch = 5  # fenced and registered again while the claim's round trips went on
        job = Job(name="tick", command=["true"])
        return [(Run(job="tick", scheduled_for=1000.0, status="running", id=7, owner=owner,
                     host=host), job)]  # fmt: skip


@pytest.mark.xfail(
    strict=True,
    reason="WorkerPool.start_queued starts runs claimed under an epoch the runner no longer "
    "holds (runner/workers.py, the lead's to fix in the new executor)",
)
def test_runs_claimed_under_an_expired_epoch_are_not_started() -> None:
    runner = Runner()
    store = runner.store = SlowClaimStore(runner)
    pool = WorkerPool(runner, 4)  # type: ignore[arg-type]
    started: list[Active | None] = []
    lock = threading.Lock()

    def record(entry: Active | None) -> None:
        with lock:
            started.append(entry)

    pool._work = record  # type: ignore[method-assign]
    pool.start_queued(1000.0)
    assert store.epochs == [4]
    with lock:
        assert started == [], "a run claimed under epoch 4 was started by a runner of epoch 5"
