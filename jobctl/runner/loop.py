"""The runner loop: recover -> fire -> start -> (workers watch and record) -> sleep.

`Runner.run()` is what `jobctl runner` calls. This module holds the loop and its steps that
are not about one run: firing due jobs, clock steps, @reboot, store outages (report once,
retry with backoff), the guard that the store is still the file at its path, and shutdown.
Runs are executed by the worker pool (workers.py, execution.py); lost runs are recovered by
recovery.py. It knows nothing about the CLI: it takes a store, a clock, and an
`emit(event, text)` callback for its one-line-per-event log.
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
from typing import TYPE_CHECKING, TypeVar

from jobctl import executor, owners, planner
from jobctl.clock import Clock, OffsetClock, SystemClock
from jobctl.errors import ConflictError, StoreError
from jobctl.models import Job, Run
from jobctl.records import replace
from jobctl.runner import recovery
from jobctl.runner.execution import describe_end, retry_store
from jobctl.runner.workers import Active, WorkerPool
from jobctl.store.base import CHANGE_KINDS, Fire, RunFilter, RunnerInfo, Store

if TYPE_CHECKING:
    from pathlib import Path

    from jobctl.notify import Notifier

Emit = Callable[[str, str], None]
#: longest sleep: bounds how late a wall-clock jump (suspend, NTP step) or a missed nudge is seen
MAX_SLEEP_S = 5.0
#: fires due within this lead are recorded and claimed ahead of time; the worker then starts
#: the process at its exact time, so store writes do not add to a run's lateness
LEAD_S = 0.05
#: the lead on a shared store, whose writes cross a network and whose claims queue behind the
#: fleet's: a burst of fires is recorded, claimed and spawned (gated) before its time, not
#: after it (the chaos suite's baseline: 53 fires a second on 3 runners started 25-150 ms
#: late with a 50 ms lead, each spawned directly once claimed)
LEAD_S_SHARED = 0.25
#: a runner's lease (`jobctl runner --lease`): renewed every third of it; on a shared store a
#: runner that cannot renew it for half of it fences itself, and others take over its runs
#: once it has expired
LEASE_S = 15.0
MAINTENANCE_S = 30.0
DUE_BATCH = 1000  # due jobs fired per transaction
NOTIFY_GRACE_S = 15.0  # on stop, how long pending notifications may still take
#: why fires due while the runner was up were missed, when nothing more precise is known
HELD_UP = "the runner was held up"

T = TypeVar("T")


def _quiet(event: str, text: str) -> None:
    pass


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
        labels: list[str] | None = None,
        lease_s: float = LEASE_S,
        lease_store: Callable[[], Store] | None = None,
        notifier: Notifier | None = None,
        gates: Path | None = None,
    ) -> None:
        """`guard()` names a reason to stop serving this store (its file was deleted or
        replaced, the runner lock lost), else None; it is asked before each round of fires.
        On a shared store (`store.shared`), `lease_store()` opens the second connection the
        lease is renewed on, and the runner's clock becomes the store's (OffsetClock over
        `clock`). `gates`: a folder of this host where a gated process whose runner died
        before its time leaves its mark (execution.gate_mark), created if missing."""
        self.store = store
        self.gates = gates
        self._sweep_at = 0.0  # (monotonic) when old gate marks are next swept
        if gates is not None:
            with contextlib.suppress(OSError):  # without it, such a run is recorded abandoned
                gates.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.notifier = notifier  # tells of failures, deaths, recoveries... (notify.py)
        self.shared = bool(getattr(store, "shared", False))
        self.lease_s = lease_s
        self._lease_store = lease_store
        self.lease: object | None = None  # the LeaseKeeper (shared store), once registered
        self.epoch: int | None = None  # our registration's lease epoch (shared store)
        self.holding = True  # False while fenced: no fires recorded, no runs claimed
        self._orphans_checked = False  # shared store: left-overs of this host, at start
        self._orphans_done: set[int | None] = set()  # runs whose left-overs were looked for
        self.guard = guard
        self.labels = sorted({owners.host(), *(labels or [])})  # the host is always a label
        #: why the runner stopped by itself (the store went away): `run()` then returns 1
        self.failure: str | None = None
        self.since = 0.0  # when this runner started: fires due before it were missed "down"
        #: fires due at or before this were missed outright, with no grace for lateness
        #: (planner.plan_fire): one runner's store, before its start; after a sleep
        self._missed_through: float | None = None
        #: why fires due while this runner was up were missed (see fire_due)
        self._missed_why = HELD_UP
        self._outage: float | None = None  # monotonic start of the current store outage
        self._outage_lock = threading.Lock()
        self._stopped = threading.Event()  # wakes the store-retry backoff when stopping
        self._give_up_at: float | None = None  # store retries end here once stopping
        self.workers = workers
        self.clock: Clock = clock or SystemClock()
        if self.shared and lease_store is not None:
            self.clock = OffsetClock(self.clock)  # set by each lease renewal
        self.emit = emit
        self.grace_s = grace_s
        self.rng = rng or random.Random()
        self.owner = owners.me()
        self.host = owners.host()
        self.pool = WorkerPool(self, workers, lease_store if self.shared else None)
        self.lead_s = LEAD_S_SHARED if self.shared else LEAD_S
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

        def give_up() -> bool:
            return self._give_up_at is not None and time.monotonic() >= self._give_up_at

        def wait(delay: float) -> None:
            if self._stopped.is_set():
                time.sleep(delay)  # stopping: keep trying until the grace is over
            else:
                self._stopped.wait(delay)  # a stop ends the wait: the grace starts

        result = retry_store(write, give_up, wait, self._store_failed)
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
        if isinstance(self.clock, OffsetClock):  # before any time is read: the store's clock
            self.persist(self._sync_clock)
        now = self.since = self.clock.now()
        # fires due before this start were missed while no runner was up: on SQLite always
        # (one runner), on a fleet when no other runner holds a live lease; not for the pass
        # of an external timer (--once), which keeps the grace of a held-up runner
        if not once and (not self.shared or not self._fleet_up(now)):
            self._missed_through = now
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
            self._stopped.set()
            if self.lease is not None:
                self.lease.stop()  # type: ignore[attr-defined]
            self.pool.close()
            with contextlib.suppress(StoreError):  # a dead pid reads "not running" anyway
                self.store.unregister_runner(self.owner)
        return 1 if self.failure else 0

    def _fleet_up(self, now: float) -> bool:
        """Whether another runner of the fleet holds a live lease (if the store cannot tell,
        assume so: the grace applies, as it did before the misfire rule)."""
        try:
            return any(r.owner != self.owner and (r.lease_expires_at or 0.0) > now
                       for r in self.store.runners())  # fmt: skip
        except StoreError:
            return True

    def _sync_clock(self) -> None:
        """Set our clock's offset to the store's clock before any time is read (a few tries
        for a reading with a short round trip; lease renewals keep it up to date)."""
        assert isinstance(self.clock, OffsetClock)
        for _ in range(5):
            if self.clock.sample(self.store.now):
                return
        self.clock.sample(self.store.now, force=True)  # a slow link: the best we can do

    @property
    def fence(self) -> tuple[str, int] | None:
        """(owner, epoch) that our store writes of a run's end are fenced by (shared store)."""
        return (self.owner, self.epoch) if self.shared and self.epoch is not None else None

    def _register(self, now: float, store: Store | None = None) -> None:
        from jobctl import __version__

        info = RunnerInfo(owner=self.owner, pid=os.getpid(), host=self.host, since=self.since,
                          heartbeat_at=now, labels=self.labels, version=__version__,
                          lease_expires_at=now + self.lease_s)  # fmt: skip
        epoch = (store or self.store).register_runner(info)
        if self.shared:
            self.epoch = epoch
            if self.lease is None and self._lease_store is not None:
                from jobctl.runner.lease import LeaseKeeper

                keeper = LeaseKeeper(self, self._lease_store())
                keeper.start()
                self.lease = keeper

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
        seen: dict[str, int] | None = None
        cancels_at, cancels_seen = wall, -1  # when our runs were last checked for cancels
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
                    if not self.shared:  # (a fleet's other runners were up meanwhile)
                        self._missed_through = now
                elif jump < -2.0:
                    self.rewind(now, jump)
                # shared store: reap expired leases at the pace of renewals (a takeover
                # within lease + lease/3 of a runner's death); else recover every 30 s. First
                # in the round: a claim that fails (the fleet's claim lock held) must not
                # delay the takeover of a dead runner's runs
                if now - last_maint >= (self.lease_s / 3 if self.shared else MAINTENANCE_S):
                    self.recover(now)
                    last_maint = now
                horizon = now + self.lead_s
                if self.holding:  # fenced: another runner may be taking our work over
                    self.fire_due(horizon)
                # cancels: when one was asked for (on a shared store, a change of that
                # kind; on SQLite, any commit), else every few seconds (a lost notification)
                cancels = self.store.changed(("cancel",))
                if self.active and (cancels != cancels_seen or now - cancels_at >= MAX_SLEEP_S):
                    self.check_cancels()
                    cancels_at, cancels_seen = now, cancels
                self.start_queued(horizon)
                if self.lease is None and now - last_beat >= self.lease_s / 3:
                    # (a shared store's runner from the CLI renews on the LeaseKeeper's thread)
                    self.store.heartbeat(self.owner, now, self.lease_s, self.epoch)
                    last_beat = now
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
                seen = {kind: self.store.changed((kind,)) for kind in CHANGE_KINDS}
            except StoreError:
                seen = None

    def _sleep_for(self, now: float) -> float:
        due = self.store.next_wakeup(now + self.lead_s)
        delay = MAX_SLEEP_S if due is None else min(MAX_SLEEP_S, due - self.lead_s - now)
        return max(0.0, delay)

    def _sleep(self, seconds: float, seen: dict[str, int] | None) -> None:
        """Sleep until `seconds` pass, a nudge/signal/worker wakes us, or the store changed
        in a way we would act on (on a shared store, a notification from another machine's
        command or runner; see _wake_kinds)."""
        kinds = self._wake_kinds()
        try:
            unchanged = seen is None or all(self.store.changed((k,)) == seen[k] for k in kinds)
        except StoreError:
            unchanged = True
        if seconds > 0 and unchanged:
            self.store.wait_for_change(seconds, self._wake_r, kinds)
        self._drain()

    def _wake_kinds(self) -> tuple[str, ...]:
        """The changes worth waking for: jobs edited, always; runs queued while a slot is
        free; runs ended while a slot is free and queued runs waited for a mutex, an overlap
        or another runner's labels at the last claim; cancels while runs are ours. Each
        runner waking for every other runner's claim and end kept the fleet's loops busy and
        their claims queued behind one another (the chaos suite's baseline: fires 0.9 s
        late at 53 a second)."""
        kinds = ["jobs"]
        free = self.pool.free() > 0
        if free:
            kinds.append("queued")
        if free and self.pool.blocked:
            kinds.append("ended")
        if self.active:
            kinds.append("cancel")
        return tuple(kinds)

    def _drain(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self._wake_r, 4096):
                pass
        executor.reap_orphans()  # adopted orphans of our jobs (a no-op unless a subreaper)

    def _run_once(self) -> None:
        """`--once`: start all that is due or queued now, wait for it, and return."""
        start = self._once_at = self.clock.now()
        if not self._check_guard():
            return
        self.fire_due(start)
        while not self._stopping:
            self.start_queued(start)
            with self.pool.lock:
                if not self.pool.active:
                    return
            select.select([self._wake_r], [], [], MAX_SLEEP_S)
            self._drain()

    # ---- steps ----------------------------------------------------------------------------
    def fire_due(self, now: float) -> None:
        """Record every due fire, in one transaction per batch of due jobs. Fires missed
        before this runner started were missed while no runner was up; later ones while
        the runner was held up (its store unavailable, the machine asleep, ...)."""
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
                                             why, self._missed_through)  # fmt: skip
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
                missed = [r for r in runs if r.status == "skipped" and r.trigger == "catchup"]
                if missed and self.notifier is not None:  # one per fire, not per missed time
                    self.notifier.missed(fire.job, missed[-1])
            if len(due) < DUE_BATCH:
                break
            if len(self.pool.active) < self.workers:  # a big round: the workers start on
                self.start_queued(now)  # the first batch while the next ones are recorded
        self._missed_why = HELD_UP
        # every fire due by `now` is recorded: those missed are behind us, and a clock stepped
        # back later must not make new fires look missed
        if self._missed_through is not None and self._missed_through <= now:
            self._missed_through = None

    def _pause_broken(self, job: Job, exc: Exception) -> None:
        """A job whose schedule cannot be computed any more must not stop the others (or spin
        the loop): pause it and say why; `jobctl edit` fixes it, `resume` retries."""
        self.store.update_jobs([job.name], lambda j: j.copy_with(state="paused", next_run_at=None))
        self.emit("error", f"{job.name}: paused, its schedule failed: {type(exc).__name__}: {exc}")

    # ---- the worker pool (workers.py) --------------------------------------------------------
    @property
    def active(self) -> dict[int, Active]:
        return self.pool.active

    def start_queued(self, now: float) -> None:
        self.pool.start_queued(now)

    def check_cancels(self) -> None:
        self.pool.check_cancels()

    def _terminate(self, run: Run, status: str, reason: str) -> None:
        self.pool.terminate(run, status, reason)

    def _horizon(self) -> float:
        """How far ahead runs are claimed: the lead, or `--once`'s fixed start time."""
        return self._once_at if self._once_at is not None else self.clock.now() + self.lead_s

    def rewind(self, now: float, jump: float) -> None:
        """The wall clock went back (NTP step, manual change): jobs that keep a period
        (wildcard cron, --every) fire at their next time from the new now that has not fired
        yet (a time at or before a job's high-water mark never fires again, SPEC 6); fixed-time
        jobs keep their next fire."""
        if self._missed_through is not None:  # what comes due from the new now is not missed
            self._missed_through = min(self._missed_through, now)
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
        labels = set(self.labels)
        for job in self.store.list_jobs(schedule="@reboot", last_runs=False):
            # once per start of each runner that may run it (SPEC 8: labels)
            if job.state == "active" and planner.is_reboot(job) and labels >= set(job.on_labels):
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
        """Runs left behind by dead owners become abandoned (their processes killed first).
        On a shared store: the runs whose lease expired (reap_expired, by the store's clock,
        whoever's they were), our own runs no worker holds, and of the runs not claimed under
        a lease (a foreground `jobctl run`) those of this host whose process is gone."""
        if self.shared:
            self._reap(now)
        with self.pool.claiming:  # our own runs, then the store: a claim (which registers
            # its runs in `active` under this lock) cannot fall in between, and a run leaves
            # `active` only once its end is committed, so one the store still shows running
            # was in `active` when we looked (read the other way round, an end committed in
            # between made its run look like one no worker holds)
            with self.pool.lock:
                mine = set(self.pool.active)
            # (a run with no owner is nobody's to recover: a fire waiting to be claimed)
            open_runs = self.store.list_runs(RunFilter(statuses=["running", "queued"],
                                                       owned=True))  # fmt: skip
        if self.shared:
            self._kill_local_orphans(open_runs)
            registered = {r.owner for r in self.store.runners()}
            # ours that no worker holds (a lost write: e.g. a database crash undid an end), and
            # this host's runs of owners that are not runners (a foreground `jobctl run`)
            open_runs = [r for r in open_runs if r.owner == self.owner
                         or (r.host == self.host and r.owner not in registered)]  # fmt: skip
        stale = recovery.stale_runs(open_runs, self.owner, mine)
        recovery.recover_runs(self.store, stale, now, self.clock, self.rng, self.emit,
                              self.gates)  # fmt: skip
        # after recovery (the marks it needed are gone by now), and not at every pass: an
        # idle runner lists no folder every few seconds
        if self.gates is not None and time.monotonic() >= self._sweep_at:
            self._sweep_at = time.monotonic() + recovery.GATE_SWEEP_EVERY_S
            recovery.sweep_gate_marks(self.gates)

    def _reap(self, now: float) -> None:
        def decide(run: Run, job: Job | None) -> tuple[Run, Run | None]:
            t = self.clock.now()
            final = replace(run, status="abandoned", finished_at=t,
                            error=f"its runner's lease expired ({run.owner})")  # fmt: skip
            return planner.after_end(job, final, t, self.rng)

        for final, retry in self.store.reap_expired(decide):
            self.emit("recover", describe_end(final, retry, self.clock.now()))
            if self.notifier is not None:
                jobs = self.store.list_jobs(names=[final.job], last_runs=False)
                if jobs:
                    self.notifier.ended(jobs[0], final, retry)

    def _kill_local_orphans(self, open_runs: list[Run]) -> None:
        """Shared store: the runs of this host whose runner died (kill -9, a crash) may
        still have processes here; terminate them as soon as a runner runs here again, before
        their lease expires and another runner starts the retry where it can (and, at start,
        those of runs taken over already). Their store records are the reaper's. Safe where
        another machine has the same name: only processes of this machine whose pid and start
        time, or markers (JOBCTL_RUN_ID and JOBCTL_OWNER), are the run's are signalled."""
        candidates = [r for r in open_runs if r.status == "running"]
        if not self._orphans_checked:  # at start: also those taken over already
            self._orphans_checked = True
            candidates += self.store.list_runs(
                RunFilter(statuses=["abandoned"], since=self.clock.now() - 86400, limit=500)
            )
        gone = [r for r in candidates if r.id not in self._orphans_done
                and r.host == self.host and r.owner != self.owner
                and not owners.alive(r.owner)]  # fmt: skip
        self._orphans_done.update(r.id for r in gone)
        if gone:
            jobs = {j.name: j for j in self.store.list_jobs(names=sorted({r.job for r in gone}),
                                                            last_runs=False)}  # fmt: skip
            for run_id, groups in recovery.kill_orphans(gone, jobs).items():
                listed = ", ".join(map(str, sorted(groups)))
                self.emit("recover", f"run {run_id}: terminated its left-over process groups "
                          f"{listed} (its runner had died)")  # fmt: skip

    @staticmethod
    def _kill_orphans(runs: list[Run], jobs: dict[str, Job]) -> dict[int, set[int]]:
        return recovery.kill_orphans(runs, jobs)

    def _shutdown(self) -> None:
        """Let running jobs finish for the grace period, then terminate them; give the
        notifications of their ends a few seconds to go out."""
        self._give_up_at = time.monotonic() + self.grace_s
        self.pool.shutdown()
        if self.notifier is not None:
            self.notifier.wait(NOTIFY_GRACE_S)
            self.notifier.close()
