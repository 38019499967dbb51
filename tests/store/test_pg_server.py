"""The PostgreSQL test fixtures themselves: a server answers and each test's schema is empty."""

from __future__ import annotations

import psycopg

from tests.pg import PgServer


def test_each_test_gets_an_empty_schema_of_its_own(pg_server: PgServer, pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT current_schema(), (SELECT count(*) FROM pg_tables "
            "WHERE schemaname = current_schema())"
        ).fetchone()
    assert row is not None
    schema, tables = row
    assert schema.startswith("jobctl_t") and tables == 0
    assert pg_url.startswith(pg_server.url)
