"""Shared fixtures: every test gets its own JOBCTL_HOME (like llm's LLM_USER_PATH)."""

from __future__ import annotations

import json
import signal
from dataclasses import dataclass
from pathlib import Path

import pytest

from jobctl.__main__ import main


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    h = tmp_path / "home"
    monkeypatch.setenv("JOBCTL_HOME", str(h))
    monkeypatch.delenv("JOBCTL_STORE", raising=False)
    monkeypatch.setenv("TZ", "UTC")
    monkeypatch.setenv("NO_COLOR", "1")
    # an in-process `jobctl runner` must not make pytest a child subreaper: it would reap the
    # exited children of other tests (their subprocess.Popen would lose the exit status)
    monkeypatch.setattr("jobctl.cli.runner.SUBREAPER", False)
    return h


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> object:
        return json.loads(self.out)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):
    """Run the real CLI entry point in-process: cli('add', 'x', ...) -> Result."""

    def invoke(*args: str) -> Result:
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return invoke


# PostgreSQL: one server per session (throwaway cluster or JOBCTL_TEST_PG), a schema per test
from tests.pg import pg_server, pg_url  # noqa: E402, F401


def pytest_configure(config: pytest.Config) -> None:
    """Ctrl-C back to Python's default when the suite was started with SIGINT ignored (as a
    shell does for `cmd &` without job control): an ignored SIGINT is inherited by every
    `jobctl` the tests start, and the tests that end `status --watch` or `logs --follow` with
    a SIGINT would wait on a command that, as Unix asks, ignores it. Each xdist worker runs
    this too."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    from tests import pg

    pg.report(terminalreporter, terminalreporter.config.option.verbose > 0)
