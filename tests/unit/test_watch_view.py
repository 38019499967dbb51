"""The frame of `status --watch` (jobctl.watch.view) rendered at a fixed width without colour:
what each section shows, that cells are cut rather than wrapped, and the progress bar."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from jobctl.models import Run
from jobctl.store.base import RunnerInfo
from jobctl.watch import Running, Snapshot, progress, view

NOW = 1_790_000_000.0  # 2026-09-21T14:13:20Z (TZ=UTC in tests)


def draw(snap: Snapshot, width: int = 100, live: bool = False) -> str:
    out = io.StringIO()
    Console(file=out, width=width, color_system=None, force_terminal=False).print(
        view(snap, width, live=live)
    )
    return out.getvalue()


def runner(alive_host: str = "box") -> RunnerInfo:
    return RunnerInfo(owner="o1", pid=4242, host=alive_host, since=NOW - 7200,
                      heartbeat_at=NOW - 2)  # fmt: skip


def snapshot() -> Snapshot:
    backup = Run(job="backup", scheduled_for=NOW - 90, status="running", id=17,
                 started_at=NOW - 90)  # fmt: skip
    report = Run(job="report", scheduled_for=NOW - 30, status="running", id=18,
                 started_at=NOW - 30)  # fmt: skip
    queued = Run(job="sync", scheduled_for=NOW - 5, id=19, created_at=NOW - 5,
                 not_before=NOW - 5)  # fmt: skip
    failed = Run(job="mail", scheduled_for=NOW - 600, status="failed", id=9,
                 finished_at=NOW - 600, exit_code=2, error="exit code 2")  # fmt: skip
    return Snapshot(
        now=NOW,
        runners=[(runner(), True)],
        running=[
            Running(backup, typical_s=60.0, timeout_s=300.0),
            Running(report, typical_s=None, timeout_s=None),
        ],
        queued=3,
        queue=[queued],
        upcoming=[(NOW + 240, "hourly")],
        failures=[failed],
        failed_24h=1,
        dead=1,
    )


def test_frame_sections() -> None:
    text = draw(snapshot())
    lines = text.splitlines()
    assert lines[0] == "jobctl status  2026-09-21 14:13:20"
    assert "runner: active, pid 4242 on box, up 2h, heartbeat 2s ago" in text
    assert "running: 2   queued: 3   failed (24h): 1   dead: 1" in text
    backup = next(line for line in lines if line.startswith("17"))
    # elapsed 1.5 min against a typical 1 min: the bar is full, 150 %
    assert backup.split()[:2] == ["17", "backup"]
    assert "1m30s" in backup and "1m00s (timeout 5m00s)" in backup
    assert "██████████ 150%" in backup
    report = next(line for line in lines if line.startswith("18"))
    assert report.rstrip().endswith("-")  # no successful run yet: no typical duration
    assert "queued (oldest 1 of 3)" in text
    sync = next(line for line in lines if line.startswith("19"))
    assert sync.split()[1:3] == ["sync", "schedule"] and sync.rstrip().endswith("now")
    assert "hourly" in text and "(in 4m)" in text
    mail = next(line for line in lines if line.startswith("9 "))
    assert mail.split()[1:3] == ["mail", "failed"] and "exit code 2" in mail
    assert "Ctrl-C" not in text


def test_live_frame_says_how_to_quit() -> None:
    assert "(Ctrl-C to quit)" in draw(snapshot(), live=True).splitlines()[0]


def test_narrow_terminal_cuts_cells_never_wraps() -> None:
    snap = snapshot()
    snap.failures[0].error = "a very long error message " * 10
    text = draw(snap, width=60)
    assert all(len(line) <= 60 for line in text.splitlines())
    mail = [line for line in text.splitlines() if "mail" in line]
    assert len(mail) == 1 and "…" in mail[0]  # one line, its error cut with an ellipsis
    assert mail[0].split()[:3] == ["9", "mail", "failed"]  # id, job, status kept whole
    # the running table drops its STARTED column (ELAPSED says it) and keeps the rest whole
    assert "STARTED" not in text
    backup = next(line for line in text.splitlines() if line.startswith("17"))
    assert backup.split()[:2] == ["17", "backup"] and backup.rstrip().endswith("150%")


def test_nothing_running_and_no_runner() -> None:
    text = draw(Snapshot(now=NOW))
    assert "runner: not running (start one with: jobctl runner)" in text
    assert "running: 0   queued: 0   failed (24h): 0   dead: 0" in text
    assert "next fires" not in text and "recent failures" not in text


def test_dead_runner_is_not_active() -> None:
    text = draw(Snapshot(now=NOW, runners=[(runner(), False)]))
    assert "runner: not running" in text


def test_fleet_lists_each_runner_and_its_lease() -> None:
    other = RunnerInfo(owner="o2", pid=7, host="b2", since=NOW - 60, heartbeat_at=NOW - 30)
    text = draw(Snapshot(now=NOW, shared=True, runners=[(runner(), True), (other, False)]))
    assert "runners: 1 active of 2" in text
    line = next(x for x in text.splitlines() if x.startswith("b2"))
    assert line.split()[:2] == ["b2", "7"] and line.rstrip().endswith("expired")


def test_store_error_frame() -> None:
    text = draw(Snapshot(now=NOW, error="store error on 'x': disk I/O error"))
    assert text.splitlines()[1] == "store unavailable: store error on 'x': disk I/O error"


@pytest.mark.parametrize(
    ("elapsed", "typical", "expected"),
    [
        pytest.param(30.0, 60.0, ("█████░░░░░ 50%", "green"), id="half"),
        pytest.param(60.0, 60.0, ("██████████ 100%", "green"), id="typical"),
        pytest.param(90.0, 60.0, ("██████████ 150%", "yellow"), id="slow"),
        pytest.param(150.0, 60.0, ("██████████ 250%", "red"), id="very_slow"),
        pytest.param(10.0, None, ("", ""), id="no_typical"),
        pytest.param(10.0, 0.0, ("", ""), id="typical_zero"),
    ],
)
def test_progress(elapsed: float, typical: float | None, expected: tuple[str, str]) -> None:
    assert progress(elapsed, typical) == expected
