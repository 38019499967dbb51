"""The runner's file lock: one active runner per SQLite store (SPEC 7).

The lock is an flock on `<database>.runner.lock`, held for the runner's lifetime and released
by the kernel when the process dies (kill -9 included), so a crash never leaves a stale lock.
"""

from __future__ import annotations

import os
from pathlib import Path

from filelock import FileLock, Timeout


class RunnerLock:
    def __init__(self, db_path: Path) -> None:
        # realpath: a symlinked or relative spelling of the same store must find the same lock
        self.path = Path(os.path.realpath(db_path) + ".runner.lock")
        self._lock = FileLock(str(self.path), mode=0o600)

    def try_acquire(self) -> bool:
        """Take the lock if it is free; False if another runner holds it."""
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            return False
        return True

    def wait(self, poll_s: float = 0.5) -> None:
        """Block until the lock is ours (`runner --wait`); polls at a modest rate."""
        self._lock.acquire(timeout=-1, poll_interval=poll_s)

    def release(self) -> None:
        if self._lock.is_locked:
            self._lock.release()
