"""Shell completions: the committed scripts are current, and job names complete from the store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# every test on SQLite and on PostgreSQL (tests/cli/conftest.py: any_store)
pytestmark = pytest.mark.usefixtures("any_store")

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


@pytest.mark.sqlite_only  # --home picks the SQLite file (JOBCTL_STORE would win)
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

    from jobctl.completing import zone_names

    names = zone_names()
    assert "Europe/Paris" in names and "UTC" in names and names == sorted(names)
    assert set(names) <= zoneinfo.available_timezones()
    assert not [n for n in names if n.startswith(("posix/", "right/")) or n == "Factory"]


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
    """A Tab starts a whole jobctl: after `add` only jobctl.cli.jobs is imported (an option's
    name is typer's to complete)."""
    code = ("import atexit, sys\n"
            "atexit.register(lambda: print('MODULES', sorted(m for m in sys.modules "
            "if m.startswith('jobctl.cli.'))))\n"
            "from jobctl.__main__ import main\nmain()\n")  # fmt: skip
    env = {**os.environ, "JOBCTL_HOME": str(home), "_JOBCTL_COMPLETE": "complete_bash",
           "COMP_WORDS": "jobctl --home x add j --overl", "COMP_CWORD": "5"}  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=30)  # fmt: skip
    lines = out.stdout.split("\n")
    assert lines[:2] == [
        "--overlap",
        "MODULES ['jobctl.cli.common', 'jobctl.cli.completers', 'jobctl.cli.jobs']",
    ], out.stdout


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


# ---- the early answer (jobctl/completing.py) and typer's, side by side ----------------------

SHELLS = ("bash", "zsh", "fish")


def _tab_env(shell: str, line: str) -> dict[str, str]:
    """The environment `shell`'s completion function gives `jobctl` for the last word."""
    if shell == "bash":
        words = line.split()
        cword = len(words) if line.endswith(" ") else len(words) - 1
        return {"_JOBCTL_COMPLETE": "complete_bash", "COMP_WORDS": line, "COMP_CWORD": str(cword)}
    return {"_JOBCTL_COMPLETE": f"complete_{shell}", "_TYPER_COMPLETE_ARGS": line,
            "_TYPER_COMPLETE_FISH_ACTION": "get-args"}  # fmt: skip


def _typers_answer(monkeypatch, capsys, shell: str, line: str) -> str:
    """What jobctl.cli (typer) prints for the Tab, in this process."""
    from jobctl.cli import run

    with monkeypatch.context() as m:
        for k, v in _tab_env(shell, line).items():
            m.setenv(k, v)
        capsys.readouterr()
        with pytest.raises(SystemExit) as done:  # click leaves with exit after completing
            run([])
    assert done.value.code == 0
    return capsys.readouterr().out


def _same_second(text: str) -> str:
    """Run ids' help ends with how long ago: the two answers may straddle a second."""
    import re

    return re.sub(r"(?:(?:\d+[smhd])+ ago|now)(?=\"|$)", "<when>", text, flags=re.M)


def _typers_verbs(shell: str) -> str:
    """typer's answer to `jobctl <Tab>` from a fresh process (in this one, the order of the
    verbs is the order earlier tests registered their modules in)."""
    code = "import sys\nfrom jobctl.cli import run\nsys.exit(run([]))\n"
    env = {**os.environ, **_tab_env(shell, "jobctl ")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=30)  # fmt: skip
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.fixture
def tab_store(cli) -> None:
    for name in ("backup", "build", "other"):
        assert cli("add", name, "--every", "1h", "--", "true").code == 0
    assert cli("add", "bad", "--", "false").code == 0
    assert cli("run", "backup").code == 0
    assert cli("run", "bad").code == 1  # dead
    assert cli("run", "backup", "--detach").code == 0  # queued


@pytest.mark.parametrize("shell", SHELLS)
def test_the_early_answer_is_typers_for_verbs_and_first_arguments(
    monkeypatch, capsys, tab_store, home: Path, shell: str
) -> None:
    """For the verbs and every verb's first argument, the Tab answered before typer loads
    says what typer says (candidates, order, help); the verbs whose first argument completes
    in typer are exactly those the early answer serves (FIRST_ARGUMENT)."""
    from jobctl.completing import FIRST_ARGUMENT, VERB_HELP, answer

    assert answer(_tab_env(shell, "jobctl ")) + "\n" == _typers_verbs(shell)
    lines = ["jobctl s", "jobctl --debug re", f"jobctl --home {home} show b", "jobctl logs b",
             "jobctl retry 2", "jobctl zzz"]  # fmt: skip
    lines += [f"jobctl {verb} " for verb in VERB_HELP]
    for line in lines:
        early = answer({**os.environ, **_tab_env(shell, line)})
        verb = line.split()[-1] if line.endswith(" ") else None
        if verb in VERB_HELP and verb not in FIRST_ARGUMENT:
            assert early is None, line  # typer answers (nothing, or a subcommand)
            typers = _typers_answer(monkeypatch, capsys, "bash", line)
            if verb not in ("service", "config"):  # their subcommands
                assert typers.strip() == "", f"{line!r}: typer completes {typers!r}"
            continue
        assert early is not None, line
        typers = _typers_answer(monkeypatch, capsys, shell, line)
        if line.startswith("jobctl s") or line.startswith("jobctl --debug"):
            # verbs: as a set here (this process registered them in its own order)
            assert sorted(early.split("\n")) == sorted(typers.strip("\n").split("\n")), line
        else:
            assert _same_second(early + "\n") == _same_second(typers), line


@pytest.mark.parametrize("shell", SHELLS)
def test_the_early_answer_is_typers_for_the_values_of_options(
    monkeypatch, capsys, home: Path, shell: str
) -> None:
    """Every option OPTION_VALUES knows, after every verb: where the verb takes it, the early
    answer is typer's; where it does not, the early answer is None and typer offers none of
    the option's values either (checked once, in bash; `service` and `config` offer their
    subcommands)."""
    from jobctl.completing import OPTION_VALUES, VERB_HELP, answer

    for option, (values, verbs) in OPTION_VALUES.items():
        for verb in VERB_HELP:
            for line in (f"jobctl {verb} x {option} ", f"jobctl {verb} {option} E"):
                early = answer({**os.environ, **_tab_env(shell, line)})
                if verb in verbs:
                    assert early is not None, line
                    assert early + "\n" == _typers_answer(monkeypatch, capsys, shell, line), line
                else:
                    assert early is None, line
                    if shell == "bash" and line.endswith(" ") and verb not in ("service", "config"):
                        offered = _typers_answer(monkeypatch, capsys, "bash", line).split()
                        assert not set(offered) & set(values("")), (line, offered)
    assert answer({**os.environ, **_tab_env(shell, "jobctl add x --tz Europe/Pari")}) == (
        _typers_answer(monkeypatch, capsys, shell, "jobctl add x --tz Europe/Pari").rstrip("\n")
    )


def test_the_early_answer_leaves_options_values_and_quotes_to_typer(home: Path) -> None:
    from jobctl.completing import answer

    lines = ("jobctl -", "jobctl show --json b", "jobctl show b c", "jobctl add x -- c --tz E",
             "jobctl list --tz ", "jobctl add x --tz=E",
             "jobctl --home ", "jobctl --home=x show ", "jobctl show 'b",
             "jobctl show a\\ b")  # fmt: skip
    for line in lines:
        assert answer(_tab_env("bash", line)) is None, line
    fish_is_args = {**_tab_env("fish", "jobctl "), "_TYPER_COMPLETE_FISH_ACTION": "is-args"}
    assert answer(fish_is_args) is None
    assert answer({"_JOBCTL_COMPLETE": "complete_powershell"}) is None


def test_a_tab_on_a_verb_or_a_job_name_imports_neither_typer_nor_rich(cli, home: Path) -> None:
    assert cli("add", "backup", "--every", "1h", "--", "true").code == 0
    code = ("import atexit, sys\n"
            "atexit.register(lambda: print('LOADED', sorted(m for m in ('typer', 'rich', "
            "'jobctl.cli') if m in sys.modules)))\n"
            "from jobctl.__main__ import main\nmain()\n")  # fmt: skip
    tabs = [("bash", "jobctl sh", "show"), ("zsh", "jobctl show b", "_arguments"),
            ("fish", "jobctl st", "status\tWhether")]  # fmt: skip
    for shell, line, first in tabs:
        env = {**os.environ, "JOBCTL_HOME": str(home), **_tab_env(shell, line)}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, timeout=30)  # fmt: skip
        assert out.stdout.startswith(first), (line, out.stdout, out.stderr)
        assert "LOADED []" in out.stdout, (line, out.stdout)


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_typer_writes_each_help_on_one_line_too(monkeypatch, capsys, cli, shell: str) -> None:
    """typer wrapped a help longer than 80 columns (through rich), and fish took the wrapped
    piece for a candidate of its own; `retry --detach <Tab>` is typer's to answer."""
    name = "a-job-whose-name-is-as-long-as-a-name-may-be-64-characters-long-"
    assert len(name) == 64  # its help, "NAME failed (dead) 3s ago", is wider than 80
    assert cli("add", name, "--", "false").code == 0
    assert cli("run", name).code == 1
    out = _typers_answer(monkeypatch, capsys, shell, "jobctl retry --detach ")
    assert out.count("\n") == 1, out
    assert f"{name} failed (dead) " in out


def test_a_tab_with_a_home_that_cannot_be_read_completes_nothing(monkeypatch, capsys) -> None:
    """`--home ~nosuchuser` cannot be expanded: both answers are empty, neither a traceback."""
    from jobctl.completing import answer

    for shell, empty in (("bash", ""), ("zsh", "_files"), ("fish", "")):
        line = "jobctl --home ~no-such-user-here show "
        assert answer({**os.environ, **_tab_env(shell, line)}) == empty
        assert _typers_answer(monkeypatch, capsys, shell, line) == empty + "\n"
        line = "jobctl --home ~no-such-user-here retry "
        assert answer({**os.environ, **_tab_env(shell, line)}) == empty


def test_odd_lines_are_read_as_typer_reads_them_or_left_to_it(monkeypatch, capsys) -> None:
    from jobctl.completing import answer

    for words, cword in (("", "-1"), ("jobctl show", "-5"), ("jobctl", "7"), ("", "0")):
        env = {**os.environ, "_JOBCTL_COMPLETE": "complete_bash", "COMP_WORDS": words,
               "COMP_CWORD": cword}  # fmt: skip
        early = answer(env)
        with monkeypatch.context() as m:
            for k in ("COMP_WORDS", "COMP_CWORD", "_JOBCTL_COMPLETE"):
                m.setenv(k, env[k])
            from jobctl.cli import run

            capsys.readouterr()
            with pytest.raises(SystemExit):
                run([])
        typers = capsys.readouterr().out  # the verbs, in this process's order of them
        assert early is not None, (words, cword)
        assert sorted(early.split("\n")) == sorted(typers[:-1].split("\n")), (words, cword)
    for line in ("jobctl sh\xa0", "jobctl show b\x0b", "jobctl\u2003sh"):  # not shlex's spaces
        assert answer({**os.environ, **_tab_env("bash", line)}) is None, repr(line)


def test_the_store_on_the_command_line_is_the_one_read(cli, tmp_path: Path) -> None:
    other = tmp_path / "elsewhere.db"
    assert cli("--store", str(other), "add", "there", "--every", "1h", "--", "true").code == 0
    assert cli("add", "here", "--every", "1h", "--", "true").code == 0
    from jobctl.completing import answer

    line = f"jobctl --store {other} show "
    assert answer({**os.environ, **_tab_env("bash", line)}) == "there"
    assert answer({**os.environ, **_tab_env("bash", "jobctl show ")}) == "here"


def test_zsh_and_fish_items_are_typers_but_on_one_line() -> None:
    """The formats are typer's own (its escaping for zsh's _arguments), help on one line."""
    from typer._click.shell_completion import CompletionItem
    from typer._completion_classes import FishComplete, ZshComplete

    from jobctl.completing import fish_item, zsh_item

    zsh = ZshComplete(None, {}, "jobctl", "_JOBCTL_COMPLETE")  # type: ignore[arg-type]
    fish = FishComplete(None, {}, "jobctl", "_JOBCTL_COMPLETE")  # type: ignore[arg-type]
    for value, help_ in (("a:b", 'say "hi" $HOME `x`'), ("it's", ""), ("p", "a: b's c")):
        item = CompletionItem(value, help=help_ or None)
        assert zsh_item(value, help_) == zsh.format_completion(item)
        assert fish_item(value, help_) == fish.format_completion(item)
    assert fish_item("v", "two\n  lines") == "v\ttwo lines"
    assert zsh_item("v", "two\n  lines") == '"v":"two lines"'


@pytest.mark.sqlite_only  # --home picks the SQLite file (JOBCTL_STORE would win)
def test_a_tab_creates_no_store_and_waits_little_for_a_server(
    monkeypatch, capsys, tmp_path: Path
) -> None:
    """A mistyped --home completes nothing and is not created (nor its database), a file
    that is not a store of this schema is neither migrated nor written; a PostgreSQL store
    is given GLANCE_CONNECT_S to answer, not a command's 5 s."""
    from jobctl import completing
    from jobctl.config import Settings
    from jobctl.errors import StoreError
    from jobctl.store import GLANCE_CONNECT_S

    nowhere = tmp_path / "nowhere"
    for shell, empty in (("bash", ""), ("zsh", "_files")):
        for verb in ("show", "retry", "logs"):
            line = f"jobctl --home {nowhere} {verb} "
            assert completing.answer({**os.environ, **_tab_env(shell, line)}) == empty
            assert _typers_answer(monkeypatch, capsys, shell, line) == empty + "\n"
    assert not nowhere.exists()
    empty = tmp_path / "empty.db"  # a file that is no store of this jobctl's schema
    empty.write_bytes(b"")
    for verb in ("show", "retry"):
        line = f"jobctl --home {nowhere} --store {empty} {verb} "
        assert completing.answer({**os.environ, **_tab_env("bash", line)}) == ""
    assert empty.read_bytes() == b"" and not nowhere.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["empty.db"]  # no -wal, no lock file

    pytest.importorskip("psycopg")
    import jobctl.store.postgres

    asked: list[dict[str, object]] = []

    def refused(url: str, **kwargs: object) -> None:
        asked.append(kwargs)
        raise StoreError("cannot reach the server")

    monkeypatch.setattr(jobctl.store.postgres, "PostgresStore", refused)
    settings = Settings(home=tmp_path, store_url="postgresql://nobody@127.0.0.1:1/none")
    assert completing.job_names(completing.glance(lambda: settings), "") == []
    assert completing.run_ids(completing.glance(lambda: settings), "", "any") == []
    glance = {"lock_timeout_s": GLANCE_CONNECT_S, "connect_timeout_s": GLANCE_CONNECT_S}
    assert asked == [glance] * 2
    asked.clear()  # `logs <Tab>`: job names and run ids from one opening (one wait), not two
    assert completing.first_argument(lambda: settings, "logs", "") == []
    assert asked == [glance]
