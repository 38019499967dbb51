"""The checker: what the run's evidence says, computed from the jobs' side effects, the
store's history and the fault log (pure: `check(evidence)`; `load(folder)` reads a run's folder).

Verdicts (each must be 0; none depends on how loaded the machine was, except the one timing
rule the issue gives, the lease margin after a frozen runner wakes):
- duplicates: one (job, scheduled_for, attempt) -- a run key and attempt -- executed more than
  once (two start lines);
- overlaps: two attempts of one fire running at once, two runs of an `--overlap skip` job, or
  of a mutex group, running at once (by the side effects' start and end times). An overlap is
  excused only in the README's two limits, and only when it ends within the margin (lease/2,
  the self-fencing deadline) after the limit ends: a runner that one of the two executions
  belongs to was frozen (SIGSTOP) longer than its lease (until it wakes), or the earlier
  execution is the orphan of a runner killed -9 (until a runner starts on its machine again);
  excused overlaps are listed with their lengths;
- lost fires: a fire due in the window, while at least one runner was healthy (not killed,
  stopped or cut off, and the database up), with no run at all in the history (not even a
  skipped or abandoned one) and no side effect;
- stuck runs: runs still queued or running once the jobs were paused and the fleet given
  3 leases + 30 s to settle; orphans: job processes alive after every runner stopped;
- unrecorded executions: a side effect whose (run key, attempt) the history does not hold;
  phantom ends: a run recorded succeeded or failed without a start line (the job never ran);
- the fleet not firing through the window's end within 60 s (a stalled scheduler).

Figures (reported, not judged): takeover times after a kill, a long cut or a long freeze
(from the fault to the runner's runs recorded abandoned, and to their retries starting);
fire lateness outside fault windows (history: started_at - scheduled_for; side effects: the
job's own first timestamp - scheduled_for); counts per fault kind; fires per second.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.chaos.faults import KINDS, TAKEOVER_KINDS, Fault

RUNNER_DOWN = ("kill", "stop-short", "stop-long", "cut-short", "cut-long")


@dataclass(eq=False)
class Execution:
    key: str
    attempt: int
    host: str
    run_id: int
    start: float
    end: float | None = None
    how: str = ""  # end0, end1 (exit code), term; "" without an end line

    @property
    def job(self) -> str:
        return self.key.rsplit("@", 1)[0]

    @property
    def scheduled(self) -> float:
        return int(self.key.rsplit("@", 1)[1]) / 1000

    @property
    def stop(self) -> float:
        return math.inf if self.end is None else self.end


@dataclass
class Evidence:
    meta: dict[str, Any]
    faults: list[Fault]
    runners: dict[str, list[dict[str, Any]]]
    effects: list[Execution]
    history: list[dict[str, Any]]
    end: dict[str, Any]
    fences: list[tuple[str, float]] = field(default_factory=list)  # (host, time) from the logs


@dataclass
class Overlap:
    what: str  # "attempts of one fire", "overlap=skip job", "mutex group"
    a: Execution
    b: Execution
    begin: float
    finish: float
    excused_by: Fault | None = None
    after_wake: float | None = None  # finish - the frozen runner's wake-up

    @property
    def length(self) -> float:
        return self.finish - self.begin


@dataclass
class Report:
    verdicts: dict[str, int] = field(default_factory=dict)
    details: dict[str, list[str]] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    per_kind: dict[str, dict[str, Any]] = field(default_factory=dict)
    overlaps: list[Overlap] = field(default_factory=list)
    takeovers: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(self.verdicts.values())


def parse_effects(lines: list[str]) -> list[Execution]:
    """One Execution per start line, with its end (or term) line when there is one."""
    by: dict[tuple[str, str, str, str, str], Execution] = {}
    out: list[Execution] = []
    for line in lines:
        f = line.split()
        if len(f) != 7:
            continue
        ident = (f[0], f[1], f[2], f[3], f[4])
        if f[6] == "start":
            e = Execution(f[0], int(f[1]), f[2], int(f[3] or 0), float(f[4]))
            out.append(e)
            by.setdefault(ident, e)
        elif ident in by:
            by[ident].end, by[ident].how = float(f[5]), f[6]
    return out


def load(folder: Path) -> Evidence:
    def read(name: str, default: Any) -> Any:
        p = folder / name
        return json.loads(p.read_text()) if p.exists() else default

    lines: list[str] = []
    for p in sorted((folder / "effects").glob("*.effects")):
        lines += p.read_text(errors="replace").splitlines()
    return Evidence(
        meta=read("meta.json", {}),
        faults=[Fault.from_dict(d) for d in read("faults.json", [])],
        runners=read("runners.json", {}),
        effects=parse_effects(lines),
        history=read("history.json", []),
        end=read("end.json", {}),
        fences=_fences(folder),
    )


def _fences(folder: Path) -> list[tuple[str, float]]:
    """When each runner fenced itself, by its log (`YYYY-MM-DD HH:MM:SS.mmm error   fenced:`,
    the runners log in UTC)."""
    out = []
    for log in sorted(folder.glob("h*.log")):
        for line in log.read_text(errors="replace").splitlines():
            if line[24:].startswith("error") and "fenced:" in line:
                with contextlib.suppress(ValueError):
                    t = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S.%f")
                    out.append((log.stem, t.replace(tzinfo=UTC).timestamp()))
    return out


def fault_span(f: Fault) -> tuple[float, float]:
    start = f.started if f.started is not None else math.inf
    end = f.ended if f.ended is not None else (start + f.length)
    return start, end


def healthy(ev: Evidence, host: str, t: float) -> bool:
    """`host`'s runner could work at `t`: no runner fault of it, no database restart."""
    for f in ev.faults:
        a, b = fault_span(f)
        if a <= t <= b and (f.target is None or (f.target == host and f.kind in RUNNER_DOWN)):
            return False
    return True


def expected_fires(cron: str, start: float, end: float) -> list[float]:
    """The fire times in [start, end] of a seconds-first cron whose other fields are `*`
    (`* * * * * *`, `*/2 * * * * *`): the checker's own reading, not the product's."""
    first = cron.split()[0]
    step = 1 if first == "*" else int(first.split("/")[1])
    t = math.ceil(start)
    while t % step:
        t += 1
    return [float(x) for x in range(t, math.floor(end) + 1, step)]


def _pct(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q / 100 * len(s)) - 1))]


def check(ev: Evidence) -> Report:
    rep = Report()
    lease = float(ev.meta.get("lease_s", 15.0))
    margin = lease / 2
    w0, w1 = ev.meta.get("window_start"), ev.meta.get("window_end")
    jobs = {j["name"]: j for j in ev.meta.get("jobs", [])}
    runs = ev.history
    effects = ev.effects

    # duplicates
    executed = Counter((e.key, e.attempt) for e in effects)
    dups = sorted(k for k, n in executed.items() if n > 1)
    rep.verdicts["duplicate executions"] = len(dups)
    rep.details["duplicate executions"] = [f"{k} attempt {a} x{executed[(k, a)]}" for k, a in dups]

    # overlaps
    pairs: list[tuple[str, list[Execution]]] = []
    by_key: dict[str, list[Execution]] = defaultdict(list)
    by_job: dict[str, list[Execution]] = defaultdict(list)
    by_mutex: dict[str, list[Execution]] = defaultdict(list)
    for e in effects:
        by_key[e.key].append(e)
        by_job[e.job].append(e)
        spec = jobs.get(e.job, {})
        if spec.get("mutex"):
            by_mutex[spec["mutex"]].append(e)
    pairs += [("attempts of one fire", v) for v in by_key.values()]
    pairs += [
        ("overlap=skip job", v)
        for j, v in by_job.items()
        if jobs.get(j, {}).get("overlap") == "skip"
    ]
    pairs += [("mutex group", v) for v in by_mutex.values()]
    # README's two limits: a runner frozen longer than its lease, and a runner killed -9 whose
    # jobs run on until a runner starts on that machine again (or they end by themselves)
    limits = [f for f in ev.faults if f.kind in ("stop-long", "kill") and f.started is not None]
    for what, group in pairs:
        for a, b in _overlapping(group):
            o = Overlap(what, a, b, max(a.start, b.start), min(a.stop, b.stop))
            for f in limits:
                fa, fb = fault_span(f)
                left = a if a.start <= b.start else b  # the one that ran first: the orphan
                if (f.kind == "stop-long" and f.target in (a.host, b.host)
                        and o.begin <= fb + margin and o.finish >= fa) or (
                        f.kind == "kill" and left.host == f.target and left.start <= fa
                        and o.begin >= fa):  # fmt: skip
                    o.excused_by, o.after_wake = f, o.finish - fb
                    break
            rep.overlaps.append(o)
    bad = [o for o in rep.overlaps if o.excused_by is None or (o.after_wake or 0) > margin]
    rep.verdicts["overlaps (outside the two documented limits)"] = len(bad)
    rep.details["overlaps (outside the two documented limits)"] = [_show_overlap(o) for o in bad]
    excused = [o for o in rep.overlaps if o not in bad]
    rep.details["overlaps in README's limits (frozen or killed runner), each ended in time"] = [
        _show_overlap(o) for o in excused
    ]
    rep.figures["overlaps excused (frozen runner)"] = sum(
        1 for o in excused if o.excused_by is not None and o.excused_by.kind == "stop-long"
    )
    rep.figures["overlaps excused (killed runner's orphan)"] = sum(
        1 for o in excused if o.excused_by is not None and o.excused_by.kind == "kill"
    )

    # lost fires
    recorded = {(r["job"], round(r["scheduled_for"] * 1000)) for r in runs}
    recorded |= {(e.job, round(e.scheduled * 1000)) for e in effects}
    hosts = ev.meta.get("hosts", [])
    lost, unhealthy_unrecorded, expected_n = [], [], 0
    if w0 is not None and w1 is not None:
        for name, spec in jobs.items():
            for t in expected_fires(spec["cron"], w0, w1):
                expected_n += 1
                if (name, round(t * 1000)) in recorded:
                    continue
                if any(healthy(ev, h, t) for h in hosts):
                    lost.append(f"{name} @ {_hms(t)}")
                else:
                    unhealthy_unrecorded.append(f"{name} @ {_hms(t)}")
    rep.verdicts["lost fires"] = len(lost)
    rep.details["lost fires"] = lost
    rep.figures["fires expected in the window"] = expected_n
    rep.figures["fires unrecorded while no runner was healthy"] = len(unhealthy_unrecorded)
    rep.verdicts["fleet did not fire through the window's end"] = (
        0 if ev.meta.get("fired_through_end", False) else 1
    )

    # final states, orphans
    open_runs = [r for r in runs if r["status"] in ("queued", "running")]
    rep.verdicts["runs not in a final state (stuck)"] = len(open_runs)
    rep.details["runs not in a final state (stuck)"] = [
        f"run {r['id']} {r['job']} attempt {r['attempt']} {r['status']} on {r['host']}"
        for r in open_runs
    ]
    orphans = ev.end.get("orphans", [])
    rep.verdicts["orphan processes after the runners stopped"] = len(orphans)
    rep.details["orphan processes after the runners stopped"] = [f"{p}" for p in orphans]

    # the side effects against the history
    by_run = {(r["job"], round(r["scheduled_for"] * 1000), r["attempt"]): r for r in runs}
    unrecorded = [e for e in effects if (e.job, round(e.scheduled * 1000), e.attempt) not in by_run]
    rep.verdicts["executions the history does not hold"] = len(unrecorded)
    rep.details["executions the history does not hold"] = [
        f"{e.key} attempt {e.attempt} on {e.host}" for e in unrecorded
    ]
    started = {(e.job, round(e.scheduled * 1000), e.attempt) for e in effects}
    phantom = [
        r for k, r in by_run.items() if r["status"] in ("succeeded", "failed") and k not in started
    ]
    rep.verdicts["runs recorded ended that never started"] = len(phantom)
    rep.details["runs recorded ended that never started"] = [
        f"run {r['id']} {r['job']} {r['status']}" for r in phantom
    ]
    # an end recorded that contradicts the job's own exit code
    wrong = []
    for e in effects:
        r = by_run.get((e.job, round(e.scheduled * 1000), e.attempt))
        if r is None or e.how not in ("end0", "end1"):
            continue
        want = "succeeded" if e.how == "end0" else "failed"
        if r["status"] in ("succeeded", "failed") and r["status"] != want:
            wrong.append(f"run {r['id']} {r['job']}: recorded {r['status']}, exit said {want}")
    rep.verdicts["runs recorded with another outcome than the job's"] = len(wrong)
    rep.details["runs recorded with another outcome than the job's"] = wrong

    # takeovers
    retry_of = {(r["job"], r["scheduled_for"], r["attempt"]): r for r in runs}
    for f in ev.faults:
        if f.kind not in TAKEOVER_KINDS or f.started is None:
            continue
        fa, fb = fault_span(f)
        for r in runs:
            if (
                r["host"] != f.target
                or r["status"] != "abandoned"
                or r["started_at"] is None
                or r["finished_at"] is None
                or not (r["started_at"] <= fa <= r["finished_at"])
            ):
                continue
            retry = retry_of.get((r["job"], r["scheduled_for"], r["attempt"] + 1))
            rs = retry["started_at"] if retry else None
            rep.takeovers.append(
                {
                    "kind": f.kind,
                    "host": f.target,
                    "run": r["id"],
                    "abandoned_after": r["finished_at"] - fa,
                    "retry_after": None if rs is None else rs - fa,
                    "retry_host": retry["host"] if retry else None,
                }
            )

    # lateness outside fault windows (each fault plus a lease after it to settle)
    windows = [
        (fault_span(f)[0] - 1.0, fault_span(f)[1] + lease + 2.0)
        for f in ev.faults
        if f.started is not None
    ]

    def quiet(t: float) -> bool:
        return not any(a <= t <= b for a, b in windows)

    # a mutex group's runs wait their turn by design (three 0.7 s jobs every 2 s share one
    # mutex): their waits are not lateness, and are reported apart
    specs = {j["name"]: j for j in ev.meta.get("jobs", [])}

    def waits_turn(job: str) -> bool:
        return bool(specs.get(job, {}).get("mutex"))

    late_hist: list[float] = []
    turns: list[float] = []
    for r in runs:
        if (
            r["attempt"] == 1
            and r["trigger"] == "schedule"
            and r["started_at"]
            and quiet(r["scheduled_for"])
            and (w0 is None or w0 <= r["scheduled_for"] <= (w1 or math.inf))
        ):
            late = 1000 * (r["started_at"] - r["scheduled_for"])
            (turns if waits_turn(r["job"]) else late_hist).append(late)
    late_fx = [
        1000 * (e.start - e.scheduled)
        for e in effects
        if e.attempt == 1
        and quiet(e.scheduled)
        and (w0 is None or w0 <= e.scheduled <= (w1 or math.inf))
        and not waits_turn(e.job)
    ]
    rep.figures["lateness (history) outside faults, ms"] = _dist(late_hist)
    rep.figures["lateness (job's own clock) outside faults, ms"] = _dist(late_fx)
    rep.figures["mutex group: start after fire outside faults, ms"] = _dist(turns)
    rep.figures["lateness samples"] = {"history": late_hist, "effects": late_fx}

    # counts
    statuses = Counter(r["status"] for r in runs)
    rep.figures["runs in the history"] = dict(sorted(statuses.items()))
    rep.figures["executions (start lines)"] = len(effects)
    rep.figures["executions by host"] = dict(sorted(Counter(e.host for e in effects).items()))
    rep.figures["executions terminated (term line)"] = sum(e.how == "term" for e in effects)
    rep.figures["executions without an end line"] = sum(e.end is None for e in effects)
    done_first = {(e.key, e.attempt) for e in effects if e.how in ("end0",)}
    rep.figures["attempt completed, then retried (at-least-once)"] = sum(
        1 for e in effects if (e.key, e.attempt - 1) in done_first
    )
    rep.details["fleet-wide stalls (no execution started for 2 s or more, a runner healthy)"] = [
        f"{a - ev.meta.get('t0', 0):.0f}-{b - ev.meta.get('t0', 0):.0f} s ({b - a:.0f} s): "
        + ", ".join(
            f.describe()
            for f in ev.faults
            if f.started is not None and fault_span(f)[0] - 1 <= b and a <= fault_span(f)[1] + 1
        )
        for a, b in stalls(ev)
    ]
    rep.figures["fleet-wide stalls of 2 s or more"] = len(stalls(ev))
    fences = ev.fences
    explained = [
        (h, t) for h, t in fences
        if any(f.target == h and f.kind in ("stop-long", "cut-long") and f.started is not None
               and fault_span(f)[0] <= t <= fault_span(f)[1] + lease for f in ev.faults)
    ]  # fmt: skip
    rep.figures["self-fencings (runners' logs)"] = len(fences)
    rep.figures["self-fencings without a long cut or freeze of that runner"] = len(fences) - len(
        explained
    )
    rep.details["self-fencings without a long cut or freeze of that runner"] = [
        f"{h} at {t - ev.meta.get('t0', 0):.1f} s: "
        + (", ".join(f.describe() for f in ev.faults if f.started is not None
                     and fault_span(f)[0] - 1 <= t <= fault_span(f)[1] + lease) or "no fault")
        for h, t in fences if (h, t) not in explained
    ]  # fmt: skip
    exits = [f"{host}: {r['how']}" for host, recs in ev.runners.items() for r in recs
             if str(r.get("how", "")).startswith("exited by itself")]  # fmt: skip
    rep.figures["runners that exited by themselves"] = len(exits)
    rep.details["runners that exited by themselves (restarted after 5 s)"] = exits
    for kind in KINDS:
        fs = [f for f in ev.faults if f.kind == kind and f.started is not None]
        tk = [t for t in rep.takeovers if t["kind"] == kind]
        ab = [t["abandoned_after"] for t in tk]
        rt = [t["retry_after"] for t in tk if t["retry_after"] is not None]
        rep.per_kind[kind] = {
            "faults": len(fs),
            "runs taken over": len(tk),
            "abandoned after p50/max s": _pm(ab),
            "retry started after p50/max s": _pm(rt),
            "overlaps excused": sum(1 for o in excused if o.excused_by in fs),
            "overlaps not excused": sum(1 for o in bad if _during(o, fs, lease)),
        }
    return rep


def stalls(ev: Evidence, least: int = 2) -> list[tuple[float, float]]:
    """Spans of whole seconds of the window in which no execution started anywhere although
    some runner was healthy (a figure: how far one runner's trouble holds up the others)."""
    w0, w1 = ev.meta.get("window_start"), ev.meta.get("window_end")
    if w0 is None or w1 is None:
        return []
    started = {int(e.start) for e in ev.effects}
    hosts = ev.meta.get("hosts", [])
    out: list[tuple[float, float]] = []
    run: list[int] = []
    for sec in [*range(int(w0), int(w1)), -1]:
        idle = sec >= 0 and sec not in started and any(healthy(ev, h, sec + 0.5) for h in hosts)
        if idle:
            run.append(sec)
            continue
        if len(run) >= least:
            out.append((float(run[0]), float(run[-1] + 1)))
        run = []
    return out


def _during(o: Overlap, fs: list[Fault], lease: float) -> bool:
    """The overlap began while one of `fs` was on, or within a lease and 2 s after it."""
    return any(fault_span(f)[0] <= o.begin <= fault_span(f)[1] + lease + 2.0 for f in fs)


def _overlapping(group: list[Execution]) -> list[tuple[Execution, Execution]]:
    """Pairs of executions whose [start, end) meet (an execution without an end line runs on)."""
    out = []
    s = sorted(group, key=lambda e: e.start)
    for i, a in enumerate(s):
        for b in s[i + 1 :]:
            if b.start >= a.stop:
                break
            out.append((a, b))
    return out


def _show_overlap(o: Overlap) -> str:
    why = ""
    if o.excused_by is not None:
        what = "woke" if o.excused_by.kind == "stop-long" else "was started again"
        f = o.excused_by
        why = f"; {f.target} {f.kind}, ended {o.after_wake:+.2f} s after it {what}"
    return (
        f"{o.what}: {o.a.key}#{o.a.attempt}@{o.a.host} and {o.b.key}#{o.b.attempt}@"
        f"{o.b.host} for {o.length:.2f} s from {_hms(o.begin)}{why}"
    )


def _dist(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50": _pct(values, 50),
        "p90": _pct(values, 90),
        "p99": _pct(values, 99),
        "max": max(values, default=math.nan),
    }


def _pm(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{_pct(values, 50):.1f} / {max(values):.1f}"


def _hms(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%H:%M:%S.%f")[:-3]
