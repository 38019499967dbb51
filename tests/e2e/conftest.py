"""End-to-end helpers: the real `jobctl` binary, a real runner process, waits with deadlines."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jobctl.executor import kill_group
from tests.waiting import DEADLINE_S, wait_for

BIN = Path(sys.executable).with_name("jobctl")
CMD = [str(BIN)] if BIN.exists() else [sys.executable, "-m", "jobctl"]


class Env:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.env = {**os.environ, "JOBCTL_HOME": str(home), "NO_COLOR": "1", "TZ": "UTC"}
        self.runners: list[subprocess.Popen[bytes]] = []
        self._pg: Any = None  # the in-process PostgreSQL store of `runs()` (opened once)

    def run(
        self, *args: str, timeout: float = 2 * DEADLINE_S, check: bool = False
    ) -> subprocess.CompletedProcess[str]:
        p = subprocess.run(
            [*CMD, *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if check:
            assert p.returncode == 0, (args, p.returncode, p.stderr)
        return p

    def json(self, *args: str) -> Any:
        p = self.run(*args, "--json", check=True)
        return json.loads(p.stdout)

    def runs(self, job: str | None = None) -> list[dict[str, Any]]:
        """The runs as `history --json --limit 1000` shows them (the same rendering), read in
        this process: tests poll this every 50 ms, and a `jobctl` process per poll (psycopg's
        import alone is ~0.3 s of CPU) would load the machine the tests measure."""
        from jobctl import render
        from jobctl.store.base import RunFilter

        def read(s: Any) -> list[dict[str, Any]]:
            rows = s.list_runs(RunFilter(job=job, limit=1000))
            notes = s.notifications([r.id for r in rows if r.id is not None])
            return [render.run_json(r, notes.get(r.id or -1, [])) for r in rows]

        return self.read(read, [])

    def runner_pids(self) -> list[int]:
        """The pids of the registered runners (as `status --json` lists them), in-process."""
        return self.read(lambda s: [r.pid for r in s.runners()], [])

    def read(self, read: Any, empty: Any) -> Any:
        """`read(store)` on the test's store, either kind (`empty` before it exists), once
        more if the store failed (a database restarted under a test reopens its connection
        on the next call, as the runners do)."""
        from jobctl.errors import StoreError

        for attempt in (1, 2):
            try:
                with self._store() as s:
                    return empty if s is None else read(s)
            except StoreError:
                if attempt == 2:
                    raise
        return empty

    @contextlib.contextmanager
    def _store(self) -> Iterator[Any]:
        """The test's store, or None before the first command made it. SQLite: a connection
        per call (nothing held open while tests delete, fill or lock the file)."""
        url = self.env.get("JOBCTL_STORE", "")
        if url.startswith("postgres"):
            if self._pg is None:
                from jobctl.store.postgres import PostgresStore

                self._pg = PostgresStore(url)
            yield self._pg
            return
        db = self.home / "jobctl.db"
        if not db.exists():
            yield None
            return
        from jobctl.store.sqlite import SQLiteStore

        s = SQLiteStore(db)
        try:
            yield s
        finally:
            s.close()

    def start_runner(
        self, *args: str, log: str = "runner.log", env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """A runner process (`env`: more variables, e.g. JOBCTL_HOST for a fleet member)."""
        out = open(self.home.parent / log, "ab")  # noqa: SIM115 - closed with the process
        if "--grace" not in args:
            args = (*args, "--grace", "2s")  # teardown must not wait 30 s for a job
        p = subprocess.Popen(
            [*CMD, "runner", *args],
            env={**self.env, **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        self.runners.append(p)
        wait_for(lambda: p.poll() is not None or self._runner_registered(p.pid))
        return p

    def _runner_registered(self, pid: int) -> bool:
        return pid in self.runner_pids()

    def log(self, name: str = "runner.log") -> str:
        path = self.home.parent / name
        return path.read_text() if path.exists() else ""

    def stop_all(self) -> None:
        if self._pg is not None:
            self._pg.close()
            self._pg = None
        for p in self.runners:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.runners:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self._kill_job_groups()

    def _kill_job_groups(self) -> None:
        """No test leaves a job process behind, whatever happened to its runner."""
        url = self.env.get("JOBCTL_STORE", "")
        if url.startswith("postgres"):
            import psycopg

            with psycopg.connect(url, autocommit=True) as pg:
                found = pg.execute("SELECT pid, proc_start FROM runs WHERE pid IS NOT NULL")
                rows = found.fetchall()
        else:
            db = self.home / "jobctl.db"
            if not db.exists():
                return
            conn = sqlite3.connect(db)
            try:
                rows = conn.execute(
                    "SELECT pid, proc_start FROM runs WHERE pid IS NOT NULL"
                ).fetchall()
            finally:
                conn.close()
        for pid, proc_start in rows:  # only groups whose leader is provably still that job
            kill_group(pid, proc_start, signal.SIGKILL)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    e = Env(tmp_path / "home")
    yield e
    e.stop_all()


@pytest.fixture(params=["sqlite", "postgres"])
def any_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Env]:
    """An Env on SQLite, then on a fresh PostgreSQL schema (JOBCTL_STORE): the runner's
    behaviour is the same on both stores (SPEC 8). Skipped on PostgreSQL, with one line,
    when no server can be had."""
    e = Env(tmp_path / "home")
    if request.param == "postgres":
        e.env["JOBCTL_STORE"] = request.getfixturevalue("pg_url")
    yield e
    e.stop_all()


@pytest.fixture
def fleet(tmp_path: Path, pg_url: str) -> Iterator[Env]:
    """An Env on a fresh PostgreSQL schema (JOBCTL_STORE), for runners of a fleet."""
    e = Env(tmp_path / "home")
    e.env["JOBCTL_STORE"] = pg_url
    yield e
    e.stop_all()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie counts as gone
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
