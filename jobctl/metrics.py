"""Prometheus metrics of a store, read at scrape time (`jobctl metrics`, `runner --metrics`).

A prometheus_client custom Collector: each scrape (or textfile write) asks the store a few
aggregate queries (Store.run_tallies, the jobs, the runners), so the runner's hot path
records nothing extra. The exposition format is prometheus_client's, never written here.

The figures describe what the store holds: each job keeps its last `keep_runs` runs, so the
run counts and the two histograms are gauges over the kept runs (OpenMetrics gauge histograms),
not counters since some start; use them as they are (e.g. histogram_quantile over the
buckets), not through rate(). The job's name is the label `job_name`: Prometheus gives every
scraped series its own `job` label (the scrape job), which a label `job` would clash with.
Imported only by the commands that expose metrics (prometheus_client is not a start-up cost).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client.core import GaugeHistogramMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from jobctl.errors import JobctlError

if TYPE_CHECKING:
    from jobctl.store import Store

#: run durations span milliseconds to a day: le bounds in seconds
DURATION_BUCKETS: tuple[float, ...] = (
    0.1,
    0.5,
    1,
    5,
    10,
    30,
    60,
    300,
    600,
    1800,
    3600,
    7200,
    21600,
    86400,
)
#: how late a schedule's fire started after its due time (SPEC 7: within 50 ms when idle)
LATENESS_BUCKETS: tuple[float, ...] = (
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    300,
)


@dataclass
class _Histogram:
    """Cumulative bucket counts, count and sum of one job's runs, summed over statuses."""

    buckets: list[int]
    count: int = 0
    total: float = 0.0

    def add(self, buckets: Sequence[int], count: int, total: float) -> None:
        self.buckets = [a + b for a, b in zip(self.buckets, buckets, strict=True)]
        self.count += count
        self.total += total

    def samples(self, bounds: Sequence[float]) -> list[tuple[str, float]]:
        pairs = [(repr(float(b)), float(c)) for b, c in zip(bounds, self.buckets, strict=True)]
        return [*pairs, ("+Inf", float(self.count))]


class StoreCollector(Collector):
    """Reads the store at each collect(). `open_store` gives the store to read (opened on the
    first scrape and kept; scrapes are serialized). A store that cannot be read yields
    `jobctl_store_up 0` and nothing else, and `error` says why."""

    def __init__(self, open_store: Callable[[], Store]) -> None:
        self._open = open_store
        self._store: Store | None = None
        self._lock = threading.Lock()
        self.error: str | None = None

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            try:
                if self._store is None:
                    self._store = self._open()
                families = self._families(self._store)
                self.error = None
            except JobctlError as exc:
                self.error = str(exc)
                families = []
            up = GaugeMetricFamily("jobctl_store_up", "1 if the store could be read, else 0.")
            up.add_metric([], 0.0 if self.error else 1.0)
            return iter([up, *families])

    def _families(self, s: Store) -> list[Metric]:
        from jobctl.status import runners_alive

        now = s.now()
        tallies = s.run_tallies(DURATION_BUCKETS, LATENESS_BUCKETS, now)
        jobs = s.list_jobs(last_runs=False)
        registered, alive, _ = runners_alive(s)

        job = ["job_name"]
        runs = GaugeMetricFamily(
            "jobctl_runs", "Runs kept in the store, by job and status.", labels=[*job, "status"]
        )
        dead = GaugeMetricFamily("jobctl_dead_runs", "Runs in the dead-letter list.", labels=job)
        last_ok = GaugeMetricFamily(
            "jobctl_job_last_success_timestamp_seconds",
            "When the job's latest successful run finished (Unix time).",
            labels=job,
        )
        durations = GaugeHistogramMetricFamily(
            "jobctl_run_duration_seconds",
            "Durations of the finished runs kept in the store.",
            labels=job,
        )
        lateness = GaugeHistogramMetricFamily(
            "jobctl_run_lateness_seconds",
            "How late the kept runs of schedule fires started after their due time (jitter "
            "excluded).",
            labels=job,
        )
        per_job: dict[str, tuple[_Histogram, _Histogram]] = {}
        dead_by_job: dict[str, int] = {}
        queue_depth = 0
        for t in tallies:
            runs.add_metric([t.job, t.status], t.count)
            d, late = per_job.setdefault(
                t.job,
                (_Histogram([0] * len(DURATION_BUCKETS)), _Histogram([0] * len(LATENESS_BUCKETS))),
            )
            d.add(t.duration_buckets, t.duration_count, t.duration_sum)
            late.add(t.lateness_buckets, t.lateness_count, t.lateness_sum)
            dead_by_job[t.job] = dead_by_job.get(t.job, 0) + t.dead
            if t.status == "succeeded" and t.last_finished_at is not None:
                last_ok.add_metric([t.job], t.last_finished_at)
            if t.status == "queued":
                queue_depth += t.due
        for name in sorted(per_job):
            d, late = per_job[name]
            dead.add_metric([name], dead_by_job[name])
            durations.add_metric([name], d.samples(DURATION_BUCKETS), d.total)
            lateness.add_metric([name], late.samples(LATENESS_BUCKETS), late.total)

        queue = GaugeMetricFamily(
            "jobctl_queue_depth",
            "Queued runs whose time has come, waiting for a worker, a mutex or their turn.",
            value=queue_depth,
        )
        nxt = GaugeMetricFamily(
            "jobctl_job_next_fire_timestamp_seconds",
            "The next scheduled fire of each active job (Unix time).",
            labels=job,
        )
        for j in jobs:
            if j.state == "active" and j.next_run_at is not None:
                nxt.add_metric([j.name], j.next_run_at)
        who = ["host", "pid"]
        up = GaugeMetricFamily(
            "jobctl_runner_up",
            "1 for each registered runner that is alive (its process; on a shared store, its "
            "lease), else 0.",
            labels=who,
        )
        beat = GaugeMetricFamily(
            "jobctl_runner_heartbeat_timestamp_seconds",
            "The latest heartbeat of each registered runner (Unix time).",
            labels=who,
        )
        for r in registered:
            up.add_metric([r.host, str(r.pid)], 1.0 if alive[r.owner] else 0.0)
            beat.add_metric([r.host, str(r.pid)], r.heartbeat_at)
        return [runs, dead, durations, lateness, queue, last_ok, nxt, up, beat]


def make_registry(
    open_store: Callable[[], Store], process: bool = False
) -> tuple[CollectorRegistry, StoreCollector]:
    """A registry of the store's metrics; with `process`, also this process's own (CPU,
    memory, open files: the runner's, not a short-lived `jobctl metrics`)."""
    reg = CollectorRegistry(auto_describe=False)
    collector = StoreCollector(open_store)
    reg.register(collector)
    if process:
        from prometheus_client import ProcessCollector

        ProcessCollector(registry=reg)
    return reg, collector
