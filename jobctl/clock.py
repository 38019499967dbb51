"""The clock seam: everything that needs "now" takes a Clock (or a `now` argument).

SystemClock reads the wall clock; FakeClock is for tests. `local_zone_name` finds the
system's IANA zone, the default of `--tz`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Wall-clock seconds since the epoch."""
        ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class FakeClock:
    """A clock that moves only when told to (sleep advances it instantly)."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.t = start

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += max(0.0, seconds)

    def advance(self, seconds: float) -> None:
        self.t += seconds


def _is_zone(name: str) -> bool:
    from zoneinfo import ZoneInfo

    try:
        ZoneInfo(name)
    except (ValueError, OSError, KeyError):  # ZoneInfoNotFoundError is a KeyError
        return False
    return True


def local_zone_name() -> str:
    """The system's IANA zone: $TZ, /etc/localtime's target, /etc/timezone, else UTC."""
    tz = os.environ.get("TZ", "").lstrip(":")
    if "zoneinfo/" in tz:  # TZ=/usr/share/zoneinfo/Asia/Tokyo
        tz = tz.split("zoneinfo/", 1)[1]
    if tz and _is_zone(tz):  # POSIX rule strings (CET-1CEST,...) fall through to the system's
        return tz
    try:
        target = os.readlink("/etc/localtime")
        marker = "zoneinfo/"
        if marker in target:
            return target.split(marker, 1)[1]
    except OSError:
        pass
    try:
        name = Path("/etc/timezone").read_text().strip()
        if name:
            return name
    except OSError:
        pass
    return "UTC"
