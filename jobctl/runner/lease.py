"""The lease of a runner on a shared store (SPEC 8): renew it, fence ourselves when we cannot.

A runner on a shared (PostgreSQL) store holds its runs under a lease that it renews every
lease/3 on a connection of its own (the loop's may be stuck in a statement), and at each
renewal it measures the store's clock against its own (the loop's clock is the store's, so a
machine whose clock is off still fires on time).

- Renewal fails for lease/2 (the database is unreachable, the network cut): the runner stops
  claiming and terminates its job processes (self-fencing), so that by the time its lease
  expires and another runner takes the runs over, nothing of ours still runs. A watchdog
  thread with no I/O of its own does this, so a renewal stuck in a dead connection cannot
  delay it. A failed renewal is tried again after 0.1 s, doubling to 1 s (a database restart
  breaks the connection: the next renewal reconnects). A watchdog that itself woke far past
  its deadline (the process was frozen shorter than the lease) lets the renewal thread try
  once, briefly, before it fences: the lease may still hold.
- Renewal answers that the lease had expired (the runner was frozen, or cut off longer than
  the lease): its runs are, or will be, taken over; the runner terminates what it still runs
  (their ends are refused: fencing), re-registers under a new epoch, and carries on.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from jobctl.clock import OffsetClock
from jobctl.errors import StoreError
from jobctl.store.base import Store

if TYPE_CHECKING:
    from jobctl.runner.loop import Runner


#: after a failed renewal the next one comes this soon, doubling up to a second (a connection
#: broken by a database restart fails at once, and its reconnection succeeds a moment later)
RETRY_FIRST_S = 0.1


def retry_delay(failures: int, interval_s: float) -> float:
    """How long to wait before the next renewal after `failures` failed ones in a row."""
    return min(interval_s, 1.0, RETRY_FIRST_S * 2 ** (failures - 1))


def renewal_delay(ok: bool, failures: int, took_s: float, interval_s: float) -> float:
    """How long to wait after a renewal that took `took_s`: renewals start every interval
    (not an interval after the last one ended: over a link with a 2.6 s round trip that put
    successes 5.9 s apart with a 10 s lease, past the watchdog's lease/2, and the runner fenced
    itself though every renewal succeeded); after a failure, retry_delay."""
    return max(0.0, interval_s - took_s) if ok else retry_delay(failures, interval_s)


def overslept_s(lease_s: float) -> float:
    """A watchdog waking later than this past its time was frozen (SIGSTOP, a VM paused)
    or starved of CPU, and so was the renewal thread. Small: a grace given to a watchdog
    merely late costs at most min(1 s, lease/6) before the fence, which still comes before
    the lease can expire (lease/2 + lease/6 + the kill grace lease/4 < lease)."""
    return min(0.25, lease_s / 12)


class LeaseKeeper:
    def __init__(self, runner: Runner, store: Store) -> None:
        """`store`: a connection of its own to the runner's store."""
        self.r = runner
        self.store = store
        self.last_ok = time.monotonic()  # the last renewal that succeeded
        self.fenced = False  # we terminated our jobs and stopped claiming
        self._cond = threading.Condition()
        self._halt = threading.Event()  # stop(): the runner is done
        self._threads: list[threading.Thread] = []

    @property
    def interval_s(self) -> float:
        return self.r.lease_s / 3

    def start(self) -> None:
        self.last_ok = time.monotonic()
        for target, name in ((self._renew_loop, "lease"), (self._watchdog, "fence-watch")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        """Once the runner is done (its last runs ended, or were terminated after --grace):
        renewals go on while it drains, so that nobody reaps runs that are still ours."""
        self._halt.set()
        with self._cond:
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout=10)
        self.store.close()

    def _done(self) -> bool:
        return self._halt.is_set()

    def _renew_loop(self) -> None:
        failures = 0
        while not self._done():
            began = time.monotonic()
            ok = self.renew()
            failures = 0 if ok else failures + 1
            delay = renewal_delay(ok, failures, time.monotonic() - began, self.interval_s)
            with self._cond:
                self._cond.wait(delay)

    def _watchdog(self) -> None:
        """Fence the runner once lease/2 has passed since the last successful renewal, unless
        this process itself was frozen past that deadline: then the renewal thread, frozen
        with us, gets a short grace to renew first (the lease may well still hold)."""
        expected: float | None = None  # when the watchdog's last wait was due to end
        while not self._done():
            with self._cond:
                now = time.monotonic()
                what, seconds = self.watch_step(now, expected)
                if what == "wait":
                    expected = now + seconds
                    self._cond.wait(seconds)
                    continue
                if what == "grace":
                    expected = None  # one grace per deadline: then fence if still not renewed
                    since = self.last_ok
                    self._cond.notify_all()  # the renewal thread: try now
                    self._cond.wait_for(lambda s=since: self.last_ok != s or self._done(), seconds)
                    continue
            cut = time.monotonic() - self.last_ok
            self.fence(f"it could not renew its lease for {cut:.1f}s")

    def watch_step(self, now: float, expected: float | None) -> tuple[str, float]:
        """The watchdog's decision at `now` (monotonic), its last wait having been due to end
        at `expected`: ("wait", s), ("grace", s) or ("fence", 0)."""
        left = self.last_ok + self.r.lease_s / 2 - now
        if left > 0 or self.fenced:
            return "wait", (max(0.05, left) if left > 0 else self.interval_s)
        if expected is not None and now - expected > overslept_s(self.r.lease_s):
            return "grace", min(1.0, self.r.lease_s / 6)
        return "fence", 0.0

    def fence(self, why: str) -> None:
        """Stop claiming and terminate our job processes before the lease can expire."""
        with self._cond:
            if self.fenced:
                return
            self.fenced = True
        self.r.holding = False
        n = self.r.pool.fence(
            f"its runner was fenced ({why}); taken over by another runner",
            grace_s=max(0.5, self.r.lease_s / 4),
        )
        when = ("its lease had expired already: another runner may have taken them over"
                if "expired" in why else "self-fencing, before the lease can expire")  # fmt: skip
        self.r.emit("error", f"fenced: {why}; stopped claiming and terminated {n} running "
                    f"jobs ({when})")  # fmt: skip

    def renew(self) -> bool:
        """One renewal (and clock reading). Returns whether the store answered."""
        r = self.r
        try:
            seen: list[float] = []
            renewed: list[bool] = []
            # a store that renews and reads its clock in one round trip (PostgreSQL)
            renew_lease = getattr(self.store, "renew_lease", None)

            def read() -> float:
                if renew_lease is not None:
                    held, t = renew_lease(r.owner, r.lease_s, r.epoch)
                    renewed.append(held)
                    seen.append(t)
                else:
                    seen.append(self.store.now())
                return seen[-1]

            if isinstance(r.clock, OffsetClock):  # the store's clock, seen from here (a
                r.clock.sample(read)  # reading with a slow round trip is dropped)
            else:
                read()
            db_now = seen[-1]  # one reading serves the clock and the registration below
            held = (renewed[-1] if renewed
                    else self.store.heartbeat(r.owner, db_now, r.lease_s, r.epoch))  # fmt: skip
        except StoreError as exc:
            if not self.fenced:
                r._store_failed(exc)
            return False
        with self._cond:
            self.last_ok = time.monotonic()
            self._cond.notify_all()
        if not held:  # the lease had expired: our runs are being taken over
            self.fence("its lease expired before it was renewed")
            try:
                r._register(db_now, store=self.store)
            except StoreError as exc:
                r._store_failed(exc)
                return False
            r.emit("lease", f"registered again (epoch {r.epoch}); claiming again")
        elif self.fenced:
            r.emit("lease", "lease renewed; claiming again")
        with self._cond:
            self.fenced = False
        r.holding = True
        r.wake()
        return True
