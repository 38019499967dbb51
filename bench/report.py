"""Writing docs/benchmarks.md (and its pictures) from the suite's results."""

from __future__ import annotations

import os
import platform
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from bench import common, peers


def machine() -> list[tuple[str, str]]:
    def first(path: str, key: str) -> str:
        try:
            with open(path) as f:
                for line in f:
                    if line.startswith(key):
                        return (
                            line.split(":", 1)[1].strip()
                            if ":" in line
                            else line.split("=", 1)[1].strip().strip('"')
                        )
        except OSError:
            pass
        return "-"

    mem_kb = first("/proc/meminfo", "MemTotal").split()[0]
    return [
        ("CPU", f"{first('/proc/cpuinfo', 'model name')}, {os.cpu_count()} cores"),
        ("memory", f"{int(mem_kb) / 1024 / 1024:.0f} GiB" if mem_kb.isdigit() else "-"),
        ("OS", f"{first('/etc/os-release', 'PRETTY_NAME')}, Linux {platform.release()}"),
        ("Python", f"{platform.python_implementation()} {platform.python_version()}"),
        ("SQLite", sqlite3.sqlite_version),
    ]


def versions(have: set[str]) -> list[tuple[str, str]]:
    from jobctl import __version__

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        commit = "-"
    out = [("jobctl", f"{__version__} (commit {commit})")]
    out += [(name, peers.version(name) if name in have else "skipped") for name in peers.ALL]
    return out


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def plots(results: list[common.Result], folder: Path) -> list[tuple[str, str]]:
    """PNG pictures; returns (file name, caption) for each one drawn."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    drawn: list[tuple[str, str]] = []
    by_key = {r.key: r for r in results}
    precision = by_key.get("precision")
    if precision and precision.samples:
        fig, ax = plt.subplots(figsize=(8, 4.5))
        for tool, values in precision.samples.items():
            if not values:
                continue
            xs = sorted(max(v, 0.01) for v in values)
            ys = [(i + 1) / len(xs) for i in range(len(xs))]
            p99 = common.pct(values, 99)
            ax.step(xs, ys, where="post", label=f"{tool} (n={len(xs):,}, p99 {p99:.1f} ms)")
        ax.set_xscale("log")
        ax.set_xlabel("lateness: process start − scheduled time (ms, log scale)")
        ax.set_ylabel("fraction of fires")
        ax.axvline(10, color="grey", linestyle=":", linewidth=1)
        ax.text(10.5, 0.03, "10 ms budget (p99)", color="grey", fontsize=8)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
        ax.set_title("Fire lateness, cumulative distribution")
        fig.tight_layout()
        fig.savefig(folder / "benchmarks-lateness.png", dpi=110)
        plt.close(fig)
        drawn.append(("benchmarks-lateness.png", "Fire lateness: the further left, the better"))
    drain = by_key.get("drain")
    if drain:
        names, rates = [], []
        for row in drain.rows:
            try:
                rates.append(float(row[3].replace(",", "")))  # the median runs/s
                names.append(row[0])
            except ValueError:
                continue
        fig, ax = plt.subplots(figsize=(8, 2.6))
        ax.barh(names[::-1], rates[::-1], color=["#999999", "#bb7733", "#3366aa"][-len(names) :])
        for y, v in enumerate(rates[::-1]):
            ax.text(v, y, f" {v:,.0f}", va="center", fontsize=9)
        ax.set_xlabel("runs per second (higher is better)")
        ax.set_title("Drain: 2,000 runs of `true`, 4 at a time")
        ax.set_xlim(0, max(rates) * 1.18)
        fig.tight_layout()
        fig.savefig(folder / "benchmarks-drain.png", dpi=110)
        plt.close(fig)
        drawn.append(("benchmarks-drain.png", "Drain throughput"))
    return drawn


def write(
    path: Path,
    results: list[common.Result],
    have: set[str],
    notes: list[str],
    quick: bool,
    took_s: float,
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pictures = plots(results, path.parent)
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    cmd = "python -m bench" + (" --quick" if quick else "")
    out = [
        "# Benchmarks",
        "",
        f"A {'quick' if quick else 'full'} run of the suite in `bench/` on {now}, "
        f"`{cmd}` ({took_s / 60:.1f} minutes). Every comparison was measured in the same "
        "run, side by side on the same machine, so ratios are fair even where the absolute "
        "figures depend on the machine. Regenerate with `bench/run` from a fresh clone.",
        "",
        "## Machine and versions",
        "",
        *_table(["", ""], [list(r) for r in machine() + versions(have)]),
        "",
        "## Budgets",
        "",
        *_table(
            ["budget", "measured", "limit", "holds"],
            [
                [
                    b.name,
                    f"{b.measured:,.3g} {b.unit}",
                    f"{'≥' if b.higher_is_better else '≤'} {b.limit:g} {b.unit}",
                    "yes" if b.ok else "**no**",
                ]
                for r in results
                for b in r.budgets
            ],
        ),
        "",
    ]
    for p, caption in pictures:
        out += [f"![{caption}]({p})", ""]
    for r in results:
        out += [f"## {r.title}", "", r.method, "", *_table(r.headers, r.rows), ""]
        out += [f"- {n}" for n in r.notes]
        if r.notes:
            out.append("")
    if notes:
        out += ["## Peers", "", *[f"- {n}" for n in notes], ""]
    out.append(f"<!-- generated by bench/report.py with {sys.executable} -->")
    path.write_text("\n".join(out) + "\n")
