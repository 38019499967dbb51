"""The chaos checker and fault schedule, on evidence written by hand: each verdict fails
when its rule is broken (a checker that cannot fail proves nothing)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from bench.chaos.check import Evidence, Execution, check, expected_fires, parse_effects
from bench.chaos.faults import KINDS, Fault, make_schedule

T = 1_800_000_000.0  # a whole second
LEASE = 5.0


def run(job: str, at: float, attempt: int = 1, status: str = "succeeded", host: str = "h1",
        **kw: Any) -> dict[str, Any]:  # fmt: skip
    return {"id": kw.pop("id", 1), "job": job, "attempt": attempt, "trigger": "schedule",
            "status": status, "scheduled_for": at, "started_at": at + 0.01,
            "finished_at": at + 0.5, "host": host, **kw}  # fmt: skip


def ex(job: str, at: float, start: float, end: float | None, attempt: int = 1,
       host: str = "h1") -> Execution:  # fmt: skip
    return Execution(f"{job}@{round(at * 1000)}", attempt, host, 1, start, end, "end0")


def evidence(effects: list[Execution], history: list[dict[str, Any]],
             faults: list[Fault] | None = None, w1: float = T, **end: Any) -> Evidence:  # fmt: skip
    meta = {
        "lease_s": LEASE,
        "window_start": T,
        "window_end": w1,
        "hosts": ["h1", "h2"],
        "fired_through_end": True,
        "t0": T,
        "jobs": [
            {"name": "a", "cron": "* * * * * *", "overlap": "allow", "mutex": None},
            {"name": "s", "cron": "*/2 * * * * *", "overlap": "skip", "mutex": "m"},
            {"name": "m", "cron": "*/2 * * * * *", "overlap": "skip", "mutex": "m"},
        ],
    }
    return Evidence(meta, faults or [], {}, effects, history, {"orphans": [], **end})


def clean() -> tuple[list[Execution], list[dict[str, Any]]]:
    return [ex("a", T, T + 0.01, T + 0.5), ex("s", T, T + 0.01, T + 0.5),
            ex("m", T, T + 0.6, T + 0.9)], [run("a", T), run("s", T), run("m", T)]  # fmt: skip


def test_clean_evidence_passes() -> None:
    rep = check(evidence(*clean()))
    assert rep.ok, rep.verdicts
    assert rep.figures["fires expected in the window"] == 3


def test_an_attempt_executed_twice_is_a_duplicate() -> None:
    effects, history = clean()
    effects.append(ex("a", T, T + 2.0, T + 2.5, host="h2"))
    rep = check(evidence(effects, history))
    assert rep.verdicts["duplicate executions"] == 1


@pytest.mark.parametrize(
    ("second", "verdict"),
    [
        (ex("a", T, T + 0.4, T + 1.0, attempt=2, host="h2"), "attempts of one fire"),
        (ex("s", T, T + 0.3, T + 0.8, attempt=2, host="h2"), "overlap=skip job"),
        (ex("m", T, T + 0.2, T + 0.7, attempt=2, host="h2"), "mutex group"),
    ],
    ids=["attempts", "skip_job", "mutex"],
)
def test_overlaps_are_found(second: Execution, verdict: str) -> None:
    effects, history = clean()
    effects.append(second)
    history.append(run(second.job, T, attempt=2, host="h2"))
    rep = check(evidence(effects, history))
    assert rep.verdicts["overlaps (outside the two documented limits)"] >= 1
    assert any(verdict in d for d in rep.details["overlaps (outside the two documented limits)"])


def frozen(woke: float) -> Fault:
    return Fault("stop-long", 0, 8, "h1", started=woke - 8, ended=woke)


@pytest.mark.parametrize(("ends_after_wake", "excused"), [(1.0, True), (LEASE / 2 + 1, False)])
def test_an_overlap_with_a_frozen_runner_is_excused_only_within_the_margin(
    ends_after_wake: float, excused: bool
) -> None:
    woke = T + 8
    effects = [ex("a", T, T + 0.1, woke + ends_after_wake),  # the frozen runner's job runs on
               ex("a", T, T + 6.5, T + 30.0, attempt=2, host="h2")]  # fmt: skip
    history = [run("a", T, status="abandoned"), run("a", T, attempt=2, host="h2")]
    rep = check(evidence(effects, history, [frozen(woke)]))
    assert rep.verdicts["overlaps (outside the two documented limits)"] == (0 if excused else 1)
    assert rep.figures["overlaps excused (frozen runner)"] == (1 if excused else 0)


def test_an_execution_without_an_end_line_overlaps_until_the_other_ends() -> None:
    woke = T + 8
    effects = [ex("a", T, T + 0.1, None), ex("a", T, T + 6.5, T + 30.0, attempt=2, host="h2")]
    history = [run("a", T, status="abandoned"), run("a", T, attempt=2, host="h2")]
    rep = check(evidence(effects, history, [frozen(woke)]))
    assert rep.verdicts["overlaps (outside the two documented limits)"] == 1


def test_a_fire_without_any_run_is_lost_while_a_runner_is_healthy() -> None:
    effects, history = clean()
    rep = check(evidence(effects, history, w1=T + 1))  # a's fire at T+1: no run, no effect
    assert rep.verdicts["lost fires"] == 1
    # a skipped run records the fire: not lost
    rep = check(evidence(effects, [*history, run("a", T + 1, status="skipped")], w1=T + 1))
    assert rep.verdicts["lost fires"] == 0
    # every runner down then: reported apart, not a loss
    down = [Fault("kill", 0, 3, h, started=T + 0.5, ended=T + 3) for h in ("h1", "h2")]
    rep = check(evidence(effects, history, down, w1=T + 1))
    assert rep.verdicts["lost fires"] == 0
    assert rep.figures["fires unrecorded while no runner was healthy"] == 1


def test_stuck_runs_orphans_and_unrecorded_executions_fail() -> None:
    effects, history = clean()
    history.append(run("a", T - 5, status="running"))
    effects.append(ex("a", T - 9, T - 9, T - 8.5))  # executed, not in the history
    rep = check(evidence(effects, history, orphans=[[123, "sleep 5"]]))
    assert rep.verdicts["runs not in a final state (stuck)"] == 1
    assert rep.verdicts["orphan processes after the runners stopped"] == 1
    assert rep.verdicts["executions the history does not hold"] == 1
    assert not rep.ok


def test_a_success_recorded_without_a_start_line_or_against_the_exit_code_fails() -> None:
    effects, history = clean()
    history.append(run("a", T + 1))  # recorded succeeded, never started
    effects[1].how = "end1"  # s exited 1, recorded succeeded
    rep = check(evidence(effects, history, w1=T + 1))
    assert rep.verdicts["runs recorded ended that never started"] == 1
    assert rep.verdicts["runs recorded with another outcome than the job's"] == 1


def test_effects_lines_pair_starts_with_ends() -> None:
    lines = ["a@1000 1 h1 7 1.5 - start", "a@1000 1 h1 7 1.5 2.5 end0",
             "a@1000 2 h2 8 3.0 - start", "garbage"]  # fmt: skip
    a, b = parse_effects(lines)
    assert (a.end, a.how, a.scheduled) == (2.5, "end0", 1.0)
    assert (b.end, b.attempt, b.host) == (None, 2, "h2")


def test_expected_fires_of_the_mix() -> None:
    assert expected_fires("* * * * * *", T - 0.5, T + 2) == [T, T + 1, T + 2]
    assert expected_fires("*/2 * * * * *", T + 1, T + 6) == [T + 2, T + 4, T + 6]


@pytest.mark.parametrize("seed", range(5))
def test_schedule_is_seeded_has_every_kind_and_a_healthy_runner(seed: int) -> None:
    hosts = ("h1", "h2", "h3")
    a = make_schedule(random.Random(seed), 60, LEASE, hosts)
    assert [f.to_dict() for f in a] == [
        f.to_dict() for f in make_schedule(random.Random(seed), 60, LEASE, hosts)
    ]
    assert {f.kind for f in a} == set(KINDS)
    assert all(f.at >= 5 and f.end_at <= 60 - 2 * LEASE for f in a)
    for f in a:
        if f.kind == "stop-long" or f.kind == "cut-long":
            assert f.length > LEASE
        if f.kind in ("stop-short", "cut-short"):
            assert f.length < LEASE / 2
    runner = [f for f in a if f.target]
    for f in runner:
        same = [g for g in runner if g is not f and g.target == f.target]
        assert all(g.end_at <= f.at or f.end_at <= g.at for g in same)
        at_once = {g.target for g in runner if g.at <= f.at < g.end_at}
        assert len(at_once) < len(hosts)


@pytest.mark.parametrize(("ends_after_restart", "excused"), [(0.5, True), (LEASE, False)])
def test_a_killed_runners_orphan_is_excused_until_its_machine_runs_a_runner_again(
    ends_after_restart: float, excused: bool
) -> None:
    killed, restarted = T + 1, T + 12
    kill = Fault("kill", 0, 11, "h1", started=killed, ended=restarted)
    effects = [ex("a", T, T + 0.1, restarted + ends_after_restart),  # the orphan on h1
               ex("a", T, T + 7.0, T + 30.0, attempt=2, host="h2")]  # fmt: skip
    history = [run("a", T, status="abandoned"), run("a", T, attempt=2, host="h2")]
    rep = check(evidence(effects, history, [kill]))
    assert rep.verdicts["overlaps (outside the two documented limits)"] == (0 if excused else 1)
    assert rep.figures["overlaps excused (killed runner's orphan)"] == (1 if excused else 0)
    # a retry that overlaps an execution started after the kill is no orphan's: never excused
    late = [ex("a", T, killed + 0.5, T + 9), ex("a", T, T + 7.0, T + 30.0, attempt=2, host="h2")]
    rep = check(evidence(late, history, [kill]))
    assert rep.verdicts["overlaps (outside the two documented limits)"] == 1


def test_a_mutex_groups_wait_for_its_turn_is_not_lateness() -> None:
    """The mix's mutex group queues by design (its runs take turns): that wait is reported
    apart, and lateness is the other jobs' (a fleet behind its fires shows there)."""
    effects, history = clean()
    history[2]["started_at"] = T + 0.6  # "m" waited 0.6 s for "s" to release the mutex
    history[1]["started_at"] = T + 0.2
    history[0]["started_at"] = T + 0.03
    rep = check(evidence(effects, history))
    lateness = rep.figures["lateness (history) outside faults, ms"]
    turns = rep.figures["mutex group: start after fire outside faults, ms"]
    assert lateness["n"] == 1 and lateness["max"] == pytest.approx(30, abs=1)
    assert turns["n"] == 2 and turns["max"] == pytest.approx(600, abs=1)
