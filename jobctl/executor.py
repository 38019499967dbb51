"""The executor: starts, watches and stops ONE job process group.

It spawns the job in a new session (its pid is also its group id), captures stdout and stderr
in arrival order with a head+tail cap (SPEC 6), enforces `--timeout` and `--kill-grace` (SPEC 4)
and maps the ending to an Outcome. It knows nothing of the store, the CLI or scheduling, and
signals only groups it started, or (`kill_group`) one whose leader's start time proves it.
The leader is reaped last: until then its pid, hence its group id, cannot be reused, so
signalling the group from here is always safe.

Stopping a run (timeout, cancel) also reaches the processes that left its group (`setsid`
daemons): those whose environment holds the run's markers (Spec.markers) and every
descendant of the leader, its group members and those, found in /proc just before the first
signal; each is signalled through a pidfd opened after checking its start time, never the
caller itself or its group. A runner that called become_subreaper() adopts the orphans of
its jobs' processes; reap_orphans() reaps them without taking the exit status of a job.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import BinaryIO, NamedTuple

from jobctl import procfs
from jobctl.procfs import start_time as proc_start_time
from jobctl.programs import which

CHUNK = 64 * 1024  # one os.read, and the most head bytes held before calling the sink
FLUSH_EVERY_S = 0.2  # the sink is called at most this often while output flows
IDLE_S = 0.25  # longest select wait: how late terminate()'s SIGKILL deadline may be noticed
POLL_S = 0.1  # exit polling when os.pidfd_open is unavailable
DRAIN_S = 0.5  # after the leader exits, read what is left for at most this long
SETTLE_S = 0.05  # a job running this long is "settled": watch() calls its `settled` hook
_SIGNAMES = {s.value: s.name for s in signal.Signals}
_EXITED_NOWAIT = os.WEXITED | os.WNOHANG | os.WNOWAIT  # has it exited? (without reaping it)
PR_SET_CHILD_SUBREAPER = 36  # prctl(2), Linux 3.4+


@dataclass
class Spec:
    argv: list[str]  # with shell=True, one string run as ['/bin/sh', '-c', argv[0]]
    shell: bool
    cwd: str
    env: dict[str, str] | dict[bytes, bytes]  # the FULL environment of the child
    timeout_s: float | None = None
    kill_grace_s: float = 10.0
    max_output: int = 1024 * 1024  # bytes kept: head (first half) + tail (last half)
    #: `NAME=value` entries of `env` that mark the run's processes (the runner's JOBCTL_RUN_ID
    #: and JOBCTL_OWNER): stopping the run also stops every process whose environment has all
    #: of them, wherever it moved (empty: only the group and the leader's descendants)
    markers: frozenset[bytes] = frozenset()
    #: stderr on a pipe of its own (the foreground `jobctl run` keeps the job's two streams
    #: apart on the terminal); the captured output still has both in arrival order
    split_stderr: bool = False
    #: (gated) the file the gate creates when its starter died before releasing it, so that
    #: the starter's successor knows the command never ran (runner/recovery.py)
    gate_mark: str | None = None


@dataclass
class Outcome:
    status: str  # 'succeeded' | 'failed' | 'timed_out' | 'cancelled' | 'abandoned'
    exit_code: int | None  # None when killed by a signal
    signal: int | None  # the signal that killed the main process
    error: str | None  # short human reason for anything but success
    started_at: float
    finished_at: float
    output_bytes: int  # everything the job wrote, dropped bytes included
    dropped_bytes: int


class SpawnError(Exception):
    """The command could not be started; exit_code is 127 (not found) or 126 (cannot execute)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


#: a gated job reads its stdin (the gate pipe) before exec'ing its command with stdin=/dev/null;
#: EOF (its starter died before releasing it) means "never run": it writes its pid to the file
#: named by its first argument (Spec.gate_mark; none if empty), for the next runner, and exits
_GATE = (
    'm=$1; shift; read _ || { [ -z "$m" ] || echo $$ >"$m"; exit 125; }; exec </dev/null; exec "$@"'
)


_FOUND: dict[tuple[str, str, str], tuple[str, float]] = {}  # (cmd, PATH, cwd) -> (path, when)
FOUND_TTL_S = 1.0  # a PATH lookup is reused this long (a drain starts the same command often)


def _resolve(argv: list[str], spec: Spec) -> str:
    """The program to exec for argv[0]; SpawnError 127/126 for a command that cannot run
    (checked up front: a gated job's exec happens inside the gate, where a failure would only
    be an exit code). A PATH lookup is reused for FOUND_TTL_S while the program found is still
    executable: a command moved or replaced on PATH is found where it is now within a second."""
    cmd = argv[0]
    if "/" in cmd:
        path = cmd if os.path.isabs(cmd) else os.path.join(spec.cwd, cmd)
        if not os.path.exists(path):
            raise SpawnError(f"command not found: {cmd}", 127)
        if os.path.isdir(path) or not os.access(path, os.X_OK):
            raise SpawnError(f"cannot execute {cmd}: Permission denied", 126)
        return path
    env: dict = spec.env  # type: ignore[type-arg]
    search = os.fsdecode(env.get("PATH", env.get(b"PATH", os.defpath)))
    key, now = (cmd, search, spec.cwd), time.monotonic()
    hit = _FOUND.get(key)
    if hit is not None and now - hit[1] < FOUND_TTL_S and os.access(hit[0], os.X_OK):
        return hit[0]
    found = which(cmd, path=search)
    if found is None:
        _FOUND.pop(key, None)
        raise SpawnError(f"command not found: {cmd}", 127)
    _FOUND[key] = (found, now)
    return found


# ---- children: ours, and the orphans a subreaper adopts --------------------------------------

_children_lock = threading.Lock()  # guards the three below, and every reaping by reap_orphans()
_own: set[int] = set()  # pids of the unreaped processes start() spawned (their watch reaps them)
_spawning = 0  # start() calls between fork and registering the child in _own
_devnull: list[int] = []  # /dev/null opened once for every job's stdin (not per spawn)


def _stdin_null() -> int:
    if not _devnull:
        with _children_lock:
            if not _devnull:
                _devnull.append(os.open(os.devnull, os.O_RDONLY))
    return _devnull[0]


_subreaper = False  # become_subreaper() succeeded: reap_orphans() is on


def become_subreaper() -> bool:
    """Make this process a child subreaper (Linux): a descendant whose parent dies (a job's
    daemon that double-forked, or the children of a job that exited) is re-parented to this
    process instead of init, so it stays in this process's tree and its exit is reaped here
    (by reap_orphans) even where init reaps nothing. False where unsupported. For the runner
    process only: every exited child it did not spawn through start() is then reaped."""
    global _subreaper
    if not sys.platform.startswith("linux"):
        return False
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
        zero = ctypes.c_ulong(0)
        if prctl(PR_SET_CHILD_SUBREAPER, ctypes.c_ulong(1), zero, zero, zero) != 0:
            return False
    except (OSError, AttributeError):
        return False
    _subreaper = True
    return True


def reap_orphans() -> list[int]:
    """Reap the exited children this process did not spawn through start() (the orphans it
    adopted as a subreaper); return their pids. A no-op unless become_subreaper() succeeded.

    Never reaps a job's process: its watch() waits for its exit status. Non-blocking and
    cheap (one waitid(2) when nothing has exited): the runner calls it on each wake-up and
    watch() when a run ends, so no SIGCHLD handler is needed."""
    if not _subreaper:
        return []
    reaped: list[int] = []
    for _ in range(1000):  # peek at whichever child has exited, without reaping it
        with _children_lock:
            if _spawning:  # a new child may not be registered yet: next time
                return reaped
            try:
                info = os.waitid(os.P_ALL, 0, _EXITED_NOWAIT)
            except ChildProcessError:
                return reaped
            if info is None:
                return reaped
            if info.si_pid in _own:
                break  # a job that its watch() is about to reap: look past it, below
            with contextlib.suppress(ChildProcessError):
                if os.waitid(os.P_PID, info.si_pid, os.WEXITED | os.WNOHANG) is not None:
                    reaped.append(info.si_pid)
    for pid in _children():
        with _children_lock:
            if _spawning:
                break
            if pid in _own:
                continue
            with contextlib.suppress(ChildProcessError):
                if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG) is not None:
                    reaped.append(pid)
    return reaped


def _children() -> list[int]:
    """The children of this process's main thread: where the kernel puts the orphans a
    subreaper adopts (its first live thread), apart from those the main thread spawned (a
    job started by a worker thread is that thread's). Empty if the kernel lacks the file:
    then an orphan is reaped once no job's exit is pending before it."""
    return procfs.children(os.getpid())


def _forget(pid: int) -> None:
    """`pid`, spawned by start(), has been reaped."""
    with _children_lock:
        _own.discard(pid)


def start(spec: Spec, gated: bool = False) -> Process:
    """Spawn the job in a new session with stdin=/dev/null and stderr merged into stdout.

    `gated`: the process exists (pid known) but does not exec the command until release();
    if this process dies first, the gate reads EOF and the job exits 125 without running.
    That lets the runner record the pid before the job can do anything (crash safety).
    """
    global _spawning
    if not spec.argv:
        raise ValueError("empty command")
    argv = ["/bin/sh", "-c", " ".join(spec.argv)] if spec.shell else list(spec.argv)
    if not os.path.isdir(spec.cwd):
        what = "is not a directory" if os.path.exists(spec.cwd) else "does not exist"
        raise SpawnError(f"working directory {what}: {spec.cwd}", 126)
    gate_r = gate_w = None
    program = _resolve(argv, spec)
    if gated:
        gate_r, gate_w = os.pipe()
        argv = ["/bin/sh", "-c", _GATE, "jobctl-gate", spec.gate_mark or "", *argv]
        program = "/bin/sh"
    with _children_lock:
        _spawning += 1  # reap_orphans() holds off until the new child is known as ours
    popen: subprocess.Popen[bytes] | None = None
    try:
        popen = subprocess.Popen(
            argv,
            executable=program,
            cwd=spec.cwd,
            env=spec.env,
            stdin=gate_r if gate_r is not None else _stdin_null(),
            stdout=subprocess.PIPE,
            bufsize=0,  # the pipes are read by fd (Watch): no buffered reader to build
            stderr=subprocess.PIPE if spec.split_stderr else subprocess.STDOUT,
            close_fds=True,
            start_new_session=True,
        )
    except OSError as e:
        if gate_w is not None:
            os.close(gate_w)
        if e.filename == spec.cwd and e.filename != argv[0]:
            raise SpawnError(f"cannot enter working directory {spec.cwd}: {e.strerror}", 126) from e
        if isinstance(e, FileNotFoundError):
            raise SpawnError(f"command not found: {argv[0]}", 127) from e
        raise SpawnError(f"cannot execute {argv[0]}: {e.strerror}", 126) from e
    except ValueError as e:  # e.g. an embedded NUL byte in an argument or the environment
        if gate_w is not None:
            os.close(gate_w)
        raise SpawnError(f"cannot execute {argv[0]}: {e}", 126) from e
    finally:
        if gate_r is not None:
            os.close(gate_r)
        with _children_lock:
            _spawning -= 1
            if popen is not None:
                _own.add(popen.pid)
    return Process(popen, spec, gate_w)


class _Capture:
    """Keeps the head (handed to the sink in batches) and a bounded tail; tees every byte."""

    def __init__(
        self, max_output: int, sink: Callable[[bytes], None], tees: dict[int, BinaryIO | None]
    ) -> None:
        self.sink, self.tees = sink, tees  # the stream each pipe is copied to, if any
        self.head_size = self.head_room = max(max_output, 0) // 2
        self.tail_size = max(max_output, 0) - self.head_size
        self.total = 0
        self.pending = bytearray()
        self.tail = bytearray()
        self.last_flush = time.monotonic()

    def add(self, data: bytes, fd: int = -1) -> None:
        self.total += len(data)
        tee = self.tees.get(fd)
        if tee is not None:
            try:
                tee.write(data)
                tee.flush()
            except (OSError, ValueError):
                self.tees[fd] = None  # the terminal went away (a closed pipe): keep capturing
        if self.head_room:
            part = data[: self.head_room]
            self.pending += part
            self.head_room -= len(part)
            data = data[len(part) :]
        if data and self.tail_size:
            self.tail += data
            if len(self.tail) > self.tail_size:
                del self.tail[: len(self.tail) - self.tail_size]
        if len(self.pending) >= CHUNK:
            self.flush()

    def read(self, fd: int) -> bool | None:
        """Read one chunk from `fd`: True if data came, False at EOF, None if nothing was ready."""
        try:
            data = os.read(fd, CHUNK)
        except BlockingIOError:
            return None
        if data:
            self.add(data, fd)
        return bool(data)

    def flush_in(self, now: float) -> float | None:
        """Seconds until the pending head is due to the sink (None if nothing is pending)."""
        return max(0.0, self.last_flush + FLUSH_EVERY_S - now) if self.pending else None

    def flush(self) -> None:
        self.last_flush = time.monotonic()
        if self.pending:
            self.sink(bytes(self.pending))
            self.pending.clear()

    def finish(self) -> int:
        """Hand over the rest (marker and tail); return the number of dropped bytes."""
        self.flush()
        dropped = self.total - (self.head_size - self.head_room) - len(self.tail)
        if dropped:
            self.sink(f"\n[jobctl: {dropped} bytes of output dropped]\n".encode())
        if self.tail:
            self.sink(bytes(self.tail))
        return dropped


class Process:
    """A started job. Call watch() once (it blocks); terminate() from any thread."""

    def __init__(self, popen: subprocess.Popen[bytes], spec: Spec, gate: int | None = None) -> None:
        self.started_at = time.time()
        self._popen, self._spec, self._gate = popen, spec, gate
        self.pid = popen.pid
        self._proc_start: int | None = None
        self._lock = threading.Lock()  # guards everything below, and every signal sent
        self._reaped = False
        self._status: str | None = None  # decided by the timeout or terminate()
        self._reason: str | None = None
        self._kill_at: float | None = None  # monotonic time of the SIGKILL
        self._killed = False
        self._escaped: dict[int, _Target] = {}  # processes outside the group being stopped

    @property
    def proc_start(self) -> int | None:
        """The leader's start time (/proc/PID/stat), read on first use: while the process is
        exec'ing, that read waits for it."""
        if self._proc_start is None and not self._reaped:
            self._proc_start = proc_start_time(self.pid)
        return self._proc_start

    def release(self) -> None:
        """Let a gated job exec its command now (no-op otherwise); started_at is now."""
        if self._gate is not None:
            with contextlib.suppress(OSError):
                os.write(self._gate, b"\n")
            os.close(self._gate)
            self._gate = None
            self.started_at = time.time()

    def abort(self) -> None:
        """Kill a job that was never released (it ran nothing) and reap it."""
        with self._lock:
            self._signal_group(signal.SIGKILL)  # the gate has started nothing else
            self._popen.wait()
            self._reaped = True
        _forget(self.pid)
        if self._gate is not None:
            os.close(self._gate)
            self._gate = None
        for pipe in (self._popen.stdout, self._popen.stderr):
            if pipe is not None:
                pipe.close()

    def terminate(
        self, status: str = "cancelled", reason: str | None = None, grace_s: float | None = None
    ) -> None:
        """SIGTERM the run's processes now (the group, and those that left it: see
        _signal), SIGKILL them after kill_grace_s (or `grace_s` if shorter: a runner fencing
        itself must be done before its lease expires); watch() reports `status`."""
        with self._lock:
            if self._reaped or self._status is not None:
                return
            self._status, self._reason = status, reason or status
            grace = self._spec.kill_grace_s
            self._kill_at = time.monotonic() + (grace if grace_s is None else min(grace_s, grace))
            self._signal(signal.SIGTERM)

    def _signal(self, sig: int, scan: bool = True) -> None:  # caller holds the lock
        """Signal the group and the run's processes outside it: those found before, and
        (`scan`) those /proc shows now. The scan comes first, while the tree is intact."""
        if scan and not self._reaped:
            self._find_escaped()
        self._signal_group(sig)
        for target in self._escaped.values():
            target.send(sig)

    def _signal_group(self, sig: int) -> None:  # caller holds the lock
        if not self._reaped:  # the unreaped leader pins the group id: it cannot be reused
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, sig)

    def _find_escaped(self) -> None:  # caller holds the lock; the leader is unreaped
        """Add to _escaped the live processes outside the group that are the run's: those
        whose environment holds Spec.markers, and every descendant of the leader, of a group
        member, of those and of the ones found before. Never this process or its group."""
        procs = _scan({0: set(self._spec.markers)} if self._spec.markers else None)
        mine, my_group = os.getpid(), os.getpgrp()
        held = [p for p, t in self._escaped.items() if p in procs and procs[p].start == t.start]
        roots = [p for p, info in procs.items() if info.pgrp == self.pid or info.marks]
        roots = [p for p in [self.pid, *roots, *held] if procs.get(p, _NONE).pgrp != my_group]
        for pid in _tree(procs, roots, fence={1, mine}):  # never through us to other runs
            if pid in self._escaped or procs[pid].pgrp in (self.pid, my_group):
                continue  # the group is signalled as one, and ours never
            target = _Target.open(pid, procs[pid].start)
            if target is not None:
                self._escaped[pid] = target

    def watch(
        self,
        sink: Callable[[bytes], None],
        tee: BinaryIO | None = None,
        settled: Callable[[Process], None] | None = None,
        tee_err: BinaryIO | None = None,
    ) -> Outcome:
        """Capture output until the job ends and reap it (blocking: the foreground `jobctl
        run`; the runner's event loop drives a Watch itself); if `sink` raises, SIGKILL the
        run's processes."""
        self.release()  # a gated job that nobody released would wait forever
        watch = Watch(self, sink, tee, settled, tee_err)
        sel = selectors.DefaultSelector()
        try:
            for fd in watch.fds():
                sel.register(fd, selectors.EVENT_READ)
            while (wait := watch.step(time.monotonic())) is not None:
                for key, _ in sel.select(wait):
                    if not watch.ready(key.fd):
                        sel.unregister(key.fd)
        finally:
            sel.close()
            outcome = watch.finish()
        return outcome

    def _outcome(self, rc: int, total: int, dropped: int) -> Outcome:
        exit_code, sig = (rc, None) if rc >= 0 else (None, -rc)
        if self._status is not None:
            status, error = self._status, self._reason
        elif rc >= 0:
            status, error = ("succeeded", None) if rc == 0 else ("failed", f"exit code {rc}")
        else:
            status, error = "failed", f"killed by {_SIGNAMES.get(-rc, f'signal {-rc}')}"
        return Outcome(status, exit_code, sig, error, self.started_at, time.time(), total, dropped)


class Watch:
    """The supervision of one started Process, without blocking: an event loop registers
    fds() for reading, calls ready(fd) when one is readable (False: unregister it), step(now)
    when one was ready or its timer (step's return, in seconds) is due, and finish() once
    step returned None (or to abort). It captures output, enforces the timeout and the kill
    deadline, calls `settled` once after SETTLE_S, and reaps the leader in finish()."""

    def __init__(
        self,
        proc: Process,
        sink: Callable[[bytes], None],
        tee: BinaryIO | None = None,
        settled: Callable[[Process], None] | None = None,
        tee_err: BinaryIO | None = None,
    ) -> None:
        """`tee`: where to copy the job's output as it comes (its stderr too, unless the
        Spec split it: then stderr goes to `tee_err`)."""
        assert proc._popen.stdout is not None
        self.proc = proc
        self.fd = proc._popen.stdout.fileno()
        self.pipes = {self.fd}  # the output pipes still open
        tees = {self.fd: tee}
        if proc._popen.stderr is not None:
            err = proc._popen.stderr.fileno()
            self.pipes.add(err)
            tees[err] = tee_err
        self.cap = _Capture(proc._spec.max_output, sink, tees)
        for fd in self.pipes:
            os.set_blocking(fd, False)
        try:
            self.pidfd: int | None = os.pidfd_open(proc.pid)  # readable once the leader exits
        except (AttributeError, OSError):  # old Python or kernel: poll instead
            self.pidfd = None
        self.settled = settled
        now = time.monotonic()
        self.settle_at = now + SETTLE_S if settled is not None else None
        timeout_s = proc._spec.timeout_s
        self.deadline = None if timeout_s is None else now + timeout_s
        self.leader_gone = False
        self.finished = False  # step() saw the end (else finish() is an abort: SIGKILL)

    def fds(self) -> list[int]:
        return sorted(self.pipes) + ([self.pidfd] if self.pidfd is not None else [])

    def ready(self, fd: int) -> bool:
        """`fd` is readable; False once it is of no more use (EOF, or the leader's exit)."""
        if fd in self.pipes:
            if self.cap.read(fd) is False:
                self.pipes.discard(fd)
                return False
            return True
        return not self._leader_exited()  # the pidfd stays readable: no busy loop

    def _leader_exited(self) -> bool:
        if not self.leader_gone:
            self.leader_gone = os.waitid(os.P_PID, self.proc.pid, _EXITED_NOWAIT) is not None
        return self.leader_gone

    def step(self, now: float) -> float | None:
        """Enforce deadlines and flush output; seconds until the next step is due, or None
        when the job is over (the leader exited; stragglers drained or killed)."""
        proc, cap = self.proc, self.cap
        leader_gone = self._leader_exited()
        if self.deadline is not None and now >= self.deadline and not leader_gone:
            proc.terminate("timed_out", f"timed out after {proc._spec.timeout_s:g}s")
            self.deadline = None
        with proc._lock:
            if proc._kill_at is not None and now >= proc._kill_at and not proc._killed:
                proc._signal(signal.SIGKILL)
                proc._killed = True
            stopping, killed, kill_at = proc._status is not None, proc._killed, proc._kill_at
        # After a normal exit, stop now: a grandchild may hold the pipe open forever.
        # When stopping, the rest of the group has until EOF or the SIGKILL.
        if leader_gone and (not stopping or killed or not self.pipes):
            end = now + DRAIN_S
            for fd in sorted(self.pipes):
                while time.monotonic() < end:  # until EOF, or nothing more is ready
                    got = cap.read(fd)
                    if not got:
                        break
            self.finished = True
            return None
        if self.settle_at is not None and now >= self.settle_at and not leader_gone:
            self.settle_at = None
            self.settled(proc)  # type: ignore[misc]
        if cap.flush_in(now) == 0.0:
            cap.flush()
        waits = [IDLE_S, cap.flush_in(now)]
        if self.settle_at is not None:
            waits.append(self.settle_at - now)
        waits += [t - now for t in (self.deadline, None if killed else kill_at) if t is not None]
        if self.pidfd is None and not leader_gone:
            waits.append(POLL_S)
        return max(0.0, min(w for w in waits if w is not None))

    def finish(self) -> Outcome:
        """Reap the leader (SIGKILLing the run's stragglers after a timeout or cancel, or
        everything when the watch is aborted) and return the outcome."""
        proc = self.proc
        with proc._lock:
            if proc._status is not None or not self.finished:
                # stragglers of a timeout/cancel (found again unless just SIGKILLed), or an
                # error
                proc._signal(signal.SIGKILL, scan=not proc._killed)
            rc = proc._popen.wait()
            proc._reaped = True
            for target in proc._escaped.values():
                target.close()
        _forget(proc.pid)
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None
        assert proc._popen.stdout is not None
        proc._popen.stdout.close()
        if proc._popen.stderr is not None:
            proc._popen.stderr.close()
        reap_orphans()
        dropped = self.cap.finish()
        return proc._outcome(rc, self.cap.total, dropped)


class _Proc(NamedTuple):
    ppid: int
    pgrp: int
    start: int  # clock ticks since boot: with the pid, names the process for good
    marks: frozenset[int]  # keys of the marker sets its environment holds


_NONE = _Proc(0, 0, 0, frozenset())


def _scan(markers: dict[int, set[bytes]] | None = None) -> dict[int, _Proc]:
    """The live (non-zombie) processes, by pid, in one pass over /proc; with `markers`, each
    one's environment is read for the keys of the sets of `NAME=value` entries it holds."""
    procs: dict[int, _Proc] = {}
    for pid in procfs.pids():
        st = procfs.stat(pid)
        if st is None or st.state == b"Z":
            continue
        info = _Proc(st.ppid, st.pgrp, st.start, frozenset())
        if markers:
            env = procfs.environ(pid)  # empty: gone, or another user's
            marks = frozenset(k for k, w in markers.items() if w and w <= env)  # never {}
            info = info._replace(marks=marks)
        procs[int(pid)] = info
    return procs


def _tree(procs: dict[int, _Proc], roots: Iterable[int], fence: set[int]) -> set[int]:
    """The `roots` in `procs` and all their descendants, never entering a pid in `fence`."""
    children: dict[int, list[int]] = {}
    for pid, info in procs.items():
        children.setdefault(info.ppid, []).append(pid)
    found: set[int] = set()
    todo = [p for p in roots if p in procs]
    while todo:
        pid = todo.pop()
        if pid not in found and pid not in fence:
            found.add(pid)
            todo += children.get(pid, ())
    return found


@dataclass
class _Target:
    """A process outside the run's group that stopping the run signals."""

    pid: int
    start: int
    fd: int | None  # its pidfd: signals reach it and nothing else, even once its pid is reused

    @classmethod
    def open(cls, pid: int, start: int) -> _Target | None:
        """A target for `pid` if it still started at `start`; None if it is gone."""
        fd: int | None = None
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            return None
        except (AttributeError, OSError):  # no pidfds (old Python or kernel), or out of fds
            fd = None
        if proc_start_time(pid) != start:  # the pidfd (if any) names whoever has pid now
            if fd is not None:
                os.close(fd)
            return None
        return cls(pid, start, fd)

    def send(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if self.fd is not None:
                signal.pidfd_send_signal(self.fd, sig)
            elif proc_start_time(self.pid) == self.start:
                os.kill(self.pid, sig)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def kill_group(pid: int, proc_start: int | None, sig: int) -> bool:
    """Signal group `pid` only if process `pid` still started at `proc_start` (no reused pid)."""
    if pid <= 0 or proc_start is None or proc_start_time(pid) != proc_start:
        return False
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def group_alive(pid: int) -> bool:
    """Whether process group `pid` has a member that is not a zombie.

    Zombies do not count: killed orphans stay zombies until init reaps them, and some
    containers' init never does, so a plain killpg(pid, 0) would report them alive forever.
    """
    if pid <= 0:
        return False
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, but is not ours
    return any(info.pgrp == pid for info in _scan().values())  # zombies are left out


def marked_groups(markers: dict[int, set[bytes]]) -> dict[int, set[int]]:
    """The process groups (of live, non-zombie processes) whose environment holds every
    `NAME=value` entry of a marker set, by the markers' keys; one pass over /proc."""
    found: dict[int, set[int]] = {}
    if not markers:
        return found
    for info in _scan(markers).values():
        for key in info.marks:
            found.setdefault(key, set()).add(info.pgrp)
    return found
