"""`jobctl status --watch`: what the live view reads from the store, and how it looks.

`read_snapshot` gathers one frame's data (runners, running runs with their job's typical
duration, the queue, the next fires, recent failures); `view` turns a snapshot into a rich
renderable, pure and testable at a fixed width; `watch` redraws it every second, with rich
Live on a terminal and as plain frames, one after another, when stdout is not one.
rich is imported inside the functions that draw (this module is loaded only by --watch).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jobctl.errors import JobctlError
from jobctl.models import FAILED_STATUSES, Run
from jobctl.stats import TYPICAL_RUNS, typical_duration

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

    from jobctl.store import Store
    from jobctl.store.base import RunnerInfo

INTERVAL_S = 1.0
SHOWN = 5  # queued runs, next fires and failures shown at most
DAY_S = 86400.0


@dataclass
class Running:
    """A running run with what its progress is measured against."""

    run: Run
    typical_s: float | None  # median of the job's last successful runs
    timeout_s: float | None


@dataclass
class Snapshot:
    """One frame of the watch: everything `view` shows, read at `now`."""

    now: float
    shared: bool = False
    runners: list[tuple[RunnerInfo, bool]] = field(default_factory=list)  # (runner, alive)
    running: list[Running] = field(default_factory=list)
    queued: int = 0
    queue: list[Run] = field(default_factory=list)  # the oldest queued runs, at most SHOWN
    upcoming: list[tuple[float, str]] = field(default_factory=list)  # (at, job)
    failures: list[Run] = field(default_factory=list)  # newest first, last 24 h
    failed_24h: int = 0
    dead: int = 0
    error: str | None = None  # the store could not be read for this frame


def read_snapshot(s: Store, now: float) -> Snapshot:
    """One frame's data from the store (a dozen small reads; no run's output)."""
    from jobctl.status import runners_alive
    from jobctl.store.base import FAR_FUTURE, RunFilter

    registered, alive, _ = runners_alive(s)
    running = s.list_runs(RunFilter(statuses=["running"]))
    names = sorted({r.job for r in running})
    timeouts = {j.name: j.timeout_s for j in s.list_jobs(names=names, last_runs=False)}
    typical: dict[str, float | None] = {}
    for name in names:
        ok = s.list_runs(RunFilter(job=name, statuses=["succeeded"], limit=TYPICAL_RUNS))
        typical[name] = typical_duration([r.duration_s for r in reversed(ok) if r.duration_s])
    queued = s.count_runs(RunFilter(statuses=["queued"]))
    queue = sorted(
        s.list_runs(RunFilter(statuses=["queued"], limit=200)),
        key=lambda r: (r.not_before, r.id or 0),
    )[:SHOWN]
    failed = RunFilter(statuses=sorted(FAILED_STATUSES), since=now - DAY_S)
    return Snapshot(
        now=now,
        shared=s.shared,
        runners=[(r, alive[r.owner]) for r in registered],
        running=[
            Running(r, typical.get(r.job), timeouts.get(r.job))
            for r in sorted(running, key=lambda r: (r.started_at or 0.0, r.id or 0))
        ],
        queued=queued,
        queue=queue,
        upcoming=[(j.next_run_at or 0.0, j.name) for j in s.due_jobs(FAR_FUTURE, SHOWN)],
        failures=s.list_runs(RunFilter(statuses=failed.statuses, since=failed.since, limit=SHOWN)),
        failed_24h=s.count_runs(failed),
        dead=s.count_runs(RunFilter(dead=True)),
    )


# ---- drawing -------------------------------------------------------------------------------


def progress(elapsed: float, typical: float | None, width: int = 10) -> tuple[str, str]:
    """A bar of elapsed against typical and its style: ('███████░░░ 70%', 'green'); beyond
    the typical duration the bar is full and the style yellow, beyond twice it red."""
    if not typical or typical <= 0:
        return "", ""
    ratio = elapsed / typical
    filled = min(width, int(ratio * width))
    style = "green" if ratio <= 1 else "yellow" if ratio <= 2 else "red"
    return "█" * filled + "░" * (width - filled) + f" {ratio:.0%}", style


Cell = Any  # str, or rich Text for a coloured cell


def fit_table(
    title: str,
    headers: list[str],
    rows: list[list[Cell]],
    width: int,
    flex: int | None = None,
    drop: tuple[int, ...] = (),
) -> Any:
    """A borderless rich table that fits `width` columns of screen without wrapping a cell:
    the columns in `drop` (low-value ones, in that order) are left out while it is too wide,
    then the `flex` column is cut with '…' to what is left; the others keep their width."""
    from rich.cells import cell_len
    from rich.table import Table
    from rich.text import Text

    def size(c: Cell) -> int:
        return c.cell_len if isinstance(c, Text) else cell_len(c)

    cols = list(range(len(headers)))
    natural = {i: max([len(headers[i]), *(size(r[i]) for r in rows)]) for i in cols}

    def total() -> int:
        return sum(natural[i] for i in cols) + 2 * (len(cols) - 1)

    for i in drop:
        if total() <= width:
            break
        cols.remove(i)
    fixed: dict[int, int] = {}
    if flex is not None and flex in cols and total() > width:
        fixed[flex] = max(len(headers[flex]), natural[flex] - (total() - width))
    t = Table(title=title or None, title_justify="left", title_style="bold",
              header_style="bold", box=None, pad_edge=False, expand=False)  # fmt: skip
    for i in cols:
        t.add_column(headers[i], no_wrap=True, overflow="ellipsis", width=fixed.get(i),
                     min_width=None if i in fixed else natural[i])  # fmt: skip
    for r in rows:
        t.add_row(*(r[i] for i in cols))
    return t


def view(snap: Snapshot, width: int = 80, live: bool = False) -> RenderableType:
    """The frame for `snap`, `width` columns wide, as a rich renderable (no colour is lost
    on a console without: every coloured figure is also written out). `live`: the terminal
    view's hint line."""
    from rich.console import Group
    from rich.text import Text

    from jobctl import render

    t = snap.now
    stamp = (render.iso(t) or "")[:19].replace("T", " ")
    hint = ("  (Ctrl-C to quit)" if live else "", "dim")
    parts: list[Any] = [Text.assemble(("jobctl status", "bold"), f"  {stamp}", hint)]
    if snap.error:
        parts.append(Text(f"store unavailable: {render.printable(snap.error)}", style="red"))
        return Group(*parts)
    parts.append(_runners(snap, width))
    parts.append(Text(f"running: {len(snap.running)}   queued: {snap.queued}   "
                      f"failed (24h): {snap.failed_24h}   dead: {snap.dead}"))  # fmt: skip
    if snap.running:
        rows: list[list[Cell]] = []
        for x in snap.running:
            elapsed = max(0.0, t - (x.run.started_at or t))
            bar, style = progress(elapsed, x.typical_s)
            typical = render.duration(x.typical_s) if x.typical_s else "-"
            if x.timeout_s:
                typical += f" (timeout {render.duration(x.timeout_s)})"
            rows.append([str(x.run.id), render.printable(x.run.job),
                         render.relative(x.run.started_at, t), render.duration(elapsed),
                         typical, Text(bar or "-", style=style)])  # fmt: skip
        headers = ["ID", "JOB", "STARTED", "ELAPSED", "TYPICAL", "PROGRESS"]
        parts.append(fit_table("running", headers, rows, width, flex=1, drop=(2, 5)))
    if snap.queue:
        shown = len(snap.queue)
        more = f" (oldest {shown} of {snap.queued})" if snap.queued > shown else ""
        rows = [[str(r.id), render.printable(r.job), r.trigger, render.relative(r.created_at, t),
                 "now" if r.not_before <= t else render.relative(r.not_before, t)]
                for r in snap.queue]  # fmt: skip
        headers = ["ID", "JOB", "TRIGGER", "QUEUED", "DUE"]
        parts.append(fit_table(f"queued{more}", headers, rows, width, flex=1, drop=(3, 2)))
    if snap.upcoming:
        rows = [[render.printable(name), render.when(at, t)] for at, name in snap.upcoming]
        parts.append(fit_table("next fires", ["JOB", "AT"], rows, width, flex=0))
    if snap.failures:
        rows = [[str(r.id), render.printable(r.job),
                 Text(r.status, style=render.STATUS_STYLE.get(r.status, "")),
                 render.relative(r.finished_at, t),
                 "-" if r.exit_code is None else str(r.exit_code),
                 render.printable(r.error or "-")] for r in snap.failures]  # fmt: skip
        headers = ["ID", "JOB", "STATUS", "ENDED", "EXIT", "ERROR"]
        parts.append(fit_table("recent failures (24h)", headers, rows, width, flex=5,
                               drop=(4, 3)))  # fmt: skip
    return Group(*parts)


def _runners(snap: Snapshot, width: int) -> Any:
    from rich.text import Text

    from jobctl import render

    t = snap.now
    if not snap.runners or not any(a for _, a in snap.runners):
        return Text("runner: not running (start one with: jobctl runner)", style="yellow")
    if not snap.shared:
        info = next(r for r, a in reversed(snap.runners) if a)
        up = render.relative(info.since, t).replace(" ago", "")
        line = (f"runner: active, pid {info.pid} on {info.host}, up {up}, "
                f"heartbeat {render.relative(info.heartbeat_at, t)}")  # fmt: skip
        return Text(render.printable(line), no_wrap=True, overflow="ellipsis")
    live = sum(1 for _, a in snap.runners if a)
    rows = [[render.printable(r.host), str(r.pid), render.relative(r.since, t).replace(" ago", ""),
             render.relative(r.heartbeat_at, t),
             Text("held" if alive else "expired", style="" if alive else "red")]
            for r, alive in snap.runners]  # fmt: skip
    headers = ["HOST", "PID", "UP", "HEARTBEAT", "LEASE"]
    return fit_table(f"runners: {live} active of {len(snap.runners)}", headers, rows, width,
                     flex=0, drop=(2,))  # fmt: skip


# ---- the loop ------------------------------------------------------------------------------


def watch(
    read: Callable[[float], Snapshot],
    clock: Callable[[], float] = time.time,
    interval: float = INTERVAL_S,
    terminal: bool | None = None,
) -> int:
    """Redraw the view every `interval` until Ctrl-C (SIGINT), then return 0. On a terminal
    (rich Live, redrawn in place) unless `terminal` says otherwise; else plain frames, each
    headed by its 'jobctl status' line and followed by a blank line, flushed as written."""
    from rich.console import Console

    if terminal is None:
        terminal = sys.stdout.isatty()

    def frame() -> Snapshot:
        now = clock()
        try:
            return read(now)
        except JobctlError as exc:  # the store is briefly unavailable: say so, keep watching
            return Snapshot(now=now, error=str(exc))

    try:
        if terminal:
            from rich.live import Live

            console = Console()
            with Live(console=console, auto_refresh=False, transient=False) as live:
                while True:
                    live.update(view(frame(), console.width, live=True), refresh=True)
                    _sleep(clock, interval)
        console = Console(color_system=None, force_terminal=False, highlight=False, soft_wrap=False)
        while True:
            _plain_frame(console, frame())
            _sleep(clock, interval)
    except KeyboardInterrupt:
        return 0


def _plain_frame(console: Console, snap: Snapshot) -> None:
    """One frame as plain text (trailing blanks stripped), then a blank line."""
    with console.capture() as captured:
        console.print(view(snap, console.width))
    text = "\n".join(line.rstrip() for line in captured.get().splitlines())
    sys.stdout.write(text + "\n\n")
    sys.stdout.flush()


def _sleep(clock: Callable[[], float], interval: float) -> None:
    """Until the next multiple of `interval` (frames on whole seconds, not drifting)."""
    time.sleep(interval - clock() % interval)
