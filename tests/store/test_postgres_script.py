"""The runner's hot paths send their statements as scripts (postgres._script: bound on the
client, one simple query, one round trip) inside transactions they open and close themselves
(`_tx(scripted=True)`): results come back one per statement, values are quoted, and a
transaction left open by an error or an early return is rolled back with its locks."""

from __future__ import annotations

import psycopg
import pytest

from jobctl.errors import StoreError
from jobctl.models import Job, Run
from jobctl.store.base import Fire
from jobctl.store.postgres import PostgresStore, Prepared, _script
from tests.waiting import wait_for


def _xact_locks(url: str, store: PostgresStore) -> int:
    """Transaction locks the store's session holds (seen from another connection)."""
    assert store.conn is not None
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'transactionid' AND pid = %s",
            [store.conn.info.backend_pid],
        ).fetchone()
    return int(row[0]) if row else 0


def test_a_script_gives_one_result_per_statement_in_order(pg_url: str) -> None:
    store = PostgresStore(pg_url)
    with store._tx(scripted=True) as conn:
        results = _script(conn, [
            ("BEGIN", None),
            ("SELECT %(a)s::int AS a, %(b)s AS b", {"a": 7, "b": "it's 100% ; DROP"}),
            ("SELECT x FROM generate_series(1, %s) AS x", [3]),
            ("SELECT 1 AS none WHERE false", None),
            ("COMMIT", None),
        ])  # fmt: skip
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert [rows for rows, _ in results] == [
        [],
        [{"a": 7, "b": "it's 100% ; DROP"}],
        [{"x": 1}, {"x": 2}, {"x": 3}],
        [],
        [],
    ]
    assert results[2][1] == 3  # rows affected/returned, per statement
    store.close()


def test_an_error_in_a_script_rolls_back_and_releases_its_locks(pg_url: str) -> None:
    store = PostgresStore(pg_url)
    store.add_job(Job(name="a", command=["true"], next_run_at=1000.0, created_at=1.0))
    with pytest.raises(StoreError, match="division by zero"), store._tx(scripted=True) as conn:
        _script(conn, [("BEGIN", None), ("UPDATE jobs SET state = 'paused'", None),
                       ("SELECT 1 / 0", None), ("COMMIT", None)])  # fmt: skip
    assert store.conn is not None
    assert store.conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert _xact_locks(pg_url, store) == 0
    assert store.get_job("a").state == "active"  # the UPDATE before the error was undone
    store.close()


def test_a_scripted_transaction_left_open_is_rolled_back(pg_url: str) -> None:
    """An early return after the first script (claim: nothing to take) keeps no row lock."""
    store = PostgresStore(pg_url)
    store.add_job(Job(name="a", command=["true"], next_run_at=1000.0, created_at=1.0))
    with store._tx(scripted=True) as conn:
        _script(conn, [("BEGIN", None), ("SELECT * FROM jobs FOR UPDATE", None)])
        assert _xact_locks(pg_url, store) == 1
    assert _xact_locks(pg_url, store) == 0
    other = PostgresStore(pg_url)  # the row is free: another writer is not held up
    other.update_jobs(["a"], lambda j: j.copy_with(state="paused"))
    assert store.get_job("a").state == "paused"
    other.close()
    store.close()


def _analyzed(url: str) -> bool:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_user_tables WHERE schemaname = current_schema() "
            "AND relname IN ('jobs', 'runs') AND last_analyze IS NOT NULL"
        ).fetchone()
    return bool(row and row[0] == 2)


@pytest.mark.parametrize("jobs", [PostgresStore.ANALYZE_AFTER - 1, PostgresStore.ANALYZE_AFTER])
def test_a_burst_of_fires_refreshes_the_statistics(pg_url: str, jobs: int) -> None:
    """Thousands of jobs fired at once: the planner's statistics are refreshed at once (stale
    ones made each claim join the whole queue, and each end read every job)."""
    store = PostgresStore(pg_url)
    many = [Job(name=f"j{i:04d}", command=["true"], next_run_at=1000.0, created_at=1.0)
            for i in range(jobs)]  # fmt: skip
    for job in many:
        store.add_job(job)
    fires = [Fire(j, [Run(job=j.name, scheduled_for=1000.0, not_before=1000.0)], None, {})
             for j in store.list_jobs(last_runs=False)]  # fmt: skip
    assert sum(map(len, store.fire_all(fires))) == jobs
    if jobs >= PostgresStore.ANALYZE_AFTER:
        wait_for(lambda: _analyzed(pg_url), timeout=10)
    else:
        assert not _analyzed(pg_url)
    store.close()


def test_prepared_statements_number_their_placeholders_in_order_of_first_use() -> None:
    named = Prepared("SELECT %(b)s, %(a)s, %(b)s::int, 100%%")
    assert (named.text, named.order) == ("SELECT $1, $2, $1::int, 100%", ("b", "a"))
    positional = Prepared("SELECT %s, %s")
    assert (positional.text, positional.order) == ("SELECT $1, $2", (0, 1))
    assert Prepared("SELECT 1").name == Prepared("SELECT 1").name != Prepared("SELECT 2").name


def _prepared_here(conn: psycopg.Connection) -> set[str]:  # type: ignore[type-arg]
    rows = conn.execute("SELECT name FROM pg_prepared_statements").fetchall()
    return {row["name"] for row in rows}


def test_a_prepared_statement_is_prepared_once_per_connection(pg_url: str) -> None:
    """Planned once per session (EXECUTE), not at every claim; its PREPARE goes out in the
    script that first uses it and gives no result of its own."""
    store = PostgresStore(pg_url)
    query = Prepared("SELECT x * %(k)s AS y FROM generate_series(1, %(n)s) AS x")
    already: list[bool] = []
    for k in (2, 3):
        with store._tx(scripted=True) as conn:
            already.append(query.name in _prepared_here(conn))
            results = _script(conn, [("SELECT 1 AS one", None), (query, {"n": 2, "k": k})])
            assert query.name in _prepared_here(conn)
        assert results == [([{"one": 1}], 1), ([{"y": k}, {"y": 2 * k}], 2)]
    assert already == [False, True]
    store.close()


def test_after_an_error_the_prepared_statements_are_made_again(pg_url: str) -> None:
    """A cached plan can fail for good (here: its table changed under `SELECT *`); after any
    error in a script, the next one drops this connection's prepared statements and prepares
    them again, instead of failing the same way forever."""
    store = PostgresStore(pg_url)
    assert store.conn is not None
    store.conn.execute("CREATE TABLE t (a int)")
    store.conn.execute("INSERT INTO t VALUES (1)")
    query = Prepared("SELECT * FROM t")
    with store._tx(scripted=True) as conn:
        assert _script(conn, [(query, None)]) == [([{"a": 1}], 1)]
    store.conn.execute("ALTER TABLE t ADD COLUMN b int")
    with pytest.raises(StoreError, match="cached plan"), store._tx(scripted=True) as conn:
        _script(conn, [(query, None)])
    with store._tx(scripted=True) as conn:
        assert _script(conn, [(query, None)]) == [([{"a": 1, "b": None}], 1)]
    store.close()


def test_a_transaction_rolled_back_by_an_error_keeps_the_prepared_statements(pg_url) -> None:
    """psycopg answers the rollback of a transaction left by an exception with DEALLOCATE ALL
    when it had prepared statements of its own (after 5 runs of one): the claim's prepared
    statements went with them and the runner's next claim failed (found by `run --detach`
    through the relay, whose `no job named` error is raised inside a transaction)."""
    from jobctl.errors import NotFoundError

    store = PostgresStore(pg_url)
    store.add_job(Job(name="a", command=["true"], created_at=1.0))

    def pick(queued, running, jobs, limit):  # type: ignore[no-untyped-def]
        return queued[:limit], []

    for at in (1.0, 2.0):
        store.add_run(Run(job="a", scheduled_for=at, not_before=1.0))
    assert len(store.claim("r", "h", 10.0, 1, pick)) == 1  # its statements prepared
    for _ in range(6):  # what psycopg would prepare by itself
        store.get_job("a")
    with pytest.raises(NotFoundError):
        store.get_job("nosuch")  # raised inside a transaction: rolled back
    assert len(store.claim("r", "h", 10.0, 1, pick, epoch=None)) == 1
    store.close()
