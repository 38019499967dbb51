"""The Store contract: every store implementation must pass these (SQLite and PostgreSQL).

`store` is parametrized over STORES; `open_same` opens another store object (another
connection, like another process) on the same database. PostgreSQL tests get a fresh schema
from tests/pg.py and skip (once, visibly) when no server can be had.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest

from jobctl.errors import ConflictError, NotFoundError
from jobctl.models import Job, Run
from jobctl.records import replace
from jobctl.store.base import RunFilter


def make_sqlite(tmp_path: Path):
    from jobctl.store.sqlite import SQLiteStore

    return SQLiteStore(tmp_path / "jobctl.db")


def make_postgres(url: str):
    from jobctl.store.postgres import PostgresStore

    return PostgresStore(url)


STORES = [pytest.param("sqlite", id="sqlite"), pytest.param("postgres", id="postgres")]


@pytest.fixture(params=STORES)
def open_same(request: pytest.FixtureRequest, tmp_path: Path):
    """A function opening a new store object on this test's database (fresh at first)."""
    opened: list = []
    if request.param == "postgres":
        url = request.getfixturevalue("pg_url")

        def opener():
            opened.append(make_postgres(url))
            return opened[-1]
    else:

        def opener():
            opened.append(make_sqlite(tmp_path))
            return opened[-1]

    yield opener
    for s in opened:
        s.close()


@pytest.fixture
def store(open_same):
    return open_same()


def job(name: str = "backup", **kw) -> Job:
    kw.setdefault("next_run_at", 1000.0)
    return Job(name=name, command=["echo", name], created_at=1.0, updated_at=1.0, **kw)


def test_add_get_roundtrip(store) -> None:
    j = job(tags=["a", "b"], env={"K": "V"}, mutexes=["m"], timeout_s=2.5, shell=False,
            on_labels=["gpu"])  # fmt: skip
    added = store.add_job(j)
    assert added.id is not None
    got = store.get_job("backup")
    assert got.copy_with(id=None, last_run=None) == j
    assert got.last_run is None


def test_add_duplicate_name_conflicts_and_keeps_first(store) -> None:
    store.add_job(job(description="first"))
    with pytest.raises(ConflictError, match="'backup' already exists"):
        store.add_job(job(description="second"))
    assert store.get_job("backup").description == "first"


def test_get_missing_is_not_found(store) -> None:
    with pytest.raises(NotFoundError, match="'nope'"):
        store.get_job("nope")


def test_list_sorted_and_by_tag(store) -> None:
    store.add_job(job("b", tags=["x"]))
    store.add_job(job("a"))
    store.add_job(job("c", tags=["x", "y"]))
    assert [j.name for j in store.list_jobs()] == ["a", "b", "c"]
    assert [j.name for j in store.list_jobs("x")] == ["b", "c"]
    assert store.list_jobs("zzz") == []


def test_update_jobs_is_all_or_nothing(store) -> None:
    store.add_job(job("a"))
    store.add_job(job("b"))
    describe = lambda j: j.copy_with(description="changed")  # noqa: E731
    with pytest.raises(NotFoundError):
        store.update_jobs(["a", "ghost"], describe)
    assert store.get_job("a").description == ""

    def fail_on_b(j: Job) -> Job:
        if j.name == "b":
            raise ValueError("rejected")
        return describe(j)

    with pytest.raises(ValueError):
        store.update_jobs(["a", "b"], fail_on_b)
    assert store.get_job("a").description == ""
    assert [j.description for j in store.update_jobs(["a"], describe)] == ["changed"]
    assert store.get_job("a").description == "changed"


def test_concurrent_updates_lose_nothing(open_same) -> None:
    import threading

    first = open_same()
    first.add_job(job("a"))
    stores = [open_same() for _ in range(4)]  # separate connections, like processes

    def bump(s) -> None:
        for _ in range(25):
            s.update_jobs(["a"], lambda j: j.copy_with(retries=j.retries + 1))

    threads = [threading.Thread(target=bump, args=(s,)) for s in stores]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert first.get_job("a").retries == 100


def test_fire_records_runs_and_advances_once(store) -> None:
    j = store.add_job(job(next_run_at=1000.0))
    runs = store.fire(j, [Run(job="backup", scheduled_for=1000.0, created_at=1000.0)], 2000.0)
    assert len(runs) == 1 and runs[0].id is not None
    assert store.get_job("backup").next_run_at == 2000.0
    # a second runner holding the same stale view of the job wins nothing
    assert store.fire(j, [Run(job="backup", scheduled_for=1000.0)], 2000.0) == []
    assert len(store.list_runs(RunFilter(job="backup"))) == 1


def test_fire_never_duplicates_a_fire_key(store) -> None:
    j = store.add_job(job(next_run_at=1000.0))
    store.fire(j, [Run(job="backup", scheduled_for=1000.0)], 1000.0)
    # job unchanged (next still 1000): the same fire offered again is ignored by the key
    again = store.fire(store.get_job("backup"), [Run(job="backup", scheduled_for=1000.0)], 2000.0)
    assert again == []
    assert [r.scheduled_for for r in store.list_runs(RunFilter())] == [1000.0]


def test_fire_can_change_job_state(store) -> None:
    j = store.add_job(job(schedule_kind="at", next_run_at=5.0))
    store.fire(j, [Run(job="backup", scheduled_for=5.0)], None, state="done")
    got = store.get_job("backup")
    assert (got.state, got.next_run_at) == ("done", None)


def test_add_run_conflict_on_same_attempt(store) -> None:
    store.add_job(job())
    store.add_run(Run(job="backup", scheduled_for=7.0, trigger="manual"))
    with pytest.raises(ConflictError):
        store.add_run(Run(job="backup", scheduled_for=7.0, trigger="manual"))
    store.add_run(Run(job="backup", scheduled_for=7.0, attempt=2, trigger="retry"))
    assert len(store.list_runs(RunFilter(job="backup"))) == 2


def test_update_run_and_last_run(store) -> None:
    store.add_job(job())
    r = store.add_run(Run(job="backup", scheduled_for=7.0, created_at=7.0))
    assert r.id is not None
    done = store.update_run(r.id, status="succeeded", started_at=8.0, finished_at=9.5, exit_code=0)
    assert (done.status, done.duration_s, done.exit_code) == ("succeeded", 1.5, 0)
    assert store.get_job("backup").last_run == done
    assert store.list_jobs()[0].last_run == done
    with pytest.raises(NotFoundError):
        store.update_run(999, status="failed")
    with pytest.raises(NotFoundError):
        store.get_run(999)


def test_list_runs_filters_newest_first(store) -> None:
    store.add_job(job("a"))
    store.add_job(job("b"))
    for i, (name, status) in enumerate([("a", "failed"), ("b", "succeeded"), ("a", "succeeded")]):
        store.add_run(Run(job=name, scheduled_for=float(i), status=status, created_at=100.0 + i))
    assert [r.scheduled_for for r in store.list_runs(RunFilter())] == [2.0, 1.0, 0.0]
    assert [r.scheduled_for for r in store.list_runs(RunFilter(job="a"))] == [2.0, 0.0]
    assert [r.job for r in store.list_runs(RunFilter(statuses=["failed"]))] == ["a"]
    assert len(store.list_runs(RunFilter(since=101.0))) == 2
    assert len(store.list_runs(RunFilter(limit=1))) == 1


def test_remove_keeps_history_unless_purged(store) -> None:
    store.add_job(job("a"))
    store.add_job(job("b"))
    store.add_run(Run(job="a", scheduled_for=1.0, created_at=2.0))
    store.add_run(Run(job="b", scheduled_for=1.0, created_at=2.0))
    store.remove_job("a")
    store.remove_job("b", purge=True)
    assert [r.job for r in store.list_runs(RunFilter())] == ["a"]
    with pytest.raises(NotFoundError):
        store.remove_job("a")


def test_purge_spares_the_history_of_an_earlier_job_of_that_name(store) -> None:
    store.add_job(job("a"))
    old = store.add_run(Run(job="a", scheduled_for=1.0, status="failed", created_at=2.0))
    store.append_output(old.id, b"old output")
    store.remove_job("a")  # its history stays
    store.add_job(Job(name="a", command=["true"], created_at=5.0, updated_at=5.0))
    store.add_run(Run(job="a", scheduled_for=6.0, status="succeeded", created_at=6.0))
    store.add_run(Run(job="a", scheduled_for=7.0, status="succeeded", created_at=7.0))
    store.remove_job("a", purge=True)
    assert [r.id for r in store.list_runs(RunFilter(job="a"))] == [old.id]
    assert b"".join(d for _, d in store.read_output(old.id)) == b"old output"
    store.add_job(Job(name="a", command=["true"], created_at=8.0, updated_at=8.0))
    store.add_run(Run(job="a", scheduled_for=9.0, status="succeeded", created_at=9.0))
    assert store.purge_runs("a", since=8.0) == 1
    assert [r.id for r in store.list_runs(RunFilter(job="a"))] == [old.id]


def test_times_keep_millisecond_precision(store) -> None:
    store.add_job(job(next_run_at=1_800_000_000.123))
    assert store.get_job("backup").next_run_at == 1_800_000_000.123


# ---- SQLite specifics ---------------------------------------------------------------


def test_sqlite_file_mode_wal_and_named_migrations(tmp_path: Path) -> None:
    s = make_sqlite(tmp_path)
    s.close()
    db = tmp_path / "jobctl.db"
    assert stat.S_IMODE(os.stat(db).st_mode) == 0o600
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    names = [r[0] for r in conn.execute("SELECT name FROM _sqlite_migrations ORDER BY id")]
    assert names == [
        "m001_jobs_and_runs",
        "m002_cancel_requests",
        "m003_forced_runs",
        "m004_queue_index",
        "m005_status_and_waiting_indexes",
        "m006_fired_through",
        "m007_runners_with_leases",
        "m008_job_runner_labels",
        "m009_notifications",
        "m010_chains",
    ]
    index = conn.execute("PRAGMA index_list(runs)").fetchall()
    unique_cols = [
        [c[2] for c in conn.execute(f"PRAGMA index_info('{i[1]}')")] for i in index if i[2]
    ]
    assert ["job", "scheduled_for", "attempt"] in unique_cols


def test_sqlite_schema_version_constant_matches_migrations() -> None:
    from jobctl.store import schema, sqlite

    assert sqlite.SCHEMA_VERSION == schema.SCHEMA_VERSION == len(schema.migrations._migrations)


def test_sqlite_reopen_does_not_migrate_again(tmp_path: Path) -> None:
    make_sqlite(tmp_path).add_job(job())
    s = make_sqlite(tmp_path)
    assert s.get_job("backup").name == "backup"


def test_sqlite_refuses_newer_schema(tmp_path: Path) -> None:
    from jobctl.errors import StoreError

    make_sqlite(tmp_path).close()
    conn = sqlite3.connect(tmp_path / "jobctl.db")
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(StoreError, match="newer"):
        make_sqlite(tmp_path)


def test_sqlite_migrates_from_older_schema(tmp_path: Path) -> None:
    from sqlite_utils import Database

    from jobctl.store import schema

    db_path = tmp_path / "jobctl.db"
    old = Database(db_path)
    schema.migrations.apply(old, stop_before="m002_cancel_requests")
    old.execute("PRAGMA user_version = 1")  # as jobctl left it after m001
    old.execute(
        "INSERT INTO runs (job, attempt, trigger, status, scheduled_for, created_at, not_before) "
        "VALUES ('old', 1, 'manual', 'succeeded', 5000, 5000, 5000)"
    )
    old.conn.commit()
    old.close()
    s = make_sqlite(tmp_path)
    run = s.list_runs(RunFilter())[0]
    assert (run.job, run.scheduled_for, run.cancel_requested_at) == ("old", 5.0, None)
    s.update_run(run.id, cancel_requested_at=6.0)
    assert s.get_run(run.id).cancel_requested_at == 6.0


def test_due_jobs_and_next_wakeup(store) -> None:
    store.add_job(job("later", next_run_at=50.0))
    store.add_job(job("soon", next_run_at=20.0))
    store.add_job(job("paused", next_run_at=5.0, state="paused"))
    assert [j.name for j in store.due_jobs(30.0)] == ["soon"]
    assert store.next_wakeup(0.0) == 20.0
    store.add_run(Run(job="soon", scheduled_for=1.0, not_before=10.0))
    assert store.next_wakeup(0.0) == 10.0
    # a queued run already due waits for an event (a worker freeing up), not for a time
    assert store.next_wakeup(15.0) == 20.0


def test_claim_moves_picked_runs_to_running(store) -> None:
    store.add_job(job("a"))
    r1 = store.add_run(Run(job="a", scheduled_for=1.0, not_before=1.0))
    store.add_run(Run(job="a", scheduled_for=2.0, not_before=99.0))  # not due yet
    mine = store.add_run(Run(job="a", scheduled_for=3.0, not_before=1.0, owner="cli:1"))
    seen: list[list[int]] = []

    def pick(queued, running, jobs, limit):
        seen.append([r.id for r in queued])
        return queued[:limit], []

    claimed = store.claim("runner", "host", 10.0, 5, pick)
    assert seen == [[r1.id]]  # neither the future run nor another owner's reserved run
    assert [(r.id, r.status, r.owner, j.name) for r, j in claimed] == [
        (r1.id, "running", "runner", "a")
    ]
    assert store.get_run(r1.id).status == "running"
    assert store.get_run(mine.id).status == "queued"


def test_finish_run_records_retry_and_retention(store) -> None:
    store.add_job(job("a"))
    runs = [
        store.add_run(Run(job="a", scheduled_for=float(i), status="succeeded")) for i in range(5)
    ]
    last = store.add_run(Run(job="a", scheduled_for=9.0, status="running"))
    from jobctl.records import replace

    retry = Run(job="a", scheduled_for=9.0, attempt=2, trigger="retry", not_before=20.0)
    store.finish_run(replace(last, status="failed", exit_code=1), retry, keep_runs=3)
    left = store.list_runs(RunFilter(job="a"))
    assert [(r.scheduled_for, r.attempt, r.status) for r in left] == [
        (9.0, 2, "queued"),
        (9.0, 1, "failed"),
        (4.0, 1, "succeeded"),
    ]
    assert runs[0].id not in {r.id for r in left}


def test_finish_runs_records_a_batch_of_ends_with_retries_and_retention(store) -> None:
    """The runner's batch: every end and its retry in one call; retention once per job."""
    store.add_job(job("a"))
    store.add_job(job("b"))
    old = [store.add_run(Run(job="a", scheduled_for=float(i), status="succeeded"))
           for i in range(3)]  # fmt: skip
    ra = store.add_run(Run(job="a", scheduled_for=9.0, status="running"))
    rb = store.add_run(Run(job="b", scheduled_for=9.0, status="running"))
    retry = Run(job="b", scheduled_for=9.0, attempt=2, trigger="retry", not_before=20.0)
    written = store.finish_runs(
        [
            (replace(ra, status="succeeded", exit_code=0, finished_at=10.0), None, 2),
            (replace(rb, status="failed", exit_code=3, finished_at=10.0), retry, None),
        ]
    )
    assert written == [True, True]
    assert store.get_run(ra.id).status == "succeeded"
    assert (store.get_run(rb.id).status, store.get_run(rb.id).exit_code) == ("failed", 3)
    left_a = store.list_runs(RunFilter(job="a"))
    assert [r.scheduled_for for r in left_a] == [9.0, 2.0]  # keep_runs=2
    assert old[0].id not in {r.id for r in left_a}
    queued = store.list_runs(RunFilter(job="b", statuses=["queued"]))
    assert [(r.attempt, r.not_before) for r in queued] == [(2, 20.0)]


def test_mark_started_all_records_each_pid(store) -> None:
    store.add_job(job("a"))
    runs = [store.add_run(Run(job="a", scheduled_for=float(i), status="running"))
            for i in range(3)]  # fmt: skip
    store.mark_started_all(
        [replace(r, pid=100 + i, proc_start=7 + i, started_at=50.0 + i) for i, r in enumerate(runs)]
    )
    got = [store.get_run(r.id) for r in runs]
    assert [(r.pid, r.proc_start, r.started_at) for r in got] == [
        (100, 7, 50.0), (101, 8, 51.0), (102, 9, 52.0)
    ]  # fmt: skip


def test_output_chunks_in_order(store) -> None:
    store.add_job(job("a"))
    r = store.add_run(Run(job="a", scheduled_for=1.0))
    for part in (b"one\n", b"two\n", b"\x00binary\xff"):
        store.append_output(r.id, part)
    chunks = store.read_output(r.id)
    assert [c for _, c in chunks] == [b"one\n", b"two\n", b"\x00binary\xff"]
    assert store.read_output(r.id, chunks[0][0]) == chunks[1:]


def test_runner_registry(store) -> None:
    from jobctl.store.base import RunnerInfo

    assert store.runner_info() is None
    t = store.now()
    store.register_runner(RunnerInfo(owner="o1", pid=10, host="h", since=t, heartbeat_at=t))
    assert store.heartbeat("o1", t + 1.0) is True
    info = store.runner_info()
    assert (info.owner, info.pid) == ("o1", 10)
    # the store's clock, or the caller's (times are kept in whole ms: rounding up is 0.5 ms)
    assert t - 0.001 <= info.heartbeat_at <= store.now() + 1.001
    store.unregister_runner("someone-else")
    assert store.runner_info() is not None
    store.unregister_runner("o1")
    assert store.runner_info() is None


def test_runners_carry_labels_version_and_a_lease(store) -> None:
    from jobctl.store.base import DEFAULT_LEASE_S, RunnerInfo

    t = store.now()
    store.register_runner(RunnerInfo(owner="o1", pid=10, host="h", since=t, heartbeat_at=t,
                                     labels=["gpu", "h", "gpu"], version="1.2"))  # fmt: skip
    (r,) = store.runners()
    assert (r.labels, r.version) == (["gpu", "h"], "1.2")
    assert r.lease_expires_at == pytest.approx(r.heartbeat_at + DEFAULT_LEASE_S)
    store.heartbeat("o1", t + 2.0, lease_s=7.0)
    (r,) = store.runners()
    assert r.lease_expires_at == pytest.approx(r.heartbeat_at + 7.0)
    store.register_runner(RunnerInfo(owner="o1", pid=11, host="h", since=t, heartbeat_at=t,
                                     lease_expires_at=t + 9.0))  # fmt: skip
    (r,) = store.runners()  # registering again replaces its own row
    assert (r.pid, r.labels) == (11, [])
    assert r.lease_expires_at == pytest.approx(r.heartbeat_at + 9.0)


def test_store_clock_is_near_this_hosts(store) -> None:
    """now() is the store's clock (PostgreSQL: the server's); on this machine both agree."""
    import time

    assert abs(store.now() - time.time()) < 5.0


def test_sqlite_keeps_a_single_runner(tmp_path: Path) -> None:
    """The SQLite store's runner lock admits one runner: a registration replaces any row left
    by a runner that died (PostgreSQL keeps a row per runner of the fleet)."""
    from jobctl.store.base import RunnerInfo

    s = make_sqlite(tmp_path)
    s.register_runner(RunnerInfo(owner="dead", pid=1, host="h", since=1.0, heartbeat_at=1.0))
    s.register_runner(RunnerInfo(owner="new", pid=2, host="h", since=2.0, heartbeat_at=2.0))
    assert [r.owner for r in s.runners()] == ["new"]
    s.close()


def test_fire_all_writes_each_fire_and_skips_a_stale_one(store) -> None:
    from jobctl.store.base import Fire

    a = store.add_job(job("a", next_run_at=1000.0))
    b = store.add_job(job("b", next_run_at=1000.0))
    stale = b.copy_with(next_run_at=500.0)  # another runner moved it on since we read it
    got = store.fire_all([
        Fire(a, [Run(job="a", scheduled_for=1000.0)], 2000.0, {}),
        Fire(stale, [Run(job="b", scheduled_for=500.0)], 2000.0, {}),
    ])  # fmt: skip
    assert [len(runs) for runs in got] == [1, 0]
    assert store.get_job("a").next_run_at == 2000.0 and store.get_job("b").next_run_at == 1000.0
    assert [r.job for r in store.list_runs(RunFilter())] == ["a"]


def test_claim_pages_past_runs_that_must_wait(store) -> None:
    # 40 queued runs of a job whose run is running (overlap=skip waits), then one of another
    # job: the claim must look past the first pages to find it
    store.add_job(job("busy"))
    store.add_job(job("free"))
    store.add_run(Run(job="busy", scheduled_for=0.0, status="running", owner="runner"))
    for i in range(40):
        store.add_run(Run(job="busy", scheduled_for=float(i + 1), not_before=1.0))
    late = store.add_run(Run(job="free", scheduled_for=1.0, not_before=2.0))
    from jobctl import planner

    claimed = store.claim("runner", "host", 10.0, 1, planner.pick_startable)
    assert [r.id for r, _ in claimed] == [late.id]


def test_runs_filter_by_several_jobs(store) -> None:
    for name in ("a", "b", "c"):
        store.add_job(job(name))
        store.add_run(Run(job=name, scheduled_for=1.0))
    got = store.list_runs(RunFilter(jobs=["a", "c"]))
    assert sorted(r.job for r in got) == ["a", "c"]


def test_runs_filter_by_having_an_owner(store) -> None:
    """What recovery reads: open runs that someone holds, never the fires waiting for a claim
    (thousands of them in a backlog, decoded at every recovery otherwise)."""
    store.add_job(job("a"))
    store.add_run(Run(job="a", scheduled_for=1.0))
    held = store.add_run(Run(job="a", scheduled_for=2.0, status="running", owner="r1"))
    waiting = store.add_run(Run(job="a", scheduled_for=3.0, owner="cli:1"))
    open_ = ["running", "queued"]
    assert [r.id for r in store.list_runs(RunFilter(statuses=open_, owned=True))] == [
        waiting.id, held.id]  # fmt: skip
    assert [r.scheduled_for for r in store.list_runs(RunFilter(owned=False))] == [1.0]
    assert store.count_runs(RunFilter(owned=True)) == 2


def test_release_runs_puts_claimed_runs_that_never_started_back_in_the_queue(store) -> None:
    """What a runner does with runs it claimed and never started (stopping, or runs claimed
    ahead of its free slots that waited too long): queued again, for anyone; only runs that
    are still running are touched."""
    store.add_job(job("a"))
    for at in (1.0, 2.0, 3.0):
        store.add_run(Run(job="a", scheduled_for=at, not_before=at))

    def pick(queued, running, jobs, limit):
        return queued[:limit], []

    held, other, _ = (r for r, _ in store.claim("runner", "host", 10.0, 3, pick))
    store.update_run(other.id, status="succeeded", finished_at=5.0)  # it ended meanwhile
    assert store.release_runs([held.id, other.id, 10**6]) == 1
    back = store.get_run(held.id)
    assert (back.status, back.owner, back.host, back.pid, back.started_at) == (
        "queued", None, None, None, None)  # fmt: skip
    assert store.get_run(other.id).status == "succeeded"
    again = [r.id for r, _ in store.claim("other-runner", "host2", 10.0, 5, pick)]
    assert held.id in again
    # a held run whose cancel was asked meanwhile (`jobctl cancel` saw it running) never
    # goes back to the queue: it ends cancelled, without having run
    store.update_run(held.id, cancel_requested_at=11.0)
    assert store.release_runs([held.id]) == 1
    done = store.get_run(held.id)
    assert (done.status, done.error, done.started_at) == ("cancelled", "cancelled", None)
    assert done.finished_at is not None


def test_claim_still_sees_the_mutex_of_a_running_run(store) -> None:
    from jobctl import planner

    store.add_job(job("holder", mutexes=["db"]))
    store.add_job(job("waiter", mutexes=["db"]))
    store.add_job(job("plain"))
    store.add_run(Run(job="holder", scheduled_for=0.0, status="running", owner="runner"))
    store.add_run(Run(job="waiter", scheduled_for=1.0, not_before=1.0))
    plain = store.add_run(Run(job="plain", scheduled_for=1.0, not_before=2.0))
    claimed = store.claim("runner", "host", 10.0, 4, planner.pick_startable)
    assert [r.id for r, _ in claimed] == [plain.id]


def test_count_runs_matches_list_runs(store) -> None:
    store.add_job(job("a"))
    for i, st in enumerate(["queued", "running", "failed", "failed", "succeeded"]):
        store.add_run(Run(job="a", scheduled_for=float(i), status=st, created_at=100.0 + i))
    for where in [
        RunFilter(),
        RunFilter(statuses=["failed", "timed_out", "abandoned"], since=102.0),
        RunFilter(statuses=["queued", "running"]),
        RunFilter(statuses=["running", "queued"]),
        RunFilter(statuses=["nonsense"]),
        RunFilter(job="a", statuses=["succeeded"]),
    ]:
        assert store.count_runs(where) == len(store.list_runs(where)), where
    assert store.count_runs(RunFilter(statuses=["failed"], since=103.0)) == 1


def test_list_jobs_filters(store) -> None:
    store.add_job(job("a", schedule="@REBOOT", schedule_kind="cron"))
    store.add_job(job("b", schedule="0 3 * * *", schedule_kind="cron"))
    store.add_job(job("c"))
    store.add_run(Run(job="b", scheduled_for=1.0, status="succeeded", created_at=1.0))
    assert [j.name for j in store.list_jobs(schedule="@reboot")] == ["a"]
    assert [j.name for j in store.list_jobs(names=["c", "b", "zz"])] == ["b", "c"]
    with_last = store.list_jobs(names=["b"])[0]
    assert with_last.last_run is not None
    assert store.list_jobs(names=["b"], last_runs=False)[0].last_run is None
    assert store.list_jobs(pinned=True) == []
    store.update_jobs(["c"], lambda j: j.copy_with(on_labels=["gpu"]))
    assert [j.name for j in store.list_jobs(pinned=True, last_runs=False)] == ["c"]


def test_job_lines_are_list_jobs_in_a_few_columns(store) -> None:
    """`list`'s read (issue 13): each job's shown columns and its newest run's status and
    times, in list_jobs' order, decoded as list_jobs decodes them."""
    store.add_job(job("b", schedule="0 3 * * *", schedule_kind="cron", tags=["x"],
                      next_run_at=100.5, after=[["a", "failure"]], on_labels=["gpu"]))  # fmt: skip
    store.add_job(job("a", schedule="5m", schedule_kind="every", anchor_at=7.25, tz="Asia/Tokyo"))
    store.add_job(job("gone"))
    store.add_run(Run(job="gone", scheduled_for=1.0, status="failed", created_at=1.0))
    store.remove_job("gone")  # a job of that name again: the earlier one's run is not its
    store.add_job(job("gone").copy_with(created_at=3.0))
    store.add_run(Run(job="b", scheduled_for=1.0, status="failed", created_at=1.0))
    store.add_run(Run(job="b", scheduled_for=2.0, status="succeeded", created_at=2.0,
                      started_at=2.5, finished_at=4.75))  # fmt: skip
    lines = store.job_lines()
    jobs = store.list_jobs()
    assert [x.name for x in lines] == [j.name for j in jobs] == ["a", "b", "gone"]
    for line, j in zip(lines, jobs, strict=True):
        for attr in ("schedule", "schedule_kind", "tz", "anchor_at", "next_run_at", "state",
                     "after", "on_labels", "created_at"):  # fmt: skip
            assert getattr(line, attr) == getattr(j, attr), (j.name, attr)
        last = j.last_run
        assert line.last_status == (last.status if last else None)
        assert line.last_created_at == (last.created_at if last else None)
        assert line.last_started_at == (last.started_at if last else None)
        assert line.last_finished_at == (last.finished_at if last else None)
    b = lines[1]
    assert (b.last_status, b.last_started_at, b.last_finished_at) == ("succeeded", 2.5, 4.75)
    assert b.after == [["a", "failure"]] and b.on_labels == ["gpu"] and b.next_run_at == 100.5
    assert lines[2].last_status is None  # the run of the earlier job named "gone"
    assert [x.name for x in store.job_lines(tag="x")] == ["b"]
    assert store.job_lines(tag="nope") == []


def test_job_names_are_list_jobs_names_in_its_order(store) -> None:
    assert store.job_names() == []
    for name in ("b-2", "B1", "a", "a.b", "_x", "a-b"):
        store.add_job(job(name))
    store.remove_job("a.b")
    names = [j.name for j in store.list_jobs(last_runs=False)]
    assert store.job_names() == names == ["B1", "_x", "a", "a-b", "b-2"]


def test_open_and_recent_run_queries_use_indexes(tmp_path) -> None:
    """The runner's and `status`'s run queries must not scan a million-run table."""
    from jobctl.store.sqlite import SQLiteStore

    s = SQLiteStore(tmp_path / "jobctl.db")
    for where, index in [
        (RunFilter(statuses=["queued", "running"]), "runs_open"),
        (RunFilter(statuses=["running", "queued"]), "runs_open"),
        (RunFilter(statuses=["running"]), "runs_running"),
        (RunFilter(owner="me", statuses=["running"]), "runs_running"),
        (RunFilter(statuses=["queued"]), "runs_queue"),
        (RunFilter(statuses=["failed", "timed_out"], since=5.0), "runs_status_created"),
        (RunFilter(dead=True), "runs_dead"),
    ]:
        sql, params = s._where(where)
        plan = " ".join(
            str(r[3]) for r in s.conn.execute("EXPLAIN QUERY PLAN SELECT * FROM runs" + sql, params)
        )
        assert "INDEX" in plan and "SCAN runs" not in plan, (where, index, plan)


def test_claim_walks_the_due_queue_in_index_order(tmp_path) -> None:
    """Every query a claim makes uses an index and never sorts the queue: a claim's cost
    does not grow with the number of runs queued (a 20,000-run drain)."""
    from jobctl.store.sqlite import SQLiteStore

    s = SQLiteStore(tmp_path / "jobctl.db")
    s.add_job(job("a"))
    for i in range(3):
        s.add_run(Run(job="a", scheduled_for=float(i), not_before=1.0))
    seen: list[str] = []
    s.conn.set_trace_callback(seen.append)
    s.claim("runner", "host", 10.0, 2, lambda q, r, j, n: (q[:n], []))
    s.conn.set_trace_callback(None)
    selects = [q for q in seen if q.lstrip().upper().startswith("SELECT") and "runs" in q]
    assert selects
    for sql in selects:
        plan = " ".join(str(r[3]) for r in s.conn.execute("EXPLAIN QUERY PLAN " + sql))
        assert "TEMP B-TREE" not in plan and "SCAN runs" not in plan, (sql, plan)


def test_claim_offers_a_replacing_run_even_with_no_free_worker(store) -> None:
    # overlap=replace: the due queued run must reach pick (which cancels the running one)
    # however many runs wait ahead of it in the queue, even when no worker is free
    store.add_job(job("busy"))
    store.add_job(job("rep", overlap="replace"))
    store.add_run(Run(job="busy", scheduled_for=0.0, status="running", owner="runner"))
    store.add_run(Run(job="rep", scheduled_for=5.0, status="running", owner="runner"))
    for i in range(5):
        store.add_run(Run(job="busy", scheduled_for=float(i + 1), not_before=1.0))
    # a retry of an older fire replaces nothing (the stores give pick the running run's fire)
    store.add_run(Run(job="rep", scheduled_for=3.0, not_before=1.5, attempt=2, trigger="retry"))
    newer = store.add_run(Run(job="rep", scheduled_for=9.0, not_before=2.0))
    from jobctl import planner

    seen: list[list[int]] = []

    def pick(queued, running, jobs, limit):
        seen.append([r.id for r in planner.replaced_by_waiting(queued, running, jobs)])
        return planner.pick_startable(queued, running, jobs, limit)

    assert store.claim("runner", "host", 10.0, 0, pick) == []
    running_rep = [r.id for r in store.list_runs(RunFilter(job="rep", statuses=["running"]))]
    assert seen and seen[-1] == running_rep and newer.id not in running_rep

    def pick_without_the_newer(queued, running, jobs, limit):
        queued = [r for r in queued if r.id != newer.id]
        seen.append([r.id for r in planner.replaced_by_waiting(queued, running, jobs)])
        return [], []

    store.claim("runner", "host", 10.0, 0, pick_without_the_newer)
    assert seen[-1] == []  # the retry of fire 3 does not replace the run of fire 5


def test_a_store_at_schema_4_gets_the_indexes_of_m005(tmp_path) -> None:
    """Stores made by m004's drafts (no runs_waiting, a stray runs_created) are repaired."""
    import sqlite3

    from jobctl.store.sqlite import SQLiteStore

    SQLiteStore(tmp_path / "jobctl.db").close()
    conn = sqlite3.connect(tmp_path / "jobctl.db")
    conn.execute("DROP INDEX runs_waiting")
    conn.execute("DROP INDEX runs_status_created")
    conn.execute("CREATE INDEX runs_created ON runs(created_at)")
    conn.execute("DELETE FROM _sqlite_migrations WHERE name = 'm005_status_and_waiting_indexes'")
    conn.execute("PRAGMA user_version = 4")
    conn.commit()
    conn.close()
    SQLiteStore(tmp_path / "jobctl.db").close()
    conn = sqlite3.connect(tmp_path / "jobctl.db")
    names = {r[1] for r in conn.execute("PRAGMA index_list(runs)")}
    assert {"runs_waiting", "runs_status_created"} <= names and "runs_created" not in names


def test_fire_never_records_a_fire_at_or_before_the_high_water_mark(store) -> None:
    """Issue 8.1: even when a job's next_run_at is moved back (a stale edit) and the runs that
    held the unique key were pruned, a fire that already happened is never recorded again."""
    j = store.add_job(job(next_run_at=10.0, keep_runs=1))
    (r1,) = store.fire(j, [Run(job="backup", scheduled_for=10.0)], 11.0)
    assert store.get_job("backup").fired_through == 10.0
    store.finish_run(replace(r1, status="succeeded"), keep_runs=1)
    (r2,) = store.fire(store.get_job("backup"), [Run(job="backup", scheduled_for=11.0)], 12.0)
    store.finish_run(replace(r2, status="succeeded"), keep_runs=1)
    assert [r.scheduled_for for r in store.list_runs(RunFilter(job="backup"))] == [11.0]
    (moved,) = store.update_jobs(["backup"], lambda j: j.copy_with(next_run_at=10.0))
    again = store.fire(moved, [Run(job="backup", scheduled_for=10.0),
                               Run(job="backup", scheduled_for=11.0),
                               Run(job="backup", scheduled_for=12.0)], 13.0)  # fmt: skip
    assert [r.scheduled_for for r in again] == [12.0]
    got = store.get_job("backup")
    assert (got.fired_through, got.next_run_at) == (12.0, 13.0)
    # manual runs and retries share no mark: they are never held back by it
    manual = store.add_run(Run(job="backup", scheduled_for=5.0, trigger="manual"))
    assert manual.id is not None and store.get_job("backup").fired_through == 12.0


def test_fire_compares_the_high_water_mark_too(store) -> None:
    j = store.add_job(job(next_run_at=10.0))
    assert store.fire(j, [Run(job="backup", scheduled_for=10.0)], 20.0)
    stale = j.copy_with(next_run_at=20.0)  # read before the fire above (fired_through None)
    assert store.fire(stale, [Run(job="backup", scheduled_for=20.0)], 30.0) == []


def test_schema_5_store_gets_its_high_water_marks(tmp_path) -> None:
    import sqlite3

    from jobctl.store.sqlite import SQLiteStore

    s = SQLiteStore(tmp_path / "jobctl.db")
    s.add_job(job("a"))  # created at 1.0
    s.add_job(job("b").copy_with(created_at=50.0))  # reuses an old name: old runs don't count
    for name, at, trigger in [("a", 7.0, "schedule"), ("a", 9.0, "catchup"),
                              ("a", 99.0, "manual"), ("b", 20.0, "schedule")]:  # fmt: skip
        s.add_run(Run(job=name, scheduled_for=at, trigger=trigger, created_at=at))  # type: ignore[arg-type]
    s.close()
    conn = sqlite3.connect(tmp_path / "jobctl.db")
    conn.execute("ALTER TABLE jobs DROP COLUMN fired_through")
    conn.execute("DELETE FROM _sqlite_migrations WHERE name = 'm006_fired_through'")
    conn.execute("PRAGMA user_version = 5")
    conn.commit()
    conn.close()
    s = SQLiteStore(tmp_path / "jobctl.db")
    assert (s.get_job("a").fired_through, s.get_job("b").fired_through) == (9.0, None)
    s.close()


def test_schema_6_runner_row_survives_m007(tmp_path: Path) -> None:
    s = make_sqlite(tmp_path)
    s.close()
    conn = sqlite3.connect(tmp_path / "jobctl.db")
    conn.executescript(
        "DROP TABLE runner; CREATE TABLE runner (id INTEGER PRIMARY KEY CHECK (id = 1), "
        "owner TEXT NOT NULL, pid INTEGER NOT NULL, host TEXT NOT NULL, since INTEGER NOT NULL, "
        "heartbeat_at INTEGER NOT NULL); "
        "INSERT INTO runner VALUES (1, 'o', 7, 'h', 1000, 2000); "
        "DELETE FROM _sqlite_migrations WHERE name = 'm007_runners_with_leases'; "
        "PRAGMA user_version = 6;"
    )
    conn.close()
    s = make_sqlite(tmp_path)
    (r,) = s.runners()
    assert (r.owner, r.pid, r.heartbeat_at, r.lease_expires_at, r.labels) == ("o", 7, 2.0, 32.0, [])
    s.close()


# ---- chains (--after): the downstream run is queued in the transaction of the upstream's end


def _ended(store, name: str, status: str, **kw) -> Run:
    run = store.add_run(Run(job=name, scheduled_for=kw.pop("at", 1.0), status="running", **kw))
    return replace(run, status=status, started_at=5.0, finished_at=6.0)


def test_a_final_end_queues_the_jobs_that_run_after_it(store) -> None:
    store.add_job(job("a"))
    store.add_job(job("ok", after=[["a", "success"]]))
    store.add_job(job("bad", after=[["a", "failure"]]))
    store.add_job(job("any", after=[["a", "always"]]))
    store.add_job(job("held", after=[["a", "always"]], state="paused"))
    store.add_job(job("aa", after=[["a_", "always"]]))  # a name LIKE would confuse
    up = _ended(store, "a", "succeeded")
    store.finish_run(up)
    queued = {r.job: r for r in store.list_runs(RunFilter(statuses=["queued"]))}
    assert sorted(queued) == ["any", "ok"]
    chained = queued["ok"]
    assert (chained.trigger, chained.upstream_run_id, chained.upstream_status) == (
        "after", up.id, "succeeded")  # fmt: skip
    assert chained.scheduled_for == 6.0 and chained.not_before == 6.0
    store.finish_run(up)  # recorded again (a retried write): nothing queued twice
    assert len(store.list_runs(RunFilter(statuses=["queued"]))) == 2
    failed = _ended(store, "a", "timed_out", at=2.0)
    store.finish_run(replace(failed, finished_at=7.0))
    assert sorted(r.job for r in store.list_runs(RunFilter(statuses=["queued"]))) == [
        "any", "bad", "ok"]  # fmt: skip
    # `any` (overlap skip, the default) still has its first chained run queued: skipped
    assert [r.status for r in store.list_runs(RunFilter(job="any"))] == ["skipped", "queued"]


def test_no_chain_before_the_last_retry_nor_from_a_plain_replay(store) -> None:
    store.add_job(job("a"))
    store.add_job(job("b", after=[["a", "always"]], overlap="skip"))
    first = _ended(store, "a", "failed")
    store.finish_run(first, Run(job="a", scheduled_for=1.0, attempt=2, trigger="retry"))
    assert store.list_runs(RunFilter(job="b")) == []  # a retry follows: not final yet
    replay = _ended(store, "a", "succeeded", at=3.0, trigger="replay", chain=False)
    store.finish_run(replay)
    assert store.list_runs(RunFilter(job="b")) == []
    store.add_run(Run(job="b", scheduled_for=50.0, status="running"))  # b is busy
    store.finish_run(_ended(store, "a", "succeeded", at=4.0))
    (skipped,) = [r for r in store.list_runs(RunFilter(job="b")) if r.trigger == "after"]
    assert skipped.status == "skipped" and "overlap=skip" in (skipped.error or "")


def test_last_run_is_the_current_jobs_not_an_earlier_one_of_that_name(store) -> None:
    """A job re-added under a removed job's name has no last run until it runs (issue 14)."""
    store.add_job(job("gone"))
    store.add_run(Run(job="gone", scheduled_for=1.0, status="succeeded", created_at=2.0))
    store.remove_job("gone")
    store.add_job(job("gone").copy_with(created_at=3.0))
    assert store.get_job("gone").last_run is None
    store.add_run(Run(job="gone", scheduled_for=4.0, status="succeeded", created_at=4.0))
    assert store.get_job("gone").last_run is not None


def test_next_fires_are_due_jobs_in_two_columns(store) -> None:
    """`status`'s upcoming fires (issue 13): (next_run_at, name) of active jobs, soonest
    first, as due_jobs(FAR_FUTURE, n) gives the whole jobs."""
    from jobctl.store.base import FAR_FUTURE

    for name, nxt in [("c", 30.25), ("a", 10.5), ("d", None), ("b", 20.0), ("e", 5.0),
                      ("f", 40.0)]:  # fmt: skip
        store.add_job(job(name, next_run_at=nxt, state="paused" if name == "e" else "active"))
    assert store.next_fires(3) == [(10.5, "a"), (20.0, "b"), (30.25, "c")]
    for n in (0, 2, 4, 10):
        assert store.next_fires(n) == [(j.next_run_at, j.name)
                                       for j in store.due_jobs(FAR_FUTURE, n)]  # fmt: skip
    store.update_jobs(["a"], lambda j: j.copy_with(state="paused"))
    assert [name for _, name in store.next_fires(10)] == ["b", "c", "f"]
