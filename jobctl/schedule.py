"""Schedule arithmetic for jobctl: cron, --every and --at (SPEC sections 4 and 5).

This room parses and validates schedule text (cron expressions, durations, time zones, --at
times), computes fire times with Vixie cron / cronie DST semantics, and describes schedules in
plain English. It is pure: it never reads the clock (``now``/``after`` are always passed in),
does no I/O and imports only the standard library and jobctl.records (@record, itself standard
library only: as a frozen dataclass, Cron cost every command importing this module 1.2 ms).
Anything in this file may change as long as the public names keep their signatures and it
stays pure; store, runner and CLI code belongs elsewhere.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_left
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from functools import lru_cache

from jobctl.records import record


class ScheduleError(ValueError):
    """Bad schedule input; str(e) is one clear line naming the bad value."""


# --- durations and zones ---------------------------------------------------------------------

# Patterns are strings, compiled by `re` on first use and cached there: compiling them all at
# import cost every command that imports this module a millisecond (issue 13).
_N = r"([0-9]+(?:\.[0-9]+)?|\.[0-9]+)"  # ASCII digits only (\d would take '٣' too)
_DURATION = rf"(?:{_N}w ?)?(?:{_N}d ?)?(?:{_N}h ?)?(?:{_N}m ?)?(?:{_N}s ?)?(?:{_N}ms)?"


def parse_duration(text: str) -> float:
    """'1h30m', '1h 30m', '1w', '500ms', '90' (bare seconds) ... -> seconds; units largest
    first, each once, optionally separated by one space."""
    s = text.strip().lower()
    if re.fullmatch(_N, s):
        return float(s)
    m = re.fullmatch(_DURATION, s)
    if not s or m is None:
        raise ScheduleError(
            f"invalid duration {text!r}: use e.g. 30s, 5m, 2h, 1h30m, 1w or a number of seconds"
        )
    sizes = (604800, 86400, 3600, 60, 1, 0.001)
    return sum(float(v) * size for v, size in zip(m.groups(), sizes, strict=True) if v)


def format_duration(seconds: float) -> str:
    """5400 -> '1h30m', 0.5 -> '500ms', 0 -> '0s' (millisecond precision)."""
    ms = round(seconds * 1000)
    sign, ms = ("-" if ms < 0 else ""), abs(ms)
    parts = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        count, ms = divmod(ms, size)
        if count:
            parts.append(f"{count}{unit}")
    return sign + "".join(parts) if parts else "0s"


#: zone names that are datetime's UTC (as jobctl.clock.UTC_NAMES: this pure module imports no
#: jobctl module but records)
UTC_NAMES = frozenset({"UTC", "Etc/UTC"})


def parse_zone(name: str) -> tzinfo:
    """An IANA zone ('Europe/London'); anything else is a ScheduleError. "UTC", every job's
    default, and "Etc/UTC", the local zone of many servers (and the default of a job added
    there), are datetime's own UTC: the same offsets, without reading the tz database (which
    costs a command 2 ms of start-up, issue 13)."""
    if name in UTC_NAMES:
        return UTC
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ScheduleError(f"unknown time zone {name!r}") from None


def check_zone_input(name: str) -> str:
    """`name` if it is a zone a job may be given (--tz): an IANA zone, not `localtime`,
    `posixrules`, `Factory` nor a `right/` zone (those count leap seconds: their clocks run
    27 s off the system's). Zones stored already are read with parse_zone, as they are."""
    from jobctl.clock import off_world

    if off_world(name.strip()):
        raise ScheduleError(f"unknown time zone {name!r}: give an IANA name such as "
                            "Europe/Paris")  # fmt: skip
    parse_zone(name)
    return name


# --- cron parsing ----------------------------------------------------------------------------

_MONTH_NAMES = ["January", "February", "March", "April", "May", "June"]
_MONTH_NAMES += ["July", "August", "September", "October", "November", "December"]
_DAY_NAMES = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
_MONTHS = {name[:3].lower(): i + 1 for i, name in enumerate(_MONTH_NAMES)}
_WEEKDAYS = {name[:3].lower(): i for i, name in enumerate(_DAY_NAMES)}
_MAX_DAYS = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_DOM, _DOW = "day-of-month", "day-of-week"
# name, lowest, highest, names
_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("second", 0, 59, {}),
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    (_DOM, 1, 31, {}),
    ("month", 1, 12, _MONTHS),
    (_DOW, 0, 7, _WEEKDAYS),
)
_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_STEP = r"(\*|\d+(-\d+)?)/\d+"  # strings, as _DURATION
_ITEM = r"(?P<base>\*|[a-z0-9]+(?:-[a-z0-9]+)?)(?:/(?P<step>.*))?"


@record(frozen=True)
class Cron:
    """A parsed expression. Sets hold the allowed values; weekdays use 0 = Sunday. A field is
    restricted when its text does not start with '*' (SPEC 5: '*/2' counts as unrestricted for
    the day rule but still filters); fixed_time = neither minute nor hour starts with '*'."""

    expr: str
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    last_day: bool
    months: frozenset[int]
    weekdays: frozenset[int]
    day_restricted: bool
    weekday_restricted: bool
    fixed_time: bool
    reboot: bool = False


class _FieldError(Exception):
    pass


def _unsupported(item: str, name: str) -> str | None:
    u = item.upper()
    if "#" in u:
        return f"'#' (nth weekday of the month) in {item!r} is not supported"
    if "~" in u:
        return f"'~' (cronie's random value) in {item!r} is not supported"
    if "?" in u:
        return f"'?' in {item!r} is not supported; use '*'"
    if re.fullmatch(r"H(\(\d+-\d+\))?(/\d+)?", u):
        return f"'H' (hashed value) in {item!r} is not supported"
    if re.fullmatch(r"(L|\d*)W", u):
        return f"'W' (nearest weekday) in {item!r} is not supported"
    if "L" in u and re.fullmatch(r"[L\d/-]+", u):
        if name == _DOM:
            return f"only a plain 'L' is supported in the day-of-month field, not {item!r}"
        return f"'L' in {item!r} is only supported in the day-of-month field"
    return None


def _wrapped(a: int, b: int, name: str, lo: int, hi: int) -> str:
    """A range that wraps past the field's end, as a list cron reads: 22-2 -> 22-23,0-2;
    in day-of-week (Sunday is 0 and 7) sat-mon -> 6-7,1."""
    if name == _DOW:
        lo, hi = 1, 7
    head = f"{a}-{hi}" if a < hi else f"{a}"
    tail = f"{lo}-{b}" if b > lo else f"{lo}"
    return f"{head},{tail}" if b >= lo else head


def _value(text: str, name: str, lo: int, hi: int, names: dict[str, int]) -> int:
    if text.isascii() and text.isdigit():
        if not lo <= int(text) <= hi:
            raise _FieldError(f"{name} {int(text)} is out of range {lo}-{hi}")
        return int(text)
    if text in names:
        return names[text]
    raise _FieldError(f"{name} {text!r} is not a number" + (" or a name" if names else ""))


def _parse_field(
    raw: str, name: str, lo: int, hi: int, names: dict[str, int]
) -> tuple[set[int], bool]:
    """One field -> (values, 'L' seen). 'a/n' runs to the top; day-of-week 7 becomes 0."""
    values: set[int] = set()
    last = False
    top = 6 if name == _DOW else hi  # '*' and 'a/n' in day-of-week stop at Saturday
    for item in raw.split(","):
        if not item:
            raise _FieldError(f"{name} field {raw!r} has an empty list item")
        if name == _DOM and item.lower() == "l":
            last = True
            continue
        m = re.fullmatch(_ITEM, item.lower())
        try:
            if m is None:
                raise _FieldError(f"{name} value {item!r} is not valid")
            a, b = lo, top
            if m["base"] != "*":
                first, _, second = m["base"].partition("-")
                a = _value(first, name, lo, hi, names)
                b = _value(second, name, lo, hi, names) if second else a
                if not second and m["step"] is not None:
                    b = max(a, top)
                if name == _DOW and b == 0 < a:
                    b = 7  # 'fri-sun'
                if a > b:
                    raise _FieldError(f"{name} range {item!r} is backwards: "
                                      f"write {_wrapped(a, b, name, lo, hi)}")  # fmt: skip
        except _FieldError as e:
            raise _FieldError(_unsupported(item, name) or str(e)) from None
        step = m["step"] or "1"
        if not (step.isascii() and step.isdigit() and int(step) > 0):
            raise _FieldError(f"{name} step {step!r} in {item!r} must be a whole number >= 1")
        values.update(range(a, b + 1, int(step)))
    if name == _DOW and 7 in values:
        values = (values - {7}) | {0}
    return values, last


def _raw_fields(expr: str) -> list[str]:
    text = expr.strip()
    fields = _MACROS.get(text.lower(), text).split()
    return ["0", *fields] if len(fields) == 5 else fields


def _join(items: list[str], word: str = "and") -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} {word} {items[-1]}"


def parse_cron(expr: str) -> Cron:
    """5 fields, 6 with seconds first, or a macro; ScheduleError names the bad field/value."""

    def fail(message: str) -> ScheduleError:
        return ScheduleError(f"invalid cron expression {expr!r}: {message}")

    text = expr.strip()
    if text.lower() == "@reboot":
        none: frozenset[int] = frozenset()
        return Cron(expr, none, none, none, none, False, none, none, False, False, False, True)
    if not text.replace("\t", " ").isprintable():  # a line break, ESC...: not one cron line
        raise fail("it must be one line of printable text")
    if text.lower().startswith("@every"):  # robfig/cron's (Go) interval macro
        interval = text[len("@every") :].strip() or "5m"
        raise fail(f"@every is not a cron macro: use --every {interval}")
    if text.startswith("@") and text.lower() not in _MACROS:
        raise fail(f"unknown macro {text!r} (use {', '.join(_MACROS)} or @reboot)")
    fields = _raw_fields(text)
    if len(fields) != 6:
        raise fail(
            f"expected 5 fields (minute hour day-of-month month day-of-week) or 6 with seconds"
            f" first, got {len(text.split())}"
        )
    sets = []
    last = False
    for raw, (name, lo, hi, names) in zip(fields, _FIELDS, strict=True):
        try:
            values, is_last = _parse_field(raw, name, lo, hi, names)
        except _FieldError as e:
            raise fail(str(e)) from None
        sets.append(frozenset(values))
        last = last or is_last
    secs, mins, hours, days, months, weekdays = sets
    day_r, wday_r = not fields[3].startswith("*"), not fields[5].startswith("*")
    never = not any(d <= _MAX_DAYS[m] for m in months for d in days)
    if never and not last and not (day_r and wday_r):
        plural = len(days) > 1
        day_text = f"day{'s' if plural else ''} {_join([str(d) for d in sorted(days)])}"
        month_text = _join([_MONTH_NAMES[m - 1] for m in sorted(months)])
        verb = "never occur" if plural else "never occurs"
        raise fail(f"it can never fire: {day_text} {verb} in {month_text}")
    fixed = not fields[1].startswith("*") and not fields[2].startswith("*")
    return Cron(expr, secs, mins, hours, days, last, months, weekdays, day_r, wday_r, fixed)


# --- naive wall-clock search -----------------------------------------------------------------

_MAX_YEARS = 400
_H3 = timedelta(hours=3)
_TINY = timedelta(microseconds=1)


@lru_cache(maxsize=256)
def _sorted(c: Cron) -> tuple[tuple[int, ...], ...]:
    return tuple(tuple(sorted(s)) for s in (c.months, c.hours, c.minutes, c.seconds))


def _ceil(values: tuple[int, ...], v: int) -> int | None:
    i = bisect_left(values, v)
    return values[i] if i < len(values) else None


#: days in each month of a common year (calendar.monthrange's; calendar imports locale: 1.5 ms
#: of every command that plans a fire, issue 13)
_MONTH_DAYS = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _month_days(y: int, mo: int) -> int:
    if mo == 2 and y % 4 == 0 and (y % 100 != 0 or y % 400 == 0):
        return 29
    return _MONTH_DAYS[mo]


def _day_ok(c: Cron, y: int, mo: int, d: int, ndays: int) -> bool:
    dom = d in c.days or (c.last_day and d == ndays)
    dow = (date(y, mo, d).weekday() + 1) % 7 in c.weekdays  # Sunday 0, as cron counts
    if c.day_restricted and c.weekday_restricted:
        return dom or dow
    return dom and dow


def _next_naive(c: Cron, start: datetime) -> datetime | None:
    """The first naive wall time strictly after naive `start` that the expression matches."""
    months, hours, minutes, seconds = _sorted(c)
    if start >= _NAIVE_END:
        return None
    t = start.replace(microsecond=0) + timedelta(seconds=1)
    y, mo, d, h, mi, s = t.year, t.month, t.day, t.hour, t.minute, t.second
    end_year = min(y + _MAX_YEARS, 9999)
    while y <= end_year:
        m2 = _ceil(months, mo)
        if m2 is None:
            y, mo, d, h, mi, s = y + 1, 1, 1, 0, 0, 0
            continue
        if m2 != mo:
            mo, d, h, mi, s = m2, 1, 0, 0, 0
        ndays = _month_days(y, mo)
        while d <= ndays and not _day_ok(c, y, mo, d, ndays):
            d, h, mi, s = d + 1, 0, 0, 0
        if d > ndays:
            y, mo = (y + 1, 1) if mo == 12 else (y, mo + 1)
            d, h, mi, s = 1, 0, 0, 0
            continue
        h2 = _ceil(hours, h)
        if h2 is None:
            d, h, mi, s = d + 1, 0, 0, 0
            continue
        if h2 != h:
            h, mi, s = h2, 0, 0
        mi2 = _ceil(minutes, mi)
        if mi2 is None:
            h, mi, s = h + 1, 0, 0
            continue
        if mi2 != mi:
            mi, s = mi2, 0
        s2 = _ceil(seconds, s)
        if s2 is None:
            mi, s = mi + 1, 0
            continue
        return datetime(y, mo, d, h, mi, s2)
    return None


# --- instants: offsets, transitions, DST rules (SPEC 5) --------------------------------------


def _utc(dt: datetime, name: str) -> datetime:
    if dt.tzinfo is None:
        raise ValueError(f"{name} must be an aware datetime, got naive {dt.isoformat()}")
    return dt.astimezone(UTC)


def _off(tz: tzinfo, u: datetime) -> timedelta:
    return min(u, _OFFSET_END).astimezone(tz).utcoffset() or timedelta(0)


#: the end of time for schedules (datetime's year 9999); no zone changes offset on its last days
_NAIVE_END = datetime(9999, 12, 31, 23, 59, 59)
_UTC_END = _NAIVE_END.replace(tzinfo=UTC)
_OFFSET_END = datetime(9999, 12, 30, tzinfo=UTC)


def _later(u: datetime, span: timedelta) -> datetime:
    """`u` + `span`, or the end of time if that is beyond it."""
    return u + span if u <= _UTC_END - span else _UTC_END


def _wall(u: datetime, offset: timedelta) -> datetime:
    """Naive local wall time of UTC instant `u` under `offset` (at most the end of time)."""
    try:
        return (u + offset).replace(tzinfo=None)
    except OverflowError:
        return _NAIVE_END


def _transition(tz: tzinfo, lo: datetime, hi: datetime) -> datetime | None:
    """The first instant in (lo, hi] whose UTC offset differs from lo's (at most one assumed)."""
    offset = _off(tz, lo)
    if _off(tz, hi) == offset:
        return None
    a, b = math.floor(lo.timestamp()), math.floor(hi.timestamp())
    while b - a > 1:
        mid = (a + b) // 2
        if datetime.fromtimestamp(mid, tz).utcoffset() == offset:
            a = mid
        else:
            b = mid
    return datetime.fromtimestamp(b, UTC)


def _locate(t: datetime, tz: tzinfo) -> tuple[datetime, bool]:
    """Earliest UTC instant showing naive wall time `t` in `tz`, and whether `t` exists at all.

    A wall time inside a spring-forward gap yields the instant the gap ends, and False."""
    candidates = [t.replace(tzinfo=tz, fold=f).astimezone(UTC) for f in (0, 1)]
    real = [u for u in candidates if u.astimezone(tz).replace(tzinfo=None) == t]
    if real:
        return min(real), True
    lo, hi = sorted(candidates)
    return _transition(tz, lo, hi) or hi, False


def next_cron_fire(cron: Cron, after: datetime, tz: tzinfo) -> datetime | None:
    """The first fire instant strictly after aware `after`, as an aware datetime in `tz`.

    Works segment by segment (a segment = a stretch of constant UTC offset): within one, naive
    wall times map to instants one to one; at a transition the SPEC 5 rules decide what fires.
    Note: Python subtracts and compares datetimes that share a tzinfo by wall clock, so do
    arithmetic on results in UTC (``.astimezone(UTC)``)."""
    cur = _utc(after, "after")
    if cron.reboot:
        return None
    offset = _off(tz, cur)
    w = _wall(cur, offset)  # candidates are naive wall times strictly after w
    if cron.fixed_time:  # inside a repeated hour: fixed times already fired in the first pass
        before = _off(tz, cur - _H3)
        back = _transition(tz, cur - _H3, cur) if before > offset else None
        if back is not None:
            w = max(w, _wall(back, before) - _TINY)
    for _ in range(32):
        t = _next_naive(cron, w)
        if t is None:
            return None
        try:
            inst = (t - offset).replace(tzinfo=UTC)
        except OverflowError:  # after the end of time (year 9999, west of UTC)
            return None
        trans = _transition(tz, cur, _later(cur, _H3))
        if trans is None and inst > _later(cur, _H3):
            # Far away: no matching wall time in between, so t's own resolution decides.
            first, exists = _locate(t, tz)
            if exists or cron.fixed_time:
                return first.astimezone(tz)
            w = _wall(first, _off(tz, first)) - _TINY  # wildcard: skip the gap
            continue
        if trans is None or inst < trans:
            return inst.astimezone(tz)
        new = _off(tz, trans)
        if new > offset and cron.fixed_time:  # gap: fixed times in it fire when it ends
            g = _next_naive(cron, _wall(trans, offset) - _TINY)
            if g is not None and g < _wall(trans, new):
                return trans.astimezone(tz)
        skip_repeat = new < offset and cron.fixed_time
        w = _wall(trans, offset if skip_repeat else new) - _TINY
        cur, offset = trans, new
    return None


def cron_fires(cron: Cron, after: datetime, tz: tzinfo, n: int) -> list[datetime]:
    """The next `n` fire instants, each strictly after the previous (fewer if it stops firing)."""
    fires: list[datetime] = []
    while len(fires) < n:
        nxt = next_cron_fire(cron, fires[-1] if fires else after, tz)
        if nxt is None:
            break
        fires.append(nxt)
    return fires


def next_every_fire(anchor: datetime, interval_s: float, after: datetime) -> datetime:
    """Smallest anchor + k*interval (k >= 0) strictly after `after`, in elapsed time."""
    step = round(interval_s * 1_000_000)
    if step <= 0:
        raise ScheduleError(f"invalid interval {interval_s!r}: it must be positive")
    start = _utc(anchor, "anchor")
    elapsed = (_utc(after, "after") - start) // timedelta(microseconds=1)
    k = 0 if elapsed < 0 else elapsed // step + 1
    return (start + timedelta(microseconds=k * step)).astimezone(anchor.tzinfo)


def parse_at(text: str, tz: tzinfo, now: datetime) -> datetime:
    """'+DURATION' from `now`, or ISO 8601 (naive = local time in `tz`); aware, in `tz`."""
    bad = ScheduleError(f"invalid time {text!r}: use ISO 8601 (2026-12-01T09:00) or +DURATION")
    s = text.strip()
    if s.startswith("+"):
        try:
            seconds = parse_duration(s[1:])
        except ScheduleError:
            raise bad from None
        try:
            return (_utc(now, "now") + timedelta(seconds=seconds)).astimezone(tz)
        except OverflowError:
            raise ScheduleError(f"invalid time {text!r}: too far from now") from None
    try:
        when = datetime.fromisoformat(s)
        if when.year < 2:  # the first year has no fire before it to search from
            raise OverflowError
        if when.tzinfo is None:
            when = _locate(when, tz)[0]
        return when.astimezone(tz)
    except ValueError:
        raise bad from None
    except OverflowError:
        raise ScheduleError(f"invalid time {text!r}: out of the supported range") from None


# --- plain English ---------------------------------------------------------------------------


def _spans(values: list[int], name: Callable[[int], str] = str) -> list[str]:
    """[1, 2, 3, 5] -> ['1 to 3', '5'] (runs of three or more become ranges)."""
    out: list[str] = []
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and values[j + 1] == values[j] + 1:
            j += 1
        if j - i >= 2:
            out.append(f"{name(values[i])} to {name(values[j])}")
        else:
            out.extend(name(v) for v in values[i : j + 1])
        i = j + 1
    return out


def _time_phrase(c: Cron, sec: str, minute: str, hour: str) -> tuple[str, bool]:
    """('at 01:30', True) for a few clock times, else ('every 5 minutes ...', False)."""
    if c.fixed_time and len(c.seconds) == 1 and len(c.hours) * len(c.minutes) <= 4:
        s = f":{min(c.seconds):02d}" if min(c.seconds) else ""
        clock = [f"{h:02d}:{m:02d}{s}" for h in sorted(c.hours) for m in sorted(c.minutes)]
        return "at " + _join(clock), True
    units = [("hour", hour, c.hours, 24), ("minute", minute, c.minutes, 60)]
    if c.seconds != {0}:
        units.append(("second", sec, c.seconds, 60))
    kinds = [
        "*" if raw == "*" else "/" if re.fullmatch(_STEP, raw) else "at" for _, raw, _, _ in units
    ]
    lead: list[str] = []
    tail: list[str] = []
    for i, (unit, raw, values, size) in enumerate(units):
        if kinds[i] == "*" and all(k == "*" for k in kinds[i:]):
            lead.append(f"every {units[-1][0]}")
            break
        if kinds[i] == "*" and kinds[i + 1] == "at":
            lead.append(f"every {unit}")
        elif kinds[i] == "/":
            base, step = raw.split("/")
            whole = values == set(range(0, size, int(step)))  # '0-23/2' reads like '*/2'
            span = "" if whole else f" from {base.replace('-', ' to ')}"
            lead.append(f"every {step} {unit}s{span}" if step != "1" else f"every {unit}{span}")
        elif kinds[i] == "at":
            phrase = f"{unit}{'s' * (len(values) > 1)} {_join(_spans(sorted(values)))}"
            (tail if unit == "hour" else lead).append(
                ("during " if unit == "hour" else "at ") + phrase
            )
    lead.sort(key=lambda phrase: not phrase.startswith("every"))  # 'every second at minute 30'
    return " ".join(lead + tail), False


def _day_phrase(c: Cron, dom: str, dow: str) -> str:
    day_part = ""
    if dom.startswith("*/"):
        n = int(dom[2:])
        suffix = "th" if n in (11, 12, 13) else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
        day_part = f"on every {n}{suffix} day of the month"
    elif dom != "*":
        parts = [f"day{'s' * (len(c.days) > 1)} {_join(_spans(sorted(c.days)))}"] if c.days else []
        day_part = f"on {_join(parts + ['the last day'] * c.last_day)} of the month"
    names: list[str] = []
    if dow != "*" and len(c.weekdays) < 7:  # Monday first, so 'fri-sun' reads as a range
        ordered = sorted((d - 1) % 7 for d in c.weekdays)
        names = _spans(ordered, lambda i: _DAY_NAMES[(i + 1) % 7])
    if day_part and names:
        if c.day_restricted and c.weekday_restricted:
            return f"{day_part} or on {_join(names)}"
        return f"{day_part} if it is a {_join(names, 'or')}"
    return day_part or (f"on {_join(names)}" if names else "")


def describe_cron(cron: Cron) -> str:
    """A short plain-English reading for tables, e.g. 'at 09:00 on Monday to Friday'."""
    if cron.reboot:
        return "when the runner starts"
    try:
        sec, minute, hour, dom, _, dow = _raw_fields(cron.expr)
        time, clock = _time_phrase(cron, sec, minute, hour)
        days = _day_phrase(cron, dom, dow)
        months = _spans(sorted(cron.months), lambda m: _MONTH_NAMES[m - 1])
        if len(cron.months) == 1 and re.fullmatch(r"on day \d+ of the month", days):
            return f"{time} on {min(cron.days)} {months[0]}"  # '@yearly': 'at 00:00 on 1 January'
        parts = [time, days or ("every day" if clock else "")]
        parts += [f"in {_join(months)}"] if len(cron.months) < 12 else []
        return " ".join(p for p in parts if p)
    except Exception:  # never fail a table over a reading
        return f"cron {cron.expr.strip()}"


# --- DST warning (SPEC 5) --------------------------------------------------------------------


def _dst_note(tz: tzinfo, trans: datetime, times: list[datetime]) -> str:
    fmt = "%H:%M:%S" if any(t.second for t in times) else "%H:%M"
    shown = [t.strftime(fmt) for t in times]
    label = _join(shown) if len(shown) <= 3 else f"{shown[0]}, {shown[1]} … {shown[-1]}"
    many = len(times) > 1
    where = f"on {times[0].date().isoformat()} in {getattr(tz, 'key', None) or tz}"
    before, after = (trans - _TINY).astimezone(tz), trans.astimezone(tz)
    dst_before, dst_after = before.dst() or timedelta(0), after.dst() or timedelta(0)
    if after.utcoffset() > before.utcoffset():  # type: ignore[operator]
        why = "DST starts" if dst_after > dst_before else "clocks go forward"
        verb = "do not exist" if many else "does not exist"
        fire = f"{'once, ' * many}at {after:%H:%M} {after.tzname()}"
    else:
        why = "DST ends" if dst_after < dst_before else "clocks go back"
        verb = "happen twice" if many else "happens twice"
        fire = (
            f"once at each, in {before.tzname()}"
            if many
            else f"once, at {shown[0]} {before.tzname()}"
        )
    return f"{label} {verb} {where} ({why}); the job fires {fire}"


def at_dst_warning(text: str, tz: tzinfo) -> str | None:
    """SPEC 5's one line for an --at time given as a naive wall time (parse_at) that falls in
    a DST gap of `tz` (it fires when the gap ends) or in a repeated hour (at its first
    occurrence), else None. A time with an offset, or '+DURATION', names one instant."""
    s = text.strip()
    if s.startswith("+"):
        return None
    try:
        t = datetime.fromisoformat(s)
    except ValueError:
        return None
    if t.tzinfo is not None:
        return None
    candidates = sorted({t.replace(tzinfo=tz, fold=f).astimezone(UTC) for f in (0, 1)})
    if len(candidates) < 2:  # one instant shows that wall time: an ordinary time
        return None
    trans = _transition(tz, candidates[0], candidates[1])
    return None if trans is None else "warning: " + _dst_note(tz, trans, [t])


def dst_warning(cron: Cron, tz: tzinfo, now: datetime) -> str | None:
    """One line when a fixed-time job's fires in the next 366 days hit a DST gap or overlap."""
    if cron.reboot or not cron.fixed_time or isinstance(tz, timezone):
        return None  # a fixed offset (UTC, +05:30) has no DST: no need to look a year ahead
    notes: dict[bool, str] = {}  # gap? -> sentence, first of each kind
    start = prev = _utc(now, "now")
    for i in range(1, 367):
        day = _later(start, timedelta(days=i))
        if day <= prev:
            break  # the end of time
        trans = _transition(tz, prev, day)
        old, prev = _off(tz, prev), day
        if trans is None:
            continue
        new = _off(tz, trans)
        lo, hi = _wall(trans, min(old, new)), _wall(trans, max(old, new))
        times: list[datetime] = []
        t = _next_naive(cron, lo - _TINY)
        while t is not None and t < hi and len(times) < 7200:
            times.append(t)
            t = _next_naive(cron, t)
        if times and (new > old) not in notes:
            notes[new > old] = _dst_note(tz, trans, times)
    return "warning: " + ". ".join(notes.values()) if notes else None
