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


# ---- values, run ids and the shells themselves (issue 14, item 9) --------------------------

BIN = str(Path(sys.executable).parent)  # the `jobctl` console script of this environment


def _complete(home: Path, line: str) -> list[str]:
    """What `jobctl` answers bash for the last word of `line` (the protocol, without bash)."""
    words = line.split()
    cword = len(words) if line.endswith(" ") else len(words) - 1
    env = {**os.environ, "JOBCTL_HOME": str(home), "_JOBCTL_COMPLETE": "complete_bash",
           "COMP_WORDS": line, "COMP_CWORD": str(cword)}  # fmt: skip
    out = subprocess.run(
        [sys.executable, "-m", "jobctl"], env=env, capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("jobctl add x --overlap ", ["skip", "queue", "allow", "replace"]),
        ("jobctl edit x --overlap r", ["replace"]),
        ("jobctl add x --misfire ", ["once", "skip", "all"]),
        ("jobctl add x --backoff l", ["linear"]),
        ("jobctl history --status ti", ["timed_out"]),
        ("jobctl add x --tz Europe/Pari", ["Europe/Paris"]),
        ("jobctl next --tz America/New_", ["America/New_York"]),
        ("jobctl edit x --tz Etc/UT", ["Etc/UTC"]),
        ("jobctl completion ", ["bash", "zsh", "fish"]),
        ("jobctl completion f", ["fish"]),
    ],
)
def test_option_values_complete(home: Path, line: str, expected: list[str]) -> None:
    assert _complete(home, line) == expected


def test_zone_names_are_the_tz_databases() -> None:
    import zoneinfo

    from jobctl.cli.completers import zone_names

    names = zone_names()
    assert "Europe/Paris" in names and "UTC" in names and names == sorted(names)
    assert set(names) <= zoneinfo.available_timezones() | {"Factory"}
    assert not [n for n in names if n.startswith(("posix/", "right/"))]


def test_run_ids_complete_for_logs_retry_and_cancel(cli, home: Path) -> None:
    assert cli("add", "ok", "--", "true").code == 0
    assert cli("add", "bad", "--", "false").code == 0
    assert cli("run", "ok").code == 0  # run 1
    assert cli("run", "bad").code == 1  # run 2: dead (no retries)
    queued = cli("run", "ok", "--detach").out.strip()  # run 3: queued, no runner
    assert queued == "3"
    assert _complete(home, "jobctl cancel ") == ["3"]  # only what can be stopped
    assert _complete(home, "jobctl retry ")[:2] == ["2", "1"]  # the dead first, then finished
    assert "3" not in _complete(home, "jobctl retry ")
    logs = _complete(home, "jobctl logs ")
    assert logs[:2] == ["bad", "ok"] and set(logs[2:]) == {"1", "2", "3"}
    assert _complete(home, "jobctl logs b") == ["bad"]


def test_run_ids_carry_a_line_of_help_for_zsh_and_fish(cli, home: Path) -> None:
    assert cli("add", "bad", "--", "false").code == 0
    assert cli("run", "bad").code == 1
    env = {**os.environ, "JOBCTL_HOME": str(home), "_JOBCTL_COMPLETE": "complete_fish",
           "_TYPER_COMPLETE_FISH_ACTION": "get-args",
           "_TYPER_COMPLETE_ARGS": "jobctl retry "}  # fmt: skip
    out = subprocess.run([sys.executable, "-m", "jobctl"], env=env, capture_output=True,
                         text=True, timeout=30)  # fmt: skip
    assert out.stdout.startswith("1\tbad failed (dead) "), out.stdout


def test_a_tab_after_a_verb_loads_its_module_alone(home: Path) -> None:
    """A Tab starts a whole jobctl: after `add` only jobctl.cli.jobs is imported."""
    code = ("import atexit, sys\n"
            "atexit.register(lambda: print('MODULES', sorted(m for m in sys.modules "
            "if m.startswith('jobctl.cli.'))))\n"
            "from jobctl.__main__ import main\nmain()\n")  # fmt: skip
    env = {**os.environ, "JOBCTL_HOME": str(home), "_JOBCTL_COMPLETE": "complete_bash",
           "COMP_WORDS": "jobctl --home x add j --overlap ", "COMP_CWORD": "6"}  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=30)  # fmt: skip
    lines = out.stdout.split("\n")
    assert lines[:4] == ["skip", "queue", "allow", "replace"], out.stdout
    modules = next(line for line in lines if line.startswith("MODULES "))
    assert modules == "MODULES ['jobctl.cli.common', 'jobctl.cli.completers', 'jobctl.cli.jobs']"


def _shell(name: str) -> str:
    import shutil

    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed: its completion is not tested here")
    return path


def _shell_env(home: Path) -> dict[str, str]:
    return {**os.environ, "JOBCTL_HOME": str(home), "PATH": f"{BIN}:{os.environ['PATH']}"}


def test_bash_completes_through_the_committed_script(cli, home: Path) -> None:
    bash = _shell("bash")
    assert cli("add", "backup", "--every", "1h", "--", "true").code == 0
    script = (f"source {ROOT / 'completions' / 'jobctl.bash'}\n"
              "complete -p jobctl\n"
              "COMP_WORDS=(jobctl add x --overlap ''); COMP_CWORD=4\n"
              "_jobctl_completion jobctl; echo \"${COMPREPLY[*]}\"\n"
              "COMP_WORDS=(jobctl show ba); COMP_CWORD=2\n"
              "_jobctl_completion jobctl; echo \"${COMPREPLY[*]}\"\n")  # fmt: skip
    out = subprocess.run([bash, "--norc", "-c", script], env=_shell_env(home),
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.stdout.split("\n")[1:3] == ["skip queue allow replace", "backup"], out.stderr
    assert "_jobctl_completion" in out.stdout.split("\n")[0]


def test_zsh_completes_through_the_committed_script(cli, home: Path) -> None:
    zsh = _shell("zsh")
    assert cli("add", "backup", "--every", "1h", "--", "true").code == 0
    # compsys itself needs a terminal: its two entry points are stood in for, and print
    script = ("compdef() { print compdef $@ }\n"
              "_arguments() { print -rl -- $@ }\n_files() { print FILES }\n"
              f"source {ROOT / 'completions' / 'jobctl.zsh'}\n"
              "words=(jobctl add x --misfire ''); CURRENT=5; _jobctl_completion\n"
              "words=(jobctl show b); CURRENT=3; _jobctl_completion\n")  # fmt: skip
    out = subprocess.run([zsh, "-f", "-c", script], env=_shell_env(home),
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.stdout.split("\n")[:3] == [
        "compdef _jobctl_completion jobctl",
        '*: :(("once" "skip" "all"))',
        '*: :(("backup"))',
    ], (out.stdout, out.stderr)


def test_fish_completes_through_the_committed_script_once_per_tab(cli, home: Path) -> None:
    fish = _shell("fish")
    assert cli("add", "backup", "--every", "1h", "--", "true").code == 0
    (home / "calls").write_text("")
    wrapper = home / "bin" / "jobctl"  # counts the calls, then runs the real one
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\necho x >> {home / "calls"}\nexec {BIN}/jobctl "$@"\n')
    wrapper.chmod(0o755)
    env = {**_shell_env(home), "PATH": f"{wrapper.parent}:{BIN}:{os.environ['PATH']}"}
    script = (f"source {ROOT / 'completions' / 'jobctl.fish'}\n"
              "complete -C 'jobctl add x --overlap r'\n"
              f"complete -C 'jobctl import {home}/cal'\n")  # fmt: skip
    out = subprocess.run([fish, "--no-config", "-c", script], env=env,
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.stdout.split("\n")[:2] == ["replace", f"{home}/calls"], (out.stdout, out.stderr)
    assert (home / "calls").read_text().count("x") == 2  # one call per Tab
