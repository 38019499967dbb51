"""Run statistics per job (`jobctl stats`, the typical duration of `status --watch`).

Pure: it takes the finished runs as the store's narrow RunOutcome rows and returns plain
data; no store, no clock, no rendering. Durations are started-to-finished seconds of the runs
that ran; percentiles are nearest-rank (the smallest duration that at least p of the runs
do not exceed), so every figure shown is a duration some run really took.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from jobctl.models import FAILED_STATUSES

#: how many of a job's latest runs the sparkline shows
RECENT_RUNS = 20
#: a job's typical duration: the median of its last this many successful runs
TYPICAL_RUNS = 20
SPARKS = "▁▂▃▄▅▆▇█"


class RunOutcome(NamedTuple):
    """A finished run reduced to what `stats` needs (Store.run_outcomes); times in seconds.
    Here rather than beside the Store interface: a typing.NamedTuple costs 0.3 ms to make,
    which every command importing the store paid (issue 13)."""

    id: int
    job: str
    status: str
    created_at: float
    started_at: float | None
    finished_at: float | None
    exit_code: int | None


@dataclass
class Failure:
    """A job's latest failed run (failed, timed_out or abandoned)."""

    id: int
    status: str
    finished_at: float | None
    exit_code: int | None


@dataclass
class JobStats:
    """One job's figures over the runs asked for. `runs` counts finished runs except the
    skipped ones (those never ran); the success rate is succeeded / runs."""

    job: str
    runs: int = 0
    succeeded: int = 0
    failed: int = 0  # failed, timed_out and abandoned
    cancelled: int = 0
    skipped: int = 0
    success_rate: float | None = None
    p50_s: float | None = None
    p95_s: float | None = None
    max_s: float | None = None
    last_failure: Failure | None = None
    #: (duration_s, status) of the latest runs that ran, oldest first, at most RECENT_RUNS
    recent: list[tuple[float, str]] = field(default_factory=list)


def percentile(ordered: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile of ascending `ordered` (0 < p <= 1); None when empty."""
    if not ordered:
        return None
    return ordered[max(0, math.ceil(p * len(ordered)) - 1)]


def duration(o: RunOutcome) -> float | None:
    if o.started_at is None or o.finished_at is None:
        return None
    return round(max(0.0, o.finished_at - o.started_at), 3)


def job_stats(
    outcomes: Iterable[RunOutcome], jobs: Sequence[str], recent: int = RECENT_RUNS
) -> list[JobStats]:
    """Figures for each of `jobs` (in that order; a job without runs gets zeros) from
    `outcomes` in id order (oldest first), as Store.run_outcomes returns them. Outcomes of
    other jobs are ignored."""
    by_job: dict[str, list[RunOutcome]] = {name: [] for name in jobs}
    for o in outcomes:
        if o.job in by_job:
            by_job[o.job].append(o)
    return [_one(name, runs, recent) for name, runs in by_job.items()]


def _one(name: str, runs: list[RunOutcome], recent: int) -> JobStats:
    s = JobStats(job=name)
    ran: list[tuple[float, str]] = []
    for o in runs:
        if o.status == "skipped":
            s.skipped += 1
            continue
        s.runs += 1
        if o.status == "succeeded":
            s.succeeded += 1
        elif o.status == "cancelled":
            s.cancelled += 1
        elif o.status in FAILED_STATUSES:
            s.failed += 1
            if s.last_failure is None or o.id > s.last_failure.id:
                s.last_failure = Failure(o.id, o.status, o.finished_at, o.exit_code)
        d = duration(o)
        if d is not None:
            ran.append((d, o.status))
    if s.runs:
        s.success_rate = s.succeeded / s.runs
    ordered = sorted(d for d, _ in ran)
    s.p50_s, s.p95_s = percentile(ordered, 0.5), percentile(ordered, 0.95)
    s.max_s = ordered[-1] if ordered else None
    s.recent = ran[-recent:] if recent > 0 else []
    return s


def typical_duration(successful: Sequence[float]) -> float | None:
    """The median of the durations of a job's last successful runs (at most TYPICAL_RUNS of
    them, newest last); None without any."""
    last = sorted(successful[-TYPICAL_RUNS:])
    if not last:
        return None
    mid = len(last) // 2
    return last[mid] if len(last) % 2 else (last[mid - 1] + last[mid]) / 2


def sparkline(recent: Sequence[tuple[float, str]]) -> list[tuple[str, str]]:
    """One bar per run, its height proportional to its duration (0 to the longest shown),
    with the run's status for colouring: [(bar, status)]."""
    if not recent:
        return []
    top = max(d for d, _ in recent) or 1.0
    return [(SPARKS[min(len(SPARKS) - 1, int(d / top * len(SPARKS)))], st) for d, st in recent]
