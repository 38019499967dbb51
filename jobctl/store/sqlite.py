"""SQLite implementation of the Store (store/base.py).

One connection in autocommit mode; every method is one explicit transaction, and writers take
the write lock up front (BEGIN IMMEDIATE) so that concurrent commands queue on the busy timeout
instead of failing with "database is locked". WAL lets readers run beside the runner.
Schema changes live in store/schema.py and run only when PRAGMA user_version is behind.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobctl.errors import ConflictError, NotFoundError, StoreDataError, StoreError
from jobctl.models import Job, Run
from jobctl.records import fields, replace
from jobctl.store.base import (
    DEFAULT_LEASE_S,
    FAR_FUTURE,
    SUPERSEDED_DEAD,
    Delivery,
    End,
    Fire,
    Picker,
    RunFilter,
    RunnerInfo,
    RunTally,
    chain_runs,
    chains_from,
    delete_finished_runs,
    fired_mark,
    fresh_fires,
    job_lines_query,
    keep_scheduling_state,
    outcome_query,
    purge_sql,
    supersedes_dead,
    tally_from_row,
    tally_query,
)
from jobctl.store.rows import (
    JOB_COLUMNS,
    NOTIFICATION_COLUMNS,
    RUN_COLUMNS,
    RUNNER_COLUMNS,
    JobLine,
    dumps,
    notification_insert,
    notification_row,
    notifications_by_run,
    released,
    runner_info,
    runner_row,
    status_clause,
    to_ms,
)
from jobctl.store.rows import decode as _decode
from jobctl.store.rows import encode as _encode
from jobctl.store.rows import row as _row

if TYPE_CHECKING:
    from jobctl.stats import RunOutcome

BUSY_TIMEOUT_MS = 60_000
SCHEMA_VERSION = 10  # keep equal to schema.SCHEMA_VERSION (a test checks)


def _reader(cls: type, columns: dict[str, str]) -> Callable[[sqlite3.Row], Any]:
    """Row -> model, positionally: for each column layout a function is compiled once that
    reads the columns in the order of the model's fields and decodes them inline (no call per
    value), so 1,000 jobs and their last runs decode fast (`list`)."""
    names = [f.name for f in fields(cls)]
    order = [n for n in names if n in columns or n == "id"]
    assert order == names[: len(order)], f"{cls.__name__}: stored fields must come first"
    plans: dict[tuple[str, ...], Callable[[sqlite3.Row], Any]] = {}

    def compile_plan(keys: tuple[str, ...]) -> Callable[[sqlite3.Row], Any]:
        inline = {
            "": "r[{i}]",
            "ms": "(None if r[{i}] is None else r[{i}] / 1000)",
            "bool": "(None if r[{i}] is None else bool(r[{i}]))",
            "json": "(None if r[{i}] is None else decode('json', r[{i}]))",
        }
        args = ", ".join(inline[columns.get(n, "")].format(i=keys.index(n)) for n in order)
        return eval(f"lambda r: cls({args})", {"cls": cls, "decode": _decode})  # type: ignore[no-any-return]

    def read(row: sqlite3.Row) -> Any:
        keys = tuple(row.keys())
        plan = plans.get(keys)
        if plan is None:
            plan = plans[keys] = compile_plan(keys)
        return plan(row)

    return read


_read_job, _read_run = _reader(Job, JOB_COLUMNS), _reader(Run, RUN_COLUMNS)
_UPDATE_RUN = (
    "UPDATE runs SET " + ", ".join(f"{c} = :{c}" for c in RUN_COLUMNS) + " WHERE id = :_id"
)


def _job(row: sqlite3.Row) -> Job:
    job: Job = _read_job(row)
    return job


def _run(row: sqlite3.Row) -> Run:
    run: Run = _read_run(row)
    return run


_INSERTS: dict[tuple[str, str, tuple[str, ...]], str] = {}


def _insert_sql(table: str, columns: Iterable[str], verb: str = "INSERT") -> str:
    """The INSERT of `columns` into `table`, written once for each such set."""
    key = (table, verb, tuple(columns))
    sql = _INSERTS.get(key)
    if sql is None:
        marks = ", ".join(f":{c}" for c in key[2])
        sql = _INSERTS[key] = f"{verb} INTO {table} ({', '.join(key[2])}) VALUES ({marks})"
    return sql


_PURGE = purge_sql("?")
_SUPERSEDED_DEAD = SUPERSEDED_DEAD.format(m="?", no=0, yes=1)


class SQLiteStore:
    """The default store: one file in the home folder (mode 0600)."""

    shared = False  # one runner at a time (its file lock); runs' owners checked in /proc

    def __init__(
        self, path: Path, busy_timeout_ms: int = BUSY_TIMEOUT_MS, migrate: bool = True
    ) -> None:
        """`busy_timeout_ms`: how long a write waits for another process's write lock before
        it fails with StoreError (the runner waits less than a command, and retries).
        `migrate=False` (shell completion): a store at another schema, or none, is a
        StoreError, never created nor migrated."""
        self.path = path
        try:
            if not path.exists():
                if not migrate:
                    raise StoreError(f"no store at {str(path)!r}")
                os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
            self.conn = sqlite3.connect(
                path, timeout=busy_timeout_ms / 1000, isolation_level=None, check_same_thread=False
            )
            self.conn.row_factory = sqlite3.Row
            self._lock = threading.RLock()  # the runner's threads share this connection
            self._durable = True  # PRAGMA synchronous = FULL (the default in WAL mode)
            self._commits = self._synced = 0  # commits made, and made durable, so far
            self._sync_lock = threading.Lock()
            self.conn.execute("PRAGMA synchronous = FULL")
            self._busy_ms = int(busy_timeout_ms)
            self.conn.execute(f"PRAGMA busy_timeout = {self._busy_ms}")
            version = self.conn.execute("PRAGMA user_version").fetchone()[0]
            if version < SCHEMA_VERSION and not migrate:
                raise StoreError(f"store {str(path)!r} has schema {version}, not {SCHEMA_VERSION}")
            if version < SCHEMA_VERSION:
                self._migrate()
            elif version > SCHEMA_VERSION:
                raise StoreError(
                    f"store {str(path)!r} has schema {version}, newer than this jobctl "
                    f"understands ({SCHEMA_VERSION}); upgrade jobctl"
                )
            self.conn.execute("PRAGMA foreign_keys = ON")
            st = os.stat(path)
            self._identity = (st.st_dev, st.st_ino)  # which file we opened (see moved())
        except (sqlite3.Error, OSError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise StoreError(f"cannot open store {str(path)!r}: {reason}") from exc

    def _migrate(self) -> None:
        """Apply pending migrations, one process at a time (a lock file beside the DB)."""
        from filelock import FileLock
        from sqlite_utils import Database

        from jobctl.store import schema

        with FileLock(str(self.path) + ".migrate.lock", mode=0o600):
            self.conn.execute("PRAGMA journal_mode = WAL")
            if self.conn.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
                schema.migrate(Database(self.conn))

    def close(self) -> None:
        self.conn.close()

    def moved(self) -> str | None:
        """Why the file at our path is no longer the database we opened (deleted, or replaced
        by another file), else None. A runner that goes on with an unlinked database would
        serve a store that no command sees, beside a runner started on the new one."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return f"the store {str(self.path)!r} was deleted"
        except OSError:  # EACCES, EIO, ESTALE...: a store fault (retried), not a new store
            return None
        if (st.st_dev, st.st_ino) != self._identity:
            return f"the store {str(self.path)!r} was replaced by another file"
        return None

    def sync(self) -> None:
        """Group commit: one fsync of the WAL makes every commit so far durable, and threads
        that wait here meanwhile share it (their commits came before it began)."""
        try:
            self._sync()
        except OSError as exc:
            raise StoreError(f"store error on {str(self.path)!r}: {exc.strerror}") from exc

    def _sync(self) -> None:
        target = self._commits
        with self._sync_lock:
            if self._synced >= target:
                return
            target = self._commits
            try:
                fd = os.open(f"{self.path}-wal", os.O_RDONLY)
            except FileNotFoundError:  # no WAL: everything is in the database file already
                self._synced = target
                return
            try:
                os.fdatasync(fd)  # the data (SQLite does the same); not the mtime
            finally:
                os.close(fd)
            self._synced = max(self._synced, target)

    @contextmanager
    def _tx(
        self, write: bool = True, durable: bool = True, wait_s: float | None = None
    ) -> Iterator[sqlite3.Connection]:
        """One transaction. `durable=False` (the runner's per-run bookkeeping) commits without
        an fsync: safe against a crash of any process (WAL), and after a power loss the last
        such commits may be missing, which recovery treats like a runner that died. Every
        durable commit (fires, user commands) also syncs the non-durable ones before it."""
        conn = self.conn
        if wait_s is not None:  # a bounded wait: for the lock shared by our threads, then
            # for another process's write lock (busy_timeout for this transaction only)
            if not self._lock.acquire(timeout=wait_s):
                raise StoreError(f"store busy on {str(self.path)!r}: gave up after {wait_s:g}s")
            try:
                conn.execute(f"PRAGMA busy_timeout = {round(wait_s * 1000)}")
                with self._tx(write, durable) as inner:
                    yield inner
            finally:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute(f"PRAGMA busy_timeout = {self._busy_ms}")
                self._lock.release()
            return
        try:
            with self._lock:
                if write and durable != self._durable:
                    conn.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
                    self._durable = durable
                conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    yield conn
                    conn.execute("COMMIT")
                except BaseException:
                    # also when COMMIT itself failed (disk full, I/O error): a transaction
                    # left open would make every later BEGIN fail on this connection
                    if conn.in_transaction:
                        with contextlib.suppress(sqlite3.Error):
                            conn.execute("ROLLBACK")
                    raise
                self._commits += 1
                if durable and write:
                    self._synced = self._commits
        except (sqlite3.IntegrityError, sqlite3.DataError) as exc:  # this write's data
            raise StoreDataError(f"store error on {str(self.path)!r}: {exc}") from exc
        except sqlite3.Error as exc:
            raise StoreError(f"store error on {str(self.path)!r}: {exc}") from exc

    # ---- jobs -------------------------------------------------------------
    def _last_runs(self, conn: sqlite3.Connection, names: Sequence[str]) -> dict[str, Run]:
        if not names:
            return {}
        rows = conn.execute(
            "SELECT r.* FROM jobs j JOIN runs r ON r.id = "
            "(SELECT max(id) FROM runs WHERE job = j.name) "
            "WHERE j.name IN (SELECT value FROM json_each(?)) "
            "AND r.created_at >= j.created_at",  # not a run of an earlier job of that name
            [dumps(list(names))],
        )
        return {row["job"]: _run(row) for row in rows}

    def _with_last_runs(self, conn: sqlite3.Connection, jobs: list[Job]) -> list[Job]:
        last = self._last_runs(conn, [j.name for j in jobs])
        for job in jobs:
            job.last_run = last.get(job.name)
        return jobs

    def add_job(self, job: Job) -> Job:
        with self._tx() as conn:
            try:
                cur = conn.execute(_insert_sql("jobs", JOB_COLUMNS), _row(JOB_COLUMNS, job))
            except sqlite3.IntegrityError as exc:
                raise ConflictError(f"job {job.name!r} already exists") from exc
            return job.copy_with(id=cur.lastrowid)

    def get_job(self, name: str) -> Job:
        with self._tx(write=False) as conn:
            row = conn.execute("SELECT * FROM jobs WHERE name = ?", [name]).fetchone()
            if row is None:
                raise NotFoundError(f"no job named {name!r}")
            return self._with_last_runs(conn, [_job(row)])[0]

    def list_jobs(
        self,
        tag: str | None = None,
        *,
        names: Sequence[str] | None = None,
        schedule: str | None = None,
        last_runs: bool = True,
        pinned: bool = False,
    ) -> list[Job]:
        clauses: list[str] = []
        params: list[Any] = []
        if tag is not None:
            clauses.append("EXISTS (SELECT 1 FROM json_each(jobs.tags) WHERE value = ?)")
            params.append(tag)
        if names is not None:
            clauses.append("name IN (SELECT value FROM json_each(?))")
            params.append(dumps(list(names)))
        if schedule is not None:
            clauses.append("lower(schedule) = lower(?)")  # @reboot may be written @REBOOT
            params.append(schedule)
        if pinned:
            clauses.append("on_labels <> '[]'")  # as rows.encode writes an empty list
        sql = "SELECT * FROM jobs"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        with self._tx(write=False) as conn:
            jobs = [_job(r) for r in conn.execute(sql + " ORDER BY name", params)]
            return self._with_last_runs(conn, jobs) if last_runs else jobs

    def job_lines(self, tag: str | None = None) -> list[JobLine]:
        sql, params = job_lines_query(
            tag, "?", "EXISTS (SELECT 1 FROM json_each(j.tags) WHERE value = {mark})"
        )
        with self._tx(write=False) as conn:
            cur = conn.cursor()
            cur.row_factory = None  # plain tuples
            return list(map(JobLine, cur.execute(sql + " ORDER BY j.name", params)))

    def job_names(self) -> list[str]:
        with self._tx(write=False) as conn:
            return [r[0] for r in conn.execute("SELECT name FROM jobs ORDER BY name")]

    def update_jobs(self, names: Sequence[str], change: Callable[[Job], Job]) -> list[Job]:
        sets = ", ".join(f"{c} = :{c}" for c in JOB_COLUMNS if c != "name")
        out: list[Job] = []
        with self._tx() as conn:
            for name in names:
                row = conn.execute("SELECT * FROM jobs WHERE name = ?", [name]).fetchone()
                if row is None:
                    raise NotFoundError(f"no job named {name!r}")
                job = change(self._with_last_runs(conn, [_job(row)])[0])
                conn.execute(f"UPDATE jobs SET {sets} WHERE name = :name", _row(JOB_COLUMNS, job))
                out.append(job)
        return out

    def remove_job(self, name: str, purge: bool = False) -> None:
        with self._tx() as conn:
            row = conn.execute("SELECT created_at FROM jobs WHERE name = ?", [name]).fetchone()
            if row is None:
                raise NotFoundError(f"no job named {name!r}")
            conn.execute("DELETE FROM jobs WHERE name = ?", [name])
            # its waiting runs and pending retries must not run under a later job of that name
            conn.execute(
                "UPDATE runs SET status = 'cancelled', error = 'job removed' "
                "WHERE job = ? AND status = 'queued'",
                [name],
            )
            if purge:
                delete_finished_runs(conn, _PURGE, name, row["created_at"])

    def purge_runs(self, job: str, since: float) -> int:
        with self._tx() as conn:
            return delete_finished_runs(conn, _PURGE, job, to_ms(since))

    # ---- runs -------------------------------------------------------------
    def _insert_run(self, conn: sqlite3.Connection, run: Run, verb: str = "INSERT") -> Run | None:
        cur = conn.execute(_insert_sql("runs", RUN_COLUMNS, verb), _row(RUN_COLUMNS, run))
        if cur.rowcount == 0:
            return None
        return _copy_run(run, id=cur.lastrowid)

    def fire(
        self, job: Job, runs: Sequence[Run], next_run_at: float | None, **job_changes: Any
    ) -> list[Run]:
        return self.fire_all([Fire(job, runs, next_run_at, job_changes)])[0]

    def fire_all(self, fires: Sequence[Fire]) -> list[list[Run]]:
        out: list[list[Run]] = []
        with self._tx() as conn:
            for fire in fires:
                job, runs, next_run_at, job_changes = (fire.job, fire.runs, fire.next_run_at,
                                                       fire.changes)  # fmt: skip
                runs = fresh_fires(job, runs)
                changes = {"next_run_at": next_run_at, **job_changes}
                mark = fired_mark(job, runs)
                if mark != job.fired_through:
                    changes["fired_through"] = mark
                sets = ", ".join(f"{c} = :{c}" for c in changes)
                params = {c: _encode(JOB_COLUMNS[c], v) for c, v in changes.items()}
                params["_name"], params["_expected"] = job.name, to_ms(job.next_run_at)
                params["_mark"] = to_ms(job.fired_through)
                cur = conn.execute(
                    f"UPDATE jobs SET {sets} WHERE name = :_name AND next_run_at IS :_expected "
                    "AND fired_through IS :_mark",
                    params,
                )
                if cur.rowcount == 0:
                    out.append([])  # another runner fired it, or the job changed since read
                    continue
                inserted = [self._insert_run(conn, run, "INSERT OR IGNORE") for run in runs]
                if any(r.status == "skipped" for r in runs):  # skipped runs never finish
                    self._retain(conn, job.name, job.keep_runs)
                out.append([r for r in inserted if r is not None])
        return out

    def add_run(self, run: Run) -> Run:
        with self._tx() as conn:
            try:
                inserted = self._insert_run(conn, run)
            except sqlite3.IntegrityError as exc:
                raise ConflictError(
                    f"run {run.job!r} attempt {run.attempt} of that fire already exists"
                ) from exc
            assert inserted is not None
            return inserted

    def update_run(self, run_id: int, **fields: Any) -> Run:
        sets = ", ".join(f"{c} = :{c}" for c in fields)
        params = {c: _encode(RUN_COLUMNS[c], v) for c, v in fields.items()}
        params["_id"] = run_id
        with self._tx() as conn:
            if conn.execute(f"UPDATE runs SET {sets} WHERE id = :_id", params).rowcount == 0:
                raise NotFoundError(f"no run with id {run_id}")
            return _run(conn.execute("SELECT * FROM runs WHERE id = ?", [run_id]).fetchone())

    def mark_started(self, run: Run, wait_s: float | None = None) -> None:
        with self._tx(durable=False, wait_s=wait_s) as conn:
            conn.execute(
                "UPDATE runs SET pid = ?, proc_start = ?, started_at = ? WHERE id = ?",
                [run.pid, run.proc_start, to_ms(run.started_at), run.id],
            )

    def get_run(self, run_id: int) -> Run:
        with self._tx(write=False) as conn:
            row = conn.execute("SELECT * FROM runs WHERE id = ?", [run_id]).fetchone()
            if row is None:
                raise NotFoundError(f"no run with id {run_id}")
            return _run(row)

    def _where(self, where: RunFilter) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if where.job is not None:
            clauses.append("job = ?")
            params.append(where.job)
        if where.jobs is not None:
            clauses.append("job IN (SELECT value FROM json_each(?))")
            params.append(dumps(list(where.jobs)))
        if where.statuses:
            clauses.append(status_clause(where.statuses, params, "?"))
        if where.since is not None:
            clauses.append("created_at >= ?")
            params.append(to_ms(where.since))
        if where.dead is not None:
            clauses.append("dead = ?")
            params.append(int(where.dead))
        if where.owner is not None:
            clauses.append("owner = ?")
            params.append(where.owner)
        if where.owned is not None:
            clauses.append("owner IS NOT NULL" if where.owned else "owner IS NULL")
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), params

    def list_runs(self, where: RunFilter) -> list[Run]:
        sql, params = self._where(where)
        sql = "SELECT * FROM runs" + sql + " ORDER BY id DESC"
        if where.limit is not None:
            sql += f" LIMIT {int(where.limit)}"
        with self._tx(write=False) as conn:
            return [_run(r) for r in conn.execute(sql, params)]

    def count_runs(self, where: RunFilter) -> int:
        sql, params = self._where(where)
        with self._tx(write=False) as conn:
            return int(conn.execute("SELECT count(*) FROM runs" + sql, params).fetchone()[0])

    def update_runs(self, run_ids: Sequence[int], **fields: Any) -> int:
        sets = ", ".join(f"{c} = :{c}" for c in fields)
        params = {c: _encode(RUN_COLUMNS[c], v) for c, v in fields.items()}
        params["_ids"] = dumps(list(run_ids))
        with self._tx() as conn:
            sql = f"UPDATE runs SET {sets} WHERE id IN (SELECT value FROM json_each(:_ids))"
            return conn.execute(sql, params).rowcount

    # ---- the runner's side ------------------------------------------------------
    def due_jobs(self, now: float, limit: int = 1000) -> list[Job]:
        with self._tx(write=False) as conn:
            rows = conn.execute(
                "SELECT * FROM jobs WHERE state = 'active' AND next_run_at <= ? "
                "ORDER BY next_run_at LIMIT ?",
                [to_ms(now), limit],
            )
            return [_job(r) for r in rows]

    def next_fires(self, limit: int) -> list[tuple[float, str]]:
        with self._tx(write=False) as conn:
            rows = conn.execute(
                "SELECT next_run_at, name FROM jobs WHERE state = 'active' AND next_run_at <= ? "
                "ORDER BY next_run_at LIMIT ?",
                [to_ms(FAR_FUTURE), limit],
            )
            return [(r[0] / 1000, r[1]) for r in rows]

    def next_wakeup(self, now: float) -> float | None:
        with self._tx(write=False) as conn:
            row = conn.execute(
                "SELECT (SELECT min(next_run_at) FROM jobs WHERE state = 'active'), "
                "(SELECT min(not_before) FROM runs WHERE status = 'queued' AND not_before > ?)",
                [to_ms(now)],
            ).fetchone()
            values = [v for v in row if v is not None]
            return min(values) / 1000 if values else None

    CLAIM_PAGE = 1  # first page of queued runs looked at (one per free worker), doubling

    def claim(
        self,
        owner: str,
        host: str,
        now: float,
        limit: int,
        pick: Picker,
        epoch: int | None = None,
        due_by: float | None = None,
    ) -> list[tuple[Run, Job]]:
        """See Store.claim; `epoch` and `due_by` are not used (one runner, no leases to
        fence; of the runs beyond the free slots, `pick` keeps those due by `due_by`)."""
        # not durable by itself: the runner calls sync() before it starts the process (after a
        # power loss a started run must come back `running`, never `queued` to run again)
        with self._tx(durable=False) as conn:
            # pick needs only who runs (job, id, fire): no full decode of every running run
            running = [
                Run(job=job, scheduled_for=fire / 1000, status="running", id=run_id)
                for run_id, job, fire in conn.execute(
                    "SELECT id, job, scheduled_for FROM runs WHERE status = 'running'"
                )
            ]
            jobs: dict[str, Job] = {}
            # due runs waiting to replace a running run of their job (overlap=replace) are
            # always offered, wherever they stand in the queue: pick must see them even when
            # no worker is free (running runs are few; runs_waiting finds a job's queued runs)
            queued: list[Run] = []
            replacing = [
                name
                for (name,) in conn.execute(
                    "SELECT name FROM jobs WHERE name IN (SELECT value FROM json_each(?)) "
                    "AND overlap = 'replace'",
                    [dumps(sorted({r.job for r in running}))],
                )
            ]
            if replacing:
                queued = [
                    _run(r)
                    for r in conn.execute(
                        "SELECT * FROM runs INDEXED BY runs_waiting WHERE status = 'queued' "
                        "AND job IN (SELECT value FROM json_each(?)) AND not_before <= ? "
                        "AND (owner IS NULL OR owner = ?) ORDER BY not_before, id",
                        [dumps(replacing), to_ms(now), owner],
                    )
                ]
            offset = 0
            size = max(self.CLAIM_PAGE, limit)
            while True:  # page through the due queue until `pick` has enough (or it ends)
                page = [
                    _run(r)
                    for r in conn.execute(
                        # runs_queue walks the due queue in order: without INDEXED BY the
                        # planner took runs_status_created and sorted the whole queue on
                        # every claim (a 20,000-run drain cost 4x per claim what 2,000 did)
                        "SELECT * FROM runs INDEXED BY runs_queue WHERE status = 'queued' "
                        "AND not_before <= ? "
                        "AND (owner IS NULL OR owner = ?) ORDER BY not_before, id "
                        "LIMIT ? OFFSET ?",
                        [to_ms(now), owner, size, offset],
                    )
                ]
                offset += len(page)
                seen = {r.id for r in queued}
                queued = sorted(
                    queued + [r for r in page if r.id not in seen],
                    key=lambda r: (r.not_before, r.id or 0),
                )
                if not queued:
                    return []
                # the offered runs' jobs; of the running runs' jobs only those holding a
                # mutex (pick needs no more of them): fewer rows to decode on every claim
                names = {r.job for r in queued} - jobs.keys()
                busy = {r.job for r in running} - names - jobs.keys()
                if names or busy:
                    rows = conn.execute(
                        "SELECT * FROM jobs WHERE name IN (SELECT value FROM json_each(?)) "
                        "OR (name IN (SELECT value FROM json_each(?)) AND mutexes != '[]')",
                        [dumps(sorted(names)), dumps(sorted(busy))],
                    )
                    jobs.update((j.name, j) for j in map(_job, rows))
                start, cancel = pick(queued, running, jobs, limit)
                if len(start) >= limit or len(page) < size:
                    break
                size = min(2 * size, 1024)
            for run in cancel:  # (pick gives the reason; none: the job is gone)
                conn.execute(
                    "UPDATE runs SET status = 'cancelled', error = ?, finished_at = ? "
                    "WHERE id = ? AND status = 'queued'",
                    [run.error or "job removed", to_ms(now), run.id],
                )
            claimed: list[tuple[Run, Job]] = []
            for run in start:
                cur = conn.execute(
                    "UPDATE runs SET status = 'running', owner = ?, host = ? "
                    "WHERE id = ? AND status = 'queued'",
                    [owner, host, run.id],
                )
                if cur.rowcount:
                    claimed.append(
                        (_copy_run(run, status="running", owner=owner, host=host), jobs[run.job])
                    )
            return claimed

    def finish_run(
        self,
        run: Run,
        followup: Run | None = None,
        keep_runs: int | None = None,
        fence: tuple[str, int] | None = None,
    ) -> Run:
        """See Store.finish_run; `fence` is not used: the one runner's runs are judged by
        their owner's process (owners.alive), not by a lease."""
        self.finish_runs([(run, followup, keep_runs)])
        return run

    def finish_runs(
        self,
        ends: Sequence[End],
        fence: tuple[str, int] | None = None,
        started: Sequence[Run] = (),
    ) -> list[bool]:
        """See Store.finish_runs; `fence` is not used (see finish_run)."""
        keep: dict[str, int] = {}
        linked: list[Job] | None = None  # the jobs that run after others: read once a batch
        with self._tx(durable=False) as conn:
            if started:
                self._mark_started(conn, started)
            for run, followup, keep_runs in ends:
                assert run.id is not None
                fields = _row(RUN_COLUMNS, run)
                fields["_id"] = run.id
                conn.execute(_UPDATE_RUN, fields)
                if supersedes_dead(run):
                    fire = [run.job, fields["scheduled_for"]] * 2
                    conn.execute(_SUPERSEDED_DEAD, fire)
                if followup is not None:
                    self._insert_run(conn, followup, "INSERT OR IGNORE")
                if chains_from(run, followup):
                    if linked is None:
                        found = conn.execute("SELECT * FROM jobs WHERE after != '[]'")
                        linked = [_job(r) for r in found]
                    self._chain(conn, run, linked)
                if keep_runs is not None:
                    keep[run.job] = keep_runs
            for job, n in keep.items():
                self._retain(conn, job, n)
        return [True] * len(ends)

    def mark_started_all(self, runs: Sequence[Run]) -> None:
        with self._tx(durable=False) as conn:
            self._mark_started(conn, runs)

    def release_runs(self, run_ids: Sequence[int], fence: tuple[str, int] | None = None) -> int:
        """See Store.release_runs; `fence` is not used (one runner: see finish_run)."""
        ids = [i for i in run_ids if -(2**63) <= i < 2**63]
        now = to_ms(time.time())
        with self._tx() as conn:
            return conn.executemany(
                f"UPDATE runs SET {released('?')} WHERE id = ? AND status = 'running'",
                [[now, i] for i in ids],
            ).rowcount

    def _mark_started(self, conn: sqlite3.Connection, runs: Sequence[Run]) -> None:
        conn.executemany(
            "UPDATE runs SET pid = ?, proc_start = ?, started_at = ? WHERE id = ?",
            [[r.pid, r.proc_start, to_ms(r.started_at), r.id] for r in runs],
        )

    def _chain(self, conn: sqlite3.Connection, run: Run, linked: Sequence[Job]) -> None:
        """Queue the runs of the jobs that run after `run`'s job (chain_runs), in the
        transaction that records its end: a chained run is never lost nor queued twice.
        `linked`: the jobs that run after others, read once for a batch of ends."""
        jobs = [j for j in linked if any(name == run.job for name, _ in j.after)]
        if not jobs:
            return
        marks = ", ".join("?" for _ in jobs)
        busy = {r[0] for r in conn.execute(
            f"SELECT DISTINCT job FROM runs WHERE job IN ({marks}) "
            "AND status IN ('queued', 'running')", [j.name for j in jobs])}  # fmt: skip
        for chained in chain_runs(run, jobs, busy, run.finished_at or 0.0):
            self._insert_run(conn, chained, "INSERT OR IGNORE")

    _OLD_RUNS = (
        "SELECT id FROM runs WHERE job = :job AND status NOT IN ('queued', 'running') "
        "AND dead = 0 AND id <= :last"
    )

    def _retain(self, conn: sqlite3.Connection, job: str, keep: int) -> int:
        """Delete `job`'s finished runs (not dead ones) older than its newest `keep` runs.
        One look first: a job with no more than `keep` runs (most ends) costs no DELETE."""
        last = conn.execute(
            "SELECT id FROM runs WHERE job = ? ORDER BY id DESC LIMIT 1 OFFSET ?", [job, keep]
        ).fetchone()
        if last is None:
            return 0
        params = {"job": job, "last": last[0]}
        conn.execute(f"DELETE FROM output WHERE run_id IN ({self._OLD_RUNS})", params)
        conn.execute(f"DELETE FROM notifications WHERE run_id IN ({self._OLD_RUNS})", params)
        return conn.execute(f"DELETE FROM runs WHERE id IN ({self._OLD_RUNS})", params).rowcount

    def append_output(self, run_id: int, data: bytes, wait_s: float | None = None) -> None:
        with self._tx(durable=False, wait_s=wait_s) as conn:
            conn.execute(
                "INSERT INTO output (run_id, seq, data) VALUES (?, "
                "(SELECT coalesce(max(seq), -1) + 1 FROM output WHERE run_id = ?), ?)",
                [run_id, run_id, data],
            )

    def read_output(self, run_id: int, after_seq: int = -1) -> list[tuple[int, bytes]]:
        with self._tx(write=False) as conn:
            rows = conn.execute(
                "SELECT seq, data FROM output WHERE run_id = ? AND seq > ? ORDER BY seq",
                [run_id, after_seq],
            )
            return [(r[0], bytes(r[1])) for r in rows]

    def add_notification(self, run_id: int, delivery: Delivery) -> None:
        """Record one notification's outcome for a run (show and history --json list them)."""
        with self._tx(durable=False) as conn:
            conn.execute(notification_insert("?"), notification_row(run_id, delivery))

    def notifications(self, run_ids: Sequence[int]) -> dict[int, list[Delivery]]:
        """The notifications recorded for these runs, oldest first, by run id."""
        ids = [i for i in run_ids if -(2**63) <= i < 2**63]
        if not ids:
            return {}
        with self._tx(write=False) as conn:
            marks = ", ".join("?" for _ in ids)
            found = conn.execute(
                f"SELECT {', '.join(NOTIFICATION_COLUMNS)} FROM notifications "
                f"WHERE run_id IN ({marks}) ORDER BY id",
                ids,
            ).fetchall()
        return notifications_by_run(found)

    def now(self) -> float:
        """This host's clock: the store is a file on it."""
        return time.time()

    def register_runner(self, info: RunnerInfo) -> int:
        with self._tx() as conn:  # the only runner: the runner lock has made sure of it
            conn.execute("DELETE FROM runner")
            conn.execute(_insert_sql("runner", RUNNER_COLUMNS), runner_row(info))
        return 0

    def heartbeat(
        self,
        owner: str,
        now: float,
        lease_s: float = DEFAULT_LEASE_S,
        epoch: int | None = None,
    ) -> bool:
        """Renew the lease (shown by status). Always True: the one runner holds its file
        lock, and its runs are judged by its process, so a late renewal (a laptop that slept)
        fences nothing."""
        with self._tx(durable=False) as conn:
            conn.execute(
                "UPDATE runner SET heartbeat_at = ?, lease_expires_at = ? WHERE owner = ?",
                [to_ms(now), to_ms(now + lease_s), owner],
            )
        return True

    def reap_expired(
        self, decide: Callable[[Run, Job | None], tuple[Run, Run | None]]
    ) -> list[tuple[Run, Run | None]]:
        """Nothing: runs are not leased here; recovery checks their owner in /proc."""
        return []

    def wait_for_change(
        self, timeout: float, wake_fd: int | None = None, kinds: Collection[str] | None = None
    ) -> None:
        """Sleep until `wake_fd` is readable (a command on this host nudged the runner with
        SIGUSR1, which writes to it) or `timeout` passes; the caller checks changed()
        (PRAGMA data_version) before it sleeps. `kinds`: every commit is every kind here."""
        if timeout > 0:
            import select  # the runner's alone: not at every command's start

            select.select([wake_fd] if wake_fd is not None else [], [], [], timeout)

    def runners(self) -> list[RunnerInfo]:
        with self._tx(write=False) as conn:
            return [runner_info(r) for r in conn.execute("SELECT * FROM runner ORDER BY since")]

    def runner_info(self) -> RunnerInfo | None:
        found = self.runners()
        return found[-1] if found else None

    def unregister_runner(self, owner: str) -> None:
        with self._tx() as conn:
            conn.execute("DELETE FROM runner WHERE owner = ?", [owner])

    def prune(self, older_than: float | None) -> int:
        gone = 0
        with self._tx() as conn:
            if older_than is not None:
                old = (
                    "SELECT id FROM runs WHERE created_at < ? AND dead = 0 "
                    "AND status NOT IN ('queued', 'running')"
                )
                for table in ("output", "notifications"):
                    conn.execute(f"DELETE FROM {table} WHERE run_id IN ({old})",
                                 [to_ms(older_than)])  # fmt: skip
                gone += conn.execute(
                    f"DELETE FROM runs WHERE id IN ({old})", [to_ms(older_than)]
                ).rowcount
            for name, keep in conn.execute("SELECT name, keep_runs FROM jobs").fetchall():
                gone += self._retain(conn, name, keep)
        return gone

    def changed(self, kinds: Collection[str] | None = None) -> int:
        """PRAGMA data_version: any commit of another connection, whatever its kind."""
        try:
            with self._lock:
                return int(self.conn.execute("PRAGMA data_version").fetchone()[0])
        except sqlite3.Error as exc:
            raise StoreError(f"store error on {str(self.path)!r}: {exc}") from exc

    # ---- read-only views for stats and metrics (Store.run_outcomes, run_tallies) ----------
    def run_outcomes(self, job: str | None = None, since: float | None = None) -> list[RunOutcome]:
        from jobctl.stats import RunOutcome

        sql, params = outcome_query(job, since, mark="?")
        with self._tx(write=False) as conn:
            cur = conn.cursor()
            cur.row_factory = None  # plain tuples: 100,000 rows convert in C
            return list(map(RunOutcome._make, cur.execute(sql, params)))

    def run_tallies(
        self, duration_bounds: Sequence[float], lateness_bounds: Sequence[float], now: float
    ) -> list[RunTally]:
        sql, params = tally_query(duration_bounds, lateness_bounds, now, mark="?",
                                  dead="r.dead", greatest="max")  # fmt: skip
        with self._tx(write=False) as conn:
            found = [tuple(row) for row in conn.execute(sql, params)]
        return [tally_from_row(r, len(duration_bounds), len(lateness_bounds)) for r in found]

    # ---- several jobs at once (jobctl apply, jobctl import) -------------------------------
    def apply_jobs(
        self, add: Sequence[Job], update: Sequence[Job], remove: Sequence[str]
    ) -> list[Job]:
        """See Store.apply_jobs: one BEGIN IMMEDIATE transaction."""
        out: list[Job] = []
        sets = ", ".join(f"{c} = :{c}" for c in JOB_COLUMNS if c != "name")
        with self._tx() as conn:
            for job in add:
                try:
                    cur = conn.execute(_insert_sql("jobs", JOB_COLUMNS), _row(JOB_COLUMNS, job))
                except sqlite3.IntegrityError as exc:
                    raise ConflictError(f"job {job.name!r} already exists") from exc
                out.append(job.copy_with(id=cur.lastrowid))
            for job in update:
                row = conn.execute("SELECT * FROM jobs WHERE name = ?", [job.name]).fetchone()
                if row is None:
                    raise NotFoundError(f"no job named {job.name!r}")
                job = keep_scheduling_state(_job(row), job)
                conn.execute(f"UPDATE jobs SET {sets} WHERE name = :name", _row(JOB_COLUMNS, job))
                out.append(job)
            for name in remove:
                if conn.execute("DELETE FROM jobs WHERE name = ?", [name]).rowcount:
                    conn.execute(
                        "UPDATE runs SET status = 'cancelled', error = 'job removed' "
                        "WHERE job = ? AND status = 'queued'",
                        [name],
                    )
        return out


def _copy_run(run: Run, **changes: Any) -> Run:
    return replace(run, **changes)
