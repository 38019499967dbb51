"""The fault proxy between one runner and the database: the harness's hand on that runner's
network.

States (set from the harness's thread, applied to every connection at once):
- pass: bytes go through (after `latency` seconds, when a latency spike is on);
- cut, flavour `blackhole`: new connections are accepted and never answered; established
  ones deliver nothing either way (a partition that drops packets);
- cut, flavour `reject`: new connections are closed at once (RST: a host that answers
  "nobody here"), established ones as above.
What a partition does to an established connection is the kernels' business, which an
application-level proxy must play: bytes sent into a short cut are delivered when it ends (TCP
retransmits them); a cut that lasts is given up by each end after its own timeout (see
CLIENT_GIVES_UP_S, SERVER_GIVES_UP_S), the proxy then resets that end's connection. (With
--netns, a cut may take the runner's link down instead: the real kernel behaviour.)

Unlike tests/proxy.py this one adds latency and the reject flavour, and its threads sleep
in select() while nothing is held (an idle fleet keeps dozens of connections open).
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
import time
from collections import deque

#: how long after a partition begins the kernels on each side give up on an established
#: connection: the client's tcp_user_timeout (jobctl sets 5 s, store/postgres.py DEAD_LINK_S),
#: the server's keepalives (jobctl sets idle 5 s + 5 probes 1 s apart)
CLIENT_GIVES_UP_S = 5.0
SERVER_GIVES_UP_S = 10.0


class FaultProxy:
    def __init__(self, target: tuple[str, int], bind: str = "127.0.0.1") -> None:
        self.target = target
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((bind, 0))
        self.listener.listen(128)
        self.host, self.port = self.listener.getsockname()[:2]
        self.cut: str | None = None  # None (pass), "blackhole" or "reject"
        self.latency = 0.0  # seconds added to every chunk, each way
        self.cut_since = 0.0
        self._closed = threading.Event()
        self._socks: list[socket.socket] = []
        self._unanswered: list[socket.socket] = []  # accepted during a blackhole cut
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True, name="proxy-accept").start()

    # ---- the harness's controls ------------------------------------------------------------
    def partition(self, flavour: str = "blackhole") -> None:
        assert flavour in ("blackhole", "reject")
        self.cut_since = time.monotonic()
        self.cut = flavour

    def restore(self) -> None:
        self.cut = None
        with self._lock:  # connections made into the cut were never answered: their clients
            for sock in self._unanswered:  # gave up long ago (connect timeout)
                with contextlib.suppress(OSError):
                    sock.close()
                with contextlib.suppress(ValueError):
                    self._socks.remove(sock)
            self._unanswered.clear()

    def set_latency(self, seconds: float) -> None:
        self.latency = seconds

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self.listener.close()
        with self._lock:
            for s in self._socks:
                with contextlib.suppress(OSError):
                    s.close()

    # ---- plumbing -------------------------------------------------------------------------
    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.cut == "reject":
                with contextlib.suppress(OSError):  # RST instead of FIN
                    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    client.close()
                continue
            if self.cut == "blackhole":  # never answered (closed once the cut ends)
                with self._lock:
                    self._socks.append(client)
                    self._unanswered.append(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                # no Nagle on either leg: libpq sets TCP_NODELAY on its own socket; a relay
                # without it held small writes for the peer's delayed ACK (40 ms a claim)
                for sock in (client, upstream):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._socks += [client, upstream]
            pumps = [2]  # both sockets are closed when both directions have ended
            # upstream -> client: the client's kernel is the one that gives up on it, and so on
            for a, b, side in ((client, upstream, False), (upstream, client, True)):
                threading.Thread(target=self._pump, args=(a, b, side, pumps),
                                 daemon=True).start()  # fmt: skip

    def _pump(
        self, src: socket.socket, dst: socket.socket, client_side: bool, pumps: list[int]
    ) -> None:
        """Copy src to dst. During a cut nothing is delivered: bytes wait, as TCP retransmits
        them, and flow again if the cut ends in time; a cut that lasts ends the connection as
        the kernels on both ends would: the client's side is reset after CLIENT_GIVES_UP_S (its
        tcp_user_timeout), the server's closed after SERVER_GIVES_UP_S (its keepalives)."""
        held: deque[tuple[float, bytes]] = deque()  # (when due, data)
        give_up = CLIENT_GIVES_UP_S if client_side else SERVER_GIVES_UP_S
        # poll, not select: a long run's descriptors pass 1024, which select() refuses
        poller = select.poll()
        try:
            poller.register(src, select.POLLIN)
            alive = True
        except (OSError, ValueError):  # closed before this thread began (the proxy closed)
            alive = False
        while alive and not self._closed.is_set():
            try:
                busy = held or self.cut is not None
                ready = poller.poll(20 if busy else 1000)
                if ready:
                    data = src.recv(65536)
                    if not data:
                        break
                    held.append((time.monotonic() + self.latency, data))
                if self.cut is not None:
                    if time.monotonic() - self.cut_since > give_up:
                        _reset(dst)  # the side whose kernel gave up on the dead link
                        break
                    continue
                while held and held[0][0] <= time.monotonic():
                    dst.sendall(held.popleft()[1])
            except (OSError, ValueError):  # (ValueError: the other direction closed it)
                break
        # the other end went away during a cut: this end learns of it only when its own
        # kernel gives up (or the cut ends)
        while self.cut is not None and time.monotonic() - self.cut_since <= give_up:
            time.sleep(0.05)
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
        with self._lock:  # the last direction to end closes the pair (descriptors were leaked)
            pumps[0] -= 1
            if pumps[0] == 0:
                for s in (src, dst):
                    with contextlib.suppress(OSError):
                        s.close()
                    with contextlib.suppress(ValueError):
                        self._socks.remove(s)


def _reset(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
