"""Run verbs: run, retry, cancel, history, logs, dead, prune.

Parse, call jobctl.runs / the store, render. `run` and `retry` in the foreground exit with the
job's own code (SPEC 3).
"""

import sys
import time
from typing import TYPE_CHECKING, Annotated

import typer

from jobctl import render
from jobctl.cli import completers
from jobctl.cli.common import JsonOpt, complete_job_name, now, state, store
from jobctl.errors import JobctlError, UsageError
from jobctl.render import plural

if TYPE_CHECKING:
    from typing import BinaryIO

    from jobctl.models import Run
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
    again: bool = False,
) -> int:
    import signal

    from jobctl import owners, runs
    from jobctl.clock import SystemClock

    s = store()
    job, run = runs.trigger(s, job_name, now(), owners.me(), force, replay_of, chain, again)
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
            tee_err=sys.stderr.buffer,  # the job's stderr stays stderr
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
    again: bool = False,
) -> None:
    from jobctl.config import is_postgres

    settings = state().settings
    if is_postgres(settings.store_url):  # this machine's runner may record it for us
        # (before jobctl.runs and the store are imported: a relayed run needs neither)
        from jobctl import relay

        request = {"job": job_name, "now": now(), "force": force, "replay_of": replay_of,
                   "chain": chain, "again": again}  # fmt: skip
        found = relay.trigger(settings, request)
        if found is not None:
            if json:
                render.print_json(found)
            else:
                typer.echo(found["id"])
            return
    from jobctl import owners, runs

    s = store()
    _, run = runs.trigger(s, job_name, now(), None, force, replay_of, chain, again)
    owners.nudge_runner(s)
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
    run_id: Annotated[
        str,
        typer.Argument(
            help="Run id (see jobctl history / dead).",
            autocompletion=completers.replayable_run_ids,
        ),
    ],
    detach: Detach = False,
    chain: Annotated[
        bool,
        typer.Option("--chain", help="Its end triggers the jobs that run after it (--after)."),
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Replay it even while the job runs (its overlap policy) or that fire is being "
            "replayed.",
        ),
    ] = False,
    json: JsonOpt = False,
) -> None:
    """Run that fire again now (trigger replay); resolves it if it was dead. The job's overlap
    policy applies, as to `run`; --force overrides it."""
    from jobctl.models import parse_run_id

    rid = parse_run_id(run_id)
    original = store().get_run(rid)
    store().get_job(original.job)
    if detach:
        _detached(original.job, force, rid, json, chain, again=force)
        return
    raise typer.Exit(_foreground(original.job, force, rid, json, chain, again=force))


def cancel(
    run_id: Annotated[str, typer.Argument(help="Run id.", autocompletion=completers.open_run_ids)],
    json: JsonOpt = False,
) -> None:
    """Stop a queued or running run (its process group gets SIGTERM, then SIGKILL)."""
    from jobctl.models import parse_run_id
    from jobctl.runs import job_or_none, request_cancel

    s = store()
    run = s.get_run(parse_run_id(run_id))
    job = job_or_none(s, run.job)  # it may have been removed
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
            r.error or "",
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
        typer.Option(
            "--status",
            metavar="S",
            help="Only runs with this status (repeatable).",
            autocompletion=completers.statuses,
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", metavar="D", help="Only runs created in the last D (e.g. 2h)."),
    ] = None,
    limit: Annotated[
        str, typer.Option("--limit", "-n", metavar="N", help="At most N runs.")
    ] = "20",
    all_: Annotated[
        bool,
        typer.Option("--all", help="Also the runs of earlier jobs that had this name."),
    ] = False,
    json: JsonOpt = False,
) -> None:
    """Runs, newest first (of the job now under NAME; --all: of every job that had it)."""
    from jobctl.inputs import option_duration, parse_int
    from jobctl.models import RUN_STATUSES
    from jobctl.runs import history_filter
    from jobctl.store import RunFilter

    for st in status or []:
        if st not in RUN_STATUSES:
            raise UsageError(f"invalid --status {st!r}: choose one of {', '.join(RUN_STATUSES)}")
    t = now()
    cutoff = None if since is None else t - option_duration(since, "--since")
    n = parse_int(limit, "--limit", minimum=1)
    s = store()
    where = RunFilter(job=name, statuses=status or None, since=cutoff, limit=n)
    rows = s.list_runs(history_filter(s, name, all_, where))
    if json:
        notes = s.notifications([r.id for r in rows if r.id is not None])
        render.print_json([render.run_json(r, notes.get(r.id or -1, [])) for r in rows])
        return
    if not rows:
        filtered = name is not None or status or since is not None
        render.note("no runs match" if filtered else "no runs yet")
        return
    render.table(RUN_HEADERS, _run_rows(rows, t), styles={4: "status"}, drop=RUN_DROP,
                 cut_first=("ERROR",))  # fmt: skip


def logs(
    target: Annotated[
        str,
        typer.Argument(
            help="Job name (its latest run) or run id.",
            autocompletion=completers.names_and_run_ids,
        ),
    ],
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Stream until the run ends.")
    ] = False,
    tail: Annotated[
        str | None, typer.Option("--tail", metavar="N", help="Only the last N lines.")
    ] = None,
) -> None:
    """Output of the latest run of NAME (the running one, else the last that ran), or of RUN_ID.

    With --follow on a NAME, it streams that run and then each next run of the job, waiting
    for them (like journalctl -f) until Ctrl-C; on a RUN_ID, until that run ends."""
    from jobctl import runs
    from jobctl.inputs import parse_int

    n = None if tail is None else parse_int(tail, "--tail", minimum=0)
    s = store()
    run = runs.run_to_show(s, target, follow, now())
    by_name = run is None or (run.job == target and not _is_run_id(s, target, run))
    out = sys.stdout.buffer
    try:
        open_line = run is not None and _write_output(s, run, out, n, follow)
        if not (follow and by_name):
            return
        last_id = run.id or 0 if run is not None else 0
        # (the notes go to stderr; a run whose output ended mid-line gets its line ended
        # there first, so that on a terminal a note never starts on the job's last line)
        render.note(f"{chr(10) * open_line}waiting for the next run of {target!r} (Ctrl-C to stop)")
        while True:
            nxt = runs.next_run_started(s, target, last_id)
            if nxt is None:
                time.sleep(FOLLOW_POLL_S)
                continue
            render.note(f"--- run {nxt.id} (attempt {nxt.attempt}, {nxt.trigger})")
            open_line = _write_output(s, nxt, out, None, True)
            if open_line:
                render.note("")
            last_id = nxt.id or last_id
    except KeyboardInterrupt:  # the way to end a follow: not an error
        return


FOLLOW_POLL_S = 0.2


def _is_run_id(s: "Store", target: str, run: "Run") -> bool:
    return str(run.id) == target and run.job != target


def _write_output(s: "Store", run: "Run", out: "BinaryIO", tail: int | None, follow: bool) -> bool:
    """Write a run's output (its last `tail` lines); with `follow`, stream it until it ends.
    Returns whether it left a line unfinished (output not ending with a line break)."""
    from jobctl.models import FINAL_STATUSES

    assert run.id is not None
    chunks = s.read_output(run.id)
    data = b"".join(c for _, c in chunks)
    if tail is not None:
        data = b"".join(data.splitlines(keepends=True)[-tail:]) if tail else b""
    out.write(data)
    out.flush()
    last = data[-1:]
    seq = chunks[-1][0] if chunks else -1
    while follow:
        ended = run.status in FINAL_STATUSES
        for seq, chunk in s.read_output(run.id, seq):  # noqa: B007,B020 - seq is the cursor
            out.write(chunk)
            last = chunk[-1:] or last
        out.flush()
        if ended:
            break
        time.sleep(FOLLOW_POLL_S)
        run = s.get_run(run.id)
    return last not in (b"", b"\n")


def dead(
    name: Annotated[
        str | None, typer.Argument(help="Only this job.", autocompletion=complete_job_name)
    ] = None,
    dismiss: Annotated[
        str | None,
        typer.Option(
            "--dismiss", metavar="RUN_ID", help="Dismiss this dead run.", autocompletion=None
        ),
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Dismiss every dead run (of NAME).")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before --all.")] = False,
    json: JsonOpt = False,
) -> None:
    """The dead-letter list: runs that failed with no retries left, one per fire."""
    from jobctl import runs
    from jobctl.models import parse_run_id

    s = store()
    if dismiss == "--all":  # `dead --dismiss --all` reads naturally too
        dismiss, all_ = None, True
    if dismiss is not None and all_:
        raise UsageError("give --dismiss RUN_ID or --all, not both")
    if name is not None:
        from jobctl.store import RunFilter

        runs.history_filter(s, name, True, RunFilter())  # NotFoundError for an unknown name
    if dismiss is not None or all_:
        if all_ and not yes and sys.stdin.isatty():
            count = len(runs.dead_runs(s, name))
            if count and not typer.confirm(f"dismiss {plural(count, 'dead run')}?"):
                raise typer.Exit(1)
        ids = runs.dismiss_dead(s, None if all_ else parse_run_id(dismiss or ""), name)
        if json:
            render.print_json({"dismissed": ids})
        else:
            render.note(f"dismissed {plural(len(ids), 'dead run')}")
        return
    rows = runs.dead_runs(s, name)
    if json:
        render.print_json([render.run_json(r) for r in rows])
        return
    if not rows:
        render.note("no dead runs" + (f" of {name!r}" if name else ""))
        return
    render.table(RUN_HEADERS, _run_rows(rows, now()), styles={4: "status"}, drop=RUN_DROP,
                 cut_first=("ERROR",))  # fmt: skip


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
    from jobctl.inputs import option_duration

    cutoff = None if older_than is None else now() - option_duration(older_than, "--older-than")
    gone = store().prune(cutoff)
    if json:
        render.print_json({"deleted_runs": gone})
    else:
        render.note(f"deleted {plural(gone, 'run')}")


def register(app: typer.Typer) -> None:
    for fn in (run, retry, cancel, history, logs, dead, prune):
        app.command(fn.__name__)(fn)
