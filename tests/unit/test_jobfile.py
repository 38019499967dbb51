"""jobfile: a Job <-> a TOML table (export/apply), through jobdef, and the plan of an apply."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from jobctl import jobdef, jobfile
from jobctl.jobdef import JobOptions
from jobctl.jobfile import JobFileError
from jobctl.models import Job

NOW = 1_780_000_000.0  # 2026-05-28
TMP = Path("/tmp")

#: one job per option of `add` (and every schedule kind), as `add` would be given them
OPTIONS: dict[str, dict[str, object]] = {
    "cron": {"cron": "30 1 * * mon-fri"},
    "every": {"every": "90s"},
    "every-anchored": {"every": "1h", "start_at": "2026-05-01T00:00:00.250+02:00"},
    "at": {"at": "2026-12-01T09:00"},
    "manual": {},
    "shell": {"shell": True, "command": ["tar czf /tmp/x.tgz ~/notes && echo 'done' | wc -l"]},
    "tz": {"cron": "0 9 * * *", "tz": "America/New_York"},
    "cwd": {"cwd": "/"},
    "env": {"env": ["PATH=/usr/bin:/bin", "EMPTY=", "SPACED= a b "]},
    "timeout": {"timeout": "1h30m"},
    "kill_grace": {"kill_grace": "2500ms"},
    "retries": {"retries": "3", "retry_delay": "1m", "backoff": "linear"},
    "max_retry_delay": {"max_retry_delay": "10m"},
    "overlap": {"overlap": "queue"},
    "misfire": {"misfire": "all", "catchup_window": "0"},
    "catchup_window": {"catchup_window": "2h"},
    "jitter": {"jitter": "0.0005"},
    "mutex": {"mutex": ["db", "disk"]},
    "on": {"on": ["gpu"]},
    "notify": {"notify": ["failure=logger -t x", "failure=https://h.example/x", "success=true"]},
    "ping": {"ping": "https://hc-ping.example/abc"},
    "keep_runs": {"keep_runs": "7"},
    "max_output": {"max_output": "1000"},
    "max_output-kib": {"max_output": "512KiB"},
    "description": {"description": 'nightly "backup"\nsecond line'},
    "tags": {"tag": ["ops", "nightly"]},
    "paused": {"cron": "@daily", "paused": True},
    "reboot": {"cron": "@reboot"},
    "after": {"after": ["cron:failure", "every"]},
}


def make(name: str, **kw: object) -> Job:
    kw.setdefault("command", ["echo", name])
    return jobdef.new_job(name, JobOptions(**kw), NOW, default_tz="UTC", default_cwd="/tmp")  # type: ignore[arg-type]


def plan(text: str, existing: dict[str, Job], now: float = NOW + 60, prune: bool = False):
    return jobfile.plan(tomllib.loads(text), existing, now, default_tz="UTC", base_dir=TMP,
                        origin="apply.jobs", prune=prune)  # fmt: skip


def test_every_option_round_trips_exactly() -> None:
    jobs = {name: make(name, **kw) for name, kw in OPTIONS.items()}
    text = jobfile.dump(list(jobs.values()))
    changes = plan(text, jobs)
    assert [(c.action, c.job.name) for c in changes] == [("same", n) for n in jobs]
    # on an empty store the same file makes the same definitions (next to nothing differs)
    for change in plan(text, {}):
        old = jobs[change.job.name]
        assert change.action == "add" and jobfile.diff(old, change.job) == []
        new = change.job.copy_with(tags=[t for t in change.job.tags if t != "apply.jobs"])
        assert new.copy_with(created_at=old.created_at, updated_at=old.updated_at) == old


def test_only_what_differs_from_the_defaults_is_written() -> None:
    table = jobfile.to_table(make("plain", cron="@daily"))
    assert table == {"cron": "@daily", "command": ["echo", "plain"], "tz": "UTC", "cwd": "/tmp"}
    table = jobfile.to_table(make("sh", shell=True, command=["ls | wc -l"], paused=True))
    assert table["command"] == "ls | wc -l" and table["paused"] is True and "cron" not in table


def test_values_are_written_as_people_type_them() -> None:
    t = jobfile.to_table(make("x", **OPTIONS["retries"], timeout="5400", max_output="1MiB",  # type: ignore[arg-type]
                              notify=["dead=cmd"]))  # fmt: skip
    assert (t["timeout"], t["retries"], t["retry_delay"], t["backoff"]) == (
        "1h30m",
        3,
        "1m",
        "linear",
    )
    assert "max_output" not in t  # the default
    assert t["notify"] == {"dead": "cmd"}
    assert jobfile.to_table(make("y", jitter="0.0005"))["jitter"] == 0.0005


def test_toml_native_types_and_numbers_are_taken() -> None:
    text = """
[jobs.n]
command = ["true"]
every = 90
start_at = 2026-05-01T00:00:00+02:00
timeout = 3600
retries = "2"
max_output = 4096
"""
    (c,) = plan(text, {})
    j = c.job
    assert (j.schedule, j.anchor_at, j.timeout_s, j.retries, j.max_output) == (
        "1m30s", 1777586400.0, 3600.0, 2, 4096,
    )  # fmt: skip


def test_a_missing_key_is_the_default_and_updates_only_what_differs() -> None:
    old = make("j", cron="@daily", retries="3", tag=["ops"], description="d")
    (c,) = plan('[jobs.j]\ncron = "@hourly"\ncommand = ["echo", "j"]\ntz = "UTC"\n'
                'cwd = "/tmp"\ntags = ["ops"]\n', {"j": old})  # fmt: skip
    assert (c.action, c.fields) == ("update", ["cron", "description", "retries"])
    assert (c.job.retries, c.job.description, c.job.schedule) == (0, "", "@hourly")
    assert c.job.next_run_at != old.next_run_at and c.job.created_at == old.created_at


def test_same_schedule_keeps_the_next_fire() -> None:
    old = make("j", cron="*/5 * * * *")
    (c,) = plan('[jobs.j]\ncron = "*/5 * * * *"\ncommand = ["x"]\ntz = "UTC"\ncwd = "/tmp"\n',
                {"j": old}, now=NOW + 3600)  # fmt: skip
    assert c.fields == ["command"] and c.job.next_run_at == old.next_run_at


def test_no_schedule_makes_it_manual_and_paused_state_follows_the_file() -> None:
    old = make("j", cron="@daily", paused=True)
    (c,) = plan('[jobs.j]\ncommand = ["echo", "j"]\ntz = "UTC"\ncwd = "/tmp"\n', {"j": old})
    assert c.fields == ["cron", "paused"]
    assert (c.job.schedule_kind, c.job.state) == ("manual", "active")


def test_origin_tag_is_added_to_new_jobs_only_and_never_exported() -> None:
    (c,) = plan('[jobs.j]\ncommand = ["true"]\ntags = ["a"]\n', {})
    assert c.job.tags == ["a", "apply.jobs"]
    assert jobfile.to_table(c.job)["tags"] == ["a"]
    mine = make("j", tag=["a", "apply.other"])
    (c,) = plan('[jobs.j]\ncommand = ["echo", "j"]\ntz = "UTC"\ncwd = "/tmp"\ntags = ["a"]\n',
                {"j": mine})  # fmt: skip
    assert c.action == "same"
    with pytest.raises(JobFileError, match=r"jobs\.j\.tags: tags starting with 'apply\.'"):
        plan('[jobs.j]\ncommand = ["true"]\ntags = ["apply.x"]\n', {})


def test_prune_removes_only_what_this_file_created() -> None:
    made = {n: make(n, tag=tags) for n, tags in
            (("mine", ["apply.jobs"]), ("other", ["apply.other"]), ("added", []))}  # fmt: skip
    changes = plan("", made, prune=True)
    assert [(c.action, c.job.name) for c in changes] == [("remove", "mine")]
    assert plan("", made) == []


def test_at_that_has_passed_is_done_and_unchanged_when_the_same() -> None:
    (c,) = plan('[jobs.o]\ncommand = ["true"]\nat = "2026-01-01T00:00:00Z"\n', {})
    assert (c.job.state, c.job.next_run_at, c.job.schedule_kind) == ("done", None, "at")
    assert c.note and "has passed" in c.note
    done = c.job
    (c,) = plan(jobfile.dump([done]), {"o": done})
    assert c.action == "same"
    with pytest.raises(JobFileError, match=r"jobs\.o\.at: '\+1h': write an ISO 8601 time"):
        plan('[jobs.o]\ncommand = ["true"]\nat = "+1h"\n', {})


def test_relative_cwd_is_the_files_folder(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    doc = tomllib.loads('[jobs.a]\ncommand = ["true"]\ncwd = "sub"\n[jobs.b]\ncommand = ["true"]')
    a, b = jobfile.plan(doc, {}, NOW, default_tz="UTC", base_dir=tmp_path, origin="apply.x",
                        prune=False)  # fmt: skip
    assert (a.job.cwd, b.job.cwd) == (str(tmp_path / "sub"), str(tmp_path))


@pytest.mark.parametrize(
    ("body", "where", "why"),
    [
        ('command = ["x"]\nretries = "many"', "jobs.j.retries", "invalid --retries 'many'"),
        ('command = ["x"]\nretries = true', "jobs.j.retries", "expected a whole number"),
        ('command = ["x"]\ncron = "61 * * * *"', "jobs.j.cron", "minute 61 is out of range"),
        ('command = ["x"]\nevery = "soon"', "jobs.j.every", "invalid duration 'soon'"),
        ('command = ["x"]\ntz = "Mars/Base"', "jobs.j.tz", "unknown time zone 'Mars/Base'"),
        ('command = ["x"]\nshell = true', "jobs.j.shell", "a shell command is written as a"),
        ('command = ["x"]\nenv = { A = 1 }', "jobs.j.env", "expected a table of strings"),
        ('command = ["x"]\nenv = { "A B" = "1" }', "jobs.j.env", "invalid --env 'A B=1'"),
        ('command = ["x"]\nnotify = { boom = "x" }', "jobs.j.notify", "unknown event 'boom'"),
        ('command = ["x"]\ncwd = "/no/such/dir"', "jobs.j.cwd", "not a directory"),
        ('command = ["x"]\ntags = "ops"', "jobs.j.tags", "expected an array of strings"),
        ('command = ["x"]\nstart_at = "2026-01-01"', "jobs.j.start_at", "goes with every"),
        ('command = ["x"]\ncron = "@daily"\nevery = "1m"', "jobs.j.every", "give one schedule"),
        ("command = []", "jobs.j.command", "has no command"),
        ("command = 3", "jobs.j.command", "expected an array of strings (argv) or a string"),
        ('cron = "@daily"', "jobs.j.command", "missing"),
        ('command = ["x"]\npaused = "yes"', "jobs.j.paused", "expected true or false"),
    ],
)
def test_bad_values_name_the_key(body: str, where: str, why: str) -> None:
    with pytest.raises(JobFileError) as info:
        plan(f"[jobs.j]\n{body}\n", {})
    assert str(info.value).startswith(f"{where}: "), str(info.value)
    assert why in str(info.value)


def test_bad_names_and_top_level_keys() -> None:
    with pytest.raises(JobFileError, match=r'^jobs\."a b": invalid job name'):
        plan('[jobs."a b"]\ncommand = ["x"]\n', {})
    with pytest.raises(JobFileError, match=r"^job: unknown top-level key"):
        plan('[[job]]\nname = "x"\n', {})


def test_locate_finds_the_key_or_the_table() -> None:
    text = '[jobs.a]\ncommand = ["x"]\n\n[jobs."b.c"]\ncommand = ["y"]\nretries = "z"\n' \
           '[jobs."b.c".env]\nA = 1\n'  # fmt: skip
    assert jobfile.locate(text, ("jobs", "b.c", "retries")) == 6
    assert jobfile.locate(text, ("jobs", "b.c", "env")) == 7
    assert jobfile.locate(text, ("jobs", "b.c", "tz")) == 4
    assert jobfile.locate(text, ("jobs", "a", "retries")) == 1
    assert jobfile.locate(text, ("jobs", "zz")) is None
    assert jobfile.locate(text, ("jobs",)) is None


def test_origin_tag_from_the_file_name() -> None:
    assert jobfile.origin_tag(Path("/x/jobs.toml")) == "apply.jobs"
    assert jobfile.origin_tag(Path("my jobs!.toml")) == "apply.my-jobs"


def test_after_links_are_written_as_typed_and_checked_across_the_file() -> None:
    up = make("up")
    chained = make("down", after=["up", "other:always"])
    assert jobfile.to_table(chained)["after"] == ["other:always", "up"]
    text = '[jobs.a]\ncommand = ["true"]\nafter = ["b"]\n[jobs.b]\ncommand = ["true"]\n'
    assert [c.job.after for c in plan(text, {})] == [[["b", "success"]], []]
    with pytest.raises(JobFileError, match=r"^jobs\.a\.after: --after 'zz': no job named 'zz'"):
        plan('[jobs.a]\ncommand = ["true"]\nafter = ["zz"]\n', {})
    cycle = '[jobs.a]\ncommand = ["x"]\nafter = ["b"]\n[jobs.b]\ncommand = ["x"]\nafter = ["a"]\n'
    with pytest.raises(JobFileError, match=r"jobs\.a\.after: --after 'b' would make a cycle: a "):
        plan(cycle, {})
    with pytest.raises(JobFileError, match=r"jobs\.a\.after: --after 'b:maybe': unknown condi"):
        plan('[jobs.a]\ncommand = ["true"]\nafter = ["b:maybe"]\n', {})
    # pruning an upstream unlinks a job outside the file, as rm does
    made = {"up": up.copy_with(tags=["apply.jobs"]), "down": make("down", after=["up"])}
    changes = plan("", made, prune=True)
    assert [(c.action, c.job.name, c.fields) for c in changes] == [
        ("remove", "up", []), ("update", "down", ["after"])]  # fmt: skip
    assert changes[1].job.after == [] and "down ran after up" in (changes[1].note or "")
