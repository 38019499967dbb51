"""@record: @dataclass for the records every command imports, for less start-up time.

@dataclass compiles an `__init__`, an `__eq__` and a `__repr__` for each class at import, and
`__hash__` for a frozen one. That is about 0.3 ms a class, and 3 ms of the start-up of a
command such as `jobctl status` (issue 13). @record lets @dataclass compile `__init__` only
(and a frozen class's `__setattr__`). It gives the class `__eq__`, `__repr__` and, when
frozen, `__hash__`, written once here, which read the fields when called and behave as
@dataclass's do:
- `__eq__` compares the fields whose `compare` is true, as a tuple, with an object of the
  same class only;
- `__repr__` writes `Name(field=value, ...)` with the fields whose `repr` is true;
- `__hash__` hashes the fields of a frozen record whose `hash` (else `compare`) is true; a
  record that is not frozen is unhashable, as with @dataclass(eq=True);
- a method the class writes itself is kept, as @dataclass keeps it.

Everything else is @dataclass's: fields(), replace(), asdict(), defaults, default factories.
With `init=False` the class writes its own `__init__`: Job and Run do (theirs took a
millisecond to compile; tests/unit/test_records.py checks each against the fields).
Use @record for the models, the store's records and the CLI's state, which every command
imports; @dataclass elsewhere is as good. jobctl/schedule.py keeps @dataclass: it imports
only the standard library.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from operator import attrgetter
from typing import Any, TypeVar, dataclass_transform, overload

T = TypeVar("T")


@overload
def record(cls: type[T], /) -> type[T]: ...
@overload
def record(*, frozen: bool = False, init: bool = True) -> Callable[[type[T]], type[T]]: ...


@dataclass_transform()
def record(cls: type[T] | None = None, /, *, frozen: bool = False, init: bool = True) -> Any:
    """@dataclass or @dataclass(frozen=True), with the methods above (`init=False`: the
    class writes its own `__init__`)."""

    def wrap(c: type[T]) -> type[T]:
        own = set(c.__dict__)  # a method the class writes itself stays, as with @dataclass
        c = dataclass(c, frozen=frozen, init=init, eq=False, repr=False)
        if "__eq__" not in own:
            c.__eq__ = _eq  # type: ignore[assignment,method-assign]
            if "__hash__" not in own:
                c.__hash__ = _hash if frozen else None  # type: ignore[assignment,method-assign]
        if "__repr__" not in own:
            c.__repr__ = _repr  # type: ignore[assignment,method-assign]
        return c

    return wrap if cls is None else wrap(cls)


def _values(obj: object, which: str) -> tuple[Any, ...]:
    """The values of `obj`'s fields that count for `which` ("compare", or "hash": a field's
    `hash`, else its `compare`, as @dataclass reads them), in order; the getter is made once
    a class."""
    cls = type(obj)
    key = f"_record_{which}"
    get = cls.__dict__.get(key)
    if get is None:
        names = [f.name for f in fields(cls)  # type: ignore[arg-type]
                 if (f.compare if which == "compare" or f.hash is None else f.hash)]  # fmt: skip
        many = attrgetter(*names) if len(names) > 1 else None  # a tuple, in C

        def get(o: object) -> tuple[Any, ...]:
            return many(o) if many else tuple(getattr(o, n) for n in names)  # type: ignore[no-any-return]

        setattr(cls, key, get)
    return get(obj)  # type: ignore[no-any-return]


def _eq(self: object, other: object) -> bool:
    if other.__class__ is not self.__class__:
        return NotImplemented
    return _values(self, "compare") == _values(other, "compare")


def _repr(self: object) -> str:
    shown = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self) if f.repr)  # type: ignore[arg-type]
    return f"{self.__class__.__qualname__}({shown})"


def _hash(self: object) -> int:
    return hash(_values(self, "hash"))
