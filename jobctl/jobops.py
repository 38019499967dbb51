"""Operations on jobs that commands ask for, beyond one store call: removing jobs (with their
running runs and the `--after` links to them) and the run `list` shows as a job's last.

Below the CLI: no printing, no flag parsing; answers are data, errors are JobctlErrors.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol, TypeVar

from jobctl.errors import ConflictError
from jobctl.models import Run
from jobctl.records import field, record
from jobctl.store.base import RunFilter, Store
from jobctl.store.rows import JobLine


@record
class Removal:
    """What `remove_jobs` did: the jobs removed, the runs it cancelled, the links it cut."""

    names: list[str]
    cancelled: list[Run] = field(default_factory=list)
    unlinked: list[str] = field(default_factory=list)  # jobs that ran after a removed one


def remove_jobs(store: Store, names: list[str], purge: bool, force: bool, now: float) -> Removal:
    """Remove jobs (all or none: every name must exist and, unless `force`, none may be
    running; ConflictError/NotFoundError before anything is written). `force` cancels their
    running runs; `purge` deletes their history. Jobs that ran after a removed job lose that
    link, so that a later job of that name does not trigger them unasked."""
    from jobctl.runs import request_cancel

    names = list(dict.fromkeys(names))
    created = {name: store.get_job(name).created_at for name in names}  # NotFoundError: the first
    running = store.list_runs(RunFilter(jobs=names, statuses=["running"]))
    if running and not force:
        r = running[-1]
        raise ConflictError(f"job {r.job!r} is running (run {r.id}); use --force to cancel it")
    for name in names:
        store.remove_job(name, purge=purge)  # first: its queued runs are cancelled with it
    gone = set(names)
    linked = [j.name for j in store.list_jobs(last_runs=False)
              if any(up in gone for up, _ in j.after)]  # fmt: skip
    if linked:
        store.update_jobs(linked, lambda j: j.copy_with(after=[a for a in j.after
                                                               if a[0] not in gone]))  # fmt: skip
    cancelled = [request_cancel(store, run, now) for run in running]
    if purge and running:
        for name in {r.job for r in running}:
            store.purge_runs(name, since=created[name])
    return Removal(names, cancelled, linked)


def running_shown(store: Store, jobs: Sequence[JobLine]) -> dict[str, Run]:
    """The running run `list` shows as a job's last, by job, where one runs: a later
    skipped fire is not news (the newest running run of the job, not one of an earlier job
    of that name)."""
    created = {j.name: j.created_at for j in jobs}
    shown: dict[str, Run] = {}
    running = store.list_runs(RunFilter(statuses=["running"])) if jobs else []
    for run in sorted(running, key=lambda r: r.id or 0):  # the newest running run wins
        if run.job in created and run.created_at >= created[run.job]:
            shown[run.job] = run
    return shown


SORT_KEYS = ("name", "next")
_DIGIT_RUNS = re.compile(r"(\d+)")


class _Listed(Protocol):
    name: str
    next_run_at: float | None


J = TypeVar("J", bound=_Listed)  # a Job or a JobLine


def natural_key(name: str) -> list[str | int]:
    """`job2` before `job10`: digit runs compare as numbers. The key alternates text and
    number (text first, '' where the name starts or ends with digits), so that each place
    compares like with like."""
    parts: list[str | int] = _DIGIT_RUNS.split(name)
    parts[1::2] = map(int, parts[1::2])  # type: ignore[arg-type]
    return parts


def sort_jobs(jobs: list[J], by: str) -> list[J]:
    """Jobs by name (natural order) or by next fire (jobs with none last, then by name)."""
    from jobctl.errors import UsageError

    if by not in SORT_KEYS:
        raise UsageError(f"invalid --sort {by!r}: choose one of {', '.join(SORT_KEYS)}")
    if by == "next":
        return sorted(jobs, key=lambda j: (j.next_run_at is None, j.next_run_at or 0.0,
                                           natural_key(j.name)))  # fmt: skip
    return sorted(jobs, key=lambda j: natural_key(j.name))
