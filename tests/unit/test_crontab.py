"""crontab: reading crontabs as cron does (environment, '%', user field, comments), the jobs'
names and commands, and writing jobs back as a crontab."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest

from jobctl import crontab, jobdef
from jobctl.crontab import Context, Entry
from jobctl.jobdef import JobOptions
from jobctl.models import Job

DATA = Path(__file__).parent.parent / "data" / "cron"
NOW = 1_780_000_000.0


def ctx(**kw: object) -> Context:
    base: dict[str, object] = dict(source_tag="import.t", home="/", user="me", sendmail=False,
                                   default_tz="UTC")  # fmt: skip
    return Context(**{**base, **kw})  # type: ignore[arg-type]


def sh(command: str, env: dict[str, str] | None = None) -> bytes:
    """What a job's shell command writes, run as jobctl runs it (/bin/sh -c)."""
    return subprocess.run(["/bin/sh", "-c", command], capture_output=True, check=True,
                          env=env).stdout  # fmt: skip


# ---- environment lines, comments, fields -----------------------------------------------------


@pytest.mark.parametrize(
    ("line", "setting"),
    [
        ("A=1", ("A", "1")),
        ("A = 1", ("A", "1")),
        ("PATH = /usr/bin:/bin  ", ("PATH", "/usr/bin:/bin")),
        ("GREETING = hello world", ("GREETING", "hello world")),
        ('MAILTO=""', ("MAILTO", "")),
        ("MAILTO=", ("MAILTO", "")),
        ("Q=' a b '", ("Q", " a b ")),
        ('Q=" a b "', ("Q", " a b ")),
        ("Q='a\"", ("Q", "'a\"")),  # quotes that do not match stay
        ("'MY VAR'=x", ("MY VAR", "x")),
        ("5 0 * * * A=1 cmd", None),
        ("@daily A=1 cmd", None),
        ("*/5 * * * * a=b", None),
        ("echo x", None),
    ],
)
def test_environment_lines_as_crontab5_reads_them(line: str, setting: tuple | None) -> None:
    assert crontab.parse_env(line) == setting


def test_parse_env_applies_to_the_lines_after_it_and_comments_describe() -> None:
    text = (
        "# header, then a blank line\n\n"
        "PATH=/a\n"
        "# nightly backup\n#  of the notes\n"
        "  30 1 * * *\tbackup.sh  --all\n"
        "PATH=/b\n"
        "\n# unrelated\n\n"
        "@reboot start\n"
        "# 0 5 * * * old-job --disabled\n"
        "# |  |  |\n"
        "@hourly tick\n"
    )
    entries, problems = crontab.parse(text)
    assert problems == []
    assert [(e.line, e.schedule, e.command, e.env, e.description) for e in entries] == [
        (6, "30 1 * * *", "backup.sh  --all", {"PATH": "/a"}, "nightly backup of the notes"),
        (11, "@reboot", "start", {"PATH": "/b"}, ""),
        (14, "@hourly", "tick", {"PATH": "/b"}, ""),
    ]
    assert entries[1].env_lines == {"PATH": 7}


def test_cron_d_lines_have_a_user_field() -> None:
    entries, problems = crontab.parse("0 */12 * * * root test -x /x && y\n@reboot www run\n",
                                      system=True)  # fmt: skip
    assert problems == []
    assert [(e.schedule, e.user, e.command) for e in entries] == [
        ("0 */12 * * *", "root", "test -x /x && y"),
        ("@reboot", "www", "run"),
    ]
    _, problems = crontab.parse("0 1 * * * cmd-without-user\n", system=True)
    assert "then a user and a command" in problems[0].why


def test_system_files() -> None:
    assert crontab.system_file("/etc/crontab") and crontab.system_file("/etc/cron.d/certbot")
    assert not crontab.system_file("/etc/cron.daily/x") and not crontab.system_file("my.cron")


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("0~30 * * * * x", "'~' (a random value, cronie) is not supported"),
        ("0 9 * * mon#2 x", "'#' (nth weekday of the month)"),
        ("0 9 15W * * x", "'W' (nearest weekday)"),
        ("0 9 ? * * x", "'?' in '?' is not supported"),
        ("0 9 * * 1L x", "'L' in '1L' is only supported in the day-of-month field"),
        ("61 * * * * x", "minute 61 is out of range 0-59"),
        ("* * * *", "needs 5 time fields, then a command"),
        ("@every 5m x", "unknown schedule '@every'"),
        ("not a line at all", "neither a schedule line nor an environment setting"),
    ],
)
def test_lines_jobctl_cannot_express(line: str, why: str) -> None:
    entries, problems = crontab.parse(f"A=1\n{line}\n")
    assert entries == [] and [p.line for p in problems] == [2]
    assert why in problems[0].why


# ---- '%': the command and its standard input -------------------------------------------------


@pytest.mark.parametrize(
    ("command", "split"),
    [
        ("echo hi", ("echo hi", None)),
        ('mail -s "It\'s 10pm" joe%Joe,%%Where are your kids?%',
         ('mail -s "It\'s 10pm" joe', "Joe,\n\nWhere are your kids?\n")),
        (r"date +\%F", ("date +%F", None)),
        ("cat%one line", ("cat", "one line\n")),  # cron adds the last line break
        ("cat%", ("cat", None)),  # nothing after '%': no input at all
        (r"cat%100\% sure%\\x", ("cat", "100% sure\n\\\\x\n")),
        (r"a\\%b", ("a\\\\", "b\n")),  # a backslash before \\ does not escape the '%'
        ("cat%ends with a backslash\\", ("cat", "ends with a backslash\\\n")),
    ],
)  # fmt: skip
def test_percent_signs_as_cron_splits_them(command: str, split: tuple) -> None:
    assert crontab.split_input(command) == split


@pytest.mark.parametrize(
    "data", ["", "x", "a\nb\n", "\n\n", "it's 100% $HOME `x` \\n\n", "no newline", "-n\n"]
)
def test_feed_writes_exactly_the_input(data: str) -> None:
    assert sh(crontab.feed(data)) == data.encode()


def test_a_percent_line_gives_its_input_to_the_whole_command(tmp_path: Path) -> None:
    """`a && b` both read the standard input, as under cron (not only the last command)."""
    (command,), shell = crontab.job_command("read x; echo first:$x; cat%one%two%three", "/bin/sh")
    assert shell and sh(command) == b"first:one\ntwo\nthree\n"
    argv, shell = crontab.job_command("echo $0 $BASH_VERSION | cut -c1-9", "/bin/bash")
    assert argv == ["/bin/bash", "-c", "echo $0 $BASH_VERSION | cut -c1-9"] and not shell
    (command,), shell = crontab.job_command("cat -A%tab\there", "/bin/bash")
    assert shell and sh(command) == b"tab^Ihere$\n"


# ---- names -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "name"),
    [
        ("test -x /usr/bin/certbot -a \\! -d /run/systemd/system && perl -e 'sleep "
         "int(rand(43200))' && certbot -q renew --no-random-sleep-on-renew", "certbot"),
        ("command -v debian-sa1 > /dev/null && debian-sa1 1 1", "debian-sa1"),
        ("[ -x /etc/init.d/anacron ] && if [ ! -d /run/systemd/system ]; then "
         "/usr/sbin/invoke-rc.d anacron start >/dev/null; fi", "invoke-rc.d"),
        ("[ -x /usr/lib/php/sessionclean ] && if [ ! -d /run/systemd/system ]; then "
         "/usr/lib/php/sessionclean; fi", "sessionclean"),
        ("test -e /run/systemd/system || SERVICE_MODE=1 /sbin/e2scrub_all -A -r", "e2scrub_all"),
        ("test -x /usr/sbin/anacron || { cd / && run-parts --report /etc/cron.daily; }",
         "run-parts"),
        ("$HOME/bin/daily.job >> $HOME/tmp/out 2>&1", "daily.job"),
        ("test $(date +%u) -eq 6 && echo \"2nd Saturday\"", "echo"),
        ("cd /srv && nice -n 10 ./backup.sh", "backup.sh"),
        ("FOO=1 exec env -i A=2 python3 x.py", "python3"),
        ("sleep $((RANDOM % 60)); /opt/x/run", "run"),
        ("echo 'unterminated", "echo"),
        ("sleep 5", "sleep"),
        ("/usr/bin/wéird name!", "w-ird"),
        (">/dev/null", "job"),
    ],
)  # fmt: skip
def test_names_come_from_the_program(command: str, name: str) -> None:
    assert crontab.program_name(command) == name


def test_names_are_unique_in_file_order_with_the_prefix() -> None:
    assert crontab.unique_names(["backup", "echo", "backup", "backup-2", "backup"]) == [
        "backup", "echo", "backup-2", "backup-2-2", "backup-3"]  # fmt: skip
    assert crontab.unique_names(["x", "x"], "cron.") == ["cron.x", "cron.x-2"]
    long = crontab.unique_names(["a" * 70, "a" * 70])
    assert [len(n) for n in long] == [64, 64] and long[1].endswith("-2")


# ---- options ---------------------------------------------------------------------------------


def entry(command: str = "echo hi", **kw: object) -> Entry:
    return Entry(line=3, schedule="0 1 * * *", command=command, **kw)  # type: ignore[arg-type]


def test_options_carry_the_environment_zone_home_and_description(tmp_path: Path) -> None:
    env = {"SHELL": "/bin/sh", "CRON_TZ": "Japan", "TZ": "UTC", "HOME": str(tmp_path), "A": ""}
    (item,), problems, warnings = crontab.options(
        [entry(env=env, env_lines=dict.fromkeys(env, 1), description="d")],
        ctx(prefix="c-", tags=["t"]))  # fmt: skip
    assert problems == [] and warnings == []
    o = item.opts
    assert (item.name, o.cron, o.tz, o.cwd, o.description) == ("c-echo", "0 1 * * *", "Japan",
                                                                str(tmp_path), "d")  # fmt: skip
    assert o.env == ["SHELL=/bin/sh", "CRON_TZ=Japan", "TZ=UTC", f"HOME={tmp_path}", "A="]
    assert (o.command, o.shell, o.tag, o.notify) == (["echo hi"], True, ["import.t", "t"], [])


def test_mailto_becomes_mail_notifications_where_sendmail_is() -> None:
    env = {"MAILTO": "paul, ops@example.org"}
    e = entry(env=env, env_lines={"MAILTO": 2})
    (item,), _, warnings = crontab.options([e], ctx(sendmail=True))
    assert item.opts.notify == [
        "dead=mailto:paul@localhost", "failure=mailto:paul@localhost",
        "dead=mailto:ops@example.org", "failure=mailto:ops@example.org",
    ]  # fmt: skip
    assert warnings == []
    items, _, warnings = crontab.options([e, e], ctx(sendmail=False))
    assert [i.opts.notify for i in items] == [[], []]
    assert len(warnings) == 1 and "MAILTO=paul, ops@example.org (line 2): no local sendmail" in (
        warnings[0])  # fmt: skip
    (item,), _, _ = crontab.options([entry(env={"MAILTO": ""}, env_lines={"MAILTO": 2})],
                                    ctx(sendmail=True))  # fmt: skip
    assert item.opts.notify == []


def test_other_users_lines_are_tagged_and_warned_about() -> None:
    items, _, warnings = crontab.options([entry(user="root"), entry(user="me"),
                                          entry(user="root")], ctx())  # fmt: skip
    assert [i.opts.tag for i in items] == [["import.t", "user.root"], ["import.t", "user.me"],
                                           ["import.t", "user.root"]]  # fmt: skip
    assert warnings == ["warning: lines for user 'root' run as root under cron; jobctl runs "
                        "them as me (tag user.root)"]  # fmt: skip


def test_environment_jobctl_cannot_give_is_a_problem_at_its_line() -> None:
    e = entry(env={"MY-VAR": "1"}, env_lines={"MY-VAR": 2})
    items, problems, _ = crontab.options([e, e], ctx())
    assert items == []
    assert [(p.line, p.why[:30]) for p in problems] == [
        (2, "environment variable 'MY-VAR':"), (3, "it uses line 2: environment va")]  # fmt: skip
    bad_tz = entry(env={"CRON_TZ": "Mars/Base"}, env_lines={"CRON_TZ": 2})
    _, problems, _ = crontab.options([bad_tz], ctx())
    assert problems[0].line == 2 and "unknown time zone 'Mars/Base'" in problems[0].why


def test_plan_adds_then_updates_only_what_the_line_says() -> None:
    c = ctx()
    (item,), _, _ = crontab.options([entry()], c)
    (add,), problems = crontab.plan([item], {}, NOW, c)
    assert add.action == "add" and problems == []
    edited = jobdef.apply_options(add.job, JobOptions(retries="3", paused=True), NOW)
    (same,), _ = crontab.plan([item], {"echo": edited}, NOW + 10, c)
    assert same.action == "same"
    (item,), _, _ = crontab.options([Entry(3, "0 2 * * *", "echo hi")], c)
    (upd,), _ = crontab.plan([item], {"echo": edited}, NOW + 10, c)
    assert (upd.action, upd.fields) == ("update", ["cron"])
    assert (upd.job.retries, upd.job.state) == (3, "paused")  # the user's own edits stay


def test_a_name_taken_by_a_job_not_imported_from_here_is_a_conflict() -> None:
    from jobctl.errors import ConflictError

    c = ctx()
    (item,), _, _ = crontab.options([entry()], c)
    mine = jobdef.new_job("echo", JobOptions(command=["x"]), NOW, "UTC", "/")
    with pytest.raises(ConflictError, match=r"not imported from this source \(no tag import\.t\)"):
        crontab.plan([item], {"echo": mine}, NOW, c)


# ---- jobs -> crontab -------------------------------------------------------------------------


def job(name: str, **kw: object) -> Job:
    kw.setdefault("command", ["echo", name])
    return jobdef.new_job(name, JobOptions(**kw), NOW, default_tz="UTC", default_cwd="/")  # type: ignore[arg-type]


def test_export_comments_out_what_cron_cannot_express() -> None:
    jobs = [job("e", every="90s"), job("a", at="2026-12-01T00:00"), job("m"),
            job("s", cron="*/10 * * * * *"), job("l", cron="0 0 L * *"),
            job("p", cron="@daily", paused=True)]  # fmt: skip
    text = crontab.dump(jobs, local_tz="UTC", home="/")
    lines = [x for x in text.splitlines() if x.startswith("# ") and ": " in x][1:]
    assert lines == [
        "# e: every 1m30s: cron cannot express --every",
        "# a: at 2026-12-01T00:00:00+00:00: cron cannot express --at (a one-shot)",
        "# m: no schedule (manual): nothing for cron to run",
        "# s: cron '*/10 * * * * *': cron has no seconds field",
        "# l: cron '0 0 L * *': cron has no 'L' (last day of the month)",
        "# p: paused",
    ]
    assert not [x for x in text.splitlines() if x and not x.startswith(("#", "SHELL="))]


def test_export_writes_lines_cron_runs_as_jobctl_does(tmp_path: Path) -> None:
    jobs = [
        job("a", cron="@daily", env=["A=1", "B= x "], description="first\nline",
            command=["printf", "%s|", "it's", "100%"], retries="2"),
        job("b", cron="0 * * * *", env=["A=1"], tz="Japan", shell=True, cwd=str(tmp_path),
            command=["echo $A-$B-$(date +%Y | cut -c1-2)"]),
        job("c", cron="5 4 * * sun", env=["A=2", "SHELL=/bin/bash"]),
        job("d", cron="@hourly", command=["x\\%y"]),
    ]  # fmt: skip
    text = crontab.dump(jobs, local_tz="UTC", home="/")
    body = [x for x in text.splitlines() if x and not x.startswith("# jobctl") and
            not x.startswith("# jobs in")]  # fmt: skip
    assert body == [
        "SHELL=/bin/sh",
        "# a: first line",
        "# a: not kept by cron: retries=2",
        "A=1",
        'B=" x "',
        "@daily printf '\\%s|' 'it'\"'\"'s' 100\\%",
        "# b",
        "CRON_TZ=Japan",
        f"0 * * * * unset B; cd {tmp_path} || exit 126; echo $A-$B-$(date +\\%Y | cut -c1-2)",
        "# c",
        "CRON_TZ=UTC",
        "A=2",
        "5 4 * * sun unset B; export SHELL=/bin/bash; echo c",
        "# d: its command has a line break or a '\\%', which a crontab cannot hold",
    ]
    # read back as cron reads it, each line runs what the job runs, with its environment
    entries, problems = crontab.parse(text)
    assert problems == [] and len(entries) == 3
    for e, j in zip(entries, jobs, strict=False):
        command, data = crontab.split_input(e.command)
        assert data is None and e.schedule == j.schedule
        assert e.env.get("CRON_TZ", "UTC") == j.tz
        cron_env = {**os.environ, **e.env, "HOME": "/"}
        jobctl = j.command[0] if j.shell else shlex.join(j.command)
        ran = subprocess.run(["/bin/sh", "-c", command], env=cron_env, capture_output=True,
                             cwd="/", check=False).stdout  # fmt: skip
        want = subprocess.run(["/bin/sh", "-c", jobctl], env={**os.environ, **j.env},
                              capture_output=True, cwd=j.cwd, check=False).stdout  # fmt: skip
        assert ran == want, (e.line, command)


def test_debian_and_crontab5_files_parse_whole(tmp_path: Path) -> None:
    for path in [*sorted(DATA.glob("cron.d/*")), DATA / "etc-crontab"]:
        entries, problems = crontab.parse(path.read_text(), system=True)
        assert entries and problems == [], path
        assert all(e.user == "root" for e in entries)
    entries, problems = crontab.parse((DATA / "crontab.5-example").read_text())
    assert problems == [] and len(entries) == 9
    assert entries[2].env == {"SHELL": "/bin/sh", "MAILTO": "paul", "CRON_TZ": "Japan"}
