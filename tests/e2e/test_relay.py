"""The local relay (jobctl/relay.py): on a PostgreSQL store, `run --detach` on a machine
whose runner is up goes to that runner over a Unix socket, without importing psycopg (most of
such a command's start-up); elsewhere the command opens the store itself. The answer is the
same either way: the run, or the same error line and exit code.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from jobctl import relay
from jobctl.config import Settings
from jobctl.errors import ConflictError, JobctlError, NotFoundError
from tests.e2e.conftest import Env
from tests.waiting import wait_for


def _no_psycopg(e: Env, tmp_path: Path) -> None:
    """Commands of `e` fail to import psycopg from now on: only the relay can serve them."""
    blocked = tmp_path / "blocked"
    (blocked / "psycopg").mkdir(parents=True)
    (blocked / "psycopg" / "__init__.py").write_text(
        "raise ImportError('blocked', name='psycopg')\n"
    )
    e.env["PYTHONPATH"] = os.pathsep.join([str(blocked), e.env.get("PYTHONPATH", "")])


def test_run_detach_goes_to_this_machines_runner(fleet: Env, tmp_path: Path) -> None:
    out = tmp_path / "ran"
    fleet.run("add", "job", "--every", "1d", "--shell", "--", f"echo $JOBCTL_TRIGGER >> {out}",
               check=True)  # fmt: skip
    fleet.start_runner()
    settings = Settings(home=fleet.home, store_url=fleet.env["JOBCTL_STORE"])
    assert wait_for(lambda: relay.socket_path(settings).exists())
    _no_psycopg(fleet, tmp_path)
    fleet.env["PYTHONPROFILEIMPORTTIME"] = "1"  # each import on stderr, as `-X importtime`
    got = fleet.run("run", "job", "--detach", "--json", check=True)
    del fleet.env["PYTHONPROFILEIMPORTTIME"]
    imported = {line.rsplit("|", 1)[-1].strip() for line in got.stderr.splitlines()}
    assert "jobctl.relay" in imported
    # a relayed run needs neither the store's code nor OpenSSL (`import hashlib`)
    assert not {"jobctl.runs", "jobctl.store", "hashlib"} & imported
    run = json.loads(got.stdout)
    assert (run["job"], run["trigger"], run["status"]) == ("job", "manual", "queued")
    assert wait_for(lambda: out.exists() and out.read_text() == "manual\n")
    plain = fleet.run("run", "job", "--detach", "--force", check=True)
    assert int(plain.stdout) == run["id"] + 1
    missing = fleet.run("run", "nosuch", "--detach")
    assert (missing.returncode, missing.stderr) == (4, "jobctl: no job named 'nosuch'\n")
    # the runner goes on (a NotFoundError inside its transaction broke its next claim once)
    again = fleet.run("run", "job", "--detach", "--force", "--json", check=True)
    ran = json.loads(again.stdout)["id"]
    assert wait_for(lambda: any(r["id"] == ran and r["status"] == "succeeded"
                                for r in fleet.runs("job")))  # fmt: skip
    assert "error" not in fleet.log()


def test_without_a_runner_here_the_command_opens_the_store(fleet: Env, tmp_path: Path) -> None:
    fleet.run("add", "job", "--every", "1d", "--", "true", check=True)
    settings = Settings(home=fleet.home, store_url=fleet.env["JOBCTL_STORE"])
    stale = relay.socket_path(settings)  # a runner killed -9 leaves its socket behind
    stale.parent.mkdir(parents=True, exist_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(stale))
    sock.close()
    got = fleet.run("run", "job", "--detach", check=True)
    assert [r["id"] for r in fleet.runs("job")] == [int(got.stdout)]
    assert "no runner is active" in got.stderr


def test_the_relay_answers_with_the_runs_and_errors_of_runs_trigger(
    pg_url: str, tmp_path: Path
) -> None:
    from jobctl.models import Job
    from jobctl.store.postgres import PostgresStore

    store = PostgresStore(pg_url)
    store.add_job(Job(name="one", command=["true"], overlap="skip", created_at=1.0))
    settings = Settings(home=tmp_path / "home", store_url=pg_url)
    woken: list[bool] = []
    said: list[str] = []
    server = relay.Relay(settings, store, lambda: woken.append(True), said.append)
    assert server.start()
    try:
        assert not relay.Relay(settings, store, lambda: None, said.append).start()
        # a live relay is never taken over, and its probe is no error of the live one
        assert any("served by another runner" in line for line in said)
        request = {"job": "one", "now": 1000.0, "force": False, "replay_of": None,
                   "chain": True, "again": False}  # fmt: skip
        run = relay.trigger(settings, request)
        assert run is not None and (run["job"], run["status"]) == ("one", "queued")
        assert store.get_run(run["id"]).status == "queued" and woken == [True]
        with pytest.raises(ConflictError, match="overlap"):  # one queued already
            relay.trigger(settings, request)
        with pytest.raises(NotFoundError, match="no job named 'two'"):
            relay.trigger(settings, {**request, "job": "two"})
        assert (relay.socket_path(settings).stat().st_mode & 0o777) == 0o600
        with pytest.raises(JobctlError, match="failed on the request"):  # no "now"
            relay.trigger(settings, {"job": "one"})
    finally:
        server.close()
        store.close()
    assert [line for line in said if "served by" not in line] == ["relay: KeyError: 'now'"]
    assert not relay.socket_path(settings).exists()
    assert relay.trigger(settings, {"job": "one"}) is None  # nobody listens: no relay
