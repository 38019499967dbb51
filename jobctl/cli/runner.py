"""`jobctl runner` (the foreground runner) and `jobctl status`."""

import contextlib
import os
import sys
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from jobctl import render
from jobctl.cli.common import JsonOpt, now, state, store, warn_unmatched
from jobctl.errors import ConflictError

if TYPE_CHECKING:
    from collections.abc import Callable

    from jobctl.clock import Clock
    from jobctl.models import Run
    from jobctl.notify import Notifier
    from jobctl.status import Status
    from jobctl.store import Store
    from jobctl.store.base import RunnerInfo

_FANCY: list[bool] = []  # render.fancy(), asked once
#: the runner process becomes a child subreaper; off where the runner runs inside another
#: program (the in-process CLI tests: pytest must not adopt and reap its own children's orphans)
SUBREAPER = True
RUNNER_BUSY_S = 5.0  # how long the runner waits for another writer before retrying later


def _printer(event: str, text: str) -> None:
    """One line per event on stdout; a log that cannot be written (its disk full, its reader
    gone) never stops the runner."""
    with contextlib.suppress(OSError, ValueError):
        _print(event, text)


def _print(event: str, text: str) -> None:
    stamp = datetime.now().strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    text = render.printable(text)  # job names, commands and errors: escaped, one line
    if not _FANCY:
        _FANCY.append(render.fancy())
    if _FANCY[0]:
        from rich.console import Console
        from rich.markup import escape

        colour = {
            "fire": "blue",
            "start": "cyan",
            "end": "green",
            "recover": "magenta",
            "error": "red",
            "clock": "yellow",
            "stop": "yellow",
        }.get(event, "")
        if event == "end" and (" failed" in text or " timed_out" in text or "dead" in text):
            colour = "red"
        Console(highlight=False).print(
            f"[dim]{stamp}[/] [{colour}]{event:<7}[/] {escape(text)}"
            if colour
            else f"{stamp} {event:<7} {escape(text)}"
        )
    else:
        sys.stdout.write(f"{stamp} {event:<7} {text}\n")
        sys.stdout.flush()


def runner(
    workers: Annotated[
        str, typer.Option("--workers", metavar="N", help="Runs executed at once.")
    ] = "4",
    once: Annotated[
        bool, typer.Option("--once", help="Start what is due or queued now, wait for it, exit.")
    ] = False,
    wait: Annotated[
        bool, typer.Option("--wait", help="If another runner is active, stand by and take over.")
    ] = False,
    grace: Annotated[
        str,
        typer.Option(
            "--grace", metavar="D", help="On SIGTERM/SIGINT, let running jobs finish this long."
        ),
    ] = "30s",
    label: Annotated[
        list[str] | None,
        typer.Option(
            "--label", metavar="L", help="A label of this runner (repeatable; its host is one)."
        ),
    ] = None,
    lease: Annotated[
        str,
        typer.Option(
            "--lease",
            metavar="D",
            help="On a shared store: how long this runner's runs stay its own without renewal.",
        ),
    ] = "15s",
    metrics: Annotated[
        str | None,
        typer.Option(
            "--metrics", metavar="HOST:PORT", help="Serve Prometheus metrics at /metrics there."
        ),
    ] = None,
) -> None:
    """Run the scheduler in the foreground: fire jobs on time and execute them."""
    from jobctl.clock import SkewedClock
    from jobctl.config import is_postgres, sqlite_path
    from jobctl.errors import StoreError, UsageError
    from jobctl.inputs import option_duration, parse_int
    from jobctl.models import check_name
    from jobctl.runner import Runner
    from jobctl.store import open_store

    n = parse_int(workers, "--workers", minimum=1, maximum=1024)
    labels = [check_name(x, "runner label") for x in label or []]  # before any write
    grace_s = option_duration(grace, "--grace")
    lease_s = option_duration(lease, "--lease")
    if lease_s < 3:
        raise UsageError(f"--lease {lease}: must be at least 3s (it is renewed every third)")
    if metrics is not None:  # the endpoint: jobctl/cli/observe.py (started once we run)
        from jobctl.cli.observe import parse_listen

        listen = parse_listen(metrics)  # bad HOST:PORT: exit 2 before anything is written
    # the runner waits less than a command for another writer's lock: past it, the store
    # counts as unavailable and the runner retries with backoff, staying responsive
    busy = os.environ.get("JOBCTL_RUNNER_BUSY_TIMEOUT", "")
    busy_s = option_duration(busy, "JOBCTL_RUNNER_BUSY_TIMEOUT") if busy else RUNNER_BUSY_S
    skew = os.environ.get("JOBCTL_TEST_CLOCK_SKEW", "")  # tests: a machine whose clock is off
    try:
        clock = SkewedClock(float(skew)) if skew else None
    except ValueError:
        raise UsageError(f"JOBCTL_TEST_CLOCK_SKEW={skew!r}: not a number of seconds") from None
    from jobctl.config import notify_defaults

    defaults = notify_defaults()  # a bad settings file: exit 2 before anything is written
    settings = state().settings
    s = open_store(settings, busy_timeout_s=busy_s)
    if is_postgres(settings.store_url):
        if metrics is not None:
            _serve_metrics(listen)
        _fleet_runner(s, n, once, grace_s, labels, lease_s, clock,
                      lambda: open_store(settings, busy_timeout_s=busy_s),
                      _notifier(s, defaults))  # fmt: skip
        return
    from jobctl.locking import RunnerLock

    lock = RunnerLock(sqlite_path(state().settings.store_url))
    if not lock.try_acquire():
        info = s.runner_info()
        who = f"pid {info.pid} on host {info.host}" if info else f"the holder of {lock.path}"
        if not wait:
            raise ConflictError(f"a runner is already active on this store: {who}")
        render.note(f"another runner is active ({who}); waiting to take over")
        lock.wait()
        # the store may have been recreated meanwhile (the old runner stopped because its
        # file was deleted): serve the one at the path now
        s.close()
        s = open_store(state().settings, busy_timeout_s=busy_s)
    if metrics is not None:
        _serve_metrics(listen)
    moved = getattr(s, "moved", None)

    def guard() -> str | None:
        return lock.lost() or (moved() if moved is not None else None)

    from jobctl import executor

    if SUBREAPER:
        executor.become_subreaper()  # escaped descendants of our jobs come back to us (Linux)
    r = Runner(s, workers=n, emit=_printer, grace_s=grace_s, guard=guard, labels=labels,
               lease_s=lease_s, clock=clock, notifier=_notifier(s, defaults),
               gates=state().settings.home.absolute() / "gates")  # fmt: skip
    r.install_signals()
    try:
        r.run(once=once)
    finally:
        lock.release()
    if r.failure:
        raise StoreError(r.failure)


def _serve_metrics(listen: tuple[str, int]) -> None:
    """`--metrics`: the Prometheus endpoint on a thread of its own, reading the store on a
    connection of its own at each scrape (jobctl/cli/observe.py, jobctl/metrics.py)."""
    from jobctl.cli.observe import open_for_scrapes, serve_metrics

    url = serve_metrics(listen, open_for_scrapes)
    _printer("metrics", f"serving Prometheus metrics at {url}")


def _notifier(s: "Store", defaults: list[tuple[str, str]]) -> "Notifier":
    """The runner's notifications (notify.py): outcomes recorded per run in the store."""
    from jobctl import owners
    from jobctl.models import FINAL_STATUSES
    from jobctl.notify import Notifier
    from jobctl.store import RunFilter

    def output(run_id: int) -> bytes:
        return b"".join(chunk for _, chunk in s.read_output(run_id))

    def last_outcome(run: "Run") -> str | None:
        """The final status of the job's run before `run` (skips and cancels aside)."""
        for r in s.list_runs(RunFilter(job=run.job, limit=20)):
            if (
                (r.id or 0) < (run.id or 0)
                and r.status in FINAL_STATUSES
                and r.status not in ("skipped", "cancelled")
            ):
                return r.status
        return None

    return Notifier(s.add_notification, defaults, host=owners.host(), output=output,
                    emit=_printer, last_outcome=last_outcome)  # fmt: skip


def _fleet_runner(
    s: "Store",
    workers: int,
    once: bool,
    grace_s: float,
    labels: list[str],
    lease_s: float,
    clock: "Clock | None",
    lease_store: "Callable[[], Store]",
    notifier: "Notifier",
) -> None:
    """A runner on a shared (PostgreSQL) store: no file lock, any number of them at once;
    its lease, renewed on a second connection, decides what is its own (SPEC 8)."""
    from jobctl import executor
    from jobctl.runner import Runner

    if SUBREAPER:
        executor.become_subreaper()
    r = Runner(s, workers=workers, clock=clock, emit=_printer, grace_s=grace_s, labels=labels,
               lease_s=lease_s, lease_store=lease_store, notifier=notifier,
               gates=state().settings.home.absolute() / "gates")  # fmt: skip
    r.install_signals()
    from jobctl.relay import Relay

    # this machine's `run --detach` comes to us instead of importing psycopg (jobctl/relay.py)
    relay = Relay(state().settings, s, r.wake, lambda line: _printer("error", line))
    relay.start()
    try:
        r.run(once=once)
    finally:
        relay.close()


def status(
    json: JsonOpt = False,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Exit 0 if a runner is active with a fresh heartbeat, else 1 with one line.",
        ),
    ] = False,
    watch: Annotated[
        bool, typer.Option("--watch", "-w", help="Redraw every second until Ctrl-C.")
    ] = False,
) -> None:
    """Whether a runner is active, what runs now, what is queued, next fires, failures."""
    if watch:  # the live view: jobctl/cli/observe.py
        from jobctl.errors import UsageError

        if json or check:
            raise UsageError("--watch cannot be combined with --json or --check")
        from jobctl.cli.observe import watch_status

        raise typer.Exit(watch_status())
    from jobctl import status as status_

    s, t = store(), now()
    if check:  # with --json: the status as JSON on stdout, and the check's exit code
        code = _check(*status_.runners_alive(s), quiet=json)
        if json:
            render.print_json(_status_json(status_.gather(s, t)))
        raise typer.Exit(code)
    st = status_.gather(s, t)
    # pinned where no runner fits
    warn_unmatched(s.list_jobs(last_runs=False, pinned=True), st.runners, one_job=False)
    if json:
        render.print_json(_status_json(st))
        return
    info = st.runner
    if s.shared and st.runners:  # a fleet: one line per runner, on any machine
        live = [r for r in st.runners if st.alive[r.owner]]
        typer.echo(f"runners: {len(live)} active" + (f", {len(st.runners) - len(live)} with an "
                   "expired lease" if len(live) < len(st.runners) else ""))  # fmt: skip
        rows = [[r.host, str(r.pid), ", ".join(x for x in r.labels if x != r.host) or "-",
                 render.relative(r.since, t).replace(" ago", ""),
                 "held" if st.alive[r.owner] else "expired", str(st.running_on(r))]
                for r in st.runners]  # fmt: skip
        render.table(["HOST", "PID", "LABELS", "UP", "LEASE", "RUNNING"], rows)
        head = ""
    elif st.active and info:
        up = render.relative(info.since, t).replace(" ago", "")
        beat = render.relative(info.heartbeat_at, t)
        head = f"runner: active, pid {info.pid} on {info.host}, up {up}, heartbeat {beat}"
        extra = [x for x in info.labels if x != info.host]
        if extra:
            head += f", labels {', '.join(extra)}"
    else:
        head = "runner: not running (start one with: jobctl runner)"
    if head:
        typer.echo(render.printable(head))
    typer.echo(f"queued: {st.queued}   failed (24h): {st.failed_24h}   dead: {st.dead}")
    if st.running:
        render.table(
            ["ID", "JOB", "STARTED", "PID"],
            [
                [str(r.id), r.job, render.relative(r.started_at, t), str(r.pid or "-")]
                for r in st.running
            ],
            title="running",
        )
    if st.upcoming:
        render.table(
            ["JOB", "NEXT"], [[n, render.when(a, t)] for a, n in st.upcoming], title="upcoming"
        )


def _status_json(st: "Status") -> dict[str, Any]:
    """SPEC 6's status shape (and SPEC 8's "runners")."""
    info = st.runner
    return {
        "runner": {
            "active": st.active,
            "pid": info.pid if info else None,
            "host": info.host if info else None,
            "since": render.iso(info.since) if info else None,
            "heartbeat_at": render.iso(info.heartbeat_at) if info else None,
        },
        "runners": [
            {
                "host": r.host,
                "pid": r.pid,
                "labels": r.labels,
                "version": r.version,
                "since": render.iso(r.since),
                "heartbeat_at": render.iso(r.heartbeat_at),
                "lease_expires_at": render.iso(r.lease_expires_at)
                if r.lease_expires_at is not None
                else None,
                "active": st.alive[r.owner],
                "running": st.running_on(r),
            }
            for r in st.runners
        ],
        "running": [render.run_json(r) for r in st.running],
        "queued": st.queued,
        "upcoming": [{"job": n, "at": render.iso(a, ms=False)} for a, n in st.upcoming],
        "failed_24h": st.failed_24h,
        "dead": st.dead,
    }


def _check(
    registered: "list[RunnerInfo]", alive: dict[str, bool], t: float, quiet: bool = False
) -> int:
    """`status --check` (for monitoring, like `systemctl is-active`): 0 when a runner is
    alive and its lease, renewed by its heartbeat, has not expired (said on stdout unless
    `quiet`); else 1, with one line on stderr."""
    fresh = [r for r in registered if alive[r.owner] and (r.lease_expires_at or 0.0) > t]
    if fresh:
        r = fresh[-1]
        more = f" (and {len(fresh) - 1} more)" if len(fresh) > 1 else ""
        if not quiet:
            typer.echo(f"active: runner pid {r.pid} on {r.host}{more}")
        return 0
    if any(alive.values()):
        return _fail("runner: its heartbeat is stale (the runner is stuck or its store is "
                     "unavailable)")  # fmt: skip
    return _fail("runner: not running (start one with: jobctl runner)")


def _fail(line: str) -> int:
    from jobctl.errors import EXIT_FAILED

    typer.echo(render.printable(line), err=True)
    return EXIT_FAILED


def register(app: typer.Typer) -> None:
    app.command()(runner)
    app.command()(status)
