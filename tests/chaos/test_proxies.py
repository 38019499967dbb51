"""The harness's relays between runners and PostgreSQL must not add delay of their own: both
legs of every relayed connection have Nagle's algorithm off, as libpq's own socket has. With
it on, a pipelined claim's small writes waited for the peer's delayed ACK (about 40 ms each),
which made the fleet under the chaos suite run up to seconds behind its fires."""

from __future__ import annotations

import socket

from bench.chaos.proxy import FaultProxy
from bench.fleet import CountingProxy
from tests.proxy import Proxy
from tests.waiting import wait_for


def _relayed(make) -> None:  # type: ignore[no-untyped-def]
    server = socket.create_server(("127.0.0.1", 0))
    proxy = make(server.getsockname()[1])
    try:
        client = socket.create_connection(("127.0.0.1", proxy.port))
        accepted, _ = server.accept()
        client.sendall(b"ping")
        assert accepted.recv(4) == b"ping"  # relayed: both legs exist
        socks = wait_for(lambda: len(proxy._socks) >= 2 and list(proxy._socks))
        for sock in socks:
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY), sock
        client.close()
        accepted.close()
    finally:
        proxy.close()
        server.close()


def test_the_fault_proxy_relays_without_nagle() -> None:
    _relayed(lambda port: FaultProxy(("127.0.0.1", port)))


def test_the_tests_partition_proxy_relays_without_nagle() -> None:
    _relayed(lambda port: Proxy("127.0.0.1", port))


def test_the_benchmarks_counting_proxy_relays_without_nagle() -> None:
    _relayed(lambda port: CountingProxy(("127.0.0.1", port)))
