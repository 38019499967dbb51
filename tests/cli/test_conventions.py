"""CLI conventions of issue 14: the command after `--`, table widths, names, messages."""

from __future__ import annotations

import pytest

# every test on SQLite and on PostgreSQL (tests/cli/conftest.py: any_store)
pytestmark = pytest.mark.usefixtures("any_store")


@pytest.mark.parametrize(
    ("args", "stray"),
    [
        (["add", "m2", "--every", "1h", "ls", "--json"], "ls"),
        (["add", "m3", "--every", "1h", "ls", "--tag", "x"], "ls"),
        (["add", "bad", "--cron", "@daily", "echo", "hi"], "echo hi"),
        (["add", "m4", "--every", "1h", "ls", "--", "echo"], "ls"),
    ],
)
def test_command_must_follow_dashes(cli, args: list[str], stray: str) -> None:
    r = cli(*args)
    assert r.code == 2, r.err
    assert f"unexpected argument {stray!r}: put the command after --" in r.err
    assert len(r.err.strip().splitlines()) == 1
    assert cli("list", "--json").json() == []  # nothing written


def test_edit_command_must_follow_dashes(cli) -> None:
    assert cli("add", "j", "--every", "1h", "--", "true").code == 0
    r = cli("edit", "j", "ls", "--timeout", "5s")
    assert r.code == 2 and "put the command after --" in r.err
    assert cli("show", "j", "--json").json()["command"] == ["true"]


def test_command_after_dashes_keeps_its_own_options(cli) -> None:
    r = cli("add", "ok", "--every", "1h", "--", "ls", "--json", "--tag", "x")
    assert r.code == 0, r.err
    job = cli("show", "ok", "--json").json()
    assert job["command"] == ["ls", "--json", "--tag", "x"] and job["tags"] == []
    assert cli("edit", "ok", "--", "ls", "-l").code == 0
    assert cli("show", "ok", "--json").json()["command"] == ["ls", "-l"]


def _wide_jobs(cli) -> list[str]:
    names = ["a-rather-long-job-name", "far", "short"]
    assert cli("add", names[0], "--cron", "*/5 9-17 * * mon-fri", "--",
               "sh", "-c", "echo failing with a long error message; exit 3").code == 0  # fmt: skip
    assert cli("add", names[1], "--cron", "0 0 1 1 *", "--", "true").code == 0
    assert cli("add", names[2], "--every", "7h", "--", "true").code == 0
    assert cli("run", names[0]).code == 3
    assert cli("run", names[2]).code == 0
    return names


@pytest.mark.parametrize("rich", [False, True], ids=["plain", "rich"])
@pytest.mark.parametrize("verb", ["list", "history"])
def test_tables_fit_80_columns_without_wrapping(
    cli, monkeypatch: pytest.MonkeyPatch, rich: bool, verb: str
) -> None:
    names = _wide_jobs(cli)
    monkeypatch.setenv("COLUMNS", "80")
    if rich:  # coloured output as on a terminal, 80 columns wide
        monkeypatch.delenv("NO_COLOR")
        monkeypatch.setattr("jobctl.render.fancy", lambda: True)
    r = cli(verb)
    assert r.code == 0, r.err
    lines = _uncoloured(r.out).rstrip("\n").split("\n")  # as the terminal shows it
    expected_rows = 3 if verb == "list" else 2
    assert len(lines) == 1 + expected_rows, r.out  # one line per row: no cell wrapped
    assert all(len(line.rstrip()) <= 80 for line in lines), r.out
    assert any(len(line.rstrip()) > 70 for line in lines)  # it was too wide: it was fitted
    assert lines[0].split()[:2] == (["NAME", "SCHEDULE"] if verb == "list" else ["ID", "JOB"])
    if verb == "list":  # names are never cut while other columns can give
        assert sorted(line.split()[0] for line in lines[1:]) == names


def test_layout_is_the_same_with_and_without_colour(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    _wide_jobs(cli)
    monkeypatch.setenv("COLUMNS", "80")
    plain = cli("history").out
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.setattr("jobctl.render.fancy", lambda: True)
    fancy = cli("history").out
    assert "\x1b[" in fancy  # coloured: statuses and the header
    assert _uncoloured(fancy).splitlines() == plain.splitlines()


def _uncoloured(text: str) -> str:
    """`text` without jobctl's own colour codes (render.SGR)."""
    from jobctl.render import SGR

    for code in SGR.values():
        text = text.replace(code, "")
    return text


@pytest.mark.parametrize(
    ("limit", "drop", "cut_first", "keep", "widths"),
    [
        (None, (), (), [0, 1, 2], [4, 10, 30]),
        (48, (), (), [0, 1, 2], [4, 10, 30]),
        (40, ("BB",), (), [0, 2], [4, 30]),
        (40, (), ("CC",), [0, 1, 2], [4, 10, 22]),  # the cut_first column gives first
        (40, (), (), [0, 1, 2], [4, 10, 22]),  # the widest gives first
        (30, (), ("CC",), [0, 1, 2], [4, 2, 20]),  # cut_first keeps 20 while others can give
        (12, (), (), [0, 1, 2], [4, 2, 2]),
    ],
)
def test_fit_table(limit, drop, cut_first, keep, widths) -> None:
    from jobctl.render import fit

    rows = [["name", "0123456789", "abcdefghij" * 3]]
    assert fit(["AA", "BB", "CC"], rows, limit, drop, cut_first) == (keep, widths)


def test_list_sorts_names_naturally_or_by_next_fire(cli) -> None:
    for name, every in (("job10", "1m"), ("job2", "3h"), ("Job1", "2h"), ("job1", "1h")):
        assert cli("add", name, "--every", every, "--", "true").code == 0
    names = [line.split()[0] for line in cli("list").out.splitlines()[1:]]
    assert names == ["Job1", "job1", "job2", "job10"]
    by_next = [j["name"] for j in cli("list", "--sort", "next", "--json").json()]
    assert by_next == ["job10", "job1", "Job1", "job2"]
    r = cli("list", "--sort", "size")
    assert r.code == 2 and "invalid --sort 'size'" in r.err


def test_show_timeout_none_and_singular_runs(cli) -> None:
    assert cli("add", "t", "--", "true").code == 0
    assert cli("run", "t").code == 0
    out = cli("show", "t").out
    assert "timeout  none\n" in out and "SIGKILL" not in out
    assert "of 1 finished run\n" in out
    assert cli("edit", "t", "--timeout", "1h").code == 0
    assert "timeout  1h, then SIGKILL after 10s" in cli("show", "t").out


def test_at_time_shown_in_the_jobs_zone(cli) -> None:
    r = cli("add", "once", "--at", "2030-01-02T09:00", "--tz", "Asia/Tokyo", "--", "true")
    assert r.code == 0, r.err
    assert "once at 2030-01-02T09:00:00+09:00" in cli("show", "once").out
