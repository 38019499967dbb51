"""PostgreSQL specifics: migrations under the advisory lock, errors, changes, the CLI routing."""

from __future__ import annotations

import subprocess
import sys
import threading

import psycopg
import pytest

from jobctl.errors import StoreError
from jobctl.models import Job
from jobctl.store import RunFilter, pg_schema
from jobctl.store.postgres import PostgresStore, describe_url
from tests.pg import _free_port
from tests.waiting import wait_for


def job(name: str = "backup") -> Job:
    return Job(name=name, command=["echo", name], next_run_at=1000.0, created_at=1.0)


def test_schema_version_table_records_every_migration(pg_url: str) -> None:
    PostgresStore(pg_url).close()
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute("SELECT version, name FROM jobctl_schema ORDER BY version").fetchall()
    assert rows == [(v, name) for v, name, _ in pg_schema.MIGRATIONS]
    assert rows[-1][0] == pg_schema.SCHEMA_VERSION


def test_concurrent_first_opens_migrate_once(pg_url: str) -> None:
    """Several processes opening a blank database at once: the advisory lock lets one
    migrate; the others wait for it and find the schema made."""
    errors: list[BaseException] = []
    stores: list[PostgresStore] = []

    def open_one() -> None:
        try:
            stores.append(PostgresStore(pg_url))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    stores[0].add_job(job())
    assert [j.name for j in stores[-1].list_jobs()] == ["backup"]
    for s in stores:
        s.close()


def test_refuses_a_newer_schema(pg_url: str) -> None:
    PostgresStore(pg_url).close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("INSERT INTO jobctl_schema (version, name) VALUES (999, 'future')")
    with pytest.raises(StoreError, match="schema 999, newer than"):
        PostgresStore(pg_url)


def test_changed_counts_other_connections_commits_only(pg_url: str) -> None:
    a, b = PostgresStore(pg_url), PostgresStore(pg_url)
    before = a.changed()
    a.add_job(job("mine"))  # our own commit is not a change made by someone else
    assert a.changed() == before
    b.add_job(job("theirs"))
    wait_for(lambda: a.changed() != before)
    seen = a.changed()
    b.heartbeat("nobody", 5.0)  # a statement that touches no job or run row: no change
    b.update_runs([12345], dead=True)
    a.add_job(job("again"))  # a round trip that would have carried any notification
    assert a.changed() == seen
    a.close()
    b.close()


def test_unreachable_server_is_one_line_naming_the_host_not_the_password() -> None:
    url = f"postgresql://me:s3cret@127.0.0.1:{_free_port()}/jobs"
    with pytest.raises(StoreError) as info:
        PostgresStore(url, connect_timeout_s=2)
    text = str(info.value)
    assert "127.0.0.1" in text and "s3cret" not in text and "\n" not in text


def test_describe_url_drops_the_password() -> None:
    assert describe_url("postgresql://me:pw@db.example:5433/jobs?sslmode=require") == (
        "postgresql://me@db.example:5433/jobs",
        "pw",
    )
    assert describe_url("postgres://db.example/jobs")[0] == "postgresql://db.example/jobs"


def test_a_lost_connection_fails_one_call_then_reconnects(pg_url: str) -> None:
    s = PostgresStore(pg_url)
    s.add_job(job())
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [s.conn.info.backend_pid])
    with pytest.raises(StoreError):
        s.list_jobs()
    assert [j.name for j in s.list_jobs()] == ["backup"]
    s.close()


# ---- the CLI on a PostgreSQL store -------------------------------------------------------


def test_cli_uses_the_postgres_store_from_flag_and_environment(
    cli, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli("--store", pg_url, "add", "hello", "--every", "1m", "--", "echo", "hi").code == 0
    monkeypatch.setenv("JOBCTL_STORE", pg_url.replace("postgresql://", "postgres://", 1))
    listed = cli("list", "--json")
    assert listed.code == 0 and [j["name"] for j in listed.json()] == ["hello"]


def test_cli_unreachable_store_exits_1_with_one_line(cli) -> None:
    url = f"postgresql://me:s3cret@127.0.0.1:{_free_port()}/jobs"
    r = cli("--store", url, "list")
    assert r.code == 1
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and "127.0.0.1" in lines[0] and "s3cret" not in r.err


def test_cli_runner_once_on_a_postgres_store_runs_what_is_queued(cli, pg_url: str) -> None:
    assert cli("--store", pg_url, "add", "hi", "--every", "1h", "--", "true").code == 0
    assert cli("--store", pg_url, "run", "hi", "--detach").code == 0
    r = cli("--store", pg_url, "runner", "--once", "--lease", "6s")
    assert r.code == 0, r.err
    (run,) = cli("--store", pg_url, "history", "hi", "--json").json()
    assert run["status"] == "succeeded"
    assert cli("--store", pg_url, "runner", "--lease", "1s").code == 2  # renewed every third


def test_sqlite_commands_never_import_psycopg(tmp_path) -> None:
    code = (
        "import sys; from jobctl.__main__ import main; rc = main(['list']); "
        "assert 'psycopg' not in sys.modules, 'psycopg imported'; sys.exit(rc)"
    )
    env = {"JOBCTL_HOME": str(tmp_path / "h"), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


# ---- leases, fencing, reaping (SPEC 8): decided by the database's clock ----------------------


def _leased(store: PostgresStore, owner: str, lease_s: float) -> int:
    from jobctl.store.base import RunnerInfo

    t = store.now()
    info = RunnerInfo(owner=owner, pid=1, host=owner, since=t, heartbeat_at=t,
                      lease_expires_at=t + lease_s)  # fmt: skip
    return store.register_runner(info)


def _expire(pg_url: str, owner: str) -> None:
    """Move a runner's lease into the past, as if it had not renewed it in time."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE runner SET lease_expires_at = lease_expires_at - 3600000 WHERE owner = %s",
            [owner],
        )


def _claim_one(store: PostgresStore, owner: str, epoch: int | None):
    return store.claim(owner, owner, store.now() + 1, 1, lambda q, r, j, n: (q[:n], []),
                       epoch=epoch)  # fmt: skip


def test_each_registration_takes_a_new_epoch(pg_url: str) -> None:
    s = PostgresStore(pg_url)
    first = _leased(s, "a", 15)
    again = _leased(s, "a", 15)
    other = _leased(s, "b", 15)
    assert len({first, again, other}) == 3 and again > first
    s.close()


def test_claimed_runs_carry_the_epoch_and_fenced_ends_are_refused(pg_url: str) -> None:
    from jobctl.errors import FencedError
    from jobctl.models import Run
    from jobctl.records import replace

    s = PostgresStore(pg_url)
    s.add_job(job("a"))
    s.add_run(Run(job="a", scheduled_for=1.0, not_before=1.0))
    s.add_run(Run(job="a", scheduled_for=2.0, not_before=1.0))
    epoch = _leased(s, "r1", 15)
    assert _claim_one(s, "r1", epoch + 100) == []  # not our lease: nothing claimed
    ((run, _),) = _claim_one(s, "r1", epoch)
    done = replace(run, status="succeeded", finished_at=5.0)
    with pytest.raises(FencedError):  # a stale epoch: the write is refused, nothing changes
        s.finish_run(done, fence=("r1", epoch + 100))
    assert s.get_run(run.id).status == "running"
    s.finish_run(done, fence=("r1", epoch))
    assert s.get_run(run.id).status == "succeeded"
    ((second, _),) = _claim_one(s, "r1", epoch)
    _expire(pg_url, "r1")
    assert s.heartbeat("r1", 0.0, 15, epoch) is False  # expired: fenced, must re-register
    with pytest.raises(FencedError):
        s.finish_run(replace(second, status="succeeded"), fence=("r1", epoch))
    assert _claim_one(s, "r1", epoch) == []
    s.close()


def test_a_batch_of_ends_skips_only_the_fenced_one(pg_url: str) -> None:
    """finish_runs under a fence: the end of a run no longer held under that lease is not
    written (nor its retry); the others in the same batch are."""
    from jobctl.models import Run
    from jobctl.records import replace

    s = PostgresStore(pg_url)
    s.add_job(job("a"))
    for i in range(2):
        s.add_run(Run(job="a", scheduled_for=float(i), not_before=1.0))
    epoch = _leased(s, "r1", 15)
    ((mine, _),) = _claim_one(s, "r1", epoch)
    ((taken, _),) = _claim_one(s, "r1", epoch)
    s.update_run(taken.id, status="abandoned", owner="r2")  # taken over meanwhile
    retry = Run(job="a", scheduled_for=taken.scheduled_for, attempt=2, trigger="retry")
    written = s.finish_runs(
        [
            (replace(mine, status="succeeded", finished_at=5.0), None, None),
            (replace(taken, status="failed", finished_at=5.0), retry, None),
        ],
        fence=("r1", epoch),
    )
    assert written == [True, False]
    assert s.get_run(mine.id).status == "succeeded"
    assert s.get_run(taken.id).status == "abandoned"
    assert [r.attempt for r in s.list_runs(RunFilter(job="a"))] == [1, 1]  # no retry written
    s.close()


def test_a_batch_of_ends_is_one_update(pg_url: str, monkeypatch) -> None:
    """Every end of a batch in one UPDATE (typed by the table: jsonb_populate_recordset): one
    plan and one firing of the notify trigger, not one of each per end (server CPU per run
    0.72 -> 0.61 ms in interleaved drains)."""
    from jobctl.models import Run
    from jobctl.records import replace
    from jobctl.store import postgres

    s = PostgresStore(pg_url)
    s.add_job(job("a"))
    for i in range(5):
        s.add_run(Run(job="a", scheduled_for=float(i), not_before=1.0))
    epoch = _leased(s, "r1", 15)
    claimed = s.claim("r1", "h", s.now() + 1, 5, lambda q, r, j, n: (q[:n], []), epoch=epoch)
    sent: list[str] = []
    real = postgres._script

    def spy(conn, st):  # type: ignore[no-untyped-def]
        sent.extend(sql for sql, _ in st)
        return real(conn, st)

    monkeypatch.setattr(postgres, "_script", spy)
    ends = [(replace(r, status="failed", exit_code=i, error=f"e'{i}", finished_at=5.0 + i),
             None, None) for i, (r, _) in enumerate(claimed)]  # fmt: skip
    assert s.finish_runs(ends, fence=("r1", epoch)) == [True] * 5
    assert len([sql for sql in sent if sql.startswith("UPDATE runs SET")]) == 1
    got = {r.id: r for r in s.list_runs(RunFilter(job="a"))}
    for i, (r, _) in enumerate(claimed):
        end = got[r.id]
        assert (end.status, end.exit_code, end.error, end.finished_at, end.owner) == (
            "failed", i, f"e'{i}", 5.0 + i, "r1")  # fmt: skip
    s.close()


def test_reap_expired_takes_over_once_across_the_fleet(pg_url: str) -> None:
    """A dead runner's runs are recorded once, by whichever runner reaps first, by the
    database's clock; a live runner's runs and runs claimed without a lease are left."""
    from jobctl.models import Run
    from jobctl.records import replace

    s1, s2 = PostgresStore(pg_url), PostgresStore(pg_url)
    s1.add_job(job("a"))
    for i in range(3):
        s1.add_run(Run(job="a", scheduled_for=float(i), not_before=1.0))
    dead, live = _leased(s1, "dead", 15), _leased(s1, "live", 15)
    ((mine, _),) = _claim_one(s1, "dead", dead)
    ((theirs, _),) = _claim_one(s1, "live", live)
    ((unleased, _),) = _claim_one(s1, "cli", None)  # a foreground run: judged by its pid

    def decide(run, job_):
        final = replace(run, status="abandoned", finished_at=9.0, error="lease expired")
        return final, Run(job=run.job, scheduled_for=run.scheduled_for, attempt=2)

    assert s2.reap_expired(decide) == []  # every lease holds
    _expire(pg_url, "dead")
    got: list = []
    threads = [threading.Thread(target=lambda s=s: got.extend(s.reap_expired(decide)))
               for s in (s1, s2)]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [(f.id, f.status) for f, _ in got] == [(mine.id, "abandoned")]
    assert s1.get_run(theirs.id).status == "running"
    assert s1.get_run(unleased.id).status == "running"
    retries = [r for r in s1.list_runs(RunFilter(job="a")) if r.attempt == 2]
    assert [r.scheduled_for for r in retries] == [mine.scheduled_for]
    s1.close()
    s2.close()


def test_reaping_takes_two_round_trips_however_many_runs(pg_url: str, monkeypatch) -> None:
    """The reaped runs stay locked (skipped by the other reapers) while the transaction lasts:
    a round trip a run, behind a slow link, held a dead runner's runs for 13 s (chaos run I)."""
    from jobctl.models import Run
    from jobctl.records import replace
    from jobctl.store import postgres

    s = PostgresStore(pg_url)
    for name in ("a", "b"):
        s.add_job(job(name))
    for i in range(12):
        s.add_run(Run(job="ab"[i % 2], scheduled_for=float(i), not_before=1.0))
    dead = _leased(s, "dead", 15)
    claimed = s.claim("dead", "dead", s.now() + 1, 12, lambda q, r, j, n: (q[:n], []),
                      epoch=dead)  # fmt: skip
    assert len(claimed) == 12
    _expire(pg_url, "dead")
    trips: list[int] = []
    real = postgres._script
    monkeypatch.setattr(
        postgres, "_script", lambda conn, st: trips.append(len(st)) or real(conn, st)
    )
    assert s.conn is not None
    monkeypatch.setattr(s.conn, "execute", None)  # no statement outside the two scripts

    def decide(run, job_):
        final = replace(run, status="abandoned", finished_at=9.0, error="lease expired")
        return final, Run(job=run.job, scheduled_for=run.scheduled_for, attempt=2)

    got = s.reap_expired(decide)
    monkeypatch.undo()
    assert len(got) == 12 and len(trips) == 2
    assert trips[1] == 12 * 2 + 3  # an UPDATE and a retry each, retention, runners, COMMIT
    assert {r.status for r in s.list_runs(RunFilter(statuses=["abandoned"]))} == {"abandoned"}
    assert s.count_runs(RunFilter(statuses=["abandoned"])) == 12
    assert s.count_runs(RunFilter(statuses=["queued"])) == 12  # the retries
    s.close()


def test_a_reaped_replay_leaves_one_dead_mark_on_its_fire(pg_url: str) -> None:
    """As finish_runs does: a replay reaped dead takes the mark off its fire's older run
    (review: the reaper left both marked)."""
    from jobctl.models import Run
    from jobctl.records import replace

    s = PostgresStore(pg_url)
    s.add_job(job("a"))
    first = s.add_run(Run(job="a", scheduled_for=1.0, status="failed", dead=True))
    replay = s.add_run(Run(job="a", scheduled_for=1.0, attempt=2, trigger="replay",
                           not_before=1.0))  # fmt: skip
    dead = _leased(s, "dead", 15)
    ((claimed, _),) = _claim_one(s, "dead", dead)
    assert claimed.id == replay.id
    _expire(pg_url, "dead")

    def decide(run, job_):
        return replace(run, status="abandoned", finished_at=9.0, dead=True), None

    assert [f.id for f, _ in s.reap_expired(decide)] == [replay.id]
    marks = {r.id: r.dead for r in s.list_runs(RunFilter(job="a"))}
    assert marks == {first.id: False, replay.id: True}
    s.close()


def test_wait_for_change_wakes_on_another_connections_commit(pg_url: str) -> None:
    import time

    from jobctl.models import Run

    runner, cli = PostgresStore(pg_url), PostgresStore(pg_url)
    cli.add_job(job("a"))
    runner.changed()  # starts listening
    t0 = time.monotonic()
    runner.wait_for_change(0.2)  # nothing happens: it sleeps the whole timeout
    assert time.monotonic() - t0 >= 0.19
    runner.add_run(Run(job="a", scheduled_for=5.0))  # our own commit does not wake us
    threading.Timer(0.3, lambda: cli.add_run(Run(job="a", scheduled_for=6.0))).start()
    t0 = time.monotonic()
    runner.wait_for_change(30)
    assert 0.25 <= time.monotonic() - t0 < 29
    runner.close()
    cli.close()


def test_a_session_cut_off_inside_a_transaction_is_ended_by_the_server(pg_url: str) -> None:
    """A runner partitioned while it holds the fleet's claim lock must not stall every claim
    until the server's TCP gives up: its sessions end after DEAD_LINK_S idle in a transaction."""
    from jobctl.store.postgres import DEAD_LINK_S

    s = PostgresStore(pg_url)
    assert s.conn is not None
    row = s.conn.execute("SHOW idle_in_transaction_session_timeout").fetchone()
    assert row is not None and row["idle_in_transaction_session_timeout"] == f"{DEAD_LINK_S}s"
    s.close()


def test_a_fleet_runner_recovers_its_own_run_that_no_worker_holds(pg_url: str) -> None:
    """A run recorded `running` under this runner that none of its workers holds (its end was
    lost: a database crash undid the commit) is abandoned and retried at the next recovery,
    not left open under a live lease for ever."""
    from jobctl.models import Run
    from jobctl.runner import Runner

    s = PostgresStore(pg_url)
    s.add_job(job("a").copy_with(retries=1))
    runner = Runner(s)
    now = s.now()
    runner.since = now
    runner._register(now)
    stuck = s.add_run(Run(job="a", scheduled_for=1.0, status="running", owner=runner.owner,
                          host=runner.host))  # fmt: skip
    runner.recover(now)
    assert s.get_run(stuck.id).status == "abandoned"
    assert [r.attempt for r in s.list_runs(RunFilter(job="a")) if r.status == "queued"] == [2]
    s.close()


def test_a_nul_in_a_runs_text_is_written_not_refused(pg_url: str) -> None:
    """PostgreSQL's text cannot hold NUL: an error naming a command that has one (which
    SQLite keeps as is) is written with U+FFFD instead of failing the whole write."""
    from jobctl.models import Run
    from jobctl.records import replace

    s = PostgresStore(pg_url)
    s.add_job(job("a"))
    run = s.add_run(Run(job="a", scheduled_for=1.0, status="running"))
    bad = replace(run, status="failed", exit_code=127, error="command not found: /x\x00y")
    assert s.finish_runs([(bad, None, None)]) == [True]
    assert s.get_run(run.id).error == "command not found: /x\ufffdy"
    s.close()


def test_a_claim_ahead_reads_no_page_past_the_runs_due(pg_url: str, monkeypatch) -> None:
    """A runner claiming ahead of its free slots takes only runs due now beyond them: with
    `due_by`, the claim stops paging once a page ends past that time, instead of reading (and
    locking) every run of the lead window, page after doubling page."""
    from jobctl.models import Run
    from jobctl.store import postgres

    s = PostgresStore(pg_url)
    s.add_job(job("a"))
    for i in range(300):
        s.add_run(Run(job="a", scheduled_for=float(i), not_before=50.0 + i / 1000))

    def none_due(queued, running, jobs, limit):  # type: ignore[no-untyped-def]
        return [r for r in queued if r.not_before <= 10.0][:limit], []

    pages: list[int] = []
    real = postgres._script

    def spy(conn, st):  # type: ignore[no-untyped-def]
        pages.append(sum("FOR UPDATE SKIP LOCKED" in sql for sql, _ in st))
        return real(conn, st)

    monkeypatch.setattr(postgres, "_script", spy)
    assert s.claim("r", "h", 60.0, 9, none_due, due_by=10.0) == []
    assert sum(pages) == 1
    pages.clear()
    assert s.claim("r", "h", 60.0, 9, none_due) == []
    assert sum(pages) > 3  # without it: every page of the window
    s.close()
