"""Option values (jobctl/inputs.py) and the one place a ScheduleError becomes a UsageError."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from jobctl.errors import UsageError
from jobctl.inputs import option_duration, parse_int, schedule_input
from jobctl.schedule import ScheduleError

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("text", "value"), [("0", 0), ("20", 20), (" 7 ", 7), (5, 5)], ids=str)
def test_parse_int_takes_whole_numbers(text, value) -> None:
    assert parse_int(text, "-n") == value


@pytest.mark.parametrize("text", ["-1", "+3", "1_000", "٣", "2.5", "", "x", "9" * 5000])
def test_parse_int_refuses_naming_the_option_and_value(text: str) -> None:
    with pytest.raises(UsageError, match=r"^invalid -n '.*': use a whole number from 0 to"):
        parse_int(text, "-n")


def test_option_duration_prefixes_the_option() -> None:
    assert option_duration("1h 30m", "--since") == 5400.0
    with pytest.raises(UsageError, match=r"^--since: invalid duration 'soon'"):
        option_duration("soon", "--since")
    with pytest.raises(UsageError, match=r"^--every: invalid duration '0s': must be greater"):
        option_duration("0s", "--every", allow_zero=False)


def test_schedule_input_turns_only_schedule_errors_into_usage_errors() -> None:
    with pytest.raises(UsageError) as caught, schedule_input():
        raise ScheduleError("unknown time zone 'Mars/Base'")
    assert str(caught.value) == "unknown time zone 'Mars/Base'" and caught.value.exit_code == 2
    assert isinstance(caught.value.__cause__, ScheduleError)
    with pytest.raises(UsageError, match=r"^job 'x': bad$"), schedule_input("job 'x'"):
        raise ScheduleError("bad")
    with pytest.raises(KeyError), schedule_input():  # anything else passes through
        raise KeyError("k")


def test_one_place_turns_a_schedule_error_into_a_usage_error() -> None:
    """No module but jobctl/inputs.py catches a ScheduleError to raise a UsageError (the job
    file and crontab readers report theirs with a line number, as their own errors)."""
    offenders = []
    for path in sorted((ROOT / "jobctl").rglob("*.py")):
        text = path.read_text()
        for m in re.finditer(
            r"except (?:schedule\.)?ScheduleError[^\n]*\n((?:[^\n]*\n){1,2})", text
        ):
            if "UsageError" in m.group(1):
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []
