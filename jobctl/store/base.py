"""The Store interface: every read and write of jobs, runs and output goes through it.

Each method is one transaction. Implementations: SQLite (store/sqlite.py), one runner per
store, and PostgreSQL (store/postgres.py), shared by a fleet of runners under leases (SPEC 8);
both pass the same contract suite in tests/store/. Times are float epoch seconds, passed in by
the caller, except where a shared store must decide by its own clock (`now()`, leases:
register_runner, heartbeat, claim's and finish_run's fencing, reap_expired). Callers never
see SQL.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from jobctl.errors import ConflictError
from jobctl.models import FINAL_STATUSES, Job, Run
from jobctl.records import field, record

if TYPE_CHECKING:
    from jobctl.stats import RunOutcome
    from jobctl.store.rows import JobLine


@record
class RunFilter:
    """Which runs `list_runs` returns, newest first."""

    job: str | None = None
    statuses: Sequence[str] | None = None
    since: float | None = None
    dead: bool | None = None
    owner: str | None = None
    owned: bool | None = None  # True: only runs that have an owner (claimed, or a `jobctl run`)
    limit: int | None = None
    jobs: Sequence[str] | None = None  # any of these job names


FAR_FUTURE = 253402300799.0  # 9999-12-31T23:59:59Z: "due before" this means "any next fire"


class Fire:
    """One job's fire for `Store.fire_all`: its new runs and its advanced schedule. A plain
    class: a typing.NamedTuple compiles each of its string annotations when it is made, at
    the import of this module by every command (issue 13)."""

    __slots__ = ("changes", "job", "next_run_at", "runs")

    def __init__(
        self,
        job: Job,
        runs: Sequence[Run],
        next_run_at: float | None,
        changes: dict[str, Any],  # other job fields to set (e.g. state='done')
    ) -> None:
        self.job, self.runs, self.next_run_at, self.changes = job, runs, next_run_at, changes


#: triggers of a schedule's fires: these advance, and are held back by, a job's fired_through
SCHEDULE_TRIGGERS = frozenset({"schedule", "catchup"})


def _ms(t: float) -> int:
    return round(t * 1000)


def fresh_fires(job: Job, runs: Sequence[Run]) -> list[Run]:
    """`runs` less the schedule fires at or before the job's high-water mark: those fired
    already (their runs may have been pruned since), so they must never be recorded again."""
    if job.fired_through is None:
        return list(runs)
    mark = _ms(job.fired_through)
    return [r for r in runs if r.trigger not in SCHEDULE_TRIGGERS or _ms(r.scheduled_for) > mark]


def fired_mark(job: Job, runs: Sequence[Run]) -> float | None:
    """The job's high-water mark once `runs` are recorded."""
    times = [r.scheduled_for for r in runs if r.trigger in SCHEDULE_TRIGGERS]
    if job.fired_through is not None:
        times.append(job.fired_through)
    return max(times) if times else None


def keep_scheduling_state(stored: Job, job: Job) -> Job:
    """`job`'s definition with the runner's state of `stored` (see Store.apply_jobs)."""
    timing = ("schedule", "schedule_kind", "anchor_at", "tz", "state")
    nxt = job.next_run_at
    if all(getattr(stored, f) == getattr(job, f) for f in timing):
        nxt = stored.next_run_at
    elif nxt is not None and stored.fired_through is not None and nxt <= stored.fired_through:
        raise ConflictError(f"job {job.name!r} fired while it was being changed; try again")
    return job.copy_with(id=stored.id, next_run_at=nxt, fired_through=stored.fired_through)


#: `--after JOB:COND`: the final statuses of JOB's run that queue a run of the job after it
CHAIN_ON: dict[str, frozenset[str]] = {
    "success": frozenset({"succeeded"}),
    "failure": frozenset({"failed", "timed_out", "abandoned"}),
    "always": frozenset({"succeeded", "failed", "timed_out", "abandoned", "cancelled"}),
}


def chains_from(run: Run, retry: Run | None) -> bool:
    """Whether `run`'s recorded end may queue its downstream jobs: its final outcome (no
    retry follows), and it is not a replay made without --chain."""
    return retry is None and run.chain and run.status in CHAIN_ON["always"]


def chain_runs(upstream: Run, downstream: Sequence[Job], busy: set[str], now: float) -> list[Run]:
    """The runs `upstream`'s final end queues for the jobs that run after its job (`--after`):
    one per job whose condition its status meets, paused jobs aside. Keyed by the upstream's
    end time (so recording the same end twice queues nothing twice). A job with
    `--overlap skip` that has a run open (`busy`) gets a skipped run instead, as a fire."""
    out: list[Run] = []
    for job in downstream:
        conds = {c for name, c in job.after if name == upstream.job}
        if job.state == "paused" or not any(upstream.status in CHAIN_ON[c] for c in conds):
            continue
        run = Run(job=job.name, scheduled_for=upstream.finished_at or now, trigger="after",
                  created_at=now, not_before=now, upstream_run_id=upstream.id,
                  upstream_status=upstream.status)  # fmt: skip
        if job.overlap == "skip" and job.name in busy:
            run.status, run.finished_at = "skipped", now
            run.error = "previous run still running (overlap=skip)"
        out.append(run)
    return out


#: how long a runner's registration lasts without a renewal (the runner renews every third)
DEFAULT_LEASE_S = 15.0

#: what a change committed elsewhere was about (Store.changed, wait_for_change); a runner
#: sleeps through the kinds it would do nothing about (a full pool through "queued"):
#: "jobs": a job added, edited, paused, resumed or removed (not a fire moving it on);
#: "queued": runs queued (fires, retries, manual runs, runs put back in the queue);
#: "ended": runs ended (a mutex, an overlap or a slot freed); "cancel": a cancel asked for
CHANGE_KINDS = ("jobs", "queued", "ended", "cancel")


@record
class RunnerInfo:
    """A runner registered on a store (SPEC 7 status, SPEC 8 `runners`): who it is, where,
    its labels, and until when its lease holds unless renewed by a heartbeat."""

    owner: str
    pid: int
    host: str
    since: float
    heartbeat_at: float
    labels: list[str] = field(default_factory=list)
    version: str = ""
    lease_expires_at: float | None = None  # None: heartbeat_at + DEFAULT_LEASE_S


@record
class Delivery:
    """One notification of a run's event (notify.py), as recorded per run."""

    event: str
    target: str
    status: str  # "sent" or "failed"
    attempts: int
    error: str | None
    at: float


# ---- read-only views for `jobctl stats` and `jobctl metrics` (narrow, aggregated reads) ----


@record
class RunTally:
    """One job's runs in one status, counted for metrics (Store.run_tallies). Bucket lists
    hold cumulative counts, one per bound (Prometheus's `le`), +Inf being the count."""

    job: str
    status: str
    count: int
    dead: int
    due: int  # runs whose not_before has come (queued: waiting for a worker, mutex or turn)
    last_finished_at: float | None
    duration_buckets: list[int]
    duration_count: int
    duration_sum: float
    lateness_buckets: list[int]
    lateness_count: int
    lateness_sum: float


def purge_sql(mark: str) -> list[str]:
    """delete_finished_runs' statements (`mark`: the driver's placeholder), each taking (job
    name, its creation in ms): the finished runs of that job, their output and notifications;
    the runs of an earlier job of that name are that job's kept history."""
    finished = (f"SELECT id FROM runs WHERE job = {mark} AND created_at >= {mark} "
                "AND status != 'running'")  # fmt: skip
    return [f"DELETE FROM output WHERE run_id IN ({finished})",
            f"DELETE FROM notifications WHERE run_id IN ({finished})",
            f"DELETE FROM runs WHERE id IN ({finished})"]  # fmt: skip


def delete_finished_runs(conn: Any, statements: list[str], job: str, since_ms: int | None) -> int:
    """Run purge_sql's `statements` on `conn` (sqlite3 and psycopg alike, in the caller's
    transaction) for the job named `job` created at `since_ms`; the runs deleted."""
    *first, last = statements
    for statement in first:
        conn.execute(statement, [job, since_ms])
    return int(conn.execute(last, [job, since_ms]).rowcount)


#: after the end of a run that is dead or a replay: of its fire's runs only the newest keeps
#: the dead mark (the one `jobctl dead` lists: runs.dead_runs), so that a run's `dead` and the
#: list agree, and `--keep-runs`/`prune` may delete the superseded ones (two replays of one
#: fire that both failed left both marked). `{m}`: the driver's placeholder; job, fire, twice.
SUPERSEDED_DEAD = ("UPDATE runs SET dead = {no} WHERE job = {m} AND scheduled_for = {m} "
                   "AND dead = {yes} AND id < (SELECT max(id) FROM runs WHERE job = {m} "
                   "AND scheduled_for = {m})")  # fmt: skip


def supersedes_dead(run: Run) -> bool:
    """Whether the end of `run` may leave an older run of its fire marked dead for nothing."""
    return run.dead or run.trigger == "replay"


#: triggers whose start delay counts as lateness: a schedule's fires, not retries or manual runs
LATENESS_TRIGGERS = ("schedule", "catchup")
#: runs of the jobs that exist, each since its job was created (a removed job's runs under a
#: reused name are not the new job's)
CURRENT_RUNS = "runs r JOIN jobs j ON j.name = r.job AND r.created_at >= j.created_at"


def outcome_query(job: str | None, since: float | None, mark: str) -> tuple[str, list[Any]]:
    """Store.run_outcomes' statement and its parameters (`mark`: the driver's placeholder)."""
    params: list[Any] = []
    where = "r.status IN (" + ", ".join(f"'{st}'" for st in sorted(FINAL_STATUSES)) + ")"
    if job is not None:
        where += f" AND r.job = {mark}"
        params.append(job)
    if since is not None:
        where += f" AND r.created_at >= {mark}"
        params.append(round(since * 1000))  # rows.to_ms
    return f"SELECT {OUTCOME_COLUMNS} FROM {CURRENT_RUNS} WHERE {where} ORDER BY r.id", params


def tally_query(
    duration_bounds: Sequence[float],
    lateness_bounds: Sequence[float],
    now: float,
    mark: str,
    dead: str,
    greatest: str,
) -> tuple[str, list[Any]]:
    """Store.run_tallies' one GROUP BY statement in a store's dialect: `mark` its parameter
    placeholder, `dead` the expression counting a dead run as 1, `greatest` its two-argument
    maximum. Times in the tables are milliseconds."""
    dur = "(r.finished_at - r.started_at)"
    trig = ", ".join(f"'{t}'" for t in LATENESS_TRIGGERS)
    late = (f"(CASE WHEN r.trigger IN ({trig}) AND r.started_at IS NOT NULL "
            f"THEN {greatest}(0, r.started_at - r.not_before) END)")  # fmt: skip
    params: list[Any] = [_ms(now)]
    cols = [
        "r.job AS job",
        "r.status AS status",
        "count(*) AS n",
        f"sum({dead}) AS dead",
        f"sum(CASE WHEN r.not_before <= {mark} THEN 1 ELSE 0 END) AS due",
        "max(r.finished_at) AS last_finished",
        f"count({dur}) AS d_n",
        f"sum({dur}) AS d_sum",
        f"count({late}) AS l_n",
        f"sum({late}) AS l_sum",
    ]
    for prefix, expr, bounds in (("d", dur, duration_bounds), ("l", late, lateness_bounds)):
        for i, bound in enumerate(bounds):
            cols.append(f"sum(CASE WHEN {expr} <= {mark} THEN 1 ELSE 0 END) AS {prefix}_{i}")
            params.append(_ms(bound))
    sql = f"SELECT {', '.join(cols)} FROM {CURRENT_RUNS} GROUP BY r.job, r.status"
    return sql, params


#: Store.run_outcomes' columns in RunOutcome's order, times turned into seconds by the
#: database (a double on both: the rows need no conversion in Python)
_S = "/ CAST(1000 AS DOUBLE PRECISION)"
OUTCOME_COLUMNS = (f"r.id, r.job, r.status, r.created_at {_S}, r.started_at {_S}, "
                   f"r.finished_at {_S}, r.exit_code")  # fmt: skip


def job_lines_query(
    tag: str | None, mark: str, tagged: str, lateral: bool = False
) -> tuple[str, list[Any]]:
    """Store.job_lines' statement: the columns of JobLine, each job's newest run found by one
    runs_job index lookup a job, and not a run of an earlier job of that name; `tagged` the
    store's test that jobs `j` carry the tag given as `mark`. `lateral` (PostgreSQL): the
    newest run as a LATERAL subquery. PostgreSQL may plan the correlated max(id) as a hash
    join over the whole runs table (60 ms at 100,000 runs, as the statistics fall), and it
    always plans LATERAL ... LIMIT 1 as one backward index scan a job."""
    cols = ("SELECT j.name, j.schedule, j.schedule_kind, j.tz, j.anchor_at, j.next_run_at, "
            "j.state, j.after, j.on_labels, j.created_at, r.status, r.created_at, "
            "r.started_at, r.finished_at FROM jobs j LEFT JOIN ")  # fmt: skip
    if lateral:
        newest = ("LATERAL (SELECT status, created_at, started_at, finished_at FROM runs "
                  "WHERE job = j.name ORDER BY id DESC LIMIT 1) r "
                  "ON r.created_at >= j.created_at")  # fmt: skip
    else:
        newest = ("runs r ON r.id = (SELECT max(id) FROM runs WHERE job = j.name) "
                  "AND r.created_at >= j.created_at")  # fmt: skip
    if tag is None:
        return cols + newest, []
    return f"{cols}{newest} WHERE {tagged.format(mark=mark)}", [tag]


def tally_from_row(row: Sequence[Any], n_duration: int, n_lateness: int) -> RunTally:
    """A RunTally from one row of tally_query's statement (columns in its order)."""
    job, status, n, dead, due, last, d_n, d_sum, l_n, l_sum, *buckets = row
    return RunTally(
        job=job, status=status, count=int(n), dead=int(dead or 0), due=int(due or 0),
        last_finished_at=None if last is None else last / 1000,
        duration_buckets=[int(b or 0) for b in buckets[:n_duration]],
        duration_count=int(d_n), duration_sum=float(d_sum or 0) / 1000,
        lateness_buckets=[int(b or 0) for b in buckets[n_duration:n_duration + n_lateness]],
        lateness_count=int(l_n), lateness_sum=float(l_sum or 0) / 1000,
    )  # fmt: skip


class Store(Protocol):
    #: True where several runners share the store (leases, fencing, reaping by the store's
    #: clock); False where one runner holds it by a file lock (SQLite)
    shared: bool

    # ---- jobs -------------------------------------------------------------
    def add_job(self, job: Job) -> Job:
        """Insert a new job; ConflictError if the name exists."""
        ...

    def get_job(self, name: str) -> Job:
        """The job with its last run; NotFoundError if absent."""
        ...

    def list_jobs(
        self,
        tag: str | None = None,
        *,
        names: Sequence[str] | None = None,
        schedule: str | None = None,
        last_runs: bool = True,
        pinned: bool = False,
    ) -> list[Job]:
        """All jobs by name (with their last runs unless `last_runs` is false); only those
        tagged `tag`, named in `names`, or whose schedule is `schedule` (any case), if given;
        with `pinned`, only those pinned to runner labels (--on)."""
        ...

    def job_lines(self, tag: str | None = None) -> list[JobLine]:
        """What `list` shows of every job (only those tagged `tag`, if given), in
        list_jobs' order: a few columns of each and of its newest run, in one query."""
        ...

    def job_names(self) -> list[str]:
        """Every job's name, in list_jobs' order; nothing else is read (shell completion)."""
        ...

    def update_jobs(self, names: Sequence[str], change: Callable[[Job], Job]) -> list[Job]:
        """Read-modify-write jobs (edit, pause, resume) in one write transaction, so that
        concurrent edits never lose each other's changes. All or nothing: NotFoundError if a
        name is unknown, and any error raised by `change` leaves every job as it was."""
        ...

    def remove_job(self, name: str, purge: bool = False) -> None:
        """Delete a job and cancel its queued runs; with purge also its finished runs (its
        own: those created since it was, not an earlier job's of that name)."""
        ...

    def purge_runs(self, job: str, since: float) -> int:
        """Delete the runs of the job named `job` created since `since` (that job's creation:
        an earlier job's of that name stay) that are not running, and their output."""
        ...

    # ---- runs -------------------------------------------------------------
    def fire(
        self, job: Job, runs: Sequence[Run], next_run_at: float | None, **job_changes: Any
    ) -> list[Run]:
        """Record the runs of one fire and advance the job, in one transaction.

        Compare-and-set: nothing is written unless the job's stored next_run_at and
        fired_through still equal `job`'s; a run whose (job, scheduled_for, attempt) exists is
        not inserted again, nor a schedule fire at or before fired_through (`fresh_fires`),
        and fired_through advances to the latest schedule fire recorded (`fired_mark`).
        Returns the runs inserted (with ids), empty when another runner won.
        """
        ...

    def fire_all(self, fires: Sequence[Fire]) -> list[list[Run]]:
        """`fire` for many jobs in one transaction (the runner's batch); one list per fire."""
        ...

    def add_run(self, run: Run) -> Run:
        """Insert one run (manual, retry, replay); ConflictError if its fire+attempt exists."""
        ...

    def update_run(self, run_id: int, **fields: Any) -> Run:
        """Set fields of a run (status transitions, pid, outcome); returns the new run."""
        ...

    def mark_started(self, run: Run, wait_s: float | None = None) -> None:
        """Record a running run's pid, proc_start and started_at (the runner's hot path).
        `wait_s`: give up (StoreError) after this long waiting for the store, instead of the
        full busy timeout: the thread that watches a job must not stall on the store."""
        ...

    def get_run(self, run_id: int) -> Run: ...

    def list_runs(self, where: RunFilter) -> list[Run]: ...

    def count_runs(self, where: RunFilter) -> int:
        """How many runs `list_runs(where)` would return (without its limit)."""
        ...

    def update_runs(self, run_ids: Sequence[int], **fields: Any) -> int:
        """Set the same fields on several runs (dead --dismiss --all); returns how many."""
        ...

    # ---- the runner's side ----------------------------------------------------
    def due_jobs(self, now: float, limit: int = 1000) -> list[Job]:
        """Active jobs whose next_run_at <= now, earliest first (an index, not a scan);
        `due_jobs(FAR_FUTURE, n)` gives the next n fires."""
        ...

    def next_fires(self, limit: int) -> list[tuple[float, str]]:
        """(next_run_at, name) of the `limit` active jobs that fire soonest, soonest first, as
        due_jobs(FAR_FUTURE, limit) orders them: what `status` shows of them, without
        decoding whole jobs (and their JSON columns)."""
        ...

    def next_wakeup(self, now: float) -> float | None:
        """The earliest of the active jobs' next fires and of the queued runs' not_before that
        is still ahead of `now` (queued runs already due wait for an event, not a time)."""
        ...

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
        """Atomically move the due queued runs that `pick` chooses to `running`, owned by `owner`.

        On a shared store claims are serialized across the fleet (so `pick`'s overlap and
        mutex rules hold between machines) and, with `epoch` (the runner's registration),
        nothing is claimed unless its lease holds; the claimed runs carry that epoch.

        Queued runs reserved by another owner (a foreground `jobctl run` waiting) are not offered.

        `pick(queued, running, jobs, limit)` is the planner's pure choice (overlap, mutexes,
        free workers) and returns (runs to start, runs to cancel because their job is gone);
        `jobs` holds the queued runs' jobs, and of the running runs' jobs those with a mutex;
        `running` runs carry only their id, job and status.
        The due queue is offered a page at a time (earliest first) until `pick` has enough;
        with `due_by` (a runner claiming ahead of its free slots: beyond them it takes only
        runs due by then), no further page is read once one ends past that time.
        """
        ...

    def finish_run(
        self,
        run: Run,
        followup: Run | None = None,
        keep_runs: int | None = None,
        fence: tuple[str, int] | None = None,
    ) -> Run:
        """Record a run's final state, insert its retry (if any), and apply `keep_runs` retention
        to its job, in one transaction. `fence` (owner, epoch): on a shared store, only while
        the run is still `running` under that runner's lease, which still holds; FencedError
        (nothing written) otherwise."""
        ...

    def finish_runs(
        self,
        ends: Sequence[End],
        fence: tuple[str, int] | None = None,
        started: Sequence[Run] = (),
    ) -> list[bool]:
        """`finish_run` for several runs in one transaction (the runner's batch of ends):
        each end, its retry and its chained runs, then `keep_runs` retention once per job;
        and, first, `mark_started_all(started)` (runs of the batch still running).
        Returns, per end, whether it was written: False where `fence` refused it (only that
        end and its retry are left out; the others are recorded)."""
        ...

    def mark_started_all(self, runs: Sequence[Run]) -> None:
        """`mark_started` for several runs in one transaction (a batch of spawns)."""
        ...

    def release_runs(self, run_ids: Sequence[int], fence: tuple[str, int] | None = None) -> int:
        """Put claimed runs whose processes never started back in the queue (a runner
        stopping, or handing back runs it claimed ahead of its free slots), in one
        transaction: `queued`, with no owner, host, pid or start; one whose cancel was asked
        meanwhile ends `cancelled` instead (it never ran). Only runs still `running` are
        touched; with `fence` (owner, epoch), on a shared store, only those still held under
        that runner's lease. Returns how many were touched."""
        ...

    def append_output(self, run_id: int, data: bytes, wait_s: float | None = None) -> None:
        """Append a chunk of a run's output (`wait_s` as for mark_started)."""
        ...

    def read_output(self, run_id: int, after_seq: int = -1) -> list[tuple[int, bytes]]:
        """Output chunks of a run with seq > after_seq, in order."""
        ...

    def add_notification(self, run_id: int, delivery: Delivery) -> None:
        """Record one notification's outcome for a run."""
        ...

    def notifications(self, run_ids: Sequence[int]) -> dict[int, list[Delivery]]:
        """The notifications recorded for these runs, oldest first, by run id."""
        ...

    def now(self) -> float:
        """The store's clock: what leases and, on a shared store, due checks go by."""
        ...

    def register_runner(self, info: RunnerInfo) -> int:
        """Record a runner with its lease (SQLite: the only one; its file lock has made sure
        that any other is gone). Returns the registration's epoch (SQLite: 0)."""
        ...

    def heartbeat(
        self,
        owner: str,
        now: float,
        lease_s: float = DEFAULT_LEASE_S,
        epoch: int | None = None,
    ) -> bool:
        """Renew the runner's lease: heartbeat_at = now, lease_expires_at = now + lease_s (a
        shared store reads its own clock). False when the lease (of `epoch`) had expired or
        is gone: the runner is fenced and must re-register (SQLite: always True)."""
        ...

    def reap_expired(
        self, decide: Callable[[Run, Job | None], tuple[Run, Run | None]]
    ) -> list[tuple[Run, Run | None]]:
        """Shared store: record the running runs whose lease no longer holds, by the store's
        clock, as `decide(run, job)` says (final run, retry), once across the fleet. SQLite:
        none (its runs are judged by their owner's process)."""
        ...

    def wait_for_change(
        self, timeout: float, wake_fd: int | None = None, kinds: Collection[str] | None = None
    ) -> None:
        """Sleep until another process commits a change of one of `kinds` (CHANGE_KINDS;
        None: any) that the store can hear of (PostgreSQL: LISTEN/NOTIFY), `wake_fd` is
        readable, or `timeout` passes."""
        ...

    def runners(self) -> list[RunnerInfo]:
        """Every registered runner, oldest first."""
        ...

    def runner_info(self) -> RunnerInfo | None:
        """The newest registered runner (SPEC 7's single `runner`), or None."""
        ...

    def unregister_runner(self, owner: str) -> None: ...

    def prune(self, older_than: float | None) -> int:
        """Delete finished runs (not dead ones) created before `older_than`, and those beyond
        each job's keep_runs; returns how many runs went."""
        ...

    def changed(self, kinds: Collection[str] | None = None) -> int:
        """A number that changes whenever another connection commits a change of one of
        `kinds` (CHANGE_KINDS; None: any) (cheap; for polling). A store that cannot tell
        kinds apart (SQLite) counts every commit as every kind."""
        ...

    def sync(self) -> None:
        """Make every commit so far durable (the runner calls it before it starts a claimed
        run's process; concurrent callers share one flush)."""
        ...

    def close(self) -> None: ...

    # ---- read-only views for stats and metrics -----------------------------------------
    def run_outcomes(self, job: str | None = None, since: float | None = None) -> list[RunOutcome]:
        """The finished runs (final statuses) of the existing jobs, oldest first, each job's
        counted from its creation (CURRENT_RUNS); only `job`'s, and only those created at or
        after `since`, if given. Reads seven columns, not whole runs."""
        ...

    def run_tallies(
        self, duration_bounds: Sequence[float], lateness_bounds: Sequence[float], now: float
    ) -> list[RunTally]:
        """Every (job, status) pair of the existing jobs' runs (CURRENT_RUNS), counted in one
        aggregate query: runs, dead ones, due ones, last finish, and cumulative histograms of
        durations and of lateness (start - not_before of LATENESS_TRIGGERS runs, at least 0)
        over the given bounds (seconds)."""
        ...

    # ---- several jobs at once (jobctl apply, jobctl import) -------------------------------
    def apply_jobs(
        self, add: Sequence[Job], update: Sequence[Job], remove: Sequence[str]
    ) -> list[Job]:
        """Insert `add`, rewrite `update`, delete `remove`, in one write transaction: all or
        nothing. Returns the jobs added (with ids) and updated, as stored, in that order.

        `add`: ConflictError if a name exists. `update`: each stored job (NotFoundError if
        absent) takes the given definition, except the runner's scheduling state, read
        inside the transaction: `fired_through` always stays as stored, and `next_run_at`
        too while the timing (schedule, schedule_kind, anchor_at, tz, state) is unchanged,
        as `edit` keeps it; a new timing takes the given next fire, unless the job fired at
        or after it meanwhile (ConflictError: plan again). `remove`: deleted with their
        queued runs cancelled, as `remove_job` does (history kept); absent names are skipped.
        """
        ...


#: one end for finish_runs: (the final run, its retry or None, its job's keep_runs or None)
End = tuple[Run, Run | None, int | None]

Picker = Callable[[list[Run], list[Run], dict[str, Job], int], tuple[list[Run], list[Run]]]
