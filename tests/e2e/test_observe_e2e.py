"""The real binary: `status --watch` writing plain frames to a pipe until SIGINT, and a real
runner's `--metrics` endpoint scraped over HTTP and read with prometheus_client's parser."""

from __future__ import annotations

import signal
import socket
import subprocess
import threading
import urllib.request
from collections import Counter
from datetime import datetime

from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import CMD, Env
from tests.waiting import wait_for


def test_status_watch_plain_frames_until_sigint(env: Env) -> None:
    env.run("add", "nightly", "--cron", "0 3 * * *", "--", "true", check=True)
    p = subprocess.Popen([*CMD, "status", "--watch"], env=env.env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)  # fmt: skip
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(p.stdout or []), daemon=True)
    reader.start()
    try:
        wait_for(lambda: sum(line.startswith("jobctl status  ") for line in lines) >= 2)
    finally:
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=30)
    reader.join(timeout=30)
    assert p.returncode == 0, err
    assert err == ""  # no traceback, no "interrupted"
    frames = "".join(lines).split("\n\n")
    assert len([f for f in frames if f.startswith("jobctl status  ")]) >= 2
    first = frames[0].splitlines()
    assert first[1] == "runner: not running (start one with: jobctl runner)"
    assert "nightly" in frames[0] and "next fires" in frames[0]
    assert "\x1b[" not in "".join(lines)  # plain text: no terminal codes in a pipe


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _scrape(url: str) -> dict[str, list]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        text = resp.read().decode()
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def test_runner_metrics_endpoint_matches_the_store(any_env: Env) -> None:
    env = any_env
    env.run("add", "ok", "--", "true", check=True)
    env.run("add", "bad", "--", "sh", "-c", "exit 3", check=True)
    port = _free_port()
    runner = env.start_runner("--metrics", f"127.0.0.1:{port}")
    for job in ("ok", "ok", "bad"):
        env.run("run", job, "--detach", "--force", check=True)
    wait_for(lambda: len([r for r in env.runs() if r["status"] in ("succeeded", "failed")]) == 3)
    wait_for(lambda: f"metrics at http://127.0.0.1:{port}/metrics" in env.log())
    fam = _scrape(f"http://127.0.0.1:{port}/metrics")

    stored = Counter((r["job"], r["status"]) for r in env.runs())
    scraped = {(s.labels["job_name"], s.labels["status"]): s.value for s in fam["jobctl_runs"]}
    assert scraped == {key: float(n) for key, n in stored.items()}
    assert scraped == {("ok", "succeeded"): 2.0, ("bad", "failed"): 1.0}
    durations = {s.labels["job_name"]: s.value for s in fam["jobctl_run_duration_seconds"]
                 if s.name.endswith("_bucket") and s.labels["le"] == "+Inf"}  # fmt: skip
    assert durations == {"ok": 2.0, "bad": 1.0}
    dead = {s.labels["job_name"]: s.value for s in fam["jobctl_dead_runs"]}
    assert dead == {"ok": 0.0, "bad": 1.0}
    last_ok = [s.value for s in fam["jobctl_job_last_success_timestamp_seconds"]
               if s.labels["job_name"] == "ok"]  # fmt: skip
    newest = max(r["finished_at"] for r in env.runs("ok"))
    assert last_ok == [round(datetime.fromisoformat(newest).timestamp(), 3)]
    up = {(s.labels["host"], s.labels["pid"]): s.value for s in fam["jobctl_runner_up"]}
    assert up == {(socket.gethostname(), str(runner.pid)): 1.0}
    assert [s.value for s in fam["jobctl_queue_depth"]] == [0.0]
    assert [s.value for s in fam["jobctl_store_up"]] == [1.0]
    assert "process_resident_memory_bytes" in fam  # the runner's own process metrics


def test_runner_metrics_port_in_use_fails_in_one_line(env: Env) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        p = env.run("runner", "--once", "--metrics", f"127.0.0.1:{port}")
    assert p.returncode == 1
    assert f"127.0.0.1:{port}" in p.stderr and p.stderr.count("\n") == 1
    assert "Traceback" not in p.stderr
