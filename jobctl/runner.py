"""The runner loop: recover -> fire -> start -> (workers watch and record) -> sleep.

`Runner.run()` is what `jobctl runner` calls; `execute()` runs one claimed run from start to
its recorded end and is shared with the foreground `jobctl run`. This module knows nothing
about the CLI: it takes a store, a clock, and an `emit(event, text)` callback for its
one-line-per-event log. Scheduling rules live in planner.py, process handling in executor.py.
"""

from __future__ import annotations

import contextlib
import os
import random
import select
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import BinaryIO, TypeVar

from jobctl import executor, owners, planner
from jobctl.clock import Clock, SystemClock
from jobctl.errors import ConflictError, StoreError
from jobctl.models import Job, Run
from jobctl.store.base import Fire, RunFilter, RunnerInfo, Store

Emit = Callable[[str, str], None]
#: longest sleep: bounds how late a wall-clock jump (suspend, NTP step) or a missed nudge is seen
MAX_SLEEP_S = 5.0
#: fires due within this lead are recorded and claimed ahead of time; the worker then starts
#: the process at its exact time, so store writes do not add to a run's lateness
LEAD_S = 0.05
HEARTBEAT_S = 10.0
MAINTENANCE_S = 30.0
OWNER_VAR = "JOBCTL_OWNER"
DUE_BATCH = 1000  # due jobs fired per transaction
#: why fires due while the runner was up were missed, when nothing more precise is known
HELD_UP = "the runner was held up"


def _quiet(event: str, text: str) -> None:
    pass


T = TypeVar("T")
#: does a store write that must not be lost: persist(write) -> write's result
Persist = Callable[[Callable[[], T]], T]


def _once(write: Callable[[], T]) -> T:
    return write()


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
    if run.owner:
        ours[OWNER_VAR] = run.owner  # with JOBCTL_RUN_ID, how recovery finds an unrecorded pid
    env.update((os.fsencode(k), os.fsencode(v)) for k, v in ours.items())
    return env


def spec_for(job: Job, run: Run) -> executor.Spec:
    # the run's markers: stopping it also stops its processes that left its group (setsid)
    markers = (
        frozenset({f"JOBCTL_RUN_ID={run.id}".encode(), f"{OWNER_VAR}={run.owner}".encode()})
        if run.owner and run.id is not None
        else frozenset()
    )
    return executor.Spec(
        argv=list(job.command),
        shell=job.shell,
        cwd=job.cwd,
        env=job_env(job, run),
        timeout_s=job.timeout_s,
        kill_grace_s=job.kill_grace_s,
        max_output=job.max_output,
        markers=markers,
    )


@dataclass
class Active:
    run: Run
    job: Job
    proc: executor.Process | None = None
    stop: tuple[str, str] | None = None  # (status, reason) asked for before the process began


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
    go: Callable[[], bool] = lambda: True,
    gates: Gates | None = None,
    persist: Persist | None = None,
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
    answers again. Returns (the final run, its retry or None).
    """
    gates = gates or Gates()
    persist = persist or _once
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
        proc = executor.start(spec_for(job, run), gated=gated)
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
        return _record_end(store, job, final, clock, rng)
    try:
        planned = max(proc.started_at, run.not_before) if gated else proc.started_at
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

    def settled(p: executor.Process) -> None:
        if not gated:
            with contextlib.suppress(StoreError):
                store.mark_started(replace(run, proc_start=p.proc_start))

    held: list[bytes] = []  # output the store could not take yet, in order (bounded, above)

    def sink(data: bytes) -> None:
        held.append(data)
        with contextlib.suppress(StoreError):
            while held:
                store.append_output(run_id, held[0])
                held.pop(0)

    outcome = proc.watch(sink, tee=tee, settled=settled)

    def write_held() -> None:
        while held:
            store.append_output(run_id, held[0])
            held.pop(0)

    persist(write_held)
    status = outcome.status
    if status != "succeeded" and persist(lambda: store.get_run(run_id)).cancel_requested_at:
        status = "cancelled"
    final = replace(
        run,
        status=status,
        exit_code=outcome.exit_code,
        signal=outcome.signal,
        error=outcome.error if status != "cancelled" else (outcome.error or "cancelled"),
        started_at=outcome.started_at,
        finished_at=outcome.finished_at,
        output_bytes=outcome.output_bytes,
    )
    return _record_end(store, job, final, clock, rng, persist)


def _wait_until(clock: Clock, t: float) -> None:
    """Never start early: sleep (by the wall clock) until `t`."""
    while (left := t - clock.now()) > 0:
        clock.sleep(left)


def _record_end(
    store: Store,
    job: Job | None,
    final: Run,
    clock: Clock,
    rng: random.Random,
    persist: Persist | None = None,
) -> tuple[Run, Run | None]:
    final, retry = planner.after_end(job, final, clock.now(), rng)
    keep = job.keep_runs if job else None
    (persist or _once)(lambda: store.finish_run(final, retry, keep_runs=keep))
    return final, retry


class Runner:
    def __init__(
        self,
        store: Store,
        workers: int = 4,
        clock: Clock | None = None,
        emit: Emit = _quiet,
        grace_s: float = 30.0,
        rng: random.Random | None = None,
        guard: Callable[[], str | None] | None = None,
    ) -> None:
        """`guard()` names a reason to stop serving this store (its file was deleted or
        replaced, the runner lock lost), else None; it is asked before each round of fires."""
        self.store = store
        self.guard = guard
        #: why the runner stopped by itself (the store went away): `run()` then returns 1
        self.failure: str | None = None
        self.since = 0.0  # when this runner started: fires due before it were missed "down"
        #: why fires due while this runner was up were missed (see fire_due)
        self._missed_why = HELD_UP
        self._outage: float | None = None  # monotonic start of the current store outage
        self._outage_lock = threading.Lock()
        self._stopped = threading.Event()  # wakes the store-retry backoff when stopping
        self._give_up_at: float | None = None  # store retries end here once stopping
        self.workers = workers
        self.clock = clock or SystemClock()
        self.emit = emit
        self.grace_s = grace_s
        self.rng = rng or random.Random()
        self.owner = owners.me()
        self.host = owners.host()
        self.active: dict[int, Active] = {}
        self._lock = threading.Lock()
        self._claiming = threading.Lock()  # one claim at a time: free slots are never overbooked
        self.gates = Gates()
        self._once_at: float | None = None  # --once: claim only what was due at this time
        self._stopping = False
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        os.set_blocking(self._wake_r, False)

    # ---- wiring ---------------------------------------------------------------------------
    def wake(self) -> None:
        with contextlib.suppress(BlockingIOError):  # a full pipe: the loop is awake anyway
            os.write(self._wake_w, b"\0")

    def stop(self) -> None:
        """Stop firing and wind down (SIGTERM/SIGINT)."""
        self._stopping = True
        self._stopped.set()
        self.wake()

    # ---- the store failing: report once, retry with backoff, carry on ----------------------
    def _store_failed(self, exc: Exception) -> None:
        with self._outage_lock:
            first = self._outage is None
            if first:
                self._outage = time.monotonic()
        if first:
            self.emit("error", f"store unavailable: {exc}; retrying with backoff "
                      "(running jobs stay supervised, their ends are recorded later)")  # fmt: skip

    def _store_ok(self) -> None:
        if self._outage is None:
            return
        with self._outage_lock:
            began, self._outage = self._outage, None
        if began is not None:
            self._missed_why = "the store was unavailable"
            self.emit("store", f"store available again after {time.monotonic() - began:.1f}s")

    def persist(self, write: Callable[[], T]) -> T:
        """Do a store write that must not be lost, retrying through a store outage with
        backoff (0.25 s doubling to 5 s). Gives up (re-raising) only once the runner is
        stopping and its grace is over: a run left `running` is then recovered by the next
        runner (SPEC 7)."""
        delay = 0.25
        while True:
            try:
                result = write()
            except StoreError as exc:
                self._store_failed(exc)
                give_up = self._give_up_at
                if give_up is not None and time.monotonic() >= give_up:
                    raise
                if self._stopped.is_set():
                    time.sleep(delay)  # stopping: keep trying until the grace is over
                else:
                    self._stopped.wait(delay)  # a stop ends the wait: the grace starts
                delay = min(MAX_SLEEP_S, delay * 2)
                continue
            self._store_ok()
            return result

    def install_signals(self) -> None:
        signal.set_wakeup_fd(self._wake_w)
        signal.signal(signal.SIGTERM, lambda *_: self.stop())
        signal.signal(signal.SIGINT, lambda *_: self.stop())
        signal.signal(owners.NUDGE, lambda *_: None)  # wakes the select via the wakeup fd

    # ---- the loop -------------------------------------------------------------------------
    def run(self, once: bool = False) -> int:
        """Serve the store until stopped (or, with `once`, until what is due now is done).
        Returns 0, or 1 when the runner stopped because its store went away (`failure`)."""
        now = self.since = self.clock.now()
        self.emit("start", f"runner {self.owner} started with {self.workers} workers")
        try:
            if once:  # from an external timer: a store error ends it (exit 1), to try again
                self._register(now)
                self.recover(now)
                self._run_once()
            else:
                self._loop()
            self._shutdown()
        finally:
            with contextlib.suppress(StoreError):  # a dead pid reads "not running" anyway
                self.store.unregister_runner(self.owner)
        return 1 if self.failure else 0

    def _register(self, now: float) -> None:
        info = RunnerInfo(owner=self.owner, pid=os.getpid(), host=self.host, since=self.since,
                          heartbeat_at=now)  # fmt: skip
        self.store.register_runner(info)

    def _check_guard(self) -> bool:
        """False (and the runner stopping, with `failure` set) once the guard objects."""
        reason = self.guard() if self.guard is not None else None
        if reason is None:
            return True
        if self.failure is None:
            self.failure = f"{reason}; this runner stops (start one on the store now there)"
            self.emit("error", self.failure)
        self.stop()
        return False

    def _loop(self) -> None:
        """Fire, start, beat, maintain, sleep. A store error (disk full, read-only, locked
        past the busy timeout) ends the round: it is reported once, the round is retried with
        backoff, and the runner carries on by itself once the store answers again; running
        jobs stay supervised by their workers meanwhile."""
        wall, mono = self.clock.now(), time.monotonic()
        last_beat = last_maint = wall
        startup = ["register", "recover", "reboot"]  # done once each, retried until done
        seen: int | None = None
        backoff = 0.0
        while not self._stopping and self._check_guard():
            try:
                now = self.clock.now()
                jump = (now - wall) - (time.monotonic() - mono)
                wall, mono = now, time.monotonic()
                while startup:
                    {"register": self._register, "recover": self.recover,
                     "reboot": self.fire_reboot}[startup[0]](now)  # fmt: skip
                    startup.pop(0)
                if jump > 2.0:
                    self.emit("clock", f"wall clock jumped by {jump:+.1f}s; applying misfire "
                              "policies")  # fmt: skip
                    self._missed_why = "the machine was asleep or its clock jumped"
                elif jump < -2.0:
                    self.rewind(now, jump)
                horizon = now + LEAD_S
                self.fire_due(horizon)
                if self.active:
                    self.check_cancels()
                self.start_queued(horizon)
                if now - last_beat >= HEARTBEAT_S:
                    self.store.heartbeat(self.owner, now)
                    last_beat = now
                if now - last_maint >= MAINTENANCE_S:
                    self.recover(now)
                    last_maint = now
                wall, mono = self.clock.now(), time.monotonic()
                delay = self._sleep_for(wall)
                self._store_ok()
                backoff = 0.0
            except StoreError as exc:
                self._store_failed(exc)
                backoff = delay = min(MAX_SLEEP_S, max(0.25, backoff * 2))
                wall, mono = self.clock.now(), time.monotonic()
            self._sleep(delay, seen)
            try:
                seen = self.store.changed()
            except StoreError:
                seen = None

    def _sleep_for(self, now: float) -> float:
        due = self.store.next_wakeup(now + LEAD_S)
        delay = MAX_SLEEP_S if due is None else min(MAX_SLEEP_S, due - LEAD_S - now)
        return max(0.0, delay)

    def _sleep(self, seconds: float, seen: int | None) -> None:
        """Sleep until `seconds` pass, a nudge/signal/worker wakes us, or the store changed."""
        try:
            unchanged = seen is None or self.store.changed() == seen
        except StoreError:
            unchanged = True
        if seconds > 0 and unchanged:
            select.select([self._wake_r], [], [], seconds)
        self._drain()

    def _drain(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self._wake_r, 4096):
                pass
        executor.reap_orphans()  # adopted orphans of our jobs (a no-op unless a subreaper)

    def _run_once(self) -> None:
        """`--once`: start all that is due or queued now, wait for it, and return."""
        start = self._once_at = self.clock.now()
        self.fire_due(start)
        while not self._stopping:
            self.start_queued(start)
            with self._lock:
                if not self.active:
                    return
            select.select([self._wake_r], [], [], MAX_SLEEP_S)
            self._drain()

    # ---- steps ----------------------------------------------------------------------------
    def fire_due(self, now: float) -> None:
        """Record every due fire, in one transaction per batch of due jobs. Fires missed
        before this runner started were missed while no runner was up; later ones while
        the runner was held up (its store unavailable, the machine asleep, ...)."""
        if self.guard is not None and not self._check_guard():
            return  # never fire into a store that is not the one at our path any more
        while due := self.store.due_jobs(now, DUE_BATCH):
            open_runs: dict[str, list[Run]] = {}
            for r in self.store.list_runs(
                RunFilter(jobs=[j.name for j in due], statuses=["queued", "running"])
            ):
                open_runs.setdefault(r.job, []).append(r)
            fires: list[Fire] = []
            for job in due:
                why = self._missed_why
                if job.next_run_at is not None and job.next_run_at < self.since:
                    why = planner.MISSED_RUNNER_DOWN
                try:
                    plan = planner.plan_fire(job, now, open_runs.get(job.name, []), self.rng,
                                             why)  # fmt: skip
                except Exception as exc:  # e.g. its zone vanished from the system's tz database
                    self._pause_broken(job, exc)
                    continue
                changes = {"state": plan.state} if plan.state else {}
                fires.append(Fire(job, plan.runs, plan.next_run_at, changes))
            for fire, runs in zip(fires, self.store.fire_all(fires), strict=True):
                for run in runs:
                    what = f", {run.error}" if run.status == "skipped" else ""
                    self.emit("fire", f"{fire.job.name}: run {run.id} {run.status} "
                              f"({run.trigger}{what})")  # fmt: skip
            if len(due) < DUE_BATCH:
                self._missed_why = HELD_UP
                return

    def _pause_broken(self, job: Job, exc: Exception) -> None:
        """A job whose schedule cannot be computed any more must not stop the others (or spin
        the loop): pause it and say why; `jobctl edit` fixes it, `resume` retries."""
        self.store.update_jobs([job.name], lambda j: j.copy_with(state="paused", next_run_at=None))
        self.emit("error", f"{job.name}: paused, its schedule failed: {type(exc).__name__}: {exc}")

    def start_queued(self, now: float, done: Active | None = None) -> Active | None:
        """Claim queued runs for the free workers and start a thread for each. A worker
        thread that has just finished run `done` gives up its slot here, under the claim lock
        and in the same step that registers what it claimed (so neither the loop nor a
        shutdown ever sees the slot free or `active` empty meanwhile), keeps the first claimed
        run for itself (no thread start, no wake-up of the loop between two runs) and gets it
        back."""
        replace: list[Run] = []

        def pick(
            queued: list[Run], running: list[Run], jobs: dict[str, Job], limit: int
        ) -> tuple[list[Run], list[Run]]:
            replace[:] = planner.replaced_by_waiting(queued, running, jobs)
            return planner.pick_startable(queued, running, jobs, limit)

        with self._claiming:
            with self._lock:
                busy = len(self.active) - (1 if done is not None else 0)
                free = max(0, self.workers - busy)  # 0 still looks for replacements
            try:
                claimed = [] if self._stopping else self.store.claim(
                    self.owner, self.host, now, free, pick
                )  # fmt: skip
            except BaseException:
                if done is not None:
                    with self._lock:
                        self.active.pop(done.run.id or -1, None)
                raise
            entries = [Active(run=run, job=job) for run, job in claimed]
            with self._lock:
                if done is not None:
                    self.active.pop(done.run.id or -1, None)
                self.active.update((e.run.id or 0, e) for e in entries)
        for old in replace:
            try:
                self._terminate(old, "cancelled", "replaced by a newer run (overlap=replace)")
            except OSError as exc:  # e.g. EPERM on a group led by a setuid program
                self.emit("error", f"{old.job}: run {old.id}: cannot replace it: {exc}")
        mine = entries.pop(0) if done is not None and entries else None
        for entry in entries:
            threading.Thread(target=self._work, args=(entry,), daemon=True).start()
        return mine

    def _work(self, entry: Active | None) -> None:
        """A worker thread: execute a run, then claim the next one itself, until none."""
        done: Active | None = None
        try:
            while entry is not None:
                done, entry = entry, None
                self._execute(done)
                entry = self.start_queued(self._horizon(), done=done)
                done = None  # its slot was handed over (or freed) by start_queued
        except StoreError as exc:  # claiming failed: the loop claims again, with backoff
            self._store_failed(exc)
        except Exception as exc:  # a bug: end this worker, say so
            self.emit("error", f"worker stopped: {type(exc).__name__}: {exc}")
        finally:
            if done is not None:  # never leak a slot: the loop and shutdown count `active`
                with self._lock:
                    self.active.pop(done.run.id or -1, None)
            self.wake()

    def _horizon(self) -> float:
        """How far ahead runs are claimed: the lead, or `--once`'s fixed start time."""
        return self._once_at if self._once_at is not None else self.clock.now() + LEAD_S

    def _execute(self, entry: Active) -> None:
        run = entry.run

        def started(proc: executor.Process) -> None:
            with self._lock:
                entry.proc = proc
                stop = entry.stop
            late = (proc.started_at - run.not_before) * 1000
            self.emit("start", f"{run.job}: run {run.id} started, pid {proc.pid}, {late:+.1f}ms")
            if stop is not None:  # cancelled or replaced while it waited for its start time
                proc.terminate(*stop)

        try:
            final, retry = execute(self.store, run, entry.job, self.clock, self.rng,
                                   on_start=started, go=lambda: not self._stopping,
                                   gates=self.gates, persist=self.persist)  # fmt: skip
            self.emit("end", _describe_end(final, retry, self.clock.now()))
        except StoreError as exc:  # still failing once stopping's grace ran out: the run
            # stays `running` in the store, and the next runner recovers it (SPEC 7)
            self.emit("error", f"{run.job}: run {run.id}: its end could not be recorded "
                      f"({exc}); the next runner recovers it")  # fmt: skip
            if entry.proc is not None and executor.group_alive(entry.proc.pid):
                with contextlib.suppress(OSError):
                    os.killpg(entry.proc.pid, signal.SIGKILL)
        except Exception as exc:  # a bug: the executor has killed the job
            self.emit("error", f"{run.job}: run {run.id}: {type(exc).__name__}: {exc}")
            self._abandon_after_error(entry, exc)

    def _abandon_after_error(self, entry: Active, exc: Exception) -> None:
        """Record a run whose recording failed as abandoned (and retry it), trying for a while;
        if the store stays unusable, recover() picks it up once it is back."""
        if entry.proc is not None and executor.group_alive(entry.proc.pid):
            with contextlib.suppress(OSError):
                os.killpg(entry.proc.pid, signal.SIGKILL)
        run = replace(entry.run, status="abandoned", finished_at=self.clock.now(),
                      error=f"the runner could not record it: {exc}")  # fmt: skip
        for _ in range(10):
            try:
                _record_end(self.store, entry.job, run, self.clock, self.rng)
                return
            except Exception:
                self.clock.sleep(1.0)

    def _terminate(self, run: Run, status: str, reason: str) -> None:
        with self._lock:
            entry = self.active.get(run.id or -1)
            if entry is None:
                return
            if entry.proc is None:
                entry.stop = entry.stop or (status, reason)
                return
        entry.proc.terminate(status, reason)

    def check_cancels(self) -> None:
        """Terminate our runs that `jobctl cancel` marked."""
        for run in self.store.list_runs(RunFilter(owner=self.owner, statuses=["running"])):
            if run.cancel_requested_at is not None:
                self._terminate(run, "cancelled", "cancelled")

    def rewind(self, now: float, jump: float) -> None:
        """The wall clock went back (NTP step, manual change): jobs that keep a period
        (wildcard cron, --every) fire at their next time from the new now that has not fired
        yet (a time at or before a job's high-water mark never fires again, SPEC 6); fixed-time
        jobs keep their next fire."""
        names = [
            j.name
            for j in self.store.list_jobs(last_runs=False)
            if j.state == "active" and planner.keeps_period(j) and j.next_run_at is not None
        ]

        def earlier(job: Job) -> Job:
            nxt = planner.next_unfired(job, now)
            if nxt is None or job.next_run_at is None or nxt >= job.next_run_at:
                return job
            return job.copy_with(next_run_at=nxt)

        moved = self.store.update_jobs(names, earlier)
        self.emit("clock", f"wall clock went back {-jump:.1f}s; rescheduled {len(moved)} jobs")

    def fire_reboot(self, now: float) -> None:
        """Queue each active @reboot job once for this start (scheduled at the runner's start
        time, so that a retry after a store error finds the fire recorded: no second run)."""
        for job in self.store.list_jobs(schedule="@reboot", last_runs=False):
            if job.state == "active" and planner.is_reboot(job):
                run = Run(
                    job=job.name,
                    scheduled_for=self.since,
                    trigger="reboot",
                    created_at=now,
                    not_before=now,
                )
                try:
                    self.store.add_run(run)
                except ConflictError:
                    continue
                self.emit("fire", f"{job.name}: @reboot run queued")

    def recover(self, now: float) -> None:
        """Runs left behind by dead owners become abandoned (their processes killed first)."""
        with self._claiming:  # read the store, then our own runs: a worker's claim (which
            # registers the run in `active` under this lock) cannot fall in between
            open_runs = self.store.list_runs(RunFilter(statuses=["running", "queued"]))
            with self._lock:
                mine = set(self.active)
        stale = [
            r
            for r in open_runs
            if r.owner
            and (r.id not in mine if r.owner == self.owner else not owners.alive(r.owner))
        ]
        if not stale:
            return
        names = sorted({r.job for r in stale})
        jobs = {j.name: j for j in self.store.list_jobs(names=names, last_runs=False)}
        for run in stale:
            if run.status == "queued":  # a foreground `jobctl run` died while waiting
                self.store.update_run(run.id or 0, status="cancelled", finished_at=now,
                                      error="its jobctl run process went away")  # fmt: skip
        running = [r for r in stale if r.status == "running"]
        killed = self._kill_orphans(running, jobs)
        for run in running:
            groups = ", ".join(str(g) for g in sorted(killed.get(run.id or -1, ())))
            note = f"; its process group {groups} was terminated" if groups else ""
            final = replace(run, status="abandoned", finished_at=now,
                            error=f"its runner died ({run.owner}){note}")  # fmt: skip
            final, retry = _record_end(self.store, jobs.get(run.job), final, self.clock, self.rng)
            self.emit("recover", _describe_end(final, retry, now))

    def _kill_orphans(self, runs: list[Run], jobs: dict[str, Job]) -> dict[int, set[int]]:
        """SIGTERM the surviving process groups of `runs`, wait for them together, and SIGKILL
        each one whose job's --kill-grace is up. A group is signalled only where the recorded
        pid still has the recorded start time, or, for a run whose pid or start time was never
        recorded, where its processes carry the run's JOBCTL_RUN_ID and JOBCTL_OWNER (never
        our own group: a runner started from a job inherits that job's markers).
        Returns the groups signalled, by run id."""
        groups: dict[int, set[int]] = {}
        for r in runs:
            recorded = r.id is not None and r.pid and r.proc_start
            if recorded and executor.kill_group(r.pid or 0, r.proc_start, signal.SIGTERM):
                groups[r.id or 0] = {r.pid or 0}
        # by their markers: the processes of a run whose pid or start time was not recorded
        # (a crash right after spawn), and those of any run that left its group (setsid)
        unrecorded = {
            r.id: {f"JOBCTL_RUN_ID={r.id}".encode(), f"{OWNER_VAR}={r.owner}".encode()}
            for r in runs
            if r.id is not None
        }
        ours = {os.getpid(), os.getpgrp()}
        for run_id, pgids in executor.marked_groups(unrecorded).items():
            for pgid in pgids - ours:
                with contextlib.suppress(OSError):
                    os.killpg(pgid, signal.SIGTERM)
                    groups.setdefault(run_id, set()).add(pgid)
        start = time.monotonic()
        job_of = {r.id: jobs.get(r.job) for r in runs}
        grace = {i: j.kill_grace_s if (j := job_of[i]) else 10.0 for i in groups}
        alive = {(i, g) for i, gs in groups.items() for g in gs}
        while alive:  # each group gets its own job's kill grace, and no more
            now = time.monotonic()
            for i, g in [(i, g) for i, g in alive if now >= start + grace[i]]:
                with contextlib.suppress(OSError):
                    os.killpg(g, signal.SIGKILL)
                alive.discard((i, g))
            alive = {(i, g) for i, g in alive if executor.group_alive(g)}
            if alive:
                time.sleep(0.05)
        return groups

    def _shutdown(self) -> None:
        """Let running jobs finish for the grace period, then terminate them."""
        deadline = self._give_up_at = time.monotonic() + self.grace_s
        if self.active:
            self.emit(
                "stop", f"stopping: waiting up to {self.grace_s:g}s for {len(self.active)} runs"
            )
        while self.active and time.monotonic() < deadline:
            select.select([self._wake_r], [], [], min(0.5, max(0.0, deadline - time.monotonic())))
            self._drain()
            with contextlib.suppress(StoreError):
                self.check_cancels()
        with self._lock:
            left = list(self.active.values())
        for entry in left:
            with self._lock:
                proc = entry.proc
                if proc is None:  # not started yet: stopped as soon as it starts
                    entry.stop = ("abandoned", "the runner stopped before it finished")
            if proc is not None:
                proc.terminate("abandoned", "the runner stopped before it finished")
        while self.active:
            time.sleep(0.05)
        self.emit("stop", "runner stopped")


def _describe_end(run: Run, retry: Run | None, now: float) -> str:
    text = f"{run.job}: run {run.id} {run.status}"
    if run.duration_s is not None:
        text += f" in {run.duration_s:.3f}s"
    if run.error and run.status != "succeeded":
        text += f" ({run.error})"
    if retry is not None:
        text += f"; retry in {retry.not_before - now:.1f}s"
    elif run.dead:
        text += "; dead (no retries left)"
    return text
