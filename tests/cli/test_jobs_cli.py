"""CLI: job management verbs, exit codes of SPEC 3, JSON shapes, no partial writes."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from pathlib import Path

import pytest

from jobctl.records import replace

# every test on SQLite and on PostgreSQL (tests/cli/conftest.py: any_store)
pytestmark = pytest.mark.usefixtures("any_store")

JOB_FIELDS = {
    "name",
    "command",
    "shell",
    "schedule",
    "schedule_kind",
    "tz",
    "state",
    "next_run_at",
    "last_run",
    "retries",
    "timeout_s",
    "overlap",
    "misfire",
    "tags",
    "description",
}


def db_dump(home: Path) -> list[tuple]:
    """Every job row as stored, in the store the test's commands use: the home's SQLite file,
    or the PostgreSQL schema JOBCTL_STORE names (`any_store`); [] before the store exists."""
    url = os.environ.get("JOBCTL_STORE", "")
    if url.startswith("postgres"):
        import psycopg

        with psycopg.connect(url, autocommit=True) as pg:
            try:
                return pg.execute("SELECT * FROM jobs ORDER BY id").fetchall()
            except psycopg.errors.UndefinedTable:  # no command has opened the store yet
                return []
    db = home / "jobctl.db"
    if not db.exists():
        return []
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT * FROM jobs ORDER BY id").fetchall()
    finally:
        conn.close()


@pytest.mark.usefixtures("any_store")
def test_add_then_list_json(cli) -> None:
    r = cli("add", "backup", "--cron", "*/5 * * * *", "--tag", "ops", "--", "echo", "hi")
    assert r.code == 0, r.err
    assert "added job 'backup'" in r.err
    jobs = cli("list", "--json").json()
    assert isinstance(jobs, list) and len(jobs) == 1
    j = jobs[0]
    assert set(j) >= JOB_FIELDS
    assert j["command"] == ["echo", "hi"]
    assert j["schedule_kind"] == "cron" and j["schedule"] == "*/5 * * * *"
    assert j["state"] == "active" and j["tags"] == ["ops"] and j["last_run"] is None
    assert j["next_run_at"].endswith("+00:00")


@pytest.mark.sqlite_only
def test_home_and_db_modes(cli, home: Path) -> None:
    assert cli("add", "a", "--every", "1m", "--", "true").code == 0
    assert stat.S_IMODE(os.stat(home).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(home / "jobctl.db").st_mode) == 0o600


@pytest.mark.sqlite_only
def test_global_home_flag_and_store_path(cli, tmp_path: Path) -> None:
    other = tmp_path / "other"
    assert cli("--home", str(other), "add", "a", "--every", "1m", "--", "true").code == 0
    assert (other / "jobctl.db").exists()
    assert cli("list", "--json").json() == []
    plain = tmp_path / "plain.db"
    assert cli("--store", str(plain), "add", "b", "--every", "1m", "--", "true").code == 0
    assert [j["name"] for j in cli("--store", f"sqlite:///{plain}", "list", "--json").json()] == [
        "b"
    ]


@pytest.mark.usefixtures("any_store")
def test_empty_list_shows_how_to_add(cli) -> None:
    r = cli("list")
    assert r.code == 0
    assert "jobctl add" in r.err


@pytest.mark.usefixtures("any_store")
def test_list_plain_table(cli) -> None:
    cli("add", "nightly", "--cron", "30 1 * * *", "--", "true")
    r = cli("list")
    assert r.code == 0
    header, row = r.out.splitlines()
    assert header.split()[:3] == ["NAME", "SCHEDULE", "NEXT"]
    assert "nightly" in row and "at 01:30" in row and "active" in row
    assert "\x1b[" not in r.out  # plain, no colour codes


@pytest.mark.usefixtures("any_store")
def test_show_json_has_upcoming_and_recent(cli) -> None:
    cli("add", "t", "--cron", "0 9 * * mon-fri", "--tz", "Europe/London", "--", "true")
    data = cli("show", "t", "--json").json()
    assert len(data["upcoming"]) == 5
    assert data["recent_runs"] == []
    assert data["tz"] == "Europe/London"
    assert all("T09:00:00" in u for u in data["upcoming"])
    text = cli("show", "t")
    assert text.code == 0 and "Monday to Friday" in text.out


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        pytest.param(["--cron", "61 * * * *"], "61", id="bad_cron"),
        pytest.param(["--every", "5x"], "5x", id="bad_duration"),
        pytest.param(["--every", "0"], "'0'", id="zero_every"),
        pytest.param(["--cron", "* * * * *", "--tz", "Mars/Base"], "Mars/Base", id="bad_zone"),
        pytest.param(["--at", "yesterday"], "yesterday", id="bad_at"),
        pytest.param(["--at", "2001-01-01T00:00"], "passed", id="past_at"),
        pytest.param(["--cron", "* * * * *", "--every", "1m"], "at most one", id="two_schedules"),
        pytest.param(["--overlap", "sometimes"], "sometimes", id="bad_overlap"),
        pytest.param(["--misfire", "never"], "never", id="bad_misfire"),
        pytest.param(["--backoff", "random"], "random", id="bad_backoff"),
        pytest.param(["--retries", "-1"], "-1", id="negative_retries"),
        pytest.param(["--env", "NOEQUALS"], "NOEQUALS", id="bad_env"),
        pytest.param(["--cwd", "/no/such/dir"], "/no/such/dir", id="bad_cwd"),
        pytest.param(["--max-output", "lots"], "lots", id="bad_size"),
        pytest.param(["--mutex", "bad name"], "bad name", id="bad_mutex"),
        pytest.param(["--unknown-flag"], "--unknown-flag", id="unknown_option"),
        pytest.param(["--retries", "many"], "many", id="non_integer"),
    ],
)
def test_add_rejects_bad_input_with_one_line_and_no_write(cli, home, args, needle) -> None:
    cli("add", "keep", "--every", "1h", "--", "true")
    before = db_dump(home)
    r = cli("add", "x", *args, "--", "true")
    assert r.code == 2, (r.code, r.err)
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], r.err
    assert "Traceback" not in r.err
    assert db_dump(home) == before


@pytest.mark.parametrize("name", ["", "has space", "a/b", "x" * 65, "ünïcode"])
def test_add_rejects_bad_names(cli, name) -> None:
    r = cli("add", name, "--every", "1m", "--", "true")
    assert r.code == 2
    assert "invalid job name" in r.err


def test_add_without_command_is_usage_error(cli, home) -> None:
    r = cli("add", "x", "--every", "1m")
    assert r.code == 2 and "no command" in r.err
    assert db_dump(home) == []


@pytest.mark.usefixtures("any_store")
def test_duplicate_name_is_conflict(cli) -> None:
    assert cli("add", "x", "--every", "1m", "--", "true").code == 0
    r = cli("add", "x", "--every", "2m", "--", "false")
    assert r.code == 3 and "'x' already exists" in r.err
    assert cli("show", "x", "--json").json()["command"] == ["true"]


@pytest.mark.parametrize(
    "argv",
    [
        ["show", "ghost"],
        ["edit", "ghost", "--retries", "1"],
        ["rm", "ghost"],
        ["pause", "ghost"],
        ["resume", "ghost"],
        ["next", "ghost"],
    ],
    ids=lambda a: a[0],
)
@pytest.mark.usefixtures("any_store")
def test_unknown_job_is_not_found(cli, argv) -> None:
    r = cli(*argv)
    assert r.code == 4, r.err
    assert "'ghost'" in r.err


@pytest.mark.sqlite_only
def test_store_unusable_is_runtime_failure(cli, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    r = cli("--home", str(blocker / "sub"), "list")
    assert r.code == 1 and str(blocker) in r.err


@pytest.mark.usefixtures("any_store")
def test_edit_changes_and_recomputes(cli) -> None:
    cli("add", "x", "--cron", "0 0 * * *", "--", "true")
    before = cli("show", "x", "--json").json()
    r = cli("edit", "x", "--cron", "0 12 * * *", "--retries", "3", "--", "echo", "new")
    assert r.code == 0, r.err
    after = cli("show", "x", "--json").json()
    assert after["retries"] == 3 and after["command"] == ["echo", "new"]
    assert after["next_run_at"] != before["next_run_at"] and "T12:00:00" in after["next_run_at"]


def test_rejected_edit_leaves_job_as_it_was(cli, home) -> None:
    cli("add", "x", "--cron", "0 0 * * *", "--retries", "1", "--", "true")
    before = db_dump(home)
    r = cli("edit", "x", "--retries", "5", "--cron", "bogus")
    assert r.code == 2
    assert db_dump(home) == before


@pytest.mark.usefixtures("any_store")
def test_edit_manual_drops_schedule(cli) -> None:
    cli("add", "x", "--every", "1m", "--", "true")
    cli("edit", "x", "--manual")
    j = cli("show", "x", "--json").json()
    assert j["schedule_kind"] == "manual" and j["next_run_at"] is None


@pytest.mark.usefixtures("any_store")
def test_pause_resume(cli) -> None:
    cli("add", "a", "--every", "1m", "--", "true")
    cli("add", "b", "--every", "1m", "--", "true")
    assert cli("pause", "a", "b").code == 0
    jobs = {j["name"]: j for j in cli("list", "--json").json()}
    assert jobs["a"]["state"] == "paused" and jobs["a"]["next_run_at"] is None
    # one unknown name: nothing changes
    assert cli("resume", "a", "ghost").code == 4
    assert cli("show", "a", "--json").json()["state"] == "paused"
    assert cli("resume", "a", "b").code == 0
    assert all(j["state"] == "active" and j["next_run_at"] for j in cli("list", "--json").json())


def test_paused_flag_on_add(cli) -> None:
    cli("add", "a", "--every", "1m", "--paused", "--", "true")
    assert cli("show", "a", "--json").json()["state"] == "paused"


@pytest.mark.usefixtures("any_store")
def test_rm_and_purge(cli) -> None:
    cli("add", "a", "--every", "1m", "--", "true")
    assert cli("rm", "a").code == 0
    assert cli("show", "a").code == 4


def test_at_relative_and_shell(cli) -> None:
    r = cli("add", "once", "--at", "+10m", "--shell", "--", "echo $HOME | wc -c")
    assert r.code == 0, r.err
    j = cli("show", "once", "--json").json()
    assert j["schedule_kind"] == "at" and j["shell"] is True and j["next_run_at"]


def test_shell_needs_one_string(cli) -> None:
    r = cli("add", "x", "--shell", "--", "echo", "two")
    assert r.code == 2 and "one string" in r.err


def test_dst_warning_on_add(cli) -> None:
    r = cli("add", "x", "--cron", "30 1 * * *", "--tz", "America/New_York", "--", "true")
    assert r.code == 0
    assert "warning:" in r.err and "01:30" in r.err


def test_dst_warning_for_an_at_time_on_add_and_edit(cli) -> None:
    r = cli("add", "x", "--at", "2099-03-08T02:30", "--tz", "America/New_York", "--", "true")
    assert r.code == 0
    assert ("warning: 02:30 does not exist on 2099-03-08 in America/New_York (DST starts); "
            "the job fires at 03:00 EDT\n") in r.err  # fmt: skip
    r = cli("edit", "x", "--at", "2099-11-01T01:30")
    assert r.code == 0 and "01:30 happens twice on 2099-11-01" in r.err
    assert "happens twice" not in cli("edit", "x", "--at", "2099-11-01T01:30-05:00").err


def test_next_spec_examples(cli) -> None:
    r = cli(
        "next",
        "--cron",
        "30 2 * * *",
        "--tz",
        "America/New_York",
        "--from",
        "2026-03-07T12:00",
        "-n",
        "2",
        "--json",
    )
    assert r.code == 0, r.err
    assert r.json() == ["2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"]
    r = cli(
        "next",
        "--cron",
        "30 1 * * *",
        "--tz",
        "America/New_York",
        "--from",
        "2026-10-31T12:00",
        "-n",
        "2",
        "--json",
    )
    assert r.json() == ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"]
    assert "warning:" in r.err


def test_next_every_and_job(cli) -> None:
    r = cli(
        "next", "--every", "90m", "--tz", "UTC", "--from", "2026-01-01T00:00", "-n", "3", "--json"
    )
    assert r.json() == [
        "2026-01-01T01:30:00+00:00",
        "2026-01-01T03:00:00+00:00",
        "2026-01-01T04:30:00+00:00",
    ]
    cli("add", "j", "--cron", "0 0 1 1 *", "--", "true")
    r = cli("next", "j", "-n", "1", "--from", "2026-06-01T00:00", "--json")
    assert r.json() == ["2027-01-01T00:00:00+00:00"]


def test_next_needs_exactly_one_source(cli) -> None:
    assert cli("next").code == 2
    assert cli("next", "--cron", "* * * * *", "--every", "1m").code == 2
    r = cli("next", "--cron", "0 0 30 2 *")
    assert r.code == 2 and "0 0 30 2 *" in r.err


def test_version_and_help(cli) -> None:
    r = cli("--version")
    assert r.code == 0 and r.out.startswith("jobctl ")
    assert cli("--help").code == 0


def test_every_command_has_help_text(cli) -> None:
    from typer.main import get_command

    from jobctl.cli import register

    group = get_command(register())
    commands = group.commands  # type: ignore[attr-defined]
    assert {"add", "list", "show", "edit", "rm", "pause", "resume", "next", "completion"} <= set(
        commands
    )
    for name, cmd in commands.items():
        assert cmd.help and len(cmd.help.strip()) > 10, f"{name} has no help text"
        for param in cmd.params:
            if param.param_type_name == "option":
                assert param.help, f"{name} {param.name} has no help"
        r = cli(name, "--help")
        assert r.code == 0 and "Usage:" in r.out


@pytest.mark.usefixtures("any_store")
def test_json_is_valid_for_empty_and_full(cli) -> None:
    assert json.loads(cli("list", "--json").out) == []


def test_on_pins_a_job_to_runner_labels(cli) -> None:
    r = cli("add", "g", "--every", "1h", "--on", "gpu", "--on", "eu", "--json", "--", "true")
    assert r.code == 0 and r.json()["on"] == ["eu", "gpu"]
    assert "no registered runner has the labels eu, gpu" in r.err  # a warning, exit 0
    assert cli("show", "g", "--json").json()["on"] == ["eu", "gpu"]
    assert cli("edit", "g", "--on", "", "--json").json()["on"] == []
    bad = cli("edit", "g", "--on", "no spaces")
    assert bad.code == 2 and "invalid runner label 'no spaces'" in bad.err
    assert cli("show", "g", "--json").json()["on"] == []


@pytest.mark.usefixtures("any_store")
def test_list_and_status_warn_of_jobs_no_runner_can_run(cli) -> None:
    from jobctl.store.base import RunnerInfo

    cli("add", "g", "--every", "1h", "--on", "gpu", "--", "true")
    cli("add", "plain", "--every", "1h", "--", "true")
    for args in (("list",), ("list", "--json"), ("status",)):
        r = cli(*args)
        assert r.code == 0
        assert r.err.count("warning:") == 1 and "labels gpu; the runs of g wait" in r.err
    from jobctl.cli.common import store

    t = store().now()
    store().register_runner(RunnerInfo(owner="x:1:1", pid=1, host="x", since=t, heartbeat_at=t,
                                       labels=["gpu", "x"]))  # fmt: skip
    assert "warning" not in cli("list").err


@pytest.mark.usefixtures("any_store")
def test_status_check_for_monitoring(cli) -> None:
    from jobctl import owners
    from jobctl.cli.common import store
    from jobctl.store.base import RunnerInfo

    r = cli("status", "--check")
    assert (r.code, r.out) == (1, "") and r.err.strip().splitlines() == [
        "runner: not running (start one with: jobctl runner)"
    ]
    t = store().now()
    me = RunnerInfo(owner=owners.me(), pid=os.getpid(), host="here", since=t, heartbeat_at=t,
                    lease_expires_at=t + 15)  # fmt: skip
    store().register_runner(me)
    r = cli("status", "--check")
    assert r.code == 0 and f"runner pid {os.getpid()} on here" in r.out
    store().register_runner(replace(me, heartbeat_at=t - 60, lease_expires_at=t - 61))
    r = cli("status", "--check")  # alive but not renewing: stuck (SQLite), lease gone (PostgreSQL)
    assert r.code == 1 and len(r.err.strip().splitlines()) == 1


@pytest.mark.usefixtures("any_store")
def test_notify_and_ping_options(cli) -> None:
    r = cli("add", "n", "--every", "1h", "--notify", "failure=https://hooks.example/x",
            "--notify", "dead=logger jobctl", "--ping", "https://hc-ping.com/uuid/",
            "--json", "--", "true")  # fmt: skip
    assert r.code == 0, r.err
    assert r.json()["notify"] == [
        {"event": "dead", "target": "logger jobctl"},
        {"event": "failure", "target": "https://hooks.example/x"},
    ]
    assert r.json()["ping"] == "https://hc-ping.com/uuid"
    shown = cli("show", "n").out
    assert "failure -> https://hooks.example/x" in shown and "hc-ping.com/uuid" in shown
    for bad, why in (
        (("--notify", "fail=x"), "unknown event 'fail'"),
        (("--ping", "ftp://x"), "must be an http:// or https:// URL"),
    ):
        r = cli("edit", "n", *bad)
        assert r.code == 2 and why in r.err and len(r.err.strip().splitlines()) == 1
    edited = cli("edit", "n", "--notify", "", "--ping", "", "--json").json()
    assert (edited["notify"], edited["ping"]) == ([], None)


def test_config_shows_settings_and_their_sources(cli, tmp_path: Path, monkeypatch) -> None:
    conf = tmp_path / "xdg" / "jobctl"
    conf.mkdir(parents=True)
    conf.joinpath("config.toml").write_text('[notify]\nfailure = ["logger a", "logger b"]\n')
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    data = cli("config", "--json").json()
    assert data["config_file"] == {"path": str(conf / "config.toml"), "exists": True}
    assert [(n["event"], n["target"]) for n in data["notify"]] == [
        ("failure", "logger a"),
        ("failure", "logger b"),
    ]
    assert data["home"]["source"] in ("--home flag", "$JOBCTL_HOME")
    conf.joinpath("config.toml").write_text("[notify]\nfailure = 3\n")
    r = cli("config")
    assert r.code == 2 and "config.toml: notify.failure" in r.err


@pytest.mark.usefixtures("any_store")
def test_after_links_are_checked_shown_and_cleared(cli) -> None:
    cli("add", "a", "--every", "1h", "--", "true")
    r = cli("add", "b", "--after", "a", "--after", "a:failure", "--json", "--", "true")
    assert r.code == 0, r.err
    assert r.json()["after"] == [{"job": "a", "on": "failure"}, {"job": "a", "on": "success"}]
    assert r.json()["schedule_kind"] == "manual"  # only --after: no schedule of its own
    assert "after a:failure, a" in cli("list").out
    assert "a (failure), a (success)" in cli("show", "b").out
    for args, why in (
        (("add", "c", "--after", "nope", "--", "true"), "no job named 'nope'"),
        (("add", "c", "--after", "a:sometimes", "--", "true"), "unknown condition 'sometimes'"),
        (("edit", "a", "--after", "b"), "would make a cycle: a -> b -> a"),
        (("edit", "b", "--after", "b"), "would make a cycle: b -> b"),
    ):
        r = cli(*args)
        assert r.code == 2 and why in r.err and len(r.err.strip().splitlines()) == 1, r.err
    assert cli("show", "a", "--json").json()["after"] == []  # nothing written
    r = cli("rm", "a")
    assert r.code == 0 and "b ran after a; that link was removed" in r.err
    assert cli("show", "b", "--json").json()["after"] == []
