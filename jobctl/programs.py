"""Finding a job's program on a PATH, as the executor runs it and as `add` and `edit` check it.

`which` is shutil.which's rule on POSIX (the platforms jobctl runs on), written here so that
`jobctl add` does not import shutil to warn about a missing program: shutil's import (with
zlib's) was 1.3 ms, a tenth of what `add` costs above typer's own start (issue 13).
tests/unit/test_programs.py checks it against shutil.which case by case. The executor and
jobdef both use it, so that the warning `add` gives and the exit code a run gets agree.
"""

from __future__ import annotations

import os


def which(cmd: str, path: str | None = None) -> str | None:
    """The file `cmd` runs as: itself when it names a folder (relative to this process's
    working folder), else the first executable file of that name in a folder of `path`
    (PATH's syntax; None: this process's PATH, else the system's default path); None when
    there is none. As Python 3.11's shutil.which(cmd, path=path) (3.12's writes a name with
    a folder part anew, `a//run` as `a/run`: the same file)."""
    if os.path.dirname(cmd):
        return cmd if _runnable(cmd) else None
    if path is None:
        path = os.environ.get("PATH")
        if path is None:
            try:
                path = os.confstr("CS_PATH")
            except (AttributeError, ValueError):
                path = os.defpath
    if not path:
        return None
    seen: set[str] = set()
    for folder in os.fsdecode(path).split(os.pathsep):
        if folder not in seen:
            seen.add(folder)
            name = os.path.join(folder, cmd)
            if _runnable(name):
                return name
    return None


def _runnable(name: str) -> bool:
    return os.path.exists(name) and os.access(name, os.X_OK) and not os.path.isdir(name)
