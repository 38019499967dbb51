"""Recovery: runs left behind by runners that died become `abandoned` (SPEC 7).

Their surviving processes are terminated first (only where the recorded pid still has the
recorded start time, or where the processes carry the run's markers), then the run is
recorded and retried if attempts remain. /proc is read here only to kill orphans on this host;
whether an owner is alive is `owners.alive`. The loop calls `recover_runs` under its claim
lock's protection (see Runner.recover).

A run that provably never started goes back to the queue instead: a gated process's mark says
so (its runner died before its time), and so does a wait list (WaitList) for a due run the
runner had claimed and not spawned yet (waiting for a slot when it died).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from jobctl import executor, owners
from jobctl.clock import Clock
from jobctl.models import Job, Run
from jobctl.procfs import boot_id
from jobctl.records import replace
from jobctl.runner.execution import describe_end, gate_mark, record_end, run_markers, run_tag
from jobctl.store.base import Store


def stale_runs(open_runs: list[Run], me: str, mine: set[int]) -> list[Run]:
    """The open runs whose owner is gone: our own runs we no longer track (`mine`: the ids
    our workers hold), and runs of owners that are not alive."""
    return [
        r
        for r in open_runs
        if r.owner and (r.id not in mine if r.owner == me else not owners.alive(r.owner))
    ]


def recover_runs(
    store: Store,
    stale: list[Run],
    now: float,
    clock: Clock,
    rng: random.Random,
    emit: Callable[[str, str], None],
    gates: Path | None = None,
) -> None:
    """Record `stale` runs: a queued one (a foreground `jobctl run` that went away) is
    cancelled; a running one is abandoned (its processes killed first) and retried, unless
    it provably never started, which puts it back in the queue: its gated process left its
    mark in `gates` (its runner died before its time), or it waited for a slot (WaitList)."""
    if not stale:
        return
    waited = {r.id for r in _waited(gates, [r for r in stale if r.status == "running"])}
    never = [r for r in stale if r.status == "running"
             and (r.id in waited or _never_ran(gates, r))]  # fmt: skip
    if never:
        try:
            store.release_runs([r.id for r in never if r.id is not None])
        except BaseException:  # (a store error): their marks back, for the next recovery
            for r in never:
                if r.id in waited:  # (its wait list stays until the run is queued again)
                    continue
                with contextlib.suppress(OSError):
                    mark = gate_mark(gates, r)
                    if mark is not None:
                        mark.write_text(f"{r.pid}\n")
            raise
        for r in never:
            why = "it waited for a slot" if r.id in waited else "its runner died before its time"
            emit("recover", f"{r.job}: run {r.id} never started ({why}): queued again")
        stale = [r for r in stale if r not in never]
        if not stale:
            _forget_waits(gates, never)
            return
    names = sorted({r.job for r in stale})
    jobs = {j.name: j for j in store.list_jobs(names=names, last_runs=False)}
    for run in stale:
        if run.status == "queued":  # a foreground `jobctl run` died while waiting
            store.update_run(run.id or 0, status="cancelled", finished_at=now,
                             error="its jobctl run process went away")  # fmt: skip
    running = [r for r in stale if r.status == "running"]
    killed = kill_orphans(running, jobs)
    for run in running:
        groups = ", ".join(str(g) for g in sorted(killed.get(run.id or -1, ())))
        note = f"; its process group {groups} was terminated" if groups else ""
        final = replace(run, status="abandoned", finished_at=now,
                        error=f"its runner died ({run.owner}){note}")  # fmt: skip
        final, retry = record_end(store, jobs.get(run.job), final, clock, rng)
        emit("recover", describe_end(final, retry, now))
    _forget_waits(gates, stale + never)


def _never_ran(gates: Path | None, run: Run) -> bool:
    """Whether `run`'s gate mark proves that its command never ran: the mark holds the pid
    recorded for the run (its gated process, which read EOF instead of its start). The mark
    is removed, durably, before the run goes back to the queue: a mark that outlived it could
    later pass a run that did start for one that did not (False when it cannot be removed)."""
    mark = gate_mark(gates, run)
    if mark is None or run.pid is None:
        return False
    try:
        if mark.read_text().strip() != str(run.pid):
            return False  # another process's (a stale mark): the run may have run
        mark.unlink()
        folder = os.open(mark.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
    except OSError:
        return False
    return True


class WaitList:
    """The due runs a runner (on SQLite) has claimed and not spawned yet, waiting in its
    process loop for slots: one file in the gates folder, `wait-OWNER`, a first line naming
    the boot (Linux's boot id) and the owner, then a record of REC bytes a run, `W ID-CREATED`
    while it waits. Before the loop spawns a run it turns its W into S (`starting`: no spawn
    if that write fails); a run that leaves otherwise (back to the queue, stopped) gets an R
    (`release`); a record left is reused for a later run (one write replaces it whole). So
    recovery finds a dead runner's run still at W in its list of this boot: it never
    started, and goes back to the queue instead of to `abandoned` (SPEC 7: nothing lost).

    Not synced (a write in place a run, no file made or removed): the kernel keeps what a
    process that was killed wrote, not what a power loss takes, so after a reboot the list
    proves nothing and such runs are recorded abandoned, as any run whose start is unknown.
    A record is written tag first, then its W alone (records never cross a page): one cut
    short, or read half written, never says W; a run whose record cannot be written is not
    on the list, which proves nothing for it."""

    PREFIX = "wait-"
    REC = 64

    def __init__(self, path: Path, fd: int, base: int) -> None:
        self._path, self._fd, self._base = path, fd, base
        self._slots: dict[int, int] = {}  # run id -> its record's index
        self._free: list[int] = []
        self._next = 0
        self._lock = threading.Lock()

    @classmethod
    def open(cls, gates: Path | None, owner: str) -> WaitList | None:
        boot = boot_id()
        if gates is None or boot is None:
            return None
        path = gates / f"{cls.PREFIX}{owner.replace('/', '_')}"
        line = f"{boot} {owner}"  # padded to whole records: none crosses a page
        head = (line.ljust(-(-(len(line) + 1) // cls.REC) * cls.REC - 1) + "\n").encode()
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        except OSError:
            return None
        try:
            if os.write(fd, head) != len(head):
                raise OSError("short write")
        except OSError:
            os.close(fd)
            with contextlib.suppress(OSError):
                path.unlink()
            return None
        return cls(path, fd, len(head))

    def add(self, runs: list[Run]) -> None:
        """`runs` wait for slots now (each that cannot be written proves nothing: left off)."""
        with self._lock:
            for run in runs:
                tag = run_tag(run)
                if tag is None or len(tag) + 3 > self.REC or run.id in self._slots:
                    continue
                slot = self._free.pop() if self._free else self._take()
                at = self._base + slot * self.REC
                # the tag first, under the old state (S, R, or a hole's NUL: not waiting),
                # then the W alone: a record cut short, or read half written, never says W
                body = f" {tag}".ljust(self.REC - 2).encode() + b"\n"
                try:
                    waits = os.pwrite(self._fd, body, at + 1) == len(body)
                    waits = waits and os.pwrite(self._fd, b"W", at) == 1
                except OSError:
                    waits = False
                if waits:
                    self._slots[run.id or 0] = slot
                else:
                    self._free.append(slot)

    def _take(self) -> int:
        self._next += 1
        return self._next - 1

    def starting(self, run: Run) -> bool:
        """`run` is about to be spawned: False if that cannot be written (it must not be)."""
        return self._leave(run, b"S")

    def release(self, run: Run) -> bool:
        """`run` leaves without starting (back to the queue, or stopped)."""
        return self._leave(run, b"R")

    def _leave(self, run: Run, state: bytes) -> bool:
        with self._lock:
            slot = self._slots.get(run.id or 0)
            if slot is None:
                return True
            try:
                done = os.pwrite(self._fd, state, self._base + slot * self.REC) == 1
            except OSError:
                done = False
            if done:  # (else the record stays W, and the slot with it)
                del self._slots[run.id or 0]
                self._free.append(slot)
            return done

    def close(self) -> None:
        """The runner stops: the list goes if no run waits on it; else it stays, open, as
        what the next runner's recovery reads (a thread may still spawn one of them)."""
        with self._lock:
            if self._slots or self._fd < 0:
                return
            os.close(self._fd)
            self._fd = -1
            with contextlib.suppress(OSError):
                self._path.unlink()


def _wait_lists(gates: Path | None) -> Iterator[tuple[Path, str, str, list[str]]]:
    """The wait lists in `gates`: each one's path, boot, owner and records (unreadable ones
    left out)."""
    if gates is None:
        return
    with contextlib.suppress(OSError):
        for path in gates.glob(f"{WaitList.PREFIX}*"):
            try:
                head, *lines = path.read_text().split("\n")
            except (OSError, UnicodeDecodeError):
                continue
            boot, _, owner = head.rstrip(" ").partition(" ")
            yield path, boot, owner, lines


def _waiting(gates: Path | None, owners: set[str]) -> dict[str, set[str]]:
    """The runs (their tags) still at W in the wait lists of this boot of `owners`."""
    boot = boot_id()
    found: dict[str, set[str]] = {}
    if boot is None or not owners:
        return found
    for _, file_boot, owner, lines in _wait_lists(gates):
        if file_boot == boot and owner in owners:
            found.setdefault(owner, set()).update(
                line[2:].rstrip(" ") for line in lines if line.startswith("W ")
            )
    return found


def _waited(gates: Path | None, runs: list[Run]) -> list[Run]:
    """Of the running `runs` of owners that are gone, those that provably never started:
    no pid recorded, still at W in a wait list of this boot that names their owner, and no
    process that carries the run's markers (JOBCTL_RUN_ID and JOBCTL_OWNER: if one does,
    the run did start, whatever the list says)."""
    unstarted = [r for r in runs if r.pid is None and r.owner and not owners.alive(r.owner)]
    waiting = _waiting(gates, {r.owner or "" for r in unstarted})
    found = [r for r in unstarted if run_tag(r) in waiting.get(r.owner or "", ())]
    if found:
        started = executor.marked_groups({r.id or 0: set(run_markers(r)) for r in found})
        found = [r for r in found if not started.get(r.id or 0)]
    return found


def _forget_waits(gates: Path | None, runs: list[Run]) -> None:
    """The wait lists of the dead owners of `runs`, every run of theirs recorded now."""
    gone = {r.owner for r in runs if r.owner and not owners.alive(r.owner)}
    if gone:
        for path, _, owner, _ in _wait_lists(gates):
            if owner in gone:
                with contextlib.suppress(OSError):
                    path.unlink()


#: a gate's mark older than this is left over (its run recovered elsewhere: a fleet member's
#: lease expired and another runner took it over): swept after recovery, once an hour at most
GATE_MARK_TTL_S = 86400.0
GATE_SWEEP_EVERY_S = 3600.0


def sweep_gate_marks(gates: Path, ttl_s: float = GATE_MARK_TTL_S) -> None:
    """Remove the marks in `gates` older than `ttl_s`."""
    cutoff = time.time() - ttl_s
    with contextlib.suppress(OSError):
        for mark in gates.iterdir():
            with contextlib.suppress(OSError):
                if mark.stat().st_mtime < cutoff:
                    mark.unlink()


def kill_orphans(runs: list[Run], jobs: dict[str, Job]) -> dict[int, set[int]]:
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
    unrecorded = {r.id: set(run_markers(r)) for r in runs if r.id is not None}
    ours = {os.getpid(), os.getpgrp()}
    signalled = {g for gs in groups.values() for g in gs}  # one TERM a group: a job's trap
    for run_id, pgids in executor.marked_groups(unrecorded).items():  # runs once
        for pgid in pgids - ours - signalled:
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
