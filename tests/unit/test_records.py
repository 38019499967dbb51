"""@record behaves as @dataclass: the same equality, repr and hashing, read from the fields
at call time instead of compiled at import (jobctl/records.py, issue 13's start-up)."""

from __future__ import annotations

import dataclasses
from dataclasses import field

import pytest

from jobctl.models import Job, Run
from jobctl.records import record


def _twins(frozen: bool) -> tuple[type, type]:
    """The same class under @record and under @dataclass."""

    def body() -> dict[str, object]:
        return {
            "__annotations__": {"a": "int", "b": "list[int]", "hidden": "str", "loose": "float"},
            "b": field(default_factory=list),
            "hidden": field(default="h", repr=False),
            "loose": field(default=0.0, compare=False),
        }

    ours = record(frozen=frozen)(type("Rec", (), body()))
    theirs = dataclasses.dataclass(frozen=frozen)(type("Rec", (), body()))
    return ours, theirs


@pytest.mark.parametrize("frozen", [False, True])
def test_a_record_compares_and_reads_as_a_dataclass(frozen: bool) -> None:
    ours, theirs = _twins(frozen)
    for args in [(1, [2], "x", 1.5), (1, [2], "y", 9.0), (2, [], "h", 0.0)]:
        assert repr(ours(*args)) == repr(theirs(*args))
    for x, y in [((1, [2], "x", 1.0), (1, [2], "x", 2.0)),  # `loose` is not compared
                 ((1, [2], "x"), (1, [3], "x")), ((1, [], "x"), (1, [], "z"))]:  # fmt: skip
        assert (ours(*x) == ours(*y)) == (theirs(*x) == theirs(*y))
        assert (ours(*x) != ours(*y)) == (theirs(*x) != theirs(*y))
    assert ours(1) != theirs(1) and ours(1).__eq__(theirs(1)) is NotImplemented
    assert dataclasses.replace(ours(1, [2]), a=3) == ours(3, [2])
    assert [f.name for f in dataclasses.fields(ours)] == ["a", "b", "hidden", "loose"]


def test_a_frozen_record_hashes_as_a_dataclass_and_a_mutable_one_is_unhashable() -> None:
    ours, theirs = _twins(frozen=True)
    assert hash(ours(1, (2,), "x", 1.0)) == hash(ours(1, (2,), "x", 7.0))  # `loose` aside
    assert hash(ours(1, (2,), "x")) == hash(theirs(1, (2,), "x"))  # the tuple of the fields
    with pytest.raises(dataclasses.FrozenInstanceError):
        ours(1).a = 2  # type: ignore[misc]
    mutable, _ = _twins(frozen=False)
    with pytest.raises(TypeError, match="unhashable"):
        hash(mutable(1, (2,)))  # hashable values, an unhashable record


def test_a_record_keeps_the_methods_it_writes_and_hashes_as_its_fields_say() -> None:
    @record(frozen=True)
    class Own:
        a: int
        b: int = field(default=0, hash=False)  # compared, not hashed

        def __repr__(self) -> str:
            return "mine"

    @dataclasses.dataclass(frozen=True)
    class Theirs:
        a: int
        b: int = field(default=0, hash=False)

    assert repr(Own(1)) == "mine"
    assert hash(Own(1, 2)) == hash(Own(1, 3)) == hash(Theirs(1, 2)) and Own(1, 2) != Own(1, 3)

    @record
    class Equal:
        a: int

        def __eq__(self, other: object) -> bool:
            return True

    assert Equal(1) == Equal(2) and Equal.__hash__ is None  # as Python sets it for __eq__


def test_the_models_are_records() -> None:
    run = Run(job="a", scheduled_for=1.0)
    assert repr(run).startswith("Run(job='a', scheduled_for=1.0, trigger='schedule'")
    assert run == Run(job="a", scheduled_for=1.0) != dataclasses.replace(run, attempt=2)
    job = Job(name="a", command=["true"])
    assert job == job.copy_with() and job.env == {} and job.env is not Job("b", []).env


@pytest.mark.parametrize("cls", [Job, Run])
def test_a_written_init_is_the_one_dataclass_would_write(cls: type) -> None:
    """Job and Run write their __init__ (start-up time): the same parameters, in field
    order, with the fields' defaults, and a fresh list or dict for each default factory."""
    import inspect

    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    fields = dataclasses.fields(cls)
    assert [p.name for p in params] == [f.name for f in fields]
    required = {f.name: f"v-{f.name}" for f in fields if f.default is dataclasses.MISSING
                and f.default_factory is dataclasses.MISSING}  # fmt: skip
    a, b = cls(**required), cls(**required)
    for f in fields:
        if f.default_factory is not dataclasses.MISSING:
            assert getattr(a, f.name) == f.default_factory() and type(getattr(a, f.name)) is type(
                f.default_factory()
            )
            assert getattr(a, f.name) is not getattr(b, f.name), f.name  # fresh each time
        elif f.default is not dataclasses.MISSING:
            got = getattr(a, f.name)
            assert got == f.default and type(got) is type(f.default), f.name  # 0.0, not 0
        else:
            assert getattr(a, f.name) == required[f.name]
    given = {f.name: object() for f in fields}  # every field passed is kept as passed
    made = cls(**given)
    assert all(getattr(made, name) is value for name, value in given.items())
