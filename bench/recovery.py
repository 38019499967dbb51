"""Measurement 6, crash recovery: from restarting a kill -9'd runner to its abandoned run's
retry starting.

A job `sleep 30` with `--retries 1 --retry-delay 0s` is run with `jobctl run NAME --detach`
under a runner; once the run is running (its `sleep` exec'd), the runner gets SIGKILL and a
new runner is spawned at once. Timed from that Popen to the retry's (attempt 2) `started_at`,
with the orphaned `sleep`'s survival (the new runner's recovery terminates it) beside it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from bench import common

JOB_CMD = ["sleep", "30"]
POLL_S = 0.005


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, start time in ticks) of a process, None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return fields[0], int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def alive(pid: int, start: int) -> bool:
    """The same process (pid and start time) still exists and is not a zombie (this
    container's init may never reap a killed orphan)."""
    st = _stat(pid)
    return st is not None and st[0] != "Z" and st[1] == start


def ours(home: Path) -> list[int]:
    """Live processes of this benchmark: runners, jobs and commands carry JOBCTL_HOME=home."""
    marker = f"JOBCTL_HOME={home}".encode()
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue
        st = _stat(int(entry.name))
        if marker in env and st is not None and st[0] != "Z":
            found.append(int(entry.name))
    return found


def sweep(home: Path) -> int:
    """SIGKILL every leftover process (and its group) of this benchmark; how many there were."""
    pids = ours(home)
    for pid in pids:
        with contextlib.suppress(OSError):
            os.killpg(os.getpgid(pid), signal.SIGKILL)
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    return len(pids)


def one_crash(env: dict[str, str], home: Path, name: str) -> dict[str, float]:
    """One kill -9 and restart; times in ms, relative to the new runner's Popen."""
    db = sqlite3.connect(f"file:{home / 'jobctl.db'}?mode=ro", uri=True, timeout=60)
    log = home.parent / f"runner-{name}.log"
    second: subprocess.Popen[bytes] | None = None
    first = common.Runner(env, log=log)
    try:
        common.run(env, "add", name, "--retries", "1", "--retry-delay", "0s", "--", *JOB_CMD)
        run_id = int(common.run(env, "run", name, "--detach").strip())

        def running() -> tuple[int, int] | None:
            row = db.execute(
                "SELECT pid FROM runs WHERE id = ? AND status = 'running' "
                "AND started_at IS NOT NULL",
                [run_id],
            ).fetchone()
            if row and row[0] and _comm(row[0]) == JOB_CMD[0]:  # exec'd, not still forking
                st = _stat(row[0])
                return (row[0], st[1]) if st else None
            return None

        orphan, orphan_start = common.wait_for(running, 30, "first run running", POLL_S)  # type: ignore[misc]
        os.kill(first.pid, signal.SIGKILL)
        first.proc.wait()
        killed = time.perf_counter()
        first.stop()  # closes its log
        with open(log, "ab") as out:
            wall0, t0 = time.time(), time.perf_counter()
            second = subprocess.Popen(
                [common.jobctl_bin(), "runner", "--workers", "4", "--grace", "2s"],
                env=env,
                stdout=out,
                stderr=out,
            )
        orphan_gone: float | None = None
        retry: tuple[int, int] | None = None
        deadline = t0 + 60
        while retry is None or orphan_gone is None:
            now = time.perf_counter()
            if orphan_gone is None and not alive(orphan, orphan_start):
                orphan_gone = now
            if retry is None:
                row = db.execute(
                    "SELECT id, started_at FROM runs WHERE job = ? AND attempt = 2 "
                    "AND started_at IS NOT NULL",
                    [name],
                ).fetchone()
                if row:
                    retry = (row[0], row[1])
            if second.poll() is not None:
                raise RuntimeError(f"new runner exited {second.returncode}: {log.read_text()}")
            if now > deadline:
                raise TimeoutError("bench: the retry did not start within 60 s")
            time.sleep(POLL_S)
        since = db.execute("SELECT since FROM runner WHERE pid = ?", [second.pid]).fetchone()
        first_run = db.execute(
            "SELECT status, finished_at, error FROM runs WHERE id = ?", [run_id]
        ).fetchone()
        assert first_run[0] == "abandoned", f"the killed run is {first_run[0]}, not abandoned"
        with contextlib.suppress(RuntimeError):  # the retry may end on its own meanwhile
            common.run(env, "cancel", str(retry[0]))
        return {
            "retry_started_ms": retry[1] - wall0 * 1000,
            "registered_ms": (since[0] - wall0 * 1000) if since else float("nan"),
            "abandoned_ms": first_run[1] - wall0 * 1000,
            "orphan_after_kill_ms": (orphan_gone - killed) * 1000,
            "orphan_after_spawn_ms": (orphan_gone - t0) * 1000,
            "restart_gap_ms": (t0 - killed) * 1000,
        }
    finally:
        db.close()
        if first.proc.poll() is None:
            first.stop()
        if second is not None and second.poll() is None:
            second.send_signal(signal.SIGTERM)
            try:
                second.wait(30)
            except subprocess.TimeoutExpired:
                second.kill()
                second.wait()


def measure(quick: bool, peers: set[str]) -> common.Result:
    reps = 1 if quick else 3
    results: list[dict[str, float]] = []
    notes: list[str] = []
    with common.temp_home() as home:
        env = common.clean_env(home)
        try:
            common.run(env, "status")  # creates the store
            for i in range(reps):
                results.append(one_crash(env, home, f"crash{i + 1}"))
        finally:
            left = sweep(home)
        if left:
            notes.append(f"{left} leftover process(es) of the benchmark were killed at the end")
    rows = []
    cols = [
        "retry_started_ms",
        "registered_ms",
        "abandoned_ms",
        "orphan_after_spawn_ms",
        "orphan_after_kill_ms",
    ]
    for i, r in enumerate(results, 1):
        rows.append([f"crash {i}", *(common.fmt(r[c], 0) for c in cols)])
    if len(results) > 1:
        rows.append(
            ["median", *(common.fmt(common.median([r[c] for r in results]), 0) for c in cols)]
        )
    samples = {c: [r[c] for r in results] for c in cols}
    notes.append(
        "times are from the new runner's Popen; the new runner was spawned "
        f"{common.fmt(max(r['restart_gap_ms'] for r in results), 1)} ms (at most) after the "
        "SIGKILL had been reaped; the orphan would otherwise run its full 30 s"
    )
    notes.append(
        "the retry is started by the new runner's recovery at start-up (abandoned runs are "
        "retried at once: --retry-delay 0s); the periodic check (every 30 s) is not involved"
    )
    if quick:
        notes.append("quick mode: 1 crash instead of 3")
    method = (
        f"A job `{' '.join(JOB_CMD)}` with `--retries 1 --retry-delay 0s` (README: a zero delay "
        f"is allowed) is run with `jobctl run NAME --detach` under a `jobctl runner` (4 workers, "
        f"temporary JOBCTL_HOME); once its run is `running` in the store and its process has "
        f"exec'd `sleep`, the runner gets SIGKILL and, as soon as it is reaped, a new runner is "
        f"spawned. Measured from that Popen (wall clock): the new runner's registration "
        f"(`runner.since`), the killed run's `finished_at` as `abandoned`, and the retry's "
        f"(attempt 2) `started_at`, all INTEGER ms in the runs table (polled every "
        f"{POLL_S * 1000:.0f} ms read-only); and when the orphaned `sleep` was gone (no "
        f"process with its pid and start time, or a zombie), from the Popen and from the "
        f"SIGKILL. {reps} crash(es), a fresh job each; the retry is cancelled before the next."
    )
    return common.Result(
        key="recovery",
        title="Crash recovery",
        method=method,
        headers=[
            "",
            "retry started ms",
            "registered ms",
            "abandoned ms",
            "orphan gone ms",
            "orphan lived ms (from kill)",
        ],
        rows=rows,
        samples=samples,
        notes=notes,
    )


if __name__ == "__main__":
    print(common.render(measure("--quick" in sys.argv[1:], set())))
