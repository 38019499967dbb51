"""CLI: run verbs in-process (foreground runs, history, logs, dead, prune, retention)."""

from __future__ import annotations

import pytest

SPEC_VERBS = {
    "add", "list", "show", "edit", "rm", "pause", "resume", "next", "run", "retry", "cancel",
    "history", "logs", "dead", "status", "prune", "runner", "completion",
}  # fmt: skip


def test_help_lists_every_spec_verb(cli) -> None:
    r = cli("--help")
    assert r.code == 0
    listed = {
        line.split()[0] for line in r.out.splitlines() if line.startswith("  ") and line.split()
    }
    assert listed >= SPEC_VERBS, SPEC_VERBS - listed


def test_foreground_run_records_and_shows_stats(cli) -> None:
    cli("add", "ok", "--", "sh", "-c", "echo out; echo err >&2")
    r = cli("run", "ok")
    assert r.code == 0 and r.out == "out\nerr\n"
    runs = cli("history", "ok", "--json").json()
    assert [(x["trigger"], x["status"], x["exit_code"]) for x in runs] == [
        ("manual", "succeeded", 0)
    ]
    assert runs[0]["started_at"] <= runs[0]["finished_at"] and runs[0]["duration_s"] >= 0
    data = cli("show", "ok", "--json").json()
    assert data["last_run"]["id"] == runs[0]["id"]
    assert data["stats"]["runs"] == 1 and data["stats"]["success_rate"] == 1.0
    assert [x["id"] for x in data["recent_runs"]] == [runs[0]["id"]]
    assert cli("logs", str(runs[0]["id"])).out == "out\nerr\n"
    text = cli("show", "ok").out
    assert "100% of 1" in text and "p50" in text


def test_failed_run_goes_dead_and_can_be_dismissed(cli) -> None:
    cli("add", "bad", "--", "sh", "-c", "exit 5")
    assert cli("run", "bad").code == 5
    assert cli("run", "bad").code == 5
    dead = cli("dead", "--json").json()
    assert len(dead) == 2 and all(d["dead"] for d in dead)
    assert cli("dead", "--dismiss", str(dead[0]["id"])).code == 0
    assert [d["id"] for d in cli("dead", "--json").json()] == [dead[1]["id"]]
    assert cli("dead", "--dismiss", str(dead[0]["id"])).code == 4  # no longer dead
    assert cli("dead", "--all").code == 0
    assert cli("dead", "--json").json() == []


def test_keep_runs_retention_and_prune(cli) -> None:
    cli("add", "k", "--keep-runs", "3", "--", "true")
    for _ in range(5):
        assert cli("run", "k").code == 0
    ids = [x["id"] for x in cli("history", "k", "--json").json()]
    assert len(ids) == 3 and ids == sorted(ids, reverse=True)
    r = cli("prune", "--older-than", "0s", "--json")
    assert r.code == 0 and r.json() == {"deleted_runs": 3}
    assert cli("history", "k", "--json").json() == []


def test_history_filters(cli) -> None:
    cli("add", "a", "--", "true")
    cli("add", "b", "--", "false")
    cli("run", "a")
    cli("run", "b")
    assert [x["job"] for x in cli("history", "--json").json()] == ["b", "a"]
    assert [x["job"] for x in cli("history", "--status", "failed", "--json").json()] == ["b"]
    assert len(cli("history", "--limit", "1", "--json").json()) == 1
    assert len(cli("history", "--since", "1h", "--json").json()) == 2
    plain = cli("history")
    assert plain.code == 0 and plain.out.splitlines()[0].split()[:3] == ["ID", "JOB", "TRY"]


@pytest.mark.parametrize(
    ("argv", "code", "needle"),
    [
        (["history", "--status", "weird"], 2, "weird"),
        (["history", "--limit", "x"], 2, "'x'"),
        (["history", "--since", "forever"], 2, "forever"),
        (["history", "ghost"], 4, "ghost"),
        (["logs", "ghost"], 4, "ghost"),
        (["logs", "12345"], 4, "12345"),
        (["retry", "abc"], 2, "abc"),
        (["retry", "999"], 4, "999"),
        (["cancel", "999"], 4, "999"),
        (["dead", "--dismiss", "999"], 4, "999"),
        (["run", "ghost"], 4, "ghost"),
        (["prune", "--older-than", "soon"], 2, "soon"),
        (["runner", "--workers", "0"], 2, "'0'"),
        (["runner", "--grace", "whenever"], 2, "whenever"),
    ],
)
def test_run_verbs_bad_input(cli, argv: list[str], code: int, needle: str) -> None:
    r = cli(*argv)
    assert r.code == code, (r.code, r.err)
    assert needle in r.err and len(r.err.strip().splitlines()) == 1


def test_overlap_skip_refuses_manual_run_while_running(cli, home) -> None:
    from jobctl.config import resolve_settings
    from jobctl.models import Run
    from jobctl.store import open_store

    cli("add", "s", "--", "true")
    store = open_store(resolve_settings())
    store.add_run(Run(job="s", scheduled_for=1.0, status="running", owner="elsewhere:1:1"))
    r = cli("run", "s")
    assert r.code == 3 and "overlap is skip" in r.err
    r = cli("rm", "s")
    assert r.code == 3 and "running" in r.err
    assert cli("run", "s", "--detach", "--force").code == 0


def test_status_without_runner(cli) -> None:
    st = cli("status", "--json").json()
    assert st["runner"]["active"] is False and st["running"] == [] and st["queued"] == 0
    assert "not running" in cli("status").out


def test_run_detach_queues_for_runner(cli) -> None:
    cli("add", "d", "--", "true")
    r = cli("run", "d", "--detach")
    assert r.code == 0 and r.out.strip().isdigit()
    assert "no runner is active" in r.err
    run = cli("history", "d", "--json").json()[0]
    assert (run["status"], run["trigger"], run["id"]) == ("queued", "manual", int(r.out))


def test_sparkline_only_on_a_utf8_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    from jobctl import render

    monkeypatch.setattr(render, "fancy", lambda: True)
    monkeypatch.setattr("sys.stdout", type("T", (), {"encoding": "utf-8"})())
    assert render.sparkline([1.0, 2.0, 3.0, 8.0]) == "▁▂▃█"
    assert render.sparkline([5.0]) is None
    monkeypatch.setattr(render, "fancy", lambda: False)
    assert render.sparkline([1.0, 2.0]) is None
