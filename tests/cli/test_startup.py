"""Start-up stays lean (issue 13): what a command imports and builds, checked by what it does,
never by how long it takes (speed is measured in bench/commands.py)."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path

import pytest

#: modules a read-only command must not import: process control, the planner, rich
HEAVY = ("jobctl.executor", "jobctl.planner", "jobctl.runner", "rich", "typer.rich_utils")


def _imports_after(
    home: Path, *argv: str, fancy: bool = False, watch: tuple[str, ...] = HEAVY
) -> tuple[set[str], str]:
    """Run `jobctl ARGV` in a fresh interpreter; the `watch` modules (default HEAVY) it
    imported, and stdout."""
    code = (
        "import sys\n"
        "from jobctl import render\n"
        f"render.fancy = lambda: {fancy}\n"
        "from jobctl.__main__ import main\n"
        f"rc = main({list(argv)!r})\n"
        f"print('IMPORTED', sorted(m for m in sys.modules if m.startswith({watch!r})))\n"
        "sys.exit(rc)\n"
    )
    env = {**os.environ, "JOBCTL_HOME": str(home), "NO_COLOR": ""}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    *out, last = done.stdout.rstrip("\n").split("\n")
    assert last.startswith("IMPORTED ")
    return set(eval(last.removeprefix("IMPORTED "))), "\n".join(out)


@pytest.mark.parametrize(
    "argv", [("list",), ("status",), ("history", "--limit", "5"), ("dead",), ("logs", "a")]
)
def test_read_commands_import_no_process_control_nor_rich(cli, home: Path, argv) -> None:
    assert cli("add", "a", "--cron", "*/5 * * * *", "--", "true").code == 0
    assert cli("run", "a").code == 0
    imported, _ = _imports_after(home, *argv)
    assert imported == set()


@pytest.mark.parametrize("local", ["UTC", "Etc/UTC"])
def test_commands_in_utc_read_no_tz_database(
    cli, home: Path, monkeypatch: pytest.MonkeyPatch, local: str
) -> None:
    """UTC (every job's default zone, and many servers') is datetime's own: a command that
    shows or plans UTC times does not import zoneinfo (2 ms of start-up, issue 13). So is
    Etc/UTC, what /etc/localtime names on many servers, and the zone of a job added there."""
    monkeypatch.setenv("TZ", local)
    assert cli("add", "a", "--cron", "*/5 * * * *", "--tz", local, "--", "true").code == 0
    assert cli("run", "a").code == 0
    for argv in [("list",), ("status",), ("history",), ("next", "a"),
                 ("add", "b", "--cron", "0 3 * * *", "--", "true")]:  # fmt: skip
        imported, _ = _imports_after(home, *argv, watch=("zoneinfo",))
        assert imported == set(), argv
    assert "+00:00" in _imports_after(home, "next", "a", "--json")[1]
    monkeypatch.setenv("TZ", "Europe/Paris")  # the check sees zoneinfo where it is needed
    assert "zoneinfo" in _imports_after(home, "list", watch=("zoneinfo",))[0]


def test_history_list_and_status_import_no_json(cli, home: Path) -> None:
    """None reads a JSON column nor writes JSON: json is imported where it is used (status
    reads its upcoming fires with Store.next_fires, not whole jobs)."""
    assert cli("add", "a", "--cron", "*/5 * * * *", "--", "true").code == 0
    assert cli("run", "a").code == 0
    for argv, line in [(("history",), ["1", "a"]), (("list",), ["a", "*/5"]),
                       (("status",), ["a"])]:  # fmt: skip
        imported, out = _imports_after(home, *argv, watch=("json",))
        assert imported == set() and any(text.split()[: len(line)] == line
                                          for text in out.splitlines()), (argv, out)  # fmt: skip
    assert "json" in _imports_after(home, "list", "--json", watch=("json",))[0]


def test_commands_import_no_dataclasses(cli, home: Path) -> None:
    """The records every command builds are @record's (jobctl/records.py), made without
    dataclasses, and so is schedule's Cron: importing it and making the classes with it cost
    5 ms a command (issue 13)."""
    assert cli("add", "a", "--cron", "*/5 * * * *", "--", "true").code == 0
    assert cli("run", "a").code == 0
    adding = ("add", "b", "--cron", "0 3 * * *", "--max-output", "1MiB", "--", "true")
    for argv in [("status",), ("list",), ("history", "--limit", "20"), ("next", "a"), adding]:
        imported, out = _imports_after(home, *argv, watch=("dataclasses",))
        assert imported == set(), (argv, out)
    assert "a" in _imports_after(home, "list", watch=("dataclasses",))[1].split()
    # the check sees dataclasses where it is imported: `export` writes with jobfile's own
    assert "dataclasses" in _imports_after(home, "export", watch=("dataclasses",))[0]


def test_tables_on_a_terminal_are_coloured_without_rich(cli, home: Path) -> None:
    assert cli("add", "ok", "--every", "1h", "--", "true").code == 0
    assert cli("run", "ok").code == 0
    imported, out = _imports_after(home, "list", fancy=True)
    assert "rich" not in imported
    header, row = out.split("\n")
    assert header.startswith("\x1b[1mNAME")  # bold headers
    assert "\x1b[32msucceeded" in row and "\x1b[32mactive" in row  # statuses in colour


def test_coloured_and_plain_tables_have_one_layout(monkeypatch: pytest.MonkeyPatch, capsys):
    import re

    from jobctl import render

    rows = [["a", "failed 2m ago", "active"], ["bb", "succeeded now", "paused"]]
    monkeypatch.setattr(render, "fancy", lambda: False)
    render.table(["NAME", "LAST", "STATE"], rows, styles={1: "status", 2: "status"})
    plain = capsys.readouterr().out
    monkeypatch.setattr(render, "fancy", lambda: True)
    render.table(["NAME", "LAST", "STATE"], rows, styles={1: "status", 2: "status"})
    coloured = capsys.readouterr().out
    assert coloured != plain and "\x1b[31mfailed" in coloured and "\x1b[33mpaused" in coloured
    assert re.sub(r"\x1b\[[0-9;]*m", "", coloured) == plain


def test_a_command_builds_only_its_own_options(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """typer converts the parameters of every registered command on each call: a run of
    `list` builds `list` alone (not add's and edit's thirty options)."""
    import typer

    built: list[list[str]] = []
    real = typer.main.get_command

    def spy(app: typer.Typer):  # type: ignore[no-untyped-def]
        command = real(app)
        built.append(sorted(getattr(command, "commands", {})))
        return command

    monkeypatch.setattr(typer.main, "get_command", spy)
    assert cli("list").code == 0
    assert built == [["list"]]
    assert cli("add", "x", "--every", "1h", "--", "true").code == 0
    assert built[-1] == ["add"]
    assert cli("service", "--help").code == 0  # help builds every command and group
    from jobctl.cli import VERBS

    assert set(built[-1]) == set(VERBS)
    assert "edit" in cli("--help").out  # help still lists every command
    assert cli("lis").code == 2  # and an unknown one still gets its suggestion


@pytest.mark.parametrize(
    ("argv", "long"),
    [
        (["list"], False),
        (["--home", "/x", "status"], False),
        (["status", "--watch"], True),
        (["status", "-w"], True),
        (["logs", "a", "--follow"], True),
        (["runner"], True),
        (["--home", "/x", "runner", "--once"], True),
        (["run", "a"], True),
        (["retry", "5"], True),  # in the foreground: runs the job, with a thread beside it
        (["retry", "5", "--detach"], False),
        (["add", "a", "--", "tail", "-f", "x"], False),  # a job's own flag is not jobctl's
    ],
)
def test_long_running_commands_collect_garbage(argv: list[str], long: bool) -> None:
    from jobctl.cli import _long_running, _verb_index

    i = _verb_index(argv)
    assert _long_running(argv[i], argv[i + 1 :]) is long


def test_console_entry_exits_with_the_code_and_whole_output(cli, home: Path) -> None:
    """`main()` as the console script leaves with os._exit: output flushed first, the exit
    code kept, a closed pipe not reported as an error."""
    for i in range(300):
        assert cli("add", f"j{i}", "--every", "1h", "--", "true").code == 0
    env = {**os.environ, "JOBCTL_HOME": str(home)}
    cmd = [sys.executable, "-m", "jobctl"]
    listing = subprocess.run([*cmd, "list"], env=env, capture_output=True, text=True, timeout=60)
    assert listing.returncode == 0 and len(listing.stdout.splitlines()) == 301
    missing = subprocess.run([*cmd, "show", "nope"], env=env, capture_output=True, text=True)
    assert missing.returncode == 4 and missing.stderr == "jobctl: no job named 'nope'\n"
    head = subprocess.run(
        f"{sys.executable} -m jobctl list | head -1; exit ${{PIPESTATUS[0]}}",
        shell=True, executable="/bin/bash", env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert head.stdout.startswith("NAME") and head.stderr == "" and head.returncode == 0
    code = "import gc, sys; from jobctl.__main__ import main; main(['list']); print(gc.isenabled())"
    inproc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert inproc.stdout.endswith("True\n")  # called with a list (tests): nothing changed
    assert gc.isenabled()


#: modules the budget commands do not use, nor import: json (`add` writes its JSON columns
#: with json's C quoting, store/rows.py), calendar and locale (schedule counts a month's days
#: itself), signal and select (imported where a run is stopped, and where the runner sleeps)
UNUSED = ("json", "calendar", "locale", "signal", "select")


def _deferred_after(home: Path, *argv: str) -> tuple[dict[str, bool], list[str], str]:
    """Run `jobctl ARGV` as the console script does (main() without arguments); which of
    deferred.DEFERRED it imported (not Python's start-up), each True if still a stand-in at
    exit; which of UNUSED it imported; and stdout."""
    code = (
        "import atexit, sys\n"
        f"sys.argv = ['jobctl', *{list(argv)!r}]\n"
        "before = set(sys.modules)  # e.g. an editable install's finder imports fnmatch\n"
        "def report():\n"
        "    from jobctl import deferred\n"
        "    mods = {n: isinstance(sys.modules[n], deferred._StandIn)\n"
        "            for n in deferred.DEFERRED if n in sys.modules and n not in before}\n"
        "    sys.stdout.write(f'DEFERRED {mods!r}\\n')\n"
        "    sys.stdout.write(f'FINDER {deferred._Finder in sys.meta_path}\\n')\n"
        f"    used = sorted(set({UNUSED!r}) & set(sys.modules) - before)\n"
        "    sys.stdout.write(f'UNUSED {used!r}\\n')\n"
        "atexit.register(report)\n"
        "from jobctl.__main__ import main\n"
        "main()\n"
    )
    env = {**os.environ, "JOBCTL_HOME": str(home), "NO_COLOR": ""}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    *out, mods, finder, unused = done.stdout.rstrip("\n").split("\n")
    standing = eval(mods.removeprefix("DEFERRED "))
    imported = eval(unused.removeprefix("UNUSED "))
    return standing, imported, "\n".join(out) + finder.replace("FINDER ", "\nfinder: ")


@pytest.mark.parametrize(
    "argv",
    [
        ("status",),
        ("list",),
        ("history", "--limit", "5"),
        ("add", "b", "--cron", "0 3 * * *", "--env", "A=1", "--tag", "t", "--", "true"),
    ],
)
def test_short_commands_leave_typers_unused_modules_unloaded(cli, home: Path, argv) -> None:
    """The modules jobctl/deferred.py defers (typer's and click's imports for pagers, editors,
    help text) are imported but never run by the commands of the start-up budget (issue 13):
    each is still a stand-in when the command ends, and the command's output is whole. Nor
    do they import the UNUSED modules."""
    assert cli("add", "a", "--cron", "*/5 * * * *", "--", "true").code == 0
    assert cli("run", "a").code == 0
    standing, unused, out = _deferred_after(home, *argv)
    assert "subprocess" in standing and "textwrap" in standing  # typer imported them
    assert all(standing.values()), standing  # and none ran
    assert unused == [], (unused, out)
    if argv[0] == "add":  # it says so on stderr
        assert cli("show", "b", "--json").json()["env"] == {"A": "1"}
    else:
        assert any(line.split()[:1] in (["a"], ["1"], ["upcoming"])
                   for line in out.splitlines()), out  # fmt: skip


def test_a_long_running_command_loads_what_was_deferred_before_its_threads(cli, home: Path) -> None:
    """`runner --once` (long-running: it starts threads) runs with every deferred module
    loaded and plain imports after its start (deferred.stop)."""
    assert cli("add", "a", "--cron", "*/5 * * * *", "--", "true").code == 0
    standing, unused, out = _deferred_after(home, "runner", "--once")
    assert "subprocess" in standing and not any(standing.values()), standing
    assert {"signal", "select"} <= set(unused)  # the check sees them where they are used
    assert out.endswith("finder: False"), out


def test_modules_of_the_budget_commands_compile_no_pattern_at_import(cli, home: Path) -> None:
    """A pattern compiled at import costs every command importing the module, used or not
    (jobdef's size pattern, 1.8 ms; schedule's duration pattern, 0.7 ms): the jobctl modules
    `status`, `list`, `history` and `add` import keep theirs as strings, compiled by `re` on
    first use. jobops' is exempt: `list` sorts with it every time."""
    import ast

    import jobctl

    assert cli("add", "a", "--cron", "*/5 * * * *", "--", "true").code == 0
    assert cli("run", "a").code == 0
    seen: set[str] = set()
    for argv in [("status",), ("list",), ("history",), ("add", "b", "--every", "5m", "--", "true")]:
        seen |= _imports_after(home, *argv, watch=("jobctl",))[0]
    assert {"jobctl.schedule", "jobctl.jobdef", "jobctl.jobops"} <= seen
    root = Path(jobctl.__file__).parent
    compiled = []
    for name in sorted(seen - {"jobctl.jobops"}):
        parts = name.split(".")[1:]
        path = root.joinpath(*parts).with_suffix(".py")
        if not path.exists():
            path = root.joinpath(*parts, "__init__.py")
        for node in ast.parse(path.read_text()).body:
            value = getattr(node, "value", None)
            if (isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute)
                    and value.func.attr == "compile"
                    and getattr(value.func.value, "id", None) == "re"):  # fmt: skip
                compiled.append(f"{name}:{node.lineno}")
    assert compiled == []


def _shape(command) -> list[tuple]:  # type: ignore[no-untyped-def]
    """What a click command is made of, command by command: each parameter's settings."""
    out = []
    for name, cmd in sorted({"": command, **getattr(command, "commands", {})}.items()):
        for sub_name, sub in sorted({"": cmd, **getattr(cmd, "commands", {})}.items()):
            for p in sub.params:
                out.append((name, sub_name, p.name, tuple(p.opts), tuple(p.secondary_opts),
                            repr(p.default), p.required, getattr(p, "help", None), p.nargs,
                            p.multiple, type(p.type).__name__, p.metavar,
                            getattr(p, "is_flag", None), p.is_eager, p.expose_value,
                            p._custom_shell_complete is not None))  # fmt: skip
            out.append((name, sub_name, sub.help, sub.short_help, sub.callback is not None))
    return out


def test_typer_reads_each_functions_parameters_once_and_builds_the_same_commands(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """jobctl.cli._once: typer reads a command function's parameters once per build (it read
    `add`'s thirty twice, 2 ms each), and every command it builds is the same as without."""
    import typer

    from jobctl import cli

    cli.register()
    read = typer.main.get_params_from_function  # typer 0.27's reader: this test names it
    calls: list[object] = []

    def counting(func):  # type: ignore[no-untyped-def]
        calls.append(func)
        return read(func)

    monkeypatch.setattr(typer.main, "get_params_from_function", counting)
    once = _shape(cli._click_command(None))
    assert len(calls) == len(set(calls)) > 20  # each function read once
    assert typer.main.get_params_from_function is counting  # put back after the build
    monkeypatch.setattr(cli, "_once", lambda real: real)  # typer's own way: read each time
    calls.clear()
    plain = _shape(cli._click_command(None))
    assert len(calls) > len(set(calls))
    assert once == plain and len(once) > 200
    assert cli._click_command("add").commands["add"].callback is not None


@pytest.mark.parametrize(
    ("argv", "code", "says"),
    [
        (["lsit"], 2, "did you mean 'list'?"),  # difflib, through its forwarder
        (["list", "--hlep"], 2, "did you mean --help?"),
        (["add", "--help"], 0, "Usage: jobctl add [OPTIONS] NAME [COMMAND...]"),  # gettext's
        (["history", "--limit", "x"], 2, "invalid --limit 'x'"),
        (["frobnicate"], 2, "'frobnicate'"),
    ],
)
def test_help_and_usage_errors_through_the_console_entry(
    home: Path, argv: list[str], code: int, says: str
) -> None:
    """Help and usage errors use what jobctl/deferred.py holds back (difflib's suggestions,
    gettext's texts, shutil's terminal size): through the console entry, where the finder is
    installed (the in-process tests call main() with a list, which installs nothing)."""
    script = (
        f"import sys\nsys.argv = ['jobctl', *{argv!r}]\nfrom jobctl.__main__ import main\nmain()\n"
    )
    env = {**os.environ, "JOBCTL_HOME": str(home), "NO_COLOR": "1", "COLUMNS": "100"}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == code, done.stderr
    assert says in done.stdout + done.stderr
    assert "Traceback" not in done.stderr
