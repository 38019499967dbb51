"""The fleet demo (issue 9): three runners on one PostgreSQL database, with faults, every fire
checked against the side effects its job left outside the database.

    python -m bench.fleet_demo                # 120 s, --lease 15s
    python -m bench.fleet_demo --quick        # 60 s, --lease 6s
    python -m bench.fleet_demo --seconds 300 --lease 10s

Three runners play three machines (JOBCTL_HOST h1, h2, h3) on a fresh schema of
JOBCTL_BENCH_PG (default postgresql://postgres@127.0.0.1:5432/test); h2 reaches the database
through tests/proxy.py's Proxy. One job fires every second (`--cron '* * * * * *'`,
`--overlap allow --retries 1 --retry-delay 0s`); its command appends
`$JOBCTL_RUN_KEY $JOBCTL_ATTEMPT $JOBCTL_HOST $(date +%s.%N) start` to a file, sleeps
`--job-seconds` (default 0.6 x the lease, so that faults catch runs in flight, a killed
runner's orphans outlive it, and a cut-off runner has jobs to fence), and appends an `end` line
(or a `term` line if it is terminated). Faults, at fractions of --seconds (120 s: 30, 50, 60,
90): kill -9 h1 at 1/4, start it again 1/6 later; partition h2 at 1/2 for 1/4 (longer than the
lease), then restore it (--quick: 60 s, kill at 15 s, back at 25 s, partition 30-50 s); each
fault waits (at most a lease) for its runner to have a run in flight, so that there is work
to take over. Then the job is paused, the runs still going are waited for, the runners are
stopped, and the demo prints what the file and the history (kept as history.json) say:

- fires recorded (distinct scheduled times in the history), runs, executions (start lines);
- duplicates: a run key + attempt executed more than once (must be 0);
- fires with two attempts running at once (by the start/end times in the file; must be 0);
- fires lost: whole seconds of the window with no run at all (not even a skipped or abandoned
  one) while at least one runner was healthy (must be 0);
- runs not in a final state at the end; takeovers: how long after each fault the other
  runners recorded the runs of the lost runner abandoned and started their retries (a warning
  when later than lease x 4/3 + 2 s), and fires started more than 1 s late (a warning).

Also counted: executions that began more than 50 ms before their fire's scheduled time (the
bound of tests/e2e/test_fleet.py). Exits 1 if there were duplicates or lost fires, and also
for overlapping attempts or early starts (the fleet's other promises). The runners' logs and
the side-effect file stay in the folder printed at the end.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import common, fleet

HOSTS = ("h1", "h2", "h3")
EARLY_S = 0.05  # a start this much before its time is early (tests/e2e/test_fleet.py's bound)


@dataclass
class Fault:
    at: float  # seconds from the start of the demo
    what: str
    done_at: float | None = None  # wall clock when it was carried out


@dataclass(eq=False)
class Execution:
    key: str
    attempt: int
    host: str
    start: float
    end: float | None = None
    how: str = ""  # "end" or "term" (terminated), "" when no end line was written


@dataclass
class Demo:
    seconds: float
    lease: str
    lease_s: float
    job_s: float
    workers: int
    kill_at: float
    restart_after: float
    cut_at: float
    cut_for: float
    folder: Path
    log: list[str] = field(default_factory=list)

    def say(self, t0: float, text: str) -> None:
        stamp = datetime.now(UTC).strftime("%H:%M:%S.%f")[:-3]
        line = f"[{time.time() - t0:6.1f} s] {stamp}Z {text}"
        self.log.append(line)
        print(line, flush=True)


def job_command(out: Path, job_s: float) -> str:
    me = '"$JOBCTL_RUN_KEY $JOBCTL_ATTEMPT $JOBCTL_HOST'
    return (
        f's=$(date +%s.%N); echo {me} $s start" >> {out}; '
        f"trap 'echo {me} '$s' $(date +%s.%N) term\" >> {out}; exit 143' TERM; "
        f'sleep {job_s:g} & wait; echo {me} $s $(date +%s.%N) end" >> {out}'
    )


def read_effects(path: Path) -> list[Execution]:
    """One Execution per start line, with its end or term line if there is one."""
    runs: dict[tuple[str, int, str, str], Execution] = {}
    order: list[Execution] = []
    if not path.exists():
        return order
    for line in path.read_text().splitlines():
        f = line.split()
        if len(f) == 5 and f[4] == "start":
            e = Execution(f[0], int(f[1]), f[2], float(f[3]))
            order.append(e)
            runs.setdefault((f[0], f[1], f[2], f[3]), e)
        elif len(f) == 6 and f[5] in ("end", "term"):
            e2 = runs.get((f[0], f[1], f[2], f[3]))
            if e2 is not None:
                e2.end, e2.how = float(f[4]), f[5]
    return order


def _ts(value: str | None) -> float | None:
    return None if value is None else datetime.fromisoformat(value).timestamp()


def _log_time(line: str) -> float | None:
    """The time of a runner log line (`YYYY-MM-DD HH:MM:SS.mmm event text`, TZ=UTC)."""
    try:
        return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


def first_log(path: Path, needle: str, after: float) -> float | None:
    if not path.exists():
        return None
    for line in path.read_text(errors="replace").splitlines():
        t = _log_time(line)
        if t is not None and t >= after and needle in line:
            return t
    return None


def run_demo(d: Demo, pg: fleet.Pg) -> int:
    from tests.proxy import Proxy

    out = d.folder / "effects.txt"
    with pg.schema() as schema:
        url = pg.url_for(schema)
        fleet.migrate(url)
        env = common.clean_env(d.folder / "home")
        env["JOBCTL_STORE"] = url
        proxy = Proxy(*pg.target())
        via = pg.url_for(schema, proxy.port)
        runners: dict[str, fleet.FleetRunner] = {}
        gone: list[fleet.FleetRunner] = []

        def start(host: str) -> fleet.FleetRunner:
            r = fleet.FleetRunner(env, host, via if host == "h2" else url,
                                  d.folder / f"{host}.log", workers=d.workers,
                                  lease=d.lease, check=url)  # fmt: skip
            runners[host] = r
            return r

        try:
            for host in HOSTS:
                start(host)
            for r in runners.values():
                r.wait_registered()
            added = time.time()
            job = json.loads(common.run(
                env, "add", "tick", "--cron", "* * * * * *", "--overlap", "allow", "--retries",
                "1", "--retry-delay", "0s", "--keep-runs", "1000000", "--json", "--shell", "--",
                job_command(out, d.job_s)))  # fmt: skip
            t0 = time.time()
            first_fire = _ts(job["next_run_at"]) or float(int(t0) + 1)  # its first fire
            d.say(
                t0,
                f"job 'tick' added; runners h1, h2 (through a proxy), h3 up, --lease {d.lease}, "
                f"{d.workers} workers each; each run sleeps {d.job_s:g} s",
            )
            healthy: dict[str, list[list[float]]] = {h: [[added, float("inf")]] for h in HOSTS}
            faults = [
                Fault(d.kill_at, "kill"),
                Fault(d.kill_at + d.restart_after, "restart"),
                Fault(d.cut_at, "partition"),
                Fault(d.cut_at + d.cut_for, "restore"),
            ]
            then = {"kill": faults[1], "partition": faults[3]}  # timed from the fault's moment
            pending = list(faults)
            while pending:
                fault = min(pending, key=lambda f: f.at)
                pending.remove(fault)
                _sleep_until(t0 + fault.at, t0, d, out)
                if fault.what in then:  # so that there is work to take over
                    _busy(pg, url, "h1" if fault.what == "kill" else "h2", d, t0)
                fault.done_at = time.time()
                if fault.what in then:
                    then[fault.what].at += fault.done_at - t0 - fault.at
                if fault.what == "kill":
                    victim = runners["h1"]
                    victim.kill()
                    gone.append(victim)
                    healthy["h1"][-1][1] = fault.done_at
                    d.say(t0, f"FAULT kill -9 h1 (pid {victim.pid})")
                elif fault.what == "restart":
                    r = start("h1")
                    r.wait_registered()
                    healthy["h1"].append([time.time(), float("inf")])
                    d.say(t0, f"h1 started again (pid {r.pid}), registered")
                elif fault.what == "partition":
                    proxy.partition()
                    healthy["h2"][-1][1] = fault.done_at
                    d.say(t0, f"FAULT partition h2 from the database for {d.cut_for:g} s")
                else:
                    proxy.restore()
                    healthy["h2"].append([fault.done_at, float("inf")])
                    d.say(t0, "h2's network restored")
            _sleep_until(t0 + d.seconds, t0, d, out)
            pause_at = time.time()
            common.run(env, "pause", "tick")
            d.say(t0, "job paused; waiting for the runs still going")

            def settled() -> bool:
                status = json.loads(common.run(env, "status", "--json"))
                return not status["running"] and not status["queued"]

            try:
                common.wait_for(settled, d.lease_s * 2 + d.job_s + 30, "runs to end", step=0.5)
            except TimeoutError:
                d.say(t0, "some runs were still queued or running at the deadline")
            history = json.loads(common.run(env, "history", "tick", "--json", "--limit",
                                            "1000000"))  # fmt: skip
            (d.folder / "history.json").write_text(json.dumps(history, indent=1) + "\n")
            d.say(t0, f"stopping the runners ({len(history)} runs in the history)")
        finally:
            for r in runners.values():
                r.stop()
            for r in gone:
                r.stop()
            proxy.close()
    return report(d, t0, first_fire, pause_at, faults, healthy, history, read_effects(out))


def _busy(pg: fleet.Pg, url: str, host: str, d: Demo, t0: float) -> None:
    """Wait (at most a lease) until `host` has a run in flight, so that the fault has
    something for the others to take over."""
    with pg.connect(url) as conn:

        def running() -> bool:
            row = conn.execute("SELECT count(*) FROM runs WHERE status = 'running' "
                               "AND host = %s", [host]).fetchone()  # fmt: skip
            return bool(row and row[0])

        waited = time.time()
        try:
            common.wait_for(running, d.lease_s, f"a run in flight on {host}", step=0.05)
        except TimeoutError:
            d.say(t0, f"{host} has had no run in flight for {d.lease_s:g} s; going ahead")
            return
    if time.time() - waited > 0.5:
        d.say(t0, f"waited {time.time() - waited:.1f} s for a run in flight on {host}")


def _sleep_until(t: float, t0: float, d: Demo, out: Path) -> None:
    """Sleep until wall time t, saying every 15 s how many executions have started."""
    while (left := t - time.time()) > 0:
        before = time.time() - t0
        time.sleep(min(left, 1.0))
        if left > 1.0 and int((time.time() - t0) // 15) > int(before // 15):
            d.say(t0, f"{len(read_effects(out))} executions so far")


def report(
    d: Demo,
    t0: float,
    first_fire: float,
    pause_at: float,
    faults: list[Fault],
    healthy: dict[str, list[list[float]]],
    history: list[dict[str, Any]],
    effects: list[Execution],
) -> int:
    runs = [{**r, "sched": _ts(r["scheduled_for"]), "start": _ts(r["started_at"]),
             "end": _ts(r["finished_at"])} for r in history]  # fmt: skip
    fires = {r["sched"] for r in runs}
    statuses = Counter(r["status"] for r in runs)
    # duplicates: one run key + attempt executed more than once
    executed = Counter((e.key, e.attempt) for e in effects)
    duplicates = {k: n for k, n in executed.items() if n > 1}
    # two attempts of one fire running at once (an execution without an end line runs on)
    by_key: dict[str, list[Execution]] = defaultdict(list)
    for e in effects:
        by_key[e.key].append(e)
    overlapping = []
    for key, execs in by_key.items():
        spans = sorted((e.start, e.end if e.end is not None else float("inf")) for e in execs)
        if any(b[0] < a[1] for a, b in itertools.pairwise(spans)):
            overlapping.append(key)
    # early: an execution that began before its fire's scheduled time (run key JOB@MS)
    late = {e: e.start - int(e.key.rsplit("@", 1)[1]) / 1000 for e in effects}
    early = [e for e, x in late.items() if x < -EARLY_S]
    first = sorted(1000 * x for e, x in late.items() if e.attempt == 1)

    # lost: seconds of the window with no run at all, while some runner was healthy
    def any_healthy(t: float) -> bool:
        return any(a <= t < b for spans in healthy.values() for a, b in spans)

    window = range(int(first_fire), int(pause_at))
    recorded = {round(s) for s in fires if s is not None}
    lost = [s for s in window if s not in recorded and any_healthy(s)]
    unhealthy_all = [s for s in window if not any_healthy(s)]
    open_runs = [r for r in runs if r["status"] in ("queued", "running")]
    # executions whose run is not in the history as that attempt
    keys = {(r["run_key"], r["attempt"]) for r in runs}
    unknown = [e for e in effects if (e.key, e.attempt) not in keys]
    no_end = [e for e in effects if e.end is None]
    terminated = [e for e in effects if e.how == "term"]
    completed = {(e.key, e.attempt) for e in effects if e.how == "end"}
    rerun = [r for r in runs if r["attempt"] == 2 and (r["run_key"], 1) in completed]
    # takeovers: runs of the lost runners recorded abandoned by the others, and their retries
    fault_at = {f.what: f.done_at for f in faults}
    retries = {(r["run_key"], r["attempt"]): r for r in runs}
    takeovers: dict[str, list[tuple[float, float | None]]] = {"h1": [], "h2": []}
    for r in runs:
        if r["status"] != "abandoned" or "lease expired" not in (r.get("error") or ""):
            continue
        host = r.get("host")
        at = fault_at.get("kill" if host == "h1" else "partition")
        if host not in takeovers or at is None or r["end"] is None:
            continue
        retry = retries.get((r["run_key"], r["attempt"] + 1))
        started = retry["start"] if retry and retry["start"] is not None else None
        takeovers[host].append((r["end"] - at, None if started is None else started - at))
    # liveness: a takeover later than the lease allows (expiry, then a reap every lease/3),
    # and fires started more than a second late
    bound = d.lease_s * 4 / 3 + 2
    slow = [a for spans in takeovers.values() for a, _ in spans if a > bound]
    very_late = [x for x in first if x > 1000]
    cut = fault_at.get("partition") or 0.0
    fenced = first_log(d.folder / "h2.log", "fenced:", cut)
    again = first_log(d.folder / "h2.log", "registered again", fault_at.get("restore") or cut)

    def span(values: list[float]) -> str:
        return "-" if not values else f"{min(values):.1f} - {max(values):.1f} s"

    hosts = Counter(e.host for e in effects)
    rows: list[tuple[str, str]] = [
        ("window", f"{len(window)} s of fires ({_hms(first_fire)} - {_hms(pause_at)} UTC)"),
        ("fires recorded (distinct scheduled_for)", f"{len(fires)}"),
        ("runs in the history", ", ".join(f"{s} {n}" for s, n in sorted(statuses.items()))),
        (
            "executions (start lines)",
            f"{len(effects)} (" + ", ".join(f"{h} {n}" for h, n in sorted(hosts.items())) + ")",
        ),
        ("duplicates (key+attempt executed twice)", f"{len(duplicates)}"),
        ("fires with two attempts at once", f"{len(overlapping)}"),
        ("fires lost (no run, a runner healthy)", f"{len(lost)}"),
        (
            f"executions started early (> {EARLY_S * 1000:g} ms)",
            f"{len(early)}"
            + (f" (up to {-min(late[e] for e in early):.2f} s early)" if early else ""),
        ),
        (
            "attempt 1 start - scheduled: p50 / p99 / max ms",
            f"{common.pct(first, 50):,.0f} / {common.pct(first, 99):,.0f} / "
            f"{max(first, default=float('nan')):,.0f}",
        ),
        ("attempt 1 started more than 1 s late", f"{len(very_late)}"),
        (f"takeovers later than lease x 4/3 + 2 s ({bound:g} s)", f"{len(slow)}"),
        ("seconds with no healthy runner", f"{len(unhealthy_all)}"),
        ("runs not in a final state at the end", f"{len(open_runs)}"),
        ("executions not in the history", f"{len(unknown)}"),
        ("executions terminated (fenced)", f"{len(terminated)}"),
        ("executions without an end line", f"{len(no_end)}"),
        ("attempt 1 completed, then re-run (at-least-once)", f"{len(rerun)}"),
        ("h1 killed: its runs abandoned after", span([a for a, _ in takeovers["h1"]])),
        (
            "h1 killed: their retries started after",
            span([b for _, b in takeovers["h1"] if b is not None]),
        ),
        ("h2 cut off: fenced itself after", "-" if fenced is None else f"{fenced - cut:.1f} s"),
        ("h2 cut off: its runs abandoned after", span([a for a, _ in takeovers["h2"]])),
        (
            "h2 cut off: their retries started after",
            span([b for _, b in takeovers["h2"] if b is not None]),
        ),
        (
            "h2 restored: registered again after",
            "-" if again is None else f"{again - (fault_at.get('restore') or cut):.1f} s",
        ),
    ]
    width = max(len(k) for k, _ in rows)
    print("\n== fleet demo: " + f"{d.seconds:g} s, --lease {d.lease}, 3 runners x "
          f"{d.workers} workers, jobs of {d.job_s:g} s")  # fmt: skip
    for k, v in rows:
        print(f"  {k.ljust(width)}  {v}")
    for what, items in (("duplicate", list(duplicates)), ("overlapping fire", overlapping),
                        ("lost second", [_hms(s) for s in lost]),
                        ("early start", [f"{e.key} {e.attempt} {e.host} {late[e]:+.3f} s"
                                         for e in early]),
                        ("open run", [r["id"] for r in open_runs])):  # fmt: skip
        if items:
            print(f"  {what}s: {items[:10]}{' ...' if len(items) > 10 else ''}")
    (d.folder / "summary.txt").write_text("\n".join(d.log + [f"{k}: {v}" for k, v in rows]) + "\n")
    events = runner_events(d.folder)
    if events:
        print("  runner events (errors, leases, clock, recoveries):")
        for line in events[:30]:
            print(f"    {line}")
        if len(events) > 30:
            print(f"    ... {len(events) - 30} more in the logs")
    print(f"  logs, side effects and summary: {d.folder}")
    bad = bool(duplicates or lost or overlapping or early)
    print(
        "  RESULT: " + ("FAILED" if bad else "ok (no duplicate, lost fire, overlap or early start)")
    )
    if slow or very_late:  # slow, not wrong: reported, not failed
        print(f"  WARNING: {len(slow)} takeover(s) slower than the lease allows, "
              f"{len(very_late)} fire(s) started more than 1 s late")  # fmt: skip
    return 1 if bad else 0


EVENTS = ("error", "lease", "clock", "recover")


def runner_events(folder: Path) -> list[str]:
    """The runners' log lines about faults (not fires, starts and ends), by time."""
    found: list[tuple[str, str]] = []
    for host in HOSTS:
        path = folder / f"{host}.log"
        if not path.exists():
            continue
        for line in path.read_text(errors="replace").splitlines():
            if line[24:32].strip() in EVENTS:
                found.append((line[:23], f"{line[11:23]} {host} {line[24:]}"))
    return [text for _, text in sorted(found)]


def _hms(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%H:%M:%S")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.fleet_demo",
                                 description=__doc__.splitlines()[0])  # fmt: skip
    ap.add_argument("--quick", action="store_true",
                    help="60 s, --lease 6s: kill at 15 s, partition at 30 s for 20 s")  # fmt: skip
    ap.add_argument("--seconds", type=float, default=None, help="length of the demo (120)")
    ap.add_argument("--lease", default=None, help="the runners' --lease (15s; quick 6s)")
    ap.add_argument("--job-seconds", type=float, default=None,
                    help="how long each run sleeps (0.6 x the lease)")  # fmt: skip
    ap.add_argument("--workers", type=int, default=8, help="workers per runner (8)")
    ap.add_argument("--dir", type=Path, default=None, help="folder for logs and side effects")
    args = ap.parse_args(argv)
    seconds = args.seconds or (60.0 if args.quick else 120.0)
    lease = args.lease or ("6s" if args.quick else "15s")
    from jobctl.jobdef import option_duration

    lease_s = option_duration(lease, "--lease")
    if args.quick and args.seconds is None:
        kill_at, restart_after, cut_at, cut_for = 15.0, 10.0, 30.0, 20.0
    else:
        kill_at, restart_after, cut_at, cut_for = (seconds / 4, seconds / 6, seconds / 2,
                                                   seconds / 4)  # fmt: skip
    if cut_for <= lease_s:
        ap.error(f"the partition ({cut_for:g} s) must last longer than the lease ({lease})")
    pg = fleet.Pg(os.environ.get(fleet.PG_ENV, fleet.DEFAULT_PG))
    why = pg.unreachable()
    if why:
        print(f"fleet_demo: cannot run: {why}", file=sys.stderr)
        return 2
    folder = args.dir or Path(tempfile.mkdtemp(prefix="jobctl-fleet-demo-"))
    folder.mkdir(parents=True, exist_ok=True)
    d = Demo(seconds=seconds, lease=lease, lease_s=lease_s,
             job_s=args.job_seconds if args.job_seconds is not None else 0.6 * lease_s,
             workers=args.workers, kill_at=kill_at, restart_after=restart_after,
             cut_at=cut_at, cut_for=cut_for, folder=folder)  # fmt: skip
    try:
        return run_demo(d, pg)
    except subprocess.CalledProcessError as exc:  # pragma: no cover - shown as is
        print(f"fleet_demo: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
