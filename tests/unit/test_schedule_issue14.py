"""Issue 14 item 10 (and item 8's durations): the year-9999 boundary, the hint for a range
that wraps, cronie's `~` named as unsupported, `@every` pointed to --every, `1w`, `1h 30m`."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from jobctl.schedule import ScheduleError, cron_fires, parse_cron, parse_duration


@pytest.mark.parametrize(
    ("id_", "expr", "zone", "start", "expected"),
    [
        ("new_year_9999_utc", "0 0 1 1 *", "UTC", "9998-06-01T00:00",
         ["9999-01-01T00:00:00+00:00"]),
        ("last_minutes_utc", "* * * * *", "UTC", "9999-12-31T23:57",
         ["9999-12-31T23:58:00+00:00", "9999-12-31T23:59:00+00:00"]),
        ("east_of_utc_last_day", "30 23 31 12 *", "Asia/Tokyo", "9999-06-01T00:00",
         ["9999-12-31T23:30:00+09:00"]),
        ("west_of_utc_beyond_the_end", "30 23 31 12 *", "America/New_York", "9999-06-01T00:00",
         []),
        ("west_of_utc_until_the_end", "*/30 * * * *", "America/New_York", "9999-12-31T18:00",
         ["9999-12-31T18:30:00-05:00"]),
    ],
)  # fmt: skip
def test_fires_up_to_the_end_of_year_9999(id_, expr, zone, start, expected) -> None:
    tz = ZoneInfo(zone)
    after = datetime.fromisoformat(start).replace(tzinfo=tz)
    fires = cron_fires(parse_cron(expr), after, tz, 3)
    assert [f.isoformat() for f in fires] == expected, id_


@pytest.mark.parametrize(
    ("expr", "hint"),
    [
        ("0 0 * * sat-mon", "write 6-7,1"),
        ("0 0 * * fri-tue", "write 5-7,1-2"),
        ("0 22-2 * * *", "write 22-23,0-2"),
        ("0 0 20-3 * *", "write 20-31,1-3"),
        ("0 0 * 11-2 *", "write 11-12,1-2"),
    ],
)
def test_backwards_range_hint_is_a_list_that_means_the_same(expr: str, hint: str) -> None:
    with pytest.raises(ScheduleError) as exc:
        parse_cron(expr)
    assert str(exc.value).endswith(hint)
    fields = expr.split()
    wrapped = next(i for i, f in enumerate(fields) if "-" in f)
    fields[wrapped] = hint.split()[-1]
    assert parse_cron(" ".join(fields)) is not None  # the hint is a valid field


def test_backwards_weekday_hint_means_the_days_intended() -> None:
    tz = ZoneInfo("UTC")
    fires = cron_fires(parse_cron("0 0 * * 6-7,1"), datetime(2026, 3, 2, tzinfo=tz), tz, 4)
    assert [f.strftime("%a") for f in fires] == ["Sat", "Sun", "Mon", "Sat"]


@pytest.mark.parametrize("expr", ["0 0 * * 1~5", "~ * * * *", "0 0~3 * * *"])
def test_cronie_random_ranges_are_named_unsupported(expr: str) -> None:
    with pytest.raises(ScheduleError, match=r"'~' \(cronie's random value\) .* is not supported"):
        parse_cron(expr)


def test_at_every_points_to_the_every_option() -> None:
    with pytest.raises(ScheduleError, match=r"@every is not a cron macro: use --every 5m$"):
        parse_cron("@every 5m")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1w", 604800), ("2w1d", 1296000), ("1h 30m", 5400), ("1d 2h 3m 4s", 93784), ("90", 90)],
)
def test_durations_take_weeks_and_spaces(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["1h  30m", "30m 1h", "1 h", "w"])
def test_durations_still_refuse_what_is_ambiguous(text: str) -> None:
    with pytest.raises(ScheduleError):
        parse_duration(text)
