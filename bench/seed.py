"""Filling a store fast for the benchmarks: jobs and runs written in bulk, one transaction.

Rows go through the store's own encoders (store/sqlite.py), so they are exactly what
`jobctl add` and the runner write; only the per-row transaction is skipped.
"""

from __future__ import annotations

import time
from pathlib import Path

from jobctl.config import Settings, ensure_home
from jobctl.jobdef import JobOptions, new_job
from jobctl.models import Job, Run
from jobctl.store.sqlite import JOB_COLUMNS, RUN_COLUMNS, SQLiteStore, _insert_sql, _row


def open_store(home: Path) -> SQLiteStore:
    ensure_home(home)
    return SQLiteStore(home / "jobctl.db")


def make_job(name: str, command: list[str], now: float, **opts: object) -> Job:
    return new_job(name, JobOptions(command=command, **opts), now, "UTC", "/")  # type: ignore[arg-type]


def add_jobs(store: SQLiteStore, jobs: list[Job]) -> None:
    sql = _insert_sql("jobs", JOB_COLUMNS)
    with store._tx() as conn:
        conn.executemany(sql, (_row(JOB_COLUMNS, j) for j in jobs))


def add_history(store: SQLiteStore, jobs: list[str], runs: int, until: float) -> None:
    """`runs` finished runs spread over `jobs`, one a minute per job back from `until`."""
    sql = _insert_sql("runs", RUN_COLUMNS)
    per = max(1, runs // len(jobs))

    def rows():
        n = 0
        for i in range(per):
            for j, name in enumerate(jobs):
                if n == runs:
                    return
                t = until - (per - i) * 60 - j * 0.001
                ok = (n % 10) != 0
                yield _row(
                    RUN_COLUMNS,
                    Run(
                        job=name,
                        scheduled_for=t,
                        created_at=t,
                        not_before=t,
                        started_at=t,
                        finished_at=t + 0.05,
                        status="succeeded" if ok else "failed",
                        exit_code=0 if ok else 1,
                        error=None if ok else "exit code 1",
                        host="bench",
                        pid=1000 + n % 30000,
                        owner="bench:1:1",
                        output_bytes=0,
                    ),
                )
                n += 1

    with store._tx() as conn:
        conn.executemany(sql, rows())


def settings(home: Path) -> Settings:
    return Settings(home=home, store_url=f"sqlite:///{home / 'jobctl.db'}")


def now() -> float:
    return time.time()
