"""The chaos run: a throwaway PostgreSQL cluster, three runners behind fault proxies, the job
mix, the faults carried out on schedule, then the evidence collected into one folder.

The folder (printed at the end) holds everything the checker reads, so that a run can be
checked again (`python -m bench.chaos --check DIR`):
- meta.json: seed, lease, the window of checked fires, the jobs and their kinds, the hosts;
- faults.json: the schedule, each fault with the wall times it was carried out;
- runners.json: each runner process (host, pid, started, ended, how);
- effects/HOST.effects: the jobs' own side effects (see JOB_SCRIPT), one file per host;
- history.json: every run row of the store, read at the end (times in epoch seconds);
- end.json: what was still open after the settle, the orphan processes found;
- HOST.log: the runners' logs; harness.log: the harness's timestamped log.
"""

from __future__ import annotations

import contextlib
import heapq
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import common
from bench.chaos.faults import Fault, make_schedule
from bench.chaos.proxy import FaultProxy

HOSTS = ("h1", "h2", "h3")
TAG_VAR = "CHAOS_TAG"  # in every runner's environment, so in every job process's: orphans
EFFECTS_VAR = "CHAOS_EFFECTS"

#: the job: a start line before it does anything, an end line (with its exit code) after, a
#: term line when terminated (SIGTERM); each line carries the run key, attempt, host, run id
#: and the start time, so that the checker pairs them without the store. bash's
#: EPOCHREALTIME: no fork for a timestamp. Arguments: seconds to sleep, attempts that fail.
JOB_SCRIPT = r"""#!/bin/bash
out="$CHAOS_EFFECTS/$JOBCTL_HOST.effects"
me="$JOBCTL_RUN_KEY $JOBCTL_ATTEMPT $JOBCTL_HOST $JOBCTL_RUN_ID"
s=$EPOCHREALTIME
echo "$me $s - start" >> "$out"
trap 'echo "$me $s $EPOCHREALTIME term" >> "$out"; exit 143' TERM
sleep "$1" & wait
code=0
if [ "$JOBCTL_ATTEMPT" -le "${2:-0}" ]; then code=1; fi
echo "$me $s $EPOCHREALTIME end$code" >> "$out"
exit $code
"""


@dataclass
class JobSpec:
    name: str
    kind: str  # tick | long | mutex | fail
    cron: str
    sleep_s: float
    overlap: str
    retries: int
    retry_delay: str
    fail_attempts: int = 0
    mutex: str | None = None

    def toml(self, script: Path, cwd: Path) -> str:
        lines = [
            f"[jobs.{self.name}]",
            f'cron = "{self.cron}"',
            f'command = ["/bin/bash", "{script}", "{self.sleep_s:g}", "{self.fail_attempts}"]',
            f'overlap = "{self.overlap}"',
            f"retries = {self.retries}",
            f'retry_delay = "{self.retry_delay}"',
            'backoff = "fixed"',
            "keep_runs = 1000000",
            'tz = "UTC"',
            f'cwd = "{cwd}"',
        ]
        if self.mutex:
            lines.append(f'mutex = ["{self.mutex}"]')
        return "\n".join(lines) + "\n"


def job_mix(rng: random.Random, ticks: int, lease_s: float) -> list[JobSpec]:
    """`ticks` jobs every second (short, overlap allow, one retry), three long ones with
    --overlap skip (3 s, as issue 9's), three slower than the lease, three sharing a mutex,
    three failing ones with retries."""
    jobs = [
        JobSpec(
            f"tick-{i:02d}",
            "tick",
            "* * * * * *",
            round(rng.uniform(0.1, 0.9), 2),
            "allow",
            1,
            "0s",
        )
        for i in range(ticks)
    ]
    long_s = round(min(3.0, 0.6 * lease_s), 2)  # shorter than the lease (see docs/chaos.md)
    jobs += [JobSpec(f"long-{i}", "long", "* * * * * *", long_s, "skip", 1, "0s") for i in range(3)]
    # longer than the lease: what a freeze or a kill -9 leaves running when the others take
    # over (README's two limits), measured rather than avoided
    # (three of 2, 2.5 and 3 leases, so that they drift apart and onto different runners)
    jobs += [
        JobSpec(
            f"slow-{i}", "slow", "* * * * * *", round((2 + i / 2) * lease_s, 2), "skip", 1, "0s"
        )
        for i in range(3)
    ]
    jobs += [
        JobSpec(f"mx-{i}", "mutex", "*/2 * * * * *", 0.7, "skip", 1, "0s", mutex="chaos")
        for i in range(3)
    ]
    jobs += [
        JobSpec(f"fail-{i}", "fail", "*/5 * * * * *", 0.2, "allow", 2, "1s", fail_attempts=i + 1)
        for i in range(3)
    ]
    return jobs


@dataclass
class Settings:
    duration: float
    lease: str
    lease_s: float
    seed: int
    ticks: int = 50
    workers: int = 24
    netns: bool = False
    folder: Path = field(default_factory=Path)
    faults: bool = True  # False: the same load with no fault (a baseline)


class Log:
    def __init__(self, path: Path, t0: float) -> None:
        self.t0 = t0
        self.file = open(path, "a")  # noqa: SIM115 - closed by close()

    def __call__(self, text: str) -> None:
        now = time.time()
        stamp = datetime.fromtimestamp(now, UTC).strftime("%H:%M:%S.%f")[:-3]
        line = f"[{now - self.t0:6.1f} s] {stamp}Z {text}"
        print(line, flush=True)
        self.file.write(line + "\n")
        self.file.flush()

    def close(self) -> None:
        self.file.close()


class Host:
    """One machine: its proxy (and, with --netns, its namespace and link), its runner."""

    def __init__(
        self,
        name: str,
        index: int,
        settings: Settings,
        target: tuple[str, int],
        env: dict[str, str],
        db: str,
    ) -> None:
        self.name = name
        self.settings = settings
        self.env = env
        self.ns: str | None = None
        bind = "127.0.0.1"
        if settings.netns:
            self.ns, self.link = f"jchaos-{name}", f"jch{name}a"
            bind = netns_up(self.ns, self.link, index)
        self.proxy = FaultProxy(target, bind)
        self.url = _via(db, self.proxy.host, self.proxy.port)
        self.proc: subprocess.Popen[bytes] | None = None
        self.history: list[dict[str, Any]] = []  # each runner process: pid, started, ended, how

    def start(self) -> int:
        s = self.settings
        argv = [
            common.jobctl_bin(),
            "runner",
            "--workers",
            str(s.workers),
            "--grace",
            "2s",
            "--lease",
            s.lease,
        ]
        if self.ns:
            argv = ["ip", "netns", "exec", self.ns, *argv]
        log = open(s.folder / f"{self.name}.log", "ab")  # noqa: SIM115 - the child holds it
        self.proc = subprocess.Popen(
            argv,
            env={**self.env, "JOBCTL_HOST": self.name, "JOBCTL_STORE": self.url},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # our Ctrl-C is not the runner's
        )
        log.close()
        self.history.append(
            {"pid": self.proc.pid, "started": time.time(), "ended": None, "how": ""}
        )
        return self.proc.pid

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            self.history[-1].update(ended=time.time(), how="kill -9")

    def stop(self) -> None:
        if self.alive():
            assert self.proc is not None
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
                how = f"stopped (exit {self.proc.returncode})"
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                how = "did not stop within 30 s of SIGTERM: killed"
            self.history[-1].update(ended=time.time(), how=how)

    def close(self) -> None:
        self.proxy.close()
        if self.ns:
            netns_down(self.ns, self.link)


def netns_up(ns: str, link: str, index: int) -> str:
    """A namespace with a veth pair to the host (10.213.INDEX.0/24); returns the host side's
    address, where this machine's proxy listens."""
    netns_down(ns, link)
    peer = link[:-1] + "b"
    host_ip, ns_ip = f"10.213.{index}.1", f"10.213.{index}.2"
    for argv in (
        ["ip", "netns", "add", ns],
        ["ip", "link", "add", link, "type", "veth", "peer", "name", peer],
        ["ip", "link", "set", peer, "netns", ns],
        ["ip", "addr", "add", f"{host_ip}/24", "dev", link],
        ["ip", "link", "set", link, "up"],
        ["ip", "netns", "exec", ns, "ip", "addr", "add", f"{ns_ip}/24", "dev", peer],
        ["ip", "netns", "exec", ns, "ip", "link", "set", peer, "up"],
        ["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"],
    ):
        subprocess.run(argv, check=True, capture_output=True)
    return host_ip


def netns_down(ns: str, link: str) -> None:
    subprocess.run(["ip", "link", "del", link], capture_output=True, check=False)
    subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


def netns_works() -> str | None:
    """None when `ip netns` can make a namespace with a link here, else why not."""
    if os.geteuid() != 0:
        return "not root"
    if not shutil.which("ip"):
        return "no `ip` command"
    try:
        netns_up("jchaos-probe", "jchpa", 250)
    except (subprocess.CalledProcessError, OSError) as exc:
        return f"`ip netns` failed: {exc}"
    finally:
        netns_down("jchaos-probe", "jchpa")
    return None


def _via(url: str, host: str, port: int) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    user = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    url = urlunsplit(parts._replace(netloc=f"{user}{host}:{port}"))
    return f"{url}{'&' if '?' in url else '?'}sslmode=disable&gssencmode=disable"


def _sql(url: str, query: str, args: list[Any] | None = None) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        cur = conn.execute(query, args or [])  # type: ignore[arg-type]
        return cur.fetchall() if cur.description else []


def _wait(cond: Any, timeout: float, step: float = 0.25) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if cond():
                return True
        except Exception:  # the database restarting: ask again
            pass
        time.sleep(step)
    return False


def run(settings: Settings) -> Path:
    """Carry out one chaos run into settings.folder; returns the folder."""
    from tests.pg import Cluster

    s = settings
    folder = s.folder
    (folder / "effects").mkdir(parents=True, exist_ok=True)
    os.chmod(folder / "effects", 0o777)
    rng = random.Random(s.seed)
    t0 = time.time()
    log = Log(folder / "harness.log", t0)
    cluster = Cluster()
    hosts: dict[str, Host] = {}
    tag = uuid.uuid4().hex
    faults: list[Fault] = []
    meta: dict[str, Any] = {
        "seed": s.seed,
        "lease": s.lease,
        "lease_s": s.lease_s,
        "duration": s.duration,
        "hosts": list(HOSTS),
        "netns": s.netns,
        "workers": s.workers,
        "tag": tag,
    }
    try:
        db = cluster.start()
        durable(db)
        log(f"throwaway cluster up at {db} (its own, restarted by the faults)")
        target = ("127.0.0.1", int(db.rsplit(":", 1)[1].split("/")[0]))
        from jobctl.store.postgres import PostgresStore

        PostgresStore(db).close()  # the schema, before the runners race for it
        home = folder / "home"
        env = common.clean_env(home)
        env.update({EFFECTS_VAR: str(folder / "effects"), TAG_VAR: tag})
        admin = {**env, "JOBCTL_STORE": db, "JOBCTL_HOST": "harness"}
        for i, name in enumerate(HOSTS, start=1):
            hosts[name] = Host(name, i, s, target, env, db)
        for h in hosts.values():
            h.start()
        for h in hosts.values():
            if not _wait(
                lambda h=h: _sql(db, "SELECT 1 FROM runner WHERE host = %s", [h.name]), 60
            ):
                raise RuntimeError(f"runner {h.name} did not register: see {h.name}.log")
        log(
            f"runners {', '.join(HOSTS)} registered (--lease {s.lease}, {s.workers} workers"
            f"{', each in its own network namespace' if s.netns else ''})"
        )
        script = folder / "job.sh"
        script.write_text(JOB_SCRIPT)
        script.chmod(0o755)
        jobs = job_mix(rng, s.ticks, s.lease_s)
        jobfile = folder / "jobs.toml"
        jobfile.write_text("\n".join(j.toml(script, folder) for j in jobs))
        common.run(admin, "apply", str(jobfile))
        w0 = float(int(time.time()) + 2)  # the first whole second surely after every add
        meta["jobs"] = [j.__dict__ for j in jobs]
        meta["window_start"] = w0
        log(f"{len(jobs)} jobs applied; checked fires from {_hms(w0)}")
        faults = make_schedule(rng, s.duration, s.lease_s, HOSTS, netns=s.netns) if s.faults else []
        start = time.time()
        meta["t0"] = start
        for f in faults:
            log(f"planned at +{f.at:5.1f} s: {f.describe()}")
        _carry_out(faults, hosts, cluster, start, s, log, folder, db)
        w1 = float(int(time.time()))
        meta["window_end"] = w1
        # the fleet must fire through w1 before the jobs are paused (load-independent end)
        through = _wait(
            lambda: (
                not _sql(
                    db,
                    "SELECT 1 FROM jobs WHERE state = 'active' AND next_run_at <= %s",
                    [int(w1 * 1000)],
                )
            ),
            60,
        )
        meta["fired_through_end"] = through
        log(f"window ends {_hms(w1)}; fleet fired through it: {through}")
        common.run(admin, "pause", *[j.name for j in jobs])
        settle = 3 * s.lease_s + 30
        settled = _wait(
            lambda: not _sql(db, "SELECT 1 FROM runs WHERE status IN ('queued', 'running')"), settle
        )
        log(f"jobs paused; runs settled: {settled}")
        history = _history(db)
        open_runs = [r for r in history if r["status"] in ("queued", "running")]
        for h in hosts.values():
            h.stop()
        log("runners stopped")
        orphans = _orphans(tag)
        if orphans:
            log(f"ORPHANS: {orphans}")
            for pid, _ in orphans:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
        _dump(folder / "history.json", history)
        _dump(
            folder / "end.json",
            {"settled": settled, "open_runs": [r["id"] for r in open_runs], "orphans": orphans},
        )
    finally:
        for h in hosts.values():
            h.kill() if h.alive() else None
        _dump(folder / "faults.json", [f.to_dict() for f in faults])
        _dump(folder / "runners.json", {n: h.history for n, h in hosts.items()})
        _dump(folder / "meta.json", meta)
        for h in hosts.values():
            h.close()
        cluster.stop()
        log.close()
    return folder


def _carry_out(
    faults: list[Fault],
    hosts: dict[str, Host],
    cluster: Any,
    start: float,
    s: Settings,
    log: Log,
    folder: Path,
    db: str,
) -> None:
    """Each fault at its time, and its end its length after it was carried out; until
    s.duration. A kill or a long freeze first waits (at most 1.2 leases) for its runner to
    have just started a job slower than the lease, so that the README's two limits happen."""
    events: list[tuple[float, int, str, Fault | None]] = [(f.at, i, "begin", f) for i, f in
                                                          enumerate(faults)]  # fmt: skip
    events.append((s.duration, len(faults), "stop", None))
    heapq.heapify(events)
    next_count = 10.0
    while events:
        at, i, what, f = heapq.heappop(events)
        while (left := start + at - time.time()) > 0:
            time.sleep(min(left, 1.0))
            _supervise(hosts, log)
            if time.time() - start >= next_count:
                n = sum(_lines(p) for p in (folder / "effects").glob("*.effects"))
                log(f"{n} side-effect lines so far")
                next_count += 10.0
        if f is None:
            return
        if what == "begin" and f.kind in ("kill", "stop-long") and f.target:
            _aim(db, f.target, s.lease_s, log)
        _act(f, what, hosts, cluster, log)
        if what == "begin" and not f.kind.startswith("db-"):
            heapq.heappush(events, (time.time() - start + f.length, i, "end", f))


def _aim(db: str, host: str, lease_s: float, log: Log) -> None:
    """Wait (at most 1.2 leases) until `host` runs a slow-* job (2-3 leases long) started
    less than 1.2 leases ago: one that outlives the runner's lease after a kill or a freeze."""
    waited = time.time()

    def ready() -> bool:
        return bool(_sql(db, "SELECT 1 FROM runs WHERE status = 'running' AND host = %s "
                         "AND job LIKE 'slow-%%' AND started_at > %s",
                         [host, int((time.time() - 1.2 * lease_s) * 1000)]))  # fmt: skip

    if _wait(ready, 1.2 * lease_s, step=0.1):
        log(f"{host} has just started a job slower than the lease "
            f"(waited {time.time() - waited:.1f} s)")  # fmt: skip
    else:
        log(f"{host} started no job slower than the lease within {1.2 * lease_s:g} s; going on")


def _supervise(hosts: dict[str, Host], log: Log) -> None:
    """Play systemd (jobctl's unit: Restart=on-failure, RestartSec=5s) for a runner that
    exited by itself: noted in its history, started again 5 s later."""
    for h in hosts.values():
        if h.proc is None or h.alive() or h.history[-1]["ended"] is not None:
            continue
        rec = h.history[-1]
        if not rec.get("how"):
            rec["how"] = f"exited by itself (exit {h.proc.returncode})"
            rec["exited"] = time.time()
            log(f"{h.name}'s runner {rec['how']}; restarting it in 5 s, as its unit would")
        elif time.time() - rec["exited"] >= 5.0:
            rec["ended"] = rec["exited"]
            log(f"{h.name} started again by the supervisor (pid {h.start()})")


def _act(f: Fault, what: str, hosts: dict[str, Host], cluster: Any, log: Log) -> None:
    h = hosts[f.target] if f.target else None
    now = time.time()
    if what == "begin":
        f.started = now
    if f.kind == "kill" and h:
        if what == "begin":
            pid = h.pid
            h.kill()
            log(f"FAULT kill -9 {h.name} (pid {pid}); started again in {f.length:.1f} s")
        else:
            pid = h.start()
            log(f"{h.name} started again (pid {pid})")
    elif f.kind.startswith("stop-") and h:
        sig = signal.SIGSTOP if what == "begin" else signal.SIGCONT
        os.kill(h.pid, sig)
        log(
            f"FAULT SIGSTOP {h.name} for {f.length:.1f} s"
            if what == "begin"
            else f"SIGCONT {h.name}"
        )
    elif f.kind.startswith("cut-") and h:
        if f.flavour == "link":
            state = "down" if what == "begin" else "up"
            subprocess.run(["ip", "link", "set", h.link, state], check=True)
        elif what == "begin":
            h.proxy.partition(f.flavour)
        else:
            h.proxy.restore()
        log(
            f"FAULT cut {h.name} off the database ({f.flavour}) for {f.length:.1f} s"
            if what == "begin"
            else f"{h.name} reconnected ({f.flavour})"
        )
    elif f.kind == "latency" and h:
        h.proxy.set_latency(float(f.flavour) if what == "begin" else 0.0)
        log(
            f"FAULT latency +{f.flavour} s each way on {h.name} for {f.length:.1f} s"
            if what == "begin"
            else f"{h.name}'s latency back to 0"
        )
    elif f.kind.startswith("db-"):
        mode = f.kind[3:]
        log(f"FAULT pg_ctl restart -m {mode}")
        try:
            cluster.restart(mode)
            f.notes.append("restarted")
        except RuntimeError as exc:
            f.notes.append(f"restart failed: {exc}")
        log(f"database back after {time.time() - now:.1f} s")
        f.length = round(time.time() - now, 2)
    if what == "end" or f.kind.startswith("db-"):
        f.ended = time.time()


def durable(db: str) -> None:
    """tests/pg.py's cluster runs with synchronous_commit=off (fast tests); a crash
    (restart -m immediate) then loses commits the clients were told succeeded, which no
    database-backed scheduler survives (a claim undone is a run claimed twice). Production
    servers commit durably (the default): so does ours, for every new session. fsync stays
    off: the restarts crash the server, not the machine, and the kernel keeps what was written.
    """
    _sql(db, "ALTER DATABASE postgres SET synchronous_commit = on")
    (value,) = _sql(db, "SHOW synchronous_commit")[0]
    if value != "on":
        raise RuntimeError(f"synchronous_commit is {value}, not on")


def _lines(path: Path) -> int:
    with contextlib.suppress(OSError), open(path, "rb") as fh:
        return sum(1 for _ in fh)
    return 0


def _history(db: str) -> list[dict[str, Any]]:
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(db, autocommit=True, row_factory=dict_row) as conn:
        rows = conn.execute(
            "SELECT id, job, attempt, trigger, status, scheduled_for, created_at, not_before, "
            "started_at, finished_at, exit_code, signal, error, host, owner, dead "
            "FROM runs ORDER BY id"
        ).fetchall()
    out = []
    for r in rows:
        for k in ("scheduled_for", "created_at", "not_before", "started_at", "finished_at"):
            r[k] = None if r[k] is None else r[k] / 1000
        out.append(dict(r))
    return out


def _orphans(tag: str, settle_s: float = 3.0) -> list[tuple[int, str]]:
    """Processes (not zombies) whose environment carries this run's tag, once every runner
    has stopped: job processes that outlived their runner. Looked for until none is left or
    `settle_s` has passed (a process may be exiting)."""
    needle = f"{TAG_VAR}={tag}".encode()
    end = time.monotonic() + settle_s
    while True:
        found: list[tuple[int, str]] = []
        for pid in (int(p) for p in os.listdir("/proc") if p.isdigit()):
            try:
                with open(f"/proc/{pid}/environ", "rb") as fh:
                    if needle not in fh.read().split(b"\0"):
                        continue
                with open(f"/proc/{pid}/stat") as fh:
                    if fh.read().rsplit(")", 1)[1].split()[0] == "Z":
                        continue
                with open(f"/proc/{pid}/cmdline", "rb") as fh:
                    found.append((pid, fh.read().replace(b"\0", b" ").decode(errors="replace")))
            except OSError:
                continue
        if not found or time.monotonic() > end:
            return found
        time.sleep(0.2)


def _dump(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=1, default=str) + "\n")


def _hms(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%H:%M:%S")


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use: python -m bench.chaos")
