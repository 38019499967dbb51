"""Pure scheduling decisions about jobs: when a job fires next, and what a fire produces.

No I/O, no clock: `now`/`after` are always arguments. The runner asks this module what to do
and the store records it; the CLI uses it to preview fires.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, tzinfo
from functools import lru_cache
from typing import TYPE_CHECKING

from jobctl import schedule
from jobctl.models import FAILED_STATUSES, Job, Run, RunStatus, Trigger
from jobctl.records import record, replace

if TYPE_CHECKING:  # the runner passes its generator; `add` and `next` import none
    import random


@lru_cache(maxsize=4096)
def _cron(expr: str) -> schedule.Cron:
    return schedule.parse_cron(expr)


@lru_cache(maxsize=512)
def zone(name: str) -> tzinfo:
    return schedule.parse_zone(name)


@lru_cache(maxsize=4096)
def describe(expr: str) -> str:
    """Plain-English reading of a cron expression (cached: `list` shows many alike)."""
    return schedule.describe_cron(_cron(expr))


def fire_times(job: Job, after: float, n: int) -> list[datetime]:
    """The job's next `n` fire times strictly after `after`, aware in the job's zone (fewer if
    the schedule ends, or runs past year 9999). Ignores state and jitter."""
    tz = zone(job.tz)
    out: list[datetime] = []
    try:
        t = datetime.fromtimestamp(after, tz)
        while len(out) < n:
            nxt = _next(job, t, tz)
            if nxt is None:
                break
            out.append(nxt)
            t = nxt
    except OverflowError:  # beyond year 9999: no later time can be written down
        pass
    return out


def _next(job: Job, after: datetime, tz: tzinfo) -> datetime | None:
    kind = job.schedule_kind
    if kind == "cron":
        assert job.schedule is not None
        return schedule.next_cron_fire(_cron(job.schedule), after, tz)
    if kind == "every":
        assert job.schedule is not None and job.anchor_at is not None
        anchor = datetime.fromtimestamp(job.anchor_at, tz)
        return schedule.next_every_fire(anchor, _interval(job.schedule), after)
    if kind == "at":
        assert job.anchor_at is not None
        at = datetime.fromtimestamp(job.anchor_at, tz)
        return at if at.timestamp() > after.timestamp() else None
    return None


@lru_cache(maxsize=4096)
def _interval(text: str) -> float:
    return schedule.parse_duration(text)


def next_fire(job: Job, after: float) -> float | None:
    """Epoch seconds of the job's next fire strictly after `after`, None if it has none."""
    times = fire_times(job, after, 1)
    return times[0].timestamp() if times else None


def next_unfired(job: Job, now: float) -> float | None:
    """The job's next fire after `now` that has not fired yet: never at or before its
    high-water mark (a stale clock read, or a clock stepped back, never fires a time again)."""
    mark = job.fired_through
    return next_fire(job, now if mark is None or mark < now else mark)


def keeps_period(job: Job) -> bool:
    """--every jobs and wildcard cron jobs (SPEC 5), as opposed to fixed-time ones."""
    if job.schedule_kind == "every":
        return True
    return (
        job.schedule_kind == "cron"
        and job.schedule is not None
        and not _cron(job.schedule).fixed_time
    )


def is_reboot(job: Job) -> bool:
    return job.schedule_kind == "cron" and job.schedule is not None and _cron(job.schedule).reboot


# ---- what a fire produces ------------------------------------------------------------

#: a fire later than this when the runner gets to it was missed (runner down, machine asleep)
MISFIRE_GRACE_S = 30.0
#: `--misfire all` runs at most this many missed fires; older ones are recorded as skipped
MAX_CATCHUP = 100
_MAX_WALK = 10_000


@record
class FirePlan:
    """Runs to record for a job's due fire(s), and where the job goes next."""

    runs: list[Run]
    next_run_at: float | None
    state: str | None = None  # 'done' after a one-shot


def _due_times(job: Job, now: float) -> tuple[list[float], int]:
    """Fire times from job.next_run_at up to now (most recent last, at most _MAX_WALK), and how
    many earlier ones were passed over without being listed."""
    assert job.next_run_at is not None
    times = [job.next_run_at]
    passed = 0
    while True:
        if len(times) >= _MAX_WALK:  # a long outage of a frequent job: jump near `now`
            passed += len(times)
            times = []
            start = now - MISFIRE_GRACE_S - (MAX_CATCHUP + 1) * _typical_gap(job, now)
            nxt = next_fire(job, start)
        else:
            nxt = next_fire(job, times[-1])
        if nxt is None or nxt > now:
            return times, passed
        times.append(nxt)


def _typical_gap(job: Job, now: float) -> float:
    a, b = fire_times(job, now, 2)[:2] or (None, None)
    return (b.timestamp() - a.timestamp()) if a and b else 1.0


#: why fires were missed, for the `skipped` record (the runner knows which applies)
MISSED_RUNNER_DOWN = "no runner was up"


def plan_fire(
    job: Job,
    now: float,
    open_runs: Sequence[Run],
    rng: random.Random,
    missed_why: str = MISSED_RUNNER_DOWN,
    missed_through: float | None = None,
) -> FirePlan:
    """Decide what the job's due fire(s) become at `now` (SPEC 4 overlap/misfire/jitter).
    `missed_why` ends "missed while ..." in the record of fires skipped as missed. Fires due
    at or before `missed_through` were missed outright, however little late (no runner was
    up, or the machine slept): the misfire policy decides them, with no grace."""
    times, passed = _due_times(job, now)
    if job.fired_through is not None:  # fired already: never again (SPEC 6)
        times = [t for t in times if round(t * 1000) > round(job.fired_through * 1000)]
    nxt = next_unfired(job, now)
    state = "done" if job.schedule_kind == "at" else None
    window = job.catchup_window_s
    # a fire found at most MISFIRE_GRACE_S late (the runner was up but held up: a busy store,
    # a slow machine) still runs, late; older ones were missed and follow the misfire policy,
    # and so do those due while no runner was up (missed_through), however recent (SPEC 4)
    on_time = [t for t in times if now - t <= MISFIRE_GRACE_S
               and (missed_through is None or t > missed_through)]  # fmt: skip
    missed = times[: len(times) - len(on_time)]
    too_old = [t for t in missed if window is not None and now - t > window]
    missed = [t for t in missed if t not in too_old]
    runs: list[Run] = []

    def make(
        t: float, trigger: Trigger, status: RunStatus = "queued", error: str | None = None
    ) -> Run:
        jitter = rng.uniform(0, job.jitter_s) if job.jitter_s and status == "queued" else 0.0
        return Run(
            job=job.name,
            scheduled_for=t,
            trigger=trigger,
            status=status,
            created_at=now,
            not_before=t + jitter if status == "queued" else t,
            error=error,
            finished_at=now if status == "skipped" else None,
        )

    skipped_note = f"missed while {missed_why} ({len(too_old) + len(missed) + passed} fires)"
    for t in too_old[-MAX_CATCHUP:]:
        runs.append(make(t, "catchup", "skipped", "missed, older than the catch-up window"))
    if missed:
        if job.misfire == "skip":
            runs += [make(t, "catchup", "skipped", skipped_note) for t in missed[-MAX_CATCHUP:]]
        elif job.misfire == "all":
            runs += [
                make(t, "catchup", "skipped", "beyond the 100 catch-up runs")
                for t in missed[:-MAX_CATCHUP][-MAX_CATCHUP:]
            ]
            runs += [make(t, "catchup") for t in missed[-MAX_CATCHUP:]]
        elif not on_time:  # once: one run now stands for all of them
            runs.append(make(missed[-1], "catchup"))
    runs += [make(t, "schedule") for t in on_time]
    return _apply_overlap(job, runs, open_runs, nxt, state)


def _apply_overlap(
    job: Job, runs: list[Run], open_runs: Sequence[Run], nxt: float | None, state: str | None
) -> FirePlan:
    running = [r for r in open_runs if r.status == "running"]
    waiting = [r for r in open_runs if r.status == "queued"]
    plan = FirePlan(runs=runs, next_run_at=nxt, state=state)
    fresh = [r for r in runs if r.status == "queued"]
    if not fresh or job.overlap in ("allow", "replace"):
        return plan  # replace: the runner terminates the old run when the new one is due
    if job.misfire == "all" and len(fresh) > 1:
        return plan
    if job.overlap == "skip":  # nothing may wait or run beside it
        capacity = 0 if running or waiting else 1
    else:  # queue: one may run and one may wait
        capacity = 0 if waiting else (1 if running else 2)
    for run in fresh[capacity:]:
        run.status, run.finished_at = "skipped", run.created_at
        still = "running" if running else "queued"
        run.error = f"previous run still {still} (overlap={job.overlap})"
    return plan


def manual_refusal(job: Job, open_runs: Sequence[Run]) -> str | None:
    """Why the overlap policy refuses a manual run now (None: go ahead)."""
    running = [r for r in open_runs if r.status == "running"]
    waiting = [r for r in open_runs if r.status == "queued"]
    if job.overlap in ("allow", "replace") or not (running or waiting):
        return None
    if job.overlap == "queue" and not waiting:
        return None
    if job.overlap == "queue":  # one run may wait: the one that waits already is the reason
        what, why = f"run {waiting[0].id} is queued", " (one run waits at most)"
    else:
        what, why = f"run {(running or waiting)[0].id} is {'running' if running else 'queued'}", ""
    return (f"job {job.name!r}: {what} and its overlap is {job.overlap}{why}; use --force to run "
            "anyway")  # fmt: skip


# ---- which queued runs may start -------------------------------------------------------


#: why a run of a `replace` job ends unfinished: a newer run of the job took its place
REPLACED = "replaced by a newer run (overlap=replace)"


def pick_startable(
    queued: list[Run],
    running: list[Run],
    jobs: dict[str, Job],
    limit: int,
    force: bool = False,
    labels: frozenset[str] | None = None,
) -> tuple[list[Run], list[Run]]:
    """Queued runs to start now, at most `limit`: a job whose overlap is not `allow` waits for
    its running run (unless `force`), runs sharing a mutex never run together, and with
    `labels` (the runner's) a job pinned with `--on` runs only where all its labels are.
    Also returns the queued runs to cancel without starting them: those whose job is gone
    (error None: the store says "job removed"), and those of a `replace` job that a newer run
    of it waiting beside them replaces (never started only to be stopped at once)."""
    busy_jobs = {r.job for r in running}
    held = {m for r in running if r.job in jobs for m in jobs[r.job].mutexes}
    start: list[Run] = []
    gone: list[Run] = []
    newest = _newest_replacing(queued, jobs)
    for run in queued:
        job = jobs.get(run.job)
        if job is None:
            gone.append(run)
            continue
        if (run.job in newest and _replaceable(run)
                and newest[run.job] != (run.scheduled_for, run.id or 0)):  # fmt: skip
            gone.append(replace(run, error=REPLACED))
            continue
        if len(start) >= limit:
            continue
        if labels is not None and not labels.issuperset(job.on_labels):
            continue  # another runner's (or none yet)
        if run.job in busy_jobs and job.overlap != "allow" and not (force or run.forced):
            continue
        if held.intersection(job.mutexes):
            continue
        start.append(run)
        busy_jobs.add(run.job)
        held.update(job.mutexes)
    return start, gone


def _replaceable(run: Run) -> bool:
    """Whether `run` takes part in its `replace` job's policy: not a forced run (`--force`
    overrides the policy) nor a replay (asked for by someone: it waits its turn)."""
    return not run.forced and run.trigger != "replay"


def _newest_replacing(queued: list[Run], jobs: dict[str, Job]) -> dict[str, tuple[float, int]]:
    """`replace` job -> (fire, id) of its newest waiting run: the latest fire (a retry of an
    older fire, due later for its delay, is not newer than the fire after it), then the
    latest recorded; replays and forced runs take no part (_replaceable)."""
    newest: dict[str, tuple[float, int]] = {}
    for run in queued:
        job = jobs.get(run.job)
        if job is not None and job.overlap == "replace" and _replaceable(run):
            key = (run.scheduled_for, run.id or 0)
            newest[run.job] = max(newest.get(run.job, key), key)
    return newest


def replaced_by_waiting(queued: list[Run], running: list[Run], jobs: dict[str, Job]) -> list[Run]:
    """Running runs to terminate because a run of a later fire of their `replace` job is due
    (a retry of an older fire, or a replay, waits for the running run instead)."""
    newest = _newest_replacing(queued, jobs)
    return [r for r in running if r.job in newest and newest[r.job][0] > r.scheduled_for]


# ---- after a run ends ----------------------------------------------------------------


def retry_delay(job: Job, attempt: int, rng: random.Random) -> float:
    """Delay before attempt `attempt` + 1, with 50-100 % jitter (SPEC 4)."""
    base = job.retry_delay_s
    if job.backoff == "exponential":
        value = base * 2 ** (attempt - 1)
    elif job.backoff == "linear":
        value = base * attempt
    else:
        value = base
    return min(value, job.max_retry_delay_s) * rng.uniform(0.5, 1.0)


def after_end(job: Job | None, run: Run, now: float, rng: random.Random) -> tuple[Run, Run | None]:
    """The finished run (marked dead when it failed for good) and its retry, if any."""
    if run.status not in FAILED_STATUSES:
        return run, None
    if job is not None and run.trigger != "replay" and run.attempt <= job.retries:
        retry = Run(
            job=run.job,
            scheduled_for=run.scheduled_for,
            attempt=run.attempt + 1,
            trigger="retry",
            created_at=now,
            not_before=now + retry_delay(job, run.attempt, rng),
            upstream_run_id=run.upstream_run_id,
            upstream_status=run.upstream_status,
            chain=run.chain,
        )
        return run, retry
    run.dead = True
    return run, None
