"""Issue 14: one dead entry per fire, replays of a fire being replayed, the running run in
`list`, fresh history for a re-added name, and the run conventions (dead JOB, history -n)."""

from __future__ import annotations

import pytest

# every test on SQLite and on PostgreSQL (tests/cli/conftest.py: any_store)
pytestmark = pytest.mark.usefixtures("any_store")


def _run_ids(cli, *args: str) -> list[int]:
    return [r["id"] for r in cli(*args, "--json").json()]


@pytest.mark.usefixtures("any_store")
def test_replayed_fire_has_one_dead_entry(cli) -> None:
    assert cli("add", "f", "--shell", "--", "exit 5").code == 0
    assert cli("run", "f").code == 5
    (first,) = _run_ids(cli, "dead")
    assert cli("retry", str(first)).code == 5  # its replay fails too: dead again
    assert cli("retry", str(first)).code == 5  # the same fire once more
    latest = _run_ids(cli, "history", "f")[0]
    assert cli("retry", str(latest - 1)).code == 5  # an older attempt of it
    dead = cli("dead", "--json").json()
    assert [r["id"] for r in dead] == [latest + 1]  # one entry: the fire's latest attempt
    assert dead[0]["attempt"] == 4
    r = cli("dead", "--dismiss", str(latest + 1))
    assert r.code == 0 and cli("dead", "--json").json() == []
    assert cli("status", "--json").json()["dead"] == 0


@pytest.mark.usefixtures("any_store")
def test_replay_of_a_fire_being_replayed_is_refused_unless_forced(cli) -> None:
    assert cli("add", "f", "--shell", "--", "exit 5").code == 0
    assert cli("run", "f").code == 5
    (dead,) = _run_ids(cli, "dead")
    first = cli("retry", str(dead), "--detach")  # no runner: it stays queued
    assert first.code == 0
    again = cli("retry", str(dead), "--detach")
    assert again.code == 3 and "already being replayed" in again.err
    assert f"run {first.out.strip()} is queued" in again.err and "--force" in again.err
    assert cli("retry", str(dead), "--detach", "--force").code == 0
    assert len(cli("history", "f", "--json").json()) == 3


def test_dead_list_shows_a_fire_once_even_with_older_dead_attempts(cli, home) -> None:
    """Dead entries recorded before the fix (several per fire) are listed once."""
    from jobctl.config import resolve_settings
    from jobctl.store import RunFilter, open_store

    assert cli("add", "f", "--shell", "--", "exit 5").code == 0
    for _ in range(2):
        assert cli("run", "f").code == 5
    store = open_store(resolve_settings())
    newer, older = _run_ids(cli, "history", "f")  # make them two attempts of one fire
    store.update_runs([newer], attempt=2)
    store.update_runs([newer], scheduled_for=store.get_run(older).scheduled_for)
    assert store.count_runs(RunFilter(dead=True)) == 2
    assert _run_ids(cli, "dead") == [newer]
    assert cli("status", "--json").json()["dead"] == 1


def test_list_shows_the_running_run_not_a_newer_skipped_one(cli, home) -> None:
    from jobctl.config import resolve_settings
    from jobctl.models import Run
    from jobctl.store import open_store

    assert cli("add", "busy", "--every", "1h", "--", "true").code == 0
    store = open_store(resolve_settings())
    t = store.get_job("busy").created_at
    store.add_run(Run(job="busy", scheduled_for=t, created_at=t, started_at=t,
                      status="running", owner="x:1:1"))  # fmt: skip
    store.add_run(Run(job="busy", scheduled_for=t + 1, created_at=t + 1, status="skipped"))
    out = cli("list").out
    assert "running for" in out and "skipped" not in out


@pytest.mark.usefixtures("any_store")
def test_a_re_added_name_starts_a_fresh_history(cli) -> None:
    assert cli("add", "gone", "--", "echo", "old").code == 0
    assert cli("run", "gone").code == 0
    assert cli("rm", "gone").code == 0
    assert cli("add", "gone", "--", "echo", "new").code == 0
    assert cli("history", "gone", "--json").json() == []
    assert cli("list", "--json").json()[0]["last_run"] is None
    assert "LAST RUN" not in cli("list").out  # no run yet: the column has nothing to show
    r = cli("logs", "gone")
    assert r.code == 4 and "has not run yet" in r.err
    old = cli("history", "gone", "--all", "--json").json()
    assert [r["status"] for r in old] == ["succeeded"]
    assert cli("run", "gone").code == 0
    assert len(cli("history", "gone", "--json").json()) == 1
    assert len(cli("history", "gone", "--all", "--json").json()) == 2
    assert cli("logs", "gone").out == "new\n"


def test_history_of_a_removed_job_and_of_an_unknown_name(cli) -> None:
    assert cli("add", "x", "--", "true").code == 0
    assert cli("run", "x").code == 0
    assert cli("rm", "x").code == 0
    assert len(cli("history", "x", "--json").json()) == 1  # its runs stay reachable
    r = cli("history", "nosuch")
    assert r.code == 4 and "nosuch" in r.err


def test_history_n_and_dead_filtered_by_job(cli) -> None:
    for name in ("a", "b"):
        assert cli("add", name, "--shell", "--", "exit 1").code == 0
        for _ in range(3):
            assert cli("run", name).code == 1
    assert len(cli("history", "-n", "2", "--json").json()) == 2
    assert {r["job"] for r in cli("dead", "a", "--json").json()} == {"a"}
    assert len(cli("dead", "--json").json()) == 6
    assert cli("dead", "nosuch").code == 4
    r = cli("dead", "a", "--all", "--yes")
    assert r.code == 0 and "dismissed 3 dead runs" in r.err
    assert {r["job"] for r in cli("dead", "--json").json()} == {"b"}


def test_dead_all_asks_on_a_terminal(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    assert cli("add", "a", "--shell", "--", "exit 1").code == 0
    assert cli("run", "a").code == 1
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    r = cli("dead", "--all")
    assert r.code == 1 and "dismiss 1 dead run?" in r.out
    assert len(cli("dead", "--json").json()) == 1
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    r = cli("dead", "--all")
    assert r.code == 0 and "dismissed 1 dead run\n" in r.err
    assert cli("dead", "--json").json() == []


def test_rm_takes_several_names_all_or_none(cli) -> None:
    for name in ("a", "b", "c"):
        assert cli("add", name, "--", "true").code == 0
    r = cli("rm", "a", "nosuch", "b")
    assert r.code == 4 and "nosuch" in r.err
    assert len(cli("list", "--json").json()) == 3  # nothing removed
    r = cli("rm", "a", "b")
    assert r.code == 0 and "removed jobs 'a', 'b'" in r.err
    assert [j["name"] for j in cli("list", "--json").json()] == ["c"]


@pytest.mark.usefixtures("any_store")
def test_a_removed_jobs_runs_stay_its_own(cli) -> None:
    """`show` counts only the job's own runs, `rm --purge` deletes only those, and a run of
    the removed job cannot be replayed by the new job of that name (QA pass, items 1, 2, 4)."""
    assert cli("add", "g", "--", "false").code == 0
    assert cli("run", "g").code == 1
    (old,) = _run_ids(cli, "dead")
    assert cli("rm", "g").code == 0
    assert cli("add", "g", "--", "true").code == 0
    assert cli("run", "g").code == 0
    shown = cli("show", "g", "--json").json()
    assert [r["id"] for r in shown["recent_runs"]] == [old + 1]
    assert shown["stats"]["runs"] == 1 and shown["stats"]["success_rate"] == 1.0
    table = cli("show", "g").out.split("recent runs")[-1].splitlines()
    header = next(i for i, line in enumerate(table) if line.startswith("ID"))
    assert [line.split()[0] for line in table[header + 1 :] if line.strip()] == [str(old + 1)]
    r = cli("retry", str(old))
    assert r.code == 4 and r.err == (f"jobctl: run {old} was a run of an earlier job named "
                                     "'g', since removed: it cannot be replayed\n")  # fmt: skip
    assert _run_ids(cli, "dead") == [old]  # still the old job's, untouched
    assert cli("rm", "g", "--purge").code == 0
    assert _run_ids(cli, "history", "g", "--all") == [old]  # the earlier job's history stays
    assert cli("logs", str(old)).code == 0


@pytest.mark.usefixtures("any_store")
def test_retry_keeps_the_overlap_policy_unless_forced(cli, home) -> None:
    from jobctl.config import resolve_settings
    from jobctl.models import Run
    from jobctl.store import open_store

    assert cli("add", "ov", "--", "false").code == 0  # --overlap skip, the default
    assert cli("run", "ov").code == 1
    (dead,) = _run_ids(cli, "dead")
    store = open_store(resolve_settings())
    t = store.get_job("ov").created_at + 1
    busy = store.add_run(Run(job="ov", scheduled_for=t, created_at=t, started_at=t,
                             status="running", owner="x:1:1"))  # fmt: skip
    for args in ([], ["--detach"]):
        r = cli("retry", str(dead), *args)
        assert r.code == 3 and f"run {busy.id} is running" in r.err and "--force" in r.err
    assert len(_run_ids(cli, "history", "ov")) == 2  # nothing recorded
    assert cli("retry", str(dead), "--detach", "--force").code == 0
    assert len(_run_ids(cli, "history", "ov")) == 3


def test_edit_does_not_revive_a_finished_one_shot_without_a_schedule(cli, home) -> None:
    from jobctl.config import resolve_settings
    from jobctl.store import open_store

    assert cli("add", "once", "--at", "+1h", "--", "true").code == 0
    store = open_store(resolve_settings())
    store.update_jobs(["once"], lambda j: j.copy_with(state="done", next_run_at=None))
    for flag, word in (("--active", "active"), ("--paused", "paused")):
        r = cli("edit", "once", flag)
        assert r.code == 3, r.err
        said = "jobctl: job 'once' is done (its --at time has passed); give it a new schedule"
        assert r.err == f"{said} (--cron, --every or --at) to make it {word} again\n"
        assert store.get_job("once").state == "done"
    assert cli("edit", "once", "--paused", "--at", "+2h").code == 0
    assert store.get_job("once").state == "paused"


@pytest.mark.usefixtures("any_store")
@pytest.mark.parametrize("order", ["older_ends_first", "newer_ends_first"])
def test_two_failed_replays_of_a_fire_leave_one_dead_mark(cli, home, order: str) -> None:
    """Of a fire's runs only the newest is marked dead, whichever replay ends last: the runs'
    `dead` and the dead list agree (QA pass: both stayed marked, and dismissing the older
    one took the listed one off)."""
    from jobctl.config import resolve_settings
    from jobctl.records import replace
    from jobctl.store import open_store

    assert cli("add", "sf", "--shell", "--", "exit 5").code == 0
    assert cli("run", "sf").code == 5
    (first,) = _run_ids(cli, "dead")
    a = int(cli("retry", str(first), "--detach").out)
    b = int(cli("retry", str(first), "--detach", "--force").out)
    store = open_store(resolve_settings())
    ends = [store.get_run(a), store.get_run(b)]
    if order == "newer_ends_first":
        ends.reverse()
    for run in ends:  # each ends failed with no retry left: dead, as the runner records it
        t = run.created_at + 1
        store.finish_runs([(replace(run, status="failed", exit_code=5, started_at=t,
                                    finished_at=t, dead=True), None, None)])  # fmt: skip
    history = {r["id"]: r["dead"] for r in cli("history", "sf", "--json").json()}
    assert history == {first: False, a: False, b: True}
    assert _run_ids(cli, "dead") == [b]
    r = cli("dead", "--dismiss", str(a))
    assert r.code == 4 and f"run {a} is not in the dead list" in r.err
