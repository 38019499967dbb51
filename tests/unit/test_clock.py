"""OffsetClock: a runner on a shared store keeps its loop on the store's clock."""

from __future__ import annotations

import time

from jobctl.clock import MAX_SAMPLE_RTT_S, OffsetClock, SkewedClock


def test_offset_puts_a_skewed_clock_on_the_remote_clock() -> None:
    clock = OffsetClock(SkewedClock(-90.0))  # this machine's clock is 90 s behind
    assert clock.sample(lambda: time.time() + 0.0)  # the remote clock is right
    assert abs(clock.now() - time.time()) < 0.05


def test_a_reading_with_a_slow_round_trip_is_dropped() -> None:
    """The reply that ends a network stall: the reading may be off by the whole stall, so
    the previous offset stays (jobs would otherwise start late by that much)."""
    clock = OffsetClock(SkewedClock(0.0))
    assert clock.sample(time.time)
    before = clock.offset

    def stalled() -> float:
        t = time.time()  # the server answered at once, the reply came back late
        time.sleep(MAX_SAMPLE_RTT_S + 0.1)
        return t

    assert not clock.sample(stalled)
    assert clock.offset == before
    assert clock.sample(stalled, force=True)  # the initial sync's last resort
    assert clock.offset < before - 0.1


def test_the_estimate_is_never_ahead_of_the_remote_clock() -> None:
    """The remote clock is this machine's; the request took 20 ms to arrive and the answer
    came back at once, so the reading was taken at the end of the round trip. Read at its
    midpoint, the estimate ran 10 ms ahead and a gated fire started 10 ms early."""
    clock = OffsetClock(SkewedClock(0.0))

    def late_read() -> float:
        time.sleep(0.02)
        return time.time()

    for _ in range(5):
        assert clock.sample(late_read, force=True)  # (however slow a loaded machine makes it)
        assert clock.now() <= time.time()
