"""Shared helpers of the benchmark suite: temp homes, the jobctl binary, process stats, stats.

Nothing here is timed itself; every measurement module imports these.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def jobctl_bin() -> str:
    """The installed `jobctl` console script of this interpreter's environment."""
    here = Path(sys.executable).with_name("jobctl")
    found = str(here) if here.exists() else shutil.which("jobctl")
    if not found:
        raise SystemExit("bench: no `jobctl` binary beside this Python; use bench/run")
    return found


def clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBCTL_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # start-up is measured with bytecode caching on
    env["JOBCTL_HOME"] = str(home)
    env.setdefault("TZ", "UTC")
    return env


@contextlib.contextmanager
def temp_home(prefix: str = "jobctl-bench-") -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield root / "home"
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [jobctl_bin(), *args], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"jobctl {' '.join(args)} -> {done.returncode}: {done.stderr.strip()}")
    return done.stdout


class Runner:
    """A `jobctl runner` child process, waited on until it has registered in the store (read
    straight from the runner table: `status` would cost seconds per poll on a huge store).
    If it never registers, it is stopped again before the error propagates."""

    def __init__(self, env: dict[str, str], workers: int = 4, log: Path | None = None) -> None:
        self.env = env
        self.log_path = log or Path(env["JOBCTL_HOME"]).parent / "runner.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [jobctl_bin(), "runner", "--workers", str(workers), "--grace", "2s"],
            env=env,
            stdout=self._log,
            stderr=self._log,
        )
        try:
            wait_for(self._registered, 120, "runner registered", step=0.005)
        except BaseException:
            self.stop()
            raise
        self.ready = time.monotonic()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _registered(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"runner exited {self.proc.returncode}: {self.log_path.read_text()}")
        return registered_pid(Path(self.env["JOBCTL_HOME"])) == self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def registered_pid(home: Path) -> int | None:
    """The pid in the store's runner table (None if there is no store or no runner yet)."""
    db = home / "jobctl.db"
    if not db.exists():
        return None
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            row = conn.execute("SELECT pid FROM runner ORDER BY since DESC LIMIT 1").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return None
    return int(row[0]) if row else None


def wait_for(cond: Callable[[], object], timeout: float, what: str, step: float = 0.02) -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"bench: timed out waiting for {what}")
        time.sleep(step)


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def oncpu_seconds(pid: int) -> float:
    """On-CPU time of a process's live threads, ns precision (schedstat's first field):
    finer than the 10 ms clock ticks of cpu_seconds, for near-idle processes."""
    total = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0.0
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return total / 1e9


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """A memory figure of /proc/PID/status in MB: VmRSS now, VmHWM the peak."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    return 0.0


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (0..100), nearest rank: a value that was actually seen."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


@dataclass
class Budget:
    """One performance budget of issue #4, with the figure measured against it."""

    name: str
    measured: float
    limit: float
    unit: str
    higher_is_better: bool = False

    @property
    def ok(self) -> bool:
        return self.measured >= self.limit if self.higher_is_better else self.measured <= self.limit


@dataclass
class Result:
    """What one measurement module returns: a table for the report, budgets, raw series."""

    key: str  # "drain", "precision", ...
    title: str
    method: str  # a paragraph for docs/benchmarks.md: what was measured and how
    headers: list[str]
    rows: list[list[str]]
    budgets: list[Budget] = field(default_factory=list)
    samples: dict[str, list[float]] = field(default_factory=dict)  # e.g. lateness ms per tool
    notes: list[str] = field(default_factory=list)  # skipped peers, caveats


def fmt(value: float | None, digits: int = 1) -> str:
    if value is None or value != value:  # None or NaN
        return "-"
    return f"{value:,.{digits}f}"


def render(result: Result) -> str:
    """A result as plain text: title, aligned table, budgets, notes (what --quick prints)."""
    widths = [
        max(len(str(row[i])) for row in [result.headers, *result.rows])
        for i in range(len(result.headers))
    ]
    lines = [f"== {result.title}"]
    for row in [result.headers, *result.rows]:
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
    for b in result.budgets:
        sign = "≥" if b.higher_is_better else "≤"
        mark = "ok" if b.ok else "MISSED"
        lines.append(f"  budget {b.name}: {b.measured:,.3g} {b.unit} ({sign} {b.limit:g}) {mark}")
    lines += [f"  note: {n}" for n in result.notes]
    return "\n".join(lines)
