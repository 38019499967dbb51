"""Job management verbs: add, edit, list, show, rm, pause, resume.

Parse the options into JobOptions, let jobdef validate and compute, call the store, render.
"""

import os
from functools import cache
from typing import TYPE_CHECKING, Annotated

import typer

from jobctl import render
from jobctl.cli import completers
from jobctl.cli.common import (
    JsonOpt,
    command_after_dashes,
    complete_job_name,
    now,
    store,
    warn_unmatched,
)

if TYPE_CHECKING:
    from jobctl.models import Job, Run
    from jobctl.store.rows import JobLine

Name = Annotated[str, typer.Argument(help="Job name.", autocompletion=complete_job_name)]
Names = Annotated[list[str], typer.Argument(help="Job names.", autocompletion=complete_job_name)]
Command = Annotated[
    list[str] | None, typer.Argument(help="The command, after '--'.", show_default=False)
]
Cron = Annotated[
    str | None,
    typer.Option(
        metavar="EXPR", help="Cron expression (5 fields, or 6 with seconds first; @daily...)."
    ),
]
Every = Annotated[
    str | None, typer.Option(metavar="D", help="Fixed interval of elapsed time, e.g. 5m, 1h30m.")
]
At = Annotated[
    str | None, typer.Option(metavar="TIME", help="One shot: ISO 8601 time or +DURATION.")
]
StartAt = Annotated[
    str | None, typer.Option(metavar="TIME", help="Anchor of --every (default: now).")
]
Tz = Annotated[
    str | None,
    typer.Option(
        metavar="ZONE",
        help="IANA time zone of the schedule (default: the system's).",
        autocompletion=completers.zones,
    ),
]
Shell = Annotated[
    bool | None,
    typer.Option("--shell/--no-shell", help="Run COMMAND with /bin/sh -c.", show_default=False),
]
Cwd = Annotated[
    str | None, typer.Option(metavar="DIR", help="Working directory (default: the current one).")
]
Env = Annotated[
    list[str] | None, typer.Option(metavar="K=V", help="Extra environment KEY=VALUE (repeatable).")
]
Timeout = Annotated[
    str | None,
    typer.Option(metavar="D", help="Kill the job after this long (0 or 'none': no timeout)."),
]
KillGrace = Annotated[
    str | None, typer.Option(metavar="D", help="Time between SIGTERM and SIGKILL (default 10s).")
]
Retries = Annotated[
    str | None, typer.Option(metavar="N", help="Extra attempts after a failure (default 0).")
]
RetryDelay = Annotated[
    str | None, typer.Option(metavar="D", help="Base delay before a retry (default 10s).")
]
Backoff = Annotated[
    str | None,
    typer.Option(
        metavar="KIND",
        help="exponential, linear or fixed (default exponential).",
        autocompletion=completers.backoffs,
    ),
]
MaxRetryDelay = Annotated[
    str | None, typer.Option(metavar="D", help="Cap of the retry delay (default 1h).")
]
Overlap = Annotated[
    str | None,
    typer.Option(
        metavar="POLICY",
        help="skip, queue, allow or replace (default skip).",
        autocompletion=completers.overlaps,
    ),
]
Misfire = Annotated[
    str | None,
    typer.Option(
        metavar="POLICY",
        help="once, skip or all (default once).",
        autocompletion=completers.misfires,
    ),
]
CatchupWindow = Annotated[
    str | None,
    typer.Option(metavar="D", help="Skip missed fires older than this ('none': no limit)."),
]
Jitter = Annotated[
    str | None, typer.Option(metavar="D", help="Random delay in [0, D] added to each fire.")
]
Mutex = Annotated[
    list[str] | None,
    typer.Option(metavar="NAME", help="Never run beside jobs sharing this name (repeatable)."),
]
KeepRuns = Annotated[
    str | None, typer.Option(metavar="N", help="Runs kept in history (default 200).")
]
MaxOutput = Annotated[
    str | None,
    typer.Option(metavar="SIZE", help="Output kept per run, head and tail (default 1MiB)."),
]
Description = Annotated[str | None, typer.Option(metavar="TEXT", help="Free text.")]
Tag = Annotated[list[str] | None, typer.Option("--tag", metavar="T", help="Tag (repeatable).")]
On = Annotated[
    list[str] | None,
    typer.Option("--on", metavar="L", help="Run only on runners with this label (repeatable)."),
]
Notify = Annotated[
    list[str] | None,
    typer.Option(
        "--notify",
        metavar="EVENT=TARGET",
        help="Tell TARGET (a command, an http(s) URL, mailto:ADDR) of EVENT: failure, dead, "
        "success, recovered, missed, start (repeatable; '' clears).",
    ),
]
After = Annotated[
    list[str] | None,
    typer.Option(
        "--after",
        metavar="JOB[:COND]",
        help="Run when JOB's run ends: COND success (default), failure or always "
        "(repeatable; '' clears).",
    ),
]
Ping = Annotated[
    str | None,
    typer.Option(
        "--ping", metavar="URL", help="healthchecks.io-style pings: URL/start, URL, URL/fail."
    ),
]


def add(
    name: Name,
    command: Command = None,
    cron: Cron = None,
    every: Every = None,
    at: At = None,
    start_at: StartAt = None,
    tz: Tz = None,
    shell: Shell = None,
    cwd: Cwd = None,
    env: Env = None,
    timeout: Timeout = None,
    kill_grace: KillGrace = None,
    retries: Retries = None,
    retry_delay: RetryDelay = None,
    backoff: Backoff = None,
    max_retry_delay: MaxRetryDelay = None,
    overlap: Overlap = None,
    misfire: Misfire = None,
    catchup_window: CatchupWindow = None,
    jitter: Jitter = None,
    mutex: Mutex = None,
    keep_runs: KeepRuns = None,
    max_output: MaxOutput = None,
    description: Description = None,
    tag: Tag = None,
    on: On = None,
    notify: Notify = None,
    ping: Ping = None,
    after: After = None,
    paused: Annotated[bool, typer.Option("--paused", help="Add it paused.")] = False,
    json: JsonOpt = False,
) -> None:
    """Add a job: jobctl add NAME [--cron EXPR | --every D | --at T] [options] -- COMMAND..."""
    from jobctl import jobdef
    from jobctl.clock import local_zone_name
    from jobctl.jobdef import JobOptions

    command = command_after_dashes(command, "add")
    opts = JobOptions(**{k: v for k, v in locals().items() if k in jobdef.OPTION_NAMES})
    opts.paused = paused or None
    t = now()
    job = jobdef.new_job(name, opts, t, default_tz=local_zone_name(), default_cwd=os.getcwd())
    if job.after:  # the upstream jobs exist and no cycle forms (exit 2, nothing written)
        jobdef.check_chain(job, store().list_jobs(last_runs=False))
    warning = jobdef.dst_warning(job, t, at=opts.at)
    job = store().add_job(job)
    _nudge()
    if warning:
        render.note(warning)
    if tz is None:
        _warn_posix_tz(job)
    warn_unmatched([job])  # a job pinned (--on) where no runner fits: not an error
    _warn_unrunnable(job)
    _done(job, "added", json, t)


def _warn_posix_tz(job: "Job") -> None:
    """A job's zone defaults to the local one; a $TZ that is a POSIX rule, not an IANA name,
    cannot be a job's: say which zone the job got instead."""
    from jobctl.clock import local_iana_zone

    tz = os.environ.get("TZ")
    if tz and local_iana_zone() is None:
        render.note(f"warning: $TZ {tz!r} is not a zone a job can have (an IANA name): the "
                    f"job's zone is {job.tz} (the system's); give --tz to choose")  # fmt: skip


def _warn_missing_program(job: "Job") -> None:
    from jobctl import jobdef

    program = jobdef.missing_program(job)
    if program is not None:
        where = "not an executable file" if "/" in program else "not on PATH"
        render.note(f"warning: program {program!r} is {where}: runs will fail (exit 127) "
                    "unless it is there when they run")  # fmt: skip


def _warn_unrunnable(job: "Job") -> None:
    """Warnings (stderr; the job is added, exit 0): a program not found on PATH, and no
    runner active to fire a scheduled job."""
    from jobctl.status import runners_alive

    _warn_missing_program(job)
    if job.state == "active" and job.schedule_kind != "manual":
        _, alive, _ = runners_alive(store())
        if not any(alive.values()):
            render.note("warning: no runner is active: the job fires once one runs "
                        "(start one with: jobctl runner)")  # fmt: skip


def edit(
    name: Name,
    command: Command = None,
    cron: Cron = None,
    every: Every = None,
    at: At = None,
    start_at: StartAt = None,
    manual: Annotated[
        bool, typer.Option("--manual", help="Drop the schedule: run only when triggered.")
    ] = False,
    tz: Tz = None,
    shell: Shell = None,
    cwd: Cwd = None,
    env: Env = None,
    timeout: Timeout = None,
    kill_grace: KillGrace = None,
    retries: Retries = None,
    retry_delay: RetryDelay = None,
    backoff: Backoff = None,
    max_retry_delay: MaxRetryDelay = None,
    overlap: Overlap = None,
    misfire: Misfire = None,
    catchup_window: CatchupWindow = None,
    jitter: Jitter = None,
    mutex: Mutex = None,
    keep_runs: KeepRuns = None,
    max_output: MaxOutput = None,
    description: Description = None,
    tag: Tag = None,
    on: On = None,
    notify: Notify = None,
    ping: Ping = None,
    after: After = None,
    paused: Annotated[
        bool | None,
        typer.Option(
            "--paused/--active", help="Pause it, or make it active again.", show_default=False
        ),
    ] = None,
    json: JsonOpt = False,
) -> None:
    """Change a job; given options replace the old values and the next fire is recomputed."""
    from jobctl import jobdef
    from jobctl.jobdef import JobOptions

    command = command_after_dashes(command, "edit")
    opts = JobOptions(**{k: v for k, v in locals().items() if k in jobdef.OPTION_NAMES})
    t = now()
    if opts.after:  # checked on the job as it would become (exit 2, nothing written)
        preview = jobdef.apply_options(store().get_job(name), opts, t)
        jobdef.check_chain(preview, store().list_jobs(last_runs=False))
    # the clock is read again inside the write transaction: a runner may fire while we wait
    # for the lock, and the next fire must be computed from after that
    (job,) = store().update_jobs([name], lambda old: jobdef.apply_options(old, opts, now()))
    warning = jobdef.dst_warning(job, t, at=opts.at)
    _nudge()
    if warning:
        render.note(warning)
    warn_unmatched([job])  # a job pinned (--on) where no runner fits: not an error
    if any(v is not None for v in (opts.command, opts.shell, opts.cwd, opts.env)):
        _warn_missing_program(job)  # as `add` does
    _done(job, "updated", json, t)


def _nudge() -> None:
    """Wake the runner so that it sees the change now rather than at its next poll."""
    from jobctl.owners import nudge_runner

    nudge_runner(store())


def _done(job: "Job", verb: str, json: bool, t: float) -> None:
    if json:
        render.print_json(render.job_json(job))
        return
    nxt = render.when(job.next_run_at, t) if job.next_run_at else "no scheduled fire"
    render.note(f"{verb} job {job.name!r}; next fire: {nxt}")


def list_(
    tag: Annotated[
        str | None, typer.Option("--tag", metavar="T", help="Only jobs with this tag.")
    ] = None,
    sort: Annotated[
        str, typer.Option("--sort", metavar="KEY", help="name (natural order) or next.")
    ] = "name",
    json: JsonOpt = False,
) -> None:
    """List jobs: schedule, next fire, last run and state."""
    from jobctl.jobops import running_shown, sort_jobs

    if json:
        jobs = sort_jobs(store().list_jobs(tag), sort)
        warn_unmatched(jobs)  # on stderr: the JSON on stdout stays as it is
        render.print_json([render.job_json(j) for j in jobs])
        return
    lines = sort_jobs(store().job_lines(tag), sort)  # what the table shows, not whole jobs
    warn_unmatched(lines)
    if not lines:
        if tag is not None:
            render.note(f"no jobs tagged {tag!r}")
        else:
            render.note("No jobs yet. Add one with:\n  jobctl add hello --every 1m -- echo hello")
        return
    t = now()
    running = running_shown(store(), lines)
    rows = [
        [
            j.name,
            _schedule_text(j),
            render.when(j.next_run_at, t),
            _last_run_text(running.get(j.name), j, t),
            j.state,
        ]
        for j in lines
    ]
    render.table(
        ["NAME", "SCHEDULE", "NEXT", "LAST RUN", "STATE"],
        rows,
        styles={3: "status", 4: "status"},
        cut_first=("SCHEDULE",),  # its plain-English reading is the least needed
    )


def _last_run_text(running: "Run | None", job: "JobLine", t: float) -> str:
    """The run `list` shows as a job's last: its running run while one runs (a later
    skipped fire is not news), else its newest run."""
    if running is not None:
        return f"running for {render.relative(running.started_at, t).removesuffix(' ago')}"
    if job.last_status is None:
        return "-"
    if job.last_status == "running":
        return f"running for {render.relative(job.last_started_at, t).removesuffix(' ago')}"
    started, finished = job.last_started_at, job.last_finished_at
    when = render.relative(finished or started or job.last_created_at, t)
    took = ""
    if started is not None and finished is not None:  # as Run.duration_s
        took = f" {render.duration(round(finished - started, 3))}"
    return f"{job.last_status} {when}{took}"


def _schedule_text(job: "Job | JobLine") -> str:
    """The schedule in words, and the jobs it runs after (`--after`)."""
    text = _timing_text(job)
    if job.after:
        links = ", ".join(up if cond == "success" else f"{up}:{cond}" for up, cond in job.after)
        text = f"after {links}" if text == "manual" else f"{text} + after {links}"
    return text


def _timing_text(job: "Job | JobLine") -> str:
    if job.schedule_kind == "cron" and job.schedule:
        return f"{job.schedule} ({_describe(job.schedule)})"
    if job.schedule_kind == "every":
        return f"every {job.schedule}"
    if job.schedule_kind == "at":
        return f"once at {render.iso(job.anchor_at, render.zone(job.tz), ms=False)}"
    return "manual"


@cache
def _describe(expr: str) -> str:
    """A cron expression in words (cached: `list` shows many alike); schedule's own, without
    the planner's imports."""
    from jobctl import schedule

    return schedule.describe_cron(schedule.parse_cron(expr))


def show(name: Name, json: JsonOpt = False) -> None:
    """Show a job: its definition, next 5 fires, recent runs and statistics."""
    from jobctl import planner
    from jobctl.store import RunFilter

    job = store().get_job(name)
    t = now()
    upcoming = planner.fire_times(job, t, 5) if job.state == "active" else []
    recent = store().list_runs(RunFilter(job=name, since=job.created_at, limit=20))  # its own
    if json:
        data = render.job_json(job)
        data["upcoming"] = [render.iso_time(d) for d in upcoming]
        notes = store().notifications([r.id for r in recent if r.id is not None])
        data["recent_runs"] = [render.run_json(r, notes.get(r.id or -1, [])) for r in recent]
        data["stats"] = _stats(recent)
        render.print_json(data)
        return
    import shlex

    command = job.command[0] if job.shell else shlex.join(job.command)
    items = [
        ("name", job.name),
        ("state", job.state),
        ("schedule", _schedule_text(job)),
        ("tz", job.tz),
        ("command", command + ("  (shell)" if job.shell else "")),
        ("cwd", job.cwd),
        ("next", render.when(job.next_run_at, t)),
    ]
    if job.env:
        items.append(("env", " ".join(f"{k}={v}" for k, v in job.env.items())))
    items += _policy_lines(job)
    for label, value in (("mutexes", job.mutexes), ("on", job.on_labels), ("tags", job.tags)):
        if value:
            items.append((label, ", ".join(value)))
    if job.after:
        items.append(("after", ", ".join(f"{up} ({cond})" for up, cond in job.after)))
    for event, target in job.notify:
        items.append(("notify", f"{event} -> {target}"))
    if job.ping:
        items.append(("ping", job.ping))
    if job.description:
        items.append(("description", job.description))
    stats = _stats(recent)
    if stats["runs"]:
        runs = render.plural(int(stats["runs"] or 0), "finished run")
        items.append(("success", f"{stats['success_rate']:.0%} of {runs}"))
        items.append(
            (
                "duration",
                f"p50 {render.duration(stats['p50_s'])}, p95 {render.duration(stats['p95_s'])}",
            )
        )
    trend = render.sparkline([r.duration_s for r in reversed(recent) if r.duration_s is not None])
    if trend:
        items.append(("trend", f"{trend}  (durations, oldest to newest)"))
    render.pairs(items)
    if upcoming:
        render.table(
            ["UPCOMING"],
            [[render.when(d.timestamp(), t, full=True)] for d in upcoming],
        )
    if recent:
        render.table(
            ["ID", "ATTEMPT", "TRIGGER", "STATUS", "STARTED", "DURATION", "EXIT"],
            [
                [
                    str(r.id),
                    str(r.attempt),
                    r.trigger,
                    r.status,
                    render.relative(r.started_at, t),
                    render.duration(r.duration_s),
                    "-" if r.exit_code is None else str(r.exit_code),
                ]
                for r in recent[:10]
            ],
            styles={3: "status"},
            title="recent runs",
            drop=("TRIGGER", "ATTEMPT"),
        )


def _policy_lines(job: "Job") -> list[tuple[str, str]]:
    """Every policy of the definition, durations written as they are typed (1h30m)."""
    from jobctl.schedule import format_duration as d

    size = next((f"{job.max_output // u}{n}" for u, n in ((1 << 20, "MiB"), (1 << 10, "KiB"))
                 if job.max_output % u == 0), f"{job.max_output}B")  # fmt: skip
    window = d(job.catchup_window_s) if job.catchup_window_s is not None else "none"
    return [
        ("timeout", f"{d(job.timeout_s)}, then SIGKILL after {d(job.kill_grace_s)}"
                    if job.timeout_s else "none"),
        ("retries", f"{job.retries}, {job.backoff} from {d(job.retry_delay_s)} "
                    f"(at most {d(job.max_retry_delay_s)})"),
        ("overlap", job.overlap),
        ("misfire", f"{job.misfire}, catch-up window {window}"),
        ("jitter", d(job.jitter_s)),
        ("keep", f"{job.keep_runs} runs, {size} of output each"),
    ]  # fmt: skip


def _stats(runs: "list[Run]") -> dict[str, float | int | None]:
    from jobctl.models import FINAL_STATUSES

    done = [r for r in runs if r.status in FINAL_STATUSES and r.status != "skipped"]
    durations = sorted(r.duration_s for r in done if r.duration_s is not None)

    def pct(p: float) -> float | None:
        return durations[min(len(durations) - 1, int(p * len(durations)))] if durations else None

    ok = sum(r.status == "succeeded" for r in done)
    return {
        "runs": len(done),
        "success_rate": ok / len(done) if done else None,
        "p50_s": pct(0.5),
        "p95_s": pct(0.95),
    }


def rm(
    names: Names,
    purge: Annotated[
        bool, typer.Option("--purge", help="Also delete its history and output.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Remove it even while it runs (cancels the run).")
    ] = False,
) -> None:
    """Remove jobs; their history stays unless --purge."""
    from jobctl.jobops import remove_jobs

    done = remove_jobs(store(), names, purge, force, now())
    if done.unlinked:
        gone = ", ".join(done.names)
        render.note(f"warning: {', '.join(done.unlinked)} ran after {gone}; that link was removed")
    what = ", ".join(repr(n) for n in done.names)
    render.note(f"removed job{'s' if len(done.names) > 1 else ''} {what}"
                + (" and " + ("their" if len(done.names) > 1 else "its") + " history"
                   if purge else ""))  # fmt: skip


def pause(names: Names) -> None:
    """Pause jobs: they do not fire until resumed."""
    from jobctl import jobdef

    s = store()
    names = list(dict.fromkeys(names))  # a name given twice is one job
    jobs = s.update_jobs(names, lambda job: jobdef.paused(job, now()))
    done = [j.name for j in jobs if j.state == "done"]
    paused_names = [j.name for j in jobs if j.state == "paused"]
    if paused_names:
        render.note(f"paused {', '.join(paused_names)}")
    if done:
        render.note(f"not paused (done, no fire left): {', '.join(done)}")


def resume(names: Names) -> None:
    """Resume jobs: each fires next at its next fire time from now (no catch-up)."""
    from jobctl import jobdef

    s = store()  # the clock is read in the write transaction (see edit)
    names = list(dict.fromkeys(names))  # a name given twice is one job
    s.update_jobs(names, lambda job: jobdef.resumed(job, now()))
    _nudge()
    render.note(f"resumed {', '.join(names)}")


def register(app: typer.Typer) -> None:
    ctx = {"allow_interspersed_args": True}
    app.command(context_settings=ctx)(add)
    app.command(context_settings=ctx)(edit)
    app.command("list")(list_)
    app.command()(show)
    app.command()(rm)
    app.command()(pause)
    app.command()(resume)
