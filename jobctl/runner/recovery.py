"""Recovery: runs left behind by runners that died become `abandoned` (SPEC 7).

Their surviving processes are terminated first (only where the recorded pid still has the
recorded start time, or where the processes carry the run's markers), then the run is
recorded and retried if attempts remain. /proc is read here only to kill orphans on this host;
whether an owner is alive is `owners.alive`. The loop calls `recover_runs` under its claim
lock's protection (see Runner.recover).

A run that provably never started goes back to the queue instead: a gated process's mark says
so (its runner died before its time), and so does a wait mark (mark_waiting) for a due run the
runner had claimed and not spawned yet (waiting for a slot when it died).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import time
from collections.abc import Callable
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
    it provably never started, which puts it back in the queue: its gated process left its
    mark in `gates` (its runner died before its time), or its wait mark is there (it waited
    for a slot: mark_waiting)."""
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
                if r.id in waited:  # (a wait mark stays until the run is queued again)
                    continue
                with contextlib.suppress(OSError):
                    mark = gate_mark(gates, r)
                    if mark is not None:
                        mark.write_text(f"{r.pid}\n")
            raise
        for r in never:
            why = "it waited for a slot" if r.id in waited else "its runner died before its time"
            emit("recover", f"{r.job}: run {r.id} never started ({why}): queued again")
            if r.id in waited:
                unmark_waiting(gates, r)
        stale = [r for r in stale if r not in never]
        if not stale:
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


def wait_mark(gates: Path | None, run: Run) -> Path | None:
    """The file that says `run`, claimed by its owner, waits for a slot and has not been
    spawned (see mark_waiting)."""
    tag = run_tag(run)
    return None if gates is None or tag is None else gates / f"wait-{tag}"


def _wait_text(run: Run) -> str | None:
    boot = boot_id()
    return None if boot is None or not run.owner else f"{boot} {run.owner}\n"


def mark_waiting(gates: Path | None, runs: list[Run]) -> None:
    """Leave a wait mark for each of `runs`: due runs a runner has just claimed (`running`,
    with no pid) that wait in its process loop for a slot. The loop removes a run's mark
    before it spawns the run (unmark_waiting; no spawn if that fails), so a mark found by
    recovery proves the run never started, and it goes back to the queue rather than to
    `abandoned` (SPEC 7: nothing lost).

    The mark names the boot (Linux's boot id) and the owner: it is not synced (a run claimed
    ahead costs no fsync of its own), and the kernel keeps what a process that was killed
    wrote, not what a power loss takes; after a reboot it proves nothing (the run is
    recorded abandoned, as any run whose start is unknown), and a mark left over never
    stands for a later claim of the run by another owner. A mark that cannot be written
    proves nothing either: the same."""
    for run in runs:
        mark, text = wait_mark(gates, run), _wait_text(run)
        if mark is None or text is None:
            continue
        with contextlib.suppress(OSError):
            fd = os.open(mark, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, text.encode())  # (a short write proves nothing: see _waited)
            finally:
                os.close(fd)


def unmark_waiting(gates: Path | None, run: Run) -> bool:
    """Remove `run`'s wait mark; False if it is still there (the run must not start)."""
    mark = wait_mark(gates, run)
    if mark is None:
        return True
    try:
        mark.unlink()
    except FileNotFoundError:
        pass
    except OSError:
        return False
    return True


def _waited(gates: Path | None, runs: list[Run]) -> list[Run]:
    """Of the running `runs` of owners that are gone, those that provably never started:
    no pid recorded, a wait mark of this boot and of the run's owner, and no process that
    carries the run's markers (JOBCTL_RUN_ID and JOBCTL_OWNER: if one does, the run did
    start, whatever the mark says)."""
    found = []
    for run in runs:
        mark, text = wait_mark(gates, run), _wait_text(run)
        if run.pid is not None or mark is None or text is None:
            continue
        try:
            if mark.read_text() == text:
                found.append(run)
        except (OSError, UnicodeDecodeError):
            continue
    if found:
        started = executor.marked_groups({r.id or 0: set(run_markers(r)) for r in found})
        found = [r for r in found if not started.get(r.id or 0)]
    return found


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
