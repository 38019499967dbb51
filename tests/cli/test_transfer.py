"""CLI: jobctl import (crontabs, cron.d files), export (TOML, crontab, JSON) and apply (TOML),
on both stores; imported jobs fire when cron would and run what cron would run."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.cli.test_bad_input import one_line_error
from tests.cli.test_jobs_cli import db_dump

# every test on SQLite and on PostgreSQL (tests/cli/conftest.py: any_store)
pytestmark = pytest.mark.usefixtures("any_store")

DATA = Path(__file__).parent.parent / "data" / "cron"
FROM = "2026-03-01T00:00:00"  # the --from of every fire comparison (a Sunday, before DST)


def jobs_by_name(cli) -> dict[str, dict]:
    return {j["name"]: j for j in cli("list", "--json").json()}


def fires(cli, *args: str) -> list[str]:
    r = cli("next", *args, "-n", "5", "--from", FROM, "--json")
    assert r.code == 0, r.err
    return r.json()


def fake_program(folder: Path, name: str, script: str) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)
    return path


# ---- an oracle: Vixie cron's matching, minute by minute --------------------------------------

NAMES = {n: i for i, n in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}
NAMES |= {n: i + 1 for i, n in enumerate(["jan", "feb", "mar", "apr", "may", "jun", "jul",
                                          "aug", "sep", "oct", "nov", "dec"])}  # fmt: skip


def cron_set(field: str, lo: int, hi: int) -> set[int]:
    out: set[int] = set()
    for item in field.lower().split(","):
        base, _, step = item.partition("/")
        if base == "*":
            a, b = lo, hi
        else:
            first, _, last = base.partition("-")
            a = NAMES.get(first, None) if first in NAMES else int(first)
            b = (NAMES[last] if last in NAMES else int(last)) if last else a
        out.update(range(a, b + 1, int(step or 1)))
    return {0 if (hi == 7 and v == 7) else v for v in out}


def vixie_fires(expr: str, tz: str, start: datetime, n: int = 5) -> list[str]:
    """The next n fires of a 5-field line as Vixie cron matches it (day-of-month and
    day-of-week OR'ed unless one starts with '*'), minute by minute in zone tz."""
    m, h, dom, mon, dow = expr.split()
    sets = (cron_set(m, 0, 59), cron_set(h, 0, 23), cron_set(dom, 1, 31), cron_set(mon, 1, 12),
            cron_set(dow, 0, 7))  # fmt: skip
    zone = ZoneInfo(tz)
    t = start.replace(tzinfo=zone)
    out: list[str] = []
    while len(out) < n:
        t += timedelta(minutes=1)
        day_ok = t.day in sets[2]
        wday_ok = (t.isoweekday() % 7) in sets[4]
        days = (day_ok and wday_ok) if dom.startswith("*") or dow.startswith("*") else (
            day_ok or wday_ok)  # fmt: skip
        if t.minute in sets[0] and t.hour in sets[1] and t.month in sets[3] and days:
            out.append(t.isoformat())
    return out


# ---- crontab(5)'s example ----------------------------------------------------------------------


@pytest.mark.usefixtures("any_store")
def test_crontab5_example_fires_when_cron_would(cli) -> None:
    r = cli("import", str(DATA / "crontab.5-example"))
    assert r.code == 0, r.err
    assert r.out.splitlines() == [
        "+ daily.job  (line 8)", "+ monthly  (line 10)", "+ mail  (line 12)",
        "+ echo  (line 13)", "+ echo-2  (line 14)", "+ echo-3  (line 15)", "+ echo-4  (line 16)",
        "+ expr  (line 18)", "+ echo-5  (line 20)",
    ]  # fmt: skip
    assert "9 added" in r.err and "crontab -e" in r.err
    lines = (DATA / "crontab.5-example").read_text().splitlines()
    jobs = jobs_by_name(cli)
    for out in r.out.splitlines():  # "+ NAME  (line N)"
        name, number = out.split()[1], int(out.split()[-1].rstrip(")"))
        fields = lines[number - 1].split(None, 5)
        job = jobs[name]
        expr = " ".join(fields[:5])
        assert (job["schedule"], job["tz"], job["schedule_kind"]) == (expr, "Japan", "cron")
        assert fires(cli, name) == fires(cli, "--cron", expr, "--tz", "Japan")
        assert fires(cli, name) == vixie_fires(expr, "Japan", datetime.fromisoformat(FROM))
        assert job["env"] == {"SHELL": "/bin/sh", "MAILTO": "paul", "CRON_TZ": "Japan"}
        assert job["tags"] == ["import.crontab"] and job["cwd"] == os.path.expanduser("~")
    assert jobs["echo-4"]["description"] == ""
    assert jobs["expr"]["description"] == (
        "Run once every 9th day, even across week, month, and year boundaries:"
    )
    assert jobs["expr"]["command"] == [
        "expr $(date +%s) / 60 / 60 / 24 % 9 > /dev/null || echo Wax the floor."
    ]
    assert jobs["expr"]["shell"] is True
    # odd days that are Sundays (cron's '*/2' counts as unrestricted), day 1 or Mondays
    assert all(datetime.fromisoformat(t).day % 2 == 1 for t in fires(cli, "echo-4"))
    assert fires(cli, "echo-3") == [f"2026-03-01T{h:02}:00:00+09:00" for h in (4, 8, 12, 16, 20)]
    r = cli("next", "echo-3", "-n", "7", "--from", FROM, "--json")
    assert r.json()[-1] == "2026-03-02T04:00:00+09:00"  # then Monday the 2nd


def test_percent_lines_give_the_program_cron_s_standard_input(cli, tmp_path: Path) -> None:
    assert cli("import", str(DATA / "crontab.5-example")).code == 0
    mail = jobs_by_name(cli)["mail"]
    got = tmp_path / "mail.got"
    fake_program(tmp_path / "bin", "mail", f'printf "%s|" "$@" > {got}; echo >> {got}; '
                                           f"cat >> {got}\n")  # fmt: skip
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}"}
    assert mail["shell"] is True
    subprocess.run(["/bin/sh", "-c", mail["command"][0]], env=env, check=True)
    assert got.read_text() == "-s|It's 10pm|joe|\nJoe,\n\nWhere are your kids?\n"


def test_an_imported_job_runs_what_cron_runs(cli, tmp_path: Path) -> None:
    crontab = tmp_path / "tab"
    crontab.write_text("GREETING = ' hi there '\n"
                       "* * * * * cat%one%%100\\% two\n"
                       "* * * * * printf '[\\%s]' \"$GREETING\" `date +\\%Y | cut -c1-2`\n"
                       "SHELL=/bin/bash\n"
                       "* * * * * echo $0 ${BASH_VERSION:+bash}\n")  # fmt: skip
    assert cli("import", str(crontab)).code == 0
    assert cli("run", "cat").out == "one\n\n100% two\n"
    assert cli("run", "printf").out == f"[ hi there ][{str(datetime.now().year)[:2]}]"
    assert cli("run", "echo").out == "/bin/bash bash\n"


# ---- Debian's cron.d files -------------------------------------------------------------------

DEBIAN = {
    "certbot": ["certbot"],
    "sysstat": ["debian-sa1", "debian-sa1-2"],
    "anacron": ["invoke-rc.d"],
    "php": ["sessionclean"],
    "e2scrub_all": ["e2scrub_all_cron", "e2scrub_all"],
}


@pytest.mark.usefixtures("any_store")
@pytest.mark.parametrize("package", DEBIAN)
def test_debian_cron_d_files(cli, package: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOGNAME", "alice")  # who runs jobctl (getpass)
    path = DATA / "cron.d" / package
    r = cli("import", "--format", "cron.d", str(path))
    assert r.code == 0, r.err
    assert [line.split()[1] for line in r.out.splitlines()] == DEBIAN[package]
    assert "warning: lines for user 'root' run as root under cron; jobctl runs them as alice" \
        in r.err  # fmt: skip
    assert f"Remove {path}" in r.err
    text = path.read_text()
    env = dict(line.split("=", 1) for line in text.splitlines()
               if line[:1].isupper() and "=" in line.split()[0])  # fmt: skip
    lines = [line.split(None, 6) for line in text.splitlines() if line[:1].isdigit()]
    jobs = jobs_by_name(cli)
    for name, fields in zip(DEBIAN[package], lines, strict=True):
        job = jobs[name]
        expr = " ".join(fields[:5])
        assert job["schedule"] == expr
        assert job["tags"] == [f"import.{package}", "user.root"]
        assert fires(cli, name) == fires(cli, "--cron", expr)
        assert fires(cli, name) == vixie_fires(expr, "UTC", datetime.fromisoformat(FROM))
        assert job["env"] == env and job["shell"] is True
        assert job["command"] == [fields[6]]
    if package == "php":
        assert jobs["sessionclean"]["description"] == "Look for and purge old sessions every " \
                                                      "30 minutes"  # fmt: skip
    if package == "sysstat":
        assert jobs["debian-sa1-2"]["description"] == "Additional run at 23:59 to rotate the " \
                                                      "statistics file"  # fmt: skip


def test_etc_crontab_and_format_choice(cli) -> None:
    r = cli("import", "--format", "cron.d", "--prefix", "sys.", str(DATA / "etc-crontab"))
    assert r.code == 0, r.err
    assert [line.split()[1] for line in r.out.splitlines()] == [
        "sys.run-parts", "sys.run-parts-2", "sys.run-parts-3", "sys.run-parts-4"]  # fmt: skip
    j = jobs_by_name(cli)["sys.run-parts-2"]
    assert j["command"] == ["test -x /usr/sbin/anacron || { cd / && run-parts --report "
                            "/etc/cron.daily; }"]  # fmt: skip
    assert j["description"] == "" and j["env"] == {"SHELL": "/bin/sh"}
    # read as a user crontab, 'root' would be the program: the user field is not guessed
    r = cli("import", "--dry-run", str(DATA / "cron.d" / "certbot"))
    assert r.code == 0 and r.out == "+ root  (line 17)\n"
    one_line_error(cli("import", "--format", "cron", "x"), 2, "invalid --format 'cron'")


# ---- idempotence, dry run, changes -------------------------------------------------------------


@pytest.mark.usefixtures("any_store")
def test_import_again_changes_nothing_and_a_changed_line_updates_its_job(
    cli, tmp_path: Path
) -> None:
    tab = tmp_path / "tab"
    tab.write_text("PATH=/bin\n0 1 * * * backup.sh\n0 2 * * * backup.sh --full\n")
    r = cli("import", str(tab), "--dry-run")
    assert r.code == 0 and r.out == "+ backup.sh  (line 2)\n+ backup.sh-2  (line 3)\n"
    assert "2 to add" in r.err and "nothing written" in r.err
    assert cli("list", "--json").json() == []
    assert cli("import", str(tab)).code == 0
    before = cli("list", "--json").json()
    r = cli("import", str(tab))
    assert r.code == 0 and r.out == "" and "2 unchanged" in r.err
    assert cli("list", "--json").json() == before  # not even updated_at
    cli("edit", "backup.sh", "--retries", "3")
    tab.write_text("PATH=/usr/bin:/bin\n0 1 * * * backup.sh\n30 2 * * * backup.sh --full\n")
    r = cli("import", str(tab), "--json")
    assert r.code == 0, r.err
    got = {j["name"]: j for j in r.json()}
    assert {n: (j["action"], j.get("fields")) for n, j in got.items()} == {
        "backup.sh": ("changed", ["env"]), "backup.sh-2": ("changed", ["cron", "env"])}  # fmt: skip
    assert got["backup.sh"]["retries"] == 3 and got["backup.sh"]["line"] == 2  # kept
    after = jobs_by_name(cli)
    assert after["backup.sh"]["next_run_at"] == before[0]["next_run_at"]  # same schedule
    assert after["backup.sh-2"]["schedule"] == "30 2 * * *"


@pytest.mark.usefixtures("any_store")
def test_a_name_taken_by_another_job_is_a_conflict_and_nothing_is_written(cli, tmp_path) -> None:
    tab = tmp_path / "tab"
    tab.write_text("@daily first\n@daily backup\n")
    cli("add", "backup", "--", "true")
    r = cli("import", str(tab))
    one_line_error(r, 3, "job 'backup' exists and was not imported from this source")
    assert [j["name"] for j in cli("list", "--json").json()] == ["backup"]
    assert cli("import", str(tab), "--prefix", "cron-").code == 0


def test_invalid_lines_stop_the_import_unless_skipped(cli, home: Path) -> None:
    path = DATA / "invalid-crontab"
    r = cli("import", str(path))
    one_line_error(r, 2, f"{path}:3: minute '0~30': '~' (a random value, cronie) is not "
                         "supported")  # fmt: skip
    assert "(and 5 more; --skip-invalid skips them)" in r.err
    assert db_dump(home) == []
    r = cli("import", str(path), "--skip-invalid")
    assert r.code == 0 and r.out == "+ echo  (line 2)\n+ echo-2  (line 8)\n"
    skipped = [line for line in r.err.splitlines() if ": skipped: " in line]
    assert [line.split(":")[1] for line in skipped] == ["3", "4", "5", "6", "7", "9"]
    assert "'#' (nth weekday of the month)" in skipped[1] and "'W'" in skipped[2]
    assert "'?'" in skipped[3] and "minute 61 is out of range" in skipped[4]
    # the names of the lines that are fine do not depend on the others being fixed
    assert [j["command"] for j in cli("list", "--json").json()] == [["echo fine"],
                                                                    ["echo also fine"]]  # fmt: skip


def test_bad_environment_and_cwd_are_reported_at_their_line(cli, tmp_path: Path) -> None:
    tab = tmp_path / "tab"
    tab.write_text("CRON_TZ=Mars/Base\n@daily a\n")
    one_line_error(cli("import", str(tab)), 2, f"{tab}:1: CRON_TZ: unknown time zone")
    tab.write_text("HOME=/no/such/home\n@daily a\n")
    one_line_error(cli("import", str(tab)), 2, f"{tab}:2: invalid --cwd '/no/such/home'")
    one_line_error(cli("import", str(tmp_path / "absent")), 2, "cannot read")
    tab.write_bytes(b"@daily \xff\n")
    one_line_error(cli("import", str(tab)), 2, "not UTF-8 text")


def test_mailto_with_and_without_sendmail(cli, tmp_path: Path, monkeypatch) -> None:
    tab = tmp_path / "tab"
    tab.write_text('MAILTO=ops@example.org\n@daily report\nMAILTO=""\n@hourly tick\n')
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    monkeypatch.setattr("jobctl.notify.sendmail", lambda: None)
    r = cli("import", str(tab), "--dry-run")
    assert "warning: MAILTO=ops@example.org (line 1): no local sendmail" in r.err
    monkeypatch.setattr("jobctl.notify.sendmail", lambda: "/usr/sbin/sendmail")
    assert cli("import", str(tab)).code == 0
    jobs = jobs_by_name(cli)
    assert jobs["report"]["notify"] == [
        {"event": "dead", "target": "mailto:ops@example.org"},
        {"event": "failure", "target": "mailto:ops@example.org"},
    ]
    assert jobs["tick"]["notify"] == []


# ---- where the crontab comes from ------------------------------------------------------------


def test_crontab_l_stdin_and_their_failures(cli, tmp_path: Path, monkeypatch) -> None:
    bin_ = tmp_path / "bin"
    monkeypatch.setenv("PATH", f"{bin_}:/usr/bin:/bin")
    fake_program(bin_, "crontab", '[ "$1" = -l ] || exit 9\nprintf "@daily from-crontab\\n"\n')
    r = cli("import")
    assert r.code == 0 and r.out == "+ from-crontab  (line 1)\n", r.err
    assert "Remove them from your crontab with `crontab -e`" in r.err
    assert jobs_by_name(cli)["from-crontab"]["tags"] == ["import.crontab"]
    fake_program(bin_, "crontab", 'echo "no crontab for alice" >&2; exit 1\n')
    one_line_error(cli("import"), 4, "no crontab for alice")
    fake_program(bin_, "crontab", 'echo "crontab: cannot open spool" >&2; exit 1\n')
    one_line_error(cli("import"), 1, "crontab -l failed: crontab: cannot open spool")
    (bin_ / "crontab").unlink()
    monkeypatch.setenv("PATH", str(bin_))  # (a machine with cron installed has a real one)
    one_line_error(cli("import"), 1, "no crontab program on PATH")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"@hourly from-stdin\n")))
    r = cli("import", "-", "--tag", "piped")
    assert r.code == 0 and r.out == "+ from-stdin  (line 1)\n"
    assert jobs_by_name(cli)["from-stdin"]["tags"] == ["import.stdin", "piped"]


def test_import_json_is_adds_shape_with_an_action(cli) -> None:
    r = cli("import", str(DATA / "cron.d" / "sysstat"), "--format", "cron.d", "--json")
    added = cli("list", "--json").json()
    assert [{k: v for k, v in j.items() if k not in ("action", "line")} for j in r.json()] == added
    assert [(j["action"], j["line"]) for j in r.json()] == [("added", 6), ("added", 9)]


def test_help_lists_the_new_verbs(cli) -> None:
    listed = {line.split()[0] for line in cli("--help").out.splitlines() if line.startswith("  ")}
    assert {"import", "export", "apply"} <= listed


# ---- export and apply ----------------------------------------------------------------------------

#: `add` calls covering every option once (and each kind of schedule)
EVERY_OPTION = [
    ["c", "--cron", "30 1 * * mon-fri", "--tz", "Europe/London", "--", "echo", "c"],
    ["e", "--every", "90s", "--start-at", "2026-01-01T00:00:00.500+01:00", "--", "true"],
    ["at", "--at", "2099-12-01T09:00", "--", "true"],
    ["manual", "--", "true"],
    ["sh", "--shell", "--cron", "@daily", "--", "tar czf /tmp/x.tgz ~/notes | wc -l"],
    ["cwd", "--cwd", "/", "--env", "A=1", "--env", "B= two ", "--", "env"],
    ["time", "--timeout", "1h30m", "--kill-grace", "2500ms", "--jitter", "5s", "--", "true"],
    ["retry", "--retries", "3", "--retry-delay", "1m", "--backoff", "linear",
     "--max-retry-delay", "10m", "--", "true"],
    ["pol", "--overlap", "queue", "--misfire", "all", "--catchup-window", "2h", "--", "true"],
    ["win0", "--catchup-window", "0", "--", "true"],
    ["mx", "--mutex", "db", "--mutex", "disk", "--on", "gpu", "--", "true"],
    ["note", "--notify", "failure=logger -t x", "--notify", "failure=https://h.example/x",
     "--notify", "success=true", "--ping", "https://hc.example/abc", "--", "true"],
    ["keep", "--keep-runs", "7", "--max-output", "1000", "--", "true"],
    ["desc", "--description", 'nightly "backup"\nline two', "--tag", "ops", "--tag", "n",
     "--", "true"],
    ["paused", "--cron", "@hourly", "--paused", "--", "true"],
    ["boot", "--cron", "@reboot", "--", "true"],
    ["chain", "--after", "c:failure", "--after", "e", "--", "true"],
]  # fmt: skip


@pytest.mark.usefixtures("any_store")
def test_export_then_apply_changes_nothing_on_every_option(cli, tmp_path: Path) -> None:
    for args in EVERY_OPTION:
        assert cli("add", *args).code == 0, args
    before = cli("list", "--json").json()
    exported = cli("export")
    assert exported.code == 0
    path = tmp_path / "jobs.toml"
    path.write_text(exported.out)
    r = cli("apply", str(path))
    assert r.code == 0, r.err
    assert r.out == "" and f"{len(EVERY_OPTION)} unchanged" in r.err
    assert cli("list", "--json").json() == before
    assert cli("export").out == exported.out
    assert cli("export", "--format", "json").json() == before
    # on a store of its own, the same file makes the same jobs
    other = str(tmp_path / "other.db")
    r = cli("--store", other, "apply", str(path))
    assert r.code == 0 and r.out.count("\n+ ") + 1 == len(EVERY_OPTION), r.err
    assert cli("--store", other, "export").out == exported.out
    made = cli("--store", other, "list", "--json").json()
    keys = set(before[0]) - {"next_run_at", "created_at", "updated_at", "tags", "last_run"}
    assert [{k: j[k] for k in keys} for j in made] == [{k: j[k] for k in keys} for j in before]
    assert all("apply.jobs" in j["tags"] for j in made)


@pytest.mark.usefixtures("any_store")
def test_apply_creates_updates_and_prunes_only_what_it_made(cli, tmp_path: Path) -> None:
    path = tmp_path / "team.toml"
    path.write_text('[jobs.a]\ncron = "@daily"\ncommand = ["echo", "a"]\n\n[jobs.b]\n'
                    'every = "5m"\ncommand = "echo b | wc -c"\nretries = 1\n')  # fmt: skip
    cli("add", "mine", "--", "true")
    r = cli("apply", str(path), "--dry-run")
    assert r.code == 0 and r.out == "+ a\n+ b\n" and "nothing written" in r.err
    assert [j["name"] for j in cli("list", "--json").json()] == ["mine"]
    r = cli("apply", str(path))
    assert r.code == 0 and r.out == "+ a\n+ b\n" and "2 added, 0 unchanged" in r.err
    jobs = jobs_by_name(cli)
    assert jobs["b"]["shell"] and jobs["b"]["tags"] == ["apply.team"]
    assert jobs["a"]["cwd"] == str(tmp_path)  # the file's folder
    path.write_text('[jobs.a]\ncron = "@daily"\ncommand = ["echo", "a"]\n\n'
                    '[jobs.b]\nevery = "5m"\ncommand = "echo b | wc -c"\nretries = 2\n'
                    'description = "two"\n')  # fmt: skip
    r = cli("apply", str(path), "--json")
    assert r.code == 0
    assert [(j["name"], j["action"], j.get("fields")) for j in r.json()] == [
        ("a", "unchanged", None), ("b", "changed", ["description", "retries"])]  # fmt: skip
    after = jobs_by_name(cli)
    assert after["a"] == jobs["a"]  # untouched
    assert after["b"]["next_run_at"] == jobs["b"]["next_run_at"]  # same schedule: same fire
    assert (after["b"]["retries"], after["b"]["description"]) == (2, "two")
    path.write_text('[jobs.b]\nevery = "5m"\ncommand = "echo b | wc -c"\n')
    r = cli("apply", str(path))
    assert r.out == "~ b: description, retries\n" and "a" in jobs_by_name(cli)  # no --prune
    other = tmp_path / "other.toml"
    other.write_text('[jobs.c]\ncommand = ["true"]\n')
    assert cli("apply", str(other)).code == 0
    r = cli("apply", str(path), "--prune", "--dry-run")
    assert r.out == "- a\n" and "1 to remove" in r.err
    r = cli("apply", str(path), "--prune")
    assert r.code == 0 and r.out == "- a\n" and "1 removed, 1 unchanged" in r.err
    assert sorted(jobs_by_name(cli)) == ["b", "c", "mine"]  # add's and the other file's stay


def test_apply_prune_refuses_a_running_job(cli, tmp_path: Path) -> None:
    from jobctl.config import resolve_settings
    from jobctl.models import Run
    from jobctl.store import open_store

    path = tmp_path / "p.toml"
    path.write_text('[jobs.a]\ncommand = ["true"]\n')
    cli("apply", str(path))
    store = open_store(resolve_settings())
    store.add_run(Run(job="a", scheduled_for=1.0, status="running", trigger="manual"))
    path.write_text("")
    one_line_error(cli("apply", str(path), "--prune"), 3, "job 'a' is running (run 1)")
    assert "a" in jobs_by_name(cli)


@pytest.mark.usefixtures("any_store")
def test_a_bad_file_writes_nothing(cli, tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[jobs.ok]\ncommand = ["true"]\n\n[jobs.b]\ncommand = ["x"]\nretries = [\n')
    one_line_error(cli("apply", str(path)), 2, f"{path}:7:1: Invalid value")
    path.write_text('[jobs.ok]\ncommand = ["true"]\n\n[jobs.b]\ncommand = ["x"]\n'
                    'retries = "lots"\n')  # fmt: skip
    one_line_error(cli("apply", str(path)), 2,
                   f"{path}:6: jobs.b.retries: invalid --retries 'lots'")  # fmt: skip
    path.write_text('[jobs.ok]\ncommand = ["true"]\n\n[jobs.b]\ncommand = ["x"]\nfoo = 1\n')
    one_line_error(cli("apply", str(path)), 2, f"{path}:6: jobs.b.foo: unknown key")
    path.write_text('[jobs.ok]\ncommand = ["true"]\n[jobs.b.env]\nA = 1\n[jobs.b]\n'
                    'command = ["x"]\n')  # fmt: skip
    one_line_error(cli("apply", str(path)), 2, f"{path}:3: jobs.b.env: expected a table of")
    path.write_text('[jobs.ok]\ncommand = ["true"]\n[jobs."bad name"]\ncommand = ["x"]\n')
    one_line_error(cli("apply", str(path)), 2, f'{path}:3: jobs."bad name": invalid job name')
    one_line_error(cli("apply", str(tmp_path / "none.toml")), 2, "cannot read")
    assert cli("list", "--json").json() == []


def test_a_bad_value_in_the_existing_job_is_found_too(cli, tmp_path: Path) -> None:
    path = tmp_path / "j.toml"
    path.write_text('[jobs.j]\ncommand = ["true"]\n')
    cli("apply", str(path))
    path.write_text('[jobs.j]\ncommand = ["true"]\ntz = "Mars/Base"\n')
    one_line_error(cli("apply", str(path)), 2, f"{path}:3: jobs.j.tz: unknown time zone")


def test_export_formats_and_names(cli) -> None:
    cli(
        "add",
        "b",
        "--cron",
        "0 9 * * 1-5",
        "--retries",
        "2",
        "--cwd",
        os.path.expanduser("~"),
        "--",
        "echo",
        "100%",
    )
    cli("add", "a", "--every", "90s", "--", "true")
    r = cli("export", "--format", "crontab")
    assert r.code == 0
    assert "# a: every 1m30s: cron cannot express --every" in r.out
    assert "# b: not kept by cron: retries=2\n0 9 * * 1-5 echo 100\\%\n" in r.out
    r = cli("export", "b")
    assert r.code == 0 and "[jobs.b]" in r.out and "[jobs.a]" not in r.out
    assert json.loads(cli("export", "--format", "json", "a").out)[0]["name"] == "a"
    one_line_error(cli("export", "b", "zz"), 4, "no job named 'zz'")
    one_line_error(cli("export", "--format", "yaml"), 2, "invalid --format 'yaml'")
    r = cli("export", "--format", "toml")
    assert r.out.startswith("# jobctl export")
