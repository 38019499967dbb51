"""The lease keeper (runner/lease.py) against a fake runner and store: when it renews, when
it fences. Found by the chaos suite (issue 10): every runner fenced itself, terminating all
its running jobs, after a 0.2 s database restart (its renewal found the connection broken and
tried again only a second later, past lease/2), and after a SIGSTOP shorter than the lease
(the watchdog woke past its deadline and fenced before the renewal thread, frozen with it,
could renew a lease that still held)."""

from __future__ import annotations

import threading
import time

import pytest

from jobctl.errors import StoreError
from jobctl.runner.lease import LeaseKeeper, overslept_s, renewal_delay, retry_delay
from tests.waiting import wait_for


class FakePool:
    def __init__(self) -> None:
        self.fenced: list[str] = []

    def fence(self, reason: str, grace_s: float) -> int:
        self.fenced.append(reason)
        return 0


class FakeRunner:
    def __init__(self, lease_s: float) -> None:
        self.lease_s = lease_s
        self._stopped = threading.Event()
        self.pool = FakePool()
        self.clock = None
        self.owner, self.epoch, self.holding = "h1:1:1", 1, True
        self.events: list[tuple[str, str]] = []

    def emit(self, event: str, text: str) -> None:
        self.events.append((event, text))

    def _store_failed(self, exc: Exception) -> None:
        self.events.append(("error", str(exc)))

    def wake(self) -> None:
        pass


class FakeStore:
    """Renews (the lease holds) unless told to fail the next `failures` renewals."""

    def __init__(self) -> None:
        self.failures = 0
        self.beats = 0

    def now(self) -> float:
        return time.time()

    def heartbeat(self, owner: str, now: float, lease_s: float, epoch: int | None) -> bool:
        if self.failures:
            self.failures -= 1
            raise StoreError("terminating connection due to administrator command")
        self.beats += 1
        return True

    def close(self) -> None:
        pass


@pytest.mark.parametrize(
    ("failures", "interval", "delay"),
    [(1, 5.0, 0.1), (2, 5.0, 0.2), (4, 5.0, 0.8), (5, 5.0, 1.0), (9, 5.0, 1.0), (3, 0.3, 0.3)],
)
def test_a_failed_renewal_is_tried_again_soon_then_every_second(
    failures: int, interval: float, delay: float
) -> None:
    assert retry_delay(failures, interval) == pytest.approx(delay)


def keeper(lease_s: float = 6.0, last_ok: float = 100.0) -> LeaseKeeper:
    k = LeaseKeeper(FakeRunner(lease_s), FakeStore())  # type: ignore[arg-type]
    k.last_ok = last_ok
    return k


@pytest.mark.parametrize(
    ("now", "expected", "decision"),
    [
        (101.0, 101.0, ("wait", 2.0)),  # before the deadline (lease/2 = 3 s after 100)
        (103.1, 103.0, ("fence", 0.0)),  # on time past the deadline: renewals failed: fence
        (103.1, None, ("fence", 0.0)),  # after a grace already given
        (106.0, 101.0, ("grace", 1.0)),  # woke 5 s late: frozen; the renewal tries first
        (103.1, 102.9, ("fence", 0.0)),  # 0.2 s late is not a freeze (< 0.25 s)
        (104.0, 103.0, ("grace", 1.0)),  # 1 s late: a 3 s freeze that began before the deadline
    ],
    ids=["early", "on_time", "after_grace", "frozen", "slightly_late", "late"],
)
def test_the_watchdog_fences_on_time_but_lets_a_frozen_runner_renew_first(
    now: float, expected: float | None, decision: tuple[str, float]
) -> None:
    assert overslept_s(6.0) == pytest.approx(0.25)
    what, seconds = keeper().watch_step(now, expected)
    assert (what, round(seconds, 3)) == decision


def test_a_fenced_watchdog_only_waits() -> None:
    k = keeper()
    k.fenced = True
    assert k.watch_step(200.0, 101.0) == ("wait", 2.0)


class RecordingCondition(threading.Condition):
    """Records how long the renewal thread asks to wait each time."""

    def __init__(self) -> None:
        super().__init__()
        self.renewal_waits: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        if threading.current_thread().name == "lease" and timeout is not None:
            self.renewal_waits.append(timeout)
        return super().wait(timeout)


def test_a_renewal_broken_by_a_database_restart_is_retried_at_once() -> None:
    """The lease connection is broken (the server restarted): the renewal that finds out
    fails; the next comes 0.1 s later (not a second: with lease/3 already gone, that passed
    lease/2 and the runner fenced itself), succeeds, and the runner is not fenced."""
    k = keeper(lease_s=6.0)
    cond = k._cond = RecordingCondition()
    store = k.store
    assert isinstance(store, FakeStore)
    k.start()
    try:
        wait_for(lambda: store.beats >= 1)
        store.failures = 1
        with cond:
            cond.notify_all()  # the renewal comes now, and fails
        wait_for(lambda: store.failures == 0 and store.beats >= 2, timeout=2.5)
        # interval (less the renewal's own time), retry, interval
        first, retry, then = cond.renewal_waits[:3]
        assert retry == 0.1 and 1.0 < first <= 2.0 and 1.0 < then <= 2.0
        assert not k.fenced and k.r.pool.fenced == []  # type: ignore[attr-defined]
    finally:
        k.r._stopped.set()  # type: ignore[attr-defined]
        k.stop()


class OneTripStore(FakeStore):
    """A store that renews and reads its clock in one round trip (PostgreSQL's renew_lease):
    the keeper must not also call now() and heartbeat() (two more round trips, which over a
    slow link outlasted half the lease: the chaos suite's self-fencings during latency)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def now(self) -> float:
        self.calls.append("now")
        return super().now()

    def heartbeat(self, owner: str, now: float, lease_s: float, epoch: int | None) -> bool:
        self.calls.append("heartbeat")
        return super().heartbeat(owner, now, lease_s, epoch)

    def renew_lease(self, owner: str, lease_s: float, epoch: int | None) -> tuple[bool, float]:
        self.calls.append("renew_lease")
        return True, time.time()


def test_a_renewal_is_one_round_trip_where_the_store_can() -> None:
    store = OneTripStore()
    keeper = LeaseKeeper(FakeRunner(lease_s=9.0), store)  # type: ignore[arg-type]
    assert keeper.renew()
    assert store.calls == ["renew_lease"]


@pytest.mark.parametrize(
    ("ok", "failures", "took", "delay"),
    [
        (True, 0, 0.0, 3.0),
        (True, 0, 2.6, 0.4),  # a slow link: the next renewal starts an interval after this one
        (True, 0, 4.0, 0.0),  # longer than the interval: the next one at once
        (False, 1, 2.0, 0.1),  # a failure: retry_delay, whatever it took
        (False, 3, 0.0, 0.4),
    ],
)
def test_renewals_start_an_interval_apart(ok: bool, failures: int, took: float,
                                          delay: float) -> None:  # fmt: skip
    assert renewal_delay(ok, failures, took, 3.0) == pytest.approx(delay)
