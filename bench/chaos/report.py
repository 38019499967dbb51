"""The chaos run's report: the verdicts and figures as text (the terminal, summary.md in the
run's folder), and the picture (timeline of the runners' health, fires per second, faults)."""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from bench.chaos.check import RUNNER_DOWN, Evidence, Report, fault_span


def render(ev: Evidence, rep: Report) -> str:
    m = ev.meta
    out = [
        f"# chaos run: seed {m.get('seed')}, {m.get('duration', 0):g} s, --lease {m.get('lease')},"
        f" {len(m.get('hosts', []))} runners x {m.get('workers')} workers,"
        f" {len(m.get('jobs', []))} jobs{', netns' if m.get('netns') else ''}",
        "",
        "## Verdicts (each must be 0)",
        "",
        "| check | count |",
        "|---|---|",
    ]
    out += [f"| {k} | {v} |" for k, v in rep.verdicts.items()]
    out += ["", f"**{'PASS' if rep.ok else 'FAIL'}**", ""]
    for k, items in rep.details.items():
        if items:
            out.append(f"{k}:")
            out += [f"- {x}" for x in items[:20]]
            if len(items) > 20:
                out.append(f"- ... {len(items) - 20} more")
            out.append("")
    out += [
        "## Faults",
        "",
        "| # | kind | target | flavour | at (s) | length (s) | notes |",
        "|---|---|---|---|---|---|---|",
    ]
    t0 = m.get("t0", 0.0)
    for i, f in enumerate(ev.faults, 1):
        a, b = fault_span(f)
        at = f"{a - t0:.1f}" if math.isfinite(a) else "not done"
        out.append(
            f"| {i} | {f.kind} | {f.target or 'database'} | {f.flavour} | {at} | "
            f"{b - a:.1f} | {'; '.join(f.notes)} |"
        )
    out += [
        "",
        "## Per fault kind",
        "",
        "| kind | faults | runs taken over | abandoned after p50/max (s) | retry started "
        "after p50/max (s) | overlaps excused | overlaps not excused |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind, row in rep.per_kind.items():
        out.append(f"| {kind} | " + " | ".join(str(v) for v in row.values()) + " |")
    out += ["", "## Figures", ""]
    for k, v in rep.figures.items():
        if k == "lateness samples":
            continue
        if isinstance(v, dict) and "p50" in v:
            v = (
                f"n {v['n']}, p50 {v['p50']:.0f}, p90 {v['p90']:.0f}, p99 {v['p99']:.0f}, "
                f"max {v['max']:.0f}"
            )
        out.append(f"- {k}: {v}")
    return "\n".join(out) + "\n"


def picture(ev: Evidence, rep: Report, path: Path) -> None:
    """Timeline: one band per runner (up, killed, frozen, cut off, slow), the database's
    restarts, executions started per second, faults marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    t0 = ev.meta.get("t0", 0.0)
    end = ev.meta.get("window_end", t0 + ev.meta.get("duration", 60)) + 5
    hosts = ev.meta.get("hosts", [])
    colours = {
        "kill": "#d62728",
        "stop-short": "#9467bd",
        "stop-long": "#6a3d9a",
        "cut-short": "#ff7f0e",
        "cut-long": "#e6550d",
        "latency": "#bcbd22",
        "db-fast": "#17becf",
        "db-immediate": "#1f77b4",
    }
    fig, (ax1, ax2) = plt.subplots(
        2, 1, figsize=(12, 6.5), sharex=True, gridspec_kw={"height_ratios": [1.3, 2]}
    )
    rows = [*hosts, "database"]
    for y, name in enumerate(rows):
        ax1.broken_barh([(0, end - t0)], (y - 0.35, 0.7), color="#2ca02c", alpha=0.35)
        for f in ev.faults:
            if (f.target or "database") != name or f.started is None:
                continue
            a, b = fault_span(f)
            width = max(b - a, 0.4)
            ax1.broken_barh([(a - t0, width)], (y - 0.35, 0.7), color=colours[f.kind])
    ax1.set_yticks(range(len(rows)), rows)
    ax1.set_title(f"chaos run, seed {ev.meta.get('seed')}: runner health (green: up) and faults")
    ax1.legend(
        handles=[Patch(color=c, label=k) for k, c in colours.items()],
        ncol=8,
        fontsize=7,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.05),
    )
    per_s: Counter[int] = Counter(int(e.start - t0) for e in ev.effects)
    per_s_fire: Counter[int] = Counter(int(e.scheduled - t0) for e in ev.effects if e.attempt == 1)
    xs = list(range(0, int(end - t0)))
    ax2.plot(xs, [per_s.get(x, 0) for x in xs], lw=1, label="executions started per second")
    ax2.plot(
        xs,
        [per_s_fire.get(x, 0) for x in xs],
        lw=1,
        alpha=0.7,
        label="first attempts, by scheduled second",
    )
    retries = Counter(int(e.start - t0) for e in ev.effects if e.attempt > 1)
    ax2.bar(
        list(retries),
        list(retries.values()),
        color="#d62728",
        width=1.0,
        label="retries started per second",
    )
    for f in ev.faults:
        if f.started is not None:
            ax2.axvline(f.started - t0, color=colours[f.kind], lw=0.8, ls="--")
    for o in rep.overlaps:
        ax2.axvspan(o.begin - t0, o.finish - t0, color="black", alpha=0.15)
    ax2.set_xlabel("seconds since the faults began")
    ax2.set_ylabel("executions")
    ax2.legend(fontsize=8, loc="lower left")
    ax2.set_xlim(0, end - t0)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def health_share(ev: Evidence) -> dict[str, float]:
    """Share of the run each runner was down (killed, frozen or cut off)."""
    t0 = ev.meta.get("t0", 0.0)
    total = ev.meta.get("window_end", t0 + 1) - t0
    out = {}
    for h in ev.meta.get("hosts", []):
        down = sum(
            fault_span(f)[1] - fault_span(f)[0]
            for f in ev.faults
            if f.target == h and f.kind in RUNNER_DOWN and f.started is not None
        )
        out[h] = down / total if total > 0 else 0.0
    return out


def _hms(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%H:%M:%S")
