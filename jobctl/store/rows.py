"""How jobs and runs become table rows, shared by the SQLite and PostgreSQL stores.

Both keep the same columns with the same encodings: times as integer milliseconds (so that the
fire key (job, scheduled_for, attempt) compares exactly), lists and dicts as JSON text. Only
booleans differ: SQLite stores 0/1, PostgreSQL its own boolean (`Codec(bools=...)`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from jobctl.models import RUN_STATUSES, Job, Run
from jobctl.store.base import DEFAULT_LEASE_S, Delivery, RunnerInfo

# column -> how it is stored: "ms" (float seconds <-> integer ms), "json", "bool", "" (as is)
JOB_COLUMNS: dict[str, str] = {
    "name": "", "command": "json", "shell": "bool", "schedule": "", "schedule_kind": "",
    "tz": "", "state": "", "next_run_at": "ms", "anchor_at": "ms", "cwd": "", "env": "json",
    "timeout_s": "", "kill_grace_s": "", "retries": "", "retry_delay_s": "", "backoff": "",
    "max_retry_delay_s": "", "overlap": "", "misfire": "", "catchup_window_s": "",
    "jitter_s": "", "mutexes": "json", "keep_runs": "", "max_output": "", "description": "",
    "tags": "json", "created_at": "ms", "updated_at": "ms", "fired_through": "ms",
    "on_labels": "json", "notify": "json", "ping": "", "after": "json",
}  # fmt: skip
RUN_COLUMNS: dict[str, str] = {
    "job": "", "attempt": "", "trigger": "", "status": "", "scheduled_for": "ms",
    "created_at": "ms", "not_before": "ms", "started_at": "ms", "finished_at": "ms",
    "exit_code": "", "signal": "", "error": "", "host": "", "pid": "", "proc_start": "",
    "owner": "", "dead": "bool", "output_bytes": "", "cancel_requested_at": "ms",
    "forced": "bool", "upstream_run_id": "", "upstream_status": "", "chain": "bool",
}  # fmt: skip

_EMPTY = {"[]": list, "{}": dict}  # most env/tags/mutexes: skip the JSON parser (list speed)


def dumps(value: Any) -> str:
    """`value` as JSON text, exactly as json.dumps writes it. The JSON columns hold lists of
    strings, [a, b] pairs and str -> str dicts: those are written here with json's own C
    quoting of a string, so that `add` and `edit` need not import json (2 ms of their start,
    issue 13); any other value goes to json.dumps, imported on first use."""
    try:  # CPython's accelerator: what json.dumps quotes each string with (ensure_ascii)
        from _json import encode_basestring_ascii as quote
    except ImportError:  # pragma: no cover (another Python): json.dumps writes every value
        quote = None  # type: ignore[assignment]
    text = None if quote is None else _plain_json(value, quote)
    if text is None:
        import json

        return json.dumps(value)
    return text


def _plain_json(value: Any, quote: Callable[[str], str], depth: int = 0) -> str | None:
    """json.dumps(value) for strings, None, and lists and str-keyed dicts of them, nested up
    to three deep (the columns' [a, b] pairs are two), with json.dumps's default separators,
    each string written by `quote`; None for any other value, and for one nested deeper (a
    list holding itself too: json.dumps says it is circular)."""
    kind = type(value)
    if kind is str:
        return quote(value)
    if value is None:
        return "null"
    if depth == 3:
        return None
    if kind is list:
        items = [_plain_json(v, quote, depth + 1) for v in value]
        return None if None in items else "[" + ", ".join(items) + "]"  # type: ignore[arg-type]
    if kind is dict:
        pairs = [(quote(k) if type(k) is str else None, _plain_json(v, quote, depth + 1))
                 for k, v in value.items()]  # fmt: skip
        if any(k is None or v is None for k, v in pairs):
            return None
        return "{" + ", ".join(f"{k}: {v}" for k, v in pairs) + "}"
    return None


def loads(text: str) -> Any:
    import json

    return json.loads(text)


def to_ms(t: float | None) -> int | None:
    return None if t is None else round(t * 1000)


def encode(kind: str, value: Any, bools: type = int) -> Any:
    """A model value as stored; `bools`: int (SQLite's 0/1) or bool (a real boolean)."""
    if kind == "ms":
        return to_ms(value)
    if kind == "json":
        return dumps(value)
    if kind == "bool":
        return bools(bool(value))
    return value


def decode(kind: str, value: Any) -> Any:
    if value is None:
        return None
    if kind == "ms":
        return value / 1000
    if kind == "json":
        return _EMPTY[value]() if value in _EMPTY else loads(value)
    if kind == "bool":
        return bool(value)
    return value


def row(columns: dict[str, str], obj: Job | Run, bools: type = int) -> dict[str, Any]:
    return {c: encode(k, getattr(obj, c), bools) for c, k in columns.items()}


def status_clause(statuses: Sequence[str], params: list[Any], mark: str) -> str:
    """`status IN (...)` written with literals where the statuses are known ones: a partial
    index (runs_open, runs_running, runs_queue) serves only a query that repeats its WHERE
    term, never bound parameters (SQLite; PostgreSQL's generic plans alike). `mark` is the
    driver's placeholder for the others."""
    wanted = list(dict.fromkeys(statuses))
    if set(wanted) == {"queued", "running"}:
        return "status IN ('queued', 'running')"  # exactly runs_open's term
    if all(st in RUN_STATUSES for st in wanted):
        if len(wanted) == 1:
            return f"status = '{wanted[0]}'"
        return "status IN (" + ", ".join(f"'{st}'" for st in wanted) + ")"
    params.extend(wanted)
    return f"status IN ({', '.join(mark for _ in wanted)})"


RUNNER_COLUMNS = ("owner", "pid", "host", "labels", "version", "since", "heartbeat_at",
                  "lease_expires_at")  # fmt: skip


class JobLine:
    """One job as `list` shows it (Store.job_lines): its schedule, next fire and state, its
    --on labels and --after links, and its newest run's status and times (seconds; None
    without a run). Ten columns of the job and four of one run, not a Job and a Run: 1,000
    jobs read and decode in a third of the time (issue 13's `list` budget). A plain slotted
    class built from the row itself, not a record: no field-by-field keywords a row."""

    __slots__ = ("after", "anchor_at", "created_at", "last_created_at", "last_finished_at",
                 "last_started_at", "last_status", "name", "next_run_at", "on_labels",
                 "schedule", "schedule_kind", "state", "tz")  # fmt: skip

    def __init__(self, row: Sequence[Any]) -> None:
        """From a row of base.job_lines_query's columns, in their order."""
        (self.name, self.schedule, self.schedule_kind, self.tz, anchor, nxt, self.state, after,
         labels, created, self.last_status, l_created, l_started, l_finished) = row  # fmt: skip
        # decode("ms", ...) and decode("json", ...) written out: eight calls a row were a
        # tenth of `list`'s own time over 1,000 jobs (issue 13)
        self.anchor_at = None if anchor is None else anchor / 1000
        self.next_run_at = None if nxt is None else nxt / 1000
        self.created_at: float = created / 1000  # NOT NULL
        self.after: list[list[str]] = [] if after == "[]" else decode("json", after)
        self.on_labels: list[str] = [] if labels == "[]" else decode("json", labels)
        self.last_created_at = None if l_created is None else l_created / 1000
        self.last_started_at = None if l_started is None else l_started / 1000
        self.last_finished_at = None if l_finished is None else l_finished / 1000

    def __repr__(self) -> str:
        return f"JobLine({self.name!r}, next_run_at={self.next_run_at}, last={self.last_status})"


def runner_row(info: RunnerInfo) -> dict[str, Any]:
    lease = info.lease_expires_at
    return {
        "owner": info.owner, "pid": info.pid, "host": info.host,
        "labels": dumps(sorted(set(info.labels))), "version": info.version,
        "since": to_ms(info.since), "heartbeat_at": to_ms(info.heartbeat_at),
        "lease_expires_at": to_ms(info.heartbeat_at + DEFAULT_LEASE_S if lease is None else lease),
    }  # fmt: skip


def runner_info(r: Any) -> RunnerInfo:
    """A runner row (by column name) as a RunnerInfo."""
    return RunnerInfo(
        owner=r["owner"], pid=r["pid"], host=r["host"], labels=decode("json", r["labels"]),
        version=r["version"], since=r["since"] / 1000, heartbeat_at=r["heartbeat_at"] / 1000,
        lease_expires_at=r["lease_expires_at"] / 1000,
    )  # fmt: skip


NOTIFICATION_COLUMNS = ("run_id", "event", "target", "status", "attempts", "error", "at")


def notification_insert(mark: str) -> str:
    """The INSERT of one notification outcome, with the store's placeholder `mark`."""
    marks = ", ".join(mark for _ in NOTIFICATION_COLUMNS)
    return f"INSERT INTO notifications ({', '.join(NOTIFICATION_COLUMNS)}) VALUES ({marks})"


def notification_row(run_id: int, d: Delivery) -> list[Any]:
    return [run_id, d.event, d.target, d.status, d.attempts, d.error, to_ms(d.at)]


def notifications_by_run(found: Sequence[Sequence[Any]]) -> dict[int, list[Delivery]]:
    """Rows of NOTIFICATION_COLUMNS (in that order), grouped by run id."""
    out: dict[int, list[Delivery]] = {}
    for run_id, event, target, status, attempts, error, at in found:
        out.setdefault(run_id, []).append(Delivery(event, target, status, attempts, error,
                                                   at / 1000))  # fmt: skip
    return out


def released(now: str) -> str:
    """The SET clause of release_runs (both stores): a claimed run whose process never
    started goes back to the queue, or ends `cancelled` at `now` (the dialect's expression
    or placeholder) if its cancel was asked meanwhile; either way with no owner or start."""
    return (
        "status = CASE WHEN cancel_requested_at IS NULL THEN 'queued' ELSE 'cancelled' END, "
        "error = CASE WHEN cancel_requested_at IS NULL THEN error ELSE 'cancelled' END, "
        f"finished_at = CASE WHEN cancel_requested_at IS NULL THEN NULL ELSE {now} END, "
        "owner = NULL, host = NULL, pid = NULL, proc_start = NULL, started_at = NULL"
    )
