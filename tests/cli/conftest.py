"""CLI fixtures: `any_store` runs a test once on SQLite and once on PostgreSQL (JOBCTL_STORE).
The modules of commands on the store use it for every test (`pytestmark`); a test of the SQLite
file itself (its path, --home, an unusable file: JOBCTL_STORE would win over --home) says so
with `@pytest.mark.sqlite_only`."""

from __future__ import annotations

import pytest


@pytest.fixture(params=["sqlite", "postgres"])
def any_store(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The store the test's commands use: the home's SQLite file, or a fresh PostgreSQL schema
    named by JOBCTL_STORE (skipped, with one line, when no server can be had)."""
    if request.param == "postgres":
        monkeypatch.setenv("JOBCTL_STORE", request.getfixturevalue("pg_url"))
    return str(request.param)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sqlite_only: a test of the SQLite store's file itself")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A `sqlite_only` test in a module of `any_store` tests runs on SQLite alone (its
    PostgreSQL copy is deselected)."""
    dropped = [item for item in items if item.get_closest_marker("sqlite_only")
               and getattr(item, "callspec", None) is not None
               and item.callspec.params.get("any_store") == "postgres"]  # fmt: skip
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if item not in dropped]
