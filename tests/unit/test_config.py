"""Home and store resolution (SPEC 2): flag, then environment, then the XDG default."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from jobctl.config import ensure_home, resolve_settings, sqlite_path
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


def test_ensure_home_makes_missing_parents_0700_whatever_the_umask(tmp_path: Path) -> None:
    existing = tmp_path / "existing"
    existing.mkdir(mode=0o755)
    os.chmod(existing, 0o755)
    home = existing / "a" / "b" / "jobctl"
    old = os.umask(0)
    try:
        ensure_home(home)
    finally:
        os.umask(old)
    assert [_mode(p) for p in (home, home.parent, home.parent.parent)] == [0o700] * 3
    assert _mode(existing) == 0o755  # existing folders are left alone


def test_ensure_home_leaves_an_existing_home_alone(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    os.chmod(home, 0o750)
    ensure_home(home)
    assert _mode(home) == 0o750


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize(
    ("url", "want"),
    [
        ("postgresql://u@h/db", True),
        ("postgres://u@h/db", True),
        ("POSTGRESQL://h/db", True),
        ("sqlite:////a/b.db", False),
        ("/plain/postgres.db", False),
    ],
)
def test_is_postgres(url: str, want: bool) -> None:
    from jobctl.config import is_postgres

    assert is_postgres(url) is want
