"""Store.apply_jobs (jobctl apply/import): adds, updates and removals in one transaction, on
SQLite and PostgreSQL; the runner's scheduling state is never overwritten by a stale plan."""

from __future__ import annotations

import pytest

from jobctl.errors import ConflictError, NotFoundError
from jobctl.models import Run
from jobctl.store.base import RunFilter
from tests.store.test_contract import STORES, job, make_postgres, make_sqlite


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path):
    if request.param == "postgres":
        s = make_postgres(request.getfixturevalue("pg_url"))
    else:
        s = make_sqlite(tmp_path)
    yield s
    s.close()


def test_adds_updates_and_removes_in_one_go(store) -> None:
    store.add_job(job("keep"))
    store.add_job(job("change", description="old"))
    store.add_job(job("gone"))
    store.add_run(Run(job="gone", scheduled_for=5.0, created_at=5.0))
    out = store.apply_jobs(
        [job("new")], [job("change", description="new", next_run_at=1000.0)], ["gone", "absent"]
    )
    assert [(j.name, j.id is not None) for j in out] == [("new", True), ("change", True)]
    assert [j.name for j in store.list_jobs()] == ["change", "keep", "new"]
    assert store.get_job("change").description == "new"
    (run,) = store.list_runs(RunFilter(job="gone"))
    assert run.status == "cancelled" and run.error == "job removed"  # history stays


def test_all_or_nothing(store) -> None:
    store.add_job(job("taken", description="first"))
    store.add_job(job("change", description="old"))
    with pytest.raises(ConflictError, match="'taken' already exists"):
        store.apply_jobs([job("fresh"), job("taken")], [job("change", description="x")], [])
    with pytest.raises(NotFoundError, match="no job named 'missing'"):
        store.apply_jobs([job("fresh")], [job("missing")], ["taken"])
    assert [(j.name, j.description) for j in store.list_jobs()] == [
        ("change", "old"),
        ("taken", "first"),
    ]
    assert store.apply_jobs([], [], []) == []


def test_update_keeps_what_the_runner_fired_meanwhile(store) -> None:
    """A plan made before a fire must not undo it: same timing keeps the stored next fire,
    and fired_through is always the store's."""
    store.add_job(job("j", schedule="* * * * *", schedule_kind="cron", next_run_at=60.0))
    plan = store.get_job("j").copy_with(description="edited")
    store.fire(store.get_job("j"), [Run(job="j", scheduled_for=60.0, created_at=60.0)], 120.0)
    (out,) = store.apply_jobs([], [plan], [])
    got = store.get_job("j")
    assert got.description == "edited" == out.description
    assert (got.next_run_at, got.fired_through) == (120.0, 60.0)


def test_new_timing_takes_the_planned_next_fire_unless_already_fired(store) -> None:
    store.add_job(job("j", schedule="* * * * *", schedule_kind="cron", next_run_at=60.0))
    store.fire(store.get_job("j"), [Run(job="j", scheduled_for=60.0, created_at=60.0)], 120.0)
    later = store.get_job("j").copy_with(schedule="*/5 * * * *", next_run_at=300.0)
    store.apply_jobs([], [later], [])
    got = store.get_job("j")
    assert (got.schedule, got.next_run_at, got.fired_through) == ("*/5 * * * *", 300.0, 60.0)
    stale = got.copy_with(schedule="*/2 * * * *", next_run_at=60.0)  # at or before the mark
    with pytest.raises(ConflictError, match="fired while it was being changed"):
        store.apply_jobs([], [stale], [])
    assert store.get_job("j").schedule == "*/5 * * * *"
