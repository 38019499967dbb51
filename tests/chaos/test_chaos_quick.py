"""The chaos suite's quick mode (issue 10), as CI runs it: `python -m bench.chaos --quick`
(60 s of faults on three runners and a throwaway PostgreSQL cluster of its own; about 75 s in
all) must find no duplicate, overlap, lost fire, stuck run or orphan.

It needs initdb/pg_ctl (the harness restarts its database, so the shared server will not do).
Without them it skips with one line, and under CI=true it fails instead of skipping.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import pg

ROOT = Path(__file__).resolve().parents[2]


def test_quick_chaos_run_finds_no_duplicate_loss_or_stuck_run(tmp_path: Path) -> None:
    if not (pg._pg_bin("initdb") and pg._pg_bin("pg_ctl")):
        why = "no initdb/pg_ctl on PATH or under /usr/lib/postgresql/*/bin"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"the chaos suite cannot run under CI=true: {why}", pytrace=False)
        if not pg._skip_reason:
            pg._skip_reason.append(why)
        pytest.skip(f"chaos suite: {why}")
    seed = int(os.environ.get("JOBCTL_CHAOS_SEED", "10"))
    folder = tmp_path / "chaos"
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBCTL_")}
    done = subprocess.run(
        [sys.executable, "-m", "bench.chaos", "--quick", "--seed", str(seed), "--dir",
         str(folder)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    summary = (folder / "summary.md").read_text() if (folder / "summary.md").exists() else ""
    assert done.returncode == 0, (
        f"chaos run (seed {seed}) failed, exit {done.returncode}:\n{summary or done.stdout[-4000:]}"
        f"\n{done.stderr[-2000:]}"
    )
    # the run did what it says: faults of every kind were carried out, fires were checked
    assert "| duplicate executions | 0 |" in summary
    for kind in ("kill", "stop-long", "cut-long", "db-immediate", "latency"):
        assert f"| {kind} | 0 |" not in summary, f"no {kind} fault was carried out"
    assert "fires expected in the window: 0" not in summary
