"""The one reader of Linux's /proc: a process's state, parent, group and start time, its
children and its environment, and the pids alive now.

/proc/PID/stat is parsed here and nowhere else: its second field (comm, the program's name)
may hold spaces and parentheses, so the fields are read after the last ')'. Every reader
returns None (or nothing) for a process that is gone or unreadable, never raises for that.
"""

from __future__ import annotations

import os
from collections.abc import Iterator


class Stat:
    """Fields 3, 4, 5 and 22 of /proc/PID/stat. (A plain class, not a typing.NamedTuple, which
    compiles its string annotations when made: start-up time, issue 13.)"""

    __slots__ = ("pgrp", "ppid", "start", "state")

    def __init__(self, state: bytes, ppid: int, pgrp: int, start: int) -> None:
        self.state = state  # b"R", b"S", ..., b"Z" for a zombie
        self.ppid = ppid
        self.pgrp = pgrp
        self.start = start  # start time in clock ticks since boot: with the pid, names one process

    def __repr__(self) -> str:
        return f"Stat(state={self.state!r}, ppid={self.ppid}, pgrp={self.pgrp}, start={self.start})"


def stat(pid: int | str) -> Stat | None:
    """The process's Stat, None if it is gone or unreadable."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return Stat(fields[0], int(fields[1]), int(fields[2]), int(fields[19]))
    except (OSError, IndexError, ValueError):
        return None


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot, None if it is gone."""
    st = stat(pid)
    return st.start if st else None


def children(pid: int) -> list[int]:
    """The children of the process's main thread; empty if gone or the kernel lacks the file
    (/proc/PID/task/PID/children, CONFIG_PROC_CHILDREN)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children", "rb") as f:
            return [int(p) for p in f.read().split()]
    except (OSError, ValueError):
        return []


def environ(pid: int | str) -> set[bytes]:
    """The process's environment as a set of `NAME=value` entries; empty if gone, or another
    user's (or a setuid program's)."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return set(f.read().split(b"\0"))
    except OSError:
        return set()


def pids() -> Iterator[str]:
    """The pids in /proc now, as the names of their folders."""
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            yield entry.name


def boot_id() -> str | None:
    """This boot of the machine, None where unknown."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip() or None
    except OSError:
        return None
