"""The fleet's claim lock seen from a second runner (found by the chaos suite, issue 10, finding
3: while one runner's link to the database had 0.7 s of latency each way, no runner of the
fleet started anything for 3 s; a runner cut off or frozen in the middle of a claim did the
same until the server ended its session).

PostgresStore.claim now reads and picks without the fleet-wide lock, and takes the lock only in
its last round trip, with the writes and the COMMIT: a claim in progress elsewhere (a slow
link, a freeze) holds nobody's claims. The UPDATE under the lock checks that no conflicting
run (overlap, mutex) started since the picked runs were read; the second test makes one start
in between.
"""

from __future__ import annotations

import contextlib
import threading

import pytest

from jobctl import planner
from jobctl.errors import StoreError
from jobctl.models import Job, Run
from jobctl.store.base import RunFilter
from jobctl.store.postgres import PostgresStore


def test_a_claim_does_not_wait_behind_another_runners_claim(pg_url: str) -> None:
    a, b = PostgresStore(pg_url), PostgresStore(pg_url)
    a.add_job(Job(name="backup", command=["true"], created_at=1.0))
    a.add_run(Run(job="backup", scheduled_for=1000.0, trigger="manual", created_at=1.0,
                  not_before=1.0))  # fmt: skip
    inside, release = threading.Event(), threading.Event()

    def slow_pick(queued: list[Run], running: list[Run], jobs: dict[str, Job],
                  limit: int) -> tuple[list[Run], list[Run]]:  # fmt: skip
        inside.set()  # runner a is in its claim, holding the lock (a slow link, a freeze)
        release.wait(30)
        return [], []

    def first_claim() -> None:
        # the server ends a's session once it has idled in its transaction for 5 s
        # (idle_in_transaction_session_timeout): that error is expected here
        with contextlib.suppress(StoreError):
            a.claim("a:1:1", "h1", 2000.0, 1, slow_pick)

    first = threading.Thread(target=first_claim)
    first.start()
    second_done = threading.Event()
    try:
        assert inside.wait(10)

        def second() -> None:
            b.claim("b:1:1", "h2", 2000.0, 1, lambda q, r, j, n: ([], []))
            second_done.set()

        threading.Thread(target=second, daemon=True).start()
        # well within the 5 s after which the server would end a's idle transaction
        assert second_done.wait(2.5), "runner b's claim waited behind runner a's"
    finally:
        release.set()
        first.join(10)
        second_done.wait(10)
        a.close()
        b.close()


@pytest.mark.parametrize(
    "setup",
    [{"overlap": "queue", "mutexes": []}, {"overlap": "allow", "mutexes": ["m"]}],
    ids=["overlap", "mutex"],
)
def test_a_conflicting_run_started_between_reading_and_claiming_is_seen(
    pg_url: str, setup: dict
) -> None:
    """Runner a reads and picks run 1; meanwhile runner b claims run 2 (of the same
    `--overlap queue` job, or of a job sharing the mutex) and commits. a's claim must then
    claim nothing: the two may never run at once."""
    a, b = PostgresStore(pg_url), PostgresStore(pg_url)
    names = ["j", "j"] if setup["overlap"] == "queue" else ["j1", "j2"]
    for name in sorted(set(names)):
        a.add_job(Job(name=name, command=["true"], created_at=1.0, overlap=setup["overlap"],
                      mutexes=setup["mutexes"]))  # fmt: skip
    for i, name in enumerate(names):
        a.add_run(Run(job=name, scheduled_for=1000.0 + i, trigger="manual", created_at=1.0,
                      not_before=1.0))  # fmt: skip
    others: list = []

    def pick_then_b_claims(queued: list[Run], running: list[Run], jobs: dict[str, Job],
                           limit: int) -> tuple[list[Run], list[Run]]:  # fmt: skip
        if not others:  # the first time only: b's claim commits between a's read and write
            others.append(b.claim("b:1:1", "h2", 2000.0, 1, planner.pick_startable))
        return planner.pick_startable(queued, running, jobs, limit)

    mine = a.claim("a:1:1", "h1", 2000.0, 1, pick_then_b_claims)
    assert len(others[0]) == 1  # b claimed the run a had not locked
    assert mine == []  # a saw b's run and claimed nothing
    running = [r for r in a.list_runs(RunFilter()) if r.status == "running"]
    assert len(running) == 1
    a.close()
    b.close()
