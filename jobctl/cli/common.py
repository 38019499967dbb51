"""What every CLI module shares: the --json option, the lazily opened store, the clock.

CLI modules parse, call and render; they never write SQL (they call the Store) and never hold
scheduling rules (they call planner/jobdef).
"""

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated

import typer

from jobctl.config import Settings

if TYPE_CHECKING:
    from jobctl.store import Store

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


@dataclass
class State:
    """Set by the root callback from the global flags; one per invocation."""

    settings: Settings
    debug: bool = False
    flags: dict[str, str | None] = field(default_factory=dict)  # global flags as given
    _store: "Store | None" = field(default=None, repr=False)

    @property
    def store(self) -> "Store":
        if self._store is None:
            from jobctl.store import open_store

            self._store = open_store(self.settings)
        return self._store


_state: State | None = None


def set_state(value: State) -> None:
    """Called by the root callback once the global flags are parsed."""
    global _state
    _state = value


def state() -> State:
    assert _state is not None, "the root callback sets the state before any command runs"
    return _state


def store() -> "Store":
    return state().store


def now() -> float:
    return time.time()


def complete_job_name(ctx: typer.Context, incomplete: str) -> list[str]:
    """Shell completion: job names from the store the command line names (--home, --store),
    silent when it cannot be opened."""
    try:
        from jobctl.config import resolve_settings
        from jobctl.store import open_store

        flags = ctx.find_root().params
        settings = resolve_settings(flags.get("home"), flags.get("store"))
        names = [j.name for j in open_store(settings).list_jobs()]
    except Exception:
        return []
    return [n for n in names if n.startswith(incomplete)]
