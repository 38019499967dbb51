"""Measurement 4, idle cost: a runner with 10,000 jobs that are not due for a long while.

CPU % of one core from /proc/PID/stat (utime+stime, clock ticks) over 60 s (quick: 10 s),
cross-checked with the nanosecond on-CPU time of every thread (/proc/PID/task/*/schedstat),
plus wake-ups (voluntary context switches of all threads) and RSS at the end.
"""

from __future__ import annotations

import os
import sys
import time

from bench import common, seed

JOBS = 10_000
SETTLE_S = 3.0
CPU_LIMIT_PCT = 0.2
RSS_LIMIT_MB = 80.0


def _threads(pid: int) -> list[str]:
    try:
        return os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []


def wakeups(pid: int) -> int:
    """Voluntary context switches of the live threads: how often they went to sleep."""
    total = 0
    for tid in _threads(pid):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches:"):
                        total += int(line.split()[1])
        except (OSError, ValueError):
            continue
    return total


def measure(quick: bool, peers: set[str]) -> common.Result:
    seconds = 10.0 if quick else 60.0
    with common.temp_home() as home:
        env = common.clean_env(home)
        common.run(env, "status")  # creates the store
        store = seed.open_store(home)
        try:
            now = seed.now()
            jobs = [
                seed.make_job(f"idle{i:05d}", ["true"], now, cron="0 0 1 1 *") for i in range(JOBS)
            ]
            seed.add_jobs(store, jobs)
            store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            store.close()
        next_fire = min(j.next_run_at or 0 for j in jobs)
        assert next_fire - now > seconds + 600, "the jobs must not come due during the test"
        with common.Runner(env) as runner:
            time.sleep(SETTLE_S)
            pid = runner.pid
            threads = len(_threads(pid))
            c0, n0, w0, t0 = (
                common.cpu_seconds(pid),
                common.oncpu_seconds(pid),
                wakeups(pid),
                time.monotonic(),
            )
            time.sleep(seconds)
            c1, n1, w1, t1 = (
                common.cpu_seconds(pid),
                common.oncpu_seconds(pid),
                wakeups(pid),
                time.monotonic(),
            )
            rss = common.rss_mb(pid)
            alive = runner.proc.poll() is None
            log = runner.log_path
        fired = log.read_text(errors="replace").count(" fire ") if log.exists() else 0
    assert alive, "the runner exited during the idle window"
    span = t1 - t0
    cpu_pct = 100 * (c1 - c0) / span
    oncpu_pct = 100 * (n1 - n0) / span
    rows = [
        [
            "jobctl runner",
            f"{JOBS:,}",
            common.fmt(span, 1),
            common.fmt(cpu_pct, 3),
            common.fmt(oncpu_pct, 3),
            common.fmt((c1 - c0) * 1000, 0),
            common.fmt((w1 - w0) / span, 2),
            str(threads),
            common.fmt(rss, 1),
        ],
    ]
    notes = [
        f"{TICK_NOTE} ({1000 / common.TICK:.0f} ms per tick: one tick over {span:.0f} s is "
        f"{100 / common.TICK / span:.3f} % of a core)",
        f"next fire of any job: {time.strftime('%Y-%m-%d %H:%M', time.gmtime(next_fire))} UTC; "
        f"fire lines in the runner's log: {fired}",
    ]
    if quick:
        notes.append(f"quick mode: {seconds:.0f} s window instead of 60 s")
    method = (
        f"A `jobctl runner` (4 workers) on a store of {JOBS:,} jobs (cron `0 0 1 1 *`, written "
        f"in bulk with bench.seed, so none is due for weeks), started and waited on until it "
        f"has registered, then left {SETTLE_S:.0f} s to settle. Over the next {seconds:.0f} s: "
        f"its CPU time from /proc/PID/stat (utime+stime, all threads, clock ticks) and, as a "
        f"finer cross-check, the sum of /proc/PID/task/*/schedstat on-CPU nanoseconds, both "
        f"as % of one core of wall time; its wake-ups per second (voluntary context switches "
        f"of all threads); its thread count; VmRSS at the end."
    )
    return common.Result(
        key="idle",
        title="Idle cost",
        method=method,
        headers=[
            "process",
            "jobs",
            "window s",
            "CPU % (ticks)",
            "CPU % (schedstat)",
            "CPU ms",
            "wake-ups/s",
            "threads",
            "RSS MB",
        ],
        rows=rows,
        budgets=[
            common.Budget("idle runner CPU, % of one core", cpu_pct, CPU_LIMIT_PCT, "%"),
            common.Budget("idle runner RSS", rss, RSS_LIMIT_MB, "MB"),
        ],
        samples={"cpu_pct": [cpu_pct], "oncpu_pct": [oncpu_pct], "rss_mb": [rss]},
        notes=notes,
    )


TICK_NOTE = "the budget uses the clock-tick figure from /proc/PID/stat"


if __name__ == "__main__":
    print(common.render(measure("--quick" in sys.argv[1:], set())))
