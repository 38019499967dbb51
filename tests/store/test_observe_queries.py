"""The read-only views behind `jobctl stats` and `jobctl metrics` (Store.run_outcomes and
Store.run_tallies), on every store: what they count, and what they leave out (unfinished runs,
removed jobs, a reused name's old runs)."""

from __future__ import annotations

import pytest

from jobctl.models import Run
from jobctl.stats import RunOutcome
from tests.store.test_contract import job, open_same, store  # noqa: F401 - fixtures

DUR_BOUNDS = [1.0, 10.0, 60.0]
LATE_BOUNDS = [0.05, 1.0]


def _run(name: str, at: float, status: str, *, start: float | None = None,
         end: float | None = None, trigger: str = "schedule", not_before: float | None = None,
         dead: bool = False, code: int | None = None, attempt: int = 1) -> Run:  # fmt: skip
    return Run(job=name, scheduled_for=at, trigger=trigger, status=status, created_at=at,  # type: ignore[arg-type]
               not_before=at if not_before is None else not_before, started_at=start,
               finished_at=end, dead=dead, exit_code=code, attempt=attempt)  # fmt: skip


@pytest.fixture
def filled(store):  # noqa: F811 - the fixture imported above
    """Two jobs created at t=100 with runs of every kind, and runs of a removed job."""
    store.add_job(job("a").copy_with(created_at=100.0))
    store.add_job(job("b").copy_with(created_at=100.0))
    for r in [
        _run("a", 1000.0, "succeeded", start=1000.02, end=1000.52, code=0),  # 0.5 s, 20 ms late
        _run("a", 2000.0, "succeeded", start=2000.5, end=2020.5, code=0),  # 20 s, 0.5 s late
        _run("a", 3000.0, "failed", start=3002.0, end=3003.0, code=1, dead=True),  # 2 s late
        _run("a", 3000.0, "skipped", end=3000.0, attempt=2),
        _run("a", 4000.0, "succeeded", start=4100.0, end=4200.0, code=0, trigger="manual"),
        _run("a", 5000.0, "running", start=5000.0),
        _run("a", 6000.0, "queued", not_before=6000.0),
        _run("a", 7000.0, "queued", not_before=9000.0),  # not yet due at now=8000
        _run("b", 1500.0, "timed_out", start=1500.0, end=1530.0),
        _run("b", 50.0, "succeeded", start=50.0, end=51.0),  # before b was created: not b's
        _run("gone", 1000.0, "succeeded", start=1000.0, end=1001.0),  # no such job
    ]:
        store.add_run(r)
    return store


def test_outcomes_are_the_finished_runs_of_existing_jobs_oldest_first(filled) -> None:
    got = filled.run_outcomes()
    assert [(o.job, o.status) for o in got] == [
        ("a", "succeeded"), ("a", "succeeded"), ("a", "failed"), ("a", "skipped"),
        ("a", "succeeded"), ("b", "timed_out"),
    ]  # fmt: skip
    first = got[0]
    assert isinstance(first, RunOutcome)
    assert (first.created_at, first.started_at, first.finished_at, first.exit_code) == (
        1000.0, 1000.02, 1000.52, 0)  # fmt: skip
    assert got[3].started_at is None
    assert [o.id for o in got] == sorted(o.id for o in got)


def test_outcomes_by_job_and_since(filled) -> None:
    assert [o.status for o in filled.run_outcomes(job="b")] == ["timed_out"]
    assert [o.created_at for o in filled.run_outcomes(job="a", since=3000.0)] == [
        3000.0, 3000.0, 4000.0]  # fmt: skip
    assert filled.run_outcomes(job="gone") == []
    assert filled.run_outcomes(job="nope") == []


def test_tallies_count_by_job_and_status(filled) -> None:
    tallies = {(t.job, t.status): t for t in filled.run_tallies(DUR_BOUNDS, LATE_BOUNDS, 8000.0)}
    assert set(tallies) == {("a", "succeeded"), ("a", "failed"), ("a", "skipped"),
                            ("a", "running"), ("a", "queued"), ("b", "timed_out")}  # fmt: skip
    ok = tallies["a", "succeeded"]
    assert (ok.count, ok.dead, ok.last_finished_at) == (3, 0, 4200.0)
    # durations 0.5, 20, 100 s against le 1, 10, 60
    assert (ok.duration_buckets, ok.duration_count) == ([1, 1, 2], 3)
    assert ok.duration_sum == pytest.approx(120.5)
    # lateness only of schedule fires: 0.02 s and 0.5 s (the manual run is not late)
    assert (ok.lateness_buckets, ok.lateness_count) == ([1, 2], 2)
    assert ok.lateness_sum == pytest.approx(0.52)
    failed = tallies["a", "failed"]
    assert (failed.count, failed.dead, failed.lateness_buckets) == (1, 1, [0, 0])
    assert failed.lateness_sum == pytest.approx(2.0)
    skipped = tallies["a", "skipped"]
    assert (skipped.duration_count, skipped.lateness_count) == (0, 0)
    running = tallies["a", "running"]
    assert (running.count, running.duration_count, running.last_finished_at) == (1, 0, None)
    queued = tallies["a", "queued"]
    assert (queued.count, queued.due) == (2, 1)
    b = tallies["b", "timed_out"]
    assert (b.count, b.duration_buckets, b.duration_sum) == (1, [0, 0, 1], 30.0)


def test_tallies_of_an_empty_store(store) -> None:  # noqa: F811
    assert store.run_tallies(DUR_BOUNDS, LATE_BOUNDS, 0.0) == []
    assert store.run_outcomes() == []
