"""Everything users see: JSON shapes (SPEC 6), relative times, durations and tables.

Tables are aligned text, the same layout everywhere, coloured with plain ANSI codes on a
terminal without NO_COLOR (rich, slow to import and to lay out 1,000 rows, is left to the live
views and sparklines). Nothing here touches the store.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime, tzinfo
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any

from jobctl.clock import UTC_NAMES

if TYPE_CHECKING:
    from jobctl.models import Job, Run
    from jobctl.store.base import Delivery

STATUS_STYLE = {
    "succeeded": "green",
    "failed": "red",
    "timed_out": "red",
    "abandoned": "magenta",
    "cancelled": "yellow",
    "skipped": "dim",
    "running": "cyan",
    "queued": "blue",
    "active": "green",
    "paused": "yellow",
    "done": "dim",
}


@cache
def local_zone() -> tzinfo | None:
    """The local zone as a tzinfo (zoneinfo's; datetime's UTC for UTC) when its IANA name is
    certain: converting with it is much cheaper than asking the C library for every
    timestamp. None otherwise."""
    from jobctl.clock import local_iana_zone

    name = local_iana_zone()
    return _zone(name) if name else None


def _local_dt(t: float, tz: tzinfo | None = None) -> datetime:
    zone = tz or local_zone()
    return datetime.fromtimestamp(t, zone) if zone else datetime.fromtimestamp(t).astimezone()


def iso(t: float | None, tz: tzinfo | None = None, ms: bool = True) -> str | None:
    """ISO 8601 with UTC offset; milliseconds unless `ms` is False and the time is whole."""
    if t is None:
        return None
    dt = _local_dt(round(t, 3), tz)  # as the store keeps it: whole milliseconds
    if not ms and dt.microsecond == 0:
        return dt.isoformat(timespec="seconds")
    return dt.isoformat(timespec="milliseconds")


def iso_time(d: datetime) -> str:
    """A fire time as ISO 8601 in its own zone: seconds, or milliseconds when it has them."""
    return d.isoformat(timespec="milliseconds" if d.microsecond else "seconds")


def run_json(run: Run, notes: Sequence[Delivery] | None = None) -> dict[str, Any]:
    """SPEC 6's run shape; with `notes`, also its notifications and their outcomes."""
    data = {
        "id": run.id,
        "job": run.job,
        "attempt": run.attempt,
        "trigger": run.trigger,
        "status": run.status,
        "scheduled_for": iso(run.scheduled_for),
        "started_at": iso(run.started_at),
        "finished_at": iso(run.finished_at),
        "duration_s": run.duration_s,
        "exit_code": run.exit_code,
        "signal": run.signal,
        "error": run.error,
        "host": run.host,
        "pid": run.pid,
        "dead": run.dead,
        "run_key": run.run_key,
        "not_before": iso(run.not_before),
        "upstream_run_id": run.upstream_run_id,
    }
    if notes is not None:
        data["notifications"] = [
            {"event": n.event, "target": n.target, "status": n.status, "attempts": n.attempts,
             "error": n.error, "at": iso(n.at)}
            for n in notes
        ]  # fmt: skip
    return data


def zone(name: str) -> tzinfo | None:
    """The zone named `name`, None if the tz database does not know it."""
    return _zone(name)


def _zone(name: str) -> tzinfo | None:
    if name in UTC_NAMES:  # shown as zoneinfo shows them, without reading tzdata
        return UTC
    from zoneinfo import ZoneInfo

    try:
        return ZoneInfo(name)
    except (ValueError, OSError, KeyError):  # ZoneInfoNotFoundError is a KeyError
        return None


def job_json(job: Job) -> dict[str, Any]:
    """SPEC 6's job shape; its schedule times are in the job's zone, like `next` shows them."""
    tz = _zone(job.tz)
    return {
        "name": job.name,
        "command": job.command,
        "shell": job.shell,
        "schedule": job.schedule,
        "schedule_kind": job.schedule_kind,
        "tz": job.tz,
        "state": job.state,
        "next_run_at": iso(job.next_run_at, tz, ms=False),
        "last_run": run_json(job.last_run) if job.last_run else None,
        "retries": job.retries,
        "timeout_s": job.timeout_s,
        "overlap": job.overlap,
        "misfire": job.misfire,
        "tags": job.tags,
        "description": job.description,
        "cwd": job.cwd,
        "env": job.env,
        "kill_grace_s": job.kill_grace_s,
        "retry_delay_s": job.retry_delay_s,
        "backoff": job.backoff,
        "max_retry_delay_s": job.max_retry_delay_s,
        "catchup_window_s": job.catchup_window_s,
        "jitter_s": job.jitter_s,
        "mutexes": job.mutexes,
        "on": job.on_labels,
        "notify": [{"event": e, "target": t} for e, t in job.notify],
        "ping": job.ping,
        "after": [{"job": j, "on": c} for j, c in job.after],
        "keep_runs": job.keep_runs,
        "max_output": job.max_output,
        "anchor_at": iso(job.anchor_at, tz),
        "created_at": iso(job.created_at, tz),
        "updated_at": iso(job.updated_at, tz),
    }


def print_json(data: Any) -> None:
    """Indented for a person at a terminal; one compact line for scripts (the C encoder)."""
    import json

    indent = 2 if sys.stdout.isatty() else None
    sys.stdout.write(json.dumps(data, indent=indent) + "\n")


# ---- human text -----------------------------------------------------------------


def _span(seconds: float) -> str:
    """A span in its two largest units, as kubectl writes ages: 45s, 5m30s, 7h12m, 3d4h (a
    second unit of 0 is left out: 2h, not 2h0m). Written out, not looped: `list` calls it
    twice a row."""
    s = int(abs(seconds))
    if s < 60:
        return f"{s}s" if s else "now"
    if s < 3600:
        m, rest = divmod(s, 60)
        return f"{m}m{rest}s" if rest else f"{m}m"
    if s < 86400:
        h, rest = divmod(s, 3600)
        return f"{h}h{rest // 60}m" if rest >= 60 else f"{h}h"
    d, rest = divmod(s, 86400)
    return f"{d}d{rest // 3600}h" if rest >= 3600 else f"{d}d"


def relative(t: float | None, now: float) -> str:
    """'in 4m', '3h12m ago', 'now': one style everywhere."""
    if t is None:
        return "-"
    span = _span(t - now)
    if span == "now":
        return span
    return f"in {span}" if t > now else f"{span} ago"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    m, s = divmod(round(seconds), 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m"


def when(t: float | None, now: float, tz: tzinfo | None = None, full: bool = False) -> str:
    """Wall time plus relative: '09:00:00 (in 4m)' today, '2026-11-30 09:00:00 (in 1d2h)'
    on another day (of `tz`, else the local zone); `full` always dates it and names the zone."""
    if t is None:
        return "-"
    dt = _local_dt(t, tz)
    text = f"{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}"  # strftime costs 10x (list)
    if full or _today(now, tz) != dt.date():
        text = f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d} {text}"
    if full:
        text += f" {dt.tzname()}"
    return f"{text} ({relative(t, now)})"


@lru_cache(maxsize=4)
def _today(now: float, tz: tzinfo | None) -> date:
    """The date of `now` in `tz` (the local zone if None); `list` asks it once a row."""
    return _local_dt(now, tz).date()


def plural(n: int, noun: str) -> str:
    """'1 run', '2 runs', '0 runs'."""
    return f"{n} {noun}" + ("" if n == 1 else "s")


def printable(text: str) -> str:
    """`text` with every character that is not printable (control characters such as ESC,
    line breaks, tabs, C1 codes) written as repr writes it (\\x1b, \\n): a value taken from
    a user or a job can neither drive the terminal nor break a line or a table row."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def fancy() -> bool:
    """Rich output only on a terminal and without NO_COLOR."""
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def width() -> int | None:
    """The width tables must fit: the terminal's (COLUMNS first, as shells set it), or COLUMNS
    when stdout is not a terminal; None (no limit) for a pipe without COLUMNS."""
    if sys.stdout.isatty():
        import shutil

        return shutil.get_terminal_size().columns
    cols = os.environ.get("COLUMNS", "")
    return int(cols) if cols.isdigit() and int(cols) > 0 else None


GAP = 2  # spaces between columns, on both outputs
CUT_FLOOR = 20  # a `cut_first` column keeps this much before the others are cut


def fit(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    limit: int | None,
    drop: Sequence[str] = (),
    cut_first: Sequence[str] = (),
) -> tuple[list[int], list[int]]:
    """Fit a table into `limit` columns as kubectl and pueue do: never wrap a cell. First the
    columns named in `drop` go (in that order), then those in `cut_first` are cut (with …),
    then the widest cells, none below its header. Returns the kept columns and their widths."""
    keep = list(range(len(headers)))
    widths = {i: max(len(headers[i]), *(len(r[i]) for r in rows)) for i in keep}

    def total() -> int:
        return sum(widths[i] for i in keep) + GAP * (len(keep) - 1)

    if limit is not None:
        for name in drop:
            if total() <= limit:
                break
            if name in headers and headers.index(name) in keep and len(keep) > 1:
                keep.remove(headers.index(name))
        soft = {i: min(widths[i], max(len(headers[i]), CUT_FLOOR)) for i in keep
                if headers[i] in cut_first}  # fmt: skip
        for i in sorted(soft, key=lambda i: cut_first.index(headers[i])):
            widths[i] = max(soft[i], widths[i] - max(total() - limit, 0))
        # then the widest cells; the first column (a name, an id) and what `cut_first` kept
        # are cut only when nothing else can give
        for hard in (False, True):
            floor = {i: max(len(headers[i]), 1) for i in keep}
            if not hard:
                floor.update(soft)
                floor[keep[0]] = widths[keep[0]]
            while total() > limit:
                i = max(keep, key=lambda k: (widths[k] - floor[k], widths[k]))
                if widths[i] <= floor[i]:
                    break  # as narrow as it gets: the terminal cuts the line
                widths[i] -= 1
    return keep, [widths[i] for i in keep]


def cut(text: str, size: int) -> str:
    """`text` in at most `size` characters, cut with … when it is longer."""
    return text if len(text) <= size else text[: max(size - 1, 0)] + "…"


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    styles: dict[int, str] | None = None,
    title: str | None = None,
    drop: Sequence[str] = (),
    cut_first: Sequence[str] = (),
) -> None:
    """Print a table; columns whose every cell is empty or '-' are left out (as pueue does).

    The table fits the terminal (see `fit`: the columns in `drop` go first, those in
    `cut_first` are cut first); a cell
    never wraps, and the layout is the same with and without colour. `styles` maps a column
    index to 'status' (colour by STATUS_STYLE) on a terminal (plain ANSI codes, not rich).
    """
    shown = [i for i in range(len(headers)) if any(r[i] not in ("", "-") for r in rows)] or list(
        range(len(headers))
    )
    styled = {shown.index(i) for i in (styles or {}) if i in shown}
    headers = [headers[i] for i in shown]
    rows = [[r[i] for i in shown] for r in rows]
    # names, commands, errors: escaped (a row is looked at cell by cell only if it needs it)
    rows = [r if "".join(r).isprintable() else [printable(c) for c in r] for r in rows]
    limit = width()
    keep, widths = fit(headers, rows, limit, drop, cut_first)
    styled = {keep.index(i) for i in styled if i in keep}
    if limit is not None:  # without a limit `fit` keeps every column whole: nothing to cut
        headers = [cut(headers[i], w) for i, w in zip(keep, widths, strict=True)]
        rows = [[cut(r[i], w) for i, w in zip(keep, widths, strict=True)] for r in rows]
    title = printable(title) if title else title
    out: list[str] = [title] if title else []
    if fancy():  # colour with plain SGR codes: rich would take 250 ms over 1,000 rows
        line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()
        out.append(f"{SGR['bold']}{line}{SGR['']}")
        for r in rows:
            cells = [c.ljust(w) for c, w in zip(r, widths, strict=True)]
            for i in styled:
                style = STATUS_STYLE.get(r[i].split()[0] if r[i] else "")
                if style:  # the colour around the text; the padding after it, plain
                    cells[i] = f"{SGR[style]}{r[i]}{SGR['']}{cells[i][len(r[i]) :]}"
            out.append("  ".join(cells).rstrip())
    else:  # one format for every line: each cell padded to its column's width, as ljust pads
        line = "  ".join(f"{{:<{w}}}" for w in widths)
        out += [line.format(*r).rstrip() for r in [headers, *rows]]
    sys.stdout.write("\n".join(out) + "\n")


#: the ANSI select-graphic-rendition codes of the styles tables use ("" resets)
SGR = {"": "\x1b[0m", "bold": "\x1b[1m", "dim": "\x1b[2m", "red": "\x1b[31m",
       "green": "\x1b[32m", "yellow": "\x1b[33m", "blue": "\x1b[34m", "magenta": "\x1b[35m",
       "cyan": "\x1b[36m"}  # fmt: skip


SPARKS = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float]) -> str | None:
    """A one-line chart of `values` for a terminal that can show it, else None."""
    encoding = (getattr(sys.stdout, "encoding", None) or "").lower().replace("-", "")
    if len(values) < 2 or not fancy() or encoding != "utf8":
        return None
    lo, hi = min(values), max(values)
    span = (hi - lo) or 1.0
    return "".join(SPARKS[min(7, int((v - lo) / span * 8))] for v in values)


def pairs(items: Sequence[tuple[str, str]]) -> None:
    """A two-column 'key: value' block (show)."""
    width = max(len(k) for k, _ in items)
    for k, v in items:
        sys.stdout.write(f"{k.rjust(width)}  {printable(v)}\n")


def note(message: str) -> None:
    """Status text for people; stderr, so that stdout pipes cleanly. Its own line breaks
    stay; any other control character (from a value it quotes) is shown escaped."""
    sys.stderr.write("\n".join(printable(line) for line in message.split("\n")) + "\n")
