"""jobctl/procfs.py: the one /proc reader (owners and the executor use it)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from jobctl import procfs
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
PID_MAX = 1 << 22


def test_stat_of_this_process() -> None:
    st = procfs.stat(os.getpid())
    assert st is not None and st.state in (b"R", b"S") and st.ppid == os.getppid()
    assert st.pgrp == os.getpgrp() and st.start > 0 and procfs.start_time(os.getpid()) == st.start
    assert procfs.stat(PID_MAX + 1) is None and procfs.start_time(PID_MAX + 1) is None


def test_stat_survives_a_program_name_with_spaces_and_parentheses(tmp_path: Path) -> None:
    prog = tmp_path / ") S 1 2 (x"
    prog.symlink_to(sys.executable)
    with subprocess.Popen([str(prog), "-c", "import time; time.sleep(30)"]) as child:
        try:
            # (while it is exec'ing it can be in D, uninterruptible sleep, for a moment)
            wait_for(lambda: (s := procfs.stat(child.pid)) is not None and s.state != b"D")
            st = procfs.stat(child.pid)
            assert st is not None and st.ppid == os.getpid() and st.state in (b"R", b"S")
        finally:
            child.kill()


def test_children_environ_and_pids() -> None:
    env = {**os.environ, "JOBCTL_PROCFS_TEST": "marker"}
    with subprocess.Popen(["sleep", "30"], env=env) as child:
        try:
            assert child.pid in procfs.children(os.getpid())
            # (until the child has exec'd, its environment is still this process's)
            wait_for(lambda: b"JOBCTL_PROCFS_TEST=marker" in procfs.environ(child.pid))
            assert str(child.pid) in set(procfs.pids())
        finally:
            child.kill()
    assert procfs.children(PID_MAX + 1) == [] and procfs.environ(PID_MAX + 1) == set()


def test_only_procfs_reads_proc() -> None:
    """owners.py and executor.py parse no /proc file themselves."""
    readers = [
        str(p.relative_to(ROOT))
        for p in sorted((ROOT / "jobctl").rglob("*.py"))
        if re.search(r"""f?["']/proc/""", p.read_text())
    ]
    assert readers == ["jobctl/procfs.py"]
