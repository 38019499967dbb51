"""@record: @dataclass's data classes, made without dataclasses, for less start-up time.

Every command imports the records: Job and Run (models.py), the store's RunFilter,
RunnerInfo, Delivery and RunTally, Settings, the CLI's State, Status, Removal, JobOptions,
the planner's FirePlan and schedule's Cron. Under @dataclass each cost a compile at import
(`exec` of an `__init__`, and of a frozen class's `__setattr__` and `__delattr__`): 3 ms of
the start-up of a command such as `jobctl status`, and importing dataclasses 1 ms more (issue 13).
@record compiles nothing. It reads the class's own annotations in order (strings: every
module imports `annotations` from `__future__`; a `ClassVar[...]` is not a field), keeps
them as a tuple of Field (`__record_fields__`, `__match_args__` their names), and gives the
class methods written once here, which read the fields when called and behave as
@dataclass's do:
- `__init__` takes the fields positionally or by keyword and refuses a call as @dataclass's
  does (TypeError, the same messages); it calls a default factory for each instance and
  writes a frozen record's fields with object.__setattr__. It is a closure over the fields,
  made at import (no compile);
- `__eq__` compares the fields whose `compare` is true, as a tuple, with an object of the
  same class only;
- `__repr__` writes `Name(field=value, ...)` with the fields whose `repr` is true;
- `__hash__` hashes the fields of a frozen record whose `hash` (else `compare`) is true; a
  record that is not frozen is unhashable, as with @dataclass(eq=True);
- a frozen record's `__setattr__` and `__delattr__` raise FrozenInstanceError (an
  AttributeError, as dataclasses' is);
- a method the class writes itself is kept, as @dataclass keeps it (but not a frozen
  record's `__setattr__` or `__delattr__`: TypeError, as with @dataclass).
Defaults are as @dataclass leaves them: a plain default, or field(default=...), is the class
attribute; a field(default_factory=...) leaves none. Use fields() and replace() from here:
dataclasses' own do not know a record (TypeError).

The `__init__` made here costs 2 to 5 times a compiled one (0.4 to 1.2 µs more a call, on the
2-core test machine): nothing at a few calls a command. With `init=False` the class writes
its own `__init__` instead, as Job and Run do: they are built for each row read and each
change of a run (tests/unit/test_records.py checks each against the fields; and every piece
here against the same class under @dataclass). Left out, as no record needs them: a record
inheriting from a record or a dataclass (TypeError), InitVar and KW_ONLY (TypeError),
field(init=False), metadata, order, asdict(), an `__init__` signature for inspect. Add one
here only with its test against @dataclass. Use @record for the records a command imports;
@dataclass elsewhere is as good (the runner's, the executor's and jobfile's own classes keep
it). This module imports only the standard library: jobctl/schedule.py, pure, may use it.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import attrgetter
from typing import TYPE_CHECKING, Any, TypeVar, dataclass_transform, overload

T = TypeVar("T")


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


#: a field without a default, or without a default factory (dataclasses.MISSING's part)
MISSING: Any = _Missing()


class FrozenInstanceError(AttributeError):
    """An assignment to, or a deletion of, a field of a frozen record."""


class Field:
    """One field of a record: field() makes it, @record names it, fields() lists them."""

    __slots__ = ("compare", "default", "default_factory", "hash", "name", "repr")

    def __init__(
        self,
        default: Any = MISSING,
        default_factory: Any = MISSING,
        compare: bool = True,
        repr: bool = True,
        hash: bool | None = None,
    ) -> None:
        self.name = ""  # set by @record
        self.default = default
        self.default_factory: Callable[[], Any] = default_factory
        self.compare = compare
        self.repr = repr
        self.hash = hash

    def __repr__(self) -> str:
        return (f"Field(name={self.name!r}, default={self.default!r}, default_factory="
                f"{self.default_factory!r}, compare={self.compare}, repr={self.repr}, "
                f"hash={self.hash})")  # fmt: skip


@overload
def field(
    *, default: T, compare: bool = True, repr: bool = True, hash: bool | None = None
) -> T: ...
@overload
def field(
    *, default_factory: Callable[[], T], compare: bool = True, repr: bool = True,
    hash: bool | None = None,
) -> T: ...  # fmt: skip
@overload
def field(*, compare: bool = True, repr: bool = True, hash: bool | None = None) -> Any: ...


def field(
    *,
    default: Any = MISSING,
    default_factory: Any = MISSING,
    compare: bool = True,
    repr: bool = True,
    hash: bool | None = None,
) -> Any:
    """A field of a record with more said than its default, as dataclasses.field."""
    if default is not MISSING and default_factory is not MISSING:
        raise ValueError("cannot specify both default and default_factory")
    return Field(default, default_factory, compare, repr, hash)


@overload
def record(cls: type[T], /) -> type[T]: ...
@overload
def record(*, frozen: bool = False, init: bool = True) -> Callable[[type[T]], type[T]]: ...


@dataclass_transform(field_specifiers=(field,))
def record(cls: type[T] | None = None, /, *, frozen: bool = False, init: bool = True) -> Any:
    """@dataclass or @dataclass(frozen=True), as above (`init=False`: the class writes its
    own `__init__`)."""

    def wrap(c: type[T]) -> type[T]:
        own = set(c.__dict__)  # a method the class writes itself stays, as with @dataclass
        found = _fields_of(c)
        setattr(c, "__record_fields__", found)  # noqa: B010 (mypy: not an attribute of type[T])
        if "__match_args__" not in own:
            setattr(c, "__match_args__", tuple(f.name for f in found))  # noqa: B010 (as above)
        if init and "__init__" not in own:
            c.__init__ = _init_for(c, found, frozen)  # type: ignore[method-assign]
        if frozen:
            for name in ("__setattr__", "__delattr__"):
                if name in own:
                    raise TypeError(f"Cannot overwrite attribute {name} in class {c.__name__}")
            c.__setattr__, c.__delattr__ = _frozen_for(c, found)  # type: ignore[assignment,method-assign]
        if "__eq__" not in own:
            c.__eq__ = _eq  # type: ignore[assignment,method-assign]
            if "__hash__" not in own:
                c.__hash__ = _hash if frozen else None  # type: ignore[assignment,method-assign]
        if "__repr__" not in own:
            c.__repr__ = _repr  # type: ignore[assignment,method-assign]
        return c

    return wrap if cls is None else wrap(cls)


def fields(class_or_instance: Any) -> tuple[Field, ...]:
    """The fields of a record (class or instance), in order, as dataclasses.fields."""
    try:
        return class_or_instance.__record_fields__  # type: ignore[no-any-return]
    except AttributeError:
        raise TypeError("must be called with a record type or instance") from None


if TYPE_CHECKING:  # mypy checks a call's field names and types, as for a dataclass's
    from dataclasses import replace as replace
else:

    def replace(obj: T, /, **changes: Any) -> T:
        """A new record of `obj`'s class with `obj`'s fields but `changes`, as
        dataclasses.replace: every field is passed to the class by keyword (its `__init__`
        refuses an unknown name: TypeError)."""
        for f in fields(obj):
            if f.name not in changes:
                changes[f.name] = getattr(obj, f.name)
        return obj.__class__(**changes)


def _fields_of(c: type) -> tuple[Field, ...]:
    """The fields `c` annotates, in order; each one's default left as the class attribute
    (a factory's removed), as @dataclass leaves them."""
    for base in c.__mro__[1:]:
        if "__record_fields__" in base.__dict__ or "__dataclass_fields__" in base.__dict__:
            raise TypeError(f"{c.__name__}: a record cannot inherit from a record or a "
                            f"dataclass ({base.__name__}): not supported")  # fmt: skip
    found: list[Field] = []
    for name, annotation in _own_annotations(c).items():
        text = annotation if isinstance(annotation, str) else repr(annotation)
        kind = text.partition("[")[0].strip().rpartition(".")[2]  # typing.ClassVar: ClassVar
        if kind == "ClassVar":
            continue
        if kind in ("InitVar", "KW_ONLY"):
            raise TypeError(f"{c.__name__}.{name}: {kind} is not supported by @record")
        value = getattr(c, name, MISSING)  # a base class's attribute too, as @dataclass reads
        if isinstance(value, Field):
            f = value
            if f.default is MISSING:
                delattr(c, name)  # a factory's field, or a required one: no class attribute
            else:
                setattr(c, name, f.default)
        else:
            f = Field(value)
        f.name = name
        if f.default is not MISSING and type(f.default).__hash__ is None:
            raise ValueError(f"mutable default {type(f.default)} for field {name} is not "
                             "allowed: use default_factory")  # fmt: skip
        if _required(f) and found and not _required(found[-1]):
            raise TypeError(f"non-default argument {name!r} follows default argument")
        found.append(f)
    return tuple(found)


def _own_annotations(c: type) -> dict[str, Any]:
    """The annotations `c` writes itself, in order: strings where its module imports
    `annotations` from `__future__` (every module with a record does; tests check), else
    objects. From Python 3.14 (PEP 649) a class without that import keeps no
    `__annotations__` in its namespace, only a function that computes them: it is asked for
    them as forward references (names it cannot resolve stay names)."""
    own = vars(c)
    if "__annotations__" in own:
        return own["__annotations__"]  # type: ignore[no-any-return]
    if "__annotate__" not in own and "__annotate_func__" not in own:
        return {}
    import annotationlib  # type: ignore[import-not-found,unused-ignore]  # Python >= 3.14

    return annotationlib.get_annotations(c, format=annotationlib.Format.FORWARDREF)  # type: ignore[no-any-return,unused-ignore]


def _required(f: Field) -> bool:
    return f.default is MISSING and f.default_factory is MISSING


def _init_for(c: type, found: tuple[Field, ...], frozen: bool) -> Callable[..., None]:
    """`c`'s `__init__`: each field's value from the positional arguments, else the
    keywords, else its default or a call of its factory; set in field order."""
    names = tuple(f.name for f in found)
    count = len(names)
    # the keywords a call may give after n positional arguments: the fields from the n-th on
    later = tuple(frozenset(names[n:]) for n in range(count + 1))
    blank = {f.name: f.default for f in found}  # MISSING: a factory's, or a required field
    factories = tuple((f.name, f.default_factory) for f in found
                      if f.default_factory is not MISSING)  # fmt: skip
    required = tuple(f.name for f in found if _required(f))  # the first ones, in order
    # `self.name = value` for each field is an update of the instance's __dict__ where
    # nothing stands between: no __setattr__ of the class's own, no __slots__, no data
    # descriptor of a field's name. A frozen record's fields are set with object.__setattr__,
    # as @dataclass sets them
    described = any(hasattr(type(getattr(c, n, None)), "__set__") for n in names)
    direct = (not frozen and c.__setattr__ is object.__setattr__ and "__slots__" not in vars(c)
              and not described)  # fmt: skip
    put = object.__setattr__ if frozen else setattr

    def __init__(self: object, /, *args: Any, **kwargs: Any) -> None:
        n = len(args)
        if n > count or (kwargs and not kwargs.keys() <= later[n]):
            raise TypeError(_refusal(__init__.__qualname__, found, args, kwargs))
        values = self.__dict__ if direct else {}
        values.update(blank)  # first: the fields keep their order
        if n:
            values.update(zip(names, args, strict=False))  # the first n fields
        if kwargs:
            values.update(kwargs)
        if n + len(kwargs) < count:  # some not given (each given once: checked above)
            for name, factory in factories:
                if values[name] is MISSING:
                    values[name] = factory()  # a new one for each instance
            for name in required[n:]:
                if values[name] is MISSING:
                    raise TypeError(_refusal(__init__.__qualname__, found, args, kwargs))
        if not direct:
            for name, value in values.items():
                put(self, name, value)

    __init__.__qualname__ = f"{c.__qualname__}.__init__"
    return __init__


def _refusal(
    where: str, found: tuple[Field, ...], args: tuple[Any, ...], kw: dict[str, Any]
) -> str:
    """Why Python would refuse the call `where(*args, **kw)` of a compiled `__init__` with
    these fields: the first of a bad keyword, too many positional arguments, missing ones
    (CPython checks in that order), in its words."""
    names = [f.name for f in found]
    for key in kw:
        if key not in names:
            return f"{where}() got an unexpected keyword argument {key!r}"
        if names.index(key) < len(args):
            return f"{where}() got multiple values for argument {key!r}"
    if len(args) > len(names):  # counts with self, as Python does
        most = len(names) + 1
        least = most - sum(1 for f in found if not _required(f))
        takes = f"{most} positional argument{'s' if most != 1 else ''}"
        if least != most:
            takes = f"from {least} to {most} positional arguments"
        return f"{where}() takes {takes} but {len(args) + 1} were given"
    missing = [repr(f.name) for f in found[len(args) :] if _required(f) and f.name not in kw]
    listed = " and ".join(missing)
    if len(missing) > 2:
        listed = f"{', '.join(missing[:-1])}, and {missing[-1]}"
    plural = "s" if len(missing) > 1 else ""
    return f"{where}() missing {len(missing)} required positional argument{plural}: {listed}"


def _frozen_for(
    c: type[Any], found: tuple[Field, ...]
) -> tuple[Callable[[object, str, Any], None], Callable[[object, str], None]]:
    """A frozen `c`'s `__setattr__` and `__delattr__`: a field is never set nor deleted
    once made; another attribute only on an instance of a subclass, as with @dataclass."""
    names = frozenset(f.name for f in found)

    def __setattr__(self: object, name: str, value: Any) -> None:
        if type(self) is c or name in names:
            raise FrozenInstanceError(f"cannot assign to field {name!r}")
        super(c, self).__setattr__(name, value)

    def __delattr__(self: object, name: str) -> None:
        if type(self) is c or name in names:
            raise FrozenInstanceError(f"cannot delete field {name!r}")
        super(c, self).__delattr__(name)

    __setattr__.__qualname__ = f"{c.__qualname__}.__setattr__"
    __delattr__.__qualname__ = f"{c.__qualname__}.__delattr__"
    return __setattr__, __delattr__


def _values(obj: object, which: str) -> tuple[Any, ...]:
    """The values of `obj`'s fields that count for `which` ("compare", or "hash": a field's
    `hash`, else its `compare`, as @dataclass reads them), in order; the getter is made once
    a class."""
    cls = type(obj)
    key = f"_record_{which}"
    get = cls.__dict__.get(key)
    if get is None:
        names = [f.name for f in fields(cls)
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
    shown = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self) if f.repr)
    return f"{self.__class__.__qualname__}({shown})"


def _hash(self: object) -> int:
    return hash(_values(self, "hash"))
