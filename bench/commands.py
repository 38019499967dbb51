"""Measurement 3, command latency: wall time of the real `jobctl` binary, one subprocess each.

Commands: `--version`, `list`, `add` (a new job each time), `history --limit 20`, `status`, on
a store of 1,000 jobs and 100,000 finished runs (bench.seed). Floors: `python -c pass` with the
interpreter of jobctl's console script, the same interpreter importing typer as jobctl's entry
point does (the CLI framework's own start), the system `python3 -c pass`, and `tsp -l` against a
running task-spooler server. Each is warmed up twice, then timed N times, round-robin.

Budgets (issue 13) are ratios to the floor measured in the same run, medians: `list` <= 6x,
`add`/`history`/`status` <= 5x, `--version` <= 2x of the same interpreter's `python -c pass`
(a ratio holds on a loaded machine where absolute milliseconds do not; they are kept as
information).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench import common, seed

JOBS = 1_000
RUNS = 100_000
WARMUP = 2
FLOOR = "python -c pass (jobctl's interpreter)"
#: the CLI framework's own start, as jobctl's entry point pays it (jobctl/__main__.py: the
#: cyclic collector off, and no interpreter teardown): the floor under every command but
#: `--version` and the Tabs jobctl/completing.py answers
TYPER_FLOOR = "python -c 'import typer' (gc off, os._exit)"
TYPER_CODE = "import gc; gc.disable(); import typer, os; os._exit(0)"
#: command -> its budget: median <= this many times the same interpreter's `-c pass` median
RATIOS = {
    "jobctl --version": 2.0,
    "jobctl list": 6.0,
    "jobctl add": 5.0,
    "jobctl history --limit 20": 5.0,
    "jobctl status": 5.0,
}


#: command lines a Tab completes (issue 14: each answers in <= 100 ms with 1,000 jobs); the
#: shell runs `jobctl` with the line in its environment, once per Tab (fish: bench the call
#: that lists the candidates)
TABS = (
    "jobctl ",
    "jobctl show job0",
    "jobctl add x --tz Europe/",
    "jobctl add x --overlap ",
    "jobctl retry ",
    "jobctl logs ",
)
TAB_LIMIT_MS = 100.0


def tab_env(env: dict[str, str], line: str) -> dict[str, str]:
    """The environment bash gives `jobctl` to complete the last word of `line`."""
    words = line.split()
    cword = len(words) if line.endswith(" ") else len(words) - 1
    return dict(env, _JOBCTL_COMPLETE="complete_bash", COMP_WORDS=line, COMP_CWORD=str(cword))


def script_python() -> str:
    """The interpreter named by the shebang of the `jobctl` console script."""
    with open(common.jobctl_bin(), "rb") as f:
        first = f.readline().decode(errors="replace").strip()
    if first.startswith("#!"):
        parts = first[2:].split()
        if parts and os.path.exists(parts[0]) and not parts[0].endswith("/env"):
            return parts[0]
    return sys.executable


def system_python() -> str | None:
    """Debian's python3 (not a pyenv shim, which is a shell script)."""
    if os.path.exists("/usr/bin/python3"):
        return "/usr/bin/python3"
    return shutil.which("python3")


def editable_install() -> bool:
    """Whether jobctl is installed in development (editable) mode: a `__editable__` .pth
    hook in site-packages that `site` runs at every interpreter start."""
    probe = (
        "import glob, sysconfig; "
        "print(bool(glob.glob(sysconfig.get_paths()['purelib'] + '/__editable__*jobctl*.pth')))"
    )
    done = subprocess.run(
        [script_python(), "-c", probe], capture_output=True, text=True, check=False
    )
    return done.stdout.strip() == "True"


def load_text() -> str:
    """The load averages, as `uptime` shows them (the machine may be shared)."""
    try:
        return ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def timed(argv: list[str], env: dict[str, str]) -> float:
    """Wall ms of one subprocess, from spawn to exit; stdout and stderr go to a pipe."""
    t0 = time.perf_counter()
    done = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, check=False)
    ms = (time.perf_counter() - t0) * 1000
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} -> {done.returncode}: {done.stderr.decode()[-300:]}")
    return ms


def seed_store(home: Path, env: dict[str, str]) -> float:
    """1,000 jobs (cron every 5 minutes) and 100,000 finished runs; returns seconds. The jobs
    are created before their history (a run older than its job is an earlier job's of that
    name, which `list` does not show), so `list` decodes and shows every job's last run."""
    t0 = time.perf_counter()
    common.run(env, "status")  # creates the home folder and the store, as a user would
    store = seed.open_store(home)
    try:
        now = seed.now()
        created = now - (RUNS // JOBS + 1) * 60  # add_history: one run a minute per job
        jobs = [
            seed.make_job(f"job{i:04d}", ["true"], created, cron="*/5 * * * *") for i in range(JOBS)
        ]
        seed.add_jobs(store, jobs)
        seed.add_history(store, [j.name for j in jobs], RUNS, now)
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        store.close()
    return time.perf_counter() - t0


def measure(quick: bool, peers: set[str]) -> common.Result:
    reps = 10 if quick else 40
    bin_ = common.jobctl_bin()
    py = script_python()
    syspy = system_python()
    notes: list[str] = []
    samples: dict[str, list[float]] = {}
    with common.temp_home() as home, tempfile.TemporaryDirectory(prefix="jobctl-bench-ts-") as ts:
        env = common.clean_env(home)
        seconds = seed_store(home, env)
        counter = iter(range(10**9))

        def add_argv() -> list[str]:
            return [bin_, "add", f"lat{next(counter)}", "--cron", "0 3 * * *", "--", "true"]

        # label -> (argv factory, env)
        cases: dict[str, tuple[Callable[[], list[str]], dict[str, str]]] = {
            "jobctl --version": (lambda: [bin_, "--version"], env),
            "jobctl list": (lambda: [bin_, "list"], env),
            "jobctl add": (add_argv, env),
            "jobctl history --limit 20": (lambda: [bin_, "history", "--limit", "20"], env),
            "jobctl status": (lambda: [bin_, "status"], env),
            FLOOR: (lambda: [py, "-c", "pass"], env),
            TYPER_FLOOR: (lambda: [py, "-c", TYPER_CODE], env),
            **{f"Tab: {line}": (lambda: [bin_], tab_env(env, line)) for line in TABS},
        }
        if syspy:
            cases["python3 -c pass (system)"] = (lambda: [syspy, "-c", "pass"], env)
        else:
            notes.append("no system python3 found: its floor is left out")
        tsp = shutil.which("tsp") or shutil.which("ts")
        ts_env = dict(env, TS_SOCKET=f"{ts}/socket", TMPDIR=ts)
        if "tsp" in peers and tsp:
            cases["tsp -l"] = (lambda: [tsp, "-l"], ts_env)
        elif "tsp" in peers:
            notes.append("tsp: not found on PATH, its floor is left out")
        else:
            notes.append("tsp: peer not selected, its floor is left out")
        try:
            if "tsp -l" in cases:  # its server up first (`-S` starts it), so -l only asks it
                timed([tsp, "-S", "1"], ts_env)  # type: ignore[list-item]
            for _ in range(WARMUP):
                for make, e in cases.values():
                    timed(make(), e)
            for label in cases:
                samples[label] = []
            for _ in range(reps):  # round-robin: slow drift of the machine hits all alike
                for label, (make, e) in cases.items():
                    samples[label].append(timed(make(), e))
        finally:
            if tsp and "tsp -l" in cases:
                subprocess.run([tsp, "-K"], env=ts_env, capture_output=True, check=False)

    med = {label: common.median(v) for label, v in samples.items()}
    floor = med[FLOOR]
    rows = []
    for label, values in samples.items():
        rows.append(
            [
                label,
                common.fmt(med[label]),
                f"{med[label] / floor:.2f}",
                common.fmt(common.pct(values, 90)),
                common.fmt(min(values)),
                common.fmt(max(values)),
            ]
        )
    budgets = [
        common.Budget(
            f"`{label}` median / same-interpreter `python -c pass` median "
            f"({med[label]:.0f} ms / {floor:.1f} ms)",
            med[label] / floor,
            limit,
            "×",
        )
        for label, limit in RATIOS.items()
    ]
    budgets += [
        common.Budget(f"`Tab: {label}` median", med[f"Tab: {label}"], TAB_LIMIT_MS, "ms")
        for label in TABS
    ]
    notes.append(
        f"store seeded in {seconds:.1f} s: {JOBS:,} jobs, {RUNS:,} finished runs; "
        f"`add` grows it by one job per call "
        f"({WARMUP + reps} added)"
    )
    typer_ms = med[TYPER_FLOOR]
    notes.append(
        f"`import typer` alone, as jobctl pays it, is {typer_ms / floor:.2f} × `python -c pass` "
        f"({typer_ms:.0f} ms): above it, "
        + ", ".join(
            f"`{label.removeprefix('jobctl ')}` takes {med[label] - typer_ms:.0f} ms"
            for label in RATIOS
            if label != "jobctl --version"
        )
    )
    notes.append(f"jobctl's interpreter: {py}; system python3: {syspy or '-'}")
    if editable_install():
        notes.append(
            "jobctl is installed editable here: its import hook (a .pth file) is loaded by "
            "`site` at every start of this interpreter, so `python -c pass` pays it too and "
            "the `--version` ratio is flattered; a regular `pip install .` starts faster"
        )
    notes.append(f"machine load (1, 5, 15 min) after the run: {load_text()}")
    if quick:
        notes.append(f"quick mode: {reps} repetitions instead of 40")
    method = (
        f"Wall time of one subprocess (spawn to exit, `subprocess.run` with stdout and stderr "
        f"to a pipe, as a script would read them) of the installed `jobctl` console script "
        f"({bin_}), with bytecode caching on (PYTHONDONTWRITEBYTECODE unset), TZ=UTC and a "
        f"temporary JOBCTL_HOME whose SQLite store holds {JOBS:,} jobs (cron `*/5 * * * *`) "
        f"and {RUNS:,} finished runs (100 per job), written in bulk with bench.seed. No runner "
        f"is running, so `status` reports none and `add` nudges nobody. `add` creates a new "
        f"job each time (`add latN --cron '0 3 * * *' -- true`). Floors: `python -c pass` with "
        f"the interpreter named by the console script's shebang, the same interpreter importing "
        f"typer as jobctl's entry point does (the cyclic collector off, leaving by `os._exit`), "
        f"the system `python3 -c pass`, "
        f"and `tsp -l` against an already started task-spooler server (own TS_SOCKET, empty "
        f"queue). `Tab: LINE` is one completion request as bash makes it (`_JOBCTL_COMPLETE="
        f"complete_bash`, COMP_WORDS=LINE, COMP_CWORD its last word). Each command is run "
        f"{WARMUP} times as warm-up, then {reps} times, the "
        f"commands interleaved round-robin; median and p90 (nearest rank) in ms; "
        f"`× floor` is the median over the same-interpreter `python -c pass` median."
    )
    return common.Result(
        key="commands",
        title="Command latency",
        method=method,
        headers=["command", "median ms", "× floor", "p90 ms", "min ms", "max ms"],
        rows=rows,
        budgets=budgets,
        samples=samples,
        notes=notes,
    )


if __name__ == "__main__":
    print(common.render(measure("--quick" in sys.argv[1:], {"tsp"})))
