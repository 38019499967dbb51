"""Several runners on one PostgreSQL store (SPEC 8): every fire once, overlap and mutex rules
across machines, takeover of a dead or cut-off runner's runs, the database's clock.

Each runner plays its own machine (JOBCTL_HOST=h1, h2, ...). Jobs write their side effects
(run key, attempt, host, start and end times) to files outside the database, and the checks
read those, not only the history the system under test reports. Skipped, with one line, when
no PostgreSQL server can be had (never under CI=true: tests/pg.py).
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.e2e.conftest import Env, pid_alive
from tests.waiting import wait_for


def member(e: Env, host: str, *args: str, url: str | None = None) -> object:
    env = {"JOBCTL_HOST": host}
    if url is not None:
        env["JOBCTL_STORE"] = url
    return e.start_runner("--lease", "3s", *args, log=f"{host}.log", env=env)


def effects(path: Path) -> list[list[str]]:
    """The side effects jobs wrote, one list of fields per line (complete lines only)."""
    if not path.exists():
        return []
    return [line.split() for line in path.read_text().splitlines() if line.endswith(" end")]


RECORD = 'echo "$JOBCTL_RUN_KEY $JOBCTL_ATTEMPT $JOBCTL_HOST $(date +%s.%N)'


def trapping(out: Path) -> str:
    """A long job that, on SIGTERM, writes its start and end times to `out` and exits 1. It
    writes its sleep's pid to `out`.ready: wait on `ready` before signalling it (a TERM that
    came before its trap, or while the shell was still forking the sleep, whose copy of the
    shell has the trap too, would not be written down once)."""
    return (f's=$(date +%s.%N); trap \'echo "$JOBCTL_RUN_KEY $JOBCTL_ATTEMPT $JOBCTL_HOST $s '
            f'$(date +%s.%N) end" >> {out}; exit 1\' TERM; sleep 60 & echo $! >> {out}.ready; '
            "wait")  # fmt: skip


def ready(out: Path, n: int = 1) -> bool:
    """Whether `n` runs of a `trapping` job have set their trap and exec'd their sleep."""
    marks = out.with_name(out.name + ".ready")
    pids = marks.read_text().split() if marks.exists() else []
    return len(pids) >= n and all(_exec_done(int(pid)) for pid in pids[:n])


def _exec_done(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() == "sleep"
    except OSError:  # gone: it ran (or died) as sleep, not as a copy of the shell
        return True


def test_three_runners_run_each_fire_once(fleet: Env, tmp_path: Path) -> None:
    out = tmp_path / "fires"
    fleet.run("add", "tick", "--cron", "* * * * * *", "--shell", "--",
              f'{RECORD} $(date +%s.%N) end" >> {out}', check=True)  # fmt: skip
    for host in ("h1", "h2", "h3"):
        member(fleet, host)
    wait_for(lambda: len(effects(out)) >= 8, timeout=30)
    shown = fleet.run("status", check=True).stdout
    assert "runners: 3 active" in shown and all(h in shown for h in ("h1", "h2", "h3"))
    fleet.run("pause", "tick", check=True)
    wait_for(lambda: not [r for r in fleet.runs() if r["status"] == "running"])
    done = effects(out)
    keys = Counter((d[0], d[1]) for d in done)
    assert max(keys.values()) == 1, keys.most_common(3)  # no fire executed twice
    runs = [r for r in fleet.runs("tick") if r["status"] != "cancelled"]
    fires = sorted({r["scheduled_for"] for r in runs})
    assert len(fires) == len(runs)  # one run per fire in the history too
    executed = {d[0] for d in done}
    assert executed <= {r["run_key"] for r in runs}  # every execution is a recorded fire
    statuses = Counter(r["status"] for r in runs)
    # on a loaded machine a fire may find the previous one still open: skipped (overlap)
    assert set(statuses) <= {"succeeded", "queued", "running", "skipped"}, statuses
    seconds = sorted(datetime.fromisoformat(f).timestamp() for f in fires)
    assert all(b - a == 1.0 for a, b in itertools.pairwise(seconds))  # no second missing


def intervals(path: Path) -> list[tuple[float, float, str]]:
    return sorted((float(d[3]), float(d[4]), d[2]) for d in effects(path))


def overlaps(spans: list[tuple[float, float, str]]) -> list[tuple]:
    return [(a, b) for a, b in itertools.pairwise(spans) if b[0] < a[1]]


def test_overlap_skip_and_mutex_hold_across_runners(fleet: Env, tmp_path: Path) -> None:
    """A 3 s `--overlap skip` job firing every second never runs twice at once, wherever it
    runs; two jobs of one mutex never run at once."""
    slow, mutex = tmp_path / "slow", tmp_path / "mutex"
    fleet.run("add", "slow", "--cron", "* * * * * *", "--overlap", "skip", "--shell", "--",
              f's=$(date +%s.%N); sleep 3; echo "$JOBCTL_RUN_KEY $JOBCTL_ATTEMPT $JOBCTL_HOST '
              f'$s $(date +%s.%N) end" >> {slow}', check=True)  # fmt: skip
    for name in ("m1", "m2"):
        fleet.run("add", name, "--cron", "* * * * * *", "--mutex", "db", "--overlap", "skip",
                  "--shell", "--", f's=$(date +%s.%N); sleep 0.7; echo "$JOBCTL_RUN_KEY '
                  f'$JOBCTL_ATTEMPT $JOBCTL_HOST $s $(date +%s.%N) end" >> {mutex}',
                  check=True)  # fmt: skip
    for host in ("h1", "h2", "h3"):
        member(fleet, host)
    wait_for(lambda: len(effects(slow)) >= 3 and len(effects(mutex)) >= 6, timeout=40)
    fleet.run("pause", "slow", "m1", "m2", check=True)
    wait_for(lambda: not [r for r in fleet.runs() if r["status"] == "running"], timeout=20)
    assert overlaps(intervals(slow)) == []
    assert overlaps(intervals(mutex)) == []
    hosts = {h for _, _, h in intervals(slow) + intervals(mutex)}
    assert len(hosts) >= 2  # the work was spread: the rules held between machines


def test_killed_runner_is_taken_over_after_its_lease(fleet: Env, tmp_path: Path) -> None:
    """kill -9 of the runner of a long run: once its 3 s lease expires another runner records
    it abandoned ("lease expired") and runs the retry."""
    out = tmp_path / "long"
    fleet.run("add", "long", "--every", "1h", "--retries", "1", "--retry-delay", "0s",
              "--shell", "--", f'{RECORD} x end" >> {out}; sleep 30', check=True)  # fmt: skip
    a = member(fleet, "h1")
    fleet.run("run", "long", "--detach", check=True)
    wait_for(lambda: len(effects(out)) == 1)
    member(fleet, "h2")
    killed_at = time.time()
    os.kill(a.pid, signal.SIGKILL)  # type: ignore[attr-defined]
    wait_for(lambda: len(effects(out)) == 2, timeout=20)
    took = time.time() - killed_at
    first, second = effects(out)
    assert (first[1], first[2], second[1], second[2]) == ("1", "h1", "2", "h2")
    runs = {r["attempt"]: r for r in fleet.runs("long")}
    assert runs[1]["status"] == "abandoned" and "lease expired" in runs[1]["error"]
    assert runs[2]["status"] == "running"
    assert took < 15  # lease 3 s + a renewal period: generous for a loaded machine
    orphan = runs[1]["pid"]
    assert orphan and pid_alive(orphan)  # kill -9 left attempt 1's job running on h1
    member(fleet, "h1")  # a runner starting again on h1 terminates it
    wait_for(lambda: "terminated its left-over process groups" in fleet.log("h1.log"), timeout=20)
    assert not pid_alive(orphan)
    fleet.run("cancel", str(runs[2]["id"]), check=True)


def test_a_stopping_runner_keeps_its_lease_while_its_runs_finish(
    fleet: Env, tmp_path: Path
) -> None:
    """SIGTERM lets a running job finish for --grace: meanwhile the runner renews its lease,
    so no other runner reaps the run and runs it again (QA pass: with a job longer than the
    lease, the others took it over, abandoned and retried it, and its real end was refused)."""
    out = tmp_path / "long"
    fleet.run("add", "long", "--every", "1h", "--retries", "1", "--retry-delay", "0s",
              "--shell", "--", f'sleep 8; {RECORD} x end" >> {out}', check=True)  # fmt: skip
    a = member(fleet, "h1", "--grace", "30s")
    fleet.run("run", "long", "--detach", check=True)
    wait_for(lambda: [r["status"] for r in fleet.runs("long")] == ["running"])
    member(fleet, "h2")
    os.kill(a.pid, signal.SIGTERM)  # type: ignore[attr-defined]
    a.wait(timeout=60)  # type: ignore[attr-defined]
    (run,) = fleet.runs("long")  # one run: never reaped, never retried
    assert (run["status"], run["attempt"]) == ("succeeded", 1), run
    assert [e[2] for e in effects(out)] == ["h1"]
    assert "refused" not in fleet.log("h1.log") and "abandoned" not in fleet.log("h2.log")


def test_a_fleet_that_was_all_down_applies_the_misfire_policy(fleet: Env) -> None:
    """No runner held a live lease: fires due before a runner's start were missed while no
    runner was up, and follow the misfire policy however recent (QA pass: a 10 s stop of the
    whole fleet ran every missed fire of --misfire skip and once jobs)."""
    import psycopg

    start_at = datetime.fromtimestamp(int(time.time()) - 100).astimezone().isoformat()
    fleet.run("add", "m", "--every", "2s", "--start-at", start_at, "--misfire", "skip",
              "--overlap", "allow", "--", "true", check=True)  # fmt: skip
    with psycopg.connect(fleet.env["JOBCTL_STORE"], autocommit=True) as conn:
        conn.execute("UPDATE jobs SET next_run_at = next_run_at - 10000 WHERE name = 'm'")
    up = time.time()
    member(fleet, "h1")
    wait_for(lambda: len([r for r in fleet.runs("m") if r["status"] == "skipped"]) >= 5)
    before = [r for r in fleet.runs("m")
              if datetime.fromisoformat(r["scheduled_for"]).timestamp() < up - 0.5]  # fmt: skip
    assert before and {(r["trigger"], r["status"]) for r in before} == {("catchup", "skipped")}


def test_cut_off_runner_fences_itself_before_another_takes_over(
    fleet: Env, tmp_path: Path, pg_url: str
) -> None:
    """A runner cut off from the database terminates its jobs before its lease expires; the
    run is then taken over by another runner, and the two attempts never overlap; once the
    network is back, the cut-off runner registers again."""
    from tests.proxy import Proxy

    parts = urlsplit(pg_url)
    proxy = Proxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    via = pg_url.replace(f"{parts.hostname}:{parts.port}", f"127.0.0.1:{proxy.port}", 1)
    out = tmp_path / "long"
    try:
        fleet.run("add", "long", "--every", "1h", "--retries", "1", "--retry-delay", "0s",
                  "--shell", "--", trapping(out), check=True)  # fmt: skip
        member(fleet, "h1", url=via)
        fleet.run("run", "long", "--detach", check=True)
        wait_for(lambda: any(r["status"] == "running" for r in fleet.runs("long")))
        wait_for(lambda: ready(out))  # its trap set: a TERM now is written down
        member(fleet, "h2")
        proxy.partition()
        wait_for(lambda: len(effects(out)) == 1, timeout=20)  # h1 stopped its job
        wait_for(lambda: any(r["attempt"] == 2 and r["status"] == "running"
                             for r in fleet.runs("long")), timeout=20)  # fmt: skip
        proxy.restore()
        wait_for(lambda: "registered again" in fleet.log("h1.log"), timeout=30)
        fleet.run("cancel", str(next(r["id"] for r in fleet.runs("long") if r["attempt"] == 2)),
                  check=True)  # fmt: skip
        wait_for(lambda: len(effects(out)) == 2, timeout=20)
        (_, a_end, a_host), (b_start, _, b_host) = intervals(out)
        assert (a_host, b_host) == ("h1", "h2")
        assert a_end < b_start  # fenced before the takeover: no overlap
        assert "fenced" in fleet.log("h1.log")
        runs = {r["attempt"]: r for r in fleet.runs("long")}
        assert runs[1]["status"] == "abandoned"
    finally:
        proxy.close()


def test_a_runner_whose_clock_is_off_fires_on_the_databases_time(
    fleet: Env, tmp_path: Path
) -> None:
    """The runner's own clock is 90 s ahead (and another's 90 s behind): fires start on
    time by the database's clock, never early, never 90 s late."""
    out = tmp_path / "ticks"
    fleet.run("add", "tick", "--cron", "* * * * * *", "--shell", "--",
              f'echo "$JOBCTL_SCHEDULED_FOR $(date +%s.%N) $JOBCTL_HOST end" >> {out}',
              check=True)  # fmt: skip
    fleet.env["JOBCTL_TEST_CLOCK_SKEW"] = "90"
    member(fleet, "ahead")
    fleet.env["JOBCTL_TEST_CLOCK_SKEW"] = "-90"
    member(fleet, "behind")
    del fleet.env["JOBCTL_TEST_CLOCK_SKEW"]
    wait_for(lambda: len(effects(out)) >= 6, timeout=30)
    fleet.run("pause", "tick", check=True)
    from datetime import datetime

    for sched, started, host, _ in effects(out):
        lateness = float(started) - datetime.fromisoformat(sched).timestamp()
        assert -0.05 < lateness < 2.0, (host, lateness)


def test_detach_from_another_machine_starts_within_a_notification(fleet: Env) -> None:
    """No signal can cross machines: an idle runner hears of `run --detach` by NOTIFY."""
    fleet.run("add", "job", "--every", "1d", "--", "true", check=True)
    member(fleet, "h1")
    time.sleep(0.5)  # let it settle into its idle sleep (up to 5 s)
    took = []
    for _ in range(3):
        t0 = time.time()
        run = json.loads(fleet.run("run", "job", "--detach", "--json", check=True).stdout)
        wait_for(lambda r=run: any(x["id"] == r["id"] and x["status"] == "succeeded"
                                   for x in fleet.runs("job")))  # fmt: skip
        took.append(time.time() - t0)
    # the polling fallback is 5 s: a notification is what makes it quick
    assert min(took) < 3.0, took


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_runners_carry_on_through_a_database_restart(fleet: Env, pg_server, mode: str) -> None:
    """pg_ctl restart (clients cut; `immediate` is a crash and recovery): the runners
    reconnect with backoff and keep firing, with no fire run twice."""
    if pg_server.cluster is None:
        pytest.skip("needs the tests' own throwaway cluster to restart")
    fleet.run("add", "tick", "--cron", "* * * * * *", "--", "true", check=True)
    member(fleet, "h1", "--lease", "15s")
    member(fleet, "h2", "--lease", "15s")
    wait_for(lambda: len([r for r in fleet.runs("tick") if r["status"] == "succeeded"]) >= 2)
    wait_for(lambda: "runners: 2 active" in fleet.run("status", check=True).stdout)
    # the throwaway cluster commits asynchronously (synchronous_commit off, for speed): a
    # crash would lose the last commits, a runner's registration among them on a loaded
    # machine, and that runner would rightly fence itself; a server that keeps what it
    # committed is what this test is about, so the WAL is written out first
    import psycopg

    with psycopg.connect(pg_server.url, autocommit=True) as conn:
        conn.execute("CHECKPOINT")
    pg_server.cluster.restart(mode)
    back = time.time()
    wait_for(lambda: len([r for r in fleet.runs("tick") if r["status"] == "succeeded"
                          and datetime.fromisoformat(r["scheduled_for"]).timestamp() > back + 1])
             >= 3, timeout=40)  # fmt: skip
    assert all(p.poll() is None for p in fleet.runners)  # both still up
    runs = fleet.runs("tick")
    assert len({r["scheduled_for"] for r in runs}) == len(runs)
    assert "fenced" not in fleet.log("h1.log") + fleet.log("h2.log")  # shorter than lease/2


def test_cancel_from_another_machine_reaches_the_runner(fleet: Env) -> None:
    """`cancel` on a machine that is not the run's: no signal can reach it; the runner hears
    of the request by notification, stops the job and records it."""
    fleet.run("add", "long", "--every", "1d", "--", "sleep", "60", check=True)
    member(fleet, "h1")
    run = json.loads(fleet.run("run", "long", "--detach", "--json", check=True).stdout)
    wait_for(lambda: any(r["status"] == "running" and r["pid"] for r in fleet.runs("long")))
    fleet.env["JOBCTL_HOST"] = "elsewhere"
    t0 = time.time()
    done = fleet.run("cancel", str(run["id"]), check=True)
    took = time.time() - t0
    del fleet.env["JOBCTL_HOST"]
    (final,) = fleet.runs("long")
    assert final["status"] == "cancelled" and final["host"] == "h1", (final, done.stdout)
    assert took < 15


def test_a_frozen_runner_fences_itself_when_it_wakes(fleet: Env, tmp_path: Path) -> None:
    """SIGSTOP longer than the lease (a VM pause): another runner takes the run over; when
    the frozen one wakes it finds its lease gone, terminates its job (its end is refused),
    registers again and carries on. The overlap lasts until it wakes (README: limits)."""
    out = tmp_path / "long"
    fleet.run("add", "long", "--every", "1h", "--retries", "1", "--retry-delay", "0s",
              "--shell", "--", trapping(out), check=True)  # fmt: skip
    a = member(fleet, "h1")
    fleet.run("run", "long", "--detach", check=True)
    wait_for(lambda: any(r["status"] == "running" and r["pid"] for r in fleet.runs("long")))
    wait_for(lambda: ready(out))  # its trap set: a TERM now is written down
    member(fleet, "h2")
    os.kill(a.pid, signal.SIGSTOP)  # type: ignore[attr-defined]
    try:
        wait_for(lambda: any(r["attempt"] == 2 and r["status"] == "running"
                             for r in fleet.runs("long")), timeout=20)  # fmt: skip
    finally:
        os.kill(a.pid, signal.SIGCONT)  # type: ignore[attr-defined]
    woke = time.time()
    wait_for(lambda: len(effects(out)) == 1, timeout=20)  # h1 terminated its job on waking
    ((_, a_end, a_host),) = intervals(out)
    assert a_host == "h1" and a_end - woke < 10
    wait_for(lambda: "registered again" in fleet.log("h1.log"), timeout=20)
    runs = {r["attempt"]: r for r in fleet.runs("long")}
    assert runs[1]["status"] == "abandoned" and runs[2]["status"] == "running"
    assert "lease expired" in runs[1]["error"]
    fleet.run("cancel", str(runs[2]["id"]), check=True)


def test_a_runner_restarted_at_once_kills_the_orphans_before_the_takeover(
    fleet: Env, tmp_path: Path
) -> None:
    """kill -9, then a runner started again on that machine at once (a service manager's
    restart): it terminates the dead runner's job before its lease expires, so the retry
    never overlaps it."""
    out = tmp_path / "long"
    fleet.run("add", "long", "--every", "1h", "--retries", "1", "--retry-delay", "0s",
              "--shell", "--", trapping(out), check=True)  # fmt: skip
    a = member(fleet, "h1", "--lease", "6s")
    fleet.run("run", "long", "--detach", check=True)
    wait_for(lambda: any(r["status"] == "running" and r["pid"] for r in fleet.runs("long")))
    wait_for(lambda: ready(out))  # its trap set: a TERM now is written down (it was not,
    # at times: killed at once, the job died silently and the test waited for its line)
    os.kill(a.pid, signal.SIGKILL)  # type: ignore[attr-defined]
    member(fleet, "h1", "--lease", "6s")
    wait_for(lambda: len(effects(out)) == 1, timeout=20)  # the orphan was terminated
    # running, with its start recorded (a direct spawn's goes with the runner's next write)
    wait_for(lambda: any(r["attempt"] == 2 and r["status"] == "running" and r["started_at"]
                         for r in fleet.runs("long")), timeout=30)  # fmt: skip
    runs = {r["attempt"]: r for r in fleet.runs("long")}
    ((_, orphan_end, _),) = intervals(out)
    assert orphan_end < datetime.fromisoformat(runs[2]["started_at"]).timestamp()
    fleet.run("cancel", str(runs[2]["id"]), check=True)
