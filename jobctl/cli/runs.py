"""Run verbs: run, retry, cancel, history, logs, dead, prune.

Parse, call jobctl.runs / the store, render. `run` and `retry` in the foreground exit with the
job's own code (SPEC 3).
"""

import sys
import time
from typing import TYPE_CHECKING, Annotated

import typer

from jobctl import render
from jobctl.cli.common import JsonOpt, complete_job_name, now, store
from jobctl.errors import JobctlError, NotFoundError, UsageError

if TYPE_CHECKING:
    from jobctl.models import Job, Run
    from jobctl.store import Store

Force = Annotated[
    bool, typer.Option("--force", help="Run even if the overlap policy would refuse.")
]
Detach = Annotated[
    bool, typer.Option("--detach", help="Hand it to the runner and print the run id.")
]


def _foreground(
    job_name: str,
    force: bool,
    replay_of: int | None = None,
    json: bool = False,
    chain: bool = True,
) -> int:
    import signal

    from jobctl import owners, runs
    from jobctl.clock import SystemClock

    s = store()
    job, run = runs.trigger(s, job_name, now(), owners.me(), force, replay_of, chain)
    stop = {"asked": 0}

    def interrupt(signum: int, _frame: object) -> None:
        stop["asked"] = signum

    # Ctrl-C and SIGTERM cancel the job (it is in its own process group and would not see
    # them); `jobctl cancel` nudges us with SIGUSR1 and we poll the store.
    handlers = {sig: interrupt for sig in (signal.SIGINT, signal.SIGTERM)}
    handlers[owners.NUDGE] = lambda *_: None
    previous = {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}
    try:
        sys.stdout.flush()
        final = runs.run_foreground(
            s, job, run, SystemClock(), force,
            tee=sys.stderr.buffer if json else sys.stdout.buffer,  # --json: stdout is the JSON
            waiting=render.note, interrupted=lambda: bool(stop["asked"]),
            started=lambda: render.note(f"job {job.name!r}: run {run.id} started"),
        )  # fmt: skip
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    code = 128 + stop["asked"] if stop["asked"] else runs.exit_code_of(final)  # Ctrl-C: 130
    tail = f" ({final.error})" if final.error and final.status != "succeeded" else ""
    render.note(f"run {final.id} {final.status} in {render.duration(final.duration_s)}{tail}")
    if json:
        render.print_json(render.run_json(final))
    return code


def _detached(
    job_name: str,
    force: bool,
    replay_of: int | None = None,
    json: bool = False,
    chain: bool = True,
) -> None:
    from jobctl import runs

    s = store()
    _, run = runs.trigger(s, job_name, now(), None, force, replay_of, chain)
    runs.nudge_runner(s)
    if json:
        render.print_json(render.run_json(run))
    else:
        typer.echo(run.id)
        if s.runner_info() is None:
            render.note("note: no runner is active; start one with: jobctl runner")


def run(
    name: Annotated[str, typer.Argument(help="Job name.", autocompletion=complete_job_name)],
    detach: Detach = False,
    force: Force = False,
    json: JsonOpt = False,
) -> None:
    """Run a job now. In the foreground it streams output and exits with the job's exit code."""
    if detach:
        _detached(name, force, json=json)
        return
    raise typer.Exit(_foreground(name, force, json=json))


def retry(
    run_id: Annotated[str, typer.Argument(help="Run id (see jobctl history / dead).")],
    detach: Detach = False,
    chain: Annotated[
        bool,
        typer.Option("--chain", help="Its end triggers the jobs that run after it (--after)."),
    ] = False,
    json: JsonOpt = False,
) -> None:
    """Run that fire again now (trigger replay); resolves it if it was dead."""
    from jobctl.models import parse_run_id

    rid = parse_run_id(run_id)
    original = store().get_run(rid)
    store().get_job(original.job)
    if detach:
        _detached(original.job, True, rid, json, chain)
        return
    raise typer.Exit(_foreground(original.job, True, rid, json, chain))


def cancel(
    run_id: Annotated[str, typer.Argument(help="Run id.")],
    json: JsonOpt = False,
) -> None:
    """Stop a queued or running run (its process group gets SIGTERM, then SIGKILL)."""
    from jobctl.models import parse_run_id
    from jobctl.runs import request_cancel

    s = store()
    run = s.get_run(parse_run_id(run_id))
    job = _job_or_none(s, run.job)  # it may have been removed
    job_grace = job.kill_grace_s if job else 10.0
    done = request_cancel(s, run, now(), wait_s=job_grace + 5)
    if json:
        render.print_json(render.run_json(done))
    else:
        render.note(f"run {done.id} {done.status}")
    if done.status not in ("cancelled", "succeeded", "failed", "timed_out", "abandoned"):
        raise JobctlError(
            f"run {done.id} is still {done.status}: its owner did not stop it in time"
        )


def _run_rows(rows: list, t: float) -> list[list[str]]:
    return [
        [
            str(r.id),
            r.job,
            str(r.attempt),
            r.trigger,
            r.status + (" (dead)" if r.dead else ""),
            render.when(r.scheduled_for, t),
            render.relative(r.started_at, t),
            render.duration(r.duration_s),
            "-"
            if r.exit_code is None and not r.signal
            else (f"sig {r.signal}" if r.signal else str(r.exit_code)),
            (r.error or "")[:60],
        ]
        for r in rows
    ]


RUN_HEADERS = [
    "ID",
    "JOB",
    "TRY",
    "TRIGGER",
    "STATUS",
    "SCHEDULED",
    "STARTED",
    "TOOK",
    "EXIT",
    "ERROR",
]
RUN_DROP = ("SCHEDULED", "TRIGGER", "TRY")  # on a narrow terminal these go first


def history(
    name: Annotated[
        str | None, typer.Argument(help="Only this job.", autocompletion=complete_job_name)
    ] = None,
    status: Annotated[
        list[str] | None,
        typer.Option("--status", metavar="S", help="Only runs with this status (repeatable)."),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", metavar="D", help="Only runs created in the last D (e.g. 2h)."),
    ] = None,
    limit: Annotated[str, typer.Option("--limit", metavar="N", help="At most N runs.")] = "20",
    json: JsonOpt = False,
) -> None:
    """Runs, newest first."""
    from jobctl.jobdef import option_duration, parse_int
    from jobctl.models import RUN_STATUSES
    from jobctl.store import RunFilter

    for st in status or []:
        if st not in RUN_STATUSES:
            raise UsageError(f"invalid --status {st!r}: choose one of {', '.join(RUN_STATUSES)}")
    t = now()
    cutoff = None if since is None else t - option_duration(since, "--since")
    n = parse_int(limit, "--limit", minimum=1)
    rows = store().list_runs(RunFilter(job=name, statuses=status or None, since=cutoff, limit=n))
    if name is not None and not rows and not store().list_runs(RunFilter(job=name, limit=1)):
        store().get_job(name)  # no runs at all: NotFoundError unless the job exists
    if json:
        notes = store().notifications([r.id for r in rows if r.id is not None])
        render.print_json([render.run_json(r, notes.get(r.id or -1, [])) for r in rows])
        return
    if not rows:
        filtered = name is not None or status or since is not None
        render.note("no runs match" if filtered else "no runs yet")
        return
    render.table(
        RUN_HEADERS, _run_rows(rows, t), styles={4: "status"}, drop=RUN_DROP, cut_first=("ERROR",)
    )


def logs(
    target: Annotated[
        str,
        typer.Argument(
            help="Job name (its latest run) or run id.", autocompletion=complete_job_name
        ),
    ],
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Stream until the run ends.")
    ] = False,
    tail: Annotated[
        str | None, typer.Option("--tail", metavar="N", help="Only the last N lines.")
    ] = None,
) -> None:
    """Output of the latest run of NAME (the running one, else the last that ran), or of RUN_ID."""
    from jobctl.jobdef import parse_int
    from jobctl.models import FINAL_STATUSES, parse_run_id
    from jobctl.store import RunFilter

    s = store()
    named = s.list_runs(RunFilter(job=target, limit=1))  # a removed job's runs still count
    if named or _job_or_none(s, target):
        run = _run_to_show(s, target, follow, now())
    elif target.isascii() and target.isdigit():  # a run id (unless a job has that name)
        run = s.get_run(parse_run_id(target))
    else:
        raise NotFoundError(f"no job named {target!r}")
    assert run.id is not None
    out = sys.stdout.buffer
    chunks = s.read_output(run.id)
    data = b"".join(c for _, c in chunks)
    if tail is not None:
        n = parse_int(tail, "--tail", minimum=0)
        data = b"".join(data.splitlines(keepends=True)[-n:]) if n else b""
    out.write(data)
    out.flush()
    seq = chunks[-1][0] if chunks else -1
    while follow:
        ended = run.status in FINAL_STATUSES
        for seq, chunk in s.read_output(run.id, seq):  # noqa: B007,B020 - seq is the cursor
            out.write(chunk)
        out.flush()
        if ended:
            return
        time.sleep(0.2)
        run = s.get_run(run.id)


def _job_or_none(s: "Store", name: str) -> "Job | None":
    try:
        return s.get_job(name)
    except NotFoundError:
        return None


def _run_to_show(s: "Store", job: str, follow: bool, t: float) -> "Run":
    """The job's running run; with --follow, else a run due to start now that is newer than
    the last one that ran (just triggered); else the last run that ran."""
    from jobctl.store import RunFilter

    ran = ["succeeded", "failed", "timed_out", "cancelled", "abandoned"]
    running = s.list_runs(RunFilter(job=job, statuses=["running"], limit=1))
    if running:
        return running[0]
    last = s.list_runs(RunFilter(job=job, statuses=ran, limit=1))
    if follow:
        waiting = s.list_runs(RunFilter(job=job, statuses=["queued"]))
        due = [r for r in waiting if r.not_before <= t and (not last or r.id > (last[0].id or 0))]
        if due:
            return min(due, key=lambda r: r.id or 0)
    if not last:
        raise NotFoundError(f"job {job!r} has not run yet")
    return last[0]


def dead(
    dismiss: Annotated[
        str | None, typer.Option("--dismiss", metavar="RUN_ID", help="Dismiss this dead run.")
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Dismiss every dead run.")] = False,
    json: JsonOpt = False,
) -> None:
    """The dead-letter list: runs that failed with no retries left."""
    from jobctl.models import parse_run_id
    from jobctl.store import RunFilter

    s = store()
    if dismiss == "--all":  # `dead --dismiss --all` reads naturally too
        dismiss, all_ = None, True
    if dismiss is not None and all_:
        raise UsageError("give --dismiss RUN_ID or --all, not both")
    if dismiss is not None or all_:
        if all_:
            ids = [r.id for r in s.list_runs(RunFilter(dead=True)) if r.id is not None]
        else:
            run = s.get_run(parse_run_id(dismiss or ""))
            if not run.dead:
                raise NotFoundError(f"run {run.id} is not in the dead list")
            ids = [run.id or 0]
        s.update_runs(ids, dead=False)
        if json:
            render.print_json({"dismissed": ids})
        else:
            render.note(f"dismissed {len(ids)} dead run{'s' if len(ids) != 1 else ''}")
        return
    rows = s.list_runs(RunFilter(dead=True))
    if json:
        render.print_json([render.run_json(r) for r in rows])
        return
    if not rows:
        render.note("no dead runs")
        return
    render.table(
        RUN_HEADERS,
        _run_rows(rows, now()),
        styles={4: "status"},
        drop=RUN_DROP,
        cut_first=("ERROR",),
    )


def prune(
    older_than: Annotated[
        str | None,
        typer.Option(
            "--older-than", metavar="D", help="Delete finished runs older than D (e.g. 30d)."
        ),
    ] = None,
    json: JsonOpt = False,
) -> None:
    """Delete old runs and their output now (also applies each job's --keep-runs)."""
    from jobctl.jobdef import option_duration

    cutoff = None if older_than is None else now() - option_duration(older_than, "--older-than")
    gone = store().prune(cutoff)
    if json:
        render.print_json({"deleted_runs": gone})
    else:
        render.note(f"deleted {gone} run{'s' if gone != 1 else ''}")


def register(app: typer.Typer) -> None:
    for fn in (run, retry, cancel, history, logs, dead, prune):
        app.command(fn.__name__)(fn)
