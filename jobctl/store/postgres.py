"""PostgreSQL implementation of the Store (store/base.py), with psycopg 3 (synchronous).

One connection per store, in autocommit mode at the driver level so that no implicit
transaction ever stays open; every method is one explicit transaction (`conn.transaction()`,
BEGIN ... COMMIT), under a lock shared by the runner's threads. READ COMMITTED: compare-and-set
updates re-check their WHERE on the newest row version, read-modify-write takes FOR UPDATE,
and claim takes the queued runs it looks at with FOR UPDATE SKIP LOCKED.
Times are bigint milliseconds, as on SQLite, so the fire key compares exactly.
Schema: store/pg_schema.py, applied on first use under a transaction-level advisory lock.
Imported only for a postgresql:// store: SQLite users never import psycopg.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import select
import threading
import time
import weakref
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.pq import ExecStatus, TransactionStatus
from psycopg.rows import dict_row, tuple_row

from jobctl.errors import (
    ConflictError,
    FencedError,
    NotFoundError,
    StoreDataError,
    StoreError,
)
from jobctl.models import Job, Run
from jobctl.records import replace
from jobctl.store import pg_schema, rows
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
    JobLine,
    notification_insert,
    notification_row,
    notifications_by_run,
    released,
    to_ms,
)

if TYPE_CHECKING:
    from jobctl.stats import RunOutcome

CONNECT_TIMEOUT_S = 5
#: opening a store: a server that refuses us (restarting) is asked again this often until
#: CONNECT_TIMEOUT_S has passed; SPEC: a command exits 1 when the database "cannot be reached
#: within a connect timeout (5 s)", not at the first refusal
RECONNECT_STEP_S = 0.2
LOCK_TIMEOUT_S = 60.0  # how long a write waits for a row another transaction holds
#: a connection whose server stopped answering (network cut, blackholed) fails after about
#: this long instead of the kernel's minutes: sent data unacknowledged (tcp_user_timeout),
#: or an idle link whose keepalives go unanswered
DEAD_LINK_S = 5
#: the database clock in epoch milliseconds (every time that decides correctness on a shared
#: store is read here: due checks through the runner's clock offset, leases, heartbeats)
#: (floored: a cast rounds, and a reading half a millisecond ahead would undo OffsetClock's
#: promise that the runner's idea of this clock is never ahead of it)
DB_NOW_MS = "floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint"
#: claims take this transaction-level advisory lock: one claim at a time across the fleet,
#: so the overlap and mutex checks of `pick` see every run the others have started (two
#: transactions can never both pass them); claims are short, the lock is held for one
#: the fleet's claim lock (see claim: a claim in progress elsewhere holds the others')
CLAIM_LOCK_CALL = "pg_advisory_xact_lock(hashtextextended('jobctl claim ' || current_schema(), 0))"
#: a runner's lease is held (the run's epoch, the runner's row, its expiry by the DB clock)
LEASE_HELD = (
    f"EXISTS (SELECT 1 FROM runner w WHERE w.owner = %(_owner)s AND w.epoch = %(_epoch)s "
    f"AND w.lease_expires_at > {DB_NOW_MS})"
)


#: what the server says of a write's data, not of itself: retrying cannot help
DATA_ERRORS = (pg_errors.DataError, pg_errors.IntegrityError)


def _encode(kind: str, value: Any) -> Any:
    return _text(rows.encode(kind, value, bool))


def _row(columns: dict[str, str], obj: Job | Run) -> dict[str, Any]:
    return {c: _text(v) for c, v in rows.row(columns, obj, bool).items()}


def _text(value: Any) -> Any:
    """PostgreSQL's text cannot hold NUL: one (e.g. in an error naming a command that has
    one) is written as U+FFFD, the replacement character, not refused with the whole write."""
    if type(value) is str and "\x00" in value:
        return value.replace("\x00", "\ufffd")
    return value


def _job(row: dict[str, Any]) -> Job:
    return Job(id=row["id"], **{c: rows.decode(k, row[c]) for c, k in JOB_COLUMNS.items()})


#: a run's job, read with it (claim): its columns as "j_<column>"
_JOB_WITH_RUN = ", ".join(f'j.{c} AS "j_{c}"' for c in ["id", *JOB_COLUMNS])


def _run_and_job(row: dict[str, Any]) -> tuple[Run, Job | None]:
    """A row of runs LEFT JOIN jobs selected with _JOB_WITH_RUN: the run and its job (None:
    the job is gone)."""
    return _run(row), None if row["j_id"] is None else _job_of(row)


def _job_of(row: dict[str, Any]) -> Job:
    """The job of a row selected with _JOB_WITH_RUN (its "j_" columns)."""
    return Job(id=row["j_id"], **{c: rows.decode(k, row[f"j_{c}"]) for c, k in JOB_COLUMNS.items()})


def _run(row: dict[str, Any]) -> Run:
    return Run(id=row["id"], **{c: rows.decode(k, row[c]) for c, k in RUN_COLUMNS.items()})


def _insert_sql(
    table: str, columns: Sequence[str], conflict: str = "", returning: bool = True
) -> str:
    names = ", ".join(columns)
    marks = ", ".join(f"%({c})s" for c in columns)
    tail = " RETURNING id" if returning else ""
    return f"INSERT INTO {table} ({names}) VALUES ({marks}){conflict}{tail}"


def _one_line(exc: BaseException, secret: str | None) -> str:
    """psycopg's message on one line, without the password even if a server echoed it."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if secret:
        text = text.replace(secret, "***")
    return text


def _not_yet(exc: psycopg.Error) -> bool:
    """Whether `exc` says the server is not there yet (refused, closed on us, starting up or
    shutting down: a restart) rather than that it said no (authentication, no database)."""
    if getattr(exc, "sqlstate", None) == "57P03":  # cannot_connect_now
        return True
    text = str(exc).lower()
    return getattr(exc, "sqlstate", None) is None and any(
        w in text for w in ("refused", "closed the connection", "starting up", "shutting down")
    )


def describe_url(url: str) -> tuple[str, str | None]:
    """(the store as shown to users: postgresql://user@host:port/db, never the password;
    the password, to scrub from messages)."""
    try:
        info = conninfo_to_dict(url)
    except psycopg.Error:
        return re.sub(r"//([^:/@]*):[^@/]*@", r"//\1@", url.split("?", 1)[0]), None
    host = str(info.get("host") or "localhost")
    where = f"{info['user']}@{host}" if info.get("user") else host
    if info.get("port"):
        where += f":{info['port']}"
    db = info.get("dbname")
    shown = f"postgresql://{where}/{db}" if db else f"postgresql://{where}"
    password = info.get("password")
    return shown, str(password) if password else None


#: a statement of a script (see _script): its SQL, and its parameters or None
Statement = tuple[str, Any]
#: one statement's result in a script (see _script): its rows, and how many rows it changed
Result = tuple[list[dict[str, Any]], int]
_TUPLES_OK = ExecStatus.TUPLES_OK


class Prepared(str):
    """SQL that `_script` runs as a prepared statement of its connection: PREPAREd once per
    session (in the script that first uses it), then EXECUTEd, so that the server plans it
    once instead of at every claim and every record of ends (planning was about 0.6 ms of
    the server's 1.3 ms of CPU a claim). Its name comes from its text; its placeholders
    (%s or %(name)s, as psycopg's) become $1, $2... in the order of their first use."""

    name: str
    text: str  # with $n placeholders
    order: tuple[str | int, ...]  # the parameter (name, or position) of each $n

    def __new__(cls, sql: str) -> Prepared:
        self = super().__new__(cls, sql)
        self.name = "jobctl_" + hashlib.sha1(sql.encode()).hexdigest()[:16]
        order: list[str | int] = []

        def number(match: re.Match[str]) -> str:
            if match.group(0) == "%%":
                return "%"
            key: str | int = match.group(1) if match.group(1) is not None else len(order)
            if key not in order or isinstance(key, int):
                order.append(key)
            return f"${order.index(key) + 1}" if isinstance(key, str) else f"${len(order)}"

        self.text = re.sub(r"%\((\w+)\)s|%s|%%", number, sql)
        self.order = tuple(order)
        return self


@functools.lru_cache(maxsize=256)
def _prep(sql: str) -> Prepared:
    """The Prepared statement of this text (made once: its name and $n form cost a hash and a
    regex)."""
    return Prepared(sql)


#: the prepared statements of each connection (by name); None: unknown (after an error)
_PREPARED: weakref.WeakKeyDictionary[Any, set[str] | None] = weakref.WeakKeyDictionary()


#: records the pids and start times of a batch of runs (PostgresStore._started_sql)
_STARTED = Prepared(
    "UPDATE runs SET pid = v.pid, proc_start = v.proc_start, started_at = v.started_at "
    "FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[]) "
    "AS v(id, pid, proc_start, started_at) WHERE runs.id = v.id"
)


def _script(
    conn: psycopg.Connection[dict[str, Any]], statements: Sequence[Statement]
) -> list[Result]:
    """Run `statements` (SQL, parameters or None) in ONE round trip: bound on the client and
    sent as one simple query, whose results come back in order, one per statement. The
    runner's hot paths (claims, the record of ends, fires, reaping) use it instead of
    pipeline mode, which costs about 0.35 ms of client CPU a transaction plus 0.11 ms a
    statement (measured: 8 statements in a transaction, 1.34 ms of CPU pipelined, 0.19 ms as
    a script). Values are quoted by psycopg's own adapters for this connection
    (ClientCursor.mogrify). A `Prepared` statement is EXECUTEd (and PREPAREd first where
    this connection has not yet). On an error the server skips the rest and psycopg raises
    it; the caller's transaction is then rolled back by _tx, and this connection's prepared
    statements are made again at their next use (one may be what failed: e.g. a cached
    plan whose table changed)."""
    cur = psycopg.ClientCursor(conn)
    known = _PREPARED.get(conn, set())
    parts: list[str] = []
    skip: set[int] = set()  # the results of our PREPAREs and DEALLOCATEs
    if known is None:  # after an error: drop ours, whatever state they are in
        found = conn.execute("SELECT name FROM pg_prepared_statements "
                             "WHERE name LIKE 'jobctl\\_%'").fetchall()  # fmt: skip
        for row in found:
            skip.add(len(parts))
            parts.append(f"DEALLOCATE {row['name']}")
        known = set()
    made: set[str] = set()
    for text, args in statements:
        if isinstance(text, Prepared):
            if text.name not in known and text.name not in made:
                skip.add(len(parts))
                parts.append(f"PREPARE {text.name} AS {text.text}")
                made.add(text.name)
            if not text.order:
                parts.append(f"EXECUTE {text.name}")
                continue
            values = [args[key] for key in text.order]
            marks = ", ".join("%s" for _ in values)
            parts.append(cur.mogrify(f"EXECUTE {text.name}({marks})", values))
        else:
            parts.append(text if args is None else cur.mogrify(text, args))
    try:
        cur.execute("; ".join(parts))
    except BaseException:
        _PREPARED[conn] = None
        raise
    _PREPARED[conn] = known | made
    out: list[Result] = []
    i = 0
    while True:
        if i not in skip:
            result = cur.pgresult
            tuples = result is not None and result.status == _TUPLES_OK
            out.append((cur.fetchall() if tuples else [], cur.rowcount))
        i += 1
        if not cur.nextset():
            return out


_PURGE = purge_sql("%s")
_SUPERSEDED_DEAD = SUPERSEDED_DEAD.format(m="%s", no="false", yes="true")


class PostgresStore:
    """The store shared by several machines: their commands and any number of runners."""

    shared = True  # several runners at once, under leases (SPEC 8); no runner file lock

    def __init__(
        self,
        url: str,
        lock_timeout_s: float = LOCK_TIMEOUT_S,
        connect_timeout_s: int = CONNECT_TIMEOUT_S,
    ) -> None:
        """`lock_timeout_s`: how long a write waits for a row lock (or the migration lock)
        before it fails with StoreError; `connect_timeout_s`: how long to reach the server."""
        self.url = url
        self.where, self._secret = describe_url(url)
        self._lock_timeout_ms = max(1, round(lock_timeout_s * 1000))
        self._connect_timeout_s = connect_timeout_s
        self._lock = threading.RLock()  # the runner's threads share this connection
        #: commits seen from other connections, by the letter of their kind (see changed())
        self._changes = dict.fromkeys(pg_schema.CHANGE_LETTERS.values(), 0)
        self.conn: psycopg.Connection[dict[str, Any]] | None = None
        #: LISTENs for other connections' commits (changed(), wait_for_change()): its own
        #: connection, so that queries of the runner's threads never consume notifications
        self._listener: psycopg.Connection[Any] | None = None
        deadline = time.monotonic() + connect_timeout_s
        while True:  # a server restarting refuses us for a moment: "within the timeout"
            try:
                self._connect()
                break
            except psycopg.Error as exc:
                if not _not_yet(exc) or time.monotonic() + RECONNECT_STEP_S > deadline:
                    raise StoreError(
                        f"cannot open store {self.where}: {_one_line(exc, self._secret)}"
                    ) from None
                time.sleep(RECONNECT_STEP_S)

    def _open(self) -> psycopg.Connection[dict[str, Any]]:
        return psycopg.connect(
            self.url,
            autocommit=True,
            row_factory=dict_row,
            # no statement prepared by psycopg itself: a rollback of its (a transaction left
            # by an exception) then sends DEALLOCATE ALL, which took the scripts' prepared
            # statements (Prepared) with it, and the next claim failed; the hot statements
            # are prepared by _script, the others are planned each time
            prepare_threshold=None,
            connect_timeout=self._connect_timeout_s,
            keepalives=1,
            keepalives_idle=DEAD_LINK_S,
            keepalives_interval=1,
            keepalives_count=DEAD_LINK_S,
            tcp_user_timeout=DEAD_LINK_S * 1000,
        )

    def _connect(self) -> psycopg.Connection[dict[str, Any]]:
        conn = self._open()
        try:
            # one round trip (a simple query of several statements: no parameters), not six:
            # a runner reconnecting over a slow link must be back within its lease
            schema = conn.execute(  # (the SELECT first: its result is the one fetched)
                "SELECT current_schema() AS s; "
                f"SET lock_timeout = {self._lock_timeout_ms}; "
                # a session of ours cut off inside a transaction (a partition, a frozen
                # runner) must not hold its locks until the server's TCP gives up: the
                # server ends it after DEAD_LINK_S idle in the transaction
                f"SET idle_in_transaction_session_timeout = {DEAD_LINK_S * 1000}; "
                f"SET tcp_keepalives_idle = {DEAD_LINK_S}; "
                "SET tcp_keepalives_interval = 1; "
                f"SET tcp_keepalives_count = {DEAD_LINK_S}"
            ).fetchone()
            if schema is None or schema["s"] is None:
                raise StoreError(f"store {self.where} has no schema to use (check search_path)")
            self._migrate(conn)
            self._channel = sql.Identifier(f"jobctl.{schema['s']}")
            self._pid = conn.info.backend_pid  # our own notifications are not changes
        except BaseException:
            conn.close()
            raise
        self.conn = conn
        return conn

    def _migrate(self, conn: psycopg.Connection[dict[str, Any]]) -> None:
        """Create or upgrade the schema: at most one process at a time (advisory lock)."""
        version = self._version(conn)
        if version == pg_schema.SCHEMA_VERSION:
            return
        if version is not None and version > pg_schema.SCHEMA_VERSION:
            raise StoreError(
                f"store {self.where} has schema {version}, newer than this jobctl "
                f"understands ({pg_schema.SCHEMA_VERSION}); upgrade jobctl"
            )
        with conn.transaction():
            conn.execute(pg_schema.MIGRATE_LOCK)
            conn.execute(pg_schema.VERSION_TABLE)
            version = self._version(conn) or 0
            for number, name, statements in pg_schema.MIGRATIONS:
                if number <= version:
                    continue
                for statement in statements:
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO jobctl_schema (version, name) VALUES (%s, %s)", [number, name]
                )

    @staticmethod
    def _version(conn: psycopg.Connection[dict[str, Any]]) -> int | None:
        row = conn.execute("SELECT to_regclass('jobctl_schema') IS NOT NULL AS ok").fetchone()
        if not row or not row["ok"]:
            return None
        row = conn.execute("SELECT max(version) AS v FROM jobctl_schema").fetchone()
        return None if row is None else row["v"]

    def close(self) -> None:
        with self._lock:
            if self.conn is not None:
                self.conn.close()
            if self._listener is not None:
                self._listener.close()

    def moved(self) -> str | None:
        """A database is not a file that can be replaced under us: never moved."""
        return None

    def sync(self) -> None:
        """Every commit is durable already (the server's WAL)."""

    def _error(self, exc: psycopg.Error) -> StoreError:
        kind = StoreDataError if isinstance(exc, DATA_ERRORS) else StoreError
        return kind(f"store error on {self.where}: {_one_line(exc, self._secret)}")

    @contextmanager
    def _tx(
        self,
        wait_s: float | None = None,
        single: bool = False,
        scripted: bool = False,
    ) -> Iterator[psycopg.Connection[dict[str, Any]]]:
        """One transaction; a connection lost meanwhile (server restart) is reopened by the
        next transaction, never retried inside this one. `wait_s`: how long to wait for the
        connection our threads share (StoreError after it), and for row locks in it.
        `single`: the caller runs ONE statement, which autocommit makes its own transaction:
        one round trip instead of three (BEGIN, the statement, COMMIT); with `wait_s`, row
        locks are then waited for as by any statement (the server ends a session idle in a
        transaction after DEAD_LINK_S, so no lock is held for long). `scripted`: the runner's
        hot paths; the caller sends its own BEGIN and COMMIT in scripts (_script), a round
        trip each; a transaction still open when it leaves (an error, an early return) is
        rolled back here, so that no lock outlives the call."""
        if not self._lock.acquire(timeout=-1 if wait_s is None else wait_s):
            raise StoreError(f"store busy on {self.where}: gave up after {wait_s:g}s")
        try:
            conn = self.conn
            if conn is None or conn.closed or conn.broken:
                conn = self._connect()
            if single:
                yield conn
                return
            if scripted:
                try:
                    yield conn
                finally:
                    self._end_script(conn)
                return
            with conn.transaction():
                if wait_s is not None:
                    conn.execute(f"SET LOCAL lock_timeout = {max(1, round(wait_s * 1000))}")
                yield conn
        except psycopg.Error as exc:
            raise self._error(exc) from None
        finally:
            self._lock.release()

    @staticmethod
    def _end_script(conn: psycopg.Connection[dict[str, Any]]) -> None:
        """Roll back what a scripted transaction left open; a connection whose state is then
        unknown is closed (the next transaction opens another)."""
        if conn.closed or conn.info.transaction_status == TransactionStatus.IDLE:
            return
        try:
            conn.execute("ROLLBACK")
        except psycopg.Error:
            conn.close()

    # ---- jobs -------------------------------------------------------------
    def _with_last_runs(self, conn: psycopg.Connection[Any], jobs: list[Job]) -> list[Job]:
        if not jobs:
            return jobs
        rows = conn.execute(
            "SELECT r.* FROM runs r JOIN jobs j ON j.name = r.job WHERE r.id IN "
            "(SELECT max(id) FROM runs WHERE job = ANY(%s) GROUP BY job) "
            "AND r.created_at >= j.created_at",  # not a run of an earlier job of that name
            [[j.name for j in jobs]],
        )
        last = {row["job"]: _run(row) for row in rows}
        for job in jobs:
            job.last_run = last.get(job.name)
        return jobs

    def add_job(self, job: Job) -> Job:
        with self._tx() as conn:
            try:
                row = conn.execute(
                    _insert_sql("jobs", list(JOB_COLUMNS)), _row(JOB_COLUMNS, job)
                ).fetchone()
            except pg_errors.UniqueViolation:  # the transaction rolls back
                raise ConflictError(f"job {job.name!r} already exists") from None
            assert row is not None
            return job.copy_with(id=row["id"])

    def get_job(self, name: str) -> Job:
        with self._tx() as conn:
            row = conn.execute("SELECT * FROM jobs WHERE name = %s", [name]).fetchone()
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
            clauses.append("tags::jsonb @> jsonb_build_array(%s::text)")
            params.append(tag)
        if names is not None:
            clauses.append("name = ANY(%s)")
            params.append(list(names))
        if schedule is not None:
            clauses.append("lower(schedule) = lower(%s)")  # @reboot may be written @REBOOT
            params.append(schedule)
        if pinned:
            clauses.append("on_labels <> '[]'")  # as rows.encode writes an empty list
        sql = "SELECT * FROM jobs"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        with self._tx() as conn:
            jobs = [_job(r) for r in conn.execute(sql + ' ORDER BY name COLLATE "C"', params)]
            return self._with_last_runs(conn, jobs) if last_runs else jobs

    def job_lines(self, tag: str | None = None) -> list[JobLine]:
        sql, params = job_lines_query(
            tag, "%s", "j.tags::jsonb @> jsonb_build_array({mark}::text)", lateral=True
        )
        with self._tx(single=True) as conn, conn.cursor(row_factory=tuple_row) as cur:
            return list(map(JobLine, cur.execute(sql + ' ORDER BY j.name COLLATE "C"', params)))

    def job_names(self) -> list[str]:
        with self._tx(single=True) as conn:
            return [
                r["name"] for r in conn.execute('SELECT name FROM jobs ORDER BY name COLLATE "C"')
            ]

    def update_jobs(self, names: Sequence[str], change: Callable[[Job], Job]) -> list[Job]:
        sets = ", ".join(f"{c} = %({c})s" for c in JOB_COLUMNS if c != "name")
        out: list[Job] = []
        with self._tx() as conn:
            # every row locked at once, in name order (as fire_all does): two transactions
            # locking the same jobs in different orders deadlock (`pause b a` against a
            # runner recording fires of a and b)
            rows = {
                r["name"]: r
                for r in conn.execute(
                    "SELECT * FROM jobs WHERE name = ANY(%s) ORDER BY name FOR UPDATE",
                    [sorted(set(names))],
                )
            }
            for name in names:
                row = rows.get(name)
                if row is None:
                    raise NotFoundError(f"no job named {name!r}")
                job = change(self._with_last_runs(conn, [_job(row)])[0])
                conn.execute(
                    f"UPDATE jobs SET {sets} WHERE name = %(name)s", _row(JOB_COLUMNS, job)
                )
                out.append(job)
        return out

    def remove_job(self, name: str, purge: bool = False) -> None:
        with self._tx() as conn:
            row = conn.execute("SELECT created_at FROM jobs WHERE name = %s", [name]).fetchone()
            if row is None:
                raise NotFoundError(f"no job named {name!r}")
            conn.execute("DELETE FROM jobs WHERE name = %s", [name])
            # its waiting runs and pending retries must not run under a later job of that name
            conn.execute(
                "UPDATE runs SET status = 'cancelled', error = 'job removed' "
                "WHERE job = %s AND status = 'queued'",
                [name],
            )
            if purge:
                delete_finished_runs(conn, _PURGE, name, row["created_at"])

    def purge_runs(self, job: str, since: float) -> int:
        with self._tx() as conn:
            return delete_finished_runs(conn, _PURGE, job, to_ms(since))

    # ---- runs -------------------------------------------------------------
    def _insert_run(
        self, conn: psycopg.Connection[Any], run: Run, conflict: str = ""
    ) -> Run | None:
        row = conn.execute(
            _insert_sql("runs", list(RUN_COLUMNS), conflict), _row(RUN_COLUMNS, run)
        ).fetchone()
        return None if row is None else replace(run, id=row["id"])

    def fire(
        self, job: Job, runs: Sequence[Run], next_run_at: float | None, **job_changes: Any
    ) -> list[Run]:
        return self.fire_all([Fire(job, runs, next_run_at, job_changes)])[0]

    def fire_all(self, fires: Sequence[Fire]) -> list[list[Run]]:
        """See Store.fire_all: the compare-and-sets go out in one round trip (a script),
        then the runs of the fires that won and the COMMIT in another. Job rows are locked in
        name order, whatever the order of `fires` (due time): two runners, or a runner and a
        command, locking the same jobs in different orders deadlock (see update_jobs)."""
        conflict = " ON CONFLICT (job, scheduled_for, attempt) DO NOTHING"
        insert = _insert_sql("runs", list(RUN_COLUMNS), conflict)
        order = sorted(range(len(fires)), key=lambda i: fires[i].job.name)
        out: list[list[Run]] = [[] for _ in fires]
        plans: list[tuple[int, Job, list[Run]]] = []
        sets: list[Statement] = [("BEGIN", None)]
        for i in order:
            fire = fires[i]
            job, runs, next_run_at, job_changes = (fire.job, fire.runs, fire.next_run_at,
                                                   fire.changes)  # fmt: skip
            runs = fresh_fires(job, runs)
            changes = {"next_run_at": next_run_at, **job_changes}
            mark = fired_mark(job, runs)
            if mark != job.fired_through:
                changes["fired_through"] = mark
            params = {c: _encode(JOB_COLUMNS[c], v) for c, v in changes.items()}
            params["_name"], params["_expected"] = job.name, to_ms(job.next_run_at)
            params["_mark"] = to_ms(job.fired_through)
            # compare-and-set: under READ COMMITTED a concurrent update makes this statement
            # re-check its WHERE on the row the other transaction committed
            sets.append((
                f"UPDATE jobs SET {', '.join(f'{c} = %({c})s' for c in changes)} "
                "WHERE name = %(_name)s AND next_run_at IS NOT DISTINCT FROM "
                "%(_expected)s::bigint AND fired_through IS NOT DISTINCT FROM %(_mark)s::bigint",
                params,
            ))  # fmt: skip
            plans.append((i, job, runs))
        with self._tx(scripted=True) as conn:
            won = _script(conn, sets)[1:]
            inserts: list[Statement] = []
            made: list[tuple[int, Run]] = []  # (fire, run) of each insert, in order
            for (i, job, runs), (_, count) in zip(plans, won, strict=True):
                if count == 0:
                    continue  # another runner fired it, or the job changed
                for run in runs:
                    inserts.append((insert, _row(RUN_COLUMNS, run)))
                    made.append((i, run))
                if any(r.status == "skipped" for r in runs):  # skipped runs never finish
                    inserts.append(self._retain_sql({job.name: job.keep_runs}))
                    made.append((-1, runs[0]))
            results = _script(conn, [*inserts, ("COMMIT", None)])
            for (i, run), (rows, _) in zip(made, results, strict=False):
                if i >= 0 and rows:
                    out[i].append(replace(run, id=rows[0]["id"]))
        if sum(map(len, out)) >= self.ANALYZE_AFTER:
            self._analyze()
        return out

    #: runs fired in one batch after which the tables' statistics are refreshed at once
    ANALYZE_AFTER = 500

    def _analyze(self) -> None:
        """Refresh the planner's statistics of jobs and runs after a burst (thousands of
        jobs added, then fired at once): autovacuum gets to it only at its next round (up to
        a minute later), and meanwhile plans made for the tables' old sizes cost milliseconds
        a claim and an end (measured: the end's look-up of linked jobs read the whole jobs
        table; docs/benchmarks.md). ANALYZE samples a bounded number of rows. Not fatal: a
        role that does not own the tables gets a warning from the server and nothing else."""
        with suppress(StoreError), self._tx(single=True) as conn:
            conn.execute("ANALYZE jobs, runs")

    def add_run(self, run: Run) -> Run:
        with self._tx() as conn:
            try:
                inserted = self._insert_run(conn, run)
            except pg_errors.UniqueViolation:  # the transaction rolls back
                raise ConflictError(
                    f"run {run.job!r} attempt {run.attempt} of that fire already exists"
                ) from None
            assert inserted is not None
            return inserted

    def update_run(self, run_id: int, **fields: Any) -> Run:
        sets = ", ".join(f"{c} = %({c})s" for c in fields)
        params = {c: _encode(RUN_COLUMNS[c], v) for c, v in fields.items()}
        params["_id"] = run_id
        with self._tx(single=True) as conn:
            row = conn.execute(
                f"UPDATE runs SET {sets} WHERE id = %(_id)s RETURNING *", params
            ).fetchone()
            if row is None:
                raise NotFoundError(f"no run with id {run_id}")
            return _run(row)

    def mark_started(self, run: Run, wait_s: float | None = None) -> None:
        with self._tx(wait_s, single=True) as conn:
            conn.execute(
                "UPDATE runs SET pid = %s, proc_start = %s, started_at = %s WHERE id = %s",
                [run.pid, run.proc_start, to_ms(run.started_at), run.id],
            )

    def get_run(self, run_id: int) -> Run:
        if not -(2**63) <= run_id < 2**63:
            raise NotFoundError(f"no run with id {run_id}")
        with self._tx(single=True) as conn:
            row = conn.execute("SELECT * FROM runs WHERE id = %s", [run_id]).fetchone()
            if row is None:
                raise NotFoundError(f"no run with id {run_id}")
            return _run(row)

    def _where(self, where: RunFilter) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if where.job is not None:
            clauses.append("job = %s")
            params.append(where.job)
        if where.jobs is not None:
            clauses.append("job = ANY(%s)")
            params.append(list(where.jobs))
        if where.statuses:
            clauses.append(rows.status_clause(where.statuses, params, "%s"))
        if where.since is not None:
            clauses.append("created_at >= %s")
            params.append(to_ms(where.since))
        if where.dead is not None:
            clauses.append("dead" if where.dead else "NOT dead")
        if where.owner is not None:
            clauses.append("owner = %s")
            params.append(where.owner)
        if where.owned is not None:
            clauses.append("owner IS NOT NULL" if where.owned else "owner IS NULL")
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), params

    def list_runs(self, where: RunFilter) -> list[Run]:
        sql, params = self._where(where)
        sql = "SELECT * FROM runs" + sql + " ORDER BY id DESC"
        if where.limit is not None:
            sql += f" LIMIT {int(where.limit)}"
        with self._tx(single=True) as conn:
            return [_run(r) for r in conn.execute(sql, params)]

    def count_runs(self, where: RunFilter) -> int:
        sql, params = self._where(where)
        with self._tx(single=True) as conn:
            row = conn.execute("SELECT count(*) AS n FROM runs" + sql, params).fetchone()
            return int(row["n"]) if row else 0

    def update_runs(self, run_ids: Sequence[int], **fields: Any) -> int:
        sets = ", ".join(f"{c} = %({c})s" for c in fields)
        params = {c: _encode(RUN_COLUMNS[c], v) for c, v in fields.items()}
        params["_ids"] = [i for i in run_ids if -(2**63) <= i < 2**63]
        with self._tx(single=True) as conn:
            sql = f"UPDATE runs SET {sets} WHERE id = ANY(%(_ids)s::bigint[])"
            return conn.execute(sql, params).rowcount

    # ---- the runner's side ------------------------------------------------------
    def due_jobs(self, now: float, limit: int = 1000) -> list[Job]:
        with self._tx(single=True) as conn:
            rows = conn.execute(
                "SELECT * FROM jobs WHERE state = 'active' AND next_run_at <= %s "
                "ORDER BY next_run_at LIMIT %s",
                [to_ms(now), limit],
            )
            return [_job(r) for r in rows]

    def next_fires(self, limit: int) -> list[tuple[float, str]]:
        with self._tx(single=True) as conn, conn.cursor(row_factory=tuple_row) as cur:
            rows = cur.execute(
                "SELECT next_run_at, name FROM jobs WHERE state = 'active' "
                "AND next_run_at <= %s ORDER BY next_run_at LIMIT %s",
                [to_ms(FAR_FUTURE), limit],
            )
            return [(r[0] / 1000, r[1]) for r in rows]

    def next_wakeup(self, now: float) -> float | None:
        with self._tx(single=True) as conn:
            row = conn.execute(
                "SELECT (SELECT min(next_run_at) FROM jobs WHERE state = 'active') AS a, "
                "(SELECT min(not_before) FROM runs WHERE status = 'queued' "
                "AND not_before > %s) AS b",
                [to_ms(now)],
            ).fetchone()
            values = [v for v in (row or {}).values() if v is not None]
            return min(values) / 1000 if values else None

    CLAIM_PAGE = 1  # first page of queued runs looked at (one per free worker), doubling
    CLAIM_TRIES = 3  # claims made again when a conflicting run started meanwhile (see claim)

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
        """As SQLite's claim, with the overlap and mutex rules held across the fleet. The runs
        are read and `pick` decides without any fleet-wide lock (the queued runs offered are
        locked, FOR UPDATE SKIP LOCKED, so two runners never offer the same); then one round
        trip takes the fleet's claim lock (CLAIM_LOCK_CALL), marks the picked runs running
        and commits, so the lock is held for what the server does in that round trip only,
        never across a client's round trips: a runner behind a slow link, frozen or cut off
        mid-claim holds no other runner's claims (docs/chaos.md, finding 3). That UPDATE
        checks that no run which would conflict with the picked ones (a running run of a
        picked job whose overlap is not `allow`, or of a job sharing one of their mutexes)
        started since they were read; if one did, it claims nothing and the claim is made
        again (at most CLAIM_TRIES times). With `epoch` (a runner's), nothing is claimed
        unless that lease holds, and the runs claimed carry it (see finish_run)."""
        for _ in range(self.CLAIM_TRIES):
            claimed = self._claim_once(owner, host, now, limit, pick, epoch, due_by)
            if claimed is not None:
                return claimed
        return []

    def _claim_once(
        self,
        owner: str,
        host: str,
        now: float,
        limit: int,
        pick: Picker,
        epoch: int | None,
        due_by: float | None = None,
    ) -> list[tuple[Run, Job]] | None:
        """One claim (see claim); None when a conflicting run started meanwhile."""
        now_ms = to_ms(now)
        fence = {"_owner": owner, "_epoch": epoch}
        mine = "r.not_before <= %(now)s AND (r.owner IS NULL OR r.owner = %(owner)s)"
        # the offered runs come with their jobs (one round trip, not two)
        queued_with_jobs = (f"SELECT r.*, {_JOB_WITH_RUN} FROM runs r LEFT JOIN jobs j "
                            f"ON j.name = r.job WHERE r.status = 'queued' AND {mine} ")  # fmt: skip
        args: dict[str, Any] = {"now": now_ms, "owner": owner}
        size, offset = max(self.CLAIM_PAGE, limit), 0

        def page_sql() -> str:
            # the page is chosen from runs alone, then joined with its jobs: the join never
            # sees more rows than the page, whatever plan the statistics lead to (stale ones,
            # right after thousands of runs were fired, made the planner join the whole queue
            # before sorting: 25-50 ms a claim with 5,000 queued). LIMIT and OFFSET are
            # written into the statement: as parameters, the generic plan that a prepared
            # statement switches to does not know the page is small (1.3 ms a claim)
            return (f"SELECT r.*, {_JOB_WITH_RUN} FROM (SELECT * FROM runs r WHERE "
                    f"r.status = 'queued' AND {mine} ORDER BY r.not_before, r.id "
                    f"LIMIT {int(size)} OFFSET {int(offset)} FOR UPDATE SKIP LOCKED) r "
                    "LEFT JOIN jobs j ON j.name = r.job ORDER BY r.not_before, r.id")  # fmt: skip

        # the lease check and the first reads go out in one round trip (a script)
        with self._tx(scripted=True) as conn:
            _, (held_rows, _), (running_rows, _), (page_rows, _) = _script(conn, [
                ("BEGIN", None),
                (_prep("SELECT " + (f"{LEASE_HELD} AS ok" if epoch is not None
                                    else "true AS ok")), fence),
                # pick needs who runs (job, id, fire), with the jobs of those that hold a mutex;
                # and whether a job of theirs is replaced by a waiting run (overlap=replace)
                (_prep(f"SELECT r.id AS r_id, r.job AS r_job, r.scheduled_for AS r_fire, "
                       f"y.overlap = 'replace' AS "
                       f"r_replace, {_JOB_WITH_RUN} FROM runs r LEFT JOIN jobs y ON y.name = "
                       "r.job LEFT JOIN jobs j ON j.name = r.job AND j.mutexes != '[]' "
                       "WHERE r.status = 'running'"), None),
                (_prep(page_sql()), args),
            ])  # fmt: skip
            if not held_rows or not held_rows[0]["ok"]:
                return []  # fenced: the runner finds out at its next lease renewal
            running = [Run(job=r["r_job"], scheduled_for=r["r_fire"] / 1000, status="running",
                           id=r["r_id"]) for r in running_rows]  # fmt: skip
            jobs: dict[str, Job] = {row["j_name"]: _job_of(row) for row in running_rows
                                    if row["j_id"] is not None}  # fmt: skip
            replacing: list[dict[str, Any]] = []
            if any(row["r_replace"] for row in running_rows):
                # due runs waiting to replace a running run of their job are always offered,
                # wherever they stand in the queue (see SQLiteStore.claim): a round trip of
                # their own, only while a job with overlap=replace runs
                [(replacing, _)] = _script(conn, [(
                    f"{queued_with_jobs} AND r.job = ANY(%(replaced)s::text[]) "
                    "ORDER BY r.not_before, r.id FOR UPDATE OF r SKIP LOCKED",
                    {**args, "replaced": sorted({row["r_job"] for row in running_rows
                                                 if row["r_replace"]})},
                )])  # fmt: skip
            looked_up: set[str] = set()  # jobs read and not found (gone)

            def offered(rows: list[dict[str, Any]]) -> list[Run]:
                out = []
                for run, job in map(_run_and_job, rows):
                    out.append(run)
                    if job is not None:
                        jobs[job.name] = job
                return out

            queued = offered(replacing)
            while True:  # page through the due queue until `pick` has enough (or it ends)
                got = offered(page_rows)
                offset += len(got)
                seen = {r.id for r in queued}
                queued = sorted(
                    queued + [r for r in got if r.id not in seen],
                    key=lambda r: (r.not_before, r.id or 0),
                )
                if not queued:
                    return []
                # a job not read with its run was removed meanwhile: look once (pick then
                # cancels its runs if it is gone)
                names = {r.job for r in queued} - jobs.keys() - looked_up
                if names:
                    [(found, _)] = _script(conn, [("SELECT * FROM jobs WHERE name = ANY(%s)",
                                                   [sorted(names)])])  # fmt: skip
                    jobs.update((j.name, j) for j in map(_job, found))
                    looked_up |= names
                start, cancel = pick(queued, running, jobs, limit)
                if len(start) >= limit or len(got) < size:
                    break
                if due_by is not None and got[-1].not_before > due_by:
                    break  # the rest is not due by then: nothing more to claim ahead
                size = min(2 * size, 1024)
                [(page_rows, _)] = _script(conn, [(page_sql(), args)])
            # one round trip from here: the lock, the writes and the COMMIT go out together
            last: list[Statement] = [(f"SELECT {CLAIM_LOCK_CALL}", None)]
            reasons: dict[str, list[int | None]] = {}  # (pick gives it; none: job gone)
            for run in cancel:
                reasons.setdefault(run.error or "job removed", []).append(run.id)
            for reason, ids in reasons.items():
                last.append((
                    "UPDATE runs SET status = 'cancelled', error = %s, "
                    "finished_at = %s WHERE id = ANY(%s) AND status = 'queued'",
                    [reason, now_ms, ids],
                ))  # fmt: skip
            if not start:
                _script(conn, [*last, ("COMMIT", None)])
                return []
            # the lease is checked again as the runs become ours: a claim whose round trips
            # outlasted the lease (a slow link) commits nothing (found by the chaos suite)
            where = " AND " + LEASE_HELD if epoch is not None else ""
            # read under the lock (a fresh snapshot: every claim committed before it): no
            # run that conflicts with the picked ones started since they were read
            overlapping = sorted({r.job for r in start if jobs[r.job].overlap != "allow"})
            mutexes = sorted({m for r in start for m in jobs[r.job].mutexes})
            params = {**fence, "host": host, "ids": [run.id for run in start],
                      "seen": [r.id for r in running], "overlapping": overlapping,
                      "mutexes": mutexes}  # fmt: skip
            if overlapping or mutexes:
                where += (
                    " AND NOT EXISTS (SELECT 1 FROM runs x JOIN jobs j ON j.name = x.job "
                    "WHERE x.status = 'running' AND x.id <> ALL(%(seen)s::bigint[]) AND "
                    "(x.job = ANY(%(overlapping)s::text[]) OR (j.mutexes != '[]' AND "
                    "j.mutexes::jsonb ?| %(mutexes)s::text[])))"
                )
            *_, (claimed, _), _ = _script(conn, [
                *last,
                (_prep("UPDATE runs SET status = 'running', owner = %(_owner)s, host = "
                       "%(host)s, lease_epoch = %(_epoch)s WHERE id = ANY(%(ids)s::bigint[]) "
                       f"AND status = 'queued'{where} RETURNING id"), params),
                ("COMMIT", None),
            ])  # fmt: skip
        won = {row["id"] for row in claimed}
        if not won:  # our picks are locked by us, still queued: a conflict or a lost lease
            return None if epoch is None or self._lease_holds(owner, epoch) else []
        return [
            (replace(run, status="running", owner=owner, host=host), jobs[run.job])
            for run in start
            if run.id in won
        ]

    def _lease_holds(self, owner: str, epoch: int) -> bool:
        with self._tx(single=True) as conn:
            row = conn.execute(
                f"SELECT {LEASE_HELD} AS ok", {"_owner": owner, "_epoch": epoch}
            ).fetchone()
        return bool(row and row["ok"])

    def finish_run(
        self,
        run: Run,
        followup: Run | None = None,
        keep_runs: int | None = None,
        fence: tuple[str, int] | None = None,
    ) -> Run:
        """As SQLite's; with `fence` (the runner's owner and epoch) the end is recorded only
        while the run is still `running` under that lease and the lease holds by the
        database's clock: FencedError otherwise (nothing written)."""
        if not self.finish_runs([(run, followup, keep_runs)], fence=fence)[0]:
            raise FencedError(
                f"run {run.id}'s end refused: this runner's lease on it is gone "
                "(expired or taken over)"
            )
        return run

    def finish_runs(
        self,
        ends: Sequence[End],
        fence: tuple[str, int] | None = None,
        started: Sequence[Run] = (),
    ) -> list[bool]:
        """See Store.finish_runs. Two round trips (scripts): the updates (fenced), then the
        retries, chained runs, retention and COMMIT; a fenced end is skipped with its retry,
        the others are written."""
        written: list[bool] = []
        keep: dict[str, int] = {}
        linked: list[Job] | None = None
        conflict = " ON CONFLICT (job, scheduled_for, attempt) DO NOTHING"
        insert = _insert_sql("runs", list(RUN_COLUMNS), conflict, returning=False)
        first: list[Statement] = [
            ("BEGIN", None),
            # the jobs that run after others (--after): read with the updates, no round trip
            # of its own (the partial index jobs_linked: nothing to read, mostly)
            (_prep("SELECT * FROM jobs WHERE after != '[]'"), None),
        ]
        if started:
            first.append(self._started_sql(started))
        # every end in one UPDATE (one plan, one firing of the notify trigger), its rows
        # typed by the table itself (jsonb_populate_recordset); fenced row by row
        where = "runs.id = v.id"
        params: dict[str, Any] = {
            "_ends": json.dumps([{**_row(RUN_COLUMNS, run), "id": run.id} for run, _, _ in ends])
        }
        if fence is not None:
            where += " AND runs.status = 'running' AND runs.owner = %(_owner)s "
            where += "AND runs.lease_epoch = %(_epoch)s AND " + LEASE_HELD
            params.update(_owner=fence[0], _epoch=fence[1])
        sets = ", ".join(f"{c} = v.{c}" for c in RUN_COLUMNS)
        update = (f"UPDATE runs SET {sets} FROM jsonb_populate_recordset(NULL::runs, "
                  f"%(_ends)s::jsonb) v WHERE {where} RETURNING runs.id")  # fmt: skip
        first.append((_prep(update), params))
        with self._tx(scripted=True) as conn:
            results = _script(conn, first)
            updated = {row["id"] for row in results[-1][0]}
            then: list[Statement] = []
            for run, followup, keep_runs in ends:
                ok = fence is None or run.id in updated
                written.append(ok)
                if not ok:
                    continue
                if supersedes_dead(run):
                    fire = [run.job, to_ms(run.scheduled_for)] * 2
                    then.append((_SUPERSEDED_DEAD, fire))
                if followup is not None:
                    then.append((insert, _row(RUN_COLUMNS, followup)))
                if chains_from(run, followup):  # (rare: reads of its own, in the transaction)
                    linked = linked if linked is not None else [_job(r) for r in results[1][0]]
                    self._chain(conn, run, linked)
                if keep_runs is not None:
                    keep[run.job] = keep_runs
            if keep:
                then.append(self._retain_sql(keep))
            _script(conn, [*then, ("COMMIT", None)])
        return written

    def mark_started_all(self, runs: Sequence[Run]) -> None:
        """One statement (autocommit): one round trip for the batch."""
        with self._tx(single=True) as conn:
            self._mark_started(conn, runs)

    def release_runs(self, run_ids: Sequence[int], fence: tuple[str, int] | None = None) -> int:
        """One statement (autocommit); with `fence`, the runs go back only while they are
        that runner's under a lease that still holds (a runner whose lease expired may have
        had them reaped and retried by another: they are not queued again)."""
        params: dict[str, Any] = {"_ids": [i for i in run_ids if -(2**63) <= i < 2**63]}
        where = ""
        if fence is not None:
            where = " AND owner = %(_owner)s AND lease_epoch = %(_epoch)s AND " + LEASE_HELD
            params.update(_owner=fence[0], _epoch=fence[1])
        with self._tx(single=True) as conn:
            return conn.execute(
                f"UPDATE runs SET {released(DB_NOW_MS)}, lease_epoch = NULL "
                f"WHERE id = ANY(%(_ids)s::bigint[]) AND status = 'running'{where}",
                params,
            ).rowcount

    def _mark_started(self, conn: psycopg.Connection[Any], runs: Sequence[Run]) -> None:
        conn.cursor().execute(*self._started_sql(runs))

    @staticmethod
    def _started_sql(runs: Sequence[Run]) -> Statement:
        """The statement that records the pids and start times of `runs`."""
        return (
            _STARTED,
            [
                [r.id for r in runs],
                [r.pid for r in runs],
                [r.proc_start for r in runs],
                [to_ms(r.started_at) for r in runs],
            ],
        )

    def _chain(
        self, conn: psycopg.Connection[Any], run: Run, linked: Sequence[Job] | None = None
    ) -> None:
        """As SQLiteStore._chain: the downstream runs, in the transaction of the end.
        `linked`: the jobs that run after others, read already (a batch of ends)."""
        if linked is None:
            found = conn.execute("SELECT * FROM jobs WHERE after != '[]' AND strpos(after, %s) "
                                 "> 0", [json.dumps(run.job)]).fetchall()  # fmt: skip
            linked = [_job(r) for r in found]
        jobs = [j for j in linked if any(name == run.job for name, _ in j.after)]
        if not jobs:
            return
        busy = {r["job"] for r in conn.execute(
            "SELECT DISTINCT job FROM runs WHERE job = ANY(%s) "
            "AND status IN ('queued', 'running')", [[j.name for j in jobs]])}  # fmt: skip
        conflict = " ON CONFLICT (job, scheduled_for, attempt) DO NOTHING"
        for chained in chain_runs(run, jobs, busy, run.finished_at or 0.0):
            self._insert_run(conn, chained, conflict)

    _OLD_RUNS = (
        "SELECT r.id FROM runs r JOIN unnest(%(jobs)s::text[], %(keeps)s::int[]) AS k(job, keep) "
        "ON r.job = k.job WHERE r.status NOT IN ('queued', 'running') AND NOT r.dead "
        "AND r.id < coalesce((SELECT x.id FROM runs x WHERE x.job = k.job "
        "ORDER BY x.id DESC LIMIT 1 OFFSET k.keep), -1) + 1"
    )

    def _retain(self, conn: psycopg.Connection[Any], keep: dict[str, int]) -> int:
        """Apply keep_runs (job -> how many) to jobs: their old runs and their output, in one
        statement (one for a whole batch of ends); how many runs went."""
        if not keep:
            return 0
        row = conn.cursor().execute(*self._retain_sql(keep)).fetchone()
        return int(row["gone"]) if row else 0

    def _retain_sql(self, keep: dict[str, int]) -> Statement:
        """The statement of _retain."""
        params = {"jobs": list(keep), "keeps": list(keep.values())}
        return (
            f"WITH old AS ({self._OLD_RUNS}), "
            "o AS (DELETE FROM output WHERE run_id IN (SELECT id FROM old)), "
            "n AS (DELETE FROM notifications WHERE run_id IN (SELECT id FROM old)), "
            "r AS (DELETE FROM runs WHERE id IN (SELECT id FROM old) RETURNING 1) "
            "SELECT count(*) AS gone FROM r",
            params,
        )

    def append_output(self, run_id: int, data: bytes, wait_s: float | None = None) -> None:
        with self._tx(wait_s, single=True) as conn:
            conn.execute(
                "INSERT INTO output (run_id, seq, data) VALUES (%s, "
                "(SELECT coalesce(max(seq), -1) + 1 FROM output WHERE run_id = %s), %s)",
                [run_id, run_id, data],
            )

    def read_output(self, run_id: int, after_seq: int = -1) -> list[tuple[int, bytes]]:
        if not -(2**63) <= run_id < 2**63:
            return []
        with self._tx(single=True) as conn:
            rows = conn.execute(
                "SELECT seq, data FROM output WHERE run_id = %s AND seq > %s ORDER BY seq",
                [run_id, after_seq],
            )
            return [(r["seq"], bytes(r["data"])) for r in rows]

    def add_notification(self, run_id: int, delivery: Delivery) -> None:
        """Record one notification's outcome for a run (show and history --json list them)."""
        with self._tx(single=True) as conn:
            conn.execute(notification_insert("%s"), notification_row(run_id, delivery))

    def notifications(self, run_ids: Sequence[int]) -> dict[int, list[Delivery]]:
        """The notifications recorded for these runs, oldest first, by run id."""
        ids = [i for i in run_ids if -(2**63) <= i < 2**63]
        if not ids:
            return {}
        with self._tx() as conn:
            cur = conn.cursor(row_factory=tuple_row)
            found = cur.execute(
                f"SELECT {', '.join(NOTIFICATION_COLUMNS)} FROM notifications "
                "WHERE run_id = ANY(%s) ORDER BY id",
                [ids],
            ).fetchall()
        return notifications_by_run(found)

    def now(self) -> float:
        """The database's clock (clock_timestamp()), epoch seconds."""
        with self._tx(single=True) as conn:
            row = conn.execute(f"SELECT {DB_NOW_MS} AS t").fetchone()
            assert row is not None
            return int(row["t"]) / 1000

    def register_runner(self, info: RunnerInfo) -> int:
        """Insert (or replace) the runner's row under a new epoch, its heartbeat and lease
        read from the database's clock (the lease lasts as long as `info`'s). Returns the
        epoch: the runs this registration claims carry it."""
        lease_ms = to_ms((info.lease_expires_at or info.heartbeat_at + DEFAULT_LEASE_S)
                         - info.heartbeat_at)  # fmt: skip
        cols = [c for c in rows.RUNNER_COLUMNS if c not in ("heartbeat_at", "lease_expires_at")]
        values = rows.runner_row(info)
        with self._tx() as conn:
            row = conn.execute(
                f"INSERT INTO runner ({', '.join(cols)}, heartbeat_at, lease_expires_at, epoch) "
                f"SELECT {', '.join(f'%({c})s' for c in cols)}, t, t + %(_lease)s, "
                f"nextval('jobctl_epoch') FROM (SELECT {DB_NOW_MS} AS t) now "
                "ON CONFLICT (owner) DO UPDATE SET "
                + ", ".join(f"{c} = excluded.{c}" for c in rows.RUNNER_COLUMNS if c != "owner")
                + ", epoch = excluded.epoch RETURNING epoch",
                {**values, "_lease": lease_ms},
            ).fetchone()
            assert row is not None
            return int(row["epoch"])

    def heartbeat(
        self,
        owner: str,
        now: float,
        lease_s: float = DEFAULT_LEASE_S,
        epoch: int | None = None,
    ) -> bool:
        """Renew the runner's lease by the database's clock (`now` is not used): True while
        the lease held, False once it had expired or the row is gone (the runner is fenced:
        its runs are, or will be, taken over; it must re-register)."""
        with self._tx(single=True) as conn:
            row = conn.execute(
                f"UPDATE runner SET heartbeat_at = t, lease_expires_at = t + %(_lease)s "
                f"FROM (SELECT {DB_NOW_MS} AS t) now WHERE owner = %(_owner)s "
                "AND (%(_epoch)s::bigint IS NULL OR epoch = %(_epoch)s) "
                "AND lease_expires_at > t RETURNING epoch",
                {"_owner": owner, "_epoch": epoch, "_lease": to_ms(lease_s)},
            ).fetchone()
            return row is not None

    def renew_lease(
        self, owner: str, lease_s: float, epoch: int | None = None
    ) -> tuple[bool, float]:
        """heartbeat() and now() in one round trip: whether the lease held (and is renewed),
        and the database's clock when it was (LeaseKeeper.renew: a renewal over a slow link
        must not take two round trips)."""
        with self._tx(single=True) as conn:
            row = conn.execute(
                f"WITH t AS (SELECT {DB_NOW_MS} AS t), u AS (UPDATE runner SET heartbeat_at = "
                "t.t, lease_expires_at = t.t + %(_lease)s FROM t WHERE owner = %(_owner)s "
                "AND (%(_epoch)s::bigint IS NULL OR epoch = %(_epoch)s) "
                "AND lease_expires_at > t.t RETURNING 1) "
                "SELECT t.t, EXISTS (SELECT 1 FROM u) AS held FROM t",
                {"_owner": owner, "_epoch": epoch, "_lease": to_ms(lease_s)},
            ).fetchone()
        assert row is not None
        return bool(row["held"]), int(row["t"]) / 1000

    def reap_expired(
        self, decide: Callable[[Run, Job | None], tuple[Run, Run | None]]
    ) -> list[tuple[Run, Run | None]]:
        """Runs claimed under a lease that no longer holds by the database's clock (their
        runner's lease expired, or it re-registered since): each is recorded as `decide`
        says (abandoned, and its retry), once across the fleet (the runs are locked FOR
        UPDATE SKIP LOCKED, and written only while still `running` under that epoch)."""
        out: list[tuple[Run, Run | None]] = []
        conflict = " ON CONFLICT (job, scheduled_for, attempt) DO NOTHING"
        insert = _insert_sql("runs", list(RUN_COLUMNS), conflict, returning=False)
        # two round trips (scripts) however many runs: the expired runs locked and read with
        # their jobs; then every write and the COMMIT. The rows stay locked (and skipped by
        # the other reapers) for as long as the transaction lasts, so it must not take a
        # round trip a run: a reaper behind a slow link held a dead runner's runs for 13 s
        # that way, and nobody else could take them over (docs/chaos.md, run I)
        with self._tx(scripted=True) as conn:
            _, (found, _) = _script(conn, [("BEGIN", None), (
                f"SELECT r.*, {_JOB_WITH_RUN} FROM runs r LEFT JOIN jobs j ON j.name = r.job "
                "WHERE r.status = 'running' AND r.lease_epoch IS NOT NULL "
                "AND NOT EXISTS (SELECT 1 FROM runner w WHERE w.owner = r.owner "
                f"AND w.epoch = r.lease_epoch AND w.lease_expires_at > {DB_NOW_MS}) "
                "ORDER BY r.id FOR UPDATE OF r SKIP LOCKED", None)])  # fmt: skip
            if not found:
                return out
            writes: list[Statement] = []
            keep: dict[str, int] = {}
            for row in found:
                run, job = _run_and_job(row)
                final, retry = decide(run, job)
                fields = _row(RUN_COLUMNS, final)
                sets = ", ".join(f"{c} = %({c})s" for c in fields)
                writes.append((f"UPDATE runs SET {sets} WHERE id = %(_id)s",
                               {**fields, "_id": run.id}))  # fmt: skip
                if supersedes_dead(final):  # as finish_runs: one dead mark per fire
                    fire = [final.job, to_ms(final.scheduled_for)] * 2
                    writes.append((_SUPERSEDED_DEAD, fire))
                if retry is not None:
                    writes.append((insert, _row(RUN_COLUMNS, retry)))
                if chains_from(final, retry):  # (rare: reads of its own, in the transaction)
                    _script(conn, writes)
                    writes = []
                    self._chain(conn, final)
                if job is not None:
                    keep[run.job] = job.keep_runs
                out.append((final, retry))
            if keep:
                writes.append(self._retain_sql(keep))
            # rows of runners whose lease expired long ago and that hold nothing any more
            writes.append((
                f"DELETE FROM runner w WHERE w.lease_expires_at < {DB_NOW_MS} - 86400000 "
                "AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.owner = w.owner "
                "AND r.status = 'running')", None))  # fmt: skip
            _script(conn, [*writes, ("COMMIT", None)])
        return out

    def runners(self) -> list[RunnerInfo]:
        with self._tx(single=True) as conn:
            found = conn.execute("SELECT * FROM runner ORDER BY since, owner").fetchall()
        return [rows.runner_info(r) for r in found]

    def runner_info(self) -> RunnerInfo | None:
        found = self.runners()
        return found[-1] if found else None

    def unregister_runner(self, owner: str) -> None:
        with self._tx(single=True) as conn:
            conn.execute("DELETE FROM runner WHERE owner = %s", [owner])

    def prune(self, older_than: float | None) -> int:
        gone = 0
        with self._tx() as conn:
            if older_than is not None:
                old = (
                    "SELECT id FROM runs WHERE created_at < %s AND NOT dead "
                    "AND status NOT IN ('queued', 'running')"
                )
                for table in ("output", "notifications"):
                    conn.execute(f"DELETE FROM {table} WHERE run_id IN ({old})",
                                 [to_ms(older_than)])  # fmt: skip
                gone += conn.execute(
                    f"DELETE FROM runs WHERE id IN ({old})", [to_ms(older_than)]
                ).rowcount
            rows = conn.execute("SELECT name, keep_runs FROM jobs").fetchall()
            gone += self._retain(conn, {row["name"]: row["keep_runs"] for row in rows})
        return gone

    def _listen(self) -> psycopg.Connection[Any]:
        """The LISTEN connection, (re)opened on demand; commands never open it."""
        listener = self._listener
        if listener is None or listener.closed or listener.broken:
            if listener is not None:  # we may have missed some while disconnected
                self._changes = {k: n + 1 for k, n in self._changes.items()}
                listener.close()
            listener = self._open()
            listener.execute(sql.SQL("LISTEN {}").format(self._channel))
            self._listener = listener
        return listener

    def changed(self, kinds: Collection[str] | None = None) -> int:
        """How many commits of `kinds` (None: any) that changed jobs or runs this store has
        heard of: their triggers NOTIFY this schema's channel with the kinds as payload,
        which the store's own LISTEN connection hears from the first call on (so commands,
        which never call it, queue no notifications). Reads only what that connection's
        socket holds already: no round trip."""
        letters = pg_schema.CHANGE_LETTERS
        with self._lock:
            try:
                listener = self._listen()
                for note in listener.notifies(timeout=0):
                    if note.pid != self._pid:  # (no payload: a schema before migration 7)
                        for letter in note.payload or "".join(letters.values()):
                            if letter in self._changes:
                                self._changes[letter] += 1
            except psycopg.Error as exc:
                if self._listener is not None:
                    self._listener.close()
                raise self._error(exc) from None
            wanted = letters.values() if kinds is None else [letters[k] for k in kinds]
            return sum(self._changes[letter] for letter in wanted)

    def wait_for_change(
        self, timeout: float, wake_fd: int | None = None, kinds: Collection[str] | None = None
    ) -> None:
        """Sleep until another connection commits a change of `kinds` (None: any; a
        notification arrives), `wake_fd` is readable, or `timeout` passes. Our own commits'
        notifications do not wake it. The runner's loop also wakes every few seconds (its
        fallback for notifications lost with a connection)."""
        deadline = time.monotonic() + timeout
        seen = None
        while (left := deadline - time.monotonic()) > 0:
            try:
                with self._lock:
                    fd: int | None = self._listen().fileno()
                seen = self.changed(kinds) if seen is None else seen
            except (psycopg.Error, StoreError):
                fd = None
            ready, _, _ = select.select([f for f in (fd, wake_fd) if f is not None], [], [],
                                        left)  # fmt: skip
            if not ready or wake_fd in ready:
                return
            try:
                if self.changed(kinds) != seen:
                    return
            except StoreError:
                return

    # ---- read-only views for stats and metrics (Store.run_outcomes, run_tallies) ----------
    def run_outcomes(self, job: str | None = None, since: float | None = None) -> list[RunOutcome]:
        from jobctl.stats import RunOutcome

        sql, params = outcome_query(job, since, mark="%s")
        with self._tx(single=True) as conn:
            cur = conn.cursor(row_factory=tuple_row)
            return list(map(RunOutcome._make, cur.execute(sql, params)))

    def run_tallies(
        self, duration_bounds: Sequence[float], lateness_bounds: Sequence[float], now: float
    ) -> list[RunTally]:
        sql, params = tally_query(duration_bounds, lateness_bounds, now, mark="%s",
                                  dead="r.dead::int", greatest="greatest")  # fmt: skip
        with self._tx(single=True) as conn:
            found = [tuple(row.values()) for row in conn.execute(sql, params)]
        return [tally_from_row(r, len(duration_bounds), len(lateness_bounds)) for r in found]

    # ---- several jobs at once (jobctl apply, jobctl import) -------------------------------
    def apply_jobs(
        self, add: Sequence[Job], update: Sequence[Job], remove: Sequence[str]
    ) -> list[Job]:
        """See Store.apply_jobs: one transaction; updated rows are read FOR UPDATE."""
        out: list[Job] = []
        sets = ", ".join(f"{c} = %({c})s" for c in JOB_COLUMNS if c != "name")
        with self._tx() as conn:
            for job in add:
                try:
                    row = conn.execute(
                        _insert_sql("jobs", list(JOB_COLUMNS)), _row(JOB_COLUMNS, job)
                    ).fetchone()
                except pg_errors.UniqueViolation:  # the transaction rolls back
                    raise ConflictError(f"job {job.name!r} already exists") from None
                assert row is not None
                out.append(job.copy_with(id=row["id"]))
            for job in update:
                row = conn.execute(
                    "SELECT * FROM jobs WHERE name = %s FOR UPDATE", [job.name]
                ).fetchone()
                if row is None:
                    raise NotFoundError(f"no job named {job.name!r}")
                job = keep_scheduling_state(_job(row), job)
                conn.execute(
                    f"UPDATE jobs SET {sets} WHERE name = %(name)s", _row(JOB_COLUMNS, job)
                )
                out.append(job)
            for name in remove:
                if conn.execute("DELETE FROM jobs WHERE name = %s", [name]).rowcount:
                    conn.execute(
                        "UPDATE runs SET status = 'cancelled', error = 'job removed' "
                        "WHERE job = %s AND status = 'queued'",
                        [name],
                    )
        return out
