"""Operations on runs that commands ask for: trigger a job (in the foreground or handed to the
runner), replay a fire, cancel a run, the exit code a finished run maps to; and the questions
the CLI asks about runs (a job's own history, the dead list, the run `logs` shows), answered
as data.

Below the CLI and beside the runner: no printing, no flag parsing; errors are JobctlErrors.
The executor and the planner are imported by the functions that need them (`status` and
`history` read the dead list from here: their start-up should not pay for process control).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import BinaryIO, TypeVar

from jobctl import owners
from jobctl.clock import Clock
from jobctl.errors import ConflictError, NotFoundError
from jobctl.models import FINAL_STATUSES, Job, Run, Trigger
from jobctl.records import replace
from jobctl.store.base import RunFilter, Store

WAIT_POLL_S = 0.25


def exit_code_of(run: Run) -> int:
    """SPEC 3: the job's own code; 128+N for signal N; 124 timeout; 127/126 could not start."""
    if run.status == "succeeded":
        return 0
    if run.status == "timed_out":
        return 124
    if run.signal:
        return 128 + run.signal
    if run.exit_code is not None:
        return run.exit_code
    if run.status == "cancelled":
        import signal  # here: `history`, `status` and `add` import this module (issue 13)

        return 128 + signal.SIGTERM
    return 1


def open_runs(store: Store, job: str) -> list[Run]:
    return store.list_runs(RunFilter(job=job, statuses=["queued", "running"]))


def check_overlap(store: Store, job: Job, force: bool) -> list[Run]:
    """Raise ConflictError if the overlap policy refuses a manual run; returns open runs."""
    from jobctl import planner

    runs = open_runs(store, job.name)
    refusal = None if force else planner.manual_refusal(job, runs)
    if refusal:
        raise ConflictError(refusal)
    return runs


def _next_attempt(store: Store, run: Run) -> int:
    siblings = store.list_runs(RunFilter(job=run.job))
    return 1 + max(r.attempt for r in siblings if r.scheduled_for == run.scheduled_for)


def new_manual_run(
    store: Store,
    job: Job,
    now: float,
    owner: str | None,
    trigger: Trigger = "manual",
    replay_of: Run | None = None,
    forced: bool = False,
    chain: bool = True,
) -> Run:
    """Record a queued manual (or replay) run; owned by `owner` when this process will run it.
    A replay is the same fire (scheduled_for) with the next attempt number."""
    fire = replay_of.scheduled_for if replay_of is not None else now
    attempt = _next_attempt(store, replay_of) if replay_of is not None else 1
    run = Run(job=job.name, scheduled_for=fire, trigger=trigger, attempt=attempt, created_at=now,
              not_before=now, owner=owner, forced=forced, chain=chain)  # fmt: skip
    return store.add_run(run)


def trigger(
    store: Store, job_name: str, now: float, owner: str | None, force: bool,
    replay_of: int | None = None, chain: bool = True, again: bool = False,
) -> tuple[Job, Run]:  # fmt: skip
    """Record a manual run (or the replay of run `replay_of`) of a job, queued; reserved for
    `owner` when that process will execute it itself, else for the runner. A replay's end
    triggers the jobs that run after it (`--after`) only with `chain` (`retry --chain`).

    The overlap policy applies unless `force` (ConflictError when it refuses); with `replace`
    and a run of our own, the running run is asked to stop (for the runner's runs, the runner
    replaces it itself). A replay of a fire that already has a run queued or running (being
    replayed, or retried) is refused (ConflictError) unless `again`. The replayed fire leaves
    the dead list (all its attempts).
    """
    job = store.get_job(job_name)
    original = store.get_run(replay_of) if replay_of is not None else None
    if original is not None and original.created_at < job.created_at:
        raise NotFoundError(f"run {original.id} was a run of an earlier job named "
                            f"{job.name!r}, since removed: it cannot be replayed")  # fmt: skip
    fire = fire_runs(store, original) if original is not None else []
    if original is not None and not again:
        busy = [r for r in fire if r.status in ("queued", "running")]
        if [r.id for r in busy] == [original.id]:  # the run itself is not over
            raise ConflictError(f"run {original.id} is still {original.status}; use --force "
                                "to replay its fire now all the same")  # fmt: skip
        if busy:
            raise ConflictError(f"the fire of run {original.id} is already being replayed "
                                f"(run {busy[0].id} is {busy[0].status}); use --force to "
                                "replay it again")  # fmt: skip
    current = check_overlap(store, job, force)
    if job.overlap == "replace" and not force and owner is not None and original is None:
        # (a replay waits for the running run instead: planner.replaced_by_waiting)
        for old in (r for r in current if r.status == "running"):
            request_cancel(store, old, now, wait_s=0)  # the new run starts once it has ended
    trigger: Trigger = "replay" if original else "manual"
    run = new_manual_run(store, job, now, owner, trigger, original, forced=force,
                         chain=chain or original is None)  # fmt: skip
    dead = [r.id for r in fire if r.dead and r.id is not None]
    if dead:  # the fire leaves the dead list; if the replay fails for good, it comes back once
        store.update_runs(dead, dead=False)
    return job, run


def fire_runs(store: Store, run: Run) -> list[Run]:
    """Every run of the fire `run` belongs to (its job and scheduled time), newest first."""
    return [r for r in store.list_runs(RunFilter(job=run.job))
            if r.scheduled_for == run.scheduled_for]  # fmt: skip


def dead_runs(store: Store, job: str | None = None) -> list[Run]:
    """The dead list, newest first: one entry per fire, its latest attempt. A dead run that a
    later run of its fire supersedes (a replay under way, or one dead itself) is not listed."""
    dead = store.list_runs(RunFilter(dead=True, job=job))
    if not dead:
        return []
    later = store.list_runs(RunFilter(jobs=sorted({r.job for r in dead}), since=min(
        r.created_at for r in dead)))  # fmt: skip
    newest: dict[tuple[str, float], int] = {}
    for r in later:
        key = (r.job, r.scheduled_for)
        newest[key] = max(newest.get(key, 0), r.id or 0)
    return [r for r in dead if (r.id or 0) >= newest.get((r.job, r.scheduled_for), 0)]


def dismiss_dead(store: Store, run_id: int | None, job: str | None = None) -> list[int]:
    """Take a dead run (or, with `run_id` None, every dead run, of `job` if given) off the dead
    list, with every older dead attempt of its fire; returns the dismissed listed runs' ids."""
    if run_id is None:
        listed = dead_runs(store, job)
        store.update_runs([r.id for r in store.list_runs(RunFilter(dead=True, job=job))
                           if r.id is not None], dead=False)  # fmt: skip
        return [r.id for r in listed if r.id is not None]
    run = store.get_run(run_id)
    if not run.dead:
        raise NotFoundError(f"run {run.id} is not in the dead list")
    store.update_runs([r.id for r in fire_runs(store, run) if r.dead and r.id is not None],
                      dead=False)  # fmt: skip
    return [run_id]


def history_filter(store: Store, job: str | None, everything: bool, base: RunFilter) -> RunFilter:
    """The runs `history NAME` shows: those of the job now under that name (a job re-added
    under a removed one's name starts a fresh history), or with `everything` all the runs
    recorded under the name. NotFoundError when the name has neither a job nor runs."""
    if job is None:
        return base
    current = job_or_none(store, job)
    if current is None:
        if not store.count_runs(RunFilter(job=job)):
            raise NotFoundError(f"no job named {job!r}")
        return base  # a removed job: its runs are all there is
    if everything:
        return base
    since = max(base.since or 0.0, current.created_at)
    return replace(base, since=since)


def job_or_none(store: Store, name: str) -> Job | None:
    """The job named `name`, None if there is none (it may have been removed)."""
    try:
        return store.get_job(name)
    except NotFoundError:
        return None


#: statuses of a run that ran (its output is what `logs NAME` shows when nothing runs)
RAN = ("succeeded", "failed", "timed_out", "cancelled", "abandoned")


def run_to_show(store: Store, target: str, follow: bool, now: float) -> Run | None:
    """The run `logs TARGET` shows. A job name (also a removed job's, whose runs stay): its
    running run; with `follow`, else a run due to start now that is newer than the last one
    that ran (just triggered); else the last run that ran. None when the job has not run
    yet (with `follow`, which then waits for its first run). Otherwise TARGET is a run id.
    Runs of an earlier job of the same name are not the current job's."""
    from jobctl.models import parse_run_id

    job = job_or_none(store, target)
    named = job is not None or store.count_runs(RunFilter(job=target))
    if not named:
        if target.isascii() and target.isdigit():  # a run id (unless a job has that name)
            return store.get_run(parse_run_id(target))
        raise NotFoundError(f"no job named {target!r}")
    since = job.created_at if job is not None else None
    running = store.list_runs(RunFilter(job=target, statuses=["running"], since=since, limit=1))
    if running:
        return running[0]
    last = store.list_runs(RunFilter(job=target, statuses=RAN, since=since, limit=1))
    if follow:
        waiting = store.list_runs(RunFilter(job=target, statuses=["queued"], since=since))
        due = [r for r in waiting if r.not_before <= now and (not last or r.id > (last[0].id or 0))]
        if due:
            return min(due, key=lambda r: r.id or 0)
    if not last:
        if follow:
            return None
        raise NotFoundError(f"job {target!r} has not run yet")
    return last[0]


def next_run_started(store: Store, job: str, after_id: int) -> Run | None:
    """The oldest run of `job` newer than run `after_id` that has started (or ended): what
    `logs NAME --follow` shows next."""
    started = ["running", *RAN]
    newer = [r for r in store.list_runs(RunFilter(job=job, statuses=started, limit=50))
             if (r.id or 0) > after_id]  # fmt: skip
    return min(newer, key=lambda r: r.id or 0) if newer else None


def run_foreground(
    store: Store,
    job: Job,
    run: Run,
    clock: Clock,
    force: bool,
    tee: BinaryIO | None,
    waiting: Callable[[str], None],
    interrupted: Callable[[], bool],
    started: Callable[[], None] = lambda: None,
    tee_err: BinaryIO | None = None,
) -> Run:
    """Claim our reserved run (waiting for mutexes / the previous run), execute it here, and
    return the recorded final run. `interrupted()` is polled: True cancels the run."""
    from jobctl import executor, planner
    from jobctl.runner import execute

    me = owners.me()
    assert run.id is not None and run.owner == me

    def mine(queued, running, jobs, limit):  # type: ignore[no-untyped-def]
        picked, _ = planner.pick_startable(
            [r for r in queued if r.id == run.id], running, jobs, 1, force
        )
        return picked, []

    told = False
    while True:
        claimed = store.claim(me, owners.host(), clock.now(), 1, mine)
        if claimed:
            run, job = claimed[0]
            break
        if interrupted():
            return store.update_run(
                run.id, status="cancelled", finished_at=clock.now(), error="interrupted"
            )
        current = store.get_run(run.id)
        if current.status in FINAL_STATUSES:  # cancelled while it waited
            return current
        if not told:
            waiting(f"run {run.id} waits for " + (", ".join(job.mutexes) or "the previous run"))
            told = True
        time.sleep(WAIT_POLL_S)
    result: list[tuple[Run, Run | None]] = []
    procs: list[executor.Process] = []

    def on_start(proc: executor.Process) -> None:
        procs.append(proc)
        started()

    def work() -> None:
        import random  # for retries' jitter: only a foreground run needs it

        result.append(execute(store, run, job, clock, random.Random(), tee=tee,
                              on_start=on_start, persist=_persist, tee_err=tee_err))  # fmt: skip

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(WAIT_POLL_S)
        if procs and (interrupted() or _cancel_requested(store, run)):
            procs[0].terminate("cancelled", "interrupted" if interrupted() else "cancelled")
    if not result:
        raise RuntimeError(f"run {run.id} did not record its end")
    return result[0][0]


T = TypeVar("T")
#: how long a foreground run keeps trying to record its end through a store outage
PERSIST_S = 60.0


def _persist(write: Callable[[], T]) -> T:
    """A foreground run's end must be recorded, or the next runner would take the finished
    run for one lost and run it again: retry through a store outage, with backoff, for up to
    PERSIST_S (then the error ends `jobctl run` with exit 1 and the run is recovered)."""
    from jobctl.runner.execution import retry_store

    deadline = time.monotonic() + PERSIST_S
    return retry_store(write, lambda: time.monotonic() >= deadline)


def _cancel_requested(store: Store, run: Run) -> bool:
    assert run.id is not None
    return store.get_run(run.id).cancel_requested_at is not None


def request_cancel(store: Store, run: Run, now: float, wait_s: float | None = None) -> Run:
    """Cancel a queued or running run (SPEC 6); returns the run as it ends up.

    Queued: cancelled at once. Running: marked, then its owner (runner or `jobctl run`) is
    nudged to terminate it; if the owner is gone, we terminate its process group ourselves.
    """
    assert run.id is not None
    if run.status in FINAL_STATUSES:
        raise ConflictError(f"run {run.id} already ended ({run.status})")
    if run.status == "queued":
        done = store.update_run(run.id, status="cancelled", finished_at=now, error="cancelled")
        return done
    store.update_run(run.id, cancel_requested_at=now)
    # on a shared store a run of another machine is its runner's to stop: it hears of the
    # request by notification (within 200 ms) and records the end; we wait for that
    elsewhere = store.shared and run.host is not None and run.host != owners.host()
    if not elsewhere and not owners.nudge(run.owner):
        if run.pid and run.proc_start is not None:
            import signal

            from jobctl import executor

            executor.kill_group(run.pid, run.proc_start, signal.SIGTERM)
        return store.update_run(
            run.id, status="cancelled", finished_at=now, error="cancelled (its owner was gone)"
        )
    deadline = time.monotonic() + (wait_s if wait_s is not None else 15.0)
    while time.monotonic() < deadline:
        current = store.get_run(run.id)
        if current.status in FINAL_STATUSES:
            return current
        time.sleep(0.1)
    return store.get_run(run.id)
