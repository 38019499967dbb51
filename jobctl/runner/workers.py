"""The worker pool: at most N claimed runs executing at once, in one event loop.

Its parts, on threads of their own besides the caller's:
- claiming and launching (`start_queued`, on the caller's thread: the runner loop after a
  round of fires, the bookkeeper after a batch of ends): one transaction claims runs for
  every free slot, one flush makes the claims durable (SPEC 7: a started run comes back
  `running` after a power loss, never `queued`), the processes of runs ahead of their time
  are spawned gated and one transaction records their pids before any gate opens; due runs
  go to the process loop, which spawns them (the bookkeeper writes meanwhile);
- the process loop (`_ProcessLoop`, one thread): owns every job process: output pipes and
  pidfds in one selector, start times (gates), timeouts and kill deadlines as timers in a
  heap (executor.Watch). It never touches the store, so a slow store never delays a timeout,
  a cancel or a start;
- the bookkeeper (one thread): takes what the loop reports (output, start times, ends) in
  batches, writes them (every end and its retry in one transaction, retried through a store
  outage), then claims runs for the slots it freed (SQLite);
- due runs are claimed ahead of the free slots (AHEAD_MAX) and wait in the loop, which
  starts one the moment a slot frees, with no claim in between; once every slot is covered,
  the next claim waits until it can take several (ahead_batch: one transaction and one flush
  for them all). One that waits HOLD_S goes back to the queue. On SQLite the due runs wait
  on a list in a file (recovery.WaitList) where each is marked before its spawn: a run
  claimed and never spawned when the runner died goes back to the queue, not to
  `abandoned`;
- on a shared store (PostgreSQL), where every write is a round trip: the bookkeeper writes
  on a connection of its own, and a claimer thread (a third connection) claims for a slot
  as soon as its process is done, while the bookkeeper writes the end.

A run stays in `active` until its end is recorded.

It reads the runner's store, clock and flags through `self.r`; it knows nothing of firing or
recovery. The foreground `jobctl run` does not come here: it uses execution.execute().
"""

from __future__ import annotations

import collections
import contextlib
import heapq
import itertools
import os
import queue
import select
import selectors
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jobctl import executor, planner
from jobctl.errors import FencedError, StoreDataError, StoreError
from jobctl.models import Job, Run
from jobctl.records import replace
from jobctl.runner.execution import (
    describe_end,
    final_run,
    gate_mark,
    local_shift,
    record_end,
    spec_for,
)
from jobctl.runner.recovery import WaitList
from jobctl.store.base import End, RunFilter, Store

if TYPE_CHECKING:
    from jobctl.runner.loop import Runner


#: how long the bookkeeper holds pids to record when nothing else is to be written: the
#: ends that come meanwhile carry them (recovery finds a process by its markers until then)
PIDS_WAIT_S = 0.05
#: (shared store) how long an end waits for the ends of other running processes, to be
#: written in one transaction with them
ENDS_WAIT_S = 0.01
#: what may wait that long: pids, start times and start lines (never an end or output)
CAN_WAIT = frozenset({"spawned", "settled", "started"})
#: what ends a run's stay in the pool
ENDING = frozenset({"outcome", "final", "error", "requeue"})
#: how many due runs a runner claims beyond its free slots, at most: its process loop starts
#: one the moment a slot frees, with no claim in between (the claimer, or on SQLite the
#: bookkeeper, refills them meanwhile). min(2 x workers, AHEAD_MAX). On SQLite (issue 13),
#: drains of 2,000 runs on one machine the same hour: 1,321-1,550 runs/s with it against
#: 1,143-1,334 without, runner CPU per run 0.56-0.66 ms against 0.68-0.80
AHEAD_MAX = 8
#: how long a run claimed ahead may wait for a slot: then it goes back to the queue (for
#: another runner, or this one once a slot is free) and claiming ahead pauses AHEAD_PAUSE_S,
#: so that slots busy with long jobs hold runs another runner could start for no longer
HOLD_S = 0.5
AHEAD_PAUSE_S = 30.0


class _Inbox:
    """The bookkeeper's inbox: (kind, entry, value) items, put from any thread, taken by the
    bookkeeper alone. What the process loop puts during one of its rounds goes in as one
    batch when the round ends (hold/flush): the bookkeeper wakes once for the round's starts
    and ends, not once for each (each wake-up is a futex call and a hand-over of the GIL)."""

    def __init__(self) -> None:
        self._q: queue.SimpleQueue[list[tuple[str, Active, Any]]] = queue.SimpleQueue()
        self._taken: collections.deque[tuple[str, Active, Any]] = collections.deque()
        self._held: list[tuple[str, Active, Any]] | None = None
        self._holder = 0

    def hold(self) -> None:
        """(The loop's thread) keep what this thread puts until flush()."""
        self._holder, self._held = threading.get_ident(), []

    def flush(self) -> None:
        held, self._held = self._held, None
        if held:
            self._q.put(held)

    def put(self, item: tuple[str, Active, Any]) -> None:
        held = self._held
        if held is not None and threading.get_ident() == self._holder:
            held.append(item)
        else:
            self._q.put([item])

    def get(self, timeout: float | None = None) -> tuple[str, Active, Any]:
        """The next item; queue.Empty after `timeout` seconds without one."""
        if not self._taken:
            self._taken.extend(self._q.get(timeout=timeout))
        return self._taken.popleft()

    def get_nowait(self) -> tuple[str, Active, Any]:
        if not self._taken:
            self._taken.extend(self._q.get_nowait())
        return self._taken.popleft()


@dataclass(eq=False)
class Active:
    run: Run
    job: Job
    proc: executor.Process | None = None  # set once the process has started its command
    stop: tuple[str, str] | None = None  # (status, reason) asked for before the process began
    spawned: executor.Process | None = None  # the process, from its spawn (gated or not)
    gated: bool = False
    watch: executor.Watch | None = None
    fds: set[int] = field(default_factory=set)  # registered in the loop's selector
    due: float = 0.0  # monotonic time of the watch's next step
    held: float = 0.0  # a due run: monotonic time it began to wait in the loop for a slot
    failed: bool = False  # its supervision failed (a bug): reported once
    ended: bool = False  # its process is done, its end being written: its slot is free


class WorkerPool:
    def __init__(
        self, runner: Runner, size: int, open_store: Callable[[], Store] | None = None
    ) -> None:
        """`open_store`: on a shared store, opens the bookkeeper's own connection (see
        `store`); None: the bookkeeper uses the runner's."""
        self.r = runner
        self.size = size
        self._open_store = open_store
        self._store: Store | None = None
        #: the last claim left due runs waiting (a mutex, an overlap, another runner's
        #: labels) while slots were free: ends elsewhere may let them start (Runner._sleep)
        self.blocked = False
        self._ended = 0  # entries of `active` whose process is done (their slots are free)
        #: shared store: a claimer thread of its own claims for slots freed by ends while
        #: the bookkeeper writes those ends (each on its own connection)
        self._claimer: Store | None = None
        self._claim_wanted = threading.Event()
        self.active: dict[int, Active] = {}
        self.lock = threading.Lock()
        self.claiming = threading.Lock()  # one claim at a time: free slots are never overbooked
        self.loop = _ProcessLoop(self)
        self.book = _Inbox()
        self._threads_lock = threading.Lock()
        self._started = False
        #: due runs claimed beyond the free slots (see AHEAD_MAX)
        self.ahead = min(2 * size, AHEAD_MAX)
        #: with every slot busy, a claim ahead waits until it can take this many: fewer,
        #: larger claims (each costs two round trips and ~1.3 ms of server CPU, planning
        #: included, however few runs it takes; 758 against 685 runs/s in interleaved drains)
        self.ahead_batch = max(1, 3 * self.ahead // 4)
        self.ahead_paused_until = 0.0  # (monotonic) a run claimed ahead waited too long
        #: claimed runs being launched that are not due yet (spawned gated, outside the
        #: process loop): the loop counts them as taking slots, so that a run claimed ahead
        #: never starts in the slot of a gated run still being spawned (more processes than
        #: workers). Due ones are not counted: they take no slot until the loop spawns them,
        #: and runs waiting already start while a claim is flushed (an fsync on SQLite)
        self.launching = 0
        #: (SQLite) the list the due runs claimed wait on until spawned (recovery.WaitList,
        #: opened with the threads); None: no list (a shared store, whose lease reaper
        #: records a dead runner's runs; or none could be written)
        self.waits: WaitList | None = None
        self.unmarkable: set[int] = set()  # runs whose place on a wait list was not marked

    @property
    def store(self) -> Store:
        """The bookkeeper's store. On a shared store a connection of its own, opened on
        first use (StoreError if it cannot be), so that ends and the claims after them never
        wait behind the loop's fires and reads on the runner's connection."""
        if self._open_store is None:
            return self.r.store
        if self._store is None:
            self._store = self._open_store()
        return self._store

    def free(self) -> int:
        with self.lock:
            return self.size - len(self.active) + self._ended

    def close(self) -> None:
        for store in (self._store, self._claimer):
            if store is not None:
                store.close()
        if self.waits is not None:
            self.waits.close()

    def _forget_done(self, done: Sequence[Active]) -> None:
        """Under self.lock: the runs whose ends are recorded leave the pool (each entry
        itself: never another entry of the same run, see start_queued's pick)."""
        for entry in done:
            key = entry.run.id or -1
            if self.active.get(key) is entry:
                del self.active[key]
                if entry.ended:
                    self._ended -= 1

    def _start_threads(self) -> None:
        with self._threads_lock:
            if not self._started:
                self._started = True
                if self._open_store is None:
                    self.waits = WaitList.open(self.r.gates, self.r.owner)
                threading.Thread(target=self.loop.run, name="jobctl-loop", daemon=True).start()
                threading.Thread(target=self._bookkeeper, name="jobctl-book", daemon=True).start()
                if self._open_store is not None:
                    threading.Thread(target=self._claim_loop, name="jobctl-claim",
                                     daemon=True).start()  # fmt: skip

    # ---- claiming and launching -----------------------------------------------------------
    def start_queued(
        self,
        now: float,
        done: Sequence[Active] = (),
        store: Store | None = None,
        freed: bool = False,
    ) -> None:
        """Claim queued runs for the free slots (one transaction) and launch them. The
        bookkeeper passes the runs whose ends it has just recorded (`done`): their slots are
        given up here, under the claim lock and in the step that registers what is claimed,
        so that neither the loop nor a shutdown ever sees them free or `active` empty
        meanwhile; and its own `store` (the runner's by default).

        Due runs are also claimed ahead (up to `ahead` beyond the free slots), when a slot
        is free or the claim is for slots that processes just freed (`freed`, or the ends
        in `done`): never while every slot is busy and nothing ends, and then only once
        `ahead_batch` runs can be taken."""
        store = store or self.r.store
        replace_runs: list[Run] = []
        labels = frozenset(self.r.labels)

        def pick(
            queued: list[Run], running: list[Run], jobs: dict[str, Job], limit: int
        ) -> tuple[list[Run], list[Run]]:
            # a run still in `active` is on its way out of this pool: one handed back to the
            # queue (released) whose entry the bookkeeper has not dropped yet. Claimed again
            # now, that drop would take the new claim's entry with it (same run id): the run
            # would stay `running` with nobody watching it. It is claimable once dropped.
            queued = [r for r in queued if r.id not in leaving and r.id not in self.unmarkable]
            replace_runs[:] = planner.replaced_by_waiting(queued, running, jobs)
            start, cancel = planner.pick_startable(queued, running, jobs, limit, labels=labels)
            self.blocked = len(start) < limit and len(queued) > len(start) + len(cancel)
            if len(start) > free:  # beyond the free slots: only runs due now wait for one
                start = start[:free] + [r for r in start[free:] if r.not_before <= due_by]
            return start, cancel

        def give_up_slots() -> None:
            with self.lock:
                self._forget_done(done)

        with self.claiming:
            with self.lock:
                busy = len(self.active) - self._ended - sum(not e.ended for e in done)
                leaving = set(self.active)
            free = max(0, self.size - busy)  # 0: replacements
            limit = free
            if (self.ahead and (free or freed or done)
                    and time.monotonic() >= self.ahead_paused_until):  # fmt: skip
                limit = max(0, self.size + self.ahead - busy)
                if not free and limit < self.ahead_batch:
                    return  # enough wait for a slot: claim once more have started
            epoch = self.r.epoch
            self.blocked = False
            try:
                # (beyond the free slots only runs due now: no page past them is read)
                due_by = self.r.clock.now()
                ahead = {"due_by": due_by} if limit > free else {}
                claimed = [] if self.r._stopping or not self.r.holding else store.claim(
                    self.r.owner, self.r.host, now, limit, pick, epoch=self.r.epoch, **ahead
                )  # fmt: skip
            except BaseException:
                give_up_slots()
                raise
            entries = [Active(run=run, job=job) for run, job in claimed]
            if entries and (self.r.epoch != epoch or not self.r.holding):
                # our lease went while the claim was under way (a slow link): the runs are
                # another runner's to take over once that lease has expired; never start them
                self.r.emit("error", f"{len(entries)} runs claimed under a lease this runner "
                            "no longer holds: left to the runner that takes them over")  # fmt: skip
                entries = []
            early = sum(e.run.not_before > due_by for e in entries)
            with self.lock:
                self._forget_done(done)
                self.active.update((e.run.id or 0, e) for e in entries)
                self.launching += early
        try:
            for old in replace_runs:
                try:
                    self.terminate(old, "cancelled", planner.REPLACED)
                except OSError as exc:  # e.g. EPERM on a group led by a setuid program
                    self.r.emit("error", f"{old.job}: run {old.id}: cannot replace it: {exc}")
            if entries:
                self._start_threads()
                self._launch(entries, store, due_by)
        finally:
            if entries:  # handed to the loop (or failed): their slots are the loop's to count
                with self.lock:
                    self.launching -= early
                self.loop.poke()

    def _launch(self, entries: list[Active], store: Store, due_by: float) -> None:
        """Make the claims durable, spawn the processes ahead of their time (gated: the pid
        is recorded before the gate opens) and hand every run to the process loop, which
        spawns those already due (one exec, not two) while this thread goes back to the
        store. A due run's process carries JOBCTL_RUN_ID and JOBCTL_OWNER, by which recovery
        finds it if we die before its pid is recorded. (Spawning due runs here instead kept
        the bookkeeper from recording ends and claiming while it forked: 489 against 571
        runs/s in interleaved SQLite drains.)"""
        try:
            store.sync()  # the claims are durable before any process exists
        except StoreError:
            for entry in entries:
                self.book.put(("requeue", entry, None))
            return
        shift = local_shift(self.r.clock)
        now = self.r.clock.now()
        gated: list[Active] = []  # ahead of their time: spawned here, behind their gates
        deferred: list[Active] = []  # due runs: the process loop spawns them
        for entry in entries:
            if entry.run.not_before <= max(now, due_by):  # (due when claimed: stays due)
                deferred.append(entry)
            elif self.spawn(entry, now, shift):
                gated.append(entry)
        if deferred and self.waits is not None:  # (before the loop may spawn them)
            self.waits.add([e.run for e in deferred])
        if gated:  # recorded before their gates open (not fatal: if the store cannot take
            # it, recovery finds the processes by their markers, JOBCTL_RUN_ID and
            # JOBCTL_OWNER, in their environment)
            with contextlib.suppress(StoreError):
                store.mark_started_all([e.run for e in gated])
        self.loop.add(gated + deferred)

    def spawn(self, entry: Active, now: float, shift: float, due: bool = False) -> bool:
        """Spawn one claimed run's process (gated when ahead of its time, unless `due`: a
        run judged due once stays due, though the wall clock step back before its spawn);
        False if it was not (put back in the queue while stopping, or its failure handed to
        the bookkeeper)."""
        run = entry.run
        gated = run.not_before > now and not due
        if not gated and self.r._stopping:  # not started: back to the queue
            self.requeue(entry)
            return False
        # (a start its wait list does not show would pass for none, after a crash)
        if self.waits is not None and not self.waits.starting(run):
            self.r.emit("error", f"{run.job}: run {run.id}: cannot mark its start on its wait "
                        "list: not started, back to the queue for the next runner")  # fmt: skip
            # its list names this runner: never claimed again by it (a spin), the next one's
            self.unmarkable.add(run.id or 0)
            self.book.put(("requeue", entry, None))
            return False
        try:
            spec = spec_for(entry.job, run)
            if gated:  # what tells our successor it never ran, should we die before its time
                mark = gate_mark(self.r.gates, run)
                spec.gate_mark = str(mark) if mark is not None else None
            proc = executor.start(spec, gated=gated)
        except executor.SpawnError as exc:
            t = self.r.clock.now()
            final = replace(run, status="failed", exit_code=exc.exit_code,
                            error=str(exc), started_at=t, finished_at=t)  # fmt: skip
            self.book.put(("final", entry, final))
            return False
        except Exception as exc:  # a bug: recorded abandoned, the others go on
            self.book.put(("error", entry, exc))
            return False
        began = proc.started_at + shift
        # pid and start time: what recovery and `cancel` check before signalling the
        # group. A gated process waits (its start time is read at once); a direct one is
        # exec'ing, and reading /proc/PID/stat then is costly: its start time is recorded
        # once it has run SETTLE_S (shorter jobs end first)
        planned = max(began, run.not_before) if gated else began
        start = proc.proc_start if gated else None
        entry.run = replace(run, pid=proc.pid, proc_start=start, started_at=planned)
        entry.spawned, entry.gated = proc, gated
        return True

    def released(self, entry: Active) -> None:
        """`entry` leaves the wait for a slot without starting (back to the queue, or
        stopped): so its wait list says (if that cannot be written, this runner never claims
        it again: the list would take a later start of it for none)."""
        if self.waits is not None and not self.waits.release(entry.run):
            self.unmarkable.add(entry.run.id or 0)

    def requeue(self, entry: Active) -> None:
        self.released(entry)
        self.book.put(("requeue", entry, None))

    # ---- what the process loop reports --------------------------------------------------------
    def started(self, entry: Active, proc: executor.Process) -> None:
        """On the loop's thread, once the process runs its command. Its log line and
        notification go through the bookkeeper: the loop never waits on a write (a stalled
        stdout would stall every job's timeouts)."""
        with self.lock:
            entry.proc = proc
            stop = entry.stop
        late = (proc.started_at + local_shift(self.r.clock) - entry.run.not_before) * 1000
        self.book.put(("started", entry, late))
        if stop is not None:  # cancelled or replaced while it waited for its start time
            proc.terminate(*stop)

    def _tell_started(self, entry: Active, late: float) -> None:
        run = entry.run
        pid = entry.proc.pid if entry.proc is not None else run.pid
        self.r.emit("start", f"{run.job}: run {run.id} started, pid {pid}, {late:+.1f}ms")
        if self.r.notifier is not None and self.r.notifier.wants(entry.job):
            self.r.notifier.started(entry.job, replace(run, pid=pid))

    # ---- the bookkeeper -----------------------------------------------------------------------
    def _bookkeeper(self) -> None:
        while True:
            batch = [self.book.get()]
            with contextlib.suppress(queue.Empty):
                while len(batch) < 1000:
                    batch.append(self.book.get_nowait())
            # only pids to record: wait a little for something else (a short job's end
            # records its pid with it: one write instead of two; markers find it meanwhile)
            until = time.monotonic() + PIDS_WAIT_S
            while all(kind in CAN_WAIT for kind, _, _ in batch):
                try:
                    batch.append(self.book.get(timeout=max(0.0, until - time.monotonic())))
                    while len(batch) < 1000:
                        batch.append(self.book.get_nowait())
                except queue.Empty:
                    if time.monotonic() >= until:
                        break
            if self._open_store is not None:  # the claimer claims for the slots freed now,
                self._free_slots(batch)  # while their ends are written below
                self._gather_ends(batch)
            done: list[Active] = []
            try:
                self._keep(batch, done)
            except Exception as exc:  # a bug: say so, and never leak a slot
                self.r.emit("error", f"bookkeeper: {type(exc).__name__}: {exc}")
                done.extend(e for k, e, _ in batch if k in ENDING and e not in done)
            if not done:
                continue
            if self._open_store is not None:
                with self.lock:
                    self._forget_done(done)
            else:  # gives their slots up
                self._claim_safely(self.start_queued, self.r._horizon(), done, self.store)
            with self.lock:
                self._forget_done(done)  # (already, unless the claim failed before it)
                idle = not self.active
            if idle or self.r._stopping:  # --once and shutdown wait for the last end
                self.r.wake()

    def _gather_ends(self, batch: list[tuple[str, Active, Any]]) -> None:
        """(Shared store) while other processes run, wait up to ENDS_WAIT_S for their ends
        to join this batch: one transaction for several ends (the claimer does not wait for
        them: their slots are freed as they come). A batch without an end waits for none."""
        if not any(kind in ENDING for kind, _, _ in batch):
            return
        until = time.monotonic() + ENDS_WAIT_S
        while len(batch) < 1000:
            with self.lock:
                running = len(self.active) - self._ended
            if running <= 0 or (left := until - time.monotonic()) <= 0:
                return
            try:
                item = self.book.get(timeout=left)
            except queue.Empty:
                return
            batch.append(item)
            self._free_slots([item])

    def _free_slots(self, batch: list[tuple[str, Active, Any]]) -> None:
        """The runs of `batch` that end free their slots now, before their ends are written;
        the claimer claims for them (a shared store: ends and claims on two connections)."""
        self.free_slots([entry for kind, entry, _ in batch if kind in ENDING])

    def free_slots(self, entries: Sequence[Active]) -> None:
        """(Shared store) these runs' processes are done: their slots are free for the
        claimer now (once each; they stay in `active` until their ends are recorded)."""
        freed = 0
        with self.lock:
            for entry in entries:
                if not entry.ended and (entry.run.id or -1) in self.active:
                    entry.ended = True
                    self._ended += 1
                    freed += 1
        if freed:
            self._claim_wanted.set()

    def _claim_loop(self) -> None:
        """The claimer (shared store): claims for freed slots on a connection of its own."""
        while True:
            self._claim_wanted.wait()
            self._claim_wanted.clear()
            self._claim_safely(self._claim_for_freed)

    def _claim_for_freed(self) -> None:
        if self._claimer is None:
            assert self._open_store is not None
            self._claimer = self._open_store()
        self.start_queued(self.r._horizon(), store=self._claimer, freed=True)

    def _claim_safely(self, claim: Callable[..., None], *args: Any) -> None:
        """A claim from the bookkeeper or the claimer: a store error is reported and left to
        the loop, which claims again with backoff; a bug is said, never raised."""
        try:
            claim(*args)
        except StoreError as exc:
            self.r._store_failed(exc)
            self.r.wake()
        except Exception as exc:
            self.r.emit("error", f"claim: {type(exc).__name__}: {exc}")
            self.r.wake()

    def _keep(self, batch: list[tuple[str, Active, Any]], done: list[Active]) -> None:
        """Write one batch from the loop, in order of kind: output, pids and start times
        (those of runs whose end is in the batch go with their end), ends. A bug met with
        one item has that run recorded abandoned; the others go on."""
        ends: list[tuple[Active, Run]] = []
        started: dict[Active, Run] = {}  # pids and start times to record (spawned, settled)
        released: list[int] = []  # runs that never started, back to the queue
        for kind, entry, value in batch:
            try:
                self._take(kind, entry, value, ends, started, done, released)
            except Exception as exc:
                started.pop(entry, None)
                ends[:] = [(e, f) for e, f in ends if e is not entry]
                if entry not in done:
                    done.append(entry)
                    self._abandon_after_error(entry, exc)
        if released:  # (failing still once stopping's grace is over: the next runner's
            fence = self.r.fence  # recovery finds them without a process)
            try:
                self.r.persist(lambda: self.store.release_runs(released, fence=fence))
            except StoreError:
                pass
            except Exception as exc:  # a bug: said; the ends of the batch are still written
                self.r.emit("error", f"release: {type(exc).__name__}: {exc}")
        for entry, _ in ends:  # an end records the pid with everything else
            started.pop(entry, None)
        for entry in done:
            started.pop(entry, None)
        if ends:  # the pids go with the ends, in their transaction
            done.extend(entry for entry, _ in ends if entry not in done)
            try:
                self._record(ends, list(started.values()))
            except Exception as exc:  # a bug: each run recorded abandoned, if it can be
                for entry, _ in ends:
                    self._abandon_after_error(entry, exc)
        elif started:
            with contextlib.suppress(StoreError):
                self.store.mark_started_all(list(started.values()))

    def _take(
        self,
        kind: str,
        entry: Active,
        value: Any,
        ends: list[tuple[Active, Run]],
        started: dict[Active, Run],
        done: list[Active],
        released: list[int],
    ) -> None:
        """One item of a batch (see _keep)."""
        store = self.store
        if kind == "output":
            run_id = entry.run.id or 0
            # (failing still once stopping's grace is over: the end below says so)
            with contextlib.suppress(StoreError):
                self.r.persist(lambda: store.append_output(run_id, value))
        elif kind == "spawned":
            started[entry] = entry.run
        elif kind == "settled":  # (kept for its end too)
            entry.run = started[entry] = replace(entry.run, proc_start=value)
        elif kind == "started":
            self._tell_started(entry, value)
        elif kind == "requeue":  # never started: back to the queue (see _keep)
            done.append(entry)
            released.append(entry.run.id or 0)
        elif kind == "outcome":
            ends.append((entry, self._final(entry, value)))
        elif kind == "final":
            ends.append((entry, value))
        elif kind == "error" and entry not in done:
            done.append(entry)
            self._abandon_after_error(entry, value)

    def _final(self, entry: Active, outcome: executor.Outcome) -> Run:
        cancelled = False
        if outcome.status != "succeeded":  # did `jobctl cancel` ask for it?
            with contextlib.suppress(StoreError):
                asked = self.r.persist(lambda: self.store.get_run(entry.run.id or 0))
                cancelled = asked.cancel_requested_at is not None
        return final_run(entry.run, outcome, local_shift(self.r.clock), cancelled)

    def _record(self, ends: list[tuple[Active, Run]], started: list[Run]) -> None:
        """Record ends and their retries in one transaction, retried through a store outage.
        If the store refuses the batch's data (StoreDataError: e.g. a value it cannot hold),
        the ends are written one by one, so that one bad end never holds the others back."""
        now = self.r.clock.now()
        decided = [planner.after_end(e.job, final, now, self.r.rng) for e, final in ends]
        batch: list[End] = [
            (final, retry, e.job.keep_runs)
            for (e, _), (final, retry) in zip(ends, decided, strict=True)
        ]
        fence = self.r.fence
        try:
            try:
                written = self.r.persist(
                    lambda: self.store.finish_runs(batch, fence=fence, started=started)
                )
            except StoreDataError as exc:
                self.r.emit("error", f"the store refused a batch of {len(batch)} ends ({exc}); "
                            "writing them one by one")  # fmt: skip
                written = [self._record_one(end, fence) for end in batch]
        except StoreError as exc:  # still failing once stopping's grace ran out: the runs
            # stay `running` in the store, and the next runner recovers them (SPEC 7)
            for entry, _ in ends:
                self.r.emit("error", f"{entry.run.job}: run {entry.run.id}: its end could not "
                            f"be recorded ({exc}); the next runner recovers it")  # fmt: skip
            return
        now = self.r.clock.now()
        for (entry, _), (final, retry), ok in zip(ends, decided, written, strict=True):
            if ok is None:  # the store refused it (said already)
                continue
            if not ok:  # our lease went: another runner takes the run over
                self.r.emit("error", f"{final.job}: run {final.id}'s end refused: this "
                            "runner's lease on it is gone (expired or taken over); fenced, "
                            "not recorded by this runner")  # fmt: skip
                continue
            self.r.emit("end", describe_end(final, retry, now))
            if self.r.notifier is not None:
                self.r.notifier.ended(entry.job, final, retry)
        if any(retry is not None for _, retry in decided):
            self.r.wake()  # the loop sleeps until a retry's time (the claim below is for now)

    def _record_one(self, end: End, fence: tuple[str, int] | None) -> bool | None:
        """One end of a batch the store refused: written alone; None if the store refuses
        it too (it stays `running`, and recovery records it abandoned: said in the log)."""
        try:
            return self.r.persist(lambda: self.store.finish_runs([end], fence=fence))[0]
        except StoreDataError as exc:
            run = end[0]
            self.r.emit("error", f"{run.job}: run {run.id}: the store refused its end ({exc}); "
                        "it stays running until recovery records it abandoned")  # fmt: skip
            return None

    def _abandon_after_error(self, entry: Active, exc: BaseException) -> None:
        """Record a run whose supervision failed as abandoned (and retry it), trying for a
        while; if the store stays unusable, recover() picks it up once it is back."""
        self.r.emit("error", f"{entry.run.job}: run {entry.run.id}: {type(exc).__name__}: {exc}")
        proc = entry.spawned
        if proc is not None and executor.group_alive(proc.pid):
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL)
        run = replace(entry.run, status="abandoned", finished_at=self.r.clock.now(),
                      error=f"the runner could not record it: {exc}")  # fmt: skip
        for _ in range(10):
            try:
                record_end(self.store, entry.job, run, self.r.clock, self.r.rng,
                           fence=self.r.fence)  # fmt: skip
                return
            except FencedError:  # no longer ours: whoever took it over records it
                return
            except Exception:
                self.r.clock.sleep(1.0)

    # ---- stopping runs ------------------------------------------------------------------------
    def terminate(self, run: Run, status: str, reason: str) -> None:
        with self.lock:
            entry = self.active.get(run.id or -1)
            if entry is None:
                return
            if entry.proc is None:  # stopped as it starts (or without starting: the loop)
                entry.stop = entry.stop or (status, reason)
                proc = None
            else:
                proc = entry.proc
        if proc is not None:
            proc.terminate(status, reason)
        self.loop.poke()  # its kill deadline is a timer of the loop

    def fence(self, reason: str, grace_s: float) -> int:
        """Terminate every run of ours now (SIGKILL after at most `grace_s`): this runner's
        lease is going or gone, so another runner may take the runs over. Returns how many."""
        with self.lock:
            entries = list(self.active.values())
        for entry in entries:
            with self.lock:
                proc = entry.proc
                if proc is None:
                    entry.stop = entry.stop or ("abandoned", reason)
            if proc is not None:
                proc.terminate("abandoned", reason, grace_s=grace_s)
        self.loop.poke()
        return len(entries)

    def check_cancels(self) -> None:
        """Terminate our runs that `jobctl cancel` marked."""
        for run in self.r.store.list_runs(RunFilter(owner=self.r.owner, statuses=["running"])):
            if run.cancel_requested_at is not None:
                self.terminate(run, "cancelled", "cancelled")

    def shutdown(self) -> None:
        """Let running jobs finish for the grace period, then terminate them."""
        deadline = self.r._give_up_at = time.monotonic() + self.r.grace_s
        self.loop.poke()  # runs claimed ahead go back to the queue (see _start_ready)
        if self.active:
            self.r.emit(
                "stop", f"stopping: waiting up to {self.r.grace_s:g}s for {len(self.active)} runs"
            )
        while self.active and time.monotonic() < deadline:
            select.select([self.r._wake_r], [], [], min(0.5, max(0.0, deadline - time.monotonic())))
            self.r._drain()
            with contextlib.suppress(StoreError):
                self.check_cancels()
        with self.lock:
            left = list(self.active.values())
        for entry in left:
            with self.lock:
                proc = entry.proc
                if proc is None:  # not started yet: stopped as soon as it starts
                    entry.stop = ("abandoned", "the runner stopped before it finished")
            if proc is not None:
                proc.terminate("abandoned", "the runner stopped before it finished")
        self.loop.poke()
        while self.active:
            time.sleep(0.05)
        self.r.emit("stop", "runner stopped")


class _ProcessLoop:
    """One thread that supervises every job process of the pool (see the module's doc)."""

    def __init__(self, pool: WorkerPool) -> None:
        self.pool = pool
        self.sel = selectors.DefaultSelector()
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        os.set_blocking(self._w, False)
        self.sel.register(self._r, selectors.EVENT_READ, None)
        self._inbox: list[Active] = []
        self._inbox_lock = threading.Lock()
        self._gated: list[tuple[float, int, Active]] = []  # (not_before, seq, entry)
        self._timers: list[tuple[float, int, Active]] = []  # (monotonic due, seq, entry)
        self._seq = itertools.count()
        self._watching: set[Active] = set()
        self._ready: list[Active] = []  # claimed due runs waiting for a slot (FIFO)

    def add(self, entries: list[Active]) -> None:
        if entries:
            with self._inbox_lock:
                self._inbox.extend(entries)
            self.poke()

    def poke(self) -> None:
        with contextlib.suppress(BlockingIOError):  # a full pipe: the loop is awake anyway
            os.write(self._w, b"\0")

    def run(self) -> None:
        book = self.pool.book
        while True:
            book.hold()
            try:
                self._round()
            except Exception as exc:  # a bug: say so, and keep supervising the others
                self.pool.r.emit("error", f"process loop: {type(exc).__name__}: {exc}")
                time.sleep(0.1)
            finally:
                book.flush()

    def _round(self) -> None:
        """Wait for output, exits, pokes and timers; then step what they concern."""
        clock = self.pool.r.clock
        waits = []
        if self._timers:
            waits.append(self._timers[0][0] - time.monotonic())
        if self._gated:
            waits.append(self._gated[0][0] - clock.now())
        if self._ready:
            waits.append(self._ready[0].held + HOLD_S - time.monotonic())
        timeout = max(0.0, min(waits)) if waits else None
        touched: set[Active] = set()
        for key, _ in self.sel.select(timeout):
            entry = key.data
            if entry is None:
                with contextlib.suppress(BlockingIOError):
                    while os.read(self._r, 4096):
                        pass
                touched.update(self._watching)  # a terminate() may have set a deadline
            elif entry in self._watching and entry.watch is not None:
                try:
                    more = entry.watch.ready(key.fd)
                except Exception as exc:
                    self._failed(entry, exc)
                    continue
                if not more:
                    self.sel.unregister(key.fd)
                    entry.fds.discard(key.fd)
                touched.add(entry)
        with self._inbox_lock:
            new, self._inbox = self._inbox, []
        for entry in new:
            if entry.gated:
                heapq.heappush(self._gated, (entry.run.not_before, next(self._seq), entry))
            elif entry.spawned is not None:
                touched.add(self._begin(entry))
            else:  # a due run just claimed (see _launch): started below, at
                entry.held = time.monotonic()  # once or when a slot frees
                self._ready.append(entry)
        if self._ready:
            touched.update(self._start_ready(clock))
        if self._gated and self._gated[0][0] <= clock.now():
            touched.update(self._open_gates(clock.now()))
        mono = time.monotonic()
        while self._timers and self._timers[0][0] <= mono:
            due, _, entry = heapq.heappop(self._timers)
            if entry.due == due and entry in self._watching:
                touched.add(entry)
        for entry in touched:
            if entry in self._watching:
                self._step(entry, mono)
        if self._ready:  # slots freed by the processes that ended just now
            for entry in self._start_ready(clock):
                if entry in self._watching:
                    self._step(entry, time.monotonic())

    def _start_ready(self, clock: Any) -> list[Active]:
        """Spawn the claimed due runs, oldest first, while slots are free; those stopped
        meanwhile (cancelled, fenced) end without a process, and those that waited HOLD_S
        go back to the queue (all of them when stopping: spawn puts them back)."""
        pool = self.pool
        begun = []
        mono = time.monotonic()
        for entry in list(self._ready):
            with pool.lock:
                stop = entry.stop
            if stop is not None:
                self._ready.remove(entry)
                self._never_ran(entry, stop)
        while self._ready:
            entry = self._ready[0]
            with pool.lock:
                stop = entry.stop
            if stop is not None:  # stopped just now
                self._ready.pop(0)
                self._never_ran(entry, stop)
            elif (pool.ahead and entry.held + HOLD_S <= mono) or not pool.r.holding:
                # claimed ahead and waited too long (every slot stayed busy, or this process
                # was frozen: its lease may be gone and the run another's by now), or fenced:
                # never started here; back to the queue (release_runs: fenced; a run whose
                # cancel was asked ends cancelled). On SQLite too: a run claimed ahead must
                # not show `running` while long jobs hold every slot
                self._ready.pop(0)
                if entry.held + HOLD_S <= mono:
                    pool.ahead_paused_until = mono + AHEAD_PAUSE_S
                pool.requeue(entry)
            elif (len(self._watching) + len(self._gated) + pool.launching < pool.size
                  or pool.r._stopping):  # fmt: skip
                self._ready.pop(0)
                if pool.spawn(entry, clock.now(), local_shift(clock), due=True):
                    pool.book.put(("spawned", entry, None))
                    begun.append(self._begin(entry))
            else:
                break
        return begun

    def _never_ran(self, entry: Active, stop: tuple[str, str]) -> None:
        """A run stopped (cancelled, replaced, fenced) before its command began: its end,
        with the status and reason asked for and no start."""
        self.pool.released(entry)
        final = replace(entry.run, status=stop[0], error=stop[1], started_at=None,
                        finished_at=self.pool.r.clock.now())  # fmt: skip
        self.pool.book.put(("final", entry, final))

    def _open_gates(self, now: float) -> list[Active]:
        """Release every gated process that is due, in a row (a burst due at one instant
        starts within a fraction of a millisecond), then begin watching them."""
        due: list[Active] = []
        while self._gated and self._gated[0][0] <= now:
            due.append(heapq.heappop(self._gated)[2])
        released: list[Active] = []
        for entry in due:
            proc = entry.spawned
            assert proc is not None
            with self.pool.lock:
                stop = entry.stop
            try:
                if self.pool.r._stopping and (stop is None or stop[0] != "cancelled"):
                    proc.abort()  # stopping: it never ran; back to the queue
                    self.pool.book.put(("requeue", entry, None))
                elif stop is not None:  # cancelled, replaced or fenced before its time
                    proc.abort()  # it never ran
                    self._never_ran(entry, stop)
                else:
                    proc.release()
                    released.append(entry)
            except Exception as exc:  # a bug: this run alone is recorded abandoned
                self.pool.book.put(("error", entry, exc))
        return [self._begin(entry) for entry in released]

    def _begin(self, entry: Active) -> Active:
        """Watch a process that runs its command now."""
        proc = entry.spawned
        assert proc is not None
        book = self.pool.book

        def sink(data: bytes) -> None:
            book.put(("output", entry, data))

        def settled(p: executor.Process) -> None:
            if not entry.gated:  # a gated one's start time was recorded before its gate opened
                book.put(("settled", entry, p.proc_start))

        try:
            entry.watch = executor.Watch(proc, sink, settled=settled)
            for fd in entry.watch.fds():
                self.sel.register(fd, selectors.EVENT_READ, entry)
                entry.fds.add(fd)
            self._watching.add(entry)
            self.pool.started(entry, proc)
        except Exception as exc:
            self._failed(entry, exc)
        return entry

    def _step(self, entry: Active, mono: float) -> None:
        watch = entry.watch
        assert watch is not None
        try:
            wait = watch.step(mono)
        except Exception as exc:
            self._failed(entry, exc)
            return
        if wait is not None:
            entry.due = mono + wait
            heapq.heappush(self._timers, (entry.due, next(self._seq), entry))
            return
        self._forget(entry)
        entry.watch = None
        try:
            outcome = watch.finish()
        except Exception as exc:
            entry.failed = True
            self.pool.book.put(("error", entry, exc))
            return
        self.pool.book.put(("outcome", entry, outcome))
        if self.pool._open_store is not None:  # the claimer need not wait for the bookkeeper
            self.pool.free_slots([entry])

    def _forget(self, entry: Active) -> None:
        for fd in entry.fds:
            self.sel.unregister(fd)
        entry.fds.clear()
        self._watching.discard(entry)

    def _failed(self, entry: Active, exc: BaseException) -> None:
        """A bug while supervising one run: stop watching it (its processes are killed by
        the watch's abort, or by _abandon_after_error) and have it recorded abandoned."""
        if entry.failed:  # (another of its fds was ready in the same round)
            return
        entry.failed = True
        self._forget(entry)
        watch, entry.watch = entry.watch, None
        if watch is not None:
            with contextlib.suppress(Exception):
                watch.finish()
        self.pool.book.put(("error", entry, exc))
