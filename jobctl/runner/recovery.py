"""Recovery: runs left behind by runners that died become `abandoned` (SPEC 7).

Their surviving processes are terminated first (only where the recorded pid still has the
recorded start time, or where the processes carry the run's markers), then the run is
recorded and retried if attempts remain. /proc is read here only to kill orphans on this host;
whether an owner is alive is `owners.alive`. The loop calls `recover_runs` under its claim
lock's protection (see Runner.recover).

A run that provably never started goes back to the queue instead: a gated process's mark says
so (its runner died before its time), and so does a runner's spawn journal (SpawnJournal) for a
run it claimed and never spawned (a run claimed ahead, waiting for a slot, when it died).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path

from jobctl import executor, owners
from jobctl.clock import Clock
from jobctl.models import Job, Run
from jobctl.procfs import boot_id
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
    its gated process left its mark in `gates` (its runner died before its time: the command
    never ran), which puts it back in the queue."""
    if not stale:
        return
    journals: dict[str, frozenset[str] | None] = {}
    never = [r for r in stale if r.status == "running"
             and (_never_ran(gates, r) or never_spawned(gates, r, journals))]  # fmt: skip
    if never:
        try:
            store.release_runs([r.id for r in never if r.id is not None])
        except BaseException:  # (a store error): their marks back, for the next recovery
            for r in never:
                with contextlib.suppress(OSError):
                    mark = gate_mark(gates, r)
                    if mark is not None:
                        mark.write_text(f"{r.pid}\n")
            raise
        for r in never:
            why = "before its time" if r.pid is not None else "before a slot was free"
            emit("recover", f"{r.job}: run {r.id} never started (its runner died {why}): "
                 "queued again")  # fmt: skip
        stale = [r for r in stale if r not in never]
        if not stale:
            _forget_journals(gates, never)
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
    _forget_journals(gates, stale + never)


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


def _forget_journals(gates: Path | None, runs: list[Run]) -> None:
    """The spawn journals of the dead owners of `runs`, every run of theirs recorded now."""
    for owner in {r.owner for r in runs if r.owner and not owners.alive(r.owner)}:
        path = SpawnJournal.path(gates, owner)
        if path is not None:
            with contextlib.suppress(OSError):
                path.unlink()


class SpawnJournal:
    """A runner's record, in its gates folder, of every run it spawns, written before the
    spawn: one line a run (its gate mark's name: id and creation time), after a first line
    that names the boot. A run claimed ahead of a free slot is `running` in the store, with
    no pid, until its process is spawned; if the runner dies meanwhile, recovery finds it
    missing from the journal and puts it back in the queue (never_spawned) rather than
    recording a run that never ran abandoned.

    Unsynced on purpose (one write a run): it is trusted only within the boot that wrote it,
    where the kernel keeps every write of a process that died (kill -9, a crash). After a
    power loss or a reboot, the boot differs and nothing is proved: such runs are recorded
    abandoned, as any run whose start is unknown (SPEC 7: never queued again after it
    started). A write that fails removes the journal (or empties it), which proves nothing
    either. It is rewritten, with the runs still claimed, once it passes MAX_BYTES."""

    MAX_BYTES = 1 << 20
    HEADER = "jobctl-spawned"

    def __init__(self, path: Path, boot: str, fd: int) -> None:
        self._path, self._boot, self._fd = path, boot, fd
        self._size = 0
        self._lock = threading.Lock()

    @staticmethod
    def path(gates: Path | None, owner: str) -> Path | None:
        if gates is None:
            return None
        return gates / f"spawned-{owner.replace('/', '_')}"

    @classmethod
    def open(cls, gates: Path | None, owner: str) -> SpawnJournal | None:
        """A new journal for `owner`, None if it cannot be written (runs claimed ahead are
        then recorded abandoned should the runner die before spawning them)."""
        path, boot = cls.path(gates, owner), boot_id()
        if path is None or boot is None:
            return None
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)
        except OSError:
            return None
        journal = cls(path, boot, fd)
        try:
            journal._size = os.write(fd, f"{cls.HEADER} {boot}\n".encode())
        except OSError:
            journal.close(remove=True)
            return None
        return journal

    def record(self, run: Run, claimed: Callable[[], Iterable[Run]]) -> None:
        """`run` is about to be spawned. `claimed()`: the runs its runner holds (kept when the
        journal is rewritten)."""
        tag = run_tag(run)
        if tag is None:
            return
        with self._lock:
            if self._fd < 0:
                return
            try:
                if self._size >= self.MAX_BYTES:
                    self._rewrite(claimed())
                self._size += os.write(self._fd, f"{tag}\n".encode())
            except OSError:
                self._invalidate()

    def _rewrite(self, runs: Iterable[Run]) -> None:
        names = [t for t in map(run_tag, runs) if t is not None]
        tmp = self._path.with_name(self._path.name + ".new")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)
        try:
            data = "".join(f"{n}\n" for n in [f"{self.HEADER} {self._boot}", *names]).encode()
            size = os.write(fd, data)
            os.replace(tmp, self._path)
        except OSError:
            os.close(fd)
            raise
        os.close(self._fd)
        self._fd, self._size = fd, size

    def _invalidate(self) -> None:
        try:
            self._path.unlink()
        except FileNotFoundError:
            pass
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)  # no header: proves nothing
        with contextlib.suppress(OSError):
            os.close(self._fd)
        self._fd = -1

    def close(self, remove: bool) -> None:
        """Stop recording; `remove`: none of the runner's runs is left open."""
        with self._lock:
            if self._fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(self._fd)
                self._fd = -1
            if remove:
                with contextlib.suppress(OSError):
                    self._path.unlink()


def never_spawned(gates: Path | None, run: Run, journals: dict[str, frozenset[str] | None]) -> bool:
    """Whether the spawn journal of `run`'s owner, written in this boot, proves that the
    run was never spawned (a run with no pid recorded, absent from the journal). `journals`
    caches what was read, by owner."""
    if run.pid is not None or not run.owner:
        return False
    tag = run_tag(run)
    if tag is None:
        return False
    if run.owner not in journals:
        journals[run.owner] = _read_journal(SpawnJournal.path(gates, run.owner))
    spawned = journals[run.owner]
    return spawned is not None and tag not in spawned


def _read_journal(path: Path | None) -> frozenset[str] | None:
    """The runs a journal of this boot names; None if there is none, or it is another
    boot's (or unreadable, or empty after a failed write)."""
    boot = boot_id()
    if path is None or boot is None:
        return None
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    if not lines or lines[0] != f"{SpawnJournal.HEADER} {boot}":
        return None
    return frozenset(lines[1:])


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
