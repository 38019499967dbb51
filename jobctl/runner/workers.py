"""The worker pool: at most N claimed runs executing at once, one thread each.

A worker executes its run (execution.execute), then claims the next one itself under the
claim lock, so the loop is not woken between two runs and `--workers` is never exceeded.
The pool also terminates runs (cancel, overlap=replace) and winds down on stop. It reads the
runner's store, clock and flags through `self.r`; it knows nothing of firing or recovery.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import threading
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from jobctl import executor, planner
from jobctl.errors import FencedError, StoreError
from jobctl.models import Job, Run
from jobctl.runner.execution import Gates, describe_end, execute, local_shift, record_end
from jobctl.store.base import RunFilter

if TYPE_CHECKING:
    from jobctl.runner.loop import Runner


@dataclass
class Active:
    run: Run
    job: Job
    proc: executor.Process | None = None
    stop: tuple[str, str] | None = None  # (status, reason) asked for before the process began


class WorkerPool:
    def __init__(self, runner: Runner, size: int) -> None:
        self.r = runner
        self.size = size
        self.active: dict[int, Active] = {}
        self.lock = threading.Lock()
        self.claiming = threading.Lock()  # one claim at a time: free slots are never overbooked
        self.gates = Gates()

    def start_queued(self, now: float, done: Active | None = None) -> Active | None:
        """Claim queued runs for the free workers and start a thread for each. A worker
        thread that has just finished run `done` gives up its slot here, under the claim lock
        and in the same step that registers what it claimed (so neither the loop nor a
        shutdown ever sees the slot free or `active` empty meanwhile), keeps the first claimed
        run for itself (no thread start, no wake-up of the loop between two runs) and gets it
        back."""
        replace: list[Run] = []

        labels = frozenset(self.r.labels)

        def pick(
            queued: list[Run], running: list[Run], jobs: dict[str, Job], limit: int
        ) -> tuple[list[Run], list[Run]]:
            replace[:] = planner.replaced_by_waiting(queued, running, jobs)
            return planner.pick_startable(queued, running, jobs, limit, labels=labels)

        with self.claiming:
            with self.lock:
                busy = len(self.active) - (1 if done is not None else 0)
                free = max(0, self.size - busy)  # 0 still looks for replacements
            try:
                claimed = [] if self.r._stopping or not self.r.holding else self.r.store.claim(
                    self.r.owner, self.r.host, now, free, pick, epoch=self.r.epoch
                )  # fmt: skip
            except BaseException:
                if done is not None:
                    with self.lock:
                        self.active.pop(done.run.id or -1, None)
                raise
            entries = [Active(run=run, job=job) for run, job in claimed]
            with self.lock:
                if done is not None:
                    self.active.pop(done.run.id or -1, None)
                self.active.update((e.run.id or 0, e) for e in entries)
        for old in replace:
            try:
                self.terminate(old, "cancelled", "replaced by a newer run (overlap=replace)")
            except OSError as exc:  # e.g. EPERM on a group led by a setuid program
                self.r.emit("error", f"{old.job}: run {old.id}: cannot replace it: {exc}")
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
                entry = self.start_queued(self.r._horizon(), done=done)
                done = None  # its slot was handed over (or freed) by start_queued
        except StoreError as exc:  # claiming failed: the loop claims again, with backoff
            self.r._store_failed(exc)
        except Exception as exc:  # a bug: end this worker, say so
            self.r.emit("error", f"worker stopped: {type(exc).__name__}: {exc}")
        finally:
            if done is not None:  # never leak a slot: the loop and shutdown count `active`
                with self.lock:
                    self.active.pop(done.run.id or -1, None)
            self.r.wake()

    def _execute(self, entry: Active) -> None:
        run = entry.run

        def started(proc: executor.Process) -> None:
            with self.lock:
                entry.proc = proc
                stop = entry.stop
            late = (proc.started_at + local_shift(self.r.clock) - run.not_before) * 1000
            self.r.emit("start", f"{run.job}: run {run.id} started, pid {proc.pid}, {late:+.1f}ms")
            if self.r.notifier is not None:
                self.r.notifier.started(entry.job, replace(run, pid=proc.pid))
            if stop is not None:  # cancelled or replaced while it waited for its start time
                proc.terminate(*stop)

        try:
            final, retry = execute(self.r.store, run, entry.job, self.r.clock, self.r.rng,
                                   on_start=started, go=lambda: not self.r._stopping,
                                   gates=self.gates, persist=self.r.persist,
                                   report=self.r._store_failed, fence=self.r.fence)  # fmt: skip
            self.r.emit("end", describe_end(final, retry, self.r.clock.now()))
            if self.r.notifier is not None:
                self.r.notifier.ended(entry.job, final, retry)
        except FencedError as exc:  # our lease went: another runner takes the run over
            self.r.emit("error", f"{run.job}: {exc}; fenced, not recorded by this runner")
        except StoreError as exc:  # still failing once stopping's grace ran out: the run
            # stays `running` in the store, and the next runner recovers it (SPEC 7)
            self.r.emit("error", f"{run.job}: run {run.id}: its end could not be recorded "
                      f"({exc}); the next runner recovers it")  # fmt: skip
            if entry.proc is not None and executor.group_alive(entry.proc.pid):
                with contextlib.suppress(OSError):
                    os.killpg(entry.proc.pid, signal.SIGKILL)
        except Exception as exc:  # a bug: the executor has killed the job
            self.r.emit("error", f"{run.job}: run {run.id}: {type(exc).__name__}: {exc}")
            self._abandon_after_error(entry, exc)

    def _abandon_after_error(self, entry: Active, exc: Exception) -> None:
        """Record a run whose recording failed as abandoned (and retry it), trying for a while;
        if the store stays unusable, recover() picks it up once it is back."""
        if entry.proc is not None and executor.group_alive(entry.proc.pid):
            with contextlib.suppress(OSError):
                os.killpg(entry.proc.pid, signal.SIGKILL)
        run = replace(entry.run, status="abandoned", finished_at=self.r.clock.now(),
                      error=f"the runner could not record it: {exc}")  # fmt: skip
        for _ in range(10):
            try:
                record_end(self.r.store, entry.job, run, self.r.clock, self.r.rng,
                           fence=self.r.fence)  # fmt: skip
                return
            except FencedError:  # no longer ours: whoever took it over records it
                return
            except Exception:
                self.r.clock.sleep(1.0)

    def terminate(self, run: Run, status: str, reason: str) -> None:
        with self.lock:
            entry = self.active.get(run.id or -1)
            if entry is None:
                return
            if entry.proc is None:
                entry.stop = entry.stop or (status, reason)
                return
        entry.proc.terminate(status, reason)

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
        return len(entries)

    def check_cancels(self) -> None:
        """Terminate our runs that `jobctl cancel` marked."""
        for run in self.r.store.list_runs(RunFilter(owner=self.r.owner, statuses=["running"])):
            if run.cancel_requested_at is not None:
                self.terminate(run, "cancelled", "cancelled")

    def shutdown(self) -> None:
        """Let running jobs finish for the grace period, then terminate them."""
        deadline = self.r._give_up_at = time.monotonic() + self.r.grace_s
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
        while self.active:
            time.sleep(0.05)
        self.r.emit("stop", "runner stopped")
