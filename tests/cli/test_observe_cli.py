"""`jobctl stats`, `jobctl metrics` and the usage errors of `status --watch` and
`runner --metrics`, in-process on SQLite and PostgreSQL. Runs are recorded through the store
with known times, so every figure can be checked exactly."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from jobctl.config import resolve_settings
from jobctl.models import Run
from jobctl.store import open_store

# every test on SQLite and on PostgreSQL (tests/cli/conftest.py: any_store)
pytestmark = pytest.mark.usefixtures("any_store")


def _store():
    return open_store(resolve_settings(None, None))


def _record(job: str, status: str, took: float, ago: float, code: int | None = None,
            trigger: str = "schedule", late: float = 0.0) -> None:  # fmt: skip
    """A finished run of `job` that ended `ago` seconds ago after `took` seconds."""
    end = time.time() - ago
    start = end - took
    due = start - late
    s = _store()
    try:
        s.add_run(Run(job=job, scheduled_for=due, trigger=trigger, status=status,  # type: ignore[arg-type]
                      created_at=due, not_before=due, started_at=start, finished_at=end,
                      exit_code=code))  # fmt: skip
    finally:
        s.close()


@pytest.fixture
def jobs(cli, any_store: str) -> None:
    for name in ("alpha", "beta", "idle"):
        assert cli("add", name, "--every", "1h", "--", "true").code == 0
    s = _store()  # jobs made 10 days ago: their runs below are theirs (not a former job's)
    try:
        s.update_jobs(["alpha", "beta", "idle"],
                      lambda j: j.copy_with(created_at=time.time() - 10 * 86400))  # fmt: skip
    finally:
        s.close()
    for i, took in enumerate([1.0, 2.0, 3.0, 4.0, 10.0]):
        _record("alpha", "succeeded", took, ago=500 - 20 * i, code=0, late=0.02)
    _record("alpha", "failed", 5.0, ago=100, code=7)
    _record("beta", "timed_out", 60.0, ago=3 * 86400)  # older than --since 1d
    _record("beta", "succeeded", 0.5, ago=50, code=0, trigger="manual")


def test_stats_json(cli, jobs) -> None:
    r = cli("stats", "--json")
    assert r.code == 0, r.err
    by = {x["job"]: x for x in r.json()}
    assert list(by) == ["alpha", "beta", "idle"]
    a = by["alpha"]
    assert (a["runs"], a["succeeded"], a["failed"]) == (6, 5, 1)
    assert a["success_rate"] == pytest.approx(5 / 6, abs=1e-4)
    # durations 1, 2, 3, 4, 5, 10: nearest-rank p50 3, p95 10
    assert (a["p50_s"], a["p95_s"], a["max_s"]) == (3.0, 10.0, 10.0)
    assert a["last_failure"]["status"] == "failed" and a["last_failure"]["exit_code"] == 7
    assert [x["duration_s"] for x in a["recent"]] == [1.0, 2.0, 3.0, 4.0, 10.0, 5.0]
    assert a["recent"][-1]["status"] == "failed"
    assert by["idle"]["runs"] == 0 and by["idle"]["p50_s"] is None
    assert by["beta"]["last_failure"]["status"] == "timed_out"


def test_stats_one_job_since(cli, jobs) -> None:
    r = cli("stats", "beta", "--since", "1d", "--json")
    assert r.code == 0, r.err
    [b] = r.json()
    assert (b["job"], b["runs"], b["succeeded"], b["last_failure"]) == ("beta", 1, 1, None)


def test_stats_table(cli, jobs) -> None:
    r = cli("stats")
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert lines[0].split() == ["JOB", "RUNS", "SUCCESS", "P50", "P95", "MAX", "LAST",
                                "FAILURE", "RECENT"]  # fmt: skip
    alpha = next(line for line in lines if line.startswith("alpha"))
    assert "83%" in alpha and "3.0s" in alpha and "10.0s" in alpha
    assert re.search(r"failed 1m\d+s ago, exit 7", alpha), alpha  # 100 s (and the test's own)
    # the sparkline: heights from 0 to the longest, the failed run marked (no colour here)
    assert alpha.rstrip().endswith("▁▂▃▄█×")


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        pytest.param(["stats", "nope"], 4, "no job named 'nope'", id="unknown_job"),
        pytest.param(["stats", "--since", "soon"], 2, "--since", id="bad_since"),
        pytest.param(["status", "--watch", "--json"], 2, "--watch", id="watch_json"),
        pytest.param(["status", "--watch", "--check"], 2, "--watch", id="watch_check"),
        pytest.param(["runner", "--metrics", "9464"], 2, "'9464'", id="no_host"),
        pytest.param(["runner", "--metrics", "localhost:http"], 2, "localhost:http",
                     id="port_not_a_number"),
        pytest.param(["runner", "--metrics", "127.0.0.1:70000"], 2, "70000", id="port_too_big"),
        pytest.param(["runner", "--metrics", "a b:80"], 2, "a b:80", id="space_in_host"),
    ],
)  # fmt: skip
def test_bad_input(cli, args: list[str], code: int, message: str) -> None:
    r = cli(*args)
    assert r.code == code
    assert message in r.err and r.err.count("\n") == 1 and "Traceback" not in r.err
    assert r.out == ""


def _families(text: str) -> dict[str, list]:
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def _value(samples: list, name: str, **labels: str) -> float:
    found = [s.value for s in samples if s.name == name and s.labels == labels]
    assert len(found) == 1, (name, labels, samples)
    return found[0]


def test_metrics_on_stdout(cli, jobs) -> None:
    r = cli("metrics")
    assert r.code == 0, r.err
    fam = _families(r.out)
    assert _value(fam["jobctl_store_up"], "jobctl_store_up") == 1
    runs = fam["jobctl_runs"]
    assert _value(runs, "jobctl_runs", job_name="alpha", status="succeeded") == 5
    assert _value(runs, "jobctl_runs", job_name="alpha", status="failed") == 1
    assert _value(runs, "jobctl_runs", job_name="beta", status="timed_out") == 1
    dur = fam["jobctl_run_duration_seconds"]
    b = "jobctl_run_duration_seconds_bucket"
    assert _value(dur, b, job_name="alpha", le="1.0") == 1
    assert _value(dur, b, job_name="alpha", le="5.0") == 5
    assert _value(dur, b, job_name="alpha", le="+Inf") == 6
    assert _value(dur, b, job_name="beta", le="60.0") == 2
    late = fam["jobctl_run_lateness_seconds"]
    lb = "jobctl_run_lateness_seconds_bucket"
    assert _value(late, lb, job_name="alpha", le="0.01") == 1  # the failed run: on time
    assert _value(late, lb, job_name="alpha", le="0.025") == 6  # and five 20 ms late
    assert _value(late, lb, job_name="beta", le="+Inf") == 1  # the manual run is not counted
    last_ok = _value(fam["jobctl_job_last_success_timestamp_seconds"],
                     "jobctl_job_last_success_timestamp_seconds", job_name="beta")  # fmt: skip
    assert time.time() - 60 < last_ok < time.time()
    assert _value(fam["jobctl_queue_depth"], "jobctl_queue_depth") == 0
    assert {s.labels["job_name"] for s in fam["jobctl_job_next_fire_timestamp_seconds"]} == {
        "alpha", "beta", "idle"}  # fmt: skip
    assert fam["jobctl_runner_up"] == []  # no runner registered


def test_metrics_queue_depth_counts_due_queued_runs(cli, any_store: str) -> None:
    assert cli("add", "q", "--every", "1h", "--", "true").code == 0
    for _ in range(2):
        assert cli("run", "q", "--detach", "--force").code == 0
    fam = _families(cli("metrics").out)
    assert _value(fam["jobctl_queue_depth"], "jobctl_queue_depth") == 2
    assert _value(fam["jobctl_runs"], "jobctl_runs", job_name="q", status="queued") == 2


def test_metrics_textfile_is_replaced_atomically(cli, jobs, tmp_path: Path) -> None:
    out = tmp_path / "prom" / "jobctl.prom"
    out.parent.mkdir()
    out.write_text("old\n")
    inode = out.stat().st_ino
    r = cli("metrics", "--textfile", str(out))
    assert (r.code, r.out, r.err) == (0, "", "")
    assert os.listdir(out.parent) == ["jobctl.prom"]  # no temporary file left behind
    assert out.stat().st_ino != inode  # a new file renamed over the old one, not rewritten
    fam = _families(out.read_text())
    assert _value(fam["jobctl_runs"], "jobctl_runs", job_name="alpha", status="failed") == 1


def test_metrics_textfile_errors(cli, any_store: str, tmp_path: Path) -> None:
    r = cli("metrics", "--textfile", str(tmp_path / "missing" / "x.prom"))
    assert r.code == 1 and "missing" in r.err and r.err.count("\n") == 1
    r = cli("metrics", "--textfile", str(tmp_path / "x.txt"))
    assert r.code == 0 and "only files ending in .prom" in r.err
    assert (tmp_path / "x.txt").exists()
