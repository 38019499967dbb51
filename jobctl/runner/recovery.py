"""Recovery: runs left behind by runners that died become `abandoned` (SPEC 7).

Their surviving processes are terminated first (only where the recorded pid still has the
recorded start time, or where the processes carry the run's markers), then the run is
recorded and retried if attempts remain. /proc is read here only to kill orphans on this host;
whether an owner is alive is `owners.alive`. The loop calls `recover_runs` under its claim
lock's protection (see Runner.recover).
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
from jobctl.runner.execution import describe_end, gate_mark, record_end, run_markers
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
    never = [r for r in stale if r.status == "running" and _never_ran(gates, r)]
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
            emit("recover", f"{r.job}: run {r.id} never started (its runner died before "
                 "its time): queued again")  # fmt: skip
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
