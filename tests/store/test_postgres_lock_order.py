"""Jobs' rows are locked in one order by every writer (found by the chaos suite, issue 10:
`jobctl pause tick-00 ... fail-2` failed with "deadlock detected" against a runner recording
fires of the same jobs in another order, and exited 1)."""

from __future__ import annotations

import threading
from typing import Any

import psycopg

from jobctl.errors import StoreError
from jobctl.models import Job
from jobctl.store.base import Fire
from jobctl.store.postgres import PostgresStore
from tests.waiting import wait_for


def _job(name: str) -> Job:
    return Job(name=name, command=["true"], schedule="* * * * * *", schedule_kind="cron",
               next_run_at=1000.0, created_at=1.0)  # fmt: skip


def _someone_waits_for_a_lock(url: str, me: int) -> bool:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND pid != %s AND query LIKE '%%UPDATE jobs%%'",  # (a script: after its BEGIN)
            [me],
        ).fetchone()
    return bool(row and row[0])


def test_a_command_and_a_runner_locking_the_same_jobs_do_not_deadlock(pg_url: str) -> None:
    """`pause b a` holds b while the runner's fire_all (due order a, b) holds a and waits for
    b: with each locking in its own order, one of them would wait for the other for ever."""
    command, runner = PostgresStore(pg_url), PostgresStore(pg_url)
    for name in ("a", "b"):
        command.add_job(_job(name))
    jobs = {j.name: j for j in runner.list_jobs(last_runs=False)}
    errors: list[BaseException] = []
    fired: list[Any] = []
    first = threading.Event()

    def pause(job: Job) -> Job:
        if not first.is_set():  # the command holds its first row: let the runner start
            first.set()
            assert command.conn is not None
            wait_for(lambda: _someone_waits_for_a_lock(pg_url, command.conn.info.backend_pid),
                     timeout=10)  # fmt: skip
        return job.copy_with(state="paused")

    def fire() -> None:
        first.wait(10)
        try:
            fired.append(runner.fire_all([Fire(jobs["a"], [], 2000.0, {}),
                                          Fire(jobs["b"], [], 2000.0, {})]))  # fmt: skip
        except StoreError as exc:
            errors.append(exc)

    t = threading.Thread(target=fire)
    t.start()
    try:
        command.update_jobs(["b", "a"], pause)
    except StoreError as exc:
        errors.append(exc)
    t.join(30)
    assert errors == []
    assert {j.name: j.state for j in command.list_jobs(last_runs=False)} == {
        "a": "paused",
        "b": "paused",
    }
    command.close()
    runner.close()
