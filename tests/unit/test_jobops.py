"""jobops' pure helpers: the natural order of job names (`list`)."""

from __future__ import annotations

import random
import re

import pytest

from jobctl.jobops import natural_key


def _tagged_key(name: str) -> list[tuple[int, int | str]]:
    """The order as first written: text and digit runs tagged, a number before text."""
    return [(0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"(\d+)", name) if p]


@pytest.mark.parametrize(
    ("names", "order"),
    [
        (["job10", "job2", "job1"], ["job1", "job2", "job10"]),
        (["a", "1a", "a1", "a1b", "ab", "a-"], ["1a", "a", "a1", "a1b", "a-", "ab"]),
        (["x9y10", "x9y9", "x10y1"], ["x9y9", "x9y10", "x10y1"]),
        (["b", "B", "10", "9"], ["9", "10", "B", "b"]),
    ],
)
def test_names_sort_naturally(names: list[str], order: list[str]) -> None:
    assert sorted(names, key=natural_key) == order


def test_the_key_orders_as_the_tagged_key_does() -> None:
    rng = random.Random(13)
    alphabet = "ab-_.0129"
    names = {"".join(rng.choice(alphabet) for _ in range(rng.randint(1, 7))) for _ in range(3000)}
    ours = sorted(sorted(names), key=natural_key)
    assert ours == sorted(sorted(names), key=_tagged_key)
