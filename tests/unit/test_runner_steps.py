"""Runner steps with an injectable clock and a real (temporary) SQLite store: firing,
rewinding after a backward clock step, recovering runs it lost track of."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from jobctl import owners
from jobctl.clock import FakeClock
from jobctl.models import Job, Run
from jobctl.records import replace
from jobctl.runner import Runner
from jobctl.store.base import RunFilter
from jobctl.store.sqlite import SQLiteStore

T0 = 1_800_000_000.0  # a whole minute


def setup(tmp_path: Path, **job_kw) -> tuple[SQLiteStore, Runner, FakeClock]:
    store = SQLiteStore(tmp_path / "jobctl.db")
    clock = FakeClock(T0)
    job_kw.setdefault("schedule", "* * * * *")
    job_kw.setdefault("schedule_kind", "cron")
    store.add_job(Job(name="j", command=["true"], tz="UTC", next_run_at=T0 + 60, **job_kw))
    return store, Runner(store, clock=clock), clock


def test_fire_due_records_each_fire_once_and_advances(tmp_path: Path) -> None:
    store, runner, clock = setup(tmp_path)
    runner.fire_due(T0 + 30)
    assert store.list_runs(RunFilter()) == []  # not due yet
    clock.advance(60)
    runner.fire_due(clock.now())
    runner.fire_due(clock.now())  # a second pass finds nothing new
    runs = store.list_runs(RunFilter())
    assert [(r.scheduled_for, r.trigger, r.status) for r in runs] == [
        (T0 + 60, "schedule", "queued")
    ]
    assert store.get_job("j").next_run_at == T0 + 120


def test_backward_clock_step_reschedules_wildcard_but_not_fixed_jobs(tmp_path: Path) -> None:
    store, runner, _ = setup(tmp_path)
    store.add_job(Job(name="fixed", command=["true"], tz="UTC", schedule="30 1 * * *",
                      schedule_kind="cron", next_run_at=T0 + 3600))  # fmt: skip
    runner.rewind(T0 - 600, -600)  # the clock went back 10 minutes
    assert store.get_job("j").next_run_at == T0 - 540  # fires again each minute from the new now
    assert store.get_job("fixed").next_run_at == T0 + 3600  # never twice


def test_rewind_never_fires_again_what_has_fired(tmp_path: Path) -> None:
    store, runner, clock = setup(tmp_path, keep_runs=1)
    for _ in range(3):  # fires T0+60, T0+120, T0+180; keep-runs 1 prunes the older runs
        clock.advance(60)
        runner.fire_due(clock.now())
        for r in store.list_runs(RunFilter(statuses=["queued"])):
            store.finish_run(replace(r, status="succeeded"), keep_runs=1)
    assert store.get_job("j").fired_through == T0 + 180
    runner.rewind(T0 + 30, -150)  # the clock went back 2.5 minutes
    assert store.get_job("j").next_run_at == T0 + 240
    clock.advance(70)  # T0 + 250
    runner.fire_due(clock.now())
    fired = sorted(r.scheduled_for for r in store.list_runs(RunFilter()))
    assert fired[-1] == T0 + 240 and len(fired) == len(set(fired))


def test_recover_abandons_own_runs_it_lost_track_of(tmp_path: Path) -> None:
    store, runner, _ = setup(tmp_path, retries=1)
    lost = store.add_run(Run(job="j", scheduled_for=T0, status="running", owner=runner.owner))
    dead_owner = store.add_run(
        Run(job="j", scheduled_for=T0 + 1, status="running", owner="gone:999999:1")
    )
    alive = store.add_run(Run(job="j", scheduled_for=T0 + 2, status="running", owner=owners.me()))
    runner.owner = "runner:1:1"  # (the test process itself plays a live foreground owner)
    lost = store.update_run(lost.id, owner=runner.owner)
    runner.recover(T0 + 10)
    status = {r.id: r.status for r in store.list_runs(RunFilter())}
    assert status[lost.id] == "abandoned" and status[dead_owner.id] == "abandoned"
    assert status[alive.id] == "running"
    retries = store.list_runs(RunFilter(statuses=["queued"]))
    assert sorted((r.scheduled_for, r.attempt, r.trigger) for r in retries) == [
        (T0, 2, "retry"),
        (T0 + 1, 2, "retry"),
    ]


def test_a_job_whose_schedule_breaks_is_paused_not_fatal(tmp_path: Path) -> None:
    store, runner, clock = setup(tmp_path)
    store.add_job(Job(name="broken", command=["true"], tz="Gone/Zone", schedule="* * * * *",
                      schedule_kind="cron", next_run_at=T0))  # fmt: skip
    events: list[tuple[str, str]] = []
    runner.emit = lambda e, t: events.append((e, t))
    clock.advance(60)
    runner.fire_due(clock.now())
    assert store.get_job("broken").state == "paused"
    assert any(e == "error" and "broken" in t for e, t in events)
    assert [r.job for r in store.list_runs(RunFilter())] == ["j"]  # the healthy job still fired


def test_orphans_get_their_own_kill_grace(tmp_path: Path) -> None:
    """The stubborn group is SIGKILLed after its own short grace, while the meek job's grace
    (an hour) has barely begun: the call returns at all, and the stubborn group died by
    SIGKILL. Were every group given the longest grace, the call would not return for an hour
    (the deadline below fails it long before)."""
    import contextlib
    import os
    import signal
    import subprocess
    import threading

    from tests.waiting import DEADLINE_S, wait_for

    _store, runner, _ = setup(tmp_path)
    jobs = {
        "stubborn": Job(name="stubborn", command=["x"], kill_grace_s=0.3),
        "meek": Job(name="meek", command=["x"], kill_grace_s=3600.0),
    }
    ready = tmp_path / "trapped"
    procs = {
        "stubborn": subprocess.Popen(["sh", "-c", f'trap "" TERM; : > {ready}; sleep 600 & wait'],
                                     start_new_session=True),
        "meek": subprocess.Popen(["sleep", "600"], start_new_session=True),
    }  # fmt: skip
    try:
        wait_for(ready.exists)  # the shell has set its trap
        runs = [
            Run(job=name, scheduled_for=T0, id=i, status="running", pid=p.pid,
                proc_start=owners.proc_start_time(p.pid))
            for i, (name, p) in enumerate(procs.items(), 1)
        ]  # fmt: skip
        killed: list[dict[int, set[int]]] = []
        call = threading.Thread(
            target=lambda: killed.append(runner._kill_orphans(runs, jobs)), daemon=True
        )
        call.start()
        call.join(DEADLINE_S)
        assert not call.is_alive(), "still waiting: the meek job's hour of grace was applied"
        assert set(killed[0]) == {1, 2}
        assert procs["stubborn"].wait(timeout=DEADLINE_S) == -9  # SIGKILL after its grace
        assert procs["meek"].wait(timeout=DEADLINE_S) == -15  # SIGTERM was enough
    finally:
        for p in procs.values():  # (ends a stuck call too: its groups are then gone)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def test_an_orphan_found_by_pid_and_by_marker_gets_one_sigterm(tmp_path: Path) -> None:
    """A run's group found both ways (its recorded pid and start time, and its processes'
    markers) is sent one SIGTERM: its job's TERM trap runs once. (Twice, a cleanup ran
    twice, and the fleet test that counts the trap's lines failed now and then.)"""
    import contextlib
    import os
    import subprocess
    import sys

    from tests.waiting import DEADLINE_S, wait_for

    _store, runner, _ = setup(tmp_path)
    owner, count, ready = "gone:999999:1", tmp_path / "terms", tmp_path / "trapped"
    run_id = os.getpid()  # markers no other test's process (another run of this one) has
    env = dict(os.environ, JOBCTL_RUN_ID=str(run_id), JOBCTL_OWNER=owner)
    code = ("import signal, sys, time\n"  # no fork: a shell's forked copy has its trap too
            "def term(*_):\n"
            f"    with open({str(count)!r}, 'a') as f:\n"
            "        f.write('term\\n')\n"
            "    time.sleep(0.3)  # a second TERM would land here and write again\n"
            "    sys.exit(1)\n"
            "signal.signal(signal.SIGTERM, term)\n"
            f"open({str(ready)!r}, 'w').close()\n"
            "time.sleep(600)\n")  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, start_new_session=True)
    try:
        wait_for(ready.exists)  # the handler is set
        run = Run(job="j", scheduled_for=T0, id=run_id, status="running", owner=owner, pid=proc.pid,
                  proc_start=owners.proc_start_time(proc.pid))  # fmt: skip
        killed = runner._kill_orphans([run], {"j": Job(name="j", command=["x"])})
        assert killed == {run_id: {proc.pid}}
        assert proc.wait(timeout=DEADLINE_S) == 1  # ended by its trap, not by a SIGKILL
        assert count.read_text().splitlines() == ["term"]
    finally:
        with contextlib.suppress(ProcessLookupError):  # the whole group, whatever happened
            os.killpg(proc.pid, 9)
        proc.wait()


def test_recover_finds_an_unrecorded_process_by_its_marker(tmp_path: Path) -> None:
    """A runner killed between spawning a run and recording its pid (or its start time)
    leaves a process that only its JOBCTL_RUN_ID and JOBCTL_OWNER name: recovery finds and
    terminates it, and leaves a look-alike of another run alone."""
    import os
    import subprocess

    store, runner, _ = setup(tmp_path)
    dead = "gone:999999:1"
    lost = store.add_run(Run(job="j", scheduled_for=T0, status="running", owner=dead))
    half = store.add_run(Run(job="j", scheduled_for=T0 + 1, status="running", owner=dead))

    def spawn(run_id: int, owner: str) -> subprocess.Popen[bytes]:
        env = dict(os.environ, JOBCTL_RUN_ID=str(run_id), JOBCTL_OWNER=owner)
        return subprocess.Popen(["sleep", "30"], env=env, start_new_session=True)

    procs = [spawn(lost.id, dead), spawn(half.id, dead), spawn(lost.id, "other:1:1")]
    try:
        store.update_run(half.id, pid=procs[1].pid)  # pid recorded, start time not yet
        runner.recover(T0 + 10)
        assert procs[0].wait(timeout=30) == -15 and procs[1].wait(timeout=30) == -15
        assert procs[2].poll() is None  # another owner's run: not ours to kill
        for r in (lost, half):
            got = store.get_run(r.id)
            assert got.status == "abandoned" and "was terminated" in (got.error or "")
    finally:
        for p in procs:
            p.kill()
            p.wait()


def test_workers_chain_runs_without_exceeding_the_worker_count(tmp_path: Path) -> None:
    """A worker that finishes a run claims the next itself: the queue drains through at most
    `workers` processes at a time (each run records its overlap with the others)."""
    import time

    from jobctl.clock import SystemClock

    store = SQLiteStore(tmp_path / "jobctl.db")
    log = tmp_path / "log"
    # each run ends only once 3 runs have started (or after 30 s, so that a runner that runs
    # fewer at once fails the peak check below instead of hanging): the first three must run
    # side by side, however slowly the machine starts them
    three = f'[ "$(grep -c "^+" {log})" -ge 3 ]'
    cmd = (f'echo "+ $(date +%s%N)" >> {log}; i=0; '
           f'while ! {three} && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done; '
           f'echo "- $(date +%s%N)" >> {log}')  # fmt: skip
    now = time.time()
    for i in range(12):
        store.add_job(Job(name=f"j{i}", command=[cmd], shell=True, tz="UTC"))
        store.add_run(Run(job=f"j{i}", scheduled_for=now, not_before=now, trigger="manual"))
    Runner(store, workers=3, clock=SystemClock()).run(once=True)
    assert {r.status for r in store.list_runs(RunFilter())} == {"succeeded"}
    events = sorted(
        (int(t), 1 if s == "+" else -1) for s, t in map(str.split, log.read_text().splitlines())
    )
    depth = peak = 0
    for _, d in events:
        depth += d
        peak = max(peak, depth)
    assert len(events) == 24 and peak == 3  # never more than 3, and 3 did run side by side


def test_free_slots_are_claimed_in_one_transaction_and_ends_recorded_in_batches(
    tmp_path: Path,
) -> None:
    """The first claim takes a run for every free slot at once (one claim call), and the
    runs to wait ahead of them (2 x workers, at most 8), and every end is recorded through
    finish_runs (the batch), never one finish_run per run."""
    from jobctl.clock import SystemClock

    store = SQLiteStore(tmp_path / "jobctl.db")
    now = time.time()
    for i in range(8):
        store.add_job(Job(name=f"j{i}", command=["true"], tz="UTC", cwd=str(tmp_path)))
        store.add_run(Run(job=f"j{i}", scheduled_for=now, not_before=now, trigger="manual"))
    claims: list[tuple[int, int]] = []  # (limit, claimed)
    batches: list[int] = []
    real_claim, real_finish = store.claim, store.finish_runs

    def claim(owner, host, at, limit, pick, epoch=None, due_by=None):  # type: ignore[no-untyped-def]
        out = real_claim(owner, host, at, limit, pick, epoch=epoch, due_by=due_by)
        claims.append((limit, len(out)))
        return out

    def finish_runs(ends, fence=None, started=()):  # type: ignore[no-untyped-def]
        batches.append(len(ends))
        return real_finish(ends, fence=fence, started=started)

    def finish_run(*args, **kw):  # type: ignore[no-untyped-def]
        raise AssertionError("one end at a time: the pool records ends in batches")

    store.claim, store.finish_runs = claim, finish_runs  # type: ignore[method-assign]
    store.finish_run = finish_run  # type: ignore[method-assign]
    Runner(store, workers=4, clock=SystemClock()).run(once=True)
    assert {r.status for r in store.list_runs(RunFilter())} == {"succeeded"}
    assert claims[0] == (4 + 8, 8)  # every free slot and 8 ahead in the first claim
    assert sum(batches) == 8
    assert sum(n for _, n in claims) == 8


def test_a_run_stopped_before_its_gate_opens_never_runs(tmp_path: Path) -> None:
    """A run claimed ahead of its time (spawned gated) and cancelled before that time is
    recorded cancelled, and its command never runs (the gate is not opened)."""
    from jobctl.clock import SystemClock
    from tests.waiting import wait_for

    store = SQLiteStore(tmp_path / "jobctl.db")
    ran = tmp_path / "ran"
    store.add_job(Job(name="g", command=["touch", str(ran)], tz="UTC", cwd=str(tmp_path)))
    at = time.time() + 3.0  # later than the cancel below, however loaded the machine
    store.add_run(Run(job="g", scheduled_for=at, not_before=at, trigger="manual"))
    runner = Runner(store, workers=1, clock=SystemClock())
    runner.start_queued(at)  # claimed (and spawned, gated) ahead of its time
    (entry,) = runner.active.values()
    assert entry.gated
    runner._terminate(entry.run, "cancelled", "cancelled")
    wait_for(lambda: not runner.active)
    (run,) = store.list_runs(RunFilter(job="g"))
    assert (run.status, run.started_at) == ("cancelled", None)
    time.sleep(max(0.0, at - time.time()) + 0.3)  # past its time: the gate stayed shut
    assert not ran.exists()


def test_gates_open_every_due_gate_at_once_and_only_once() -> None:
    from jobctl.runner import Gates

    class Proc:
        def __init__(self) -> None:
            self.released = 0

        def release(self) -> None:
            self.released += 1

    gates = Gates()
    early, same, later = Proc(), Proc(), Proc()
    gates.add(10.0, early)  # type: ignore[arg-type]
    gates.add(10.0, same)  # type: ignore[arg-type]
    gates.add(11.0, later)  # type: ignore[arg-type]
    gates.open_due(10.0)  # the first worker awake opens both gates due at 10
    assert (early.released, same.released, later.released) == (1, 1, 0)
    gates.open_due(10.5)  # the second worker finds its gate open: nothing twice
    assert (early.released, same.released) == (1, 1)
    assert gates.withdraw(same) is False  # already open: it runs even if we are stopping
    assert gates.withdraw(later) is True  # still closed: taken back, never opened
    gates.open_due(20.0)
    assert later.released == 0


def test_recover_never_takes_a_run_a_worker_is_claiming(tmp_path: Path) -> None:
    """recover() (the loop's maintenance) running while a worker thread claims its next run
    must not take that run for one lost by a dead runner (it would be killed and retried)."""
    import threading
    import time

    from jobctl.clock import SystemClock
    from tests.waiting import DEADLINE_S, wait_for

    store = SQLiteStore(tmp_path / "jobctl.db")
    now = time.time()
    store.add_job(Job(name="a", command=["true"], tz="UTC", cwd=str(tmp_path)))
    store.add_job(Job(name="b", command=["sleep", "0.3"], tz="UTC", cwd=str(tmp_path), retries=1))
    store.add_run(Run(job="a", scheduled_for=now, not_before=now, trigger="manual"))
    store.add_run(Run(job="b", scheduled_for=now, not_before=now, trigger="manual"))
    runner = Runner(store, workers=1, clock=SystemClock())
    real_claim = store.claim
    calls: list[int] = []
    entered = threading.Event()

    def recover() -> None:
        entered.set()
        runner.recover(time.time())

    recovering = threading.Thread(target=recover)

    def claim(*args, **kw):  # type: ignore[no-untyped-def]
        out = real_claim(*args, **kw)
        calls.append(len(out))
        if len(calls) == 2:  # the worker has claimed b and not yet registered it
            recovering.start()
            assert entered.wait(DEADLINE_S)  # recover() has begun
            # give it the chance to take b in between; a recover() that does not wait for the
            # claim to be registered (the bug) reads the store and ends within this
            recovering.join(0.3)
        return out

    store.claim = claim  # type: ignore[method-assign]
    runner.start_queued(time.time())  # claims a; its worker then claims b itself
    wait_for(lambda: len(calls) >= 2 and not runner.active)
    recovering.join(DEADLINE_S)
    assert not recovering.is_alive()
    runs = {(r.job, r.attempt): r.status for r in store.list_runs(RunFilter())}
    assert runs == {("a", 1): "succeeded", ("b", 1): "succeeded"}, runs


def test_a_run_spawned_directly_records_its_pid_and_start_time(tmp_path: Path) -> None:
    """`cancel` and recovery signal a group only where the pid's start time matches: a run
    spawned directly records it once it has run executor.SETTLE_S."""
    import time

    from jobctl.clock import SystemClock
    from tests.waiting import wait_for

    store = SQLiteStore(tmp_path / "jobctl.db")
    now = time.time()
    # it runs until terminated below: load cannot end it before its start time is recorded
    store.add_job(Job(name="s", command=["sleep", "600"], tz="UTC", cwd=str(tmp_path)))
    run = store.add_run(Run(job="s", scheduled_for=now, not_before=now, trigger="manual"))
    runner = Runner(store, workers=1, clock=SystemClock())
    runner.start_queued(time.time())
    try:
        got = wait_for(lambda: (r := store.get_run(run.id)).proc_start is not None and r)
        assert got.status == "running" and got.pid
        assert got.proc_start == owners.proc_start_time(got.pid)
    finally:
        runner.stop()
        wait_for(lambda: all(e.proc for e in runner.active.values()))  # spawned, if claimed
        for entry in list(runner.active.values()):
            runner._terminate(entry.run, "cancelled", "test over")
        wait_for(lambda: not runner.active)  # its worker has recorded the end


def test_execute_makes_the_claim_durable_before_any_process_exists(tmp_path: Path) -> None:
    """SPEC 7, power loss: a started run must come back `running`, never `queued`."""
    import random
    import time

    from jobctl import executor
    from jobctl.clock import SystemClock
    from jobctl.runner import execute

    store = SQLiteStore(tmp_path / "jobctl.db")
    now = time.time()
    job = store.add_job(Job(name="j", command=["true"], tz="UTC", cwd=str(tmp_path)))
    store.add_run(Run(job="j", scheduled_for=now, not_before=now, trigger="manual"))
    ((run, job),) = store.claim("me", "host", now, 1, lambda q, r, j, n: (q[:n], []))
    order: list[str] = []
    real_sync, real_start = store.sync, executor.start
    store.sync = lambda: (order.append("sync"), real_sync())[1]  # type: ignore[method-assign]
    executor.start = lambda *a, **k: (order.append("spawn"), real_start(*a, **k))[1]  # type: ignore[assignment]
    try:
        final, _ = execute(store, run, job, SystemClock(), random.Random(1))
    finally:
        executor.start = real_start  # type: ignore[assignment]
    assert final.status == "succeeded"
    assert order[:2] == ["sync", "spawn"]
    assert store._synced >= 1


def test_a_busy_store_never_delays_a_timeout(tmp_path: Path) -> None:
    """Review of 8.2: the thread that watches a job also enforces its timeout; its output
    writes must not wait on a busy store (bounded waits, then the output is held), so the
    job is stopped while the store is still busy and its end is written once it is free."""
    import random
    import threading
    import time

    from jobctl.clock import SystemClock
    from jobctl.errors import StoreError
    from jobctl.runner import execute
    from tests.e2e.conftest import pid_alive
    from tests.waiting import wait_for

    real = SQLiteStore(tmp_path / "jobctl.db")
    free = threading.Event()

    class BusyOutput:
        """The store, but an output write waits until `free` (as behind another writer's
        lock), or gives up after a bounded wait."""

        def __getattr__(self, name: str) -> object:
            return getattr(real, name)

        def append_output(self, run_id: int, data: bytes, wait_s: float | None = None) -> None:
            if not free.is_set():
                if wait_s is not None:
                    raise StoreError("database is locked")
                free.wait()
            real.append_output(run_id, data)

    now = time.time()
    real.add_job(Job(name="j", command=["sh", "-c", "while :; do echo x; sleep 0.01; done"],
                     tz="UTC", cwd=str(tmp_path), timeout_s=0.3, kill_grace_s=0.3))  # fmt: skip
    real.add_run(Run(job="j", scheduled_for=now, not_before=now, trigger="manual"))
    ((run, job),) = real.claim("me", "host", now, 1, lambda q, r, j, n: (q[:n], []))
    pids: list[int] = []
    result: list[tuple[Run, Run | None]] = []
    worker = threading.Thread(
        target=lambda: result.append(execute(BusyOutput(), run, job, SystemClock(),  # type: ignore[arg-type]
                                             random.Random(1),
                                             on_start=lambda p: pids.append(p.pid))),
        daemon=True,
    )  # fmt: skip
    worker.start()
    try:
        wait_for(lambda: pids)
        wait_for(lambda: not pid_alive(pids[0]))  # stopped while the store is still busy
    finally:
        free.set()
    worker.join(60)
    assert result and result[0][0].status == "timed_out"
    assert [r.status for r in real.list_runs(RunFilter())] == ["timed_out"]
    assert b"".join(d for _, d in real.read_output(run.id or 0)).startswith(b"x\n")


def test_a_runner_claims_only_the_jobs_its_labels_match(tmp_path: Path) -> None:
    from tests.waiting import wait_for

    store = SQLiteStore(tmp_path / "jobctl.db")
    clock = FakeClock(T0)
    for name, on in (("gpu", ["gpu"]), ("any", [])):
        store.add_job(Job(name=name, command=["true"], tz="UTC", cwd=str(tmp_path),
                          on_labels=on))  # fmt: skip
        store.add_run(Run(job=name, scheduled_for=T0, not_before=T0, trigger="manual"))

    def status() -> dict[str, str]:
        return {r.job: r.status for r in store.list_runs(RunFilter())}

    plain = Runner(store, clock=clock)
    plain.start_queued(T0)
    wait_for(lambda: status()["any"] == "succeeded" and not plain.active)
    assert status()["gpu"] == "queued"  # no runner with its label: it waits
    labelled = Runner(store, clock=clock, labels=["gpu"])
    labelled.start_queued(T0)
    wait_for(lambda: status()["gpu"] == "succeeded" and not labelled.active)


def test_reboot_fires_once_per_start_of_each_runner_that_may_run_it(tmp_path: Path) -> None:
    """@reboot: one run per runner start, only where the runner has the job's --on labels."""
    store = SQLiteStore(tmp_path / "jobctl.db")
    clock = FakeClock()
    store.add_job(Job(name="any", command=["true"], schedule="@reboot", schedule_kind="cron"))
    store.add_job(Job(name="gpu", command=["true"], schedule="@reboot", schedule_kind="cron",
                      on_labels=["gpu"]))  # fmt: skip
    plain = Runner(store, clock=clock)
    plain.since = clock.now()
    plain.fire_reboot(clock.now())
    plain.fire_reboot(clock.now())  # a retry of the same start: no second run
    clock.advance(60)
    gpu = Runner(store, clock=clock, labels=["gpu"])
    gpu.since = clock.now()
    gpu.fire_reboot(clock.now())
    runs = store.list_runs(RunFilter())
    assert sorted((r.job, r.scheduled_for) for r in runs) == [
        ("any", plain.since),
        ("any", gpu.since),
        ("gpu", gpu.since),
    ]
    store.close()


def test_missed_fires_are_told_once_per_round(tmp_path: Path) -> None:
    """Fires skipped by the misfire policy (--misfire skip after downtime) make one `missed`
    notification for the round, carrying the latest skipped fire."""
    from jobctl.notify import Notifier

    store, _, clock = setup(tmp_path, misfire="skip", notify=[["missed", "true"]])
    told: list[tuple[str, Run]] = []

    class Recorder(Notifier):
        def missed(self, job: Job, run: Run) -> None:
            told.append((job.name, run))

    runner = Runner(store, clock=clock, notifier=Recorder(lambda i, d: None))
    runner.since = T0  # the fires below were missed while it was up (held up)
    clock.advance(60 * 10)  # ten fires due at once: the newest runs late, the rest are missed
    runner.fire_due(clock.now())
    skipped = [r for r in store.list_runs(RunFilter()) if r.status == "skipped"]
    assert skipped and len(told) == 1
    name, run = told[0]
    assert name == "j" and run.scheduled_for == max(r.scheduled_for for r in skipped)
    runner.fire_due(clock.now())
    assert len(told) == 1  # nothing new missed


def test_a_gated_spawn_leaves_its_pid_in_its_mark_when_its_runner_dies(tmp_path: Path) -> None:
    """The pool spawns a run ahead of its time with its gate mark: the gate, finding its
    runner gone (its write end closed), writes its own pid there before exiting."""
    from jobctl.clock import SystemClock
    from jobctl.runner.execution import gate_mark
    from tests.waiting import wait_for

    store = SQLiteStore(tmp_path / "jobctl.db")
    gates = tmp_path / "gates"
    ran = tmp_path / "ran"
    store.add_job(Job(name="g", command=["touch", str(ran)], tz="UTC", cwd=str(tmp_path)))
    at = time.time() + 3.0
    run = store.add_run(Run(job="g", scheduled_for=at, not_before=at, trigger="manual"))
    runner = Runner(store, workers=1, clock=SystemClock(), gates=gates)
    runner.start_queued(at)
    (entry,) = runner.active.values()
    assert entry.gated and entry.spawned is not None and entry.spawned._gate is not None
    mark = gate_mark(gates, store.get_run(run.id))
    assert mark is not None and not mark.exists()
    import os

    os.close(entry.spawned._gate)  # as a kill -9 of the runner would
    entry.spawned._gate = None
    assert wait_for(lambda: mark.exists() and mark.read_text().strip())
    assert mark.read_text().strip() == str(entry.spawned.pid) == str(store.get_run(run.id).pid)
    runner._terminate(entry.run, "cancelled", "test over")
    wait_for(lambda: not runner.active)
    assert not ran.exists()


def test_recovery_requeues_a_run_only_on_its_own_gates_mark(tmp_path: Path) -> None:
    """A stale run whose mark holds its recorded pid never ran: queued again, the mark gone.
    A mark of another pid (left from an earlier spawn of the run) proves nothing: abandoned."""
    import random

    from jobctl.clock import SystemClock
    from jobctl.runner import recovery
    from jobctl.runner.execution import gate_mark

    store = SQLiteStore(tmp_path / "jobctl.db")
    gates = tmp_path / "gates"
    gates.mkdir()
    store.add_job(Job(name="g", command=["true"], tz="UTC", cwd=str(tmp_path)))
    dead = "gone:999999:1"
    said: list[str] = []
    runs = []
    for pid, written in ((4242, "4242\n"), (4343, "9999\n")):
        run = store.add_run(Run(job="g", scheduled_for=T0 + pid, not_before=T0,
                                created_at=T0, trigger="manual", status="running",
                                owner=dead, pid=pid))  # fmt: skip
        mark = gate_mark(gates, run)
        assert mark is not None
        mark.write_text(written)
        runs.append((run, mark))

    def say(kind: str, line: str) -> None:
        said.append(line)

    stale = [r for r, _ in runs]
    recovery.recover_runs(store, stale, time.time(), SystemClock(), random.Random(1), say, gates)
    (own, own_mark), (other, _) = runs
    got = store.get_run(own.id)
    assert (got.status, got.owner, got.pid, got.attempt) == ("queued", None, None, 1)
    assert not own_mark.exists()
    assert store.get_run(other.id).status == "abandoned"
    assert any(f"run {own.id} never started" in line for line in said)


def test_what_came_due_before_the_start_is_missed_and_only_that(tmp_path: Path) -> None:
    """A SQLite runner's start: fires due before it were missed while no runner was up
    (the misfire policy decides, no grace); once that round is recorded, a clock stepped back
    does not make new fires look missed (review of the misfire change)."""
    store, runner, clock = setup(tmp_path, misfire="skip")
    runner._missed_through = T0 + 70  # as run() sets it at the start (the runner's own now)
    clock.advance(70)  # the fire at T0 + 60 was due 10 s before the start
    runner.fire_due(clock.now())
    (missed,) = store.list_runs(RunFilter())
    assert (missed.scheduled_for, missed.trigger, missed.status) == (T0 + 60, "catchup",
                                                                     "skipped")  # fmt: skip
    assert runner._missed_through is None  # consumed
    clock.advance(-300)  # NTP steps the clock back 5 minutes
    runner.rewind(clock.now(), -300)
    clock.advance(300 + 55)  # T0 + 125: the fire at T0 + 120 is 5 s late, the runner up
    runner.fire_due(clock.now())
    latest = store.list_runs(RunFilter())[0]
    assert (latest.scheduled_for, latest.trigger, latest.status) == (T0 + 120, "schedule",
                                                                     "queued")  # fmt: skip


def test_a_rewind_lowers_what_counts_as_missed(tmp_path: Path) -> None:
    _, runner, clock = setup(tmp_path, misfire="skip")
    runner._missed_through = T0 + 3600  # started with the clock an hour ahead
    clock.advance(-600)
    runner.rewind(clock.now(), -3600)  # stepped back to the true time before any round
    assert runner._missed_through == clock.now()


def test_a_failed_requeue_keeps_the_gate_mark_for_the_next_recovery(tmp_path: Path) -> None:
    import random

    import pytest

    from jobctl.clock import SystemClock
    from jobctl.errors import StoreError
    from jobctl.runner import recovery
    from jobctl.runner.execution import gate_mark

    store = SQLiteStore(tmp_path / "jobctl.db")
    gates = tmp_path / "gates"
    gates.mkdir()
    store.add_job(Job(name="g", command=["true"], tz="UTC", cwd=str(tmp_path)))
    run = store.add_run(Run(job="g", scheduled_for=T0, not_before=T0, created_at=T0,
                            trigger="manual", status="running", owner="gone:9:1",
                            pid=4242))  # fmt: skip
    mark = gate_mark(gates, run)
    assert mark is not None
    mark.write_text("4242\n")
    real = store.release_runs

    def broken(*args, **kw):
        raise StoreError("database is locked")

    store.release_runs = broken  # type: ignore[method-assign]
    with pytest.raises(StoreError):
        recovery.recover_runs(store, [run], time.time(), SystemClock(), random.Random(1),
                              lambda kind, line: None, gates)  # fmt: skip
    assert mark.read_text() == "4242\n" and store.get_run(run.id).status == "running"
    store.release_runs = real  # type: ignore[method-assign]
    recovery.recover_runs(store, [run], time.time(), SystemClock(), random.Random(1),
                          lambda kind, line: None, gates)  # fmt: skip
    assert store.get_run(run.id).status == "queued" and not mark.exists()


def _waiting_case(tmp_path: Path) -> tuple[SQLiteStore, Path, dict[str, Run]]:
    """Runs of a dead runner, `running`: on its wait list of this boot still waiting, on none,
    on a list of another boot, on another owner's list, waiting with a pid, started, and
    released (back to the queue, then claimed again and not on any list since)."""
    from jobctl.runner import recovery

    store = SQLiteStore(tmp_path / "jobctl.db")
    gates = tmp_path / "gates"
    gates.mkdir()
    store.add_job(Job(name="g", command=["true"], tz="UTC", cwd=str(tmp_path)))
    dead = "gone:999999:1"
    cases = ("waited", "no list", "other boot", "other owner", "has pid", "started", "released")
    runs: dict[str, Run] = {}
    for i, case in enumerate(cases):
        run = Run(job="g", scheduled_for=T0 + i, not_before=T0, created_at=T0,
                  trigger="manual", status="running", owner=dead,
                  pid=4242 if case == "has pid" else None)  # fmt: skip
        runs[case] = store.add_run(run)
    waits = recovery.WaitList.open(gates, dead)
    assert waits is not None
    waits.add([runs[c] for c in ("waited", "has pid", "started", "released")])
    assert waits.starting(runs["started"]) and waits.release(runs["released"])
    waits.add([runs["waited"]])  # (on the list once: its record is not doubled)
    other = recovery.WaitList.open(gates, "gone:999998:1")
    assert other is not None
    other.add([runs["other owner"]])
    (gates / "before").mkdir()
    before = recovery.WaitList.open(gates / "before", dead)  # as a runner of the last boot
    assert before is not None
    before.add([runs["other boot"]])
    path = gates / "before" / f"wait-{dead}"
    text = path.read_text().replace(recovery.boot_id() or "", "another-boot", 1)
    (gates / "wait-before-reboot").write_text(text)
    return store, gates, runs


def test_recovery_requeues_a_run_that_waited_for_a_slot_when_its_runner_died(
    tmp_path: Path,
) -> None:
    """Only a run with no pid still waiting on its owner's list of this boot provably never
    started: queued again. The others may have run: abandoned. The dead runner's lists go."""
    import random

    from jobctl.clock import SystemClock
    from jobctl.runner import recovery

    store, gates, runs = _waiting_case(tmp_path)
    said: list[str] = []

    def say(kind: str, line: str) -> None:
        said.append(line)

    recovery.recover_runs(store, list(runs.values()), time.time(), SystemClock(),
                          random.Random(1), say, gates)  # fmt: skip
    got = {case: store.get_run(r.id or 0) for case, r in runs.items()}
    back = got.pop("waited")
    assert (back.status, back.owner, back.attempt) == ("queued", None, 1)
    assert {c: r.status for c, r in got.items()} == dict.fromkeys(got, "abandoned")
    waited = runs["waited"]
    assert any(f"run {waited.id} never started (it waited for a slot)" in s for s in said)
    assert sum("never started" in s for s in said) == 1
    # the dead runner's lists go; the other owner's is not this recovery's to remove
    assert sorted(p.name for p in gates.glob("wait-*")) == ["wait-gone:999998:1"]


def test_a_waiting_run_whose_process_exists_is_not_taken_for_never_started(
    tmp_path: Path,
) -> None:
    """Its wait list is not enough where a process carries the run's markers: it started, so
    it is abandoned, and its process is terminated."""
    import random
    import subprocess

    from jobctl.clock import SystemClock
    from jobctl.runner import recovery
    from jobctl.runner.execution import OWNER_VAR

    store, gates, runs = _waiting_case(tmp_path)
    waited = runs["waited"]
    env = {**os.environ, "JOBCTL_RUN_ID": str(waited.id), OWNER_VAR: waited.owner or ""}
    with subprocess.Popen(["sleep", "30"], env=env, start_new_session=True) as child:
        try:
            recovery.recover_runs(store, [waited], time.time(), SystemClock(),
                                  random.Random(1), lambda kind, line: None, gates)  # fmt: skip
            assert store.get_run(waited.id or 0).status == "abandoned"
            assert child.wait(10) is not None  # terminated by recovery
        finally:
            if child.poll() is None:
                child.kill()


def _due_runs(tmp_path: Path, n: int) -> tuple[SQLiteStore, Path]:
    """A store with `n` jobs j0... of `true`, each with a run due now; the gates folder."""
    store = SQLiteStore(tmp_path / "jobctl.db")
    now = time.time()
    for i in range(n):
        store.add_job(Job(name=f"j{i}", command=["true"], tz="UTC", cwd=str(tmp_path)))
        store.add_run(Run(job=f"j{i}", scheduled_for=now, not_before=now, trigger="manual"))
    return store, tmp_path / "gates"


def test_a_due_run_is_marked_on_its_wait_list_before_it_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """2 workers, 12 due runs: runs claimed beyond the free slots wait on the runner's
    list; at each spawn the run's own record says W no more, and no list is left at the
    end (the runner stopped with no run waiting)."""
    from jobctl import executor
    from jobctl.clock import SystemClock

    store, gates = _due_runs(tmp_path, 12)
    marked: list[bool] = []
    waiting: list[int] = []
    real_start = executor.start

    def start(spec: executor.Spec, gated: bool = False) -> executor.Process:
        (marker,) = [m for m in spec.markers if m.startswith(b"JOBCTL_RUN_ID=")]
        run_id = marker.split(b"=")[1].decode()
        lines = [ln for p in gates.glob("wait-*") for ln in p.read_text().splitlines()[1:]]
        marked.append(not any(ln.startswith(f"W {run_id}-") for ln in lines))
        waiting.append(sum(ln.startswith("W ") for ln in lines))
        return real_start(spec, gated=gated)

    monkeypatch.setattr(executor, "start", start)
    Runner(store, workers=2, clock=SystemClock(), gates=gates).run(once=True)
    runs = store.list_runs(RunFilter())
    assert [r.status for r in runs] == ["succeeded"] * 12
    assert marked == [True] * 12
    assert max(waiting) >= 2  # runs claimed ahead waited on their lists
    assert list(gates.glob("wait-*")) == []


def test_a_run_whose_start_cannot_be_marked_is_never_started_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its line would make a started run pass for one that never started: it goes back to
    the queue, for the next runner (whose claims the list does not name), and this runner
    does not claim it again."""
    from jobctl.clock import SystemClock
    from jobctl.runner import recovery

    store, gates = _due_runs(tmp_path, 4)
    real = recovery.WaitList.starting
    tried: list[int] = []

    def starting(self: recovery.WaitList, run: Run) -> bool:
        if run.job == "j2":
            tried.append(run.id or 0)
            return False
        return real(self, run)

    monkeypatch.setattr(recovery.WaitList, "starting", starting)
    said: list[str] = []
    runner = Runner(store, workers=1, clock=SystemClock(), gates=gates)
    runner.emit = lambda kind, line: said.append(line)  # type: ignore[method-assign]
    runner.run(once=True)
    by_job = {r.job: r for r in store.list_runs(RunFilter())}
    assert {j: r.status for j, r in by_job.items()} == {
        "j0": "succeeded", "j1": "succeeded", "j2": "queued", "j3": "succeeded"}  # fmt: skip
    assert (by_job["j2"].owner, by_job["j2"].started_at, len(tried)) == (None, None, 1)
    assert any("cannot mark its start on its wait list" in line for line in said)


def test_a_wait_list_record_cut_short_or_reused_never_names_the_wrong_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Records are whole records of the page (the header is padded); a record's W is written
    after its tag, so a write cut short leaves no W; a reused record names its new run only."""
    from jobctl.runner import recovery

    dead = "gone:999999:1"
    waits = recovery.WaitList.open(tmp_path, dead)
    assert waits is not None
    path = tmp_path / f"wait-{dead}"
    assert len(path.read_bytes()) % recovery.WaitList.REC == 0
    old, new, cut = (Run(job="g", scheduled_for=T0, created_at=T0, id=i, owner=dead,
                         status="running") for i in (1234, 1240, 7))  # fmt: skip
    waits.add([old])
    assert waits.starting(old)  # spawned: its record is free for the next run
    waits.add([new])
    assert recovery._waiting(tmp_path, {dead}) == {dead: {execution_tag(new)}}
    assert path.read_bytes().count(b"\nW ") + path.read_bytes().startswith(b"W ") <= 1
    real = os.pwrite
    monkeypatch.setattr(recovery.os, "pwrite", lambda fd, data, at: real(fd, data[:10], at))
    waits.add([cut])  # a disk full: the write is cut short
    monkeypatch.setattr(recovery.os, "pwrite", real)
    assert recovery._waiting(tmp_path, {dead}) == {dead: {execution_tag(new)}}
    assert waits.starting(cut)  # not on the list: nothing to mark, nothing proved


def execution_tag(run: Run) -> str:
    from jobctl.runner.execution import run_tag

    tag = run_tag(run)
    assert tag is not None
    return tag
