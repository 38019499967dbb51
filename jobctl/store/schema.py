"""The SQLite schema as named migrations (sqlite-utils `Migrations`), applied in order.

Add a migration at the end; never edit one that has shipped. Times are INTEGER milliseconds
since the epoch (UTC) so that the fire key (job, scheduled_for, attempt) compares exactly.
Imported only when a store needs migrating, so that ordinary commands skip sqlite-utils.
"""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

migrations = Migrations("jobctl")

#: PRAGMA user_version once every migration below has been applied; bump with each new one.
SCHEMA_VERSION = 10


@migrations()
def m001_jobs_and_runs(db: Database) -> None:
    db.execute(
        """
        CREATE TABLE jobs (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            command TEXT NOT NULL,              -- JSON list
            shell INTEGER NOT NULL DEFAULT 0,
            schedule TEXT,
            schedule_kind TEXT NOT NULL,
            tz TEXT NOT NULL,
            state TEXT NOT NULL,
            next_run_at INTEGER,
            anchor_at INTEGER,
            cwd TEXT NOT NULL,
            env TEXT NOT NULL DEFAULT '{}',     -- JSON object
            timeout_s REAL,
            kill_grace_s REAL NOT NULL,
            retries INTEGER NOT NULL,
            retry_delay_s REAL NOT NULL,
            backoff TEXT NOT NULL,
            max_retry_delay_s REAL NOT NULL,
            overlap TEXT NOT NULL,
            misfire TEXT NOT NULL,
            catchup_window_s REAL,
            jitter_s REAL NOT NULL,
            mutexes TEXT NOT NULL DEFAULT '[]', -- JSON list
            keep_runs INTEGER NOT NULL,
            max_output INTEGER NOT NULL,
            description TEXT NOT NULL DEFAULT '',
            tags TEXT NOT NULL DEFAULT '[]',    -- JSON list
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL
        )
        """
    )
    # the runner's "what is due next": an index, not a scan
    db.execute("CREATE INDEX jobs_due ON jobs(next_run_at) WHERE state = 'active'")
    db.execute(
        """
        CREATE TABLE runs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            job TEXT NOT NULL,
            attempt INTEGER NOT NULL,
            trigger TEXT NOT NULL,
            status TEXT NOT NULL,
            scheduled_for INTEGER NOT NULL,
            created_at INTEGER NOT NULL,
            not_before INTEGER NOT NULL,
            started_at INTEGER,
            finished_at INTEGER,
            exit_code INTEGER,
            signal INTEGER,
            error TEXT,
            host TEXT,
            pid INTEGER,
            proc_start INTEGER,
            owner TEXT,
            dead INTEGER NOT NULL DEFAULT 0,
            output_bytes INTEGER NOT NULL DEFAULT 0,
            UNIQUE (job, scheduled_for, attempt)
        )
        """
    )
    db.execute("CREATE INDEX runs_job ON runs(job, id)")
    db.execute("CREATE INDEX runs_open ON runs(status) WHERE status IN ('queued', 'running')")
    db.execute("CREATE INDEX runs_dead ON runs(dead) WHERE dead = 1")
    db.execute(
        """
        CREATE TABLE output (
            run_id INTEGER NOT NULL,
            seq INTEGER NOT NULL,
            data BLOB NOT NULL,
            PRIMARY KEY (run_id, seq)
        ) WITHOUT ROWID
        """
    )
    db.execute(
        """
        CREATE TABLE runner (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            owner TEXT NOT NULL,
            pid INTEGER NOT NULL,
            host TEXT NOT NULL,
            since INTEGER NOT NULL,
            heartbeat_at INTEGER NOT NULL
        )
        """
    )


@migrations()
def m002_cancel_requests(db: Database) -> None:
    # `jobctl cancel` marks a running run here before signalling it, so that its owner records
    # `cancelled` rather than "killed by SIGTERM".
    db.execute("ALTER TABLE runs ADD COLUMN cancel_requested_at INTEGER")


@migrations()
def m003_forced_runs(db: Database) -> None:
    # `run --detach --force`: the runner starts it even while the job's previous run runs
    db.execute("ALTER TABLE runs ADD COLUMN forced INTEGER NOT NULL DEFAULT 0")


@migrations()
def m004_queue_index(db: Database) -> None:
    # the runner's claim reads the due queue in (not_before, id) order a page at a time:
    # an index walk instead of sorting every queued run on each claim
    db.execute("CREATE INDEX runs_queue ON runs(not_before, id) WHERE status = 'queued'")
    # a partial index serves only a query that repeats its WHERE term: `status = 'running'`
    # is not served by runs_open's `status IN ('queued', 'running')`
    db.execute("CREATE INDEX runs_running ON runs(owner) WHERE status = 'running'")


@migrations()
def m005_status_and_waiting_indexes(db: Database) -> None:
    # `status` counts the failures of the last 24 h (and `history --status --since` filters
    # alike) without visiting every recent run; created_at never changes after the insert
    db.execute("CREATE INDEX IF NOT EXISTS runs_status_created ON runs(status, created_at)")
    # a job's queued runs without walking its history (claim: overlap=replace)
    db.execute("CREATE INDEX IF NOT EXISTS runs_waiting ON runs(job) WHERE status = 'queued'")
    db.execute("DROP INDEX IF EXISTS runs_created")  # an interim index of m004's drafts


@migrations()
def m006_fired_through(db: Database) -> None:
    # each job's high-water mark of fired times: a fire at or before it is never recorded
    # again, whatever an edit or a clock step does, and even once its runs are pruned
    db.execute("ALTER TABLE jobs ADD COLUMN fired_through INTEGER")
    db.execute(
        "UPDATE jobs SET fired_through = (SELECT max(scheduled_for) FROM runs "
        "WHERE runs.job = jobs.name AND trigger IN ('schedule', 'catchup') "
        "AND created_at >= jobs.created_at)"
    )


@migrations()
def m007_runners_with_leases(db: Database) -> None:
    # a row per runner, keyed by its owner id, with labels, version and a lease (SPEC 8); the
    # SQLite store still holds at most one (its runner lock), PostgreSQL any number
    db.execute(
        """
        CREATE TABLE runner_new (
            owner TEXT PRIMARY KEY,
            pid INTEGER NOT NULL,
            host TEXT NOT NULL,
            labels TEXT NOT NULL DEFAULT '[]',  -- JSON list
            version TEXT NOT NULL DEFAULT '',
            since INTEGER NOT NULL,
            heartbeat_at INTEGER NOT NULL,
            lease_expires_at INTEGER NOT NULL
        )
        """
    )
    db.execute(
        "INSERT INTO runner_new (owner, pid, host, since, heartbeat_at, lease_expires_at) "
        "SELECT owner, pid, host, since, heartbeat_at, heartbeat_at + 30000 FROM runner"
    )
    db.execute("DROP TABLE runner")
    db.execute("ALTER TABLE runner_new RENAME TO runner")


@migrations()
def m008_job_runner_labels(db: Database) -> None:
    # `add/edit --on L`: the runner labels a job runs on (all must match; [] = any runner)
    db.execute("ALTER TABLE jobs ADD COLUMN on_labels TEXT NOT NULL DEFAULT '[]'")


@migrations()
def m009_notifications(db: Database) -> None:
    # `--notify EVENT=TARGET` (JSON [[event, target], ...]) and `--ping URL`; each delivery's
    # outcome is kept per run (show and history --json list them)
    db.execute("ALTER TABLE jobs ADD COLUMN notify TEXT NOT NULL DEFAULT '[]'")
    db.execute("ALTER TABLE jobs ADD COLUMN ping TEXT")
    db.execute(
        """
        CREATE TABLE notifications (
            id INTEGER PRIMARY KEY,
            run_id INTEGER NOT NULL,
            event TEXT NOT NULL,
            target TEXT NOT NULL,
            status TEXT NOT NULL,          -- sent | failed
            attempts INTEGER NOT NULL,
            error TEXT,
            at INTEGER NOT NULL
        )
        """
    )
    db.execute("CREATE INDEX notifications_run ON notifications (run_id)")


@migrations()
def m010_chains(db: Database) -> None:
    # `--after JOB[:cond]` (JSON [[job, cond], ...]); a chained run's upstream run and status;
    # whether a run's end triggers its downstream jobs (a replay only with --chain)
    db.execute("ALTER TABLE jobs ADD COLUMN after TEXT NOT NULL DEFAULT '[]'")
    db.execute("ALTER TABLE runs ADD COLUMN upstream_run_id INTEGER")
    db.execute("ALTER TABLE runs ADD COLUMN upstream_status TEXT")
    db.execute("ALTER TABLE runs ADD COLUMN chain INTEGER NOT NULL DEFAULT 1")
    # each recorded end looks up the jobs that run after its job: only linked jobs, indexed
    db.execute("CREATE INDEX jobs_linked ON jobs (name) WHERE after != '[]'")


def migrate(db: Database) -> None:
    migrations.apply(db)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
