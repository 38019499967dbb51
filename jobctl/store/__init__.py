"""Opening the store: the one place that turns settings into a Store."""

from __future__ import annotations

from jobctl.config import Settings, ensure_home, sqlite_path
from jobctl.store.base import RunFilter, Store

__all__ = ["RunFilter", "Store", "open_store"]


def open_store(settings: Settings, busy_timeout_s: float | None = None) -> Store:
    """Create the home folder if needed and open (and migrate) the store it names.
    `busy_timeout_s`: how long a write waits for another writer (default: a minute)."""
    path = sqlite_path(settings.store_url)
    ensure_home(settings.home)
    from jobctl.store.sqlite import SQLiteStore

    if busy_timeout_s is None:
        return SQLiteStore(path)
    return SQLiteStore(path, busy_timeout_ms=round(busy_timeout_s * 1000))
