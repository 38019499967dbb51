"""Planner tables: what a due fire becomes (misfire, overlap, jitter), which queued runs may
start (workers, overlap, mutexes), and retry delays. `now` is always an argument."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from jobctl import planner
from jobctl.models import Job, Run
from jobctl.records import replace


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def job(**kw) -> Job:
    kw.setdefault("schedule", "0 * * * *")
    kw.setdefault("schedule_kind", "cron")
    kw.setdefault("next_run_at", ts("2026-01-01T10:00:00"))
    return Job(name="j", command=["true"], tz="UTC", **kw)


def running(job_name: str = "j", rid: int = 1, owner: str | None = "r") -> Run:
    return Run(job=job_name, scheduled_for=0.0, status="running", id=rid, owner=owner)


def queued(job_name: str = "j", rid: int = 2, trigger: str = "schedule") -> Run:
    return Run(job=job_name, scheduled_for=0.0, status="queued", id=rid, trigger=trigger)  # type: ignore[arg-type]


def summary(plan: planner.FirePlan) -> list[tuple[str, str, str]]:
    return [
        (datetime.fromtimestamp(r.scheduled_for, UTC).strftime("%H:%M"), r.trigger, r.status)
        for r in plan.runs
    ]


@pytest.mark.parametrize(
    ("policy", "now", "expected"),
    [
        pytest.param("once", "10:00:00.003", [("10:00", "schedule", "queued")], id="on_time"),
        pytest.param("once", "10:00:29", [("10:00", "schedule", "queued")], id="within_grace"),
        pytest.param("once", "12:30:00", [("12:00", "catchup", "queued")], id="once_missed_3"),
        pytest.param(
            "once", "13:00:01", [("13:00", "schedule", "queued")], id="once_covered_by_on_time"
        ),
        pytest.param(
            "skip",
            "12:30:00",
            [
                ("10:00", "catchup", "skipped"),
                ("11:00", "catchup", "skipped"),
                ("12:00", "catchup", "skipped"),
            ],
            id="skip_records_each",
        ),
        pytest.param(
            "all",
            "12:30:00",
            [
                ("10:00", "catchup", "queued"),
                ("11:00", "catchup", "queued"),
                ("12:00", "catchup", "queued"),
            ],
            id="all_runs_each_in_order",
        ),
    ],
)
def test_misfire_policies(policy: str, now: str, expected: list) -> None:
    j = job(misfire=policy)
    plan = planner.plan_fire(j, ts(f"2026-01-01T{now}"), [], random.Random(1))
    assert summary(plan) == expected
    assert plan.next_run_at == planner.next_fire(j, ts(f"2026-01-01T{now}"))


@pytest.mark.parametrize(
    ("policy", "missed_through", "expected"),
    [  # a job every 2 s, 10:00:00 to 10:00:24 due at 10:00:25
        pytest.param("once", None, [("00", "schedule", "queued")] * 13, id="held_up_all_run"),
        pytest.param("once", "10:00:25", [("24", "catchup", "queued")], id="down_once"),
        pytest.param("skip", "10:00:25", [("00", "catchup", "skipped")] * 13, id="down_skip"),
        pytest.param("all", "10:00:25", [("00", "catchup", "queued")] * 13, id="down_all"),
        pytest.param("skip", "10:00:19",  # down until 10:00:19: what was due after it runs
                     [("00", "catchup", "skipped")] * 10 + [("00", "schedule", "queued")] * 3,
                     id="down_then_up"),
    ],
)  # fmt: skip
def test_fires_due_while_no_runner_was_up_get_no_grace(
    policy: str, missed_through: str | None, expected: list
) -> None:
    """SPEC 4: fires missed while no runner was up follow the misfire policy however little
    late; the 30 s grace is for a runner that was up but held up (QA pass: a 25 s outage ran
    every missed fire of a 2 s job, whatever its policy)."""
    j = job(schedule="2s", schedule_kind="every", anchor_at=ts("2026-01-01T10:00:00"),
            misfire=policy, overlap="allow")  # fmt: skip
    through = ts(f"2026-01-01T{missed_through}") if missed_through else None
    plan = planner.plan_fire(j, ts("2026-01-01T10:00:25"), [], random.Random(1),
                             missed_through=through)  # fmt: skip
    got = [(r.trigger, r.status) for r in plan.runs]
    assert got == [(trigger, status) for _, trigger, status in expected]
    if policy == "once" and missed_through:
        assert plan.runs[0].scheduled_for == ts("2026-01-01T10:00:24")  # the latest stands


def test_misfire_all_caps_at_100_and_skips_older() -> None:
    j = job(schedule="* * * * *", misfire="all", next_run_at=ts("2026-01-01T00:00:00"))
    plan = planner.plan_fire(j, ts("2026-01-01T05:00:45"), [], random.Random(1))
    q = [r for r in plan.runs if r.status == "queued"]
    s = [r for r in plan.runs if r.status == "skipped"]
    assert len(q) == 100
    assert q[-1].scheduled_for == ts("2026-01-01T05:00:00")
    assert q == sorted(q, key=lambda r: r.scheduled_for)
    assert len(s) == 100 and max(r.scheduled_for for r in s) < q[0].scheduled_for


def test_catchup_window_skips_older_fires_whatever_the_policy() -> None:
    j = job(misfire="all", catchup_window_s=5400)  # 1h30
    plan = planner.plan_fire(j, ts("2026-01-01T12:30:00"), [], random.Random(1))
    assert summary(plan) == [
        ("10:00", "catchup", "skipped"),
        ("11:00", "catchup", "queued"),
        ("12:00", "catchup", "queued"),
    ]


def test_long_outage_of_frequent_job_does_not_walk_every_fire() -> None:
    j = job(schedule="* * * * * *", misfire="skip", next_run_at=ts("2025-01-01T00:00:00"))
    plan = planner.plan_fire(j, ts("2026-01-01T00:00:00.5"), [], random.Random(1))
    missed = [r for r in plan.runs if r.trigger == "catchup"]
    assert len(missed) == 100
    assert {r.status for r in missed} == {"skipped"}
    # fires up to 30 s late are not missed: they are recorded late (one runs, overlap=skip)
    assert max(r.scheduled_for for r in missed) == ts("2025-12-31T23:59:30")
    late = [r for r in plan.runs if r.trigger == "schedule"]
    assert [r.scheduled_for for r in late] == [ts("2025-12-31T23:59:31") + i for i in range(30)]
    assert [r.status for r in late] == ["queued"] + ["skipped"] * 29


@pytest.mark.parametrize(
    ("overlap", "open_runs", "expected"),
    [
        pytest.param("skip", [], "queued", id="skip_idle"),
        pytest.param("skip", [running()], "skipped", id="skip_busy"),
        pytest.param("skip", [queued()], "skipped", id="skip_waiting"),
        pytest.param("queue", [running()], "queued", id="queue_holds_one"),
        pytest.param("queue", [running(), queued()], "skipped", id="queue_at_most_one"),
        pytest.param("allow", [running(), queued()], "queued", id="allow_parallel"),
        pytest.param("replace", [running()], "queued", id="replace_starts_new"),
    ],
)
def test_overlap_at_fire_time(overlap: str, open_runs: list[Run], expected: str) -> None:
    plan = planner.plan_fire(
        job(overlap=overlap), ts("2026-01-01T10:00:00"), open_runs, random.Random(1)
    )
    assert [r.status for r in plan.runs] == [expected]
    if expected == "skipped":
        assert "overlap=" in (plan.runs[0].error or "")


def test_replace_terminates_running_run_when_a_newer_one_waits() -> None:
    jobs = {"r": Job(name="r", command=["x"], overlap="replace"), "s": Job(name="s", command=["x"])}
    old_r, old_s = replace(running("r", 1), scheduled_for=60.0), running("s", 2)
    waiting = [replace(queued("r", 3), scheduled_for=120.0), queued("s", 4)]
    assert planner.replaced_by_waiting(waiting, [old_r, old_s], jobs) == [old_r]
    assert planner.replaced_by_waiting([], [old_r], jobs) == []
    # a retry of an older fire, or a replay, waits for the running run of a later fire
    retry = replace(queued("r", 5, trigger="retry"), scheduled_for=0.0, attempt=2)
    replay = replace(queued("r", 6, trigger="replay"), scheduled_for=90.0, attempt=2)
    assert planner.replaced_by_waiting([retry, replay], [old_r], jobs) == []
    start, cancel = planner.pick_startable([retry, replay], [old_r], jobs, limit=4)
    assert start == [] == cancel  # both wait for the running run (r is busy)


def test_at_job_is_done_after_its_fire() -> None:
    t = ts("2026-01-01T10:00:00")
    j = Job(
        name="j", command=["true"], schedule="x", schedule_kind="at", anchor_at=t, next_run_at=t
    )
    plan = planner.plan_fire(j, t + 0.01, [], random.Random(1))
    assert (plan.state, plan.next_run_at, len(plan.runs)) == ("done", None, 1)


def test_jitter_delays_start_but_not_the_fire_key() -> None:
    j = job(jitter_s=30)
    starts = set()
    for seed in range(20):
        r = planner.plan_fire(j, ts("2026-01-01T10:00:00"), [], random.Random(seed)).runs[0]
        assert r.scheduled_for == ts("2026-01-01T10:00:00")
        assert 0 <= r.not_before - r.scheduled_for <= 30
        starts.add(r.not_before)
    assert len(starts) > 10


def test_pick_cancels_the_older_waiting_runs_of_a_replace_job_without_starting_them() -> None:
    jobs = {"r": Job(name="r", command=["x"], overlap="replace"), "c": Job(name="c", command=["x"])}
    q = [queued("r", 10), queued("c", 11), queued("r", 12), queued("r", 13)]
    start, cancel = planner.pick_startable(q, [], jobs, limit=4)
    assert [r.id for r in start] == [11, 13]  # the newest of r only
    assert [(r.id, r.error) for r in cancel] == [(10, planner.REPLACED), (12, planner.REPLACED)]
    forced = replace(queued("r", 9), forced=True)  # run --force: exempt from the policy
    start, cancel = planner.pick_startable([forced, *q], [], jobs, limit=4)
    assert [r.id for r in start] == [9, 11] and [r.id for r in cancel] == [10, 12]
    # a retry of an older fire, due later (its delay), is not newer than the next fire
    old_retry = replace(queued("r", 20), scheduled_for=100.0, not_before=170.0, attempt=2)
    next_fire = replace(queued("r", 21), scheduled_for=160.0, not_before=160.0)
    start, cancel = planner.pick_startable([next_fire, old_retry], [], jobs, limit=4)
    assert [r.id for r in start] == [21] and [r.id for r in cancel] == [20]
    replay = replace(old_retry, trigger="replay")  # asked for: never cancelled, it waits
    start, cancel = planner.pick_startable([next_fire, replay], [], jobs, limit=4)
    assert [r.id for r in start] == [21] and cancel == []
    start, cancel = planner.pick_startable([queued("gone", 5)], [], jobs, limit=4)
    assert start == [] and [(r.id, r.error) for r in cancel] == [(5, None)]  # store: job removed


def test_pick_respects_workers_overlap_and_mutex() -> None:
    jobs = {
        "a": Job(name="a", command=["x"], mutexes=["db"]),
        "b": Job(name="b", command=["x"], mutexes=["db"]),
        "c": Job(name="c", command=["x"]),
        "d": Job(name="d", command=["x"], overlap="allow"),
    }
    q = [
        queued("a", 10),
        queued("b", 11),
        queued("c", 12),
        queued("c", 13),
        queued("d", 14),
        queued("d", 15),
        queued("gone", 16),
    ]
    start, gone = planner.pick_startable(q, [], jobs, limit=10)
    assert [r.id for r in start] == [10, 12, 14, 15]  # b waits for mutex db, 2nd c for overlap
    assert [r.id for r in gone] == [16]
    start, _ = planner.pick_startable(q, [], jobs, limit=2)
    assert [r.id for r in start] == [10, 12]
    start, _ = planner.pick_startable(q[:2], [running("a", 1)], jobs, limit=4)
    assert start == []  # a is running (overlap) and holds db (mutex)
    start, _ = planner.pick_startable(q[:1], [running("a", 1)], jobs, limit=4, force=True)
    assert start == []  # --force overrides overlap, never a mutex held by another job's run...
    start, _ = planner.pick_startable([queued("c", 20)], [running("c", 1)], jobs, 4, force=True)
    assert [r.id for r in start] == [20]


@pytest.mark.parametrize(
    ("backoff", "attempt", "nominal"),
    [
        ("exponential", 1, 10),
        ("exponential", 2, 20),
        ("exponential", 3, 40),
        ("exponential", 20, 3600),
        ("linear", 1, 10),
        ("linear", 3, 30),
        ("fixed", 5, 10),
    ],
)
def test_retry_delay_backoff_cap_and_jitter(backoff: str, attempt: int, nominal: float) -> None:
    j = job(backoff=backoff, retry_delay_s=10, max_retry_delay_s=3600)
    delays = [planner.retry_delay(j, attempt, random.Random(s)) for s in range(200)]
    assert all(0.5 * nominal <= d <= nominal for d in delays)
    assert min(delays) < 0.6 * nominal and max(delays) > 0.9 * nominal


def test_after_end_retries_then_dead() -> None:
    j = job(retries=2)
    rng = random.Random(1)
    failed = Run(job="j", scheduled_for=5.0, status="failed", attempt=1, id=1)
    run, retry = planner.after_end(j, failed, 100.0, rng)
    assert retry is not None and (retry.attempt, retry.trigger, retry.scheduled_for) == (
        2,
        "retry",
        5.0,
    )
    assert 105.0 <= retry.not_before <= 110.0 and not run.dead
    last = Run(job="j", scheduled_for=5.0, status="timed_out", attempt=3, id=3)
    run, retry = planner.after_end(j, last, 100.0, rng)
    assert retry is None and run.dead
    ok = Run(job="j", scheduled_for=5.0, status="succeeded", attempt=1)
    assert planner.after_end(j, ok, 100.0, rng) == (ok, None) and not ok.dead
    cancelled = Run(job="j", scheduled_for=5.0, status="cancelled", attempt=1)
    assert planner.after_end(j, cancelled, 100.0, rng)[1] is None and not cancelled.dead


def test_manual_refusal_by_policy() -> None:
    assert planner.manual_refusal(job(overlap="skip"), []) is None
    assert "overlap is skip" in (planner.manual_refusal(job(overlap="skip"), [running()]) or "")
    assert planner.manual_refusal(job(overlap="queue"), [running()]) is None
    assert planner.manual_refusal(job(overlap="queue"), [running(), queued()]) is not None
    assert planner.manual_refusal(job(overlap="allow"), [running()]) is None


# ---- every fire once: the high-water mark (issue 8.1) -----------------------------------


def test_a_fire_at_or_before_the_high_water_mark_is_never_planned() -> None:
    """A stale next_run_at (an edit that read the clock before a fire) fires nothing old."""
    mark = ts("2026-01-01T10:00:03")
    j = job(schedule="* * * * * *", misfire="all", next_run_at=ts("2026-01-01T10:00:01"),
            fired_through=mark)  # fmt: skip
    plan = planner.plan_fire(j, ts("2026-01-01T10:00:05.01"), [], random.Random(1))
    assert [r.scheduled_for for r in plan.runs] == [mark + 1, mark + 2]
    assert plan.next_run_at == mark + 3
    nothing = planner.plan_fire(j, ts("2026-01-01T10:00:02.5"), [], random.Random(1))
    assert (nothing.runs, nothing.next_run_at) == ([], mark + 1)


def test_edit_with_a_stale_clock_read_never_moves_the_schedule_back() -> None:
    from jobctl import jobdef

    mark = ts("2026-01-01T10:00:09")
    j = job(schedule="* * * * * *", next_run_at=mark + 1, fired_through=mark)
    stale = ts("2026-01-01T10:00:01.5")  # read before the runner fired 10:00:02..10:00:09
    edited = jobdef.apply_options(j, jobdef.JobOptions(description="x"), stale)
    assert edited.next_run_at == mark + 1
    resumed = jobdef.resumed(j.copy_with(state="paused", next_run_at=None), stale)
    assert resumed.next_run_at == mark + 1
    recron = jobdef.apply_options(j, jobdef.JobOptions(cron="*/5 * * * * *"), stale)
    assert recron.next_run_at == ts("2026-01-01T10:00:10")


def test_fires_a_few_seconds_late_are_recorded_not_dropped() -> None:
    """Issue 8.4: the runner was up but held up (a store locked for 20 s): each fire that is
    at most 30 s late is recorded, late, whatever the misfire policy; none vanishes."""
    start = ts("2026-01-01T10:00:00")
    for misfire in ("once", "skip", "all"):
        j = job(schedule="* * * * * *", misfire=misfire, next_run_at=start)
        plan = planner.plan_fire(j, start + 20.2, [], random.Random(1))
        assert [r.scheduled_for for r in plan.runs] == [start + i for i in range(21)], misfire
        assert {r.trigger for r in plan.runs} == {"schedule"}
        statuses = [r.status for r in plan.runs]
        if misfire == "all":  # each runs, in order
            assert statuses == ["queued"] * 21
        else:  # overlap=skip keeps one waiting; the others are on record as skipped
            assert statuses == ["queued"] + ["skipped"] * 20, misfire
            assert plan.runs[1].error == "previous run still queued (overlap=skip)"


def test_missed_fires_name_why_they_were_missed() -> None:
    j = job(schedule="* * * * *", misfire="skip", next_run_at=ts("2026-01-01T10:00:00"))
    why = "the store was unavailable"
    plan = planner.plan_fire(j, ts("2026-01-01T10:03:00.5"), [], random.Random(1), why)
    missed = [r for r in plan.runs if r.trigger == "catchup"]
    assert [r.error for r in missed] == ["missed while the store was unavailable (3 fires)"] * 3


def test_an_edit_that_keeps_the_schedule_keeps_a_due_fire() -> None:
    """A fire due but not yet recorded (runner held up or down) survives `edit --description`;
    a new schedule is computed from now."""
    from jobctl import jobdef

    due = ts("2026-01-01T10:00:03")
    j = job(schedule="*/3 * * * * *", next_run_at=due, fired_through=due - 3)
    later = ts("2026-01-01T10:00:07")
    edited = jobdef.apply_options(j, jobdef.JobOptions(description="x", retries="2"), later)
    assert (edited.next_run_at, edited.description, edited.retries) == (due, "x", 2)
    moved = jobdef.apply_options(j, jobdef.JobOptions(cron="*/5 * * * * *"), later)
    assert moved.next_run_at == ts("2026-01-01T10:00:10")


def test_a_job_pinned_with_on_starts_only_on_a_runner_with_all_its_labels() -> None:
    jobs = {"p": job(on_labels=["gpu", "eu"]), "any": job()}
    queued_runs = [queued("p", rid=1), queued("any", rid=2)]
    for labels, expected in [
        (None, [1, 2]),  # no runner labels given (a foreground run): no filter
        (frozenset({"gpu", "eu", "host1"}), [1, 2]),
        (frozenset({"gpu", "host1"}), [2]),  # not all of them
        (frozenset({"host1"}), [2]),
    ]:
        start, _ = planner.pick_startable(queued_runs, [], jobs, 4, labels=labels)
        assert [r.id for r in start] == expected, labels
