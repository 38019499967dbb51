"""The peers the suite compares against, installed when missing (and allowed).

task-spooler and cron come from Debian's packages (apt-get, as root); APScheduler 3 from
PyPI into this interpreter's environment. `--skip tsp,cron,apscheduler` leaves any out;
a peer that cannot be had is skipped with a note, never faked.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys

ALL = ("tsp", "cron", "apscheduler")
_APT = {"tsp": "task-spooler", "cron": "cron"}
_BIN = {"tsp": "tsp", "cron": "cron"}
_apt_updated = False


def _have(name: str) -> bool:
    if name == "apscheduler":
        try:
            mod = importlib.import_module("apscheduler")
        except ImportError:
            return False
        return str(getattr(mod, "__version__", "3")).startswith("3")
    return shutil.which(_BIN[name]) is not None or os.path.exists(f"/usr/sbin/{_BIN[name]}")


def _install(name: str) -> str | None:
    """Try to install a peer; returns why it failed, or None."""
    global _apt_updated
    if name == "apscheduler":
        cmd = [sys.executable, "-m", "pip", "install", "-q", "apscheduler>=3.10,<4"]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        importlib.invalidate_caches()
        return None if done.returncode == 0 else done.stderr.strip()[-200:]
    if shutil.which("apt-get") is None:
        return "no apt-get on this machine"
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if not _apt_updated:
        subprocess.run(
            [*sudo, "apt-get", "update", "-qq"], capture_output=True, env=env, check=False
        )
        _apt_updated = True
    done = subprocess.run([*sudo, "apt-get", "install", "-y", "-qq", _APT[name]],
                          capture_output=True, text=True, env=env, check=False)  # fmt: skip
    return None if done.returncode == 0 else done.stderr.strip()[-200:]


def ensure(wanted: set[str], install: bool = True) -> tuple[set[str], list[str]]:
    """The peers of `wanted` that are available (installing them if allowed), and notes."""
    have: set[str] = set()
    notes: list[str] = []
    for name in sorted(wanted):
        if not _have(name) and install:
            why = _install(name)
            if why:
                notes.append(f"{name}: could not install ({why})")
        if _have(name):
            have.add(name)
        else:
            notes.append(f"{name}: not available, skipped")
    return have, notes


def version(name: str) -> str:
    if name == "apscheduler":
        try:
            return "APScheduler " + importlib.import_module("apscheduler").__version__
        except ImportError:
            return "-"
    pkg = _APT.get(name, name)
    done = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", pkg], capture_output=True,
                          text=True, check=False)  # fmt: skip
    return f"{pkg} {done.stdout.strip()}" if done.returncode == 0 else "-"
