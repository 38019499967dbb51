"""Human text of render: relative times in one style, dates for times beyond today."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from jobctl import render

UTC = ZoneInfo("UTC")
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (0.4, "now"),
        (45, "in 45s"),
        (65, "in 1m5s"),
        (3600, "in 1h"),
        (3600 + 5, "in 1h"),
        (7.2 * 3600, "in 7h12m"),
        (3 * 86400 + 3700, "in 3d1h"),
        (-125, "2m5s ago"),
        (-2 * 86400, "2d ago"),
    ],
)
def test_relative_one_style(delta: float, text: str) -> None:
    assert render.relative(NOW + delta, NOW) == text


@pytest.mark.parametrize(
    ("at", "text"),
    [
        (datetime(2026, 3, 1, 18, 30, tzinfo=UTC), "18:30:00 (in 6h30m)"),
        (datetime(2026, 3, 2, 0, 30, tzinfo=UTC), "2026-03-02 00:30:00 (in 12h30m)"),  # tomorrow
        (datetime(2026, 2, 28, 23, 0, tzinfo=UTC), "2026-02-28 23:00:00 (13h ago)"),
    ],
)
def test_when_dates_times_beyond_today(at: datetime, text: str) -> None:
    assert render.when(at.timestamp(), NOW, UTC) == text
