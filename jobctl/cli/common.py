"""What every CLI module shares: the --json option, the lazily opened store, the clock.

CLI modules parse, call and render; they never write SQL (they call the Store) and never hold
scheduling rules (they call planner/jobdef).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated

import typer

from jobctl.config import Settings
from jobctl.records import field, record

if TYPE_CHECKING:
    from collections.abc import Sequence

    from jobctl.models import Job
    from jobctl.store import Store
    from jobctl.store.base import RunnerInfo
    from jobctl.store.rows import JobLine

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


@record
class State:
    """Set by the root callback from the global flags; one per invocation."""

    settings: Settings
    debug: bool = False
    flags: dict[str, str | None] = field(default_factory=dict)  # global flags as given
    _store: Store | None = field(default=None, repr=False)

    @property
    def store(self) -> Store:
        if self._store is None:
            from jobctl.store import open_store

            self._store = open_store(self.settings)
        return self._store


_state: State | None = None
#: the command line as given (set by jobctl.cli.run): where `--` stands is lost in parsing
_argv: list[str] = []


def set_argv(args: list[str]) -> None:
    _argv[:] = args


def command_after_dashes(command: list[str] | None, verb: str) -> list[str] | None:
    """The job's COMMAND, which must be everything after the first `--` of the command line:
    a word before it (`add x --every 1h ls --json`) would be taken for the command while the
    options around it went to jobctl, so it is refused (exit 2) rather than guessed."""
    if not command:
        return command
    after = _argv[_argv.index("--") + 1 :] if "--" in _argv else []
    if after != command:
        from jobctl.errors import UsageError

        stray = command[: len(command) - len(after)] if after else command
        raise UsageError(f"unexpected argument {' '.join(stray)!r}: put the command after -- "
                         f"(jobctl {verb} NAME [options] -- COMMAND [ARG ...])")  # fmt: skip
    return command


def set_state(value: State) -> None:
    """Called by the root callback once the global flags are parsed."""
    global _state
    _state = value


def state() -> State:
    assert _state is not None, "the root callback sets the state before any command runs"
    return _state


def store() -> Store:
    return state().store


def now() -> float:
    return time.time()


def complete_job_name(ctx: typer.Context, incomplete: str) -> list[str]:
    """Shell completion of job names (jobctl/cli/completers.py)."""
    from jobctl.cli.completers import job_names

    return job_names(ctx, incomplete)


def warn_unmatched(
    jobs: Sequence[Job | JobLine],
    runners: list[RunnerInfo] | None = None,
    one_job: bool | None = None,
) -> None:
    """One warning line per set of --on labels that no registered runner has (add, edit,
    list, status); `runners` (read from the store if not given) only when a job is pinned.
    `one_job`: the jobs are the one job the command is about (default: when there is one)."""
    from jobctl.render import note

    pinned = [j for j in jobs if j.on_labels]
    if not pinned:
        return
    labels_of = [set(r.labels) for r in (store().runners() if runners is None else runners)]
    by_labels: dict[str, list[str]] = {}
    for j in pinned:
        if not any(set(j.on_labels) <= have for have in labels_of):
            by_labels.setdefault(", ".join(j.on_labels), []).append(j.name)
    for labels, names in by_labels.items():
        single = len(jobs) == 1 if one_job is None else one_job
        whose = "the job's runs" if single else f"the runs of {', '.join(names)}"
        note(f"warning: no registered runner has the labels {labels}; {whose} "
                    f"wait for one (start it with: jobctl runner --label ...)")  # fmt: skip
