"""A claim whose lease expires before it commits (found by the chaos suite, issue 10).

Seen in a quick chaos run (seed 2, with the harness aiming faults): a runner with 1.14 s of
latency each way to the database sent a claim while its lease held; the claim's transaction
(several round trips) committed after the lease had expired and the runner had fenced
itself and registered again under a new epoch. The runs were committed `running` under the
expired epoch, the reaper of another runner recorded them abandoned 55 ms later and started
their retries, and the claiming runner started them too: 12 fires had two attempts running
at once.

PostgresStore.claim checked LEASE_HELD once, at the start of its transaction; the UPDATE that
marks the runs `running` now checks it again (as finish_run does).
"""

from __future__ import annotations

import os
import time

import psycopg

from jobctl.models import Job, Run
from jobctl.store.base import RunnerInfo
from jobctl.store.postgres import PostgresStore
from tests.waiting import wait_for


def _lease_expired(url: str, owner: str) -> bool:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT lease_expires_at < (extract(epoch FROM clock_timestamp()) * 1000)::bigint "
            "FROM runner WHERE owner = %s",
            [owner],
        ).fetchone()
    return bool(row and row[0])


def _register(store: PostgresStore, owner: str, lease_s: float) -> int:
    """Register runner `owner` (host h1) with a lease of `lease_s`; its epoch."""
    now = store.now()
    return store.register_runner(RunnerInfo(owner=owner, pid=os.getpid(), host="h1",
                                            since=now, heartbeat_at=now,
                                            lease_expires_at=now + lease_s))  # fmt: skip


def test_a_claim_commits_nothing_once_its_lease_has_expired(pg_url: str) -> None:
    store = PostgresStore(pg_url)
    owner = f"h1:{os.getpid()}:1"
    epoch = _register(store, owner, 1.0)
    store.add_job(Job(name="backup", command=["true"], created_at=1.0))
    queued = store.add_run(Run(job="backup", scheduled_for=1000.0, trigger="manual",
                               created_at=1.0, not_before=1.0))  # fmt: skip

    def slow_pick(queued: list[Run], running: list[Run], jobs: dict[str, Job],
                  limit: int) -> tuple[list[Run], list[Run]]:  # fmt: skip
        # the claim's round trips take longer than the lease (a slow link, a starved host)
        wait_for(lambda: _lease_expired(pg_url, owner), timeout=10)
        return queued[:limit], []

    claimed = store.claim(owner, "h1", time.time(), 1, slow_pick, epoch=epoch)
    run = store.get_run(queued.id or 0)
    try:
        assert claimed == [], "runs claimed under an expired lease"
        assert run.status == "queued"
    finally:
        store.close()


def test_runs_go_back_to_the_queue_only_under_the_lease_that_claimed_them(pg_url: str) -> None:
    """A runner whose lease went may have had its runs reaped and retried by another: its
    late release must not queue them again (a second execution of the same fire)."""
    store = PostgresStore(pg_url)
    owner = f"h1:{os.getpid()}:2"
    epoch = _register(store, owner, 60.0)
    store.add_job(Job(name="sync", command=["true"], created_at=1.0))
    for at in (1.0, 2.0):
        store.add_run(Run(job="sync", scheduled_for=at, trigger="manual", created_at=1.0,
                          not_before=1.0))  # fmt: skip

    def pick(queued: list[Run], running: list[Run], jobs: dict[str, Job],
             limit: int) -> tuple[list[Run], list[Run]]:  # fmt: skip
        return queued[:limit], []

    first, second = (r for r, _ in store.claim(owner, "h1", time.time(), 2, pick, epoch=epoch))
    try:
        assert store.release_runs([first.id or 0], fence=(owner, epoch + 1)) == 0
        assert store.release_runs([first.id or 0], fence=(owner, epoch)) == 1
        assert store.get_run(first.id or 0).status == "queued"
        store.unregister_runner(owner)  # its lease is gone (reaped, taken over)
        assert store.release_runs([second.id or 0], fence=(owner, epoch)) == 0
        assert store.get_run(second.id or 0).status == "running"
    finally:
        store.close()
