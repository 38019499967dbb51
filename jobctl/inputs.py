"""Plain option values as users type them (whole numbers, durations) and the one place where
a ScheduleError (bad schedule input: cron, zone, duration, time) becomes a UsageError (exit 2).

Light on purpose: commands such as `history -n 5` parse their values here without importing
the schedule engine (imported only when a duration or a schedule is read).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from jobctl.errors import UsageError

MAX_COUNT = 1_000_000_000
MAX_DURATION_S = 100 * 365 * 86400.0  # a century: beyond it, time arithmetic overflows
MIN_INTERVAL_S = 0.001


@contextmanager
def schedule_input(what: str | None = None) -> Iterator[None]:
    """Within it, a ScheduleError is bad usage: UsageError with the same line, prefixed with
    `what` (the option) when given."""
    try:
        yield
    except Exception as exc:
        from jobctl.schedule import ScheduleError

        if not isinstance(exc, ScheduleError):
            raise
        raise UsageError(f"{what}: {exc}" if what else str(exc)) from exc


def parse_int(text: str | int, what: str, minimum: int = 0, maximum: int = MAX_COUNT) -> int:
    """A whole number within bounds, or UsageError naming the option and the value."""
    digits = str(text).strip()
    try:  # ASCII digits only: int() alone would take '٣', '+3' and '1_000'
        value: int | None = int(digits) if digits.isascii() and digits.isdigit() else None
    except ValueError:  # more digits than int() converts
        value = None
    if value is None or not minimum <= value <= maximum:
        raise UsageError(
            f"invalid {what} {str(text)!r}: use a whole number from {minimum} to {maximum}"
        )
    return value


def option_duration(text: str, what: str, allow_zero: bool = True) -> float:
    """A duration option (`--since 2h`, `--every 1h 30m`) in seconds, within bounds."""
    from jobctl import schedule

    with schedule_input(what):
        value = schedule.parse_duration(text)
    if value < 0 or (value == 0 and not allow_zero):
        raise UsageError(f"{what}: invalid duration {text!r}: must be greater than zero")
    if value > MAX_DURATION_S:
        raise UsageError(f"{what}: invalid duration {text!r}: at most 100 years")
    if not allow_zero and value < MIN_INTERVAL_S:
        raise UsageError(f"{what}: invalid duration {text!r}: at least 1ms")
    return value
