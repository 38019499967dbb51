"""Shell completions: the committed scripts are current, and job names complete from the store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_committed_completion_scripts_are_current(cli, shell: str) -> None:
    r = cli("completion", shell)
    assert r.code == 0
    committed = (ROOT / "completions" / f"jobctl.{shell}").read_text()
    assert r.out == committed, (
        f"completions/jobctl.{shell} is stale: regenerate with "
        f"`jobctl completion {shell} > completions/jobctl.{shell}`"
    )
    assert "_JOBCTL_COMPLETE" in committed


def test_unknown_shell_is_usage_error(cli) -> None:
    r = cli("completion", "tcsh")
    assert r.code == 2 and "tcsh" in r.err


def test_job_names_complete_from_store(cli, home: Path) -> None:
    for name in ("backup", "build", "other"):
        assert cli("add", name, "--every", "1h", "--", "true").code == 0
    env = {
        **os.environ,
        "JOBCTL_HOME": str(home),
        "_JOBCTL_COMPLETE": "complete_bash",
        "COMP_WORDS": "jobctl show b",
        "COMP_CWORD": "2",
    }
    out = subprocess.run(
        [sys.executable, "-m", "jobctl"], env=env, capture_output=True, text=True, timeout=30
    )
    assert out.stdout.split() == ["backup", "build"], out.stderr


def test_job_names_complete_from_the_home_on_the_command_line(cli, tmp_path: Path) -> None:
    other = tmp_path / "other"
    assert cli("--home", str(other), "add", "elsewhere", "--every", "1h", "--", "true").code == 0
    env = {**os.environ, "_JOBCTL_COMPLETE": "complete_bash",
           "COMP_WORDS": f"jobctl --home {other} show ", "COMP_CWORD": "4"}  # fmt: skip
    out = subprocess.run(
        [sys.executable, "-m", "jobctl"], env=env, capture_output=True, text=True, timeout=30
    )
    assert out.stdout.split() == ["elsewhere"], out.stderr
