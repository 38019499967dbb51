"""The harness's relays between runners and PostgreSQL must not add delay of their own: both
legs of every relayed connection have Nagle's algorithm off, as libpq's own socket has. With
it on, a pipelined claim's small writes waited for the peer's delayed ACK (about 40 ms each),
which made the fleet under the chaos suite run up to seconds behind its fires."""

from __future__ import annotations

import socket

from bench.chaos.proxy import FaultProxy
from bench.fleet import CountingProxy
from tests.proxy import Proxy
from tests.waiting import DEADLINE_S, wait_for


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


def test_the_fault_proxy_closes_what_it_relayed_and_outlives_1024_descriptors() -> None:
    """A relayed connection's two sockets are closed once both directions end (they were
    leaked: a 10-minute run passed 1,024 descriptors, and select() then refused them, which
    killed relays mid-run); connections accepted into a blackhole cut are closed when it ends."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    server = socket.create_server(("127.0.0.1", 0))
    proxy = FaultProxy(("127.0.0.1", server.getsockname()[1]))
    hog = []  # descriptors above 1024 for the proxy's own sockets
    try:
        if soft < 1200:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
        hog = [open("/dev/null") for _ in range(1100)]  # noqa: SIM115
        for _ in range(3):
            client = socket.create_connection(("127.0.0.1", proxy.port))
            accepted, _ = server.accept()
            accepted.settimeout(DEADLINE_S)  # a dead relay fails the test, never hangs it
            client.sendall(b"ping")
            assert accepted.recv(4) == b"ping"  # relayed, with descriptors past 1024
            client.close()
            accepted.close()
        wait_for(lambda: not proxy._socks)  # both directions ended: the pair was closed
        proxy.partition("blackhole")
        stuck = socket.create_connection(("127.0.0.1", proxy.port))
        wait_for(lambda: proxy._unanswered)
        proxy.restore()
        assert not proxy._unanswered and not proxy._socks
        stuck.close()
    finally:
        for f in hog:
            f.close()
        proxy.close()
        server.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
