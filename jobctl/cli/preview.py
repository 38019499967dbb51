"""`jobctl next`: preview fire times of a job or an expression; also how to validate one."""

from datetime import datetime
from typing import Annotated

import typer

from jobctl import render
from jobctl.cli import completers
from jobctl.cli.common import JsonOpt, complete_job_name, now, store
from jobctl.errors import UsageError


def next_(
    name: Annotated[
        str | None, typer.Argument(help="Job name.", autocompletion=complete_job_name)
    ] = None,
    cron: Annotated[
        str | None, typer.Option("--cron", metavar="EXPR", help="Preview this cron expression.")
    ] = None,
    every: Annotated[
        str | None, typer.Option("--every", metavar="D", help="Preview this interval.")
    ] = None,
    n: Annotated[str, typer.Option("-n", metavar="N", help="How many fire times.")] = "5",
    tz: Annotated[
        str | None,
        typer.Option(
            "--tz",
            metavar="ZONE",
            help="Zone (default: the job's, else the system's).",
            autocompletion=completers.zones,
        ),
    ] = None,
    from_: Annotated[
        str | None,
        typer.Option("--from", metavar="TIME", help="Start here instead of now (ISO 8601)."),
    ] = None,
    json: JsonOpt = False,
) -> None:
    """Preview fire times: jobctl next (NAME | --cron EXPR | --every D) [-n 5]."""
    from jobctl import jobdef, planner, schedule
    from jobctl.clock import local_zone_name
    from jobctl.inputs import schedule_input
    from jobctl.models import Job

    if sum(x is not None for x in (name, cron, every)) != 1:
        raise UsageError("give exactly one of NAME, --cron EXPR or --every DURATION")
    count = jobdef.parse_int(n, "-n", minimum=1, maximum=10_000)
    t = now()
    if name is not None:
        job = store().get_job(name)
        if tz is not None:
            job = job.copy_with(tz=tz)
    else:
        job = Job(name="preview", command=["true"], tz=tz or local_zone_name(), anchor_at=t)
    with schedule_input():
        if tz is not None:
            schedule.check_zone_input(tz)
        zone = planner.zone(job.tz)
        start = (
            t
            if from_ is None
            else schedule.parse_at(from_, zone, datetime.fromtimestamp(t, zone)).timestamp()
        )
        if cron is not None:
            job = job.copy_with(schedule=cron.strip(), schedule_kind="cron")
            schedule.parse_cron(job.schedule)
        elif every is not None:
            jobdef.option_duration(every, "--every", allow_zero=False)
            job = job.copy_with(schedule=every.strip(), schedule_kind="every", anchor_at=start)
        times = planner.fire_times(job, start, count)
    warning = jobdef.dst_warning(job, start)
    if warning:
        render.note(warning)
    if json:
        render.print_json([render.iso_time(d) for d in times])
        return
    if not times:
        render.note(
            "no fire times"
            + (" (@reboot fires when the runner starts)" if planner.is_reboot(job) else "")
        )
        return
    for d in times:
        typer.echo(f"{render.iso_time(d)}  {d:%a %Z}  ({render.relative(d.timestamp(), t)})")


def register(app: typer.Typer) -> None:
    app.command("next")(next_)
