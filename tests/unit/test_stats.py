"""jobctl.stats in tables: counts, success rate, nearest-rank percentiles, the last failure,
the recent runs of the sparkline, and the typical duration of `status --watch`."""

from __future__ import annotations

import pytest

from jobctl.stats import (
    Failure,
    JobStats,
    RunOutcome,
    job_stats,
    percentile,
    sparkline,
    typical_duration,
)

_ids = iter(range(1, 10_000))


def o(status: str, seconds: float | None = 1.0, job: str = "a", code: int | None = None,
      at: float = 1000.0) -> RunOutcome:  # fmt: skip
    """A finished run of `job` that took `seconds` (None: it never started)."""
    start = None if seconds is None else at
    end = at if seconds is None else at + seconds
    return RunOutcome(next(_ids), job, status, at, start, end, code)


@pytest.mark.parametrize(
    ("values", "p", "expected"),
    [
        pytest.param([], 0.5, None, id="empty"),
        pytest.param([7.0], 0.5, 7.0, id="one"),
        pytest.param([7.0], 0.95, 7.0, id="one_p95"),
        pytest.param([1.0, 2.0], 0.5, 1.0, id="two_median_is_lower"),
        pytest.param([1.0, 2.0, 3.0], 0.5, 2.0, id="three_median"),
        pytest.param([float(i) for i in range(1, 21)], 0.95, 19.0, id="twenty_p95"),
        pytest.param([float(i) for i in range(1, 21)], 0.5, 10.0, id="twenty_p50"),
        pytest.param([float(i) for i in range(1, 101)], 0.95, 95.0, id="hundred_p95"),
        pytest.param([float(i) for i in range(1, 101)], 1.0, 100.0, id="p100_is_max"),
    ],
)
def test_percentile(values: list[float], p: float, expected: float | None) -> None:
    assert percentile(values, p) == expected


def test_counts_and_rate() -> None:
    runs = [o("succeeded", 2.0), o("failed", 1.0, code=1), o("skipped", None),
            o("succeeded", 4.0), o("timed_out", 9.0), o("cancelled", 3.0),
            o("abandoned", None)]  # fmt: skip
    [s] = job_stats(runs, ["a"])
    assert (s.runs, s.succeeded, s.failed, s.cancelled, s.skipped) == (6, 2, 3, 1, 1)
    assert s.success_rate == pytest.approx(2 / 6)
    # durations of the runs that ran: 1, 2, 3, 4, 9
    assert (s.p50_s, s.p95_s, s.max_s) == (3.0, 9.0, 9.0)
    assert s.last_failure == Failure(runs[6].id, "abandoned", 1000.0, None)
    assert s.recent == [(2.0, "succeeded"), (1.0, "failed"), (4.0, "succeeded"),
                        (9.0, "timed_out"), (3.0, "cancelled")]  # fmt: skip


@pytest.mark.parametrize(
    ("runs", "expected"),
    [
        pytest.param([], JobStats("a"), id="no_runs"),
        pytest.param([o("skipped", None)], JobStats("a", skipped=1), id="only_skipped"),
        pytest.param(
            [o("succeeded", 0.25)],
            JobStats(
                "a",
                runs=1,
                succeeded=1,
                success_rate=1.0,
                p50_s=0.25,
                p95_s=0.25,
                max_s=0.25,
                recent=[(0.25, "succeeded")],
            ),
            id="one_success",
        ),
        pytest.param(
            [
                RunOutcome(7, "a", "failed", 50.0, 50.0, 51.0, 2),
                RunOutcome(9, "a", "failed", 60.0, 60.0, 65.0, 3),
            ],
            JobStats(
                "a",
                runs=2,
                failed=2,
                success_rate=0.0,
                p50_s=1.0,
                p95_s=5.0,
                max_s=5.0,
                last_failure=Failure(9, "failed", 65.0, 3),
                recent=[(1.0, "failed"), (5.0, "failed")],
            ),
            id="all_failed",
        ),
    ],
)
def test_table(runs: list[RunOutcome], expected: JobStats) -> None:
    assert job_stats(runs, ["a"]) == [expected]


def test_last_failure_is_the_latest_failed_run() -> None:
    runs = [o("failed", 1.0, code=1, at=10.0), o("timed_out", 2.0, at=20.0),
            o("succeeded", 1.0, at=30.0)]  # fmt: skip
    [s] = job_stats(runs, ["a"])
    assert s.last_failure == Failure(runs[1].id, "timed_out", 22.0, None)


def test_jobs_in_the_order_given_others_ignored() -> None:
    runs = [o("succeeded", job="b"), o("failed", job="zz"), o("succeeded", job="a")]
    got = job_stats(runs, ["b", "a", "c"])
    assert [(s.job, s.runs) for s in got] == [("b", 1), ("a", 1), ("c", 0)]


def test_recent_keeps_the_latest_runs_oldest_first() -> None:
    runs = [o("succeeded", float(i)) for i in range(1, 31)]
    [s] = job_stats(runs, ["a"], recent=5)
    assert [d for d, _ in s.recent] == [26.0, 27.0, 28.0, 29.0, 30.0]
    [s] = job_stats(runs, ["a"], recent=0)
    assert s.recent == []


def test_a_negative_duration_counts_as_zero() -> None:
    # clocks stepped back between start and end: no negative durations shown
    [s] = job_stats([RunOutcome(1, "a", "succeeded", 5.0, 10.0, 9.0, 0)], ["a"])
    assert s.max_s == 0.0


@pytest.mark.parametrize(
    ("durations", "expected"),
    [
        pytest.param([], None, id="none"),
        pytest.param([3.0], 3.0, id="one"),
        pytest.param([1.0, 3.0], 2.0, id="two_mean_of_middle"),
        pytest.param([5.0, 1.0, 3.0], 3.0, id="three_unsorted"),
        # only the last 20: twenty 10s after thirty 1000s
        pytest.param([1000.0] * 30 + [10.0] * 20, 10.0, id="last_twenty_only"),
    ],
)
def test_typical_duration(durations: list[float], expected: float | None) -> None:
    assert typical_duration(durations) == expected


@pytest.mark.parametrize(
    ("recent", "expected"),
    [
        pytest.param([], [], id="empty"),
        pytest.param([(0.0, "succeeded")], [("▁", "succeeded")], id="zero_only"),
        pytest.param(
            [(1.0, "succeeded"), (8.0, "failed"), (4.0, "succeeded"), (0.0, "cancelled")],
            [("▂", "succeeded"), ("█", "failed"), ("▅", "succeeded"), ("▁", "cancelled")],
            id="scaled_from_zero_to_longest",
        ),
    ],
)
def test_sparkline(recent: list[tuple[float, str]], expected: list[tuple[str, str]]) -> None:
    assert sparkline(recent) == expected
