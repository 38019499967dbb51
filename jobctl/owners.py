"""Who owns a running run, whether that owner is still alive, and how to nudge it.

An owner is a runner or a foreground `jobctl run`, named "host:pid:start" where start is the
process start time (so that a reused pid is never taken for the owner). Commands that change
what a runner should do (add, edit, resume, run --detach, retry, cancel) nudge it with SIGUSR1
so that it looks at the store at once instead of at its next poll.
"""

from __future__ import annotations

import os
from functools import cache
from typing import TYPE_CHECKING

from jobctl import procfs
from jobctl.procfs import start_time as proc_start_time

if TYPE_CHECKING:
    from jobctl.store.base import Store

__all__ = ["proc_start_time"]  # procfs's reader, under the name callers know

# the interpreter's own signal module gives the same number: signal.py makes enums at import,
# 0.7 ms of every command that reads runners (issue 13)
try:
    from _signal import SIGUSR1 as NUDGE  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover (a Python without it)
    from signal import SIGUSR1 as NUDGE


@cache
def host() -> str:
    """This machine's name, or JOBCTL_HOST (a container whose name is not the host's, or
    several runners on one machine playing a fleet in tests)."""
    # uname's node name is what gethostname() returns, without importing socket (every
    # command that reads runners asks)
    return os.environ.get("JOBCTL_HOST") or os.uname().nodename


def me() -> str:
    pid = os.getpid()
    return f"{host()}:{pid}:{proc_start_time(pid)}"


def parse(owner: str) -> tuple[str, int, int | None]:
    h, pid, start = owner.rsplit(":", 2)
    return h, int(pid), None if start == "None" else int(start)


def alive(owner: str | None) -> bool:
    """True if `owner`'s process is alive: same pid with the same start time.

    The host part is not consulted: a SQLite store serves one machine, whose name may change
    (a container recreated on the same volume, a renamed laptop); an owner recorded under the
    old name is judged by its pid and start time like any other. (A shared PostgreSQL store
    will use leases instead.)
    """
    if not owner:
        return False
    try:
        _, pid, start = parse(owner)
    except ValueError:
        return False
    stat = procfs.stat(pid)  # a zombie (killed, not yet reaped) is not alive
    return start is not None and stat is not None and stat.state != b"Z" and stat.start == start


def nudge(owner: str | None) -> bool:
    """Send SIGUSR1 to a live owner on this host; True if sent."""
    if not owner or not alive(owner):
        return False
    _, pid, _ = parse(owner)
    try:
        os.kill(pid, NUDGE)
    except OSError:
        return False
    return True


def nudge_runner(store: Store) -> None:
    """Tell the runner (if one is up on this host) to look at the store now. A shared store's
    runners hear every change by notification (LISTEN/NOTIFY), on any machine."""
    if store.shared:
        return
    info = store.runner_info()
    if info is not None:
        nudge(info.owner)
