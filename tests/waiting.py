"""Waiting in tests: on a condition, with a deadline that only bounds how long a failure takes.

Under load (other processes on a small machine) anything may take many times longer than it
does idle, so deadlines are generous and no test asserts how fast something happened; the
benchmark suite (bench/) measures that."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

DEADLINE_S = 30.0  # generous: a deadline only bounds how long a failing test takes


def wait_for(cond: Callable[[], Any], timeout: float = DEADLINE_S, interval: float = 0.05) -> Any:
    """Poll `cond` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {cond}")
        time.sleep(interval)
