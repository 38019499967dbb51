"""PostgreSQL for the tests: one server per session, a fresh empty schema per test.

Where the server comes from, in order:
1. `JOBCTL_TEST_PG=URL` (any database the tests may create and drop schemas in);
2. a throwaway cluster started here with initdb/pg_ctl (on PATH or /usr/lib/postgresql/*/bin),
   on a free port of 127.0.0.1, in a temp folder, with fsync off; stopped at session end. As root
   (initdb refuses root) it runs as the `postgres` user, else `nobody`, through runuser;
3. as root when neither user can run it: the local server's `test` (or `postgres`) database on
   127.0.0.1:5432, if it answers.
With none of these the PostgreSQL tests skip with one line at the end of the run; under CI=true
they fail instead.

Each test gets its own schema (`jobctl_t<PID>_<N>`) through the URL's
`options=-csearch_path=...`, so that the store under test sees an empty database. Measured on
the throwaway cluster (fsync off, 2 cores): CREATE SCHEMA 4 ms, then the store's first open
migrates it in 33 ms; CREATE DATABASE from an already migrated template costs 31 ms, so a schema
per test is as fast and simpler. Schemas are dropped after each test on a server we did not
start (DROP SCHEMA ... CASCADE, 15-35 ms) and left to the cluster's removal otherwise.
The session's line with -v says where the server came from and how long it took to start.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import quote

import pytest

CONNECT_TIMEOUT_S = 5
_skip_reason: list[str] = []  # why the PostgreSQL tests were skipped (reported once)
SKIP_PREFIX = "PostgreSQL: "  # of each PostgreSQL test's skip reason
_info: list[str] = []  # where the server came from and its set-up time (shown with -v)


@dataclass
class PgServer:
    """A reachable server: `url` names a database the tests may make schemas in."""

    url: str
    source: str
    throwaway: bool = False  # our own cluster: its schemas go with it (no DROP per test)
    cluster: Cluster | None = None  # our own cluster: tests may restart it
    _counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def connect(self) -> object:
        import psycopg

        return psycopg.connect(self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)

    def fresh_schema(self) -> str:
        name = f"jobctl_t{os.getpid()}_{next(self._counter)}"
        with self.connect() as conn:  # type: ignore[attr-defined]
            conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
            conn.execute(f"CREATE SCHEMA {name}")
        return name

    def drop_schema(self, name: str) -> None:
        if self.throwaway:
            return
        with contextlib.suppress(Exception), self.connect() as conn:  # type: ignore[attr-defined]
            conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")

    def url_for(self, schema: str) -> str:
        sep = "&" if "?" in self.url else "?"
        return f"{self.url}{sep}options={quote(f'-csearch_path={schema}')}"


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    return candidates[0] if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        import psycopg

        with psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S) as conn:
            conn.execute("SELECT 1")
        return True
    except Exception:
        return False


class Cluster:
    """A throwaway cluster: initdb into a temp folder, pg_ctl start, pg_ctl stop."""

    def __init__(self) -> None:
        self.initdb, self.pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
        self.dir = ""
        self.user: str | None = None
        self.started = False

    def _as_user(self, argv: list[str]) -> list[str]:
        return ["runuser", "-u", self.user, "--", *argv] if self.user else argv

    def start(self) -> str:
        """The URL of the started cluster's `postgres` database; RuntimeError saying why not."""
        if not (self.initdb and self.pg_ctl):
            raise RuntimeError("no initdb/pg_ctl on PATH or under /usr/lib/postgresql/*/bin")
        if os.geteuid() == 0:
            users = [u for u in ("postgres", "nobody") if _has_user(u)]
            if not users or not shutil.which("runuser"):
                raise RuntimeError("running as root, and no user (postgres, nobody) to run initdb")
            self.user = users[0]
        self.dir = tempfile.mkdtemp(prefix="jobctl-pg-")
        if self.user:
            pw = pwd.getpwnam(self.user)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        data, port = os.path.join(self.dir, "data"), _free_port()
        init = [self.initdb, "-D", data, "-A", "trust", "-U", "postgres", "-E", "UTF8"]
        out = subprocess.run(
            self._as_user([*init, "--no-sync"]), capture_output=True, text=True, check=False
        )
        if out.returncode != 0:
            raise RuntimeError(f"initdb failed: {(out.stderr or out.stdout).strip()[:200]}")
        opts = (
            f"-p {port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        ctl = [self.pg_ctl, "-D", data, "-o", opts, "-l", os.path.join(self.dir, "log"), "-w"]
        out = subprocess.run(
            self._as_user([*ctl, "start"]), capture_output=True, text=True, check=False
        )
        if out.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed: {(out.stderr or out.stdout).strip()[:200]}")
        self.started = True
        return f"postgresql://postgres@127.0.0.1:{port}/postgres"

    def restart(self, mode: str = "fast") -> None:
        """pg_ctl restart -m MODE (fast: clients disconnected; immediate: a crash)."""
        data = os.path.join(self.dir, "data")
        log = os.path.join(self.dir, "log")  # else the server would hold our pipes open
        argv = [str(self.pg_ctl), "-D", data, "-m", mode, "-w", "-l", log, "restart"]
        out = subprocess.run(
            self._as_user(argv),
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode != 0:
            raise RuntimeError(f"pg_ctl restart failed: {(out.stderr or out.stdout)[:200]}")

    def stop(self) -> None:
        if self.started and self.pg_ctl:
            data = os.path.join(self.dir, "data")
            subprocess.run(
                self._as_user([self.pg_ctl, "-D", data, "-m", "immediate", "-w", "stop"]),
                capture_output=True,
                check=False,
            )
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def _find_server(stack: contextlib.ExitStack) -> PgServer:
    """The session's server, or pytest.skip/fail with one line saying why none."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return _no_server("psycopg is not installed (pip install -e '.[test]')")
    url = os.environ.get("JOBCTL_TEST_PG")
    if url:
        if not _answers(url):
            return _no_server(f"JOBCTL_TEST_PG does not answer within {CONNECT_TIMEOUT_S} s")
        return PgServer(url, "JOBCTL_TEST_PG")
    cluster = Cluster()
    stack.callback(cluster.stop)
    try:
        url = cluster.start()
        return PgServer(url, f"throwaway cluster as {cluster.user or 'this user'}", True, cluster)
    except (RuntimeError, OSError) as exc:
        why = str(exc)
    if os.geteuid() == 0:
        for db in ("test", "postgres"):
            local = f"postgresql://postgres@127.0.0.1:5432/{db}"
            if _answers(local):
                return PgServer(local, f"127.0.0.1:5432/{db} (no throwaway cluster: {why})")
    return _no_server(f"no PostgreSQL server: {why}")


def _no_server(why: str) -> PgServer:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"PostgreSQL tests cannot run under CI=true: {why}", pytrace=False)
    if not _skip_reason:
        _skip_reason.append(why)
    pytest.skip(f"{SKIP_PREFIX}{why}")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    with contextlib.ExitStack() as stack:
        started = time.perf_counter()
        server = _find_server(stack)
        server_setup_s = time.perf_counter() - started
        _info.append(f"{server.source}, ready in {server_setup_s:.2f} s")
        yield server


@pytest.fixture
def pg_url(pg_server: PgServer) -> Iterator[str]:
    """A PostgreSQL store URL whose schema is new and empty (dropped after the test)."""
    schema = pg_server.fresh_schema()
    yield pg_server.url_for(schema)
    pg_server.drop_schema(schema)


def report(terminalreporter: pytest.TerminalReporter, verbose: bool) -> None:
    """One line at the end of the run when the PostgreSQL tests were skipped (and, with -v,
    where their server came from). Under xdist the skips happen in the workers: the
    controller, which writes the summary, finds the reason in their skip reports."""
    why = _skip_reason[0] if _skip_reason else _skipped_why(terminalreporter)
    if why:
        terminalreporter.write_line(f"PostgreSQL tests skipped: {why}", yellow=True)
    elif _info and verbose:
        terminalreporter.write_line(f"PostgreSQL tests: {_info[0]}")


def _skipped_why(terminalreporter: pytest.TerminalReporter) -> str | None:
    """The reason of the first PostgreSQL skip among the run's skip reports, if any."""
    for rep in terminalreporter.stats.get("skipped", []):
        longrepr = getattr(rep, "longrepr", None)  # (path, line, "Skipped: REASON")
        if isinstance(longrepr, tuple) and len(longrepr) == 3:
            reason = str(longrepr[2]).removeprefix("Skipped: ")
            if reason.startswith(SKIP_PREFIX):
                return reason.removeprefix(SKIP_PREFIX)
    return None
