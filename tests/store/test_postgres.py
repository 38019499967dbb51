"""PostgreSQL specifics: migrations under the advisory lock, errors, changes, the CLI routing."""

from __future__ import annotations

import subprocess
import sys
import threading

import psycopg
import pytest

from jobctl.errors import StoreError
from jobctl.models import Job
from jobctl.store import pg_schema
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
