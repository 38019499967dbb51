"""Jobs as TOML (`jobctl export`, `jobctl apply`): one table per job, and what applying a file
changes. Pure apart from what jobdef checks (a --cwd exists, sendmail for mailto:).

A job is `[jobs.NAME]` with the options of `jobctl add` as keys: `cron`, `every` (+ `start_at`)
or `at` (none: manual), `command` (an array: argv; a string: a shell command), `paused`, and
each entry of FIELDS. Values become the option text `add` would get and go through jobdef
(`new_job`, `apply_options`): a file is checked exactly as the same options typed.

FIELDS is the one table mapping Job fields to TOML keys and add options: a new option of `add`
is one more line there. `tz` and `cwd` are always written (their defaults depend on the
machine); the others only when they differ from the Job's default. `to_table(job)` is what
export writes; `diff` compares two jobs through it, so "changed" means "a key of the file".
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from jobctl import jobdef, planner, records, schedule
from jobctl.errors import UsageError
from jobctl.jobdef import JobOptions
from jobctl.models import Job, check_name

#: the tag of jobs that `apply` created from a file (`apply.<file stem>`), which `--prune`
#: may remove; a tag cannot hold ':' (names are [A-Za-z0-9._-]), hence the dot
ORIGIN_PREFIX = "apply."


@dataclass(frozen=True)
class Field:
    """One job option: its TOML `key`, the `attr` of Job, the JobOptions attribute `opt`
    (the add option without its dashes), and its `kind` (how it is written and read)."""

    key: str
    attr: str
    kind: str  # text, text?, int, duration, duration?, size, list, env, notify, after
    opt: str = ""
    always: bool = False  # written even when it is the default

    @property
    def option(self) -> str:
        return self.opt or self.key


FIELDS: tuple[Field, ...] = (
    Field("description", "description", "text"),
    Field("tz", "tz", "text", always=True),
    Field("cwd", "cwd", "text", always=True),
    Field("timeout", "timeout_s", "duration?"),
    Field("kill_grace", "kill_grace_s", "duration"),
    Field("retries", "retries", "int"),
    Field("retry_delay", "retry_delay_s", "duration"),
    Field("backoff", "backoff", "text"),
    Field("max_retry_delay", "max_retry_delay_s", "duration"),
    Field("overlap", "overlap", "text"),
    Field("misfire", "misfire", "text"),
    Field("catchup_window", "catchup_window_s", "duration?"),
    Field("jitter", "jitter_s", "duration"),
    Field("mutex", "mutexes", "list"),
    Field("on", "on_labels", "list"),
    Field("ping", "ping", "text?"),
    Field("after", "after", "after"),
    Field("keep_runs", "keep_runs", "int"),
    Field("max_output", "max_output", "size"),
    Field("tags", "tags", "list", opt="tag"),
    Field("env", "env", "env"),
    Field("notify", "notify", "notify"),
)
SCHEDULE_KEYS = ("cron", "every", "at", "start_at")
KEYS = (*SCHEDULE_KEYS, "command", "paused", *(f.key for f in FIELDS))
_BY_KEY = {f.key: f for f in FIELDS}


def _default(attr: str) -> Any:
    f = next(f for f in records.fields(Job) if f.name == attr)
    if f.default_factory is not records.MISSING:
        return f.default_factory()
    return f.default


class JobFileError(UsageError):
    """A bad value in a job file: `where` is the key path (jobs, NAME, key...)."""

    def __init__(self, where: tuple[str, ...], message: str) -> None:
        super().__init__(f"{key_path(where)}: {message}")
        self.where = where
        self.why = message


def key_path(where: tuple[str, ...]) -> str:
    return ".".join(p if re.fullmatch(r"[A-Za-z0-9_-]+", p) else f'"{p}"' for p in where)


# ---- Job -> TOML ---------------------------------------------------------------------------


def _duration(seconds: float) -> str | int | float:
    """'1h30m' when that text reads back as exactly `seconds`, else the number of seconds."""
    text = schedule.format_duration(seconds)
    if schedule.parse_duration(text) == seconds:
        return text
    return int(seconds) if float(seconds).is_integer() else seconds


def _size(n: int) -> str | int:
    for unit, name in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if n % unit == 0:
            return f"{n // unit}{name}"
    return n


def _iso(t: float, tz: str) -> str:
    """An instant as ISO 8601 in the job's zone: seconds, or milliseconds when it has them."""
    d = datetime.fromtimestamp(round(t, 3), planner.zone(tz))
    return d.isoformat(timespec="milliseconds" if d.microsecond else "seconds")


def _write(f: Field, value: Any) -> Any:
    if f.kind in ("duration", "duration?"):
        return _duration(value)
    if f.kind == "size":
        return _size(value)
    if f.kind == "list":
        return list(value)
    if f.kind == "env":
        return dict(value)
    if f.kind == "after":
        return _after_text(value)
    if f.kind == "notify":
        grouped: dict[str, list[str]] = {}
        for event, target in value:
            grouped.setdefault(event, []).append(target)
        return {e: t[0] if len(t) == 1 else t for e, t in grouped.items()}
    return value


def _after_text(links: list[list[str]]) -> list[str]:
    """--after's [job, condition] pairs as typed: JOB, or JOB:COND when not success."""
    return [job if cond == "success" else f"{job}:{cond}" for job, cond in links]


def to_table(job: Job, full: bool = False) -> dict[str, Any]:
    """The job as `export` writes it (only what differs from the defaults, plus tz and cwd);
    `full` writes every key (what `diff` compares)."""
    t: dict[str, Any] = {}
    if job.schedule_kind == "cron":
        t["cron"] = job.schedule
    elif job.schedule_kind == "every":
        t["every"] = job.schedule
        if job.anchor_at is not None:
            t["start_at"] = _iso(job.anchor_at, job.tz)
    elif job.schedule_kind == "at" and job.anchor_at is not None:
        t["at"] = _iso(job.anchor_at, job.tz)
    t["command"] = job.command[0] if job.shell and job.command else list(job.command)
    if full or job.state == "paused":
        t["paused"] = job.state == "paused"
    for f in FIELDS:
        value = getattr(job, f.attr)
        if f.key == "tags":  # where it came from is not part of its definition
            value = [x for x in value if not x.startswith(ORIGIN_PREFIX)]
        if full or f.always or value != _default(f.attr):
            if value is not None:
                t[f.key] = _write(f, value)
            elif full:
                t[f.key] = None
    return t


def dump(jobs: list[Job]) -> str:
    """The TOML text of `export`: a comment, then `[jobs.NAME]` tables in name order."""
    import tomli_w

    body = tomli_w.dumps({"jobs": {j.name: to_table(j) for j in jobs}}) if jobs else ""
    head = "# jobctl export: change it and run `jobctl apply FILE` (see README, Jobs as files)\n"
    return head + ("\n" if body else "") + body


def diff(old: Job, new: Job) -> list[str]:
    """The keys of the file that differ between two definitions of a job."""
    a, b = to_table(old, full=True), to_table(new, full=True)
    return [k for k in KEYS if a.get(k) != b.get(k)]


# ---- TOML -> options -----------------------------------------------------------------------


def _number_text(value: int | float) -> str:
    """A number as plain decimal text (never 1e-05), as an option would be typed."""
    return format(Decimal(repr(value)), "f") if isinstance(value, float) else str(value)


def _option_text(f: Field, value: Any) -> Any:
    """A Job value as `add` would be given it (what a missing key means: the default)."""
    if f.kind in ("duration", "duration?"):
        return "none" if value is None else _number_text(value)
    if f.kind in ("int", "size"):
        return str(value)
    if f.kind == "list":
        return list(value)
    if f.kind == "env":
        return [f"{k}={v}" for k, v in value.items()]
    if f.kind == "notify":
        return [f"{e}={t}" for e, t in value]
    if f.kind == "after":
        return _after_text(value)
    return "" if value is None else value


class _Bad(Exception):
    """A value of the wrong type; the caller names the key."""


def _expect(ok: bool, what: str, value: Any) -> None:
    if not ok:
        shown = value.isoformat() if isinstance(value, date) else value
        raise _Bad(f"expected {what}, got {shown!r}")


def _strings(value: Any) -> list[str]:
    _expect(isinstance(value, list) and all(isinstance(x, str) for x in value),
            "an array of strings", value)  # fmt: skip
    return list(value)


def _read(f: Field, value: Any) -> Any:
    """A TOML value -> the option text jobdef parses (type checks only; jobdef checks it)."""
    if f.kind in ("int", "size"):
        _expect(isinstance(value, (int, str)) and not isinstance(value, bool),
                "a whole number" + (" or a size such as 1MiB" if f.kind == "size" else ""),
                value)  # fmt: skip
        return str(value)
    if f.kind in ("duration", "duration?"):
        return _duration_text(value)
    if f.kind in ("list", "after"):
        return _strings(value)
    if f.kind == "env":
        _expect(isinstance(value, dict) and all(isinstance(v, str) for v in value.values()),
                "a table of strings, e.g. { PATH = \"/usr/bin:/bin\" }", value)  # fmt: skip
        return [f"{k}={v}" for k, v in value.items()]
    if f.kind == "notify":
        _expect(isinstance(value, dict), "a table EVENT = TARGET (or [TARGET, ...])", value)
        out = []
        for event, targets in value.items():
            for target in [targets] if isinstance(targets, str) else _strings(targets):
                out.append(f"{event}={target}")
        return out
    _expect(isinstance(value, str), "a string", value)
    return value


def _time_text(value: Any) -> str:
    """`at`/`start_at`: an ISO 8601 string or a TOML date-time (naive: in the job's zone)."""
    if isinstance(value, datetime):
        return value.isoformat()
    _expect(isinstance(value, str), "an ISO 8601 time such as 2026-12-01T09:00", value)
    return str(value)


def _duration_text(value: Any) -> str:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    _expect(number or isinstance(value, str),
            "a duration such as 90s or 1h30m, or a number of seconds", value)  # fmt: skip
    return _number_text(value) if number else str(value)


@dataclass
class Built:
    job: Job
    note: str | None = None


def build(
    name: str,
    table: Mapping[str, Any],
    existing: Job | None,
    now: float,
    *,
    default_tz: str,
    base_dir: Path,
    origin_tag: str,
) -> Built:
    """The job that `table` defines: a new one (tagged `origin_tag`), or `existing` with every
    option set as the table says (a missing key is the default), through jobdef. The
    runner's state of `existing` (next fire, high-water mark) is kept as `edit` keeps it.
    An `at` time that has passed makes a done job (as the job would be after its run)."""
    where = ("jobs", name)
    try:
        check_name(name)
    except UsageError as exc:
        raise JobFileError(where, str(exc)) from None
    if not isinstance(table, Mapping):
        raise JobFileError(where, "expected a table of options [jobs.NAME]")
    parts = _parts(name, table, existing, default_tz=default_tz, base_dir=base_dir,
                   origin_tag=origin_tag)  # fmt: skip
    tz = parts["tz"]["tz"]
    try:
        zone = planner.zone(tz)
    except schedule.ScheduleError as exc:
        raise JobFileError((*where, "tz"), str(exc)) from None
    done_at: float | None = None
    if "at" in parts:
        at = parts["at"]["at"]
        if at.strip().startswith("+"):
            raise JobFileError((*where, "at"), f"{at!r}: write an ISO 8601 time (a "
                               "+DURATION would move at every apply)")  # fmt: skip
        try:
            when = schedule.parse_at(at, zone, datetime.fromtimestamp(now, zone)).timestamp()
        except schedule.ScheduleError as exc:
            raise JobFileError((*where, "at"), str(exc)) from None
        same = (existing is not None and existing.schedule_kind == "at"
                and existing.anchor_at is not None
                and round(existing.anchor_at * 1000) == round(when * 1000))  # fmt: skip
        if same or when <= now:
            del parts["at"]  # as it is (done or not); or a time that has passed: done
            done_at = None if same else when
    elif existing is not None and not {"cron", "every"} & parts.keys():
        parts["manual"] = {"manual": True}  # no schedule in the file: none
    paused = parts.pop("paused")["paused"]
    # a finished one-shot kept as it is stays done, paused or not (edit refuses to revive it)
    kept_done = (existing is not None and existing.state == "done"
                 and not {"at", "cron", "every"} & parts.keys())  # fmt: skip
    if done_at is None and not kept_done:
        if paused:
            parts["paused"] = {"paused": True}
        elif existing is not None and existing.state == "paused":
            parts["paused"] = {"paused": False}

    def make(kw: dict[str, Any], base: Job | None) -> Job:
        opts = JobOptions(**kw)
        if base is None:
            return jobdef.new_job(name, opts, now, default_tz=tz, default_cwd=str(base_dir))
        return jobdef.apply_options(base, opts, now)

    try:
        job = make({k: v for p in parts.values() for k, v in p.items()}, existing)
    except UsageError as exc:
        raise JobFileError(_blame(parts, make, existing, name), str(exc)) from None
    if done_at is None:
        return Built(job)
    text = datetime.fromtimestamp(done_at, zone).isoformat(timespec="seconds")
    job = job.copy_with(schedule=text, schedule_kind="at", anchor_at=done_at, state="done",
                        next_run_at=None)  # fmt: skip
    return Built(job, f"job {name!r}: its at time {text} has passed: it is done, not run")


def _parts(
    name: str,
    table: Mapping[str, Any],
    existing: Job | None,
    *,
    default_tz: str,
    base_dir: Path,
    origin_tag: str,
) -> dict[str, dict[str, Any]]:
    """key -> the JobOptions it gives, every option included (a missing key: its default);
    type checks only, jobdef checks the values."""
    where = ("jobs", name)
    unknown = [k for k in table if k not in KEYS]
    if unknown:
        hint = " (a shell command is written as a string)" if unknown[0] == "shell" else ""
        raise JobFileError((*where, unknown[0]),
                           f"unknown key{hint}; known keys: {', '.join(KEYS)}")  # fmt: skip
    parts: dict[str, dict[str, Any]] = {}
    key = "command"
    try:
        if "command" not in table:
            raise _Bad("missing: give the command as an array (argv) or a string (shell)")
        command = table["command"]
        if isinstance(command, str):
            parts[key] = {"command": [command], "shell": True}
        else:
            _expect(isinstance(command, list) and all(isinstance(x, str) for x in command),
                    "an array of strings (argv) or a string (shell)", command)  # fmt: skip
            parts[key] = {"command": list(command), "shell": False}
        schedules = [k for k in ("cron", "every", "at") if k in table]
        if len(schedules) > 1:
            key = schedules[1]
            raise _Bad(f"give one schedule: {schedules[0]} or {schedules[1]}, not both")
        for key in ("cron", "every", "at", "start_at"):
            if key in table:
                value = table[key]
                if key == "cron":
                    _expect(isinstance(value, str), "a cron expression (a string)", value)
                elif key == "every":
                    value = _duration_text(value)
                else:
                    value = _time_text(value)
                parts[key] = {key: value}
        if "start_at" in table and "every" not in table:
            key = "start_at"
            raise _Bad("start_at goes with every")
        key = "paused"
        paused = table.get("paused", False)
        _expect(isinstance(paused, bool), "true or false", paused)
        parts["paused"] = {"paused": paused}
        for f in FIELDS:
            key = f.key
            if f.key in table:
                value = _read(f, table[f.key])
            elif f.key == "tz":
                value = default_tz
            elif f.key == "cwd":
                value = str(base_dir)
            else:
                value = _option_text(f, _default(f.attr))
            if f.key == "cwd" and not value.startswith(("/", "~")):
                value = str(base_dir / value)  # relative to the file, not to where we run
            if f.key == "tags":
                if any(t.startswith(ORIGIN_PREFIX) for t in value):
                    raise _Bad(f"tags starting with {ORIGIN_PREFIX!r} are set by jobctl apply")
                kept = [t for t in existing.tags if t.startswith(ORIGIN_PREFIX)] if existing else []
                value = [*value, *(kept if existing else [origin_tag])]
            parts[f.key] = {f.option: value}
    except _Bad as exc:
        raise JobFileError((*where, key), str(exc)) from None
    return parts


def _blame(
    parts: dict[str, dict[str, Any]],
    make: Callable[[dict[str, Any], Job | None], Job],
    existing: Job | None,
    name: str,
) -> tuple[str, ...]:
    """Which key made jobdef refuse the table: the first that is refused on its own (with
    the command, which a new job needs); the table itself when only their mix is."""
    base = {**parts.get("command", {})}
    for key, kw in parts.items():
        if key in ("manual", "paused", "start_at"):
            continue
        extra = parts.get("start_at", {}) if key == "every" else {}
        try:
            make({**base, **kw, **extra}, existing)
        except UsageError:
            return ("jobs", name, key)
    return ("jobs", name)


# ---- a whole file ----------------------------------------------------------------------------


@dataclass
class Change:
    """What applying a file does to one job: add, update, remove or nothing ("same")."""

    action: str
    job: Job
    fields: list[str] = dataclasses.field(default_factory=list)
    note: str | None = None


def origin_tag(path: Path) -> str:
    """`apply.<file stem>`, made a valid tag."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", path.stem).strip("-") or "file"
    return (ORIGIN_PREFIX + stem)[:64]


def plan(
    doc: Mapping[str, Any],
    existing: Mapping[str, Job],
    now: float,
    *,
    default_tz: str,
    base_dir: Path,
    origin: str,
    prune: bool,
) -> list[Change]:
    """Every change applying `doc` (a parsed file) makes to the jobs `existing` (by name):
    the file's jobs in its order, then (with `prune`) the jobs this file created earlier
    (tagged `origin`) that it no longer holds."""
    extra = [k for k in doc if k != "jobs"]
    if extra:
        raise JobFileError((extra[0],), "unknown top-level key: write each job as [jobs.NAME]")
    jobs = doc.get("jobs", {})
    if not isinstance(jobs, Mapping):
        raise JobFileError(("jobs",), "expected tables [jobs.NAME]")
    out: list[Change] = []
    for name, table in jobs.items():
        old = existing.get(name)
        built = build(name, table, old, now, default_tz=default_tz, base_dir=base_dir,
                      origin_tag=origin)  # fmt: skip
        if old is None:
            out.append(Change("add", built.job, note=built.note))
            continue
        fields = diff(old, built.job)
        out.append(Change("update" if fields else "same", built.job if fields else old, fields,
                          built.note if fields else None))  # fmt: skip
    if prune:
        for name, job in existing.items():
            if name not in jobs and origin in job.tags:
                out.append(Change("remove", job))
    return _check_chains(out, existing, now)


def _check_chains(changes: list[Change], existing: Mapping[str, Job], now: float) -> list[Change]:
    """--after links as the store will hold them: each upstream exists and no cycle forms
    (jobs of the file may run after each other, in any order of the file); a job outside the
    file that ran after a removed one loses that link, as `rm` does (with a note)."""
    gone = {c.job.name for c in changes if c.action == "remove"}
    final = {**existing, **{c.job.name: c.job for c in changes}}
    for name in gone:
        del final[name]
    out = list(changes)
    touched = {c.job.name for c in changes}
    for name, job in existing.items():
        if name not in touched and any(up in gone for up, _ in job.after):
            kept = [a for a in job.after if a[0] not in gone]
            lost = ", ".join(sorted({up for up, _ in job.after} & gone))
            new = job.copy_with(after=kept, updated_at=now)
            note = f"warning: {name} ran after {lost}; that link was removed"
            out.append(Change("update", new, ["after"], note))
            final[name] = new
    for c in changes:
        if c.action in ("add", "update") and c.job.after:
            try:
                jobdef.check_chain(c.job, list(final.values()))
            except UsageError as exc:
                raise JobFileError(("jobs", c.job.name, "after"), str(exc)) from None
    return out


def locate(text: str, where: tuple[str, ...]) -> int | None:
    """The line (1-based) of `where` (jobs, NAME[, key]) in the file's text, if it can be
    found: the key's line in the job's table (or its own [jobs.NAME.key] table), else the
    table's header."""
    if len(where) < 2:
        return None

    def alternatives(word: str) -> str:
        w = re.escape(word)
        return rf"(?:{w}|\"{w}\"|'{w}')"

    table = rf"\s*\[\s*jobs\s*\.\s*{alternatives(where[1])}\s*"
    lines = text.splitlines()
    header = re.compile(table + r"\]")
    start = next((i for i, line in enumerate(lines) if header.match(line)), None)
    if len(where) > 2:
        sub = re.compile(table + rf"\.\s*{alternatives(where[2])}\s*\]")
        found = next((i for i, line in enumerate(lines) if sub.match(line)), None)
        if found is not None:
            return found + 1
        key = re.compile(rf"\s*{alternatives(where[2])}\s*[=.]")
        for i in range(start + 1 if start is not None else len(lines), len(lines)):
            if lines[i].lstrip().startswith("["):
                break
            if key.match(lines[i]):
                return i + 1
    return None if start is None else start + 1
