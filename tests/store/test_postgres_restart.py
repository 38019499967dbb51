"""Opening a PostgreSQL store while its server restarts (found by the chaos suite, issue 10:
a runner started again during `pg_ctl restart` exited at the first refusal, 0.2 s before the
server was back). SPEC: a command fails when the database cannot be reached *within* the
connect timeout, so a refusal is asked again until then."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from urllib.parse import urlsplit, urlunsplit

import pytest

from jobctl.errors import StoreError
from jobctl.store.postgres import PostgresStore
from tests.pg import PgServer, _free_port


class LateServer:
    """Nothing listens on `port` (connections refused) until `after` seconds have passed;
    then it forwards to `target` (one thread pair per connection)."""

    def __init__(self, target: tuple[str, int], after: float) -> None:
        self.port = _free_port()
        self.target = target
        self.socks: list[socket.socket] = []
        self.opened = threading.Event()
        threading.Thread(target=self._serve, args=(after,), daemon=True).start()

    def _serve(self, after: float) -> None:
        time.sleep(after)
        listener = socket.create_server(("127.0.0.1", self.port))
        self.socks.append(listener)
        self.opened.set()
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self.socks += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(a: socket.socket, b: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := a.recv(65536):
                b.sendall(data)
        with contextlib.suppress(OSError):
            b.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        for s in self.socks:
            with contextlib.suppress(OSError):
                s.close()


def _via(url: str, port: int) -> str:
    parts = urlsplit(url)
    user = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    return (
        urlunsplit(parts._replace(netloc=f"{user}127.0.0.1:{port}"))
        + ("&" if parts.query else "?")
        + "sslmode=disable"
    )


def _target(server: PgServer) -> tuple[str, int]:
    parts = urlsplit(server.url)
    return parts.hostname or "127.0.0.1", parts.port or 5432


def test_a_store_opened_while_its_server_restarts_waits_for_it(
    pg_server: PgServer, pg_url: str
) -> None:
    late = LateServer(_target(pg_server), after=0.6)
    try:
        store = PostgresStore(_via(pg_url, late.port), connect_timeout_s=5)
        assert late.opened.is_set()
        assert store.list_jobs() == []
        store.close()
    finally:
        late.close()


def test_a_server_that_stays_away_still_fails_after_the_timeout() -> None:
    port = _free_port()
    started = time.monotonic()
    with pytest.raises(StoreError, match="cannot open store"):
        PostgresStore(f"postgresql://me@127.0.0.1:{port}/jobs", connect_timeout_s=1)
    assert time.monotonic() - started >= 0.8  # asked again, not failed at the first refusal
