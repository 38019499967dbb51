"""@record behaves as @dataclass: the same `__init__`, equality, repr, hashing, defaults,
fields(), replace() and frozen errors, made without dataclasses nor any compile (jobctl/
records.py, issue 13's start-up). Each test makes one class under both and compares them."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from typing import Any, ClassVar

import pytest

from jobctl import records
from jobctl.models import Job, Run
from jobctl.records import record


def _both(
    body: Callable[[Callable[..., Any]], dict[str, Any]], frozen: bool = False
) -> tuple[type, type]:
    """The class `body(field)` makes, under @record (records.field) and under @dataclass
    (dataclasses.field)."""
    ours = record(frozen=frozen)(type("Rec", (), body(records.field)))
    theirs = dataclasses.dataclass(frozen=frozen)(type("Rec", (), body(dataclasses.field)))
    return ours, theirs


def _twins(frozen: bool) -> tuple[type, type]:
    """The same class under @record and under @dataclass."""
    return _both(
        lambda field: {
            "__annotations__": {"a": "int", "b": "list[int]", "hidden": "str", "loose": "float"},
            "b": field(default_factory=list),
            "hidden": field(default="h", repr=False),
            "loose": field(default=0.0, compare=False),
        },
        frozen,
    )


def _refusal(call: Callable[..., object], /, *args: Any, **kwargs: Any) -> tuple[str, str]:
    """The type and text of the error `call(*args, **kwargs)` raises."""
    try:
        call(*args, **kwargs)
    except (TypeError, ValueError, AttributeError) as exc:
        return type(exc).__name__, str(exc)
    raise AssertionError("not refused")


def _make(decorate: Callable[[type], type], body: dict[str, Any]) -> type:
    return decorate(type("Rec", (), body))


def _outcome(cls: type, *args: Any, **kwargs: Any) -> tuple[str, Any]:
    """What `cls(*args, **kwargs)` gives: its fields as set, in order, or the error's type
    and text."""
    try:
        made = cls(*args, **kwargs)
    except (TypeError, ValueError, AttributeError) as exc:
        return type(exc).__name__, str(exc)
    return "made", list(vars(made).items())


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
    assert records.replace(ours(1, [2]), a=3) == ours(3, [2])
    assert [f.name for f in records.fields(ours)] == [f.name for f in dataclasses.fields(theirs)]
    assert ours.__match_args__ == theirs.__match_args__ == ("a", "b", "hidden", "loose")


@pytest.mark.parametrize("frozen", [False, True])
def test_init_takes_its_arguments_as_a_dataclass(frozen: bool) -> None:
    """Positional, keyword and default values land in the same fields, and a call
    @dataclass's `__init__` refuses is refused with the same TypeError."""
    ours, theirs = _both(
        lambda field: {
            "__annotations__": {"a": "int", "b": "int", "c": "int", "d": "int", "e": "list[int]"},
            "d": 4,
            "e": field(default_factory=list),
        },
        frozen,
    )
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
        ((1, 2, 3), {}), ((1, 2, 3, 5, [6]), {}), ((), {"c": 3, "a": 1, "b": 2}),
        ((1,), {"b": 2, "c": 3, "e": [7]}), ((1, 2), {"c": 3, "d": 0}),
        ((1, 2, 3, 4, [5], 6), {}),  # too many
        ((1, 2, 3, 4, [5], 6), {"a": 1}),  # a keyword's error comes first, as in Python
        ((1, 2, 3), {"z": 1}), ((1, 2), {"a": 1, "c": 3}), ((1, 2), {"c": 3, "a": 1}),
        ((1, 2), {"z": 0, "a": 1}), ((1, 2, 3), {"e": [1], "d": 2, "a": 0}),
        ((), {}), ((1,), {}), ((1,), {"c": 3}), ((), {"d": 1, "e": []}),  # missing 3, 2, 1
    ]  # fmt: skip
    for args, kwargs in calls:
        assert _outcome(ours, *args, **kwargs) == _outcome(theirs, *args, **kwargs), (args, kwargs)
    assert ours.__init__.__qualname__ == theirs.__init__.__qualname__ == "Rec.__init__"
    one = _both(lambda field: {"__annotations__": {"a": "int"}})
    none = _both(lambda field: {})
    for (cls, theirs_), args in [(one, (1, 2)), (one, ()), (none, (1,)), (none, (1, 2))]:
        assert _outcome(cls, *args) == _outcome(theirs_, *args), args
    assert _outcome(none[0]) == ("made", [])


def test_init_sets_fields_through_the_class_as_a_dataclass() -> None:
    """A class's own `__setattr__`, or a property of a field's name in a base class, sees
    each field set, as `self.name = value` in @dataclass's `__init__` does."""
    seen: list[tuple[str, object]] = []

    def setattr_(self: object, name: str, value: object) -> None:
        seen.append((name, value))
        object.__setattr__(self, name, value)

    ours, theirs = _both(
        lambda field: {"__annotations__": {"a": "int", "b": "list[int]", "c": "int"},
                       "b": field(default_factory=list), "c": 3, "__setattr__": setattr_}
    )  # fmt: skip
    for args, kwargs in [((1,), {}), ((1, [2]), {"c": 4}), ((), {"c": 5, "a": 6})]:
        ours(*args, **kwargs)
        mine, seen[:] = list(seen), []
        theirs(*args, **kwargs)
        assert mine == seen and len(mine) == 3, (args, kwargs)
        seen.clear()

    class Base:
        @property
        def a(self) -> int:
            return self._a * 10  # type: ignore[attr-defined,no-any-return]

        @a.setter
        def a(self, value: int) -> None:
            self._a = value

    ours, theirs = (decorate(type("Rec", (Base,), {"__annotations__": {"a": "int", "b": "int"},
                                                   "b": 0}))
                    for decorate in (record, dataclasses.dataclass))  # fmt: skip
    assert vars(ours(1, 2)) == vars(theirs(1, 2)) == {"_a": 1, "b": 2} and ours(1, 2).a == 10
    assert records.fields(ours)[0].default is Base.a is dataclasses.fields(theirs)[0].default


def test_defaults_are_class_attributes_and_factories_run_for_each_instance() -> None:
    ours, theirs = _both(
        lambda field: {
            "__annotations__": {"a": "int", "b": "int", "c": "int", "d": "list[int]"},
            "b": 2,
            "c": field(default=3),
            "d": field(default_factory=list),
        }
    )
    for name in ["a", "b", "c", "d"]:  # a plain default or field(default=): the attribute
        assert getattr(ours, name, None) == getattr(theirs, name, None), name
    assert (ours.b, ours.c) == (2, 3) and not hasattr(ours, "d") and not hasattr(ours, "a")
    x, y = ours(1), ours(1)
    assert x.d == [] and x.d is not y.d and vars(x) == vars(theirs(1))  # a new list each


def test_a_classvar_is_not_a_field() -> None:
    @record
    class Ours:
        a: int
        kind: ClassVar[str] = "k"
        b: int = 0

    @dataclasses.dataclass
    class Theirs:
        a: int
        kind: ClassVar[str] = "k"
        b: int = 0

    assert tuple(f.name for f in records.fields(Ours)) == ("a", "b") == Ours.__match_args__
    assert [f.name for f in dataclasses.fields(Theirs)] == ["a", "b"]
    assert Ours.kind == "k" and vars(Ours(1, 2)) == vars(Theirs(1, 2)) == {"a": 1, "b": 2}
    theirs = _outcome(Theirs, 1, 2, "x")[1].replace("Theirs", "Ours")
    assert _outcome(Ours, 1, 2, "x")[1] == theirs  # `kind` is no parameter


def test_a_class_dataclass_refuses_is_refused() -> None:
    """The same error, in the same words, for a required field after a default one (also
    after a factory's field), a mutable default, a default and a factory both, and a frozen
    class's own `__setattr__`; and a record cannot inherit from a record or a dataclass."""

    bodies: list[Callable[[Callable[..., Any]], dict[str, Any]]] = [
        lambda field: {"__annotations__": {"a": "int", "b": "int"}, "a": 0},
        lambda field: {"__annotations__": {"a": "list[int]", "b": "int"},
                       "a": field(default_factory=list)},
        lambda field: {"__annotations__": {"a": "list[int]"}, "a": []},
        lambda field: {"__annotations__": {"a": "int"}, "a": field(default=[])},
    ]  # fmt: skip
    for body in bodies:
        assert _refusal(_make, record, body(records.field)) == _refusal(
            _make, dataclasses.dataclass, body(dataclasses.field)
        )
    assert _refusal(records.field, default=1, default_factory=list) == _refusal(
        dataclasses.field, default=1, default_factory=list
    )

    def own_setattr() -> dict[str, Any]:
        return {"__annotations__": {"a": "int"}, "__setattr__": lambda self, k, v: None}

    assert _refusal(_make, record(frozen=True), own_setattr()) == _refusal(
        _make, dataclasses.dataclass(frozen=True), own_setattr()
    )
    base = record(type("Base", (), {"__annotations__": {"a": "int"}}))
    dc = dataclasses.dataclass(type("DC", (), {"__annotations__": {"a": "int"}}))
    for parent in (base, dc):
        with pytest.raises(TypeError, match="cannot inherit"):
            record(type("Child", (parent,), {"__annotations__": {"b": "int"}}))


def test_a_frozen_record_hashes_as_a_dataclass_and_a_mutable_one_is_unhashable() -> None:
    ours, theirs = _twins(frozen=True)
    assert hash(ours(1, (2,), "x", 1.0)) == hash(ours(1, (2,), "x", 7.0))  # `loose` aside
    assert hash(ours(1, (2,), "x")) == hash(theirs(1, (2,), "x"))  # the tuple of the fields
    mutable, _ = _twins(frozen=False)
    with pytest.raises(TypeError, match="unhashable"):
        hash(mutable(1, (2,)))  # hashable values, an unhashable record


def test_a_frozen_record_refuses_changes_as_a_dataclass() -> None:
    """Setting or deleting an attribute raises FrozenInstanceError (an AttributeError) with
    @dataclass's words; an instance of a plain subclass may take other attributes."""
    ours, theirs = _twins(frozen=True)
    assert issubclass(records.FrozenInstanceError, AttributeError)

    changes: list[Callable[[object], None]] = [
        lambda o: setattr(o, "a", 2), lambda o: setattr(o, "other", 2),
        lambda o: delattr(o, "a"), lambda o: delattr(o, "other"),
    ]  # fmt: skip
    for change in changes:
        mine, theirs_ = ours(1), theirs(1)
        assert _refusal(change, mine) == _refusal(change, theirs_)
        with pytest.raises(records.FrozenInstanceError):
            change(mine)
        assert vars(mine) == vars(theirs_)  # unchanged
    sub, sub_theirs = type("Sub", (ours,), {})(1), type("Sub", (theirs,), {})(1)
    for obj in (sub, sub_theirs):
        obj.other = 5  # type: ignore[attr-defined]
        del obj.other  # type: ignore[attr-defined]
        with pytest.raises(AttributeError, match="cannot assign to field 'a'"):
            obj.a = 2  # type: ignore[attr-defined]
    with pytest.raises(records.FrozenInstanceError):
        sub.a = 2  # type: ignore[attr-defined]


def test_replace_and_fields_as_dataclasses() -> None:
    for frozen in (False, True):
        ours, theirs = _twins(frozen)
        mine, other = ours(1, [2], "x", 1.5), theirs(1, [2], "x", 1.5)
        changed = records.replace(mine, a=3, loose=2.0)
        assert vars(changed) == vars(dataclasses.replace(other, a=3, loose=2.0))
        assert changed.b is mine.b and vars(mine)["a"] == 1  # a shallow copy; mine unchanged
        refused = _refusal(records.replace, mine, z=1)
        assert refused == _refusal(dataclasses.replace, other, z=1)
        assert refused == ("TypeError", "Rec.__init__() got an unexpected keyword argument 'z'")
    assert records.fields(mine) == records.fields(ours)

    def said(f: Any, missing: object) -> tuple[Any, ...]:
        values = (f.default, f.default_factory, f.compare, f.repr, f.hash)
        return (f.name, *("MISSING" if v is missing else v for v in values))

    assert [said(f, records.MISSING) for f in records.fields(ours)] == [
        said(f, dataclasses.MISSING) for f in dataclasses.fields(theirs)
    ]
    for wrong in (1, int):
        with pytest.raises(TypeError, match="must be called with a record type or instance"):
            records.fields(wrong)


def test_a_record_keeps_the_methods_it_writes_and_hashes_as_its_fields_say() -> None:
    @record(frozen=True)
    class Own:
        a: int
        b: int = records.field(default=0, hash=False)  # compared, not hashed

        def __repr__(self) -> str:
            return "mine"

    @dataclasses.dataclass(frozen=True)
    class Theirs:
        a: int
        b: int = dataclasses.field(default=0, hash=False)

    assert repr(Own(1)) == "mine"
    assert hash(Own(1, 2)) == hash(Own(1, 3)) == hash(Theirs(1, 2)) and Own(1, 2) != Own(1, 3)

    @record
    class Equal:
        a: int

        def __eq__(self, other: object) -> bool:
            return True

    assert Equal(1) == Equal(2) and Equal.__hash__ is None  # as Python sets it for __eq__

    @record
    class Built:
        a: int

        def __init__(self, text: str) -> None:
            self.a = int(text)

    assert Built("7").a == 7  # its own __init__ stays, as with @dataclass


def test_the_models_are_records() -> None:
    run = Run(job="a", scheduled_for=1.0)
    assert repr(run).startswith("Run(job='a', scheduled_for=1.0, trigger='schedule'")
    assert run == Run(job="a", scheduled_for=1.0) != records.replace(run, attempt=2)
    job = Job(name="a", command=["true"])
    assert job == job.copy_with() and job.env == {} and job.env is not Job("b", []).env


@pytest.mark.parametrize("cls", [Job, Run])
def test_a_written_init_is_the_one_dataclass_would_write(cls: type) -> None:
    """Job and Run write their __init__ (start-up time): the same parameters, in field
    order, with the fields' defaults, and a fresh list or dict for each default factory."""
    import inspect

    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    fields = records.fields(cls)
    assert [p.name for p in params] == [f.name for f in fields]
    required = {f.name: f"v-{f.name}" for f in fields if f.default is records.MISSING
                and f.default_factory is records.MISSING}  # fmt: skip
    a, b = cls(**required), cls(**required)
    for f in fields:
        if f.default_factory is not records.MISSING:
            assert getattr(a, f.name) == f.default_factory() and type(getattr(a, f.name)) is type(
                f.default_factory()
            )
            assert getattr(a, f.name) is not getattr(b, f.name), f.name  # fresh each time
        elif f.default is not records.MISSING:
            got = getattr(a, f.name)
            assert got == f.default and type(got) is type(f.default), f.name  # 0.0, not 0
        else:
            assert getattr(a, f.name) == required[f.name]
    given = {f.name: object() for f in fields}  # every field passed is kept as passed
    made = cls(**given)
    assert all(getattr(made, name) is value for name, value in given.items())


def test_every_record_of_jobctl_has_its_annotated_fields() -> None:
    """Each @record class in jobctl has one field per annotation it writes (not ClassVar),
    and its module imports `annotations` from `__future__`, as records.py's docstring
    says: from Python 3.14 a class without it keeps no `__annotations__` in its namespace
    (records._own_annotations asks for them then; this checks both ways)."""
    import ast
    import importlib
    from pathlib import Path

    import jobctl
    from jobctl import records

    root = Path(jobctl.__file__).parent
    seen = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text())
        classes = [n for n in tree.body if isinstance(n, ast.ClassDef) and any(
            "record" in ast.unparse(d) for d in n.decorator_list)]  # fmt: skip
        if not classes:
            continue
        future = any(isinstance(n, ast.ImportFrom) and n.module == "__future__"
                     and [a.name for a in n.names] == ["annotations"]
                     for n in tree.body)  # fmt: skip
        assert future, f"{path.name}: a module with records imports annotations from __future__"
        module = importlib.import_module(
            "jobctl." + ".".join(path.relative_to(root).with_suffix("").parts)
        )
        for node in classes:
            cls = getattr(module, node.name)
            written = [s.target.id for s in node.body if isinstance(s, ast.AnnAssign)
                       and isinstance(s.target, ast.Name)
                       and not ast.unparse(s.annotation).startswith("ClassVar")]  # fmt: skip
            assert [f.name for f in records.fields(cls)] == written != [], cls
            seen.append(node.name)
    assert {"Job", "Run", "State", "Cron", "Settings", "RunFilter"} <= set(seen)


@pytest.mark.skipif(sys.version_info < (3, 14), reason="lazy annotations (PEP 649): Python 3.14")
def test_a_record_in_a_module_without_future_annotations() -> None:
    namespace: dict[str, object] = {}
    exec(  # no `from __future__ import annotations`: the class has __annotate__ only
        "from jobctl.records import record\n"
        "@record\nclass R:\n    a: int\n    b: 'Undefined' = 1\n",
        namespace,
    )
    from jobctl.records import fields

    assert [f.name for f in fields(namespace["R"])] == ["a", "b"]
