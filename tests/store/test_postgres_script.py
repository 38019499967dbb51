"""The runner's hot paths send their statements as scripts (postgres._script: bound on the
client, one simple query, one round trip) inside transactions they open and close themselves
(`_tx(scripted=True)`): results come back one per statement, values are quoted, and a
transaction left open by an error or an early return is rolled back with its locks."""

from __future__ import annotations

import psycopg
import pytest

from jobctl.errors import StoreError
from jobctl.models import Job
from jobctl.store.postgres import PostgresStore, _script


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
