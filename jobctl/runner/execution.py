"""The execution of ONE claimed run, from its start to its recorded end (and its retry).

`execute()` is the foreground `jobctl run`'s (the runner's pool drives many runs at once in its
own event loop, workers.py, with the same Spec, environment and record_end). It knows the
store, the clock and the executor, not the loop or the CLI: the caller passes how to persist
a write through a store outage (`persist`) and whether it may still start (`go`). Also here:
the job's environment and executor Spec (with the run's markers), and the `Gates` board that
releases gated processes at their exact start time.
"""

from __future__ import annotations

import contextlib
import os
import random
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, TypeVar

from jobctl import executor, planner
from jobctl.clock import Clock, OffsetClock
from jobctl.errors import StoreDataError, StoreError
from jobctl.models import Job, Run
from jobctl.records import replace
from jobctl.store.base import Store

OWNER_VAR = "JOBCTL_OWNER"
#: longest wait for the store on the thread that watches a job (its output, its start time):
#: a busy store must never delay a timeout or a cancel
WATCH_WAIT_S = 0.05

T = TypeVar("T")
#: does a store write that must not be lost: persist(write) -> write's result
Persist = Callable[[Callable[[], T]], T]


def local_shift(clock: Clock) -> float:
    """What to add to this host's wall-clock readings (the executor's start and end times)
    to put them on `clock`'s time line: on a shared store, the store's clock; else 0."""
    return clock.now() - time.time() if isinstance(clock, OffsetClock) else 0.0


def once(write: Callable[[], T]) -> T:
    """The default Persist: try the write once."""
    return write()


def retry_store(
    write: Callable[[], T],
    give_up: Callable[[], bool],
    wait: Callable[[float], object] = time.sleep,
    failed: Callable[[StoreError], None] | None = None,
) -> T:
    """A Persist's loop: do `write`, retrying through store errors with backoff (0.25 s
    doubling to 5 s), telling `failed` of each, until it succeeds or `give_up()` is true
    (then the error is raised). A StoreDataError (the store refuses this data) is raised at
    once: retrying it would block whoever waits on it for ever."""
    delay = 0.25
    while True:
        try:
            return write()
        except StoreDataError:  # the store refused the data: the same write never succeeds
            raise
        except StoreError as exc:
            if failed is not None:
                failed(exc)
            if give_up():
                raise
            wait(delay)
            delay = min(delay * 2, 5.0)


_BASE_ENV: dict[bytes, bytes] | None = None


def job_env(job: Job, run: Run) -> dict[bytes, bytes]:
    """The job's full environment, as bytes (what exec takes: no per-run re-encoding of the
    runner's own environment, which is read once)."""
    global _BASE_ENV
    if _BASE_ENV is None:
        _BASE_ENV = dict(os.environb)
    env = dict(_BASE_ENV)
    env.update((os.fsencode(k), os.fsencode(v)) for k, v in job.env.items())
    tz = planner.zone(job.tz)
    ours = {
        "JOBCTL_JOB": job.name,
        "JOBCTL_RUN_ID": str(run.id),
        "JOBCTL_ATTEMPT": str(run.attempt),
        "JOBCTL_TRIGGER": run.trigger,
        "JOBCTL_SCHEDULED_FOR": datetime.fromtimestamp(run.scheduled_for, tz).isoformat(
            timespec="milliseconds"
        ),
        "JOBCTL_RUN_KEY": run.run_key,
    }
    if run.upstream_run_id is not None:  # a run queued by --after: the run it follows
        ours["JOBCTL_UPSTREAM_RUN_ID"] = str(run.upstream_run_id)
        ours["JOBCTL_UPSTREAM_STATUS"] = run.upstream_status or ""
    if run.owner:
        ours[OWNER_VAR] = run.owner  # with JOBCTL_RUN_ID, how recovery finds an unrecorded pid
    env.update((os.fsencode(k), os.fsencode(v)) for k, v in ours.items())
    return env


def run_markers(run: Run) -> frozenset[bytes]:
    """The `NAME=value` entries that mark a run's processes in their environment (see
    job_env): how stopping it reaches those that left its group (setsid), and how recovery
    finds them when their pid was never recorded. Empty for a run with no owner or id."""
    if not run.owner or run.id is None:
        return frozenset()
    return frozenset({f"JOBCTL_RUN_ID={run.id}".encode(), f"{OWNER_VAR}={run.owner}".encode()})


def gate_mark(gates: Path | None, run: Run) -> Path | None:
    """The file a gated process of `run` leaves in the folder `gates` when its runner dies
    before opening the gate: the command never ran, and recovery puts the run back in the
    queue instead of recording it abandoned (SPEC 7: nothing lost). Named by the run's id and
    creation time: a stale mark never matches a later run that reuses the id."""
    tag = run_tag(run)
    return None if gates is None or tag is None else gates / tag


def run_tag(run: Run) -> str | None:
    """A run's name on this host's disk (its gate mark, its wait mark): its id
    and creation time, so that a stale one never matches a later run that reuses the id."""
    return None if run.id is None else f"{run.id}-{round(run.created_at * 1000)}"


def spec_for(job: Job, run: Run, split_stderr: bool = False) -> executor.Spec:
    markers = run_markers(run)  # stopping the run also stops its processes outside its group
    return executor.Spec(
        argv=list(job.command),
        shell=job.shell,
        cwd=job.cwd,
        env=job_env(job, run),
        timeout_s=job.timeout_s,
        kill_grace_s=job.kill_grace_s,
        max_output=job.max_output,
        markers=markers,
        split_stderr=split_stderr,
    )


class Gates:
    """Gated processes waiting for their start time. Whichever worker wakes first opens every
    gate that is due, in a row, so a burst of fires due at one instant is released within a
    fraction of a millisecond instead of one thread wake-up (and GIL hand-over) after another.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[int, tuple[float, executor.Process]] = {}

    def add(self, at: float, proc: executor.Process) -> None:
        with self._lock:
            self._waiting[id(proc)] = (at, proc)

    def withdraw(self, proc: executor.Process) -> bool:
        """Take back a gate that is still closed; False if it has been opened already."""
        with self._lock:
            return self._waiting.pop(id(proc), None) is not None

    def open_due(self, now: float) -> None:
        with self._lock:
            due = sorted((at, key) for key, (at, _) in self._waiting.items() if at <= now)
            for _, key in due:
                self._waiting.pop(key)[1].release()


def execute(
    store: Store,
    run: Run,
    job: Job,
    clock: Clock,
    rng: random.Random,
    tee: BinaryIO | None = None,
    on_start: Callable[[executor.Process], None] | None = None,
    tee_err: BinaryIO | None = None,
    go: Callable[[], bool] = lambda: True,
    gates: Gates | None = None,
    persist: Persist | None = None,
    report: Callable[[StoreError], None] | None = None,
    fence: tuple[str, int] | None = None,
) -> tuple[Run, Run | None]:
    """Start a claimed run at its not_before, watch it to its end, and record the outcome
    (and its retry). The run is already `running` in the store.

    The process is spawned gated and its pid recorded before the gate opens, so a crash at
    any point leaves either a recorded pid to terminate or a process that never ran. If `go()`
    is false at the start time (the runner is stopping), the run goes back to the queue.
    `gates` is shared by the runner's workers (see Gates). `persist(write)` does a store
    write that must not be lost (the runner retries it through a store outage; by default it
    is tried once). While the store fails, the job goes on and is watched as usual: its output
    is held in memory (at most its --max-output) and written, with its end, once the store
    answers again; `report(error)` hears of each store failure met while watching. `fence`:
    the runner's (owner, lease epoch) on a shared store, its end is recorded only while that
    lease holds (FencedError otherwise). `tee`: where the job's output is copied as it
    comes; with `tee_err`, its stderr is kept apart and copied there (the foreground run on
    a terminal). Returns (the final run, its retry or None).
    """
    gates = gates or Gates()
    persist = persist or once
    shift = local_shift(clock)  # executor times (this host's clock) onto the store's
    assert run.id is not None
    # Ahead of its time, the process is spawned gated (the pid recorded before the gate opens,
    # so it starts on time); a run already due is spawned directly (one exec, not two) and
    # carries JOBCTL_RUN_ID and JOBCTL_OWNER, by which recovery finds it if we die before
    # its pid is recorded.
    run_id = run.id
    try:
        store.sync()  # the claim (run `running`, ours) is durable before any process exists
    except StoreError:  # not started: back to the queue (once the store takes it)
        return persist(lambda: store.update_run(run_id, status="queued", owner=None,
                                                host=None)), None  # fmt: skip
    gated = run.not_before > clock.now()
    if not gated and not go():  # stopping: not started, back to the queue
        requeued = persist(lambda: store.update_run(run_id, status="queued", owner=None,
                                                    host=None))  # fmt: skip
        return requeued, None
    try:
        proc = executor.start(spec_for(job, run, split_stderr=tee_err is not None), gated=gated)
    except executor.SpawnError as exc:
        t = clock.now()
        final = replace(
            run,
            status="failed",
            exit_code=exc.exit_code,
            error=str(exc),
            started_at=t,
            finished_at=t,
        )
        return record_end(store, job, final, clock, rng, fence=fence)
    try:
        began = proc.started_at + shift
        planned = max(began, run.not_before) if gated else began
        # pid and start time: what recovery and `cancel` check before signalling the group.
        # A gated process waits (its start time is read at once); a direct one is exec'ing,
        # and reading /proc/PID/stat then is costly: its start time is recorded once it has
        # run SETTLE_S (jobs shorter than that end first; recovery finds them by marker)
        run = replace(run, pid=proc.pid, proc_start=proc.proc_start if gated else None,
                      started_at=planned)  # fmt: skip
        # not fatal: if the store cannot take it, recovery finds the process by its markers
        # (JOBCTL_RUN_ID and JOBCTL_OWNER, in the environment of gated and direct spawns)
        with contextlib.suppress(StoreError):
            store.mark_started(run)
        if gated:
            gates.add(run.not_before, proc)
            _wait_until(clock, run.not_before)
    except BaseException:
        gates.withdraw(proc)
        proc.abort()
        raise
    if gated and not go() and gates.withdraw(proc):
        proc.abort()
        requeued = store.update_run(run.id, status="queued", owner=None, host=None, pid=None,
                                    proc_start=None, started_at=None)  # fmt: skip
        return requeued, None
    if go():
        gates.open_due(clock.now())  # ours, and any other worker's that is due by now
    proc.release()  # a no-op if open_due did it (or for a process spawned directly)
    if on_start is not None:
        on_start(proc)

    # The hooks below run on the thread that watches the job (its timeout, its cancel): they
    # never wait on the store longer than WATCH_WAIT_S, and after a failure they only hold
    # the output (bounded, above) until a backoff has passed.
    retry_at = [0.0]  # monotonic time before which the store is not tried again
    backoff = [WATCH_WAIT_S]

    def failed(exc: StoreError) -> None:
        retry_at[0] = time.monotonic() + backoff[0]
        backoff[0] = min(backoff[0] * 2, 5.0)
        if report is not None:
            report(exc)

    def settled(p: executor.Process) -> None:
        if not gated and time.monotonic() >= retry_at[0]:
            try:
                store.mark_started(replace(run, proc_start=p.proc_start), wait_s=WATCH_WAIT_S)
            except StoreError as exc:
                failed(exc)

    held: list[bytes] = []  # output the store could not take yet, in order (bounded, above)

    def sink(data: bytes) -> None:
        held.append(data)
        if time.monotonic() < retry_at[0]:
            return
        try:
            while held:
                store.append_output(run_id, held[0], wait_s=WATCH_WAIT_S)
                held.pop(0)
            backoff[0] = WATCH_WAIT_S
        except StoreError as exc:
            failed(exc)

    outcome = proc.watch(sink, tee=tee, settled=settled, tee_err=tee_err)

    def write_held() -> None:
        while held:
            store.append_output(run_id, held[0])
            held.pop(0)

    persist(write_held)
    asked = outcome.status != "succeeded" and persist(lambda: store.get_run(run_id))
    final = final_run(run, outcome, shift, bool(asked and asked.cancel_requested_at))
    return record_end(store, job, final, clock, rng, persist, fence=fence)


def final_run(run: Run, outcome: executor.Outcome, shift: float, cancelled: bool) -> Run:
    """The run as its process ended (`cancelled`: `jobctl cancel` asked for it, whatever the
    signal that ended it); `shift` puts the executor's times on the store's clock."""
    status = "cancelled" if cancelled else outcome.status
    return replace(
        run,
        status=status,
        exit_code=outcome.exit_code,
        signal=outcome.signal,
        error=outcome.error if status != "cancelled" else (outcome.error or "cancelled"),
        started_at=outcome.started_at + shift,
        finished_at=outcome.finished_at + shift,
        output_bytes=outcome.output_bytes,
    )


def _wait_until(clock: Clock, t: float) -> None:
    """Never start early: sleep (by the wall clock) until `t`."""
    while (left := t - clock.now()) > 0:
        clock.sleep(left)


def record_end(
    store: Store,
    job: Job | None,
    final: Run,
    clock: Clock,
    rng: random.Random,
    persist: Persist | None = None,
    report: Callable[[StoreError], None] | None = None,
    fence: tuple[str, int] | None = None,
) -> tuple[Run, Run | None]:
    """Record a run's end and its retry (planner.after_end); `fence` as for execute."""
    final, retry = planner.after_end(job, final, clock.now(), rng)
    keep = job.keep_runs if job else None
    (persist or once)(lambda: store.finish_run(final, retry, keep_runs=keep, fence=fence))
    return final, retry


def describe_end(run: Run, retry: Run | None, now: float) -> str:
    text = f"{run.job}: run {run.id} {run.status}"
    if run.duration_s is not None:
        text += f" in {run.duration_s:.3f}s"
    if run.error and run.status != "succeeded":
        text += f" ({run.error})"
    if retry is not None:
        text += f"; retry in {max(0.0, retry.not_before - now):.1f}s"
    elif run.dead:
        text += "; dead (no retries left)"
    return text
