"""The local relay: `run --detach` (and `retry --detach`) handed to this machine's runner.

On a shared (PostgreSQL) store a command's start-up is mostly importing psycopg (141 ms of a
190 ms `run --detach` here, against 10 ms for `python -c pass`). A runner on that store
listens on a Unix socket in its home folder (named after the store's URL); a command on the
same machine, same home and same store URL sends it the request and prints the answer,
as pueue's client talks to its daemon: `run --detach` never imports psycopg (`retry
--detach` reads the run it replays first, so it opens the store all the same). Without
such a runner (no socket, a stale one, another user's) the command opens the store itself.

The request is one JSON line, the answer too: the run recorded (the same `runs.trigger` the
command would call, on the runner's own connection), or the error with its class, so that
the command prints the same line and exits with the same code. Once a request is sent the
command never falls back (the runner may have recorded the run): no answer is a StoreError.

Used by jobctl/cli/runs.py (the client) and jobctl/cli/runner.py (the server); it knows
nothing of the loop beyond a store and a wake-up.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobctl import errors

if TYPE_CHECKING:
    from jobctl.config import Settings
    from jobctl.store import Store

#: how long a command waits for the runner's answer: a trigger is a few statements, but
#: they may wait for the store (its lock timeout is a minute) and a command that gave up
#: early would say "no answer" for a run the runner then records
ANSWER_S = 120.0
#: how long the runner waits for a command's request once it has connected
REQUEST_S = 2.0
#: the most a request or an answer may be
MAX_LINE = 1 << 20
_ERRORS = {cls.__name__: cls for cls in (errors.JobctlError, errors.UsageError,
                                         errors.ConflictError, errors.NotFoundError,
                                         errors.StoreError, errors.StoreDataError)}  # fmt: skip


def socket_path(settings: Settings) -> Path:
    """The relay's socket for this home folder and store URL."""
    try:  # the built-in SHA-1: `import hashlib` loads OpenSSL, ~3 ms of `run --detach`
        from _sha1 import sha1
    except ImportError:  # pragma: no cover (a Python built without it)
        from hashlib import sha1
    digest = sha1(settings.store_url.encode()).hexdigest()[:16]
    return settings.home / f"relay-{digest}.sock"


# ---- the command's side ------------------------------------------------------------------------


def trigger(settings: Settings, request: dict[str, Any]) -> dict[str, Any] | None:
    """Have this machine's runner record a manual run (see runs.trigger; `request` holds its
    arguments): the run as JSON (render.run_json), or None when no runner of ours listens
    here (then the caller opens the store itself). Raises the runner's JobctlError."""
    path = socket_path(settings)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(1.0)
        try:
            sock.connect(str(path))
        except OSError:  # no socket, a stale one, a path too long: no relay
            return None
        if _peer_uid(sock) != os.getuid():  # not our runner
            return None
        sock.settimeout(ANSWER_S)
        try:
            sock.sendall(json.dumps({"op": "trigger", **request}).encode() + b"\n")
            answer = json.loads(_read_line(sock))
        except (OSError, ValueError) as exc:
            raise errors.StoreError(
                f"this machine's runner did not answer ({exc}); see `jobctl history` "
                "for whether the run was recorded"
            ) from None
    finally:
        sock.close()
    if "error" in answer:
        kind, message = answer["error"]
        raise _ERRORS.get(kind, errors.JobctlError)(message)
    run: dict[str, Any] = answer["run"]
    return run


def _peer_uid(sock: socket.socket) -> int:
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return int(struct.unpack("3i", creds)[1])


def _read_line(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(65536)
        if not chunk:
            raise OSError("connection closed")
        data += chunk
        if len(data) > MAX_LINE:
            raise ValueError("line too long")
    return data


# ---- the runner's side -------------------------------------------------------------------------


class Relay:
    """Serves the commands of this machine's user on a thread of its own."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        wake: Callable[[], None],
        report: Callable[[str], None],
    ) -> None:
        """`store`: where requests are recorded (thread-safe); `wake`: the runner's loop
        looks at the store at once; `report`: one line on what failed (never raised)."""
        self.path = socket_path(settings)
        self.store = store
        self.wake = wake
        self.report = report
        self.sock: socket.socket | None = None
        self._inode = 0  # the socket file we bound (removed at close if still ours)

    def start(self) -> bool:
        """Listen (False, said through `report`, when it cannot: the commands then open the
        store themselves). A live relay of another runner here is left alone."""
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.settimeout(1.0)
            probe.connect(str(self.path))
            self.report(f"relay: {self.path} is served by another runner; not listening")
            return False
        except OSError:
            pass
        finally:
            probe.close()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()  # a stale socket: its runner is gone (nobody answered)
            old = os.umask(0o177)  # the socket: ours alone
            try:
                sock.bind(str(self.path))
            finally:
                os.umask(old)
            sock.listen(64)
            self._inode = self.path.stat().st_ino
        except OSError as exc:
            sock.close()
            self.report(f"relay: cannot listen on {self.path}: {exc}")
            return False
        self.sock = sock
        threading.Thread(target=self._serve, args=(sock,), name="jobctl-relay",
                         daemon=True).start()  # fmt: skip
        return True

    def close(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                if self.path.stat().st_ino == self._inode:  # (not another runner's since)
                    self.path.unlink()
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() below
            sock.close()

    def _serve(self, sock: socket.socket) -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return  # closed
            with conn:
                try:
                    self._answer(conn)
                except Exception as exc:  # a bug or a client gone: said, never raised
                    self.report(f"relay: {type(exc).__name__}: {exc}")

    def _answer(self, conn: socket.socket) -> None:
        conn.settimeout(REQUEST_S)  # (one client at a time: a silent one is not waited on long)
        if _peer_uid(conn) != os.getuid():
            return
        first = conn.recv(65536)
        if not first:  # a probe (another runner starting here): nothing to say
            return
        rest = b"" if first.endswith(b"\n") else _read_line(conn)
        try:
            answer = self.handle(json.loads(first + rest))
        except errors.JobctlError as exc:
            answer = {"error": [type(exc).__name__, str(exc)]}
        except Exception as exc:  # a bug, or a request of another version: said to both
            self.report(f"relay: {type(exc).__name__}: {exc}")
            what = f"{type(exc).__name__}: {exc}"
            answer = {"error": ["JobctlError", f"this machine's runner failed on the request "
                                f"({what}); see `jobctl history`"]}  # fmt: skip
        conn.sendall(json.dumps(answer).encode() + b"\n")

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        """One request (see trigger): the run recorded, as JSON."""
        from jobctl import render, runs

        if request.get("op") != "trigger":
            raise errors.UsageError(f"relay: unknown request {request.get('op')!r}")
        _, run = runs.trigger(
            self.store, str(request["job"]), float(request["now"]), None,
            bool(request["force"]), request.get("replay_of"), bool(request["chain"]),
            bool(request["again"]),
        )  # fmt: skip
        self.wake()
        return {"run": render.run_json(run)}
