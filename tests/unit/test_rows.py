"""store/rows.py's JSON text: written without importing json where it can be, and always
exactly as json.dumps writes it (both stores compare and read these columns as text)."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from jobctl.store import rows

QUOTE = json.encoder.encode_basestring_ascii  # what json.dumps quotes with

ALPHABET = ['a', 'Z', ' ', '"', "\\", "/", "\n", "\t", "\x00", "\x1f", "\x7f", "é", "\u2028",
            "日", "😀", "\ud800", "=", ":", ","]  # fmt: skip


def _text(rng: random.Random) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randrange(0, 6)))


def _value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.choice(["str", "list", "dict", "none"] if depth < 3 else ["str", "none"])
    if kind == "str":
        return _text(rng)
    if kind == "none":
        return None
    if kind == "list":
        return [_value(rng, depth + 1) for _ in range(rng.randrange(0, 4))]
    return {_text(rng): _value(rng, depth + 1) for _ in range(rng.randrange(0, 4))}


def test_plain_values_are_written_as_json_dumps_writes_them() -> None:
    rng = random.Random(13)
    for _ in range(2000):
        value = _value(rng)
        assert rows._plain_json(value, QUOTE) == json.dumps(value), value
        assert rows.dumps(value) == json.dumps(value)


@pytest.mark.parametrize(
    "value",
    [[1, "a"], {"a": 1.5}, {1: "a"}, [True], {"a": ["b", {"c": False}]}, ("a", "b"), 7],
    ids=str,
)
def test_other_values_go_to_json_dumps(value: Any) -> None:
    assert rows._plain_json(value, QUOTE) is None
    assert rows.dumps(value) == json.dumps(value)


def test_deep_and_circular_values_go_to_json_dumps() -> None:
    assert rows.dumps([[["a"]]]) == '[[["a"]]]'  # three deep: written here
    assert rows._plain_json([[[["a"]]]], QUOTE) is None  # four: json.dumps's
    assert rows.dumps([[[["a"]]]]) == '[[[["a"]]]]'
    circular: list[object] = []
    circular.append(circular)
    with pytest.raises(ValueError, match="Circular reference"):
        rows.dumps(circular)


def test_a_job_row_is_written_as_json_dumps_writes_it() -> None:
    """Every JSON column of a job with each filled: the row's text, then read back."""
    from jobctl.jobdef import JobOptions, new_job

    opts = JobOptions(command=["sh", "-c", 'echo "é" \\ 1'], cron="0 3 * * *",
                      env=["A=1", "B=x=\"日\""], tag=["t1", "t.2"], mutex=["m"],
                      on=["gpu"], notify=["failure=https://example.com/h?a=1"],
                      after=["up:success"])  # fmt: skip
    job = new_job("j", opts, 1_800_000_000.0, "UTC", "/")
    row = rows.row(rows.JOB_COLUMNS, job)
    for column, kind in rows.JOB_COLUMNS.items():
        if kind == "json":
            assert row[column] == json.dumps(getattr(job, column)), column
            assert rows.decode("json", row[column]) == getattr(job, column)
    assert (
        row["after"] == '[["up", "success"]]' and row["env"] == '{"A": "1", "B": "x=\\"\\u65e5\\""}'
    )
