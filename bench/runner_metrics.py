"""Runner measurements for issue #3 (not part of the test suite).

    .venv/bin/python bench/runner_metrics.py [--fires 70] [--idle-seconds 60] [--jobs 1000]

1. lateness: jobs firing each second with free workers; lateness = start - scheduled time,
   both as the runner recorded it (after spawn) and as the job process saw it (date +%s%N).
2. idle: a runner with N jobs that are not due for a long while: CPU % of one core and RSS.
3. nudge: `jobctl run --detach` against an idle runner: time until the run has started.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

BIN = str(Path(sys.executable).with_name("jobctl"))
TICK = os.sysconf("SC_CLK_TCK")


def jobctl(env: dict[str, str], *args: str) -> str:
    return subprocess.run([BIN, *args], env=env, check=True, capture_output=True, text=True).stdout


def start_runner(env: dict[str, str], home: Path) -> subprocess.Popen[bytes]:
    log = open(home.parent / "runner.log", "ab")  # noqa: SIM115
    p = subprocess.Popen([BIN, "runner", "--grace", "2s"], env=env, stdout=log, stderr=log)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        st = json.loads(jobctl(env, "status", "--json"))
        if st["runner"]["pid"] == p.pid:
            return p
        time.sleep(0.05)
    raise SystemExit("runner did not start")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def summary(values: list[float]) -> str:
    values = sorted(values)
    p99 = values[min(len(values) - 1, int(0.99 * len(values)))]
    return (f"n={len(values)} median={statistics.median(values):.2f}ms "
            f"p99={p99:.2f}ms max={values[-1]:.2f}ms")  # fmt: skip


def ts(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def lateness(base: Path, fires: int) -> None:
    home = base / "lateness" / "home"
    env = {**os.environ, "JOBCTL_HOME": str(home), "NO_COLOR": "1"}
    marks = base / "lateness" / "marks"
    jobs = 2
    for i in range(jobs):
        jobctl(env, "add", f"tick{i}", "--cron", "* * * * * *", "--shell", "--",
               f'echo "$JOBCTL_RUN_ID $(date +%s%N)" >> {marks}')  # fmt: skip
    runner = start_runner(env, home)
    up = time.time()
    time.sleep(fires / jobs + 1.5)
    runner.terminate()
    runner.wait()
    seen = {}
    for line in marks.read_text().splitlines():
        rid, ns = line.split()
        seen[int(rid)] = int(ns) / 1e9
    runs = [r for r in json.loads(jobctl(env, "history", "--limit", "100000", "--json"))
            if r["started_at"] and ts(r["scheduled_for"]) > up]  # fmt: skip
    recorded = [(ts(r["started_at"]) - ts(r["scheduled_for"])) * 1000 for r in runs]
    in_process = [(seen[r["id"]] - ts(r["scheduled_for"])) * 1000 for r in runs if r["id"] in seen]
    early = [x for x in recorded if x < 0]
    print(
        f"lateness, recorded start (after spawn): {summary(recorded)}; early starts: {len(early)}"
    )
    print(f"lateness, seen by the job (sh + date):  {summary(in_process)}")


def idle(base: Path, jobs: int, seconds: float) -> None:
    home = base / "idle" / "home"
    env = {**os.environ, "JOBCTL_HOME": str(home), "NO_COLOR": "1"}
    jobctl(env, "list")  # create the store
    import sqlite3

    from jobctl.models import Job
    from jobctl.store.sqlite import JOB_COLUMNS, _insert_sql, _row

    conn = sqlite3.connect(home / "jobctl.db")
    now = time.time()
    rows = [
        Job(name=f"idle{i}", command=["true"], schedule="365d", schedule_kind="every",
            anchor_at=now, next_run_at=now + 3e7, created_at=now, updated_at=now)
        for i in range(jobs)
    ]  # fmt: skip
    with conn:  # bulk insert: jobs due in a year, so the runner has nothing to do
        conn.executemany(_insert_sql("jobs", JOB_COLUMNS), [_row(JOB_COLUMNS, j) for j in rows])
    conn.close()
    runner = start_runner(env, home)
    time.sleep(2)
    c0, t0 = cpu_seconds(runner.pid), time.monotonic()
    time.sleep(seconds)
    c1, t1 = cpu_seconds(runner.pid), time.monotonic()
    rss = rss_mb(runner.pid)
    # nudge latency while idle
    jobctl(env, "add", "nudge", "--", "true")
    delays = []
    for _ in range(10):
        rid = jobctl(env, "run", "nudge", "--detach").strip()
        begin = time.time()
        while True:
            latest = json.loads(jobctl(env, "history", "nudge", "--limit", "1", "--json"))
            r = next(x for x in latest if str(x["id"]) == rid)
            if r["started_at"]:
                delays.append((ts(r["started_at"]) - ts(r["not_before"])) * 1000)
                break
            if time.time() - begin > 10:
                raise SystemExit("nudge: run did not start")
            time.sleep(0.02)
    runner.terminate()
    runner.wait()
    pct = 100 * (c1 - c0) / (t1 - t0)
    print(f"idle runner, {jobs} jobs, {t1 - t0:.0f}s: CPU {pct:.3f}% of a core "
          f"({c1 - c0:.2f}s), RSS {rss:.1f} MB")  # fmt: skip
    print(f"nudge (run --detach -> started, idle runner): {summary(delays)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--fires", type=int, default=70)
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--idle-seconds", type=float, default=60.0)
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="jobctl-bench-"))
    try:
        print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}")
        lateness(base, args.fires)
        idle(base, args.jobs, args.idle_seconds)
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
