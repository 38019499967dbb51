"""The clock seam: everything that needs "now" takes a Clock (or a `now` argument).

SystemClock reads the wall clock; FakeClock is for tests. `local_zone_name` finds the
system's IANA zone, the default of `--tz`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
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


#: a clock reading of the store whose round trip took longer than this (or than twice the
#: fastest seen, on a slow link) is not used unless it is all there is: the reading may have
#: been taken anywhere in a slow round trip (a network stall, a partition that just healed),
#: and jobs would start late by up to the whole trip
MAX_SAMPLE_RTT_S = 0.25


class OffsetClock:
    """Another clock plus an offset: a runner on a shared store reads the store's clock this
    way (the offset is measured at each lease renewal), so that a machine whose own clock is
    off still fires on time; the loop keeps reading a Clock, and tests keep FakeClock."""

    def __init__(self, base: Clock, offset: float = 0.0) -> None:
        self.base = base
        self.offset = offset
        self.synced = False  # an offset has been measured
        self.best_rtt = float("inf")

    def sample(self, read_remote: Callable[[], float], force: bool = False) -> bool:
        """Measure the offset with one reading of the remote clock, taken as read at the
        end of its round trip (the latest it can have been read): our estimate of the remote
        clock is then never ahead of it, so a fire gated on it never starts early by the
        store's clock (the midpoint put it up to half a round trip ahead: 1.7 ms early on a
        busy machine), and is late by at most the round trip. A reading with a slow round
        trip (see MAX_SAMPLE_RTT_S) is dropped unless `force`, and the previous offset
        stays. True if it was used."""
        t0 = time.monotonic()
        remote = read_remote()
        # our clock read once, after the remote one: two readings of ours (the clock, then
        # the wall clock to compare) could straddle a pause of this thread, and the offset
        # would be ahead by its length
        local = self.base.now()
        rtt = time.monotonic() - t0
        self.best_rtt = min(self.best_rtt, rtt)
        if not force and rtt > max(MAX_SAMPLE_RTT_S, 2 * self.best_rtt):
            return False
        self.offset = remote - local
        self.synced = True
        return True

    def now(self) -> float:
        return self.base.now() + self.offset

    def sleep(self, seconds: float) -> None:
        self.base.sleep(seconds)


class SkewedClock(SystemClock):
    """The wall clock plus a fixed error (JOBCTL_TEST_CLOCK_SKEW): how tests play a machine
    whose clock is off."""

    def __init__(self, skew_s: float) -> None:
        self.skew_s = skew_s

    def now(self) -> float:
        return time.time() + self.skew_s


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


#: zones that are datetime's UTC, known without reading the tz database (2 ms of a command's
#: start-up, issue 13): UTC, every job's default, and Etc/UTC, the local zone of many servers
#: (jobctl/schedule.py, pure, has its own copy)
UTC_NAMES = frozenset({"UTC", "Etc/UTC"})


def _is_zone(name: str) -> bool:
    if name in UTC_NAMES:
        return True
    from zoneinfo import ZoneInfo

    try:
        ZoneInfo(name)
    except (ValueError, OSError, KeyError):  # ZoneInfoNotFoundError is a KeyError
        return False
    return True


#: files of the tz database that are not zones of the world: the machine's own setting (its
#: meaning differs from machine to machine of a fleet), POSIX defaults, a placeholder; and
#: `right/` zones count leap seconds (their clocks run 27 s off the system's)
NOT_ZONES = frozenset({"localtime", "posixrules", "Factory"})


def off_world(name: str) -> bool:
    """Whether `name` is one of the tz database's files a job may not have as its zone."""
    return name in NOT_ZONES or name.startswith("right/")


def world_zone(name: str) -> bool:
    """Whether `name` is a zone a job may have: an IANA zone, not off_world."""
    return not off_world(name) and _is_zone(name)


def local_iana_zone() -> str | None:
    """The local zone's IANA name when it is known for sure: $TZ naming one, else the target
    of the /etc/localtime link. None when $TZ is a POSIX rule or a file of its own, or when
    /etc/localtime is a copied file: then only the C library knows the local time."""
    tz = os.environ.get("TZ")
    if tz is not None:
        tz = tz.lstrip(":")
        if "zoneinfo/" in tz:  # TZ=/usr/share/zoneinfo/Asia/Tokyo
            tz = tz.split("zoneinfo/", 1)[1]
        return tz if tz and world_zone(tz) else None
    try:
        target = os.readlink("/etc/localtime")
    except OSError:
        return None
    name = target.split("zoneinfo/", 1)[1] if "zoneinfo/" in target else ""
    return name if name and world_zone(name) else None


def local_zone_name() -> str:
    """The default of --tz: the local IANA zone, else /etc/timezone, else UTC (a job's zone
    must be an IANA name, so a POSIX $TZ rule falls back to the system's setting)."""
    name = local_iana_zone()
    if name:
        return name
    try:
        target = os.readlink("/etc/localtime")
        if "zoneinfo/" in target and world_zone(target.split("zoneinfo/", 1)[1]):
            return target.split("zoneinfo/", 1)[1]
    except OSError:
        pass
    try:
        name = Path("/etc/timezone").read_text().strip()
        if name and world_zone(name):
            return name
    except OSError:
        pass
    return "UTC"
