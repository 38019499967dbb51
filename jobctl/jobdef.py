"""Turning what a user typed (add/edit options) into a validated Job. Pure apart from
checking that --cwd exists.

`JobOptions` holds every option of `jobctl add`/`edit`; None means "not given". `apply_options`
validates all of them before changing anything, so a rejected edit leaves nothing half-done.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import datetime

from jobctl import schedule
from jobctl.config import expand_user
from jobctl.errors import ConflictError, UsageError
from jobctl.inputs import option_duration, parse_int, schedule_input
from jobctl.records import field, fields, record

__all__ = ["option_duration", "parse_int"]  # their home is jobctl.inputs; kept here for callers
from jobctl.models import BACKOFFS, MISFIRES, OVERLAPS, Job, check_name

_SIZE = r"([0-9]+)(?:\.([0-9]+))? *([kmgt]?i?b?)"  # compiled by `re` when first used: 1.8 ms
_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "kib": 1024,
    "m": 10**6,
    "mb": 10**6,
    "mib": 1024**2,
    "g": 10**9,
    "gb": 10**9,
    "gib": 1024**3,
    "t": 10**12,
    "tb": 10**12,
    "tib": 1024**4,
    "ki": 1024,
    "mi": 1024**2,
    "gi": 1024**3,
    "ti": 1024**4,
}


def parse_size(text: str) -> int:
    """'1MiB', '512KiB', '10MB', '4096', '0.5KiB' -> bytes: a whole number from 1 to 1TiB
    ('0.5' or '1.5' bytes is refused rather than rounded)."""
    m = re.fullmatch(_SIZE, text.strip(), re.IGNORECASE)
    unit = _SIZE_UNITS.get(m.group(3).lower()) if m else None
    if m is None or unit is None:
        raise UsageError(
            f"invalid size {text!r}: use e.g. 1MiB, 512KiB or a number of bytes (at most 1TiB)"
        )
    whole, fraction = m.group(1), m.group(2) or ""
    try:  # exact: the size times 10**len(fraction)
        scaled = int(whole + fraction) * unit
    except ValueError:  # more digits than int() converts
        scaled = (MAX_SIZE + 1) * 10 ** len(fraction)
    size, rest = divmod(scaled, 10 ** len(fraction))
    if rest or not 1 <= size <= MAX_SIZE:
        why = "not a whole number of bytes" if rest else "out of range"
        raise UsageError(f"invalid size {text!r}: {why}; give 1 byte to 1TiB, e.g. 512KiB")
    return size


MAX_SIZE = 1 << 40


def _choice(value: str, allowed: tuple[str, ...], what: str) -> str:
    if value not in allowed:
        raise UsageError(f"invalid {what} {value!r}: choose one of {', '.join(allowed)}")
    return value


@record
class JobOptions:
    cron: str | None = None
    every: str | None = None
    at: str | None = None
    start_at: str | None = None
    manual: bool = False  # edit: drop the schedule
    tz: str | None = None
    shell: bool | None = None
    cwd: str | None = None
    env: list[str] | None = None
    timeout: str | None = None
    kill_grace: str | None = None
    retries: str | int | None = None
    retry_delay: str | None = None
    backoff: str | None = None
    max_retry_delay: str | None = None
    overlap: str | None = None
    misfire: str | None = None
    catchup_window: str | None = None
    jitter: str | None = None
    mutex: list[str] | None = None
    on: list[str] | None = None
    notify: list[str] | None = None
    ping: str | None = None
    after: list[str] | None = None
    keep_runs: str | int | None = None
    max_output: str | None = None
    description: str | None = None
    tag: list[str] | None = None
    paused: bool | None = None
    command: list[str] | None = field(default=None)


#: the names of JobOptions' fields: `add` and `edit` pick their options from their arguments
OPTION_NAMES = frozenset(f.name for f in fields(JobOptions))


#: conditions of `--after JOB:COND` (store/base.py CHAIN_ON gives the statuses of each)
AFTER_CONDITIONS = ("success", "failure", "always")


def parse_after(text: str) -> tuple[str, str]:
    """`JOB[:success|failure|always]` (default success) from --after; UsageError naming it."""
    name, sep, cond = text.partition(":")
    cond = cond.strip() if sep else "success"
    if cond not in AFTER_CONDITIONS:
        raise UsageError(f"--after {text!r}: unknown condition {cond!r}: choose one of "
                         f"{', '.join(AFTER_CONDITIONS)}")  # fmt: skip
    return check_name(name.strip(), "job name in --after"), cond


def check_chain(job: Job, jobs: Sequence[Job]) -> None:
    """Refuse --after links to a missing job or that make a cycle (UsageError naming it);
    `jobs` are the stored jobs (`job`'s stored version, if any, is replaced by `job`)."""
    graph = {j.name: [a for a, _ in j.after] for j in jobs if j.name != job.name}
    graph[job.name] = [a for a, _ in job.after]
    for upstream in graph[job.name]:
        if upstream not in graph:
            raise UsageError(f"--after {upstream!r}: no job named {upstream!r}")

    def path_back(start: str) -> list[str] | None:  # a path from start to job.name, if any
        stack, seen = [(start, [start])], set()
        while stack:
            name, path = stack.pop()
            if name == job.name:
                return path
            if name in seen:
                continue
            seen.add(name)
            stack += [(up, [*path, up]) for up in graph.get(name, [])]
        return None

    for upstream in graph[job.name]:
        cycle = path_back(upstream)
        if cycle is not None:
            shown = " -> ".join([job.name, *cycle])
            raise UsageError(f"--after {upstream!r} would make a cycle: {shown}")


def new_job(name: str, opts: JobOptions, now: float, default_tz: str, default_cwd: str) -> Job:
    """A job for `jobctl add`, with its first fire computed."""
    check_name(name)
    if not opts.command:
        raise UsageError(f"job {name!r} has no command: add it after '--', e.g. -- echo hello")
    base = Job(name=name, command=[], tz=default_tz, cwd=default_cwd, created_at=now)
    return apply_options(base, opts, now, new=True)


def apply_options(job: Job, opts: JobOptions, now: float, new: bool = False) -> Job:
    """A copy of `job` with `opts` applied and its next fire recomputed from `now`."""
    c: dict[str, object] = {"updated_at": now}
    schedules = [s for s in (opts.cron, opts.every, opts.at) if s is not None]
    if len(schedules) + opts.manual > 1:
        raise UsageError("give at most one schedule: --cron, --every, --at (or --manual)")
    tz_name = opts.tz if opts.tz is not None else job.tz
    if not tz_name.strip():
        raise UsageError("unknown time zone '': give an IANA name such as Europe/Paris")
    from jobctl import planner  # here: `history` parses its --since with this module

    with schedule_input():
        if opts.tz is not None:
            schedule.check_zone_input(opts.tz)
        tz = planner.zone(tz_name)
    c["tz"] = tz_name
    if opts.start_at is not None and opts.every is None and job.schedule_kind != "every":
        raise UsageError("--start-at goes with --every")
    if opts.cron is not None:
        with schedule_input():
            schedule.parse_cron(opts.cron)
        c.update(schedule=opts.cron.strip(), schedule_kind="cron", anchor_at=None)
    elif opts.every is not None:
        interval = option_duration(opts.every, "--every", allow_zero=False)
        c.update(schedule=schedule.format_duration(interval), schedule_kind="every")
        # anchored at the creation's whole second, so that fires fall on whole seconds
        c["anchor_at"] = job.anchor_at if job.schedule_kind == "every" else float(int(now))
    elif opts.at is not None:
        when = _parse_at(opts.at, tz, now)
        if opts.at.strip().startswith("+"):
            if schedule.parse_duration(opts.at.strip()[1:]) <= 0:  # '+0s' (it parsed above)
                raise UsageError(f"invalid --at {opts.at!r}: must be in the future")
            # '+1h' from a fractional now: on a whole second, and always a later one ('+1ms')
            when = max(float(round(when)), float(math.floor(now) + 1))
        if when <= now:
            raise UsageError(f"invalid --at {opts.at!r}: that time has passed")
        at_text = datetime.fromtimestamp(when, tz).isoformat(timespec="seconds")
        c.update(schedule=at_text, schedule_kind="at", anchor_at=when)  # '+1h' means nothing later
    elif opts.manual:
        c.update(schedule=None, schedule_kind="manual", anchor_at=None)
    if opts.start_at is not None:
        c["anchor_at"] = _parse_at(opts.start_at, tz, now)
    if opts.command is not None:
        if not opts.command:
            raise UsageError("the command after '--' is empty")
        c["command"] = list(opts.command)
    if opts.shell is not None:
        c["shell"] = opts.shell
    if (c.get("shell", job.shell)) and len(c.get("command", job.command)) != 1:  # type: ignore[arg-type]
        raise UsageError("--shell takes the command as one string, e.g. -- 'ls | wc -l'")
    if opts.command is not None or opts.shell is not None:
        _check_program(c.get("command", job.command), c.get("shell", job.shell))  # type: ignore[arg-type]
    if opts.cwd is not None:
        path = expand_user(opts.cwd, "--cwd").absolute()
        if not path.is_dir():
            raise UsageError(f"invalid --cwd {opts.cwd!r}: not a directory")
        c["cwd"] = str(path)
    # repeatable options replace the old list; an empty value (--tag '') clears it
    if opts.env is not None:
        c["env"] = _parse_env([e for e in opts.env if e])
    if opts.timeout is not None:
        c["timeout_s"] = _optional(opts.timeout, "--timeout") or None  # 0 = none too
    if opts.kill_grace is not None:
        c["kill_grace_s"] = option_duration(opts.kill_grace, "--kill-grace")
    if opts.retries is not None:
        c["retries"] = parse_int(opts.retries, "--retries", minimum=0)
    if opts.retry_delay is not None:
        c["retry_delay_s"] = option_duration(opts.retry_delay, "--retry-delay")
    if opts.max_retry_delay is not None:
        c["max_retry_delay_s"] = option_duration(opts.max_retry_delay, "--max-retry-delay")
    if opts.backoff is not None:
        c["backoff"] = _choice(opts.backoff, BACKOFFS, "--backoff")
    if opts.overlap is not None:
        c["overlap"] = _choice(opts.overlap, OVERLAPS, "--overlap")
    if opts.misfire is not None:
        c["misfire"] = _choice(opts.misfire, MISFIRES, "--misfire")
    if opts.catchup_window is not None:  # 0: every missed fire is skipped; none: no window
        c["catchup_window_s"] = _optional(opts.catchup_window, "--catchup-window")
    if opts.jitter is not None:
        c["jitter_s"] = option_duration(opts.jitter, "--jitter")
    if opts.mutex is not None:
        c["mutexes"] = sorted({check_name(m, "mutex name") for m in opts.mutex if m})
    if opts.on is not None:
        c["on_labels"] = sorted({check_name(x, "runner label") for x in opts.on if x})
    if opts.notify is not None:  # `--notify ""` clears them
        from jobctl.notify import parse_notify

        c["notify"] = [list(p) for p in sorted({parse_notify(x) for x in opts.notify if x})]
    if opts.after is not None:  # `--after ""` clears them
        c["after"] = [list(p) for p in sorted({parse_after(x) for x in opts.after if x})]
    if opts.ping is not None:  # `--ping ""` clears it
        from jobctl.notify import check_ping

        c["ping"] = check_ping(opts.ping) if opts.ping else None
    if opts.keep_runs is not None:
        c["keep_runs"] = parse_int(opts.keep_runs, "--keep-runs", minimum=1)
    if opts.max_output is not None:
        c["max_output"] = parse_size(opts.max_output)
    if opts.description is not None:
        c["description"] = opts.description
    if opts.tag is not None:
        c["tags"] = sorted({check_name(t, "tag") for t in opts.tag if t})
    rescheduled = opts.cron is not None or opts.every is not None or opts.at is not None
    if opts.paused is not None:
        if job.state == "done" and not (rescheduled or opts.manual):  # as `resume` says
            raise ConflictError(f"job {job.name!r} is done (its --at time has passed); give it "
                                "a new schedule (--cron, --every or --at) to make it "
                                f"{'paused' if opts.paused else 'active'} again")  # fmt: skip
        c["state"] = "paused" if opts.paused else "active"
    elif job.state == "done" and rescheduled:
        c["state"] = "active"  # a new schedule revives a finished one-shot
    updated = job.copy_with(**c)
    timing = ("schedule", "schedule_kind", "anchor_at", "tz", "state")
    if not new and all(getattr(updated, f) == getattr(job, f) for f in timing):
        # the schedule is as it was: keep the next fire, even one that is due and not yet
        # recorded (the runner is busy or down), so that an edit never drops a fire
        return updated
    return with_next_fire(updated, now)


def with_next_fire(job: Job, now: float) -> Job:
    """The job with next_run_at recomputed from `now` (None unless it is active), never at or
    before what it has fired already (its high-water mark), however stale `now` is."""
    from jobctl import planner

    with schedule_input(f"job {job.name!r}"):  # e.g. its zone left the tz database: edit --tz
        nxt = planner.next_unfired(job, now) if job.state == "active" else None
    return job.copy_with(next_run_at=nxt)


def resumed(job: Job, now: float) -> Job:
    if job.state == "done":
        raise ConflictError(
            f"job {job.name!r} is done (its --at time has passed); give it a new schedule "
            "with jobctl edit"
        )
    return with_next_fire(job.copy_with(state="active", updated_at=now), now)


def paused(job: Job, now: float) -> Job:
    if job.state == "done":
        return job
    return job.copy_with(state="paused", next_run_at=None, updated_at=now)


def _optional(text: str, what: str) -> float | None:
    """A duration, or None for 'none'."""
    return None if text.strip().lower() == "none" else option_duration(text, what)


def _parse_at(text: str, tz: object, now: float) -> float:
    with schedule_input():
        return schedule.parse_at(text, tz, datetime.fromtimestamp(now, tz)).timestamp()  # type: ignore[arg-type]


def _check_program(command: list[str], shell: bool) -> None:
    """An empty program ('' or blank) would only fail at run time: refuse it now."""
    if command and not command[0].strip():
        what = "shell command" if shell else "program"
        raise UsageError(f"invalid command {command[0]!r}: the {what} is empty")


def missing_program(job: Job) -> str | None:
    """The job's program when it cannot be found now (not on the PATH its runs get, or a
    path that is not an executable file): its runs would fail with exit 127. None when it is
    found, or for a --shell command (the shell finds it)."""
    import os

    from jobctl.programs import which

    if job.shell or not job.command:
        return None
    program = job.command[0]
    if "/" in program:
        path = os.path.join(os.path.expanduser(job.cwd or "."), program)
        found = os.path.isfile(path) and os.access(path, os.X_OK)
    else:
        found = which(program, path=job.env.get("PATH", os.environ.get("PATH"))) is not None
    return None if found else program


def _parse_env(pairs: list[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise UsageError(f"invalid --env {pair!r}: use KEY=VALUE")
        env[key] = value
    return env


def dst_warning(job: Job, now: float, at: str | None = None) -> str | None:
    """SPEC 5's one-line warning for fixed times in a DST-ambiguous hour, else None: a cron
    job's, or the --at time `at` as typed (the job keeps only the instant it named)."""
    from jobctl import planner

    if job.schedule_kind == "at" and at is not None:
        return schedule.at_dst_warning(at, planner.zone(job.tz))
    if job.schedule_kind != "cron" or job.schedule is None:
        return None
    tz = planner.zone(job.tz)
    return schedule.dst_warning(
        schedule.parse_cron(job.schedule), tz, datetime.fromtimestamp(now, tz)
    )
