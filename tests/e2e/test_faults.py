"""Faults that must never double or lose a fire (issue 8): an edit racing a fire behind a
held write lock, a full disk, a read-only store, a store locked past the busy timeout, the
store or its lock deleted under a running runner, fires held up by a locked store.

The disk faults mount a small tmpfs (16 MB: SQLite's WAL alone grows to 4 MB) or use chattr
+i, and so need root (CI runs as root); elsewhere they are skipped with one line saying why.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Env, pid_alive, wait_for


def hold_write_lock(db: Path, seconds: float) -> threading.Thread:
    """Another process's writer: BEGIN IMMEDIATE held for `seconds` (in a thread)."""
    ready = threading.Event()

    def hold() -> None:
        conn = sqlite3.connect(db, isolation_level=None, timeout=30)
        conn.execute("BEGIN IMMEDIATE")
        ready.set()
        time.sleep(seconds)
        conn.execute("ROLLBACK")
        conn.close()

    t = threading.Thread(target=hold, daemon=True)
    t.start()
    assert ready.wait(30)
    return t


def keys(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def test_edit_behind_a_held_lock_never_refires(env: Env, tmp_path: Path) -> None:
    """8.1: `edit` waits for the write lock while the runner fires; it must not move the
    job's next fire back to before what fired meanwhile (its runs pruned by --keep-runs)."""
    out = tmp_path / "keys"
    key = f"echo $JOBCTL_RUN_KEY/$JOBCTL_ATTEMPT >> {out}"
    env.run("add", "tick", "--cron", "* * * * * *", "--misfire", "all", "--keep-runs", "2",
            "--shell", "--", key, check=True)  # fmt: skip
    env.env["JOBCTL_RUNNER_BUSY_TIMEOUT"] = "30s"  # the runner waits behind the lock, as edit
    env.start_runner()
    wait_for(lambda: len(keys(out)) >= 2, 30)
    holder = hold_write_lock(env.home / "jobctl.db", 4.0)
    time.sleep(1.5)  # the edit's clock read falls inside the held lock, as in the report
    edit = subprocess.Popen(
        [*env_cmd(), "edit", "tick", "--description", "x"], env=env.env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    holder.join()
    assert edit.wait(60) == 0, edit.stderr.read() if edit.stderr else ""
    seen = len(keys(out))
    wait_for(lambda: len(keys(out)) >= seen + 4, 30)  # fires after the edit went through
    twice = [k for k, n in Counter(keys(out)).items() if n > 1]
    assert twice == [], f"fires run twice with the same attempt: {twice}"


def env_cmd() -> list[str]:
    from tests.e2e.conftest import CMD

    return list(CMD)


def test_fires_held_up_by_a_locked_store_are_recorded_late(env: Env) -> None:
    """8.4: with the store locked for 6 s, every per-second fire of that time is on record
    (run late or skipped by the overlap policy), none vanishes, and none is "missed while no
    runner was up"."""
    env.run("add", "tick", "--cron", "* * * * * *", "--", "true", check=True)
    env.env["JOBCTL_RUNNER_BUSY_TIMEOUT"] = "1s"
    env.start_runner()
    wait_for(lambda: len(env.runs("tick")) >= 2, 30)
    hold_write_lock(env.home / "jobctl.db", 6.0).join()
    after = time.time()
    wait_for(lambda: any(t(r["scheduled_for"]) > after + 1 for r in env.runs("tick")), 30)
    runs = env.runs("tick")
    times = sorted(round(t(r["scheduled_for"])) for r in runs)
    assert times == list(range(times[0], times[-1] + 1)), "a fire left no record"
    assert len(times) == len(set(times))
    assert not [r for r in runs if "no runner was up" in (r["error"] or "")]


def t(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso).timestamp()


def test_store_locked_past_the_busy_timeout_is_reported_once(env: Env, tmp_path: Path) -> None:
    """8.2 (lock): the runner keeps going through a lock held longer than its busy timeout,
    says so once, and records the end of a run that ended meanwhile."""
    go = tmp_path / "go"
    env.run("add", "long", "--shell", "--", f"echo begun; while [ ! -e {go} ]; do sleep 0.05; "
            "done; echo ended", check=True)  # fmt: skip
    env.env["JOBCTL_RUNNER_BUSY_TIMEOUT"] = "0.5s"
    runner = env.start_runner()
    env.run("run", "long", "--detach", check=True)
    wait_for(lambda: [r for r in env.runs("long") if r["status"] == "running" and r["pid"]], 30)
    holder = hold_write_lock(env.home / "jobctl.db", 5.0)
    go.touch()  # the job ends while its end cannot be written
    wait_for(lambda: "store unavailable" in env.log(), 30)
    holder.join()
    run = wait_for(lambda: [r for r in env.runs("long") if r["status"] == "succeeded"], 30)[0]
    assert env.run("logs", str(run["id"])).stdout == "begun\nended\n"
    assert runner.poll() is None
    log = env.log()
    assert log.count("store unavailable") == 1 and "store available again" in log


# ---- disk faults: a small tmpfs as the home folder ------------------------------------


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("needs root: mounts a 16 MB tmpfs to fill it")
    mnt = tmp_path / "fs"
    mnt.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", str(mnt)],
        capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(mnt)], capture_output=True)
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def fill(path: Path) -> None:
    """Fill the file system holding `path` to the last byte."""
    with open(path, "wb", buffering=0) as f:
        block = b"\0" * 65536
        try:
            while True:
                f.write(block)
                f.flush()
        except OSError:
            pass
        try:
            while True:
                f.write(b"\0")
                f.flush()
        except OSError:
            pass


def chattr(flag: str, *paths: Path) -> None:
    subprocess.run(["chattr", flag, *map(str, paths)], check=True, capture_output=True)


@pytest.fixture
def immutable_home(tmp_path: Path) -> Iterator[Path]:
    """A home whose database files can be made read-only under a running runner: chattr +i
    (root, and a file system with that attribute) refuses writes even through open files."""
    home = tmp_path / "home"
    probe = tmp_path / "probe"
    probe.touch()
    if os.geteuid() != 0:
        pytest.skip("needs root: makes the store immutable with chattr +i")
    done = subprocess.run(["chattr", "+i", str(probe)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"chattr +i is not available here: {done.stderr.strip()}")
    chattr("-i", probe)
    try:
        yield home
    finally:
        for f in home.glob("jobctl.db*"):
            subprocess.run(["chattr", "-i", str(f)], capture_output=True)


@pytest.mark.parametrize("fault", ["full", "read-only"])
def test_runner_rides_out_a_full_or_read_only_disk(
    request: pytest.FixtureRequest, tmp_path: Path, fault: str
) -> None:
    """8.2: the disk fills (or the store turns read-only) under a running runner: it keeps
    its job supervised, reports the store error once, and once the fault is gone records the
    run's end and output and goes on firing, losing and doubling nothing."""
    home = request.getfixturevalue("small_fs" if fault == "full" else "immutable_home")
    env = Env(home)  # the runner's log goes beside the home: tmp_path, not the tmpfs
    db = home / "jobctl.db"
    go, out = tmp_path / "go", tmp_path / "keys"
    try:
        env.run("add", "long", "--shell", "--", f"echo begun; while [ ! -e {go} ]; do "
                "sleep 0.05; done; echo ended", check=True)  # fmt: skip
        env.run("add", "tick", "--every", "1s", "--shell", "--",
                f"echo $JOBCTL_RUN_KEY >> {out}", check=True)  # fmt: skip
        runner = env.start_runner()
        env.run("run", "long", "--detach", check=True)
        running = wait_for(lambda: [r for r in env.runs("long") if r["status"] == "running"
                                    and r["pid"]], 30)[0]  # fmt: skip
        wait_for(lambda: len(keys(out)) >= 2, 30)
        if fault == "full":
            fill(home / "filler")
        else:
            chattr("+i", db, db.with_name("jobctl.db-wal"))
        wait_for(lambda: "store unavailable" in env.log(), 30)
        go.touch()  # the long job ends while nothing can be written
        wait_for(lambda: not pid_alive(running["pid"]), 30)
        ticks = len(keys(out))
        time.sleep(2.0)  # the runner goes on through the fault (nothing to wait for here)
        assert runner.poll() is None, env.log()
        if fault == "full":
            (home / "filler").unlink()
        else:
            chattr("-i", db, db.with_name("jobctl.db-wal"))
        done = wait_for(lambda: [r for r in env.runs("long") if r["status"] == "succeeded"], 60)
        assert env.run("logs", str(done[0]["id"])).stdout == "begun\nended\n"
        wait_for(lambda: len(keys(out)) >= ticks + 3, 30)  # firing again
        log = env.log()
        assert log.count("store unavailable") == 1, log
        assert "store available again" in log
        assert runner.poll() is None
        twice = [k for k, n in Counter(keys(out)).items() if n > 1]
        assert twice == []
    finally:
        env.stop_all()


def test_store_deleted_under_the_runner_stops_it(env: Env) -> None:
    """8.3: `rm jobctl.db*` under a running runner: it notices within seconds, stops firing
    and exits 1 with one line naming the store."""
    env.run("add", "tick", "--every", "1s", "--", "true", check=True)
    runner = env.start_runner()
    for f in env.home.glob("jobctl.db*"):
        if not f.name.endswith(".lock"):
            f.unlink()
    wait_for(lambda: runner.poll() is not None, 30)
    assert runner.returncode == 1
    assert "was deleted" in env.log()


def test_home_removed_under_the_runner_lets_no_two_runners_serve_it(env: Env) -> None:
    """8.3: `rm -rf` of the home under a running runner: the first runner stops, so that a
    second one started on the new home is the only one firing there."""
    env.run("add", "tick", "--every", "1s", "--", "true", check=True)
    first = env.start_runner()
    subprocess.run(["rm", "-rf", str(env.home)], check=True)
    wait_for(lambda: first.poll() is not None, 30)
    assert first.returncode == 1
    env.run("add", "tick", "--every", "1s", "--", "true", check=True)
    second = env.start_runner(log="second.log")
    wait_for(lambda: len(env.runs("tick")) >= 2, 30)
    assert second.poll() is None
    assert "was deleted" in env.log()


def test_a_standby_runner_takes_over_a_recreated_store(env: Env) -> None:
    """Review of 8.3: `rm jobctl.db*` under a runner with a `--wait` standby: the first stops,
    the standby serves the store now at the path (not the deleted one it had opened)."""
    first = env.start_runner()
    standby = subprocess.Popen(
        [*env_cmd(), "runner", "--wait", "--grace", "2s"], env=env.env,
        stdout=open(env.home.parent / "standby.log", "ab"), stderr=subprocess.STDOUT,  # noqa: SIM115
    )  # fmt: skip
    env.runners.append(standby)
    wait_for(lambda: "waiting to take over" in env.log("standby.log"), 30)
    for f in env.home.glob("jobctl.db*"):
        if not f.name.endswith(".lock"):
            f.unlink()
    wait_for(lambda: first.poll() is not None, 30)
    env.run("add", "tick", "--every", "1s", "--", "true", check=True)
    wait_for(lambda: len(env.runs("tick")) >= 2, 30)
    assert standby.poll() is None
    assert env.json("status")["runner"]["pid"] == standby.pid
