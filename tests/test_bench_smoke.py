"""The benchmark suite (bench/) is not part of the test command; this only checks that
`python -m bench --quick` still starts and produces a table: one tiny drain, no peers."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_bench_quick_starts_and_prints_a_table(tmp_path: Path) -> None:
    args = ["--quick", "--only", "drain", "--drain-runs", "20", "--skip", "tsp,cron,apscheduler",
            "--no-install", "--report", str(tmp_path / "b.md")]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBCTL_")}
    done = subprocess.run([sys.executable, "-m", "bench", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    row = re.search(r"^jobctl runner --workers 4\s+20\s+([\d.]+)\s+([\d,]+)\s", done.stdout, re.M)
    assert row and float(row.group(2).replace(",", "")) > 0, done.stdout
    report = (tmp_path / "b.md").read_text()
    assert "## Drain throughput" in report and "| jobctl runner --workers 4 | 20 |" in report


def test_bench_refuses_an_unknown_measurement() -> None:
    done = subprocess.run([sys.executable, "-m", "bench", "--only", "nope"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 2 and "unknown measurement: nope" in done.stderr
