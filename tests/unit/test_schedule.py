"""Pins jobctl.schedule: parsing, cron fire times with the SPEC 5 DST rules, --every, --at,
plain-English readings and DST warnings. Fire times are compared as ISO strings, so both the
instant and the offset it is shown with are checked."""

import random
from datetime import UTC, datetime, timedelta, timezone
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

from jobctl.records import replace
from jobctl.schedule import (
    Cron,
    ScheduleError,
    at_dst_warning,
    cron_fires,
    describe_cron,
    dst_warning,
    format_duration,
    next_cron_fire,
    next_every_fire,
    parse_at,
    parse_cron,
    parse_duration,
    parse_zone,
)

NY = ZoneInfo("America/New_York")
MINUTE = timedelta(minutes=1)


def utc(times: list[datetime]) -> list[datetime]:
    """Aware datetimes sharing one ZoneInfo subtract and compare by wall clock; use UTC."""
    return [t.astimezone(UTC) for t in times]


def fires(expr: str, zone: str, after: str, n: int) -> list[str]:
    cron = parse_cron(expr)
    return [
        f.isoformat() for f in cron_fires(cron, datetime.fromisoformat(after), ZoneInfo(zone), n)
    ]


# --- cron fire times ------------------------------------------------------------------------

# fmt: off
FIRE_CASES = [
    # SPEC 5 examples, verbatim
    pytest.param("30 2 * * *", "America/New_York", "2026-03-07T12:00:00-05:00", [
        "2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00",
    ], id="spring_skip_fixed_ny"),
    pytest.param("30 1 * * *", "America/New_York", "2026-10-31T12:00:00-04:00", [
        "2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00",
    ], id="fall_back_fixed_once_ny"),
    pytest.param("*/30 * * * *", "America/New_York", "2026-11-01T00:45:00-04:00", [
        "2026-11-01T01:00:00-04:00", "2026-11-01T01:30:00-04:00", "2026-11-01T01:00:00-05:00",
        "2026-11-01T01:30:00-05:00", "2026-11-01T02:00:00-05:00",
    ], id="fall_back_wildcard_keeps_period_ny"),
    pytest.param("0 0 */2 * 1", "UTC", "2026-01-01T00:00:00+00:00", [
        "2026-01-05T00:00:00+00:00", "2026-01-19T00:00:00+00:00", "2026-02-09T00:00:00+00:00",
        "2026-02-23T00:00:00+00:00",
    ], id="odd_days_that_are_mondays"),
    # spring forward, more shapes
    pytest.param("0,15,30,45 2 * * *", "America/New_York", "2026-03-08T01:00:00-05:00", [
        "2026-03-08T03:00:00-04:00", "2026-03-09T02:00:00-04:00",
    ], id="spring_gap_times_collapse_fixed_ny"),
    pytest.param("30 2,3 * * *", "America/New_York", "2026-03-08T01:00:00-05:00", [
        "2026-03-08T03:00:00-04:00", "2026-03-08T03:30:00-04:00",
    ], id="spring_gap_then_real_time_fixed_ny"),
    pytest.param("15 * * * *", "America/New_York", "2026-03-08T00:30:00-05:00", [
        "2026-03-08T01:15:00-05:00", "2026-03-08T03:15:00-04:00", "2026-03-08T04:15:00-04:00",
    ], id="spring_wildcard_skips_missing_hour_ny"),
    pytest.param("*/30 * * * *", "America/New_York", "2026-03-08T01:10:00-05:00", [
        "2026-03-08T01:30:00-05:00", "2026-03-08T03:00:00-04:00", "2026-03-08T03:30:00-04:00",
    ], id="spring_wildcard_30min_ny"),
    pytest.param("0 30 2 * * *", "America/New_York", "2026-03-08T00:00:00-05:00", [
        "2026-03-08T03:00:00-04:00",
    ], id="spring_skip_fixed_six_fields_ny"),
    # fall back, more shapes
    pytest.param("0 0-23 * * *", "America/New_York", "2026-11-01T00:30:00-04:00", [
        "2026-11-01T01:00:00-04:00", "2026-11-01T02:00:00-05:00", "2026-11-01T03:00:00-05:00",
    ], id="fall_back_hour_list_is_fixed_ny"),
    pytest.param("0 * * * *", "America/New_York", "2026-11-01T00:30:00-04:00", [
        "2026-11-01T01:00:00-04:00", "2026-11-01T01:00:00-05:00", "2026-11-01T02:00:00-05:00",
    ], id="fall_back_hourly_wildcard_fires_twice_ny"),
    pytest.param("*/30 * * * *", "America/New_York", "2026-11-01T01:15:00-05:00", [
        "2026-11-01T01:30:00-05:00", "2026-11-01T02:00:00-05:00",
    ], id="after_inside_repeated_hour_wildcard_ny"),
    pytest.param("30 1 * * *", "America/New_York", "2026-11-01T01:15:00-05:00", [
        "2026-11-02T01:30:00-05:00",
    ], id="after_inside_repeated_hour_fixed_ny"),
    pytest.param("30 1 * * *", "America/New_York", "2026-11-01T01:30:00-04:00", [
        "2026-11-02T01:30:00-05:00",
    ], id="after_first_occurrence_fixed_ny"),
    # Europe/London: 01:00 GMT -> 02:00 BST on 2026-03-29, 02:00 BST -> 01:00 GMT on 2026-10-25
    pytest.param("30 1 * * *", "Europe/London", "2026-03-28T12:00:00+00:00", [
        "2026-03-29T02:00:00+01:00", "2026-03-30T01:30:00+01:00",
    ], id="spring_skip_fixed_london"),
    pytest.param("30 1 * * *", "Europe/London", "2026-10-24T12:00:00+01:00", [
        "2026-10-25T01:30:00+01:00", "2026-10-26T01:30:00+00:00",
    ], id="fall_back_fixed_once_london"),
    pytest.param("*/30 * * * *", "Europe/London", "2026-10-25T00:45:00+01:00", [
        "2026-10-25T01:00:00+01:00", "2026-10-25T01:30:00+01:00", "2026-10-25T01:00:00+00:00",
        "2026-10-25T01:30:00+00:00", "2026-10-25T02:00:00+00:00",
    ], id="fall_back_wildcard_london"),
    # Australia/Lord_Howe shifts 30 minutes: 02:00 -> 02:30 (+11) on 2026-10-04,
    # 02:00 (+11) -> 01:30 (+10:30) on 2026-04-05
    pytest.param("15 2 * * *", "Australia/Lord_Howe", "2026-10-03T12:00:00+10:30", [
        "2026-10-04T02:30:00+11:00", "2026-10-05T02:15:00+11:00",
    ], id="spring_skip_fixed_lord_howe"),
    pytest.param("*/10 * * * *", "Australia/Lord_Howe", "2026-10-04T01:55:00+10:30", [
        "2026-10-04T02:30:00+11:00", "2026-10-04T02:40:00+11:00",
    ], id="spring_wildcard_lord_howe"),
    pytest.param("45 1 * * *", "Australia/Lord_Howe", "2026-04-04T12:00:00+11:00", [
        "2026-04-05T01:45:00+11:00", "2026-04-06T01:45:00+10:30",
    ], id="fall_back_fixed_once_lord_howe"),
    pytest.param("*/15 * * * *", "Australia/Lord_Howe", "2026-04-05T01:20:00+11:00", [
        "2026-04-05T01:30:00+11:00", "2026-04-05T01:45:00+11:00", "2026-04-05T01:30:00+10:30",
        "2026-04-05T01:45:00+10:30", "2026-04-05T02:00:00+10:30",
    ], id="fall_back_wildcard_lord_howe"),
    # southern hemisphere: Sydney 03:00 (+11) -> 02:00 (+10) on 2026-04-05, 02:00 -> 03:00 on 10-04
    pytest.param("30 2 * * *", "Australia/Sydney", "2026-04-04T12:00:00+11:00", [
        "2026-04-05T02:30:00+11:00", "2026-04-06T02:30:00+10:00",
    ], id="fall_back_fixed_once_sydney"),
    pytest.param("30 2 * * *", "Australia/Sydney", "2026-10-03T12:00:00+10:00", [
        "2026-10-04T03:00:00+11:00", "2026-10-05T02:30:00+11:00",
    ], id="spring_skip_fixed_sydney"),
    # day rules
    pytest.param("0 0 1 * mon", "UTC", "2026-01-20T00:00:00+00:00", [
        "2026-01-26T00:00:00+00:00", "2026-02-01T00:00:00+00:00", "2026-02-02T00:00:00+00:00",
    ], id="dom_or_dow_when_both_restricted"),
    pytest.param("0 0 * * fri", "UTC", "2026-01-01T00:00:00+00:00", [
        "2026-01-02T00:00:00+00:00", "2026-01-09T00:00:00+00:00",
    ], id="dow_only"),
    pytest.param("0 0 13 * 5", "UTC", "2026-01-01T00:00:00+00:00", [
        "2026-01-02T00:00:00+00:00", "2026-01-09T00:00:00+00:00", "2026-01-13T00:00:00+00:00",
    ], id="friday_or_13th"),
    pytest.param("0 0 * * 7", "UTC", "2026-01-01T00:00:00+00:00", [
        "2026-01-04T00:00:00+00:00", "2026-01-11T00:00:00+00:00",
    ], id="dow_7_is_sunday"),
    pytest.param("0 0 29 2 *", "UTC", "2026-01-01T00:00:00+00:00", [
        "2028-02-29T00:00:00+00:00", "2032-02-29T00:00:00+00:00",
    ], id="feb_29_leap_years_only"),
    pytest.param("0 0 L * *", "UTC", "2026-01-15T00:00:00+00:00", [
        "2026-01-31T00:00:00+00:00", "2026-02-28T00:00:00+00:00", "2026-03-31T00:00:00+00:00",
        "2026-04-30T00:00:00+00:00",
    ], id="last_day_of_month"),
    pytest.param("0 0 L 2 *", "UTC", "2027-03-01T00:00:00+00:00", [
        "2028-02-29T00:00:00+00:00", "2029-02-28T00:00:00+00:00",
    ], id="last_day_of_february_leap_and_not"),
    pytest.param("0 0 1,L * *", "UTC", "2026-01-15T00:00:00+00:00", [
        "2026-01-31T00:00:00+00:00", "2026-02-01T00:00:00+00:00", "2026-02-28T00:00:00+00:00",
    ], id="first_and_last_day"),
    pytest.param("0 0 L * mon", "UTC", "2026-01-26T00:00:00+00:00", [
        "2026-01-31T00:00:00+00:00", "2026-02-02T00:00:00+00:00",
    ], id="last_day_or_monday"),
    # names, seconds, steps, instants
    pytest.param("0 9 * JUL-aug Mon-FRI", "UTC", "2026-01-01T00:00:00+00:00", [
        "2026-07-01T09:00:00+00:00", "2026-07-02T09:00:00+00:00", "2026-07-03T09:00:00+00:00",
        "2026-07-06T09:00:00+00:00",
    ], id="names_case_insensitive"),
    pytest.param("*/15 * * * * *", "UTC", "2026-01-01T00:00:00+00:00", [
        "2026-01-01T00:00:15+00:00", "2026-01-01T00:00:30+00:00", "2026-01-01T00:00:45+00:00",
        "2026-01-01T00:01:00+00:00",
    ], id="seconds_field_step"),
    pytest.param("30 0 12 * * *", "UTC", "2026-01-01T12:00:30+00:00", [
        "2026-01-02T12:00:30+00:00",
    ], id="seconds_first_and_strictly_after"),
    pytest.param("5/20 * * * *", "UTC", "2026-01-01T00:00:00.500000+00:00", [
        "2026-01-01T00:05:00+00:00", "2026-01-01T00:25:00+00:00", "2026-01-01T00:45:00+00:00",
        "2026-01-01T01:05:00+00:00",
    ], id="step_from_value_and_microsecond_after"),
    pytest.param("0 12 * * *", "America/New_York", "2026-06-01T20:00:00+00:00", [
        "2026-06-02T12:00:00-04:00",
    ], id="after_in_other_zone_result_in_job_zone"),
    pytest.param("0 0 31 12 *", "Asia/Kolkata", "2026-12-31T00:00:00+05:30", [
        "2027-12-31T00:00:00+05:30",
    ], id="yearly_far_jump_half_hour_zone"),
]
# fmt: on


@pytest.mark.parametrize(("expr", "zone", "after", "expected"), FIRE_CASES)
def test_cron_fires(expr: str, zone: str, after: str, expected: list[str]) -> None:
    assert fires(expr, zone, after, len(expected)) == expected


@pytest.mark.parametrize(
    ("zone", "after"),
    [
        pytest.param("America/New_York", "2026-03-08T01:30:00-05:00", id="ny_spring"),
        pytest.param("America/New_York", "2026-11-01T00:30:00-04:00", id="ny_fall"),
        pytest.param("Australia/Lord_Howe", "2026-10-04T01:30:00+10:30", id="lord_howe_spring"),
        pytest.param("Australia/Lord_Howe", "2026-04-05T01:00:00+11:00", id="lord_howe_fall"),
    ],
)
def test_every_minute_keeps_elapsed_spacing_through_dst(zone: str, after: str) -> None:
    got = utc(
        cron_fires(parse_cron("* * * * *"), datetime.fromisoformat(after), ZoneInfo(zone), 150)
    )
    assert {b - a for a, b in pairwise(got)} == {MINUTE}


def test_every_second_through_fall_back() -> None:
    after = datetime.fromisoformat("2026-11-01T01:59:00-04:00")
    got = cron_fires(parse_cron("* * * * * *"), after, NY, 180)
    assert got[59].isoformat() == "2026-11-01T01:00:00-05:00"
    got = utc(got)
    assert {b - a for a, b in pairwise(got)} == {timedelta(seconds=1)}


def _matches(c: Cron, t: datetime) -> bool:
    dom = t.day in c.days
    dow = (t.weekday() + 1) % 7 in c.weekdays
    day = (dom or dow) if c.day_restricted and c.weekday_restricted else (dom and dow)
    return day and t.month in c.months and t.hour in c.hours and t.minute in c.minutes


def _reference(c: Cron, tz: ZoneInfo, start: datetime, end: datetime) -> list[datetime]:
    """SPEC 5 by brute force over each UTC minute (5-field expressions without L)."""
    out = []
    u = start
    while u < end:
        local = u.astimezone(tz)
        old, new = (u - MINUTE).astimezone(tz).utcoffset(), local.utcoffset()
        wall = local.replace(tzinfo=None)
        if c.fixed_time and new > old:  # a gap ends at u: fixed times in it fire now
            gap, gap_end = (u + old).replace(tzinfo=None), (u + new).replace(tzinfo=None)
            while gap < gap_end and not _matches(c, gap):
                gap += MINUTE
            if gap < gap_end and not _matches(c, wall):
                out.append(u)
        if _matches(c, wall) and not (c.fixed_time and local.fold == 1):
            out.append(u)
        u += MINUTE
    return out


TRANSITIONS = [
    ("America/New_York", "2026-03-08T07:00:00+00:00"),
    ("America/New_York", "2026-11-01T06:00:00+00:00"),
    ("Europe/London", "2026-03-29T01:00:00+00:00"),
    ("Europe/London", "2026-10-25T01:00:00+00:00"),
    ("Australia/Lord_Howe", "2026-10-03T15:30:00+00:00"),
    ("Australia/Lord_Howe", "2026-04-04T15:00:00+00:00"),
    ("Australia/Sydney", "2026-04-04T16:00:00+00:00"),
    ("Australia/Sydney", "2026-10-03T16:00:00+00:00"),
]


@pytest.mark.parametrize(
    ("zone", "transition"), TRANSITIONS, ids=[f"{z}@{t[:10]}" for z, t in TRANSITIONS]
)
def test_matches_brute_force_reference_near_transitions(zone: str, transition: str) -> None:
    rng = random.Random(transition)
    tz, at = ZoneInfo(zone), datetime.fromisoformat(transition)
    start, end = at - timedelta(hours=3), at + timedelta(hours=3)
    minutes = ["*", "*/15", "*/7", "0", "30", "15,45", "0-59/20", "5-50/15", "29-31"]
    hours = ["*", "*/2", "1", "2", "1-3", "0-23/2", "1,2", "2-3", "*/3", "0-4"]
    for _ in range(8):
        expr = f"{rng.choice(minutes)} {rng.choice(hours)} * * *"
        c = parse_cron(expr)
        ours = []
        for f in cron_fires(c, start - timedelta(microseconds=1), tz, 500):
            if f >= end:
                break
            ours.append(f)
        assert utc(ours) == _reference(c, tz, start, end), expr


def test_reboot_never_fires() -> None:
    c = parse_cron("@reboot")
    assert c.reboot
    assert next_cron_fire(c, datetime(2026, 1, 1, tzinfo=UTC), UTC) is None
    assert cron_fires(c, datetime(2026, 1, 1, tzinfo=UTC), UTC, 3) == []


def test_naive_datetimes_are_refused() -> None:
    naive, aware = datetime(2026, 1, 1), datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="after must be an aware datetime"):
        next_cron_fire(parse_cron("* * * * *"), naive, UTC)
    with pytest.raises(ValueError, match="anchor must be an aware datetime"):
        next_every_fire(naive, 60, aware)
    with pytest.raises(ValueError, match="now must be an aware datetime"):
        parse_at("+5m", UTC, naive)


# --- parsing --------------------------------------------------------------------------------

MACROS = [
    pytest.param("@yearly", "0 0 1 1 *", id="yearly"),
    pytest.param("@annually", "0 0 1 1 *", id="annually"),
    pytest.param("@monthly", "0 0 1 * *", id="monthly"),
    pytest.param("@weekly", "0 0 * * 0", id="weekly"),
    pytest.param("@daily", "0 0 * * *", id="daily"),
    pytest.param("@midnight", "0 0 * * *", id="midnight"),
    pytest.param("@hourly", "0 * * * *", id="hourly"),
    pytest.param("@DAILY", "0 0 * * *", id="macro_case_insensitive"),
]


@pytest.mark.parametrize(("macro", "expansion"), MACROS)
def test_macros(macro: str, expansion: str) -> None:
    c = parse_cron(macro)
    assert c.expr == macro
    assert replace(c, expr=expansion) == parse_cron(expansion)


FIELD_CASES = [
    pytest.param("0 0 * * 5-7", "weekdays", {5, 6, 0}, id="dow_range_to_7"),
    pytest.param("0 0 * * fri-sun", "weekdays", {5, 6, 0}, id="dow_names_to_sunday"),
    pytest.param("0 0 * * 0,7", "weekdays", {0}, id="dow_0_and_7_same"),
    pytest.param("0 0 * * 1/2", "weekdays", {1, 3, 5}, id="dow_step_from_value"),
    pytest.param("5/20 * * * *", "minutes", {5, 25, 45}, id="minute_step_from_value"),
    pytest.param("10-30/10 * * * *", "minutes", {10, 20, 30}, id="range_step"),
    pytest.param("0 0 */10 * *", "days", {1, 11, 21, 31}, id="dom_star_step"),
    pytest.param("0 0 * jan,Mar,DEC *", "months", {1, 3, 12}, id="month_names"),
    pytest.param("0 0 * 11/1 *", "months", {11, 12}, id="month_step_from_value"),
    pytest.param("0 0 * * *", "seconds", {0}, id="five_fields_second_zero"),
    pytest.param("1,2 0 0 * * *", "seconds", {1, 2}, id="six_fields_seconds_first"),
    pytest.param("0 0 L * *", "days", set(), id="plain_L_has_no_numbered_days"),
]


@pytest.mark.parametrize(("expr", "attr", "values"), FIELD_CASES)
def test_field_values(expr: str, attr: str, values: set[int]) -> None:
    assert getattr(parse_cron(expr), attr) == values


FLAG_CASES = [
    # expr, fixed_time, day_restricted, weekday_restricted, last_day
    pytest.param("30 1 * * *", True, False, False, False, id="fixed"),
    pytest.param("0 0-23/2 * * *", True, False, False, False, id="fixed_range_step"),
    pytest.param("*/30 * * * *", False, False, False, False, id="wildcard_minutes"),
    pytest.param("0 */2 * * *", False, False, False, False, id="wildcard_hours"),
    pytest.param("* 30 1 * * *", True, False, False, False, id="seconds_do_not_count"),
    pytest.param("0 0 */2 * 1", True, False, True, False, id="star_step_dom_unrestricted"),
    pytest.param("0 0 1,L * *", True, True, False, True, id="last_day_in_list"),
    pytest.param("0 0 * * */2", True, False, False, False, id="star_step_dow_unrestricted"),
]


@pytest.mark.parametrize(("expr", "fixed", "dom_r", "dow_r", "last"), FLAG_CASES)
def test_flags(expr: str, fixed: bool, dom_r: bool, dow_r: bool, last: bool) -> None:
    c = parse_cron(expr)
    got = (c.fixed_time, c.day_restricted, c.weekday_restricted, c.last_day)
    assert got == (fixed, dom_r, dow_r, last)


ERROR_CASES = [
    pytest.param("61 * * * *", "minute 61 is out of range 0-59", id="minute_range"),
    pytest.param("0 24 * * *", "hour 24 is out of range 0-23", id="hour_range"),
    pytest.param("0 0 0 * *", "day-of-month 0 is out of range 1-31", id="dom_range"),
    pytest.param("0 0 * 13 *", "month 13 is out of range 1-12", id="month_range"),
    pytest.param("0 0 * * 8", "day-of-week 8 is out of range 0-7", id="dow_range"),
    pytest.param("60 * * * * *", "second 60 is out of range 0-59", id="second_range"),
    pytest.param("* * * *", "expected 5 fields", id="too_few_fields"),
    pytest.param("* * * * * * *", "got 7", id="too_many_fields"),
    pytest.param("", "got 0", id="empty"),
    pytest.param("@fortnightly", "unknown macro '@fortnightly'", id="unknown_macro"),
    pytest.param("0 0 15W * *", "'W' (nearest weekday) in '15W' is not supported", id="w"),
    pytest.param("0 0 LW * *", "'W' (nearest weekday)", id="lw"),
    pytest.param("0 0 * * 5#3", "'#' (nth weekday of the month) in '5#3'", id="hash"),
    pytest.param("0 0 ? * *", "'?' in '?' is not supported", id="question_mark"),
    pytest.param("H * * * *", "'H' (hashed value)", id="jenkins_h"),
    pytest.param("0 0 * * 5L", "'L' in '5L' is only supported in the day-of-month", id="l_dow"),
    pytest.param("L * * * *", "'L' in 'L' is only supported in the day-of-month", id="l_min"),
    pytest.param("0 0 L-2 * *", "only a plain 'L' is supported", id="l_offset"),
    pytest.param("0 0 30 2 *", "it can never fire: day 30 never occurs in February", id="feb30"),
    pytest.param("0 0 31 4,6 *", "day 31 never occurs in April and June", id="apr_jun_31"),
    pytest.param("*/0 * * * *", "minute step '0' in '*/0' must be", id="step_zero"),
    pytest.param("*/x * * * *", "minute step 'x'", id="step_not_number"),
    pytest.param("5-1 * * * *", "minute range '5-1' is backwards", id="reversed_range"),
    pytest.param("x * * * *", "minute 'x' is not a number", id="not_a_number"),
    pytest.param("0 0 * foo *", "month 'foo' is not a number or a name", id="bad_month_name"),
    pytest.param("0 0 * * mon-xyz", "day-of-week 'xyz' is not a number or a name", id="bad_dow"),
    pytest.param("1,,2 * * * *", "has an empty list item", id="empty_list_item"),
    pytest.param("1.5 * * * *", "minute value '1.5' is not valid", id="decimal"),
]


@pytest.mark.parametrize(("expr", "message"), ERROR_CASES)
def test_cron_errors(expr: str, message: str) -> None:
    with pytest.raises(ScheduleError) as info:
        parse_cron(expr)
    text = str(info.value)
    assert text.startswith(f"invalid cron expression '{expr}': ")
    assert message in text
    assert "\n" not in text


def test_error_message_verbatim() -> None:
    with pytest.raises(ScheduleError) as info:
        parse_cron("61 * * * *")
    assert str(info.value) == "invalid cron expression '61 * * * *': minute 61 is out of range 0-59"


@pytest.mark.parametrize(
    "expr",
    [
        pytest.param("0 0 30 2 1", id="feb30_or_monday_can_fire"),
        pytest.param("0 0 */30 2 *", id="feb_day_1_via_step"),
        pytest.param("0 0 31 1-12 *", id="31_in_some_months"),
        pytest.param("0 0 1 JUL *", id="name_with_L"),
        pytest.param("0 0 * * wed,THU", id="names_with_W_and_H"),
    ],
)
def test_accepted(expr: str) -> None:
    parse_cron(expr)


# --- durations, zones, --at, --every ---------------------------------------------------------

DURATIONS = [
    pytest.param("500ms", 0.5, id="ms"),
    pytest.param("30s", 30.0, id="s"),
    pytest.param("5m", 300.0, id="m"),
    pytest.param("2h", 7200.0, id="h"),
    pytest.param("1d", 86400.0, id="d"),
    pytest.param("1h30m", 5400.0, id="h_m"),
    pytest.param("1d2h3m4s500ms", 93784.5, id="all_units"),
    pytest.param("90", 90.0, id="bare_seconds"),
    pytest.param("1.5", 1.5, id="bare_decimal"),
    pytest.param("1.5h", 5400.0, id="decimal_unit"),
    pytest.param("0", 0.0, id="zero"),
    pytest.param(" 10S ", 10.0, id="spaces_and_case"),
]


@pytest.mark.parametrize(("text", "seconds"), DURATIONS)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("abc", id="letters"),
        pytest.param("-5s", id="negative"),
        pytest.param("5x", id="unknown_unit"),
        pytest.param("1m1h", id="units_out_of_order"),
        pytest.param("1h1h", id="unit_twice"),
        pytest.param("5 m", id="inner_space"),
        pytest.param("inf", id="inf"),
        pytest.param("h", id="unit_only"),
    ],
)
def test_parse_duration_errors(text: str) -> None:
    with pytest.raises(ScheduleError) as info:
        parse_duration(text)
    assert str(info.value) == (
        f"invalid duration '{text}': use e.g. 30s, 5m, 2h, 1h30m, 1w or a number of seconds"
    )


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        pytest.param(5400, "1h30m", id="h_m"),
        pytest.param(0.5, "500ms", id="ms"),
        pytest.param(86400, "1d", id="d"),
        pytest.param(90, "1m30s", id="m_s"),
        pytest.param(0, "0s", id="zero"),
        pytest.param(93784.5, "1d2h3m4s500ms", id="all_units"),
        pytest.param(1.0004, "1s", id="rounds_to_ms"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == round(seconds, 3)


def test_parse_zone() -> None:
    assert parse_zone("Europe/London") == ZoneInfo("Europe/London")


@pytest.mark.parametrize("name", ["Mars/Base", "../etc/passwd", "", "/etc/localtime", "Europe"])
def test_parse_zone_errors(name: str) -> None:
    with pytest.raises(ScheduleError) as info:
        parse_zone(name)
    assert str(info.value) == f"unknown time zone '{name}'"


NOW = datetime.fromisoformat("2026-06-01T12:00:00+00:00")

AT_CASES = [
    pytest.param("+5m", "2026-06-01T08:05:00-04:00", id="relative"),
    pytest.param("+1h30m", "2026-06-01T09:30:00-04:00", id="relative_compound"),
    pytest.param("2026-12-01T09:00", "2026-12-01T09:00:00-05:00", id="naive_in_zone"),
    pytest.param("2026-12-01 09:00:00", "2026-12-01T09:00:00-05:00", id="space_separator"),
    pytest.param("2026-12-01T09:00+02:00", "2026-12-01T02:00:00-05:00", id="offset"),
    pytest.param("2026-12-01T14:00:00Z", "2026-12-01T09:00:00-05:00", id="zulu"),
    pytest.param("2026-12-01", "2026-12-01T00:00:00-05:00", id="date_only_midnight"),
    pytest.param("2026-03-08T02:30", "2026-03-08T03:00:00-04:00", id="nonexistent_after_gap"),
    pytest.param("2026-11-01T01:30", "2026-11-01T01:30:00-04:00", id="ambiguous_first"),
]


@pytest.mark.parametrize(("text", "expected"), AT_CASES)
def test_parse_at(text: str, expected: str) -> None:
    assert parse_at(text, NY, NOW).isoformat() == expected


@pytest.mark.parametrize("text", ["tomorrow", "+abc", "+", "", "2026-13-01", "12/01/2026"])
def test_parse_at_errors(text: str) -> None:
    with pytest.raises(ScheduleError) as info:
        parse_at(text, NY, NOW)
    assert str(info.value) == (
        f"invalid time '{text}': use ISO 8601 (2026-12-01T09:00) or +DURATION"
    )


def test_every_crosses_dst_with_constant_elapsed_spacing() -> None:
    anchor = datetime(2026, 3, 7, 12, 0, tzinfo=NY)
    got, after = [], anchor
    for _ in range(6):
        after = next_every_fire(anchor, 6 * 3600, after)
        got.append(after)
    assert [g.isoformat() for g in got] == [
        "2026-03-07T18:00:00-05:00",
        "2026-03-08T00:00:00-05:00",
        "2026-03-08T07:00:00-04:00",
        "2026-03-08T13:00:00-04:00",
        "2026-03-08T19:00:00-04:00",
        "2026-03-09T01:00:00-04:00",
    ]


@pytest.mark.parametrize(
    ("after", "interval", "expected"),
    [
        pytest.param("2026-01-01T00:00:00+00:00", 60, "2026-01-01T10:00:00+00:00", id="before"),
        pytest.param("2026-01-01T10:00:00+00:00", 60, "2026-01-01T10:01:00+00:00", id="at_anchor"),
        pytest.param("2026-01-01T10:01:00+00:00", 60, "2026-01-01T10:02:00+00:00", id="on_fire"),
        pytest.param("2026-01-01T10:00:00.7+00:00", 0.5, "2026-01-01T10:00:01+00:00", id="half"),
        pytest.param("2026-01-08T09:59:59+00:00", 86400, "2026-01-08T10:00:00+00:00", id="days"),
    ],
)
def test_next_every_fire(after: str, interval: float, expected: str) -> None:
    anchor = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
    assert next_every_fire(anchor, interval, datetime.fromisoformat(after)).isoformat() == expected


def test_next_every_fire_rejects_non_positive_interval() -> None:
    with pytest.raises(ScheduleError):
        next_every_fire(NOW, 0, NOW)


# --- readings and warnings -------------------------------------------------------------------

DESCRIPTIONS = [
    pytest.param("*/5 * * * *", "every 5 minutes", id="every_5_minutes"),
    pytest.param("* * * * *", "every minute", id="every_minute"),
    pytest.param("30 1 * * *", "at 01:30 every day", id="daily_time"),
    pytest.param("0 9 * * mon-fri", "at 09:00 on Monday to Friday", id="weekdays"),
    pytest.param("@hourly", "every hour at minute 0", id="hourly"),
    pytest.param("0 0 1 * *", "at 00:00 on day 1 of the month", id="monthly"),
    pytest.param("*/10 * * * * *", "every 10 seconds", id="seconds"),
    pytest.param("@reboot", "when the runner starts", id="reboot"),
    pytest.param("0 0 L * *", "at 00:00 on the last day of the month", id="last_day"),
    pytest.param("0 0 1 * mon", "at 00:00 on day 1 of the month or on Monday", id="or_rule"),
    pytest.param("@yearly", "at 00:00 on 1 January", id="yearly"),
    pytest.param("@weekly", "at 00:00 on Sunday", id="weekly"),
    pytest.param("0 */2 * * *", "every 2 hours at minute 0", id="every_2_hours"),
    pytest.param("0,30 9 * * *", "at 09:00 and 09:30 every day", id="two_times"),
    pytest.param("15 30 1 * * *", "at 01:30:15 every day", id="time_with_seconds"),
    pytest.param(
        "*/15 9-17 * * 1-5",
        "every 15 minutes during hours 9 to 17 on Monday to Friday",
        id="office_hours",
    ),
    pytest.param("0 12 * 1-3 *", "at 12:00 every day in January to March", id="months"),
    pytest.param(
        "0 0 */2 * 1",
        "at 00:00 on every 2nd day of the month if it is a Monday",
        id="and_rule",
    ),
]


@pytest.mark.parametrize(("expr", "text"), DESCRIPTIONS)
def test_describe_cron(expr: str, text: str) -> None:
    assert describe_cron(parse_cron(expr)) == text


@pytest.mark.parametrize(
    "expr",
    ["5-50/7,1 3/5 1-10/3,L * 0-2,fri", "*/7 1-2/1 * 2-11/3 */3", "1,2,3 */5 1 1 1", "59 23 L 2 *"],
)
def test_describe_never_raises(expr: str) -> None:
    assert describe_cron(parse_cron(expr))


WARNINGS = [
    pytest.param(
        "30 1 * * *",
        "America/New_York",
        "warning: 01:30 happens twice on 2026-11-01 in America/New_York (DST ends); "
        "the job fires once, at 01:30 EDT",
        id="fall_back_ny",
    ),
    pytest.param(
        "30 2 * * *",
        "America/New_York",
        "warning: 02:30 does not exist on 2026-03-08 in America/New_York (DST starts); "
        "the job fires at 03:00 EDT",
        id="spring_forward_ny",
    ),
    pytest.param(
        "0,30 1,2 * * *",
        "America/New_York",
        "warning: 02:00 and 02:30 do not exist on 2026-03-08 in America/New_York (DST starts); "
        "the job fires once, at 03:00 EDT. 01:00 and 01:30 happen twice on 2026-11-01 in "
        "America/New_York (DST ends); the job fires once at each, in EDT",
        id="both_kinds_ny",
    ),
    pytest.param(
        "45 1 * * *",
        "Australia/Lord_Howe",
        "warning: 01:45 happens twice on 2026-04-05 in Australia/Lord_Howe (DST ends); "
        "the job fires once, at 01:45 +11",
        id="fall_back_lord_howe",
    ),
    pytest.param(
        "30 1 * * 0",
        "America/New_York",
        "warning: 01:30 happens twice on 2026-11-01 in America/New_York (DST ends); "
        "the job fires once, at 01:30 EDT",
        id="sunday_job_on_sunday_transition",
    ),
    pytest.param("*/30 * * * *", "America/New_York", None, id="wildcard_no_warning"),
    pytest.param("0 * * * *", "America/New_York", None, id="hourly_wildcard_no_warning"),
    pytest.param("30 1 * * 1", "America/New_York", None, id="not_on_transition_weekday"),
    pytest.param("30 1 * * *", "UTC", None, id="utc"),
    pytest.param("30 3 * * *", "America/New_York", None, id="outside_affected_hours"),
    pytest.param("@reboot", "America/New_York", None, id="reboot"),
]


@pytest.mark.parametrize(("expr", "zone", "expected"), WARNINGS)
def test_dst_warning(expr: str, zone: str, expected: str | None) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert dst_warning(parse_cron(expr), ZoneInfo(zone), now) == expected


@pytest.mark.parametrize("tz", [UTC, timezone(timedelta(hours=5, minutes=30))], ids=str)
def test_no_dst_warning_in_a_fixed_offset(tz: timezone) -> None:
    for expr in ("30 1 * * *", "0,30 1,2 * * *", "0 2 8 3 *"):
        assert dst_warning(parse_cron(expr), tz, datetime(2026, 1, 1, tzinfo=UTC)) is None


def test_month_days_and_weekdays_are_the_calendars() -> None:
    """schedule counts a month's days and a date's weekday itself (calendar imports locale):
    checked against calendar on every month of 1583-2500 and the years' ends."""
    import calendar

    from jobctl.schedule import _month_days

    for y in [*range(1583, 2501), 1, 4, 100, 400, 9999]:
        for mo in range(1, 13):
            assert _month_days(y, mo) == calendar.monthrange(y, mo)[1], (y, mo)
    # the weekday a day-of-week field matches: 2026-03-01 is a Sunday (cron's 0, and 7)
    assert fires("0 0 * * 0", "UTC", "2026-02-23T00:00:00+00:00", 2) == fires(
        "0 0 * * 7", "UTC", "2026-02-23T00:00:00+00:00", 2
    )
    assert fires("0 0 * * 0", "UTC", "2026-02-23T00:00:00+00:00", 1)[0].startswith("2026-03-01")
    assert fires("0 0 29 2 *", "UTC", "2026-01-01T00:00:00+00:00", 1)[0].startswith("2028-02-29")
    assert fires("0 0 L 2 *", "UTC", "2099-03-01T00:00:00+00:00", 2)[1].startswith("2101-02-28")


def test_dst_warning_looks_only_366_days_ahead() -> None:
    nov5 = parse_cron("30 1 5 11 *")  # New York falls back on 2028-11-05, not in 2026 or 2027
    assert dst_warning(nov5, NY, datetime(2026, 11, 2, tzinfo=UTC)) is None
    assert "on 2028-11-05" in (dst_warning(nov5, NY, datetime(2027, 11, 10, tzinfo=UTC)) or "")


AT_WARNINGS = [
    pytest.param("2027-03-14T02:30", "America/New_York",
                 "warning: 02:30 does not exist on 2027-03-14 in America/New_York (DST starts); "
                 "the job fires at 03:00 EDT", id="gap"),
    pytest.param("2027-11-07T01:30", "America/New_York",
                 "warning: 01:30 happens twice on 2027-11-07 in America/New_York (DST ends); "
                 "the job fires once, at 01:30 EDT", id="repeated_hour"),
    pytest.param("2027-11-07T01:30:15", "America/New_York",
                 "warning: 01:30:15 happens twice on 2027-11-07 in America/New_York (DST ends); "
                 "the job fires once, at 01:30:15 EDT", id="seconds"),
    pytest.param("2027-11-07T01:30-05:00", "America/New_York", None, id="offset_names_one"),
    pytest.param("2027-11-07T01:30Z", "America/New_York", None, id="utc_names_one"),
    pytest.param("2027-11-08T01:30", "America/New_York", None, id="ordinary_day"),
    pytest.param("2027-03-14T03:00", "America/New_York", None, id="gap_end_exists"),
    pytest.param("2027-03-14T01:59", "America/New_York", None, id="before_gap"),
    pytest.param("+1h", "America/New_York", None, id="relative"),
    pytest.param("2027-11-07T01:30", "UTC", None, id="utc_zone"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "zone", "expected"), AT_WARNINGS)
def test_at_dst_warning(text: str, zone: str, expected: str | None) -> None:
    assert at_dst_warning(text, ZoneInfo(zone)) == expected


@pytest.mark.parametrize("text", ["0001-01-01T00:00", "0001-06-01", "0001-12-31T23:59Z"])
def test_parse_at_refuses_the_first_year(text: str) -> None:
    """A search from year 1 found nothing (`next --from 0001-01-01` printed []): refused."""
    with pytest.raises(ScheduleError, match="out of the supported range"):
        parse_at(text, NY, NOW)
    assert parse_at("0002-01-01T00:00", NY, NOW).year == 2


@pytest.mark.parametrize("name", ["UTC", "Etc/UTC"])
@pytest.mark.parametrize("expr", ["*/7 * * * *", "0 3 * * 1-5", "30 2 29 2 *", "@hourly"])
def test_utc_is_datetimes_own_and_fires_as_the_tz_databases_utc(name: str, expr: str) -> None:
    """parse_zone("UTC") and parse_zone("Etc/UTC") are datetime.UTC (no tz database read at
    start-up, issue 13): the same fires, written the same way, as zoneinfo's zone."""
    assert parse_zone(name) is UTC
    cron, after = parse_cron(expr), datetime(2026, 3, 1, 12, 0, 7, tzinfo=UTC)
    ours = cron_fires(cron, after, parse_zone(name), 12)
    theirs = cron_fires(cron, after, ZoneInfo(name), 12)
    assert ours == theirs and len(ours) == 12
    assert [d.isoformat() for d in ours] == [d.isoformat() for d in theirs]
    assert {d.tzname() for d in ours} == {d.tzname() for d in theirs} == {"UTC"}
