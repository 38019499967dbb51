"""Issue 14, item 8 (the rest): usage shows NAME, help lines are whole, typer's own usage
errors in jobctl's one-line style (exit 2), and `add`'s warnings."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest

# every test on SQLite and on PostgreSQL (tests/cli/conftest.py: any_store)
pytestmark = pytest.mark.usefixtures("any_store")


@pytest.mark.parametrize(
    ("verb", "usage"),
    [
        ("show", "Usage: jobctl show [OPTIONS] NAME"),
        ("add", "Usage: jobctl add [OPTIONS] NAME [COMMAND...]"),
        ("rm", "Usage: jobctl rm [OPTIONS] NAMES..."),
        ("history", "Usage: jobctl history [OPTIONS] [NAME]"),
        ("retry", "Usage: jobctl retry [OPTIONS] RUN_ID"),
        ("logs", "Usage: jobctl logs [OPTIONS] TARGET"),
        ("completion", "Usage: jobctl completion [OPTIONS] SHELL"),
    ],
)
def test_usage_names_arguments_in_capitals(cli, verb: str, usage: str) -> None:
    r = cli(verb, "--help")
    assert r.code == 0 and r.out.splitlines()[0] == usage
    assert not re.search(r"\{\w+\}", r.out), r.out  # never typer's {name}


def test_top_level_help_lines_are_whole(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    out = cli("--help").out
    cut = [line for line in out.splitlines()
           if line.endswith("...") and not line.endswith(("COMMAND...", "[ARGS]..."))]  # fmt: skip
    assert cut == [], out  # nothing cut with "..."
    assert all(len(line) <= 80 for line in out.splitlines())
    commands = out[out.index("Commands:") :]
    joined = " ".join(commands.split())
    assert "add Add a job: jobctl add NAME [--cron EXPR | --every D | --at T] [options] -- " \
           "COMMAND..." in joined  # fmt: skip
    assert "logs Output of the latest run of NAME (the running one, else the last that ran)," \
           " or of RUN_ID." in joined  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["show"], "missing argument NAME"),
        (["rm"], "missing argument NAMES..."),
        (["cancel"], "missing argument RUN_ID"),
        (["list", "--bogus"], "no such option: --bogus"),
        (["list", "--ta", "x"], "no such option: --ta; did you mean --sort or --tag?"),
        (["lis"], "no such command 'lis'; did you mean 'list'?"),
        (["history", "--limit"], "option '--limit' requires an argument"),
        (["show", "a", "b"], "unexpected extra argument(s): b"),
        (["--bogus", "list"], "no such option: --bogus"),
    ],
)
def test_typer_usage_errors_in_jobctl_style(cli, argv: list[str], message: str) -> None:
    r = cli(*argv)
    assert (r.code, r.out, r.err) == (2, "", f"jobctl: {message}\n")


def test_every_error_line_starts_lower_case_without_a_period(cli) -> None:
    """jobctl's own errors and typer's alike: 'jobctl: ' + a lower-case start, no '.' end."""
    errors = [
        cli("show", "nope").err,
        cli("add", "x", "--cron", "bad", "--", "true").err,
        cli("list", "--nope").err,
        cli("show").err,
        cli("nope").err,
    ]
    for err in errors:
        line = err.rstrip("\n")
        assert "\n" not in line and line.startswith("jobctl: ") and not line.endswith(".")
        assert line[len("jobctl: ")].islower(), line


def test_add_warns_when_no_runner_is_active(cli) -> None:
    r = cli("add", "a", "--every", "1h", "--", "true")
    assert r.code == 0 and "warning: no runner is active" in r.err
    assert cli("show", "a", "--json").json()["name"] == "a"  # added all the same
    for quiet in (["b", "--", "true"], ["c", "--every", "1h", "--paused", "--", "true"]):
        r = cli("add", *quiet)  # manual only, paused: nothing would fire anyway
        assert r.code == 0 and "runner" not in r.err, r.err


def test_add_is_quiet_about_runners_while_one_is_active(cli, monkeypatch) -> None:
    monkeypatch.setattr("jobctl.status.runners_alive", lambda s: ([], {"me:1:1": True}, 0.0))
    r = cli("add", "a", "--every", "1h", "--", "true")
    assert r.code == 0 and "runner" not in r.err, r.err


def test_add_warns_when_the_program_is_not_found(cli, tmp_path: Path, monkeypatch) -> None:
    r = cli("add", "a", "--", "no-such-program-here", "x")
    assert r.code == 0
    assert "warning: program 'no-such-program-here' is not on PATH" in r.err
    assert cli("show", "a", "--json").json()["command"] == ["no-such-program-here", "x"]
    assert "program" not in cli("add", "b", "--", "true").err  # found: quiet
    assert "program" not in cli("add", "c", "--shell", "--", "nope | true").err  # the shell's
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/sh\n")
    monkeypatch.chdir(tmp_path)
    assert "is not an executable file" in cli("add", "d", "--", "./job.sh").err
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    assert "program" not in cli("add", "e", "--", "./job.sh").err
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "mine").write_text("#!/bin/sh\n")
    (bin_dir / "mine").chmod(0o755)
    assert "program" not in cli("add", "f", "--env", f"PATH={bin_dir}", "--", "mine").err
    assert "not on PATH" in cli("add", "g", "--", "mine").err
    assert os.environ["PATH"]


def test_qa_pass_messages(cli, home, monkeypatch) -> None:
    """A long error is shown whole where the table has room (cut with … only to fit), a
    replay of a run that is still going says so, a name given twice is one job, and a full
    disk under stdout is said plainly (QA pass, items 9 and 15)."""
    from jobctl.config import resolve_settings
    from jobctl.models import Run
    from jobctl.store import open_store

    assert cli("add", "p", "--", "true").code == 0
    store = open_store(resolve_settings())
    t = store.get_job("p").created_at + 1
    error = "its runner died (vm:8631:63227); its process group 8791 was terminated, and more"
    store.add_run(Run(job="p", scheduled_for=t, created_at=t, finished_at=t + 1,
                      status="abandoned", error=error))  # fmt: skip
    monkeypatch.setenv("COLUMNS", "300")
    assert error in cli("history", "p").out  # room for it: nothing is cut
    monkeypatch.setenv("COLUMNS", "70")
    (row,) = cli("history", "p").out.splitlines()[1:]
    assert len(row) == 70 and row.endswith("…") and error[:20] in row
    running = store.add_run(Run(job="p", scheduled_for=t + 5, created_at=t + 5, started_at=t + 5,
                                status="running", owner="x:1:1"))  # fmt: skip
    r = cli("retry", str(running.id), "--detach")
    assert r.code == 3
    assert r.err == (f"jobctl: run {running.id} is still running; use --force to replay its "
                     "fire now all the same\n")  # fmt: skip
    r = cli("pause", "p", "p")
    assert r.code == 0 and r.err == "paused p\n"
    assert cli("resume", "p", "p").err == "resumed p\n"


def test_a_full_disk_under_stdout_is_said_plainly(tmp_path) -> None:
    import os
    import subprocess
    import sys

    if not os.path.exists("/dev/full"):
        import pytest

        pytest.skip("no /dev/full here")
    env = dict(os.environ, JOBCTL_HOME=str(tmp_path / "home"))
    for i in range(40):  # more than the stream's buffer holds
        subprocess.run([sys.executable, "-m", "jobctl", "add", f"job{i}", "--every", "1h",
                        "--", "true"], env=env, capture_output=True, check=True)  # fmt: skip
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-m", "jobctl", "list"], env=env, stdout=full,
                              stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert (done.returncode, done.stderr) == (1, "jobctl: No space left on device\n")


def test_more_qa_pass_answers(cli, home) -> None:
    """An empty --home/--store is refused (not taken as the default), `status --check
    --json` prints the status as JSON with the check's exit code, and `edit` warns of a
    program it cannot find as `add` does."""
    import json

    for flag, what in (("--home", "a path"), ("--store", "a path or URL")):
        r = cli(flag, "", "list")
        assert (r.code, r.err) == (2, f"jobctl: invalid {flag} '': give {what} (or leave "
                                      "the flag out)\n")  # fmt: skip
    r = cli("status", "--check", "--json")
    assert r.code == 1 and json.loads(r.out)["runner"]["active"] is False
    assert r.err == "runner: not running (start one with: jobctl runner)\n"
    assert cli("add", "t", "--", "true").code == 0
    r = cli("edit", "t", "--", "nosuchprog_qa")
    assert r.code == 0 and "warning: program 'nosuchprog_qa' is not on PATH" in r.err
    assert "warning" not in cli("edit", "t", "--retries", "1").err
