"""`jobctl stats`, `jobctl metrics`, and the entry points of `status --watch` and
`runner --metrics`: they parse, call jobctl.stats / jobctl.metrics / jobctl.watch, and render.

prometheus_client, rich.live and the HTTP server are imported inside the functions that use
them, never at the top: other commands do not pay for them.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from jobctl import render
from jobctl.cli.common import JsonOpt, complete_job_name, now, state, store
from jobctl.errors import UsageError

if TYPE_CHECKING:
    from jobctl.stats import JobStats
    from jobctl.store import Store


# ---- stats -----------------------------------------------------------------------------------


def stats(
    name: Annotated[
        str | None,
        typer.Argument(metavar="NAME", help="Only this job.", autocompletion=complete_job_name),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", metavar="D", help="Only runs created in the last D (e.g. 7d)."),
    ] = None,
    json: JsonOpt = False,
) -> None:
    """Per job: runs, success rate, p50/p95/max duration, last failure, recent durations."""
    from jobctl.inputs import option_duration
    from jobctl.stats import job_stats

    t = now()
    cutoff = None if since is None else t - option_duration(since, "--since")
    s = store()
    names = (
        [s.get_job(name).name]
        if name is not None
        else [j.name for j in s.list_jobs(last_runs=False)]
    )
    found = job_stats(s.run_outcomes(job=name, since=cutoff), names)
    if json:
        render.print_json([_stats_json(x) for x in found])
        return
    if not found:
        render.note("no jobs yet (add one with: jobctl add NAME --every 1h -- COMMAND)")
        return
    _stats_table(found, t)


def _stats_json(x: JobStats) -> dict[str, Any]:
    fail = x.last_failure
    return {
        "job": x.job,
        "runs": x.runs,
        "succeeded": x.succeeded,
        "failed": x.failed,
        "cancelled": x.cancelled,
        "skipped": x.skipped,
        "success_rate": None if x.success_rate is None else round(x.success_rate, 4),
        "p50_s": x.p50_s,
        "p95_s": x.p95_s,
        "max_s": x.max_s,
        "last_failure": None if fail is None else {
            "id": fail.id, "status": fail.status, "finished_at": render.iso(fail.finished_at),
            "exit_code": fail.exit_code,
        },
        "recent": [{"duration_s": d, "status": st} for d, st in x.recent],
    }  # fmt: skip


#: in plain output a failed run's bar is this mark (colour shows it on a terminal)
FAILED_MARK = "×"


def _stats_table(found: list[JobStats], t: float) -> None:
    from jobctl.models import FAILED_STATUSES
    from jobctl.stats import sparkline

    encoding = (getattr(sys.stdout, "encoding", None) or "").lower().replace("-", "")
    bars = encoding == "utf8"  # the sparkline's characters need it; else the column goes
    headers = ["JOB", "RUNS", "SUCCESS", "P50", "P95", "MAX", "LAST FAILURE", "RECENT"]
    rows: list[list[str]] = []
    sparks: list[list[tuple[str, str]]] = []
    for x in found:
        fail = x.last_failure
        last = "-"
        if fail is not None:
            code = f", exit {fail.exit_code}" if fail.exit_code not in (None, 0) else ""
            last = f"{fail.status} {render.relative(fail.finished_at, t)}{code}"
        spark = sparkline(x.recent) if bars else []
        sparks.append(spark)
        rows.append([
            x.job, str(x.runs),
            "-" if x.success_rate is None else f"{x.success_rate:.0%}",
            render.duration(x.p50_s), render.duration(x.p95_s), render.duration(x.max_s),
            last,
            "".join(FAILED_MARK if st in FAILED_STATUSES else c for c, st in spark) or "-",
        ])  # fmt: skip
    if not render.fancy():
        render.table(headers, rows)
        return
    from rich.console import Console
    from rich.text import Text

    from jobctl.watch import fit_table

    cells: list[list[Any]] = []
    for row, spark in zip(rows, sparks, strict=True):
        recent = Text()
        for c, st in spark:
            recent.append(c, style=render.STATUS_STYLE.get(st, ""))
        cells.append([*(render.printable(c) for c in row[:-1]), recent if spark else "-"])
    console = Console()
    console.print(fit_table("", headers, cells, console.width, flex=6, drop=(4,)))


# ---- metrics ---------------------------------------------------------------------------------


def metrics(
    textfile: Annotated[
        str | None,
        typer.Option(
            "--textfile",
            metavar="PATH",
            help="Write them to PATH atomically (node_exporter's textfile collector) instead "
            "of printing them.",
        ),
    ] = None,
) -> None:
    """Prometheus metrics of the store: runs, durations, lateness, queue, runners."""
    from prometheus_client import generate_latest, write_to_textfile

    from jobctl.errors import JobctlError, StoreError
    from jobctl.metrics import make_registry

    reg, collector = make_registry(store)
    if textfile is None:
        data = generate_latest(reg)
        if collector.error:
            raise StoreError(collector.error)
        sys.stdout.write(data.decode())
        return
    if not textfile.endswith(".prom"):
        render.note(f"warning: {textfile}: node_exporter's textfile collector reads only "
                    "files ending in .prom")  # fmt: skip
    try:
        write_to_textfile(textfile, reg)
    except OSError as exc:
        raise JobctlError(f"cannot write {textfile!r}: {exc.strerror or exc}") from None
    if collector.error:
        raise StoreError(collector.error)


# ---- status --watch and runner --metrics -----------------------------------------------------


def watch_status() -> int:
    """`status --watch`: the live view until Ctrl-C (exit 0)."""
    from jobctl.watch import read_snapshot, watch

    s = store()
    return watch(lambda t: read_snapshot(s, t))


def parse_listen(text: str) -> tuple[str, int]:
    """`runner --metrics HOST:PORT` (IPv6 as [ADDR]:PORT; an empty host listens on all
    addresses) -> (host, port); UsageError naming the value otherwise."""
    host, sep, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    bad = UsageError(f"invalid --metrics {text!r}: use HOST:PORT, e.g. 127.0.0.1:9464")
    if not sep or not (port.isascii() and port.isdigit()) or not 0 <= int(port) <= 65535:
        raise bad
    if any(c.isspace() or c in "[]/" for c in host):
        raise bad
    return host or "0.0.0.0", int(port)


def serve_metrics(listen: tuple[str, int], open_store: Any) -> str:
    """Start the runner's metrics endpoint on a daemon thread; returns its URL. A store is
    opened for the scrapes (not the runner's own connection). StoreError if it cannot listen."""
    from prometheus_client import start_http_server

    from jobctl.errors import JobctlError
    from jobctl.metrics import make_registry

    reg, _ = make_registry(open_store, process=True)
    host, port = listen
    try:
        server, _thread = start_http_server(port, addr=host, registry=reg)
    except OSError as exc:
        raise JobctlError(
            f"--metrics {host}:{port}: cannot listen: {exc.strerror or exc}"
        ) from None
    bound = server.server_address[1]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{bound}/metrics"


def open_for_scrapes() -> Store:
    from jobctl.store import open_store

    return open_store(state().settings)


def register(app: typer.Typer) -> None:
    app.command()(stats)
    app.command()(metrics)
