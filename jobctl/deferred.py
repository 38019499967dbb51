"""Deferred imports: standard-library modules that a command's start-up imports but a short
command never uses are loaded on first use instead (issue 13's start-up budget).

typer and its vendored click import `subprocess`, `textwrap`, `shutil`, `platform` and more
at the top of their modules, for functions that `jobctl status`, `list`, `history` or `add`
never call (a pager, an editor, help text, shell completion, a typo's suggestions): about
10 ms of every command.
While a command starts from the shell (jobctl/__main__.py calls `install()`), an import of a
module named in DEFERRED finds it as usual but does not run it: the module object goes into
sys.modules as a stand-in, and the first access to any of its attributes (`subprocess.run`,
`from textwrap import dedent`) runs the module, in place, and answers from it. Nothing else
changes: a module that is used is loaded, once, where it is first used. Two exceptions, each
listed with its reason: a function another module takes by name at its own import is handed
out as a forwarder that loads the module when called (FORWARDED), and platform answers
`system()`, which uuid's import calls, with platform's own answer (ANSWERS).

Rules a newcomer may rely on, and must keep:
- only pure-Python modules of the standard library, whose import has no side effect another
  module relies on (no codec, signal handler, atexit or import hook), are in DEFERRED; an
  extension module (its loader is not a source or bytecode file loader) is never deferred;
- loading is guarded by one lock: a thread that touches a module another thread is loading
  waits for it. Unlike Python's own import locks (one per module, with deadlock detection),
  one lock for all can deadlock two threads that load modules importing each other's, so:
- no thread may start while stand-ins wait. Long-running commands (the runner, `run`,
  `retry` in the foreground, --watch, --follow) call `stop()` before they start threads: the
  remaining stand-ins are loaded and imports are plain again;
- the tests call jobctl.__main__.main with a list, which installs nothing.
"""

from __future__ import annotations

import sys
from _thread import RLock, get_ident
from contextlib import suppress
from importlib.machinery import ModuleSpec, PathFinder, SourceFileLoader, SourcelessFileLoader
from types import ModuleType
from typing import Any

#: modules a short command imports (through typer and click) but never uses; tests/cli/
#: test_startup.py checks that `status`, `list`, `history` and `add` leave each unloaded
DEFERRED = frozenset({
    "bz2", "difflib", "fnmatch", "gettext", "ipaddress", "linecache", "lzma", "ntpath",
    "platform", "shutil", "subprocess", "textwrap", "token", "tokenize", "urllib.parse",
})  # fmt: skip
#: functions that importers take from a deferred module by name as they are imported
#: themselves (typer's `from shutil import get_terminal_size`, typer's and click's `from
#: difflib import get_close_matches`, typer's `from gettext import gettext as _` for help and
#: error texts, pathlib's `from urllib.parse import quote_from_bytes` up to Python 3.12):
#: while the module waits, the name is answered with a forwarder, which loads the module on
#: its first call and calls the module's function
FORWARDED = {
    "difflib": frozenset({"get_close_matches"}),
    "gettext": frozenset({"gettext"}),
    "shutil": frozenset({"get_terminal_size"}),
    "urllib.parse": frozenset({"quote_from_bytes"}),
}


def _linux() -> str:
    return "Linux"


#: what a waiting module answers without loading, where that is its own answer: uuid's import
#: calls platform.system() (Python 3.11 and 3.12; 3.13's uuid reads sys.platform), which is
#: "Linux" wherever sys.platform is "linux" (platform reports os.uname()'s system name, which
#: Linux's kernel gives as "Linux"); platform is deferred only there
ANSWERS: dict[str, dict[str, Any]] = {"platform": {"system": _linux}}
ONLY_ON = {"platform": "linux"}  # sys.platform where a module of ANSWERS may be deferred
#: the extension module a deferred module's import needs: a Python built without it (no
#: bzip2 or xz headers) fails that import, and the importer (shutil) must see it fail at once
#: (it checks with try/except), so the module is imported as usual there
NEEDS = {"bz2": "_bz2", "lzma": "_lzma"}

#: attributes a stand-in answers without loading: what the import system reads of a module
#: already in sys.modules (`import subprocess` a second time asks for `__spec__`; `from shutil
#: import get_terminal_size` asks whether shutil is a package: `__path__`, set before its code
#: runs, and absent from a module that is not one)
_META = frozenset({"__spec__", "__name__", "__loader__", "__class__", "__path__"})

_lock = RLock()
_waiting: list[ModuleType] = []  # stand-ins not loaded yet, for stop()


class _StandIn(ModuleType):
    """A module in sys.modules whose code has not run yet; becomes the module on first use."""

    def __getattribute__(self, name: str) -> Any:
        if name in _META or _running_here(self):  # its own code sees the module as it grows
            return object.__getattribute__(self, name)
        early = _early(self, name)
        if early is not None:
            return early
        _load(self)
        return getattr(self, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if not _running_here(self):
            _load(self)
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        if not _running_here(self):
            _load(self)
        object.__delattr__(self, name)


_forwarders: dict[tuple[str, str], Any] = {}


def _early(module: ModuleType, name: str) -> Any:
    """What waiting `module` answers for `name` without loading (FORWARDED, ANSWERS), else
    None."""
    of = object.__getattribute__(module, "__dict__")["__name__"]
    if name in FORWARDED.get(of, ()):
        key = (of, name)
        if key not in _forwarders:

            def forward(*args: Any, **kwargs: Any) -> Any:
                _load(module)
                return getattr(module, name)(*args, **kwargs)

            forward.__name__ = forward.__qualname__ = name
            forward.__module__ = of
            _forwarders[key] = forward
        return _forwarders[key]
    return ANSWERS.get(of, {}).get(name)


def _running_here(module: ModuleType) -> bool:
    """Whether this thread is running `module`'s code now."""
    return object.__getattribute__(module, "__dict__").get("__loading__") == get_ident()


def _load(module: ModuleType) -> None:
    with _lock:
        if type(module) is not _StandIn:  # another thread loaded it while this one waited
            return
        namespace = object.__getattribute__(module, "__dict__")
        spec: ModuleSpec = namespace["__spec__"]
        loader = spec.loader.real  # type: ignore[union-attr]
        spec.loader = namespace["__loader__"] = loader
        namespace["__loading__"] = get_ident()  # other threads wait on the lock meanwhile
        try:
            loader.exec_module(module)
        except BaseException:
            sys.modules.pop(spec.name, None)  # as a failed import leaves it: not imported
            raise
        finally:
            del namespace["__loading__"]
            object.__setattr__(module, "__class__", ModuleType)
            if module in _waiting:
                _waiting.remove(module)


class _Loader:
    """Puts a stand-in in sys.modules in place of running the module's code (`real`'s)."""

    def __init__(self, real: SourceFileLoader | SourcelessFileLoader) -> None:
        self.real = real

    def create_module(self, spec: ModuleSpec) -> None:
        return None  # a plain module object, as the source loader makes

    def exec_module(self, module: ModuleType) -> None:
        module.__class__ = _StandIn
        _waiting.append(module)

    def __getattr__(self, name: str) -> Any:  # get_source, get_filename...: the real loader's
        return getattr(self.real, name)


class _Finder:
    """On sys.meta_path: finds DEFERRED modules as Python would, and defers their code."""

    @staticmethod
    def find_spec(name: str, path: Any = None, target: Any = None) -> ModuleSpec | None:
        if name not in DEFERRED or (name in NEEDS and PathFinder.find_spec(NEEDS[name]) is None):
            return None
        if ONLY_ON.get(name, sys.platform) != sys.platform:
            return None
        spec = PathFinder.find_spec(name, path)
        if spec is None or not isinstance(spec.loader, (SourceFileLoader, SourcelessFileLoader)):
            return None  # not found here, or not pure Python: the usual finders import it
        spec.loader = _Loader(spec.loader)  # type: ignore[assignment]
        return spec


def install() -> None:
    """Defer the DEFERRED modules imported from now on (jobctl/__main__.py, at start-up)."""
    if _Finder not in sys.meta_path:
        sys.meta_path.insert(0, _Finder)  # type: ignore[arg-type]


def stop() -> None:
    """Load every stand-in and import as usual from now on (before a command starts threads).
    A no-op when `install` was not called. A module whose code fails here is left out of
    sys.modules, as a failed import leaves it: its importer's next use imports it again and
    meets the error there, as it would have without deferring."""
    if _Finder in sys.meta_path:
        sys.meta_path.remove(_Finder)  # type: ignore[arg-type]
    while _waiting:
        with suppress(Exception):  # the module's own error is met where it is used
            _load(_waiting[0])
