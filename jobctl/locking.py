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
        self._held = self._identity()
        return True

    def wait(self, poll_s: float = 0.5) -> None:
        """Block until the lock is ours (`runner --wait`); polls at a modest rate."""
        self._lock.acquire(timeout=-1, poll_interval=poll_s)
        self._held = self._identity()

    def _identity(self) -> tuple[int, int] | None:
        """(device, inode) of the lock file; None if it is gone. Another error reading it
        (EACCES, EIO...) gives what we hold: only a deleted or replaced file counts."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        except OSError:
            return getattr(self, "_held", None)
        return (st.st_dev, st.st_ino)

    def lost(self) -> str | None:
        """Why the lock we hold no longer guards the store (its file deleted or replaced: a
        second runner would lock a new file at that path), else None."""
        held = getattr(self, "_held", None)
        if held is None:
            return None
        now = self._identity()
        if now is None:
            return f"the runner lock {str(self.path)!r} was deleted"
        if now != held:
            return f"the runner lock {str(self.path)!r} was replaced by another file"
        return None

    def release(self) -> None:
        if self._lock.is_locked:
            self._lock.release()
