"""Measurement 1, drain throughput: N runs of `true` all due at once, 4 workers.

- jobctl: N one-shot jobs (`--at T`) seeded while the runner idles; timed from T to the last
  run's recorded end (fire, claim, spawn, watch and record are all inside).
- task-spooler: `tsp -S 4`, the queue filled behind 4 blockers; timed from releasing the
  blockers to the last job's end (`tsp -w`), so only draining is timed. tsp keeps each queued
  job as a waiting client process and accepts about 1,000, so N drains in rounds of ROUND
  and the drain times are added up.
- `xargs -P4`: the spawn floor of this machine (fork+exec+wait, nothing recorded).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
from datetime import UTC, datetime

from bench import common, seed

ROUND = 900  # jobs queued behind the blockers per round (tsp's connection limit is ~1000)


def jobctl_drain(n: int, workers: int = 4) -> dict[str, float]:
    with common.temp_home() as home:
        env = common.clean_env(home)
        common.run(env, "status")  # creates the store
        with common.Runner(env, workers=workers) as runner:
            store = seed.open_store(home)
            at = datetime.fromtimestamp(int(time.time()) + 3, UTC).isoformat()
            jobs = [seed.make_job(f"d{i:05d}", ["true"], time.time(), at=at) for i in range(n)]
            t = jobs[0].next_run_at
            assert t is not None
            seed.add_jobs(store, jobs)
            store.close()
            cpu0 = common.cpu_seconds(runner.pid)
            os.kill(runner.pid, 10)  # SIGUSR1: what `jobctl add` does
            db = sqlite3.connect(home / "jobctl.db")

            def done() -> bool:
                # One run per job (one-shot, no retries): every run recorded and none open.
                # Cheap on purpose: the poll shares the 2 cores with the runner, and a check
                # per job (a NOT EXISTS probe each, 20,000 every 50 ms in the long drain)
                # took CPU from what it measures; the figures come from the runs' own times.
                recorded = db.execute("SELECT count(*) FROM runs").fetchone()[0]
                if recorded < n:
                    return False
                open_ = "SELECT count(*) FROM runs WHERE status IN ('queued', 'running')"
                return db.execute(open_).fetchone()[0] == 0

            common.wait_for(done, 120 + n / 20, "jobctl drain", step=0.1)
            cpu = common.cpu_seconds(runner.pid) - cpu0
            first, last, ok = db.execute(
                "SELECT min(started_at), max(finished_at), sum(status = 'succeeded') FROM runs"
            ).fetchone()
            db.close()
    assert ok == n, f"only {ok} of {n} runs succeeded"
    span = last / 1000 - t
    return {
        "runs": n,
        "seconds": span,
        "runs_per_s": n / span,
        "first_start_ms": first - t * 1000,
        "runner_cpu_ms_per_run": cpu * 1000 / n,
    }


def tsp_drain(n: int, slots: int = 4) -> dict[str, float] | None:
    tsp = shutil.which("tsp") or shutil.which("ts")
    if tsp is None:
        return None
    with tempfile.TemporaryDirectory(prefix="jobctl-bench-tsp-") as tmp:
        env = dict(
            os.environ,
            TS_SOCKET=f"{tmp}/socket",
            TMPDIR=tmp,
            TS_MAXFINISHED="100000",
            TS_MAXCONN="100000",
        )
        fifo = f"{tmp}/gate"
        os.mkfifo(fifo)

        def ts(*args: str) -> str:
            # the client that queues a job stays behind to run it, holding its stdout:
            # so read the id from a file, not a pipe
            with tempfile.TemporaryFile() as out:
                subprocess.run([tsp, *args], env=env, stdout=out, stderr=subprocess.DEVNULL,
                               stdin=subprocess.DEVNULL, check=True)  # fmt: skip
                out.seek(0)
                return out.read().decode().strip()

        span, finished, left = 0.0, 0, n
        try:
            ts("-S", str(slots))
            while left:  # tsp holds at most ~1000 clients (each queued job is a waiting
                batch = min(left, ROUND)  # process), so a big queue drains in rounds
                left -= batch
                for _ in range(slots):  # blockers: each holds a slot until the gate opens
                    ts("sh", "-c", f"read x < {fifo}")
                ids = [ts("true") for _ in range(batch)]
                time.sleep(0.3)  # the blockers are in their slots
                t0 = time.perf_counter()
                with open(fifo, "w"):  # open+close: EOF for every blocker at once
                    pass
                # the last job queued may end before one that started just before it: wait
                # for the last 2 x slots (each -w returns at once for a job already done)
                for job_id in ids[-2 * slots :][::-1]:
                    ts("-w", job_id)
                span += time.perf_counter() - t0
                finished += ts("-l").count(" finished ")
                ts("-C")  # clear the finished list for the next round
        finally:
            with contextlib.suppress(OSError):  # release blockers left by an error
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            subprocess.run([tsp, "-K"], env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, check=False)  # fmt: skip
    assert finished >= n + slots * -(-n // ROUND), f"tsp finished only {finished} of {n}"
    return {"runs": n, "seconds": span, "runs_per_s": n / span}


def xargs_drain(n: int, procs: int = 4) -> dict[str, float]:
    args = "\n".join(str(i) for i in range(n)).encode()
    t0 = time.perf_counter()
    subprocess.run(["xargs", f"-P{procs}", "-n1", "true"], input=args, check=True)
    span = time.perf_counter() - t0
    return {"runs": n, "seconds": span, "runs_per_s": n / span}


#: issue 13's budgets: the drain against task-spooler and against the spawn floor (medians
#: of the per-round ratios), the runner's CPU per run, and a drain 10x as long at the same cost
TSP_RATIO, XARGS_RATIO, CPU_MS_PER_RUN, LONG_COST_RATIO = 0.9, 0.6, 0.6, 1.1
LONG = 10  # the long drain is this many times n (full mode; quick: 5)


def measure(quick: bool, peers: set[str], n: int = 2000) -> common.Result:
    rounds = 1 if quick else 3  # interleaved: a slow moment of the machine hits every tool
    got: dict[str, list[dict[str, float]]] = {"jobctl": [], "tsp": [], "xargs": []}
    for _ in range(rounds):
        got["xargs"].append(xargs_drain(n))
        if "tsp" in peers:
            tsp_round = tsp_drain(n)
            if tsp_round:
                got["tsp"].append(tsp_round)
        got["jobctl"].append(jobctl_drain(n))
    # the long drain, beside a fresh one of n (the same moment of the machine)
    long_n = n * (5 if quick else LONG)
    short, long_ = jobctl_drain(n), jobctl_drain(long_n)

    def cells(key: str, cpu: bool = False) -> list[str]:
        runs = got[key]
        if not runs:
            return ["-", "-", "-", "-"]
        rates = [r["runs_per_s"] for r in runs]
        med = common.median(rates)
        each = " / ".join(f"{x:,.0f}" for x in rates)
        secs = common.fmt(common.median([r["seconds"] for r in runs]), 2)
        if not cpu:
            return [secs, common.fmt(med, 0), each, "-"]
        cpu_ms = common.median([r["runner_cpu_ms_per_run"] for r in runs])
        return [secs, common.fmt(med, 0), each, common.fmt(cpu_ms, 2)]

    def once(label: str, r: dict[str, float]) -> list[str]:
        return [label, f"{int(r['runs']):,}", common.fmt(r["seconds"], 2),
                common.fmt(r["runs_per_s"], 0), "-",
                common.fmt(r["runner_cpu_ms_per_run"], 2)]  # fmt: skip

    rows = [
        ["jobctl runner --workers 4", f"{n:,}", *cells("jobctl", cpu=True)],
        ["task-spooler (tsp -S 4)", f"{n:,}", *cells("tsp")],
        ["xargs -P4 (spawn floor)", f"{n:,}", *cells("xargs")],
        once("jobctl, then a drain 10x as long: short", short),
        once("jobctl, then a drain 10x as long: long", long_),
    ]
    cpu = common.median([r["runner_cpu_ms_per_run"] for r in got["jobctl"]])
    budgets = [common.Budget("runner CPU per run", cpu, CPU_MS_PER_RUN, "ms", False)]
    notes = []
    for peer, budget in (("tsp", TSP_RATIO), ("xargs", XARGS_RATIO)):
        if not got[peer]:
            notes.append(f"{peer} not available: no ratio")
            continue
        pairs = zip(got["jobctl"], got[peer], strict=True)
        ratios = [j["runs_per_s"] / t["runs_per_s"] for j, t in pairs]
        name = "task-spooler" if peer == "tsp" else "the xargs -P4 spawn floor"
        budgets.append(common.Budget(f"drain vs {name}", common.median(ratios), budget, "×",
                                     True))  # fmt: skip
        notes.append(f"ratio to {peer} per round: " + " / ".join(f"{r:.2f}" for r in ratios))
    growth = long_["runner_cpu_ms_per_run"] / short["runner_cpu_ms_per_run"]
    budgets.append(common.Budget(f"runner CPU per run, {long_n:,}-run drain / {n:,}-run drain",
                                 growth, LONG_COST_RATIO, "×", False))  # fmt: skip
    notes.append(f"long drain: {long_['runs_per_s']:,.0f} runs/s against "
                 f"{short['runs_per_s']:,.0f} for the short one beside it")  # fmt: skip
    return common.Result(
        key="drain",
        title="Drain throughput",
        method=(
            f"{n:,} runs of `true`, all due at once, 4 workers. jobctl: {n:,} one-shot jobs "
            "(`--at T`) written to the store while the runner idles, timed from T to the last "
            "run's recorded end, so firing, claiming, spawning, watching and recording every "
            "run are inside the figure (runner CPU is the runner process's user+system time "
            "per run). task-spooler: `tsp -S 4` with the queue filled behind 4 blockers, timed "
            "from releasing them to the end of the last job (`tsp -w`); tsp holds about 1,000 "
            f"queued jobs (each is a waiting client process), so it drains in rounds of {ROUND} "
            "and the drain times are added. `xargs -P4 -n1 true` is the fork+exec+wait floor of "
            "this machine, recording nothing. The three run one after the other, in "
            "1 round (quick) or 3 (full); the table gives medians and each round's figure. "
            "Then jobctl drains n runs and, at once after, 10 n (5 n quick) on a fresh store: "
            "the cost per run must not grow with the size of the queue and history."
        ),
        headers=["runner", "runs", "seconds", "runs/s (median)", "each round", "runner CPU ms/run"],
        rows=rows,
        budgets=budgets,
        notes=notes,
    )


if __name__ == "__main__":
    import sys

    print(common.render(measure("--quick" in sys.argv, {"tsp"})))
