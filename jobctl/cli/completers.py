"""typer's completion callbacks: each takes what typer gives (the context, whose root holds
--home and --store, and the word being completed) and asks jobctl/completing.py, where the
candidates are computed (and where the common Tabs are answered before typer is imported).
The values of options (policies, statuses, zones, shells) are completing's own functions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from jobctl import completing
from jobctl.completing import (  # noqa: F401 (the options' autocompletion= name them here)
    backoffs,
    misfires,
    overlaps,
    shells,
    statuses,
    zones,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from jobctl.config import Settings


def _settings(ctx: typer.Context) -> Callable[[], Settings]:
    """The settings the command line names (--home, --store), resolved when the store is
    opened (a bad --home then completes nothing, as an unreadable store does)."""
    from jobctl.config import resolve_settings

    flags = ctx.find_root().params
    return lambda: resolve_settings(flags.get("home"), flags.get("store"))


def job_names(ctx: typer.Context, incomplete: str) -> list[str]:
    """Job names from the store the command line names (--home, --store)."""
    return completing.job_names(completing.glance(_settings(ctx)), incomplete)


def _run_ids(ctx: typer.Context, incomplete: str, which: str) -> list[tuple[str, str]]:
    return completing.run_ids(completing.glance(_settings(ctx)), incomplete, which)


def open_run_ids(ctx: typer.Context, incomplete: str) -> list[tuple[str, str]]:
    return _run_ids(ctx, incomplete, "open")


def replayable_run_ids(ctx: typer.Context, incomplete: str) -> list[tuple[str, str]]:
    return _run_ids(ctx, incomplete, "replayable")


def names_and_run_ids(ctx: typer.Context, incomplete: str) -> list[tuple[str, str]]:
    """`logs`: job names, then the latest run ids."""
    return completing.first_argument(_settings(ctx), "logs", incomplete)
