"""Plain data: jobs, runs and the vocabulary of states, triggers and policies.

No I/O and no clock here. Times are float seconds since the epoch (UTC); the store keeps them
as integer milliseconds and the renderers turn them into ISO 8601 or relative text.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from jobctl.errors import NotFoundError, UsageError
from jobctl.records import field, record, replace

ScheduleKind = Literal["cron", "every", "at", "manual"]
JobState = Literal["active", "paused", "done"]
Overlap = Literal["skip", "queue", "allow", "replace"]
Misfire = Literal["once", "skip", "all"]
Backoff = Literal["exponential", "linear", "fixed"]
Trigger = Literal["schedule", "catchup", "manual", "retry", "replay", "reboot", "after"]
RunStatus = Literal[
    "queued", "running", "succeeded", "failed", "timed_out", "cancelled", "skipped", "abandoned"
]

OVERLAPS: tuple[str, ...] = get_args(Overlap)
MISFIRES: tuple[str, ...] = get_args(Misfire)
BACKOFFS: tuple[str, ...] = get_args(Backoff)
RUN_STATUSES: tuple[str, ...] = get_args(RunStatus)
#: statuses a run never leaves
FINAL_STATUSES = frozenset(
    {"succeeded", "failed", "timed_out", "cancelled", "skipped", "abandoned"}
)
#: final statuses that count as a failure (retried while attempts remain)
FAILED_STATUSES = frozenset({"failed", "timed_out", "abandoned"})

MIB = 1024 * 1024
#: a default factory's field left to its default (a fresh list or dict), in written __init__s
_NEW: Any = object()


#: the characters of a name: ASCII letters and digits, '.', '_' and '-'
NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")


def check_name(name: str, what: str = "job name") -> str:
    """Return `name` if it is a valid job (or mutex, tag) name, else raise UsageError. Checked
    by its characters, not a pattern: compiling one was 0.2 ms of `add` (issue 13)."""
    if not (0 < len(name) <= 64 and NAME_CHARS.issuperset(name)):
        raise UsageError(f"invalid {what} {name!r}: use 1-64 letters, digits, '.', '_' or '-'")
    return name


#: run ids are SQLite's (and PostgreSQL's bigint) positive 64-bit integers
MAX_RUN_ID = (1 << 63) - 1


def parse_run_id(text: str) -> int:
    """A run id as typed: ASCII digits. A number no run can have (0, negative, beyond 64 bits)
    is simply not found (NotFoundError, 4); anything else is bad input (UsageError, 2)."""
    s = text.strip()
    digits = s[1:] if s.startswith(("-", "+")) else s
    if not (digits.isascii() and digits.isdigit()):
        raise UsageError(f"invalid run id {text!r}: use the number shown by jobctl history")
    significant = digits.lstrip("0") or "0"  # int() refuses thousands of digits
    value = int(significant) if len(significant) <= 20 else MAX_RUN_ID + 1
    value = -value if s.startswith("-") else value
    if not 1 <= value <= MAX_RUN_ID:
        raise NotFoundError(f"no run with id {s}")
    return value


@record(init=False)  # __init__ below: compiled with the module, not at each start
class Run:
    """One attempt of one job. A fire is (job, scheduled_for); retries share it."""

    job: str
    scheduled_for: float
    trigger: Trigger = "schedule"
    status: RunStatus = "queued"
    attempt: int = 1
    id: int | None = None
    created_at: float = 0.0
    not_before: float = 0.0  # earliest start (retry backoff, jitter)
    started_at: float | None = None
    finished_at: float | None = None
    exit_code: int | None = None
    signal: int | None = None
    error: str | None = None
    host: str | None = None
    pid: int | None = None
    proc_start: int | None = None  # start time of pid, so a reused pid is never killed
    owner: str | None = None  # runner that claimed it
    dead: bool = False
    output_bytes: int = 0
    cancel_requested_at: float | None = None
    forced: bool = False  # a manual run with --force: starts beside the job's running run
    #: a run queued by `--after` carries the upstream run it follows (and its final status)
    upstream_run_id: int | None = None
    upstream_status: str | None = None
    #: whether this run's end triggers the jobs that run after its job (a replay: --chain)
    chain: bool = True

    def __init__(
        self,
        job: str,
        scheduled_for: float,
        trigger: Trigger = "schedule",
        status: RunStatus = "queued",
        attempt: int = 1,
        id: int | None = None,
        created_at: float = 0.0,
        not_before: float = 0.0,
        started_at: float | None = None,
        finished_at: float | None = None,
        exit_code: int | None = None,
        signal: int | None = None,
        error: str | None = None,
        host: str | None = None,
        pid: int | None = None,
        proc_start: int | None = None,
        owner: str | None = None,
        dead: bool = False,
        output_bytes: int = 0,
        cancel_requested_at: float | None = None,
        forced: bool = False,
        upstream_run_id: int | None = None,
        upstream_status: str | None = None,
        chain: bool = True,
    ) -> None:
        # written out, as @dataclass would generate it (tests/unit/test_records.py)
        self.job = job
        self.scheduled_for = scheduled_for
        self.trigger = trigger
        self.status = status
        self.attempt = attempt
        self.id = id
        self.created_at = created_at
        self.not_before = not_before
        self.started_at = started_at
        self.finished_at = finished_at
        self.exit_code = exit_code
        self.signal = signal
        self.error = error
        self.host = host
        self.pid = pid
        self.proc_start = proc_start
        self.owner = owner
        self.dead = dead
        self.output_bytes = output_bytes
        self.cancel_requested_at = cancel_requested_at
        self.forced = forced
        self.upstream_run_id = upstream_run_id
        self.upstream_status = upstream_status
        self.chain = chain

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return round(self.finished_at - self.started_at, 3)

    @property
    def run_key(self) -> str:
        """Same for every attempt of one fire (JOBCTL_RUN_KEY)."""
        return f"{self.job}@{round(self.scheduled_for * 1000)}"


@record(init=False)  # __init__ below, as Run's
class Job:
    """A job definition plus the scheduling state the runner advances."""

    name: str
    command: list[str]
    shell: bool = False
    schedule: str | None = None  # cron expression, duration text, or the --at text
    schedule_kind: ScheduleKind = "manual"
    tz: str = "UTC"
    state: JobState = "active"
    next_run_at: float | None = None
    anchor_at: float | None = None  # --every anchor (creation or --start-at); --at instant
    cwd: str = "/"
    env: dict[str, str] = field(default_factory=dict)
    timeout_s: float | None = None
    kill_grace_s: float = 10.0
    retries: int = 0
    retry_delay_s: float = 10.0
    backoff: Backoff = "exponential"
    max_retry_delay_s: float = 3600.0
    overlap: Overlap = "skip"
    misfire: Misfire = "once"
    catchup_window_s: float | None = None
    jitter_s: float = 0.0
    mutexes: list[str] = field(default_factory=list)
    keep_runs: int = 200
    max_output: int = MIB
    description: str = ""
    tags: list[str] = field(default_factory=list)
    created_at: float = 0.0
    updated_at: float = 0.0
    #: high-water mark: the latest scheduled time fired so far (SPEC 6, every fire once). No
    #: schedule fire is ever recorded at or before it, even after its runs have been pruned.
    fired_through: float | None = None
    #: runner labels this job runs on (`--on`, all must match); empty: any runner
    on_labels: list[str] = field(default_factory=list)
    #: `--notify EVENT=TARGET` entries, [event, target] pairs (notify.py); `--ping URL`
    notify: list[list[str]] = field(default_factory=list)
    ping: str | None = None
    #: `--after JOB[:success|failure|always]`: [job, condition] pairs (store/base.chain_runs)
    after: list[list[str]] = field(default_factory=list)
    id: int | None = None
    last_run: Run | None = None  # filled by the store on reads; not a column

    def __init__(
        self,
        name: str,
        command: list[str],
        shell: bool = False,
        schedule: str | None = None,
        schedule_kind: ScheduleKind = "manual",
        tz: str = "UTC",
        state: JobState = "active",
        next_run_at: float | None = None,
        anchor_at: float | None = None,
        cwd: str = "/",
        env: dict[str, str] = _NEW,
        timeout_s: float | None = None,
        kill_grace_s: float = 10.0,
        retries: int = 0,
        retry_delay_s: float = 10.0,
        backoff: Backoff = "exponential",
        max_retry_delay_s: float = 3600.0,
        overlap: Overlap = "skip",
        misfire: Misfire = "once",
        catchup_window_s: float | None = None,
        jitter_s: float = 0.0,
        mutexes: list[str] = _NEW,
        keep_runs: int = 200,
        max_output: int = MIB,
        description: str = "",
        tags: list[str] = _NEW,
        created_at: float = 0.0,
        updated_at: float = 0.0,
        fired_through: float | None = None,
        on_labels: list[str] = _NEW,
        notify: list[list[str]] = _NEW,
        ping: str | None = None,
        after: list[list[str]] = _NEW,
        id: int | None = None,
        last_run: Run | None = None,
    ) -> None:
        # written out, as @dataclass would generate it (tests/unit/test_records.py)
        self.name = name
        self.command = command
        self.shell = shell
        self.schedule = schedule
        self.schedule_kind = schedule_kind
        self.tz = tz
        self.state = state
        self.next_run_at = next_run_at
        self.anchor_at = anchor_at
        self.cwd = cwd
        self.env = {} if env is _NEW else env
        self.timeout_s = timeout_s
        self.kill_grace_s = kill_grace_s
        self.retries = retries
        self.retry_delay_s = retry_delay_s
        self.backoff = backoff
        self.max_retry_delay_s = max_retry_delay_s
        self.overlap = overlap
        self.misfire = misfire
        self.catchup_window_s = catchup_window_s
        self.jitter_s = jitter_s
        self.mutexes = [] if mutexes is _NEW else mutexes
        self.keep_runs = keep_runs
        self.max_output = max_output
        self.description = description
        self.tags = [] if tags is _NEW else tags
        self.created_at = created_at
        self.updated_at = updated_at
        self.fired_through = fired_through
        self.on_labels = [] if on_labels is _NEW else on_labels
        self.notify = [] if notify is _NEW else notify
        self.ping = ping
        self.after = [] if after is _NEW else after
        self.id = id
        self.last_run = last_run

    def copy_with(self, **changes: Any) -> Job:
        return replace(self, **changes)
