"""The PostgreSQL tests on a machine without a server (issue 9, point 9): they skip, and the
run ends with one visible line saying why, also under the project's default xdist workers
(the skips happen in the workers, the summary is written by the controller); under CI=true
they fail instead. Each case runs pytest itself on one PostgreSQL test, with
JOBCTL_TEST_PG naming a port nothing listens on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEAD = "postgresql://postgres@127.0.0.1:1/test"  # nothing listens on port 1
ONE_TEST = "tests/store/test_postgres.py"


def _pytest(*, ci: bool) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k != "CI" and not k.startswith(("PYTEST_", "JOBCTL_"))}  # fmt: skip
    env["JOBCTL_TEST_PG"] = DEAD
    if ci:
        env["CI"] = "true"
    # the project's addopts apply (xdist workers): the README's command, on a few tests
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", ONE_TEST, "-k",
            "schema_version", "-q"]  # fmt: skip
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_without_a_server_the_postgresql_tests_skip_with_one_line() -> None:
    done = _pytest(ci=False)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "skipped" in out and "passed" not in out, out
    lines = [line for line in out.splitlines() if line.startswith("PostgreSQL tests skipped:")]
    assert len(lines) == 1, out
    assert "JOBCTL_TEST_PG does not answer" in lines[0]


def test_under_ci_the_postgresql_tests_fail_instead() -> None:
    done = _pytest(ci=True)
    out = done.stdout + done.stderr
    assert done.returncode != 0, out
    assert "cannot run under CI=true" in out
    assert "PostgreSQL tests skipped:" not in out
