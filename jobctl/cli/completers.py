"""Shell completion of values: policies, statuses, zones, shells, and job names and run ids
read from the store the command line names (--home, --store).

A Tab starts a whole `jobctl` (fish, bash and zsh alike), so each completer imports only
what it needs, when it is called; none fails: a store that cannot be opened completes nothing.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from jobctl.store import Store

#: the most run ids offered: a Tab lists what a person can read, the newest first
MAX_RUN_IDS = 30


def _store(ctx: typer.Context) -> Store:
    from jobctl.config import resolve_settings
    from jobctl.store import open_store

    flags = ctx.find_root().params
    return open_store(resolve_settings(flags.get("home"), flags.get("store")))


def _starting(values: tuple[str, ...], incomplete: str) -> list[str]:
    return [v for v in values if v.startswith(incomplete)]


def overlaps(incomplete: str) -> list[str]:
    from jobctl.models import OVERLAPS

    return _starting(OVERLAPS, incomplete)


def misfires(incomplete: str) -> list[str]:
    from jobctl.models import MISFIRES

    return _starting(MISFIRES, incomplete)


def backoffs(incomplete: str) -> list[str]:
    from jobctl.models import BACKOFFS

    return _starting(BACKOFFS, incomplete)


def statuses(incomplete: str) -> list[str]:
    from jobctl.models import RUN_STATUSES

    return _starting(RUN_STATUSES, incomplete)


def shells(incomplete: str) -> list[str]:
    return _starting(("bash", "zsh", "fish"), incomplete)


def zone_names() -> list[str]:
    """The IANA zone names of the system's tz database (a walk of its folder, no file read),
    else those of the tzdata package; sorted."""
    import zoneinfo

    for base in zoneinfo.TZPATH:
        if not os.path.isdir(os.path.join(base, "Europe")):
            continue
        names = []
        for folder, dirs, files in os.walk(base):
            rel = os.path.relpath(folder, base)
            dirs[:] = [d for d in dirs if d[0].isupper()]  # not posix/, right/
            prefix = "" if rel == "." else rel + "/"
            names += [prefix + f for f in files if f[0].isupper() and "." not in f]
        if names:
            return sorted(names)
    try:
        from importlib.resources import files as resource_files

        text = resource_files("tzdata").joinpath("zones").read_text()
    except Exception:
        return []
    return sorted(line.strip() for line in text.splitlines() if line.strip())


def zones(incomplete: str) -> list[str]:
    return [z for z in zone_names() if z.startswith(incomplete)]


def job_names(ctx: typer.Context, incomplete: str) -> list[str]:
    """Job names from the store the command line names (--home, --store)."""
    try:
        names = [j.name for j in _store(ctx).list_jobs(last_runs=False)]
    except Exception:
        return []
    return [n for n in names if n.startswith(incomplete)]


def _run_ids(ctx: typer.Context, incomplete: str, which: str) -> list[tuple[str, str]]:
    """Run ids with a line of help (job, status, when), newest first: `open` the queued and
    running ones (cancel), `replayable` the dead list then other finished runs (retry),
    `any` the latest runs (logs)."""
    try:
        import time

        from jobctl import render
        from jobctl.store import RunFilter

        s = _store(ctx)
        if which == "open":
            found = s.list_runs(RunFilter(statuses=["queued", "running"]))
            found.sort(key=lambda r: -(r.id or 0))
        elif which == "replayable":
            from jobctl.runs import dead_runs

            found = dead_runs(s)
            finished = ["succeeded", "failed", "timed_out", "cancelled", "abandoned"]
            found += s.list_runs(RunFilter(statuses=finished, limit=MAX_RUN_IDS))
        else:
            found = s.list_runs(RunFilter(limit=MAX_RUN_IDS))
    except Exception:
        return []
    now, out, seen = time.time(), [], set()
    for r in found:
        rid = str(r.id)
        if rid in seen or not rid.startswith(incomplete):
            continue
        seen.add(rid)
        when = render.relative(r.finished_at or r.started_at or r.created_at, now)
        out.append((rid, f"{r.job} {r.status}{' (dead)' if r.dead else ''} {when}"))
        if len(out) == MAX_RUN_IDS:
            break
    return out


def open_run_ids(ctx: typer.Context, incomplete: str) -> list[tuple[str, str]]:
    return _run_ids(ctx, incomplete, "open")


def replayable_run_ids(ctx: typer.Context, incomplete: str) -> list[tuple[str, str]]:
    return _run_ids(ctx, incomplete, "replayable")


def names_and_run_ids(ctx: typer.Context, incomplete: str) -> list[tuple[str, str]]:
    """`logs`: job names, then the latest run ids."""
    names = [(n, "job") for n in job_names(ctx, incomplete)]
    return names + _run_ids(ctx, incomplete, "any")
