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


def _span_reference(seconds: float) -> str:
    """The two largest units, the plain way (render._span is written out for speed)."""
    s = int(abs(seconds))
    if s < 1:
        return "now"
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if s >= size or parts:
            parts.append(f"{s // size}{unit}")
            s %= size
        if len(parts) == 2:
            break
    return "".join(p for p in parts if not p.startswith("0") or p == parts[0])


def test_span_agrees_with_the_plain_way_everywhere() -> None:
    import random

    rng = random.Random(13)
    values = [*range(0, 90_000, 7), 59.9, 60, 3599.9, 3600, 86399.5, 86400, -0.4]
    values += [rng.uniform(-1e8, 1e8) for _ in range(20_000)]
    for v in values:
        assert render._span(v) == _span_reference(v), v


def _reference_table(headers: list[str], rows: list[list[str]], limit: int | None) -> str:
    """render.table as first written (cell by cell: escape, cut, pad), plain output: the
    oracle for the faster one."""
    shown = [i for i in range(len(headers)) if any(r[i] not in ("", "-") for r in rows)] or list(
        range(len(headers))
    )
    headers = [headers[i] for i in shown]
    rows = [[render.printable(r[i]) for i in shown] for r in rows]
    keep, widths = render.fit(headers, rows, limit)
    headers = [render.cut(headers[i], w) for i, w in zip(keep, widths, strict=True)]
    rows = [[render.cut(r[i], w) for i, w in zip(keep, widths, strict=True)] for r in rows]
    lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
             for line in [headers, *rows]]  # fmt: skip
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("seed", range(40))
def test_table_prints_what_cell_by_cell_rendering_prints(
    seed: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The table pads each line with one format, escapes only rows that need it and cuts only
    where a limit is set (issue 13: `list` of 1,000 jobs): the same text as escaping, cutting
    and padding every cell, with and without a width, with braces, control characters, wide
    and empty cells."""
    import random

    rng = random.Random(seed)
    alphabet = ["a", "Z", "9", " ", "{", "}", "{0}", "-", "é", "日", "\x1b", "\n", "\t", "…"]
    ncols = rng.randint(1, 5)
    headers = [f"H{i}" * rng.randint(1, 3) for i in range(ncols)]
    rows = [["".join(rng.choices(alphabet, k=rng.randint(0, 12))) if rng.random() > 0.2
             else rng.choice(["", "-"]) for _ in range(ncols)]
            for _ in range(rng.randint(1, 30))]  # fmt: skip
    limit = rng.choice([None, None, 20, 40, 80])
    monkeypatch.setattr(render, "fancy", lambda: False)
    monkeypatch.setattr(render, "width", lambda: limit)
    render.table(headers, rows)
    assert capsys.readouterr().out == _reference_table(headers, rows, limit)
