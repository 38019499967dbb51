"""models.check_name: a name is 1-64 ASCII letters, digits, '.', '_' or '-' (SPEC), checked
by its characters; the same verdict as the pattern it replaced, on every kind of name."""

from __future__ import annotations

import random
import re

import pytest

from jobctl.errors import UsageError
from jobctl.models import check_name

PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}")
ALPHABET = "aZ09._-/ :@\u00e9\u0663\u00a0\n\t\x00\uff21\u212a"  # with look-alikes of A and K


def _accepts(name: str) -> bool:
    try:
        return check_name(name) == name
    except UsageError as exc:
        assert repr(name) in str(exc) and "1-64 letters" in str(exc)
        return False


@pytest.mark.parametrize(
    ("name", "ok"),
    [("a", True), ("x" * 64, True), ("x" * 65, False), ("", False), ("job-1.2_b", True),
     ("a b", False), ("\u0663", False), ("\u00e9", False), ("a\n", False),
     ("\uff21B", False), ("\u212a", False)],
)  # fmt: skip
def test_names(name: str, ok: bool) -> None:
    assert _accepts(name) is ok


def test_the_same_verdict_as_the_pattern() -> None:
    rng = random.Random(7)
    for _ in range(5000):
        name = "".join(rng.choice(ALPHABET) for _ in range(rng.choice([0, 1, 3, 63, 64, 65])))
        assert _accepts(name) is bool(PATTERN.fullmatch(name)), repr(name)
