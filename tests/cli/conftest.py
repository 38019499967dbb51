"""CLI fixtures: `any_store` runs a test once on SQLite and once on PostgreSQL (JOBCTL_STORE)."""

from __future__ import annotations

import pytest


@pytest.fixture(params=["sqlite", "postgres"])
def any_store(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The store the test's commands use: the home's SQLite file, or a fresh PostgreSQL schema
    named by JOBCTL_STORE (skipped, with one line, when no server can be had)."""
    if request.param == "postgres":
        monkeypatch.setenv("JOBCTL_STORE", request.getfixturevalue("pg_url"))
    return str(request.param)
