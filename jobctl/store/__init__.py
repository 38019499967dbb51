"""Opening the store: the one place that turns settings into a Store."""

from __future__ import annotations

from jobctl.config import Settings, ensure_home, is_postgres, sqlite_path
from jobctl.errors import StoreError
from jobctl.store.base import RunFilter, Store

__all__ = ["RunFilter", "Store", "open_store"]


#: seconds a Tab waits for a PostgreSQL server (libpq's connect_timeout counts whole seconds,
#: and reads less than 2 as 2) or for a SQLite writer
GLANCE_CONNECT_S = 2


def open_store(
    settings: Settings, busy_timeout_s: float | None = None, glance: bool = False
) -> Store:
    """Create the home folder if needed and open (and migrate) the store it names.
    `busy_timeout_s`: how long a write waits for another writer (default: a minute).
    A PostgreSQL URL opens store/postgres.py (imported only then: psycopg stays out of the
    SQLite path), which writes nothing in the home folder. `glance` (shell completion):
    create and migrate nothing (StoreError when there is no SQLite store there, a mistyped
    --home, or one at another schema), and give a server or a writer GLANCE_CONNECT_S, not
    a command's 5 s and a minute. (A PostgreSQL store behind this jobctl's schema is still
    migrated, as by any command.)"""
    if is_postgres(settings.store_url):
        try:
            from jobctl.store.postgres import PostgresStore
        except ImportError as exc:
            if exc.name not in ("psycopg", "psycopg_binary"):
                raise
            raise StoreError(
                "the PostgreSQL store needs psycopg: pip install 'jobctl[postgres]'"
            ) from None
        if glance:
            return PostgresStore(settings.store_url, lock_timeout_s=GLANCE_CONNECT_S,
                                 connect_timeout_s=GLANCE_CONNECT_S)  # fmt: skip
        if busy_timeout_s is None:
            return PostgresStore(settings.store_url)
        return PostgresStore(settings.store_url, lock_timeout_s=busy_timeout_s)
    path = sqlite_path(settings.store_url)
    from jobctl.store.sqlite import SQLiteStore

    if glance:
        return SQLiteStore(path, busy_timeout_ms=GLANCE_CONNECT_S * 1000, migrate=False)
    ensure_home(settings.home)
    if busy_timeout_s is None:
        return SQLiteStore(path)
    return SQLiteStore(path, busy_timeout_ms=round(busy_timeout_s * 1000))
