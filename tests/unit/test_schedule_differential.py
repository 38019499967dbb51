"""jobctl's cron engine against two independent ones, croniter and cronsim, in zones without DST.

Where there is no DST the three must agree on every fire, except where a library reads an
expression differently from cronie (SPEC 5). Those differences are listed in KNOWN: each one
is named, says why, and is excluded explicitly; the test also checks that each exclusion is
still needed (the library still differs on some expression it excludes), so a library that
changes its reading shows up here. DST rules are jobctl's own and are pinned by the tables in
test_schedule.py, not here. Seeded: the same expressions on every run.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from jobctl.schedule import ScheduleError, cron_fires, parse_cron

croniter_mod = pytest.importorskip("croniter")
cronsim_mod = pytest.importorskip("cronsim")

#: zones without DST (Asia/Kolkata: a half-hour offset); jobctl's DST rules are tested elsewhere
ZONES = ["UTC", "Asia/Tokyo", "Asia/Kolkata"]
FIRES = 5  # fires compared per expression and start
EXPRESSIONS = 400

_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]


def _field(rng: random.Random, lo: int, hi: int, names: list[str] | None = None) -> str:
    """One random field: *, */n, a value or name, a-b, a-a, a-b/n, a/n, or a list."""

    def value() -> str:
        v = rng.randint(lo, hi)
        if names and v - lo < len(names) and rng.random() < 0.3:
            return names[v - lo].upper() if rng.random() < 0.3 else names[v - lo]
        return str(v)

    k = rng.random()
    if k < 0.2:
        return "*"
    if k < 0.35:
        return f"*/{rng.randint(1, (hi - lo) // 2 + 1)}"
    if k < 0.5:
        return value()
    a = rng.randint(lo, hi - 1)
    b = rng.randint(a, hi)  # a == b too: the degenerate range 'a-a'
    if k < 0.65:
        return f"{a}-{b}"
    if k < 0.75:
        return f"{a}-{b}/{rng.randint(1, 5)}"
    if k < 0.85:
        return f"{rng.randint(lo, hi)}/{rng.randint(1, 10)}"
    return ",".join(sorted({value() for _ in range(rng.randint(2, 4))}))


def _expression(rng: random.Random) -> str:
    dom = "L" if rng.random() < 0.08 else _field(rng, 1, 31)
    fields = [_field(rng, 0, 59), _field(rng, 0, 23), dom, _field(rng, 1, 12, _MONTHS)]
    fields.append(_field(rng, 0, 7, _DAYS))
    if rng.random() < 0.3:
        fields.insert(0, _field(rng, 0, 59))  # seconds first
    return " ".join(fields)


def _day_fields(expr: str) -> tuple[str, str]:
    f = expr.split()
    return (f[-3], f[-1])


# --- the known differences: (name, why, does it apply to this expression) ---------------------

Known = tuple[str, str, Callable[[str], bool]]


def _star_step_day(expr: str) -> bool:
    dom, dow = _day_fields(expr)
    both = dom != "*" and dow != "*"
    return both and (dom.startswith("*/") or dow.startswith("*/"))


def _degenerate_range(expr: str) -> bool:
    return any(m[1] == m[2] for m in re.finditer(r"(?<![\d/])(\d+)-(\d+)", expr))


def _degenerate_range_step(expr: str) -> bool:
    return any(m[1] == m[2] for m in re.finditer(r"(?<![\d/])(\d+)-(\d+)/", expr))


def _dow_value_step(expr: str) -> bool:
    return bool(re.fullmatch(r"[1-7]/\d+", _day_fields(expr)[1]))


KNOWN: dict[str, list[Known]] = {
    "croniter": [
        (
            "star_step_day_is_restricted",
            "croniter counts a day field '*/n' as restricted and ORs it with the other day "
            "field; cronie (SPEC 5) counts any field starting with '*' as unrestricted (AND)",
            _star_step_day,
        ),
        (
            "degenerate_range_is_every_value",
            "croniter reads the range 'a-a' (e.g. '5-5') as '*'; cronie as the single value a",
            _degenerate_range,
        ),
        (
            "dow_value_step_runs_to_sunday",
            "'a/n' in day-of-week: croniter runs it up to 7 (Sunday again); jobctl stops at "
            "Saturday (README, Schedules)",
            _dow_value_step,
        ),
    ],
    "cronsim": [
        (
            "degenerate_range_with_step_runs_to_top",
            "cronsim reads 'a-a/n' as 'a/n' (from a to the top of the field); cronie as the "
            "single value a",
            _degenerate_range_step,
        ),
        (
            "dow_value_step_runs_to_sunday",
            "'a/n' in day-of-week: cronsim runs it up to 7 (Sunday again); jobctl stops at "
            "Saturday (README, Schedules)",
            _dow_value_step,
        ),
    ],
}


def _croniter_fires(expr: str, start: datetime, n: int) -> list[datetime]:
    six = len(expr.split()) == 6
    it = croniter_mod.croniter(expr, start, day_or=True, second_at_beginning=six)
    return [it.get_next(datetime) for _ in range(n)]


def _cronsim_fires(expr: str, start: datetime, n: int) -> list[datetime]:
    it = cronsim_mod.CronSim(expr, start)
    return [next(it) for _ in range(n)]


LIBRARIES: dict[str, Callable[[str, datetime, int], list[datetime]]] = {
    "croniter": _croniter_fires,
    "cronsim": _cronsim_fires,
}


def _cases() -> list[tuple[str, datetime]]:
    rng = random.Random(20260314)
    cases: list[tuple[str, datetime]] = []
    while len(cases) < EXPRESSIONS:
        expr = _expression(rng)
        try:
            parse_cron(expr)
        except ScheduleError:  # e.g. day 31 in February only, a backwards range
            continue
        zone = ZoneInfo(rng.choice(ZONES))
        start = datetime(2026, 1, 1, tzinfo=zone) + timedelta(
            seconds=rng.randint(0, 2 * 366 * 86400)
        )
        cases.append((expr, start))
    return cases


@pytest.mark.parametrize("library", sorted(LIBRARIES))
def test_same_fires_as_library(library: str) -> None:
    """jobctl's next fires equal the library's, for every expression no known difference
    covers; every known difference is exercised, and still makes the library differ."""
    fires_of = LIBRARIES[library]
    known = KNOWN[library]
    compared = 0
    excluded: Counter[str] = Counter()
    still_differs: Counter[str] = Counter()
    mismatches: list[str] = []
    for expr, start in _cases():
        ours = cron_fires(parse_cron(expr), start, start.tzinfo, FIRES)  # type: ignore[arg-type]
        try:
            theirs = fires_of(expr, start, FIRES)
        except Exception as exc:  # a library that refuses an expression jobctl accepts
            theirs = [f"{type(exc).__name__}: {exc}"]  # type: ignore[list-item]
        reasons = [name for name, _, applies in known if applies(expr)]
        if reasons:
            excluded.update(reasons)
            if ours != theirs:
                still_differs.update(reasons)
            continue
        compared += 1
        if ours != theirs:
            mismatches.append(f"{expr!r} from {start.isoformat()}: {ours} != {theirs}")
    assert not mismatches, "\n".join(mismatches[:10])
    assert compared >= EXPRESSIONS // 2, (compared, excluded)
    for name, why, _ in known:
        assert excluded[name] > 0, f"{library}: no expression exercised {name}"
        assert still_differs[name] > 0, f"{library} agrees with jobctl on {name} now ({why})"
