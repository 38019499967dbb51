"""jobctl/programs.py: `which` finds what shutil.which finds, case by case."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from jobctl.programs import which


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Folders a, b, c: a/tool not executable, b/tool executable, c/tool a folder; a/run and
    the working folder's ./here executable."""
    for name in ("a", "b", "c", "c/tool"):
        (tmp_path / name).mkdir()
    (tmp_path / "a" / "tool").write_text("")
    for f in (tmp_path / "b" / "tool", tmp_path / "a" / "run", tmp_path / "here"):
        f.write_text("#!/bin/sh\n")
        f.chmod(0o755)
    monkeypatch.chdir(tmp_path)
    return tmp_path


CASES = [
    ("tool", "{a}:{b}"),  # a's is not executable: b's
    ("tool", "{c}:{b}"),  # c's is a folder: b's
    ("tool", "{a}:{c}"),  # none
    ("run", "{b}:{a}"),
    ("run", "{a}:{a}:{b}"),  # a folder twice
    ("here", ""),  # PATH='' finds nothing
    ("here", ":"),  # PATH=':' looks in the working folder
    ("here", "{a}::{b}"),  # so does an empty entry
    ("here", "."),
    ("./here", "{a}"),  # a folder part: looked at where it points, PATH aside
    ("a/run", ""),
    ("a/tool", "{b}"),  # not executable
    ("c/tool", "{b}"),  # a folder
    ("missing", "{a}:{b}"),
    ("sh", None),  # None: this process's PATH
]


@pytest.mark.parametrize(("cmd", "path"), CASES)
def test_which_finds_what_shutil_finds(tree: Path, cmd: str, path: str | None) -> None:
    if path is not None:
        path = path.format(a=tree / "a", b=tree / "b", c=tree / "c")
    assert which(cmd, path) == shutil.which(cmd, path=path)


def test_without_a_path_variable_it_searches_the_systems_default(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PATH")
    assert which("sh") == shutil.which("sh") is not None
    assert os.path.isabs(which("sh") or "")
