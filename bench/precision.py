"""Measurement 2, fire precision: how late a job's own process starts after its scheduled time.

- jobctl: 20 jobs with `--cron '* * * * * *'` running `date +%s.%N` (argv, no shell) under a
  runner with 32 workers, so every fire has a free worker; lateness = the time `date` printed
  (kept in the store's `output` table) - the run's `scheduled_for`, and, as a second row,
  the runner's own record (`started_at - scheduled_for`).
- APScheduler 3: the same 20 jobs (`CronTrigger(second="*")`, ThreadPoolExecutor(32)) in a
  child process, each running `date +%s.%N` through subprocess.run; the scheduled time is the
  `scheduled_run_time` of APScheduler's own EVENT_JOB_EXECUTED.
- cron (full mode only): Debian's vixie cron, 20 `* * * * *` lines in /etc/cron.d, three
  minute boundaries; lateness = the time `date` printed - the minute boundary.
- floor (full mode only): 20 processes gated like the runner's, released at the whole second
  by one thread: what starting 20 processes at once costs on this machine, with no scheduler.

The first WARMUP_S seconds of fires are discarded. Run alone: `python -m bench.precision`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

from bench import common, seed

JOBS = 20
WORKERS = 32
WARMUP_S = 2  # fires scheduled in the first seconds are discarded
CRON_MINUTES = 3  # minute boundaries measured for cron (x 20 lines)
CRON_TAB = Path("/etc/cron.d/jobctlbench")  # no dot: cron ignores names with dots
DATE = ["date", "+%s.%N"]
BUDGET_MS = 5.0  # issue 13: spread p99 (was 10 before the event-loop executor)
BURST_FLOOR_RATIO = 1.2  # issue 13: burst p99 within this much of the floor row's p99
FLOOR_S = 30  # seconds of the floor measurement (full mode only)


def _window(quick: bool) -> int:
    """Seconds of fires measured (after the warm-up)."""
    return 10 if quick else 60


def _early(tool: str, values: list[float]) -> list[str]:
    """A note (and a line on stderr) for every tool that started a fire before its time."""
    early = [v for v in values if v < 0]
    if not early:
        return []
    note = (
        f"EARLY START: {tool}: {len(early)} of {len(values)} fires ran before their scheduled "
        f"time (earliest {min(early):.3f} ms); they are kept in the figures"
    )
    print(f"bench.precision: {note}", file=sys.stderr)
    return [note]


class _Load:
    """CPU that the rest of the machine used over an interval: all busy time (/proc/stat) less
    this process, its reaped children and the process tree of `pid` (the tool measured).
    The suite shares the machine; a tail under load may be someone else's work."""

    def __init__(self, pid: int | None = None) -> None:
        self.pid = pid
        self.t, self.busy, self.ours = time.monotonic(), _busy_s(), self._ours()

    def _ours(self) -> float:
        t = os.times()
        mine = t.user + t.system + t.children_user + t.children_system
        if self.pid is not None:
            with open(f"/proc/{self.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            mine += sum(int(x) for x in fields[11:15]) / common.TICK  # utime stime cutime cstime
        return mine

    def note(self, tool: str) -> list[str]:
        """A note saying how busy the rest of the machine was (% of one core)."""
        others = (_busy_s() - self.busy) - (self._ours() - self.ours)
        pct = max(0.0, 100 * others / (time.monotonic() - self.t))
        if pct < 5:
            return []
        return [f"{tool}: other processes used {pct:.0f}% of a core meanwhile (the machine was "
                "not quiet; its tail may come from them)"]  # fmt: skip


def _busy_s() -> float:
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:8]]
    return (v[0] + v[1] + v[2] + v[5] + v[6]) / common.TICK  # user nice system irq softirq


# ---- jobctl -------------------------------------------------------------------------------


def _starts(spread: bool) -> list[float]:
    """First fire of each job: the same whole second for all (burst), or that second plus
    i x 50 ms (spread: the same 20 fires/s, evenly apart)."""
    t0 = math.ceil(time.time()) + 2
    return [t0 + (i * 1.0 / JOBS if spread else 0.0) for i in range(JOBS)]


def jobctl_lateness(
    seconds: int, spread: bool = False
) -> tuple[list[float], list[float], list[str]]:
    """(lateness by the job's own clock, by the runner's record, notes), ms per fire."""
    notes: list[str] = []
    with common.temp_home() as home:
        env = common.clean_env(home)
        common.run(env, "status")  # creates the store
        with common.Runner(env, workers=WORKERS) as runner:
            store = seed.open_store(home)
            now = time.time()
            if spread:
                jobs = [
                    seed.make_job(f"p{i:02d}", DATE, now, every="1s", keep_runs=100_000,
                                  start_at=datetime.fromtimestamp(at, UTC).isoformat())
                    for i, at in enumerate(_starts(True))
                ]  # fmt: skip
            else:
                jobs = [
                    seed.make_job(f"p{i:02d}", DATE, now, cron="* * * * * *", keep_runs=100_000)
                    for i in range(JOBS)
                ]
            t0 = min(j.next_run_at for j in jobs if j.next_run_at is not None)
            seed.add_jobs(store, jobs)
            store.close()
            load = _Load(runner.pid)
            os.kill(runner.pid, signal.SIGUSR1)  # what `jobctl add` does
            end = t0 + WARMUP_S + seconds  # fires scheduled before `end` are measured
            time.sleep(max(0.0, end + 0.5 - time.time()))  # the last ones have ended
            notes += load.note("jobctl")
        # the runner has stopped (SIGTERM): read what it recorded
        db = sqlite3.connect(home / "jobctl.db")
        try:
            lo, hi = round((t0 + WARMUP_S) * 1000), round(end * 1000)
            runs = db.execute(
                "SELECT id, job, status, scheduled_for, started_at FROM runs "
                "WHERE scheduled_for >= ? AND scheduled_for < ? ORDER BY scheduled_for, job",
                (lo, hi),
            ).fetchall()
            out: dict[int, bytes] = defaultdict(bytes)
            for run_id, data in db.execute(
                "SELECT o.run_id, o.data FROM output o JOIN runs r ON r.id = o.run_id "
                "WHERE r.scheduled_for >= ? AND r.scheduled_for < ? ORDER BY o.run_id, o.seq",
                (lo, hi),
            ):
                out[run_id] += data
        finally:
            db.close()
    own: list[float] = []
    recorded: list[float] = []
    odd: dict[str, int] = defaultdict(int)
    for run_id, _job, status, scheduled_ms, started_ms in runs:
        if status != "succeeded":
            odd[status] += 1
        if started_ms is not None:
            recorded.append(float(started_ms - scheduled_ms))
        try:
            own.append(float(out[run_id]) * 1000 - scheduled_ms)
        except ValueError:
            odd["no date output"] += 1
    expected = JOBS * seconds
    if len(runs) != expected:
        notes.append(f"jobctl: {len(runs)} runs recorded for {expected} expected fires")
    if odd:
        what = ", ".join(f"{n} {s}" for s, n in sorted(odd.items()))
        notes.append(f"jobctl: runs that did not simply succeed: {what}")
    return own, recorded, notes


# ---- APScheduler 3 ------------------------------------------------------------------------

_APS_CHILD = r"""
import json, subprocess, sys, threading, time
from apscheduler.events import (EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MAX_INSTANCES,
                                EVENT_JOB_MISSED)
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from datetime import datetime, timezone

jobs, workers, warmup, seconds, spread = (int(a) for a in sys.argv[1:6])
fires, problems, lock = [], [], threading.Lock()


def fire():
    done = subprocess.run(["date", "+%s.%N"], capture_output=True, check=True)
    return done.stdout.decode().strip()


def listen(ev):
    with lock:
        if ev.code == EVENT_JOB_EXECUTED:
            fires.append([ev.scheduled_run_time.timestamp(), ev.retval])
        else:
            problems.append(ev.code)


sched = BackgroundScheduler(executors={"default": ThreadPoolExecutor(workers)}, timezone="UTC")
sched.add_listener(listen, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED
                   | EVENT_JOB_MAX_INSTANCES)
t_first = int(time.time()) + 2
for i in range(jobs):
    if spread:  # 1 s apart per job, jobs 1/jobs s apart: the same rate, evenly spread
        start = datetime.fromtimestamp(t_first + i / jobs, timezone.utc)
        trigger = IntervalTrigger(seconds=1, start_date=start, timezone="UTC")
    else:
        trigger = CronTrigger(second="*", timezone="UTC")
    sched.add_job(fire, trigger, id=f"p{i:02d}")
sched.start()
t0 = min(j.next_run_time for j in sched.get_jobs()).timestamp()
time.sleep(max(0.0, t0 + warmup + seconds + 0.5 - time.time()))
sched.shutdown(wait=True)
with lock:
    json.dump({"t0": t0, "fires": fires, "problems": problems}, sys.stdout)
"""


def apscheduler_lateness(seconds: int, spread: bool = False) -> tuple[list[float], list[str]]:
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="jobctl-bench-aps-") as tmp:
        script = Path(tmp) / "aps_precision.py"
        script.write_text(_APS_CHILD)
        args = (JOBS, WORKERS, WARMUP_S, seconds, int(spread))
        argv = [sys.executable, str(script), *map(str, args)]
        load = _Load()
        # subprocess.run kills the child on a timeout or an interrupt
        done = subprocess.run(argv, capture_output=True, text=True, cwd=tmp, check=False,
                              timeout=WARMUP_S + seconds + 60)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"APScheduler child exited {done.returncode}: {done.stderr[-500:]}")
    notes += load.note("APScheduler 3")
    got = json.loads(done.stdout)
    t0 = got["t0"]
    lo, hi = t0 + WARMUP_S, t0 + WARMUP_S + seconds
    late = [(float(printed) - sched) * 1000 for sched, printed in got["fires"] if lo <= sched < hi]
    if len(late) != JOBS * seconds:
        notes.append(f"APScheduler 3: {len(late)} fires ran for {JOBS * seconds} expected")
    if got["problems"]:
        notes.append(f"APScheduler 3: {len(got['problems'])} missed/failed/refused fires")
    return late, notes


# ---- cron ---------------------------------------------------------------------------------


def _cron_running() -> bool:
    done = subprocess.run(["pgrep", "-x", "cron"], capture_output=True, check=False)
    return done.returncode == 0


def cron_lateness(minutes: int = CRON_MINUTES) -> tuple[list[float], list[str]]:
    """Lateness (ms) of `minutes` minute boundaries x JOBS lines of a /etc/cron.d file."""
    notes: list[str] = []
    cron_bin = shutil.which("cron") or "/usr/sbin/cron"
    logs = Path(tempfile.mkdtemp(prefix="jobctl-bench-cron-"))
    staging = CRON_TAB.with_name(".jobctlbench.tmp")  # a leading dot: cron ignores it
    ours: subprocess.Popen[bytes] | None = None
    try:
        lines = "".join(
            f"* * * * * root date +\\%s.\\%N >> {logs}/cron-{i:02d}.log\n" for i in range(JOBS)
        )
        staging.write_text(f"# jobctl bench/precision.py, removed when it ends\n{lines}")
        os.chmod(staging, 0o644)
        os.chown(staging, 0, 0)
        os.replace(staging, CRON_TAB)  # cron sees the whole file at once
        if _cron_running():
            notes.append("cron: used the cron daemon already running")
            pid = int(subprocess.run(["pgrep", "-xo", "cron"], capture_output=True, text=True,
                                     check=False).stdout.split()[0])  # fmt: skip
        else:
            ours = subprocess.Popen([cron_bin, "-f"], stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    start_new_session=True)  # fmt: skip
            time.sleep(0.5)
            if ours.poll() is not None:
                raise RuntimeError(f"cron -f exited {ours.returncode} at once")
            pid = ours.pid
        load = _Load(pid)

        def by_minute() -> dict[int, list[float]]:
            seen: dict[int, list[float]] = defaultdict(list)
            for log in logs.glob("cron-*.log"):
                for line in log.read_text().split("\n")[:-1]:  # complete lines only
                    t = float(line)
                    seen[math.floor(t / 60) * 60].append(t)
            return seen

        def complete() -> bool:
            return sum(len(v) == JOBS for v in by_minute().values()) >= minutes

        # cron may skip the first boundary after it starts or after the file appears
        try:
            common.wait_for(complete, (minutes + 2) * 60 + 10, "cron fires", step=1.0)
        except TimeoutError:
            notes.append(f"cron: fewer than {minutes} complete minute boundaries in time")
        seen = by_minute()
        notes += load.note("cron")
    finally:
        CRON_TAB.unlink(missing_ok=True)
        staging.unlink(missing_ok=True)
        if ours is not None and ours.poll() is None:
            ours.terminate()
            try:
                ours.wait(10)
            except subprocess.TimeoutExpired:
                ours.kill()
                ours.wait()
        shutil.rmtree(logs, ignore_errors=True)
    late: list[float] = []
    for minute in sorted(seen)[:minutes]:
        late += [(t - minute) * 1000 for t in seen[minute]]
    if len(late) != JOBS * minutes:
        notes.append(f"cron: {len(late)} fires ran for {JOBS * minutes} expected")
    return late, notes


# ---- the floor ----------------------------------------------------------------------------

_GATE = 'read _ || exit 125; exec </dev/null; exec "$@"'  # the runner's gate (executor.py)


def floor_lateness(seconds: int) -> list[float]:
    """The machine's floor for jobctl's way of starting a fire: JOBS processes gated exactly
    as the runner gates them (`/bin/sh` reading a pipe, then exec `date`), spawned well
    ahead and released at the whole second by ONE thread writing to every gate in a row."""
    late: list[float] = []
    for _ in range(seconds):
        at = math.ceil(time.time() + 0.3)
        procs: list[tuple[subprocess.Popen[bytes], int]] = []
        try:
            for _ in range(JOBS):
                r, w = os.pipe()
                try:
                    argv = ["/bin/sh", "-c", _GATE, "gate", *DATE]
                    p = subprocess.Popen(argv, stdin=r, stdout=subprocess.PIPE)
                except BaseException:
                    os.close(w)
                    raise
                finally:
                    os.close(r)
                procs.append((p, w))
            while (left := at - time.time()) > 0:
                time.sleep(left)
            for _, w in procs:
                os.write(w, b"\n")
            for p, _ in procs:
                assert p.stdout is not None
                late.append((float(p.stdout.read()) - at) * 1000)
        finally:
            for p, w in procs:
                os.close(w)  # EOF: a process not released yet exits without running
                if p.stdout is not None:
                    p.stdout.close()
                p.wait()
    return late


# ---- the measurement ----------------------------------------------------------------------


def _row(tool: str, values: list[float]) -> list[str]:
    return [
        tool,
        f"{len(values):,}",
        common.fmt(common.pct(values, 50)),
        common.fmt(common.pct(values, 99)),
        common.fmt(max(values) if values else None),
    ]


def _aps_version() -> str:
    try:
        import apscheduler

        return f"APScheduler {apscheduler.__version__}"
    except ImportError:
        return "APScheduler 3"


def measure(quick: bool, peers: set[str]) -> common.Result:
    seconds = _window(quick)
    notes: list[str] = []
    samples: dict[str, list[float]] = {}
    rows: list[list[str]] = []
    aps = "apscheduler" in peers
    if not aps:
        notes.append("APScheduler 3: not available, skipped")

    # spread: 20 fires/s, one every 50 ms (the budget); burst: 20 fires at the same instant
    budget_values: list[float] = []
    burst: list[float] = []
    floor: list[float] = []
    for spread in [True] if quick else [True, False]:
        how = "spread" if spread else "burst"
        own, recorded, more = jobctl_lateness(seconds, spread)
        notes += more + _early(f"jobctl {how} (job's own clock)", own)
        notes += _early(f"jobctl {how} (runner's record)", recorded)
        samples[f"jobctl, {how}"] = own
        rows.append(_row(f"{how}: jobctl, seen by the job", own))
        rows.append(_row(f"{how}: jobctl, runner's record", recorded))
        if spread:
            budget_values = own
        else:
            burst = own
        if aps:
            late, more = apscheduler_lateness(seconds, spread)
            notes += more + _early(f"APScheduler 3 {how}", late)
            samples[f"APScheduler 3, {how}"] = late
            rows.append(_row(f"{how}: {_aps_version()}", late))
        if not spread:
            floor = floor_lateness(FLOOR_S)
            rows.append(_row("burst: floor, 20 gates opened by one thread", floor))
            notes += _early("floor", floor)
    if quick:
        notes.append("quick mode: the spread pattern only, 10 s per tool; no burst, no cron")
    elif "cron" not in peers:
        notes.append("cron: not available, skipped")
    elif os.geteuid() != 0:
        notes.append("cron: skipped (writing /etc/cron.d needs root)")
    else:
        late, more = cron_lateness()
        notes += more + _early("cron", late)
        samples["cron"] = late
        rows.append(_row("minute: cron (Debian vixie cron)", late))

    fires = JOBS * seconds
    method = (
        f"{JOBS} jobs each firing every second, with more workers than jobs ({WORKERS}) so that "
        "no fire waits for a worker, in two patterns: *spread*, the jobs' fires 50 ms apart "
        "(20 fires/s evenly: `--every 1s` with `--start-at` offsets; APScheduler's "
        "IntervalTrigger with start dates alike), and *burst*, all 20 due at the same instant "
        "(`--cron '* * * * * *'`; APScheduler's `CronTrigger(second='*')`). The budget is "
        f"taken on the spread pattern; the first {WARMUP_S} s of fires are discarded and the "
        f"next {seconds} s are measured ({fires:,} fires per tool and pattern). "
        "Lateness = the moment the job's own process runs - its scheduled time; the job is "
        "`date +%s.%N` and its printed time is that moment. jobctl: jobs with "
        "argv `date +%s.%N` (no shell) under `jobctl runner "
        f"--workers {WORKERS}` in a temp home; the runner spawns each process ahead of time "
        "behind a gate (`/bin/sh` reading a pipe), so `date` runs one exec after the gate "
        "opens at the scheduled time; its output is read back from the store and compared "
        "with the run's `scheduled_for`. The second jobctl row is the runner's own record "
        "(`started_at`, in whole ms, taken right after it opens the gate: when the runner's "
        "thread waits for a core after that write, it can be later than the job's own start). "
        f"APScheduler 3: a BackgroundScheduler in a child process with a ThreadPoolExecutor("
        f"{WORKERS}) and {JOBS} jobs, each calling "
        "`subprocess.run(['date', '+%s.%N'])` (fork+exec from a worker thread); the scheduled "
        "time is the `scheduled_run_time` APScheduler reports in its EVENT_JOB_EXECUTED event. "
    )
    if "cron" in samples:
        method += (
            f"cron: Debian's vixie cron with {JOBS} `* * * * * root date +%s.%N >> file` lines "
            f"in /etc/cron.d over {CRON_MINUTES} minute boundaries ({JOBS * CRON_MINUTES} "
            "fires); cron runs each line through `/bin/sh -c`, so `date` is a child of that "
            "shell; lateness is measured from the minute boundary. "
        )
    if not quick:
        method += (
            f"The floor row is this machine's limit for that way of starting: {JOBS} processes "
            f"gated like the runner's (`/bin/sh` reading a pipe, then exec `date`), spawned "
            f"ahead and released at the whole second by one thread writing to every gate "
            f"({FLOOR_S} s, {JOBS * FLOOR_S} fires, no scheduler, no store). "
        )
    method += "Percentiles are nearest-rank; all times come from the same system clock."
    return common.Result(
        key="precision",
        title="Fire precision",
        method=method,
        headers=["tool", "fires", "p50 ms", "p99 ms", "max ms"],
        rows=rows,
        budgets=[
            common.Budget(
                f"fire lateness p99 at {JOBS} fires/s",
                measured=common.pct(budget_values, 99),
                limit=BUDGET_MS,
                unit="ms",
            )
        ]
        + (
            [
                common.Budget(
                    f"burst lateness p99 / the floor row's p99 ({JOBS} fires at one instant)",
                    measured=common.pct(burst, 99) / max(common.pct(floor, 99), 1e-3),
                    limit=BURST_FLOOR_RATIO,
                    unit="×",
                )
            ]
            if burst and floor
            else []
        ),
        samples=samples,
        notes=notes,
    )


if __name__ == "__main__":
    from bench import peers as peer_mod

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="10 s per tool, no cron")
    ap.add_argument("--skip", default="", help="peers to leave out, e.g. cron,apscheduler")
    args = ap.parse_args()
    wanted = set(peer_mod.ALL) - set(filter(None, args.skip.split(",")))
    have, _ = peer_mod.ensure(wanted, install=False)  # measure() notes the missing ones
    print(common.render(measure(args.quick, have)))
