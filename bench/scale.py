"""Measurement 5, scale: a store of 100,000 jobs and 1,000,000 finished runs (quick: 10x less).

- seeding time (bench.seed, bulk; reported, not a budget);
- runner start-up: from spawning `jobctl runner` to its row in the `runner` table (polled
  every 5 ms), and to the end of its start-up work (on-CPU time flat for 200 ms); its RSS at
  each point, after 5 s idle, and its peak (VmHWM);
- the next-due lookup in-process: `store.next_wakeup(now)` and `store.due_jobs(now)` (median
  of 200 calls) with the EXPLAIN QUERY PLAN of the very SQL they ran;
- `jobctl history --limit 20`, `jobctl history NAME --limit 20` and `jobctl status` wall time;
- bytes per run: growth of the database file (WAL checkpointed) per seeded run.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench import common, seed

FULL = (100_000, 1_000_000)
QUICK = (10_000, 100_000)
LOOKUPS = 200
RSS_LIMIT_MB = 200.0
LOOKUP_LIMIT_MS = 1.0
QUIET_WINDOW_S = 0.2  # start-up work is over once on-CPU time is flat this long
QUIET_CPU_S = 0.002


def schedules(n: int, now: float) -> list[str]:
    """Monthly cron jobs spread over minutes, hours and days 1-28, never today or tomorrow
    (UTC), so that none comes due while the runner is measured."""
    today = datetime.fromtimestamp(now, UTC)
    skip = {today.day, (today + timedelta(days=1)).day}
    days = [d for d in range(1, 29) if d not in skip]
    return [f"{i % 60} {(i // 60) % 24} {days[(i // 1440) % len(days)]} * *" for i in range(n)]


def db_bytes(store: object, path: Path) -> int:
    store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # type: ignore[attr-defined]
    return path.stat().st_size


def timed_calls(fn: object, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        out.append((time.perf_counter() - t0) * 1000)
    return out


def query_plans(store: object, calls: dict[str, object]) -> dict[str, list[str]]:
    """EXPLAIN QUERY PLAN of the statements each call really runs (caught by a trace
    callback, with their parameters bound), so the plan is that of the store's own SQL."""
    conn: sqlite3.Connection = store.conn  # type: ignore[attr-defined]
    plans: dict[str, list[str]] = {}
    for label, fn in calls.items():
        seen: list[str] = []
        conn.set_trace_callback(seen.append)
        try:
            fn()  # type: ignore[operator]
        finally:
            conn.set_trace_callback(None)
        lines = []
        for sql in seen:
            if not sql.lstrip().upper().startswith("SELECT"):
                continue  # BEGIN / COMMIT / PRAGMA
            lines.append(" ".join(sql.split()))
            for row in conn.execute("EXPLAIN QUERY PLAN " + sql):
                lines.append(f"  {row[3]}")
        plans[label] = lines
    return plans


def full_scans(plan: list[str]) -> list[str]:
    """Plan lines that read a table without an index."""
    return [
        line.strip()
        for line in plan
        if line.startswith("  ")
        and line.strip().startswith("SCAN")
        and "USING" not in line
        and "CONSTANT ROW" not in line
    ]


def command_ms(env: dict[str, str], args: list[str], reps: int) -> list[float]:
    argv = [common.jobctl_bin(), *args]
    out = []
    for i in range(reps + 1):  # the first is a warm-up
        t0 = time.perf_counter()
        done = subprocess.run(argv, env=env, capture_output=True, check=False)
        ms = (time.perf_counter() - t0) * 1000
        if done.returncode != 0:
            raise RuntimeError(f"jobctl {' '.join(args)}: {done.stderr.decode()[-300:]}")
        if i:
            out.append(ms)
    return out


def start_runner(env: dict[str, str], db: Path, log: Path) -> dict[str, float]:
    """Spawn a runner, time its start-up, watch it idle 5 s, stop it; figures in a dict."""
    figures: dict[str, float] = {}
    with open(log, "ab") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [common.jobctl_bin(), "runner", "--workers", "4", "--grace", "2s"],
            env=env,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
        try:
            ro = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=60)
            try:

                def registered() -> bool:
                    if proc.poll() is not None:
                        raise RuntimeError(f"runner exited {proc.returncode}: {log.read_text()}")
                    row = ro.execute("SELECT pid FROM runner ORDER BY since DESC").fetchone()
                    return bool(row and row[0] == proc.pid)

                common.wait_for(registered, 300, "runner registered", step=0.005)
            finally:
                ro.close()
            figures["registered_s"] = time.perf_counter() - t0
            figures["rss_registered"] = common.rss_mb(proc.pid)
            last_cpu, since = common.oncpu_seconds(proc.pid), time.perf_counter()
            deadline = since + 300
            while True:  # start-up work (recovery, @reboot scan, first loop) ends when quiet
                time.sleep(0.02)
                now, cpu = time.perf_counter(), common.oncpu_seconds(proc.pid)
                if cpu - last_cpu > QUIET_CPU_S:
                    last_cpu, since = cpu, now
                elif now - since >= QUIET_WINDOW_S:
                    break
                if now > deadline or proc.poll() is not None:
                    raise RuntimeError("runner never settled")
            figures["settled_s"] = since - t0
            figures["cpu_startup_s"] = common.cpu_seconds(proc.pid)
            figures["rss_settled"] = common.rss_mb(proc.pid)
            time.sleep(5)
            figures["rss_idle"] = common.rss_mb(proc.pid)
            figures["rss_peak"] = common.rss_mb(proc.pid, "VmHWM")
            if proc.poll() is not None:
                raise RuntimeError(f"runner exited {proc.returncode}: {log.read_text()}")
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
    return figures


def measure(quick: bool, peers: set[str]) -> common.Result:
    n_jobs, n_runs = QUICK if quick else FULL
    reps = 3 if quick else 7
    notes: list[str] = []
    with common.temp_home() as home:
        env = common.clean_env(home)
        common.run(env, "status")  # creates the home folder and the store
        db = home / "jobctl.db"
        store = seed.open_store(home)
        try:
            now = seed.now()
            t0 = time.perf_counter()
            names = [f"job{i:06d}" for i in range(n_jobs)]
            jobs = [
                seed.make_job(name, ["true"], now, cron=cron)
                for name, cron in zip(names, schedules(n_jobs, now), strict=True)
            ]
            t_make = time.perf_counter() - t0
            t0 = time.perf_counter()
            seed.add_jobs(store, jobs)
            t_jobs = time.perf_counter() - t0
            size_jobs = db_bytes(store, db)
            t0 = time.perf_counter()
            seed.add_history(store, names, n_runs, now)
            t_runs = time.perf_counter() - t0
            size_all = db_bytes(store, db)
            first_due = min(j.next_run_at or float("inf") for j in jobs)
            del jobs

            lookups = {
                "next_wakeup(now)": lambda: store.next_wakeup(now),
                "due_jobs(now)": lambda: store.due_jobs(now),
                "due_jobs(first fire)": lambda: store.due_jobs(first_due),
            }
            due_at_first = len(store.due_jobs(first_due))
            lookup_ms = {label: timed_calls(fn, LOOKUPS) for label, fn in lookups.items()}
            plans = query_plans(store, lookups)
            page_size = store.conn.execute("PRAGMA page_size").fetchone()[0]
        finally:
            store.close()

        runner = start_runner(env, db, home.parent / "runner.log")
        middle = names[n_jobs // 2]
        hist_all = command_ms(env, ["history", "--limit", "20"], reps)
        hist_one = command_ms(env, ["history", middle, "--limit", "20"], reps)
        status = command_ms(env, ["status"], 2)

    per_run = (size_all - size_jobs) / n_runs
    rows = [
        ["store", "seeding: build job objects (croniter)", common.fmt(t_make, 1), "s"],
        ["store", f"seeding: insert {n_jobs:,} jobs", common.fmt(t_jobs, 1), "s"],
        ["store", f"seeding: insert {n_runs:,} runs", common.fmt(t_runs, 1), "s"],
        ["store", "database with jobs only", common.fmt(size_jobs / 2**20, 1), "MiB"],
        ["store", "database with jobs and runs", common.fmt(size_all / 2**20, 1), "MiB"],
        ["store", "bytes per run (file growth / runs)", common.fmt(per_run, 0), "B"],
        ["runner", "spawn -> registered", common.fmt(runner["registered_s"] * 1000, 0), "ms"],
        [
            "runner",
            "spawn -> start-up work done (CPU quiet)",
            common.fmt(runner["settled_s"] * 1000, 0),
            "ms",
        ],
        [
            "runner",
            "CPU time used by start-up",
            common.fmt(runner["cpu_startup_s"] * 1000, 0),
            "ms",
        ],
        ["runner", "RSS when registered", common.fmt(runner["rss_registered"], 1), "MB"],
        ["runner", "RSS after start-up", common.fmt(runner["rss_settled"], 1), "MB"],
        ["runner", "RSS after 5 s idle", common.fmt(runner["rss_idle"], 1), "MB"],
        ["runner", "peak RSS (VmHWM)", common.fmt(runner["rss_peak"], 1), "MB"],
    ]
    for label, values in lookup_ms.items():
        rows.append(
            [
                "lookup",
                f"store.{label}, median / p90",
                f"{common.fmt(common.median(values), 3)} / {common.fmt(common.pct(values, 90), 3)}",
                "ms",
            ]
        )
    for label, values in (
        ("history --limit 20", hist_all),
        (f"history {middle} --limit 20", hist_one),
        ("status (no budget at this size; shown for scale)", status),
    ):
        rows.append(
            [
                "command",
                f"jobctl {label}, median / max",
                f"{common.fmt(common.median(values), 1)} / {common.fmt(max(values), 1)}",
                "ms",
            ]
        )
    rss = max(runner["rss_settled"], runner["rss_idle"])
    budgets = [
        common.Budget(
            f"runner RSS with {n_jobs:,} jobs (after start-up / 5 s idle, the higher)",
            rss,
            RSS_LIMIT_MB,
            "MB",
        ),
        common.Budget(
            f"runner peak RSS (VmHWM) with {n_jobs:,} jobs", runner["rss_peak"], RSS_LIMIT_MB, "MB"
        ),
        common.Budget(
            "next-due lookup: store.next_wakeup(now) median",
            common.median(lookup_ms["next_wakeup(now)"]),
            LOOKUP_LIMIT_MS,
            "ms",
        ),
        common.Budget(
            "next-due lookup: store.due_jobs(now) median",
            common.median(lookup_ms["due_jobs(now)"]),
            LOOKUP_LIMIT_MS,
            "ms",
        ),
    ]
    if quick:
        notes.append(
            f"QUICK MODE: reduced sizes ({n_jobs:,} jobs, {n_runs:,} runs instead of "
            f"{FULL[0]:,} and {FULL[1]:,}); the budgets are stated for the full sizes"
        )
    for label, plan in plans.items():
        scans = full_scans(plan)
        verdict = f"FULL SCAN: {'; '.join(scans)}" if scans else "served by an index, no table scan"
        notes.append(f"query plan of store.{label} ({verdict}):\n" + "\n".join(plan))
    notes.append(
        f"store.due_jobs(first fire) returns the {due_at_first} job(s) of the earliest fire; "
        f"due_jobs(now) returns none (nothing is due)"
    )
    notes.append(
        f"page size {page_size} B; bytes per run include the runs table and its indexes "
        f"(job+id, unique job+scheduled_for+attempt, partial ones), no job output"
    )
    method = (
        f"A store of {n_jobs:,} jobs (monthly cron jobs spread over minutes, hours and days, "
        f"none due today or tomorrow) and {n_runs:,} finished runs ({n_runs // n_jobs} per job, "
        f"10 % failed), seeded in bulk with bench.seed (one transaction each). Bytes per run: "
        f"growth of the database file between jobs-only and jobs+runs, each after "
        f"`PRAGMA wal_checkpoint(TRUNCATE)`. Next-due lookup: in-process on the store "
        f"(bench.seed.open_store), {LOOKUPS} calls each of `store.next_wakeup(now)` (what the "
        f"runner asks before each sleep), `store.due_jobs(now)` (nothing due) and "
        f"`store.due_jobs(t)` at the earliest fire; median and p90 in ms, and EXPLAIN QUERY "
        f"PLAN of the SQL they actually ran (caught with a trace callback). Runner start-up: "
        f"wall time from Popen of `jobctl runner --workers 4` to its row in the `runner` table "
        f"(polled every 5 ms with a read-only connection), and to the end of its start-up work "
        f"(recovery, @reboot scan, first loop: the first moment after which its on-CPU time, "
        f"summed over threads from /proc/PID/task/*/schedstat, stays flat for "
        f"{QUIET_WINDOW_S * 1000:.0f} ms); VmRSS at registration, at that moment and after 5 s "
        f"idle, and VmHWM. `jobctl history --limit 20` and `jobctl history NAME --limit 20` "
        f"(a job in the middle): wall time of the subprocess, 1 warm-up then {reps} runs; "
        f"`jobctl status` likewise, 1 warm-up then 2 runs (no budget at this size)."
    )
    return common.Result(
        key="scale",
        title=f"Scale: {n_jobs:,} jobs, {n_runs:,} runs",
        method=method,
        headers=["part", "measure", "value", "unit"],
        rows=rows,
        budgets=budgets,
        samples={
            **lookup_ms,
            "history_all_ms": hist_all,
            "history_job_ms": hist_one,
            "status_ms": status,
        },
        notes=notes,
    )


if __name__ == "__main__":
    print(common.render(measure("--quick" in sys.argv[1:], set())))
