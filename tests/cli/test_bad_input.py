"""CLI: bad input found by an attacker (issue 8, items 5 and 6).

Every user error is one line on stderr naming the bad value, with the exit code of SPEC 3,
no traceback and no partial write; values from users and jobs never reach the terminal as raw
control characters in human output.
"""

from __future__ import annotations

import re

import pytest

from tests.cli.test_jobs_cli import db_dump

# every test on SQLite and on PostgreSQL (tests/cli/conftest.py: any_store)
pytestmark = pytest.mark.usefixtures("any_store")

HUGE = "99999999999999999999"  # > 2**63: no SQLite integer holds it
ESC_TITLE = "\x1b]0;pwned\x07"  # sets the terminal's title
ESC_CLEAR = "\x1b[2J"  # clears the screen
#: C0 and C1 control characters except the line ends and tabs of our own layout
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def one_line_error(r, code: int, needle: str) -> None:
    assert r.code == code, (r.code, r.err)
    lines = r.err.splitlines()
    assert len(lines) == 1, r.err
    assert needle in lines[0], r.err
    assert "internal error" not in r.err and "Traceback" not in r.err
    assert not CONTROL.search(r.err), r.err


# ---- run ids that cannot exist are not found ----------------------------------------------


@pytest.mark.parametrize("run_id", [HUGE, "9223372036854775808", "0", "-1"])
@pytest.mark.parametrize(
    "verb", [["logs"], ["retry"], ["cancel"], ["dead", "--dismiss"]], ids=lambda v: v[-1]
)
def test_run_ids_no_run_can_have_are_not_found(cli, verb: list[str], run_id: str) -> None:
    cli("add", "j", "--", "false")
    cli("run", "j")  # one dead run with id 1 exists
    r = cli("dead", f"--dismiss={run_id}") if verb[0] == "dead" else cli(*verb, "--", run_id)
    one_line_error(r, 4, run_id)


def test_logs_digits_name_a_job_before_a_run(cli) -> None:
    cli("add", "123", "--", "echo", "from the job")
    cli("run", "123")
    assert cli("logs", "123").out == "from the job\n"
    assert cli("logs", "1").out == "from the job\n"  # run 1
    one_line_error(cli("logs", HUGE), 4, HUGE)


# ---- one line, whatever the value holds ---------------------------------------------------


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        pytest.param(["--tz", "Europe/Paris\nX"], r"'Europe/Paris\nX'", id="tz"),
        pytest.param(["--cron", "* * * * *\n*"], r"'* * * * *\n*'", id="cron_6_fields"),
        pytest.param(["--cron", "* * * * *\nx"], r"'* * * * *\nx'", id="cron_bad_field"),
        pytest.param(["--cron", f"{ESC_CLEAR} * * * *"], r"\x1b[2J", id="cron_esc"),
        pytest.param(["--every", "5\nx"], r"'5\nx'", id="every"),
        pytest.param(["--timeout", "1m\n2"], r"'1m\n2'", id="timeout"),
        pytest.param(["--at", "5\nx"], r"'5\nx'", id="at"),
        pytest.param(["--at", "+5\nx"], r"'+5\nx'", id="at_relative"),
        pytest.param(["--start-at", "x\ny", "--every", "1m"], r"'x\ny'", id="start_at"),
        pytest.param(["--env", "A\nB"], r"'A\nB'", id="env"),
        pytest.param(["--max-output", "5\nx"], r"'5\nx'", id="size"),
        pytest.param(["--retries", "5\nx"], r"'5\nx'", id="count"),
        pytest.param(["--overlap", f"x{ESC_TITLE}"], r"\x1b]0;pwned\x07", id="choice"),
        pytest.param(["--tag", "a\nb"], r"'a\nb'", id="tag"),
        pytest.param(["--cwd", "/no\nwhere"], r"'/no\nwhere'", id="cwd"),
    ],
)
def test_errors_quoting_a_value_stay_one_line(cli, home, args: list[str], needle: str) -> None:
    cli("add", "keep", "--every", "1h", "--", "true")
    before = db_dump(home)
    one_line_error(cli("add", "x", *args, "--", "true"), 2, needle)
    assert db_dump(home) == before


@pytest.mark.parametrize(
    ("argv", "code", "needle"),
    [
        (["next", "--cron", "* * * * *\n*"], 2, r"'* * * * *\n*'"),
        (["next", "--every", "1\n2"], 2, r"'1\n2'"),
        (["next", "--cron", "* * * * *", "--tz", "Europe/Paris\nX"], 2, r"'Europe/Paris\nX'"),
        (["history", "--since", f"{ESC_CLEAR}1h"], 2, r"\x1b[2J1h"),
        (["show", f"x{ESC_TITLE}"], 4, r"\x1b]0;pwned\x07"),
        (["logs", "a\nb"], 4, r"'a\nb'"),
        (["add", "a\nb", "--", "true"], 2, r"'a\nb'"),
        (["completion", "ba\nsh"], 2, r"ba\nsh"),
    ],
)
def test_other_verbs_keep_errors_on_one_line(cli, argv: list[str], code: int, needle: str) -> None:
    one_line_error(cli(*argv), code, needle)


# ---- values that used to be accepted or to escape as internal errors ----------------------


def test_cwd_with_an_unknown_user_is_bad_input(cli, home) -> None:
    one_line_error(cli("add", "x", "--cwd", "~nosuchuser/x", "--", "true"), 2, "'~nosuchuser/x'")
    assert db_dump(home) == []
    cli("add", "y", "--", "true")
    before = db_dump(home)
    one_line_error(cli("edit", "y", "--cwd", "~nosuchuser"), 2, "'~nosuchuser'")
    assert db_dump(home) == before


def test_home_and_store_with_an_unknown_user_are_bad_input(cli) -> None:
    one_line_error(cli("--home", "~nosuchuser/h", "list"), 2, "'~nosuchuser/h'")
    one_line_error(cli("--store", "~nosuchuser/j.db", "list"), 2, "'~nosuchuser/j.db'")


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["--", ""], id="empty_program"),
        pytest.param(["--", "", "arg"], id="empty_program_with_args"),
        pytest.param(["--", "  "], id="blank_program"),
        pytest.param(["--shell", "--", ""], id="empty_shell"),
        pytest.param(["--shell", "--", " \t "], id="blank_shell"),
    ],
)
def test_an_empty_command_is_refused(cli, home, argv: list[str]) -> None:
    r = cli("add", "e", *argv)
    one_line_error(r, 2, "invalid command")
    assert db_dump(home) == []


def test_edit_refuses_an_empty_command_too(cli, home) -> None:
    cli("add", "e", "--", "true")
    before = db_dump(home)
    one_line_error(cli("edit", "e", "--", ""), 2, "invalid command ''")
    assert db_dump(home) == before


@pytest.mark.parametrize("size", ["0.5", "1.5", "0.0001KiB", "0", "0KiB", "2TiB", "1.1TB", "1PB"])
def test_sizes_must_be_whole_bytes_from_one(cli, home, size: str) -> None:
    one_line_error(cli("add", "m", "--max-output", size, "--", "true"), 2, repr(size))
    assert db_dump(home) == []


@pytest.mark.parametrize(
    ("size", "stored"),
    [
        ("0.5KiB", 512),
        ("0.1MB", 100_000),
        ("1.5k", 1500),
        ("4096", 4096),
        ("1 MiB", 1 << 20),
        ("1TB", 10**12),
        ("1TiB", 1 << 40),
        ("0.5ti", 1 << 39),
    ],
)
def test_fractional_sizes_of_whole_bytes_are_exact(cli, size: str, stored: int) -> None:
    assert cli("add", "m", "--max-output", size, "--", "true").code == 0
    assert cli("show", "m", "--json").json()["max_output"] == stored


ARABIC_3 = "\u0663"  # ARABIC-INDIC DIGIT THREE, a digit to str.isdigit() and int()


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["add", "x", "--retries", ARABIC_3, "--", "true"], id="retries"),
        pytest.param(["add", "x", "--keep-runs", ARABIC_3, "--", "true"], id="keep_runs"),
        pytest.param(["add", "x", "--every", f"{ARABIC_3}s", "--", "true"], id="every"),
        pytest.param(["add", "x", "--timeout", ARABIC_3, "--", "true"], id="duration_bare"),
        pytest.param(["add", "x", "--at", f"+{ARABIC_3}m", "--", "true"], id="at"),
        pytest.param(["add", "x", "--max-output", ARABIC_3, "--", "true"], id="size"),
        pytest.param(["add", "x", "--max-output", f"{ARABIC_3}KiB", "--", "true"], id="size_unit"),
        pytest.param(["add", "x", "--cron", f"{ARABIC_3} * * * *", "--", "true"], id="cron"),
        pytest.param(["runner", "--workers", ARABIC_3, "--once"], id="workers"),
        pytest.param(["runner", "--grace", ARABIC_3, "--once"], id="grace"),
        pytest.param(["next", "--every", "1m", "-n", ARABIC_3], id="next_n"),
        pytest.param(["history", "--limit", ARABIC_3], id="limit"),
        pytest.param(["history", "--since", f"{ARABIC_3}h"], id="since"),
        pytest.param(["prune", "--older-than", f"{ARABIC_3}d"], id="older_than"),
        pytest.param(["logs", "j", "--tail", ARABIC_3], id="tail"),
        pytest.param(["retry", ARABIC_3], id="retry"),
        pytest.param(["cancel", ARABIC_3], id="cancel"),
        pytest.param(["dead", "--dismiss", ARABIC_3], id="dismiss"),
    ],
)
def test_numbers_are_ascii_digits_only(cli, argv: list[str]) -> None:
    cli("add", "j", "--", "false")
    cli("run", "j")  # run 3 does not exist, run 1 does
    one_line_error(cli(*argv), 2, ARABIC_3)


def test_logs_with_non_ascii_digits_is_a_name_not_a_run_id(cli) -> None:
    cli("add", "j", "--", "echo", "hi")
    cli("run", "j")
    one_line_error(cli("logs", "\u0661"), 4, "\u0661")  # ARABIC-INDIC DIGIT ONE is not run 1


@pytest.mark.parametrize("frac", [0.0, 0.2, 0.5, 0.7, 0.9999])
def test_at_plus_zero_is_always_refused(cli, home, monkeypatch, frac: float) -> None:
    import jobctl.cli.jobs

    monkeypatch.setattr(jobctl.cli.jobs, "now", lambda: 1_900_000_000 + frac)
    for zero in ("+0s", "+0", "+0ms", "+0.0s"):
        one_line_error(cli("add", "a", "--at", zero, "--", "true"), 2, "must be in the future")
    assert db_dump(home) == []


@pytest.mark.parametrize("frac", [0.0, 0.2, 0.5, 0.7, 0.9999])
@pytest.mark.parametrize("delay", ["+1ms", "+0.4s", "+1s", "+1h"])
def test_a_positive_at_is_always_accepted_on_a_later_second(
    cli, monkeypatch, frac: float, delay: str
) -> None:
    import jobctl.cli.jobs

    t = 1_900_000_000 + frac
    monkeypatch.setattr(jobctl.cli.jobs, "now", lambda: t)
    r = cli("add", "a", "--at", delay, "--", "true")
    assert r.code == 0, r.err
    job = cli("show", "a", "--json").json()
    from datetime import datetime

    fire = datetime.fromisoformat(job["next_run_at"]).timestamp()
    assert fire > t and fire == int(fire)  # in the future, on a whole second
    assert fire - t < {"+1ms": 1.1, "+0.4s": 1.1, "+1s": 1.6, "+1h": 3600.6}[delay]


# ---- escape sequences in human output ---------------------------------------------------


@pytest.fixture
def hostile(cli) -> None:
    """Jobs whose user-given values and run errors carry terminal escape sequences."""
    cli(
        "add", "p", "--every", "1h", "--description", f"{ESC_TITLE} hi {ESC_CLEAR}",
        "--env", f"A={ESC_CLEAR}red", "--", "printf", f"{ESC_CLEAR}out\n",
    )  # fmt: skip
    cli("add", "q", "--", f"{ESC_TITLE}nope")  # not found: its error quotes the name
    assert cli("run", "p").code == 0
    assert cli("run", "q").code == 127


@pytest.mark.parametrize("fancy", [True, False], ids=["rich", "plain"])
@pytest.mark.parametrize(
    ("argv", "shown"),
    [
        (["show", "p"], [r"\x1b]0;pwned\x07 hi \x1b[2J", r"A=\x1b[2Jred", r"\x1b[2Jout\n"]),
        (["show", "q"], [r"\x1b]0;pwned\x07nope"]),
        (["list"], ["p", "q"]),
        (["history"], [r"command not found: \x1b]0;pwned\x07nope"]),
        (["history", "q"], [r"\x1b]0;pwned\x07nope"]),
        (["dead"], [r"\x1b]0;pwned\x07nope"]),
        (["status"], ["runner"]),
    ],
)
def test_human_output_shows_control_characters_escaped(
    cli, hostile, monkeypatch, fancy: bool, argv: list[str], shown: list[str]
) -> None:
    from jobctl import render

    monkeypatch.setattr(render, "fancy", lambda: fancy)  # a terminal, with or without NO_COLOR
    monkeypatch.setenv("COLUMNS", "400")  # rich: no folding in the middle of a value
    r = cli(*argv)
    assert r.code == 0, r.err
    out = r.out
    for code in render.SGR.values():  # a terminal's table colours are jobctl's own codes
        out = out.replace(code, "")
    assert fancy or out == r.out
    assert not CONTROL.search(out), repr(r.out)
    for text in shown:
        assert text in out, r.out


def test_json_and_logs_keep_the_raw_values(cli, hostile) -> None:
    job = cli("show", "p", "--json").json()
    assert job["description"] == f"{ESC_TITLE} hi {ESC_CLEAR}"
    assert cli("history", "q", "--json").json()[0]["error"] == f"command not found: {ESC_TITLE}nope"
    assert cli("logs", "p").out == f"{ESC_CLEAR}out\n"  # logs is `cat`: the job's bytes


def test_notes_on_stderr_show_control_characters_escaped(cli, hostile) -> None:
    r = cli("run", "q")
    assert r.code == 127
    assert not CONTROL.search(r.err), repr(r.err)
    assert r"\x1b]0;pwned\x07nope" in r.err


@pytest.mark.parametrize("fancy", [True, False], ids=["rich", "plain"])
def test_runner_events_show_control_characters_escaped(cli, monkeypatch, fancy: bool) -> None:
    import jobctl.cli.runner

    monkeypatch.setattr(jobctl.cli.runner, "_FANCY", [fancy])
    monkeypatch.setenv("COLUMNS", "400")
    cli("add", "q", "--", f"{ESC_TITLE}[/]nope")  # rich markup too
    cli("run", "q", "--detach")
    r = cli("runner", "--once")
    assert r.code == 0, r.err
    assert not CONTROL.search(r.out), repr(r.out)
    assert r"\x1b]0;pwned\x07[/]nope" in r.out


@pytest.mark.parametrize("zone", ["localtime", "posixrules", "Factory", "right/UTC"])
def test_tz_must_be_a_zone_of_the_world(cli, home, zone: str) -> None:
    """Files of the tz database that are not zones (the machine's own setting, a fleet's
    machines disagree on; leap-second clocks 27 s off) are refused as --tz (QA pass)."""
    one_line_error(cli("add", "z", "--cron", "0 9 * * *", "--tz", zone, "--", "true"), 2,
                   repr(zone))  # fmt: skip
    assert db_dump(home) == []
    one_line_error(cli("next", "--cron", "0 9 * * *", "--tz", zone), 2, repr(zone))


def test_a_posix_tz_rule_is_said_when_it_cannot_be_the_jobs_zone(
    cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i, tz in enumerate(("EST5EDT,M3.2.0,M11.1.0", "right/Europe/Paris", "posixrules")):
        monkeypatch.setenv("TZ", tz)
        r = cli("add", f"p{i}", "--cron", "0 9 * * *", "--", "true")
        zone = cli("show", f"p{i}", "--json").json()["tz"]
        assert zone != tz and not zone.startswith("right/")
        said = f"warning: $TZ {tz!r} is not a zone a job can have (an IANA name): the job's"
        assert r.code == 0 and f"{said} zone is {zone} (the system's)" in r.err
    assert "$TZ" not in cli("add", "q", "--cron", "0 9 * * *", "--tz", "UTC", "--", "true").err
