"""Home and store resolution (SPEC 2): flag, then environment, then the XDG default."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobctl.config import resolve_settings, sqlite_path
from jobctl.errors import UsageError


@pytest.mark.parametrize(
    ("home", "store", "environ", "want_home", "want_url"),
    [
        pytest.param(None, None, {"HOME": "/h"}, "/h/.local/share/jobctl",
                     "sqlite:////h/.local/share/jobctl/jobctl.db", id="default"),
        pytest.param(None, None, {"XDG_DATA_HOME": "/x"}, "/x/jobctl",
                     "sqlite:////x/jobctl/jobctl.db", id="xdg"),
        pytest.param(None, None, {"XDG_DATA_HOME": "/x", "JOBCTL_HOME": "/j"}, "/j",
                     "sqlite:////j/jobctl.db", id="env_home_wins"),
        pytest.param("/f", None, {"JOBCTL_HOME": "/j"}, "/f", "sqlite:////f/jobctl.db",
                     id="flag_wins"),
        pytest.param(None, None, {"JOBCTL_HOME": "/j", "JOBCTL_STORE": "/s.db"}, "/j", "/s.db",
                     id="env_store"),
        pytest.param(None, "sqlite:////t.db", {"JOBCTL_STORE": "/s.db"}, "/h/.local/share/jobctl",
                     "sqlite:////t.db", id="store_flag_wins"),
    ],
)  # fmt: skip
def test_resolution(home, store, environ, want_home, want_url, monkeypatch) -> None:
    monkeypatch.setenv("HOME", "/h")
    s = resolve_settings(home, store, environ)
    assert (str(s.home), s.store_url) == (want_home, want_url)


def test_sqlite_path_forms() -> None:
    assert sqlite_path("sqlite:////a/b.db") == Path("/a/b.db")
    assert sqlite_path("/plain/x.db") == Path("/plain/x.db")
    with pytest.raises(UsageError, match="postgresql"):
        sqlite_path("postgresql://host/db")
