"""A TCP proxy the tests control, between one runner and the database: pass traffic, or cut
it off (new connections refused, established ones blackholed: their bytes are held back and
never delivered, as on a partitioned network), and restore it.

One thread per direction of each connection; meant for a handful of connections in tests
(and the fleet chaos harness), not for speed.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading


class Proxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.cut = threading.Event()  # set: partitioned
        self._closed = threading.Event()
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def partition(self) -> None:
        """Cut the runner off: nothing passes either way until restore()."""
        self.cut.set()

    def restore(self) -> None:
        self.cut.clear()

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self.listener.close()
        with self._lock:
            for s in self._socks:
                with contextlib.suppress(OSError):
                    s.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.cut.is_set():  # a new connection into a partition: never answered
                with self._lock:
                    self._socks.append(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                # no Nagle on either leg: libpq sets TCP_NODELAY on its own socket; a relay
                # without it held small writes for the peer's delayed ACK (40 ms a claim)
                for sock in (client, upstream):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._socks += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        held = b""
        while not self._closed.is_set():
            try:
                ready, _, _ = select.select([src], [], [], 0.05)
                if ready:
                    data = src.recv(65536)
                    if not data:
                        break
                    held += data
                if held and not self.cut.is_set():
                    dst.sendall(held)
                    held = b""
            except OSError:
                break
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
