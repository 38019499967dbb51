"""CLI conventions of issue 14: the command after `--`, table widths, names, messages."""

from __future__ import annotations

import pytest


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
