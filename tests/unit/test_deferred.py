"""jobctl/deferred.py: deferred standard modules load on first use, once, and whole.

Each case runs in a fresh interpreter: the finder goes on sys.meta_path for the life of a
process, which the test process must not share. The modules under test are written to a
temporary folder and named in DEFERRED there; their code counts its runs in `sys._runs`.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import jobctl
from jobctl.deferred import DEFERRED

ROOT = str(Path(jobctl.__file__).parents[1])  # where `import jobctl` finds it

PRELUDE = """
import sys, threading, time
from jobctl import deferred
sys.path.insert(0, {folder!r})
deferred.DEFERRED = frozenset({{"slow", "plain", "broken", "selfref", "math"}})
deferred.install()
sys._runs = []
def stand_in(name):
    return isinstance(sys.modules[name], deferred._StandIn)
"""

MODULES = {
    "plain.py": "import sys\nsys._runs.append('plain')\nVALUE = 42\ndef twice(x):\n"
    "    return 2 * x\n",
    "slow.py": "import sys, time\nsys._runs.append('slow')\ntime.sleep(0.05)\nVALUE = 7\n",
    "broken.py": "import sys\nsys._runs.append('broken')\nraise RuntimeError('broken at import')\n",
    "selfref.py": "import sys\nsys._runs.append('selfref')\nA = 1\n"
    "sys.modules[__name__].B = sys.modules[__name__].A + 1\n",
}


def _run(tmp_path: Path, body: str) -> str:
    for name, text in MODULES.items():
        (tmp_path / name).write_text(text)
    code = PRELUDE.format(folder=str(tmp_path)) + textwrap.dedent(body)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_an_import_leaves_a_stand_in_until_an_attribute_is_read(tmp_path: Path) -> None:
    out = _run(tmp_path, """
        import plain
        import plain as again  # a second import reads __spec__ only: still not run
        assert again is plain and stand_in("plain") and sys._runs == [], sys._runs
        assert plain.__name__ == "plain" and stand_in("plain")
        assert plain.twice(plain.VALUE) == 84 and not stand_in("plain")
        assert type(plain) is type(sys) and plain.__spec__.loader is plain.__loader__
        assert type(plain.__loader__).__name__ == "SourceFileLoader"
        from plain import VALUE
        print(VALUE, sys._runs)
    """)  # fmt: skip
    assert out.split() == ["42", "['plain']"]


def test_from_import_and_setattr_load_it_first(tmp_path: Path) -> None:
    out = _run(tmp_path, """
        import plain, slow
        from plain import twice
        slow.EXTRA = 1  # set on the stand-in: the module runs first, the value stays
        print(twice(2), slow.VALUE, slow.EXTRA, sorted(sys._runs))
    """)  # fmt: skip
    assert out.split() == ["4", "7", "1", "['plain',", "'slow']"]


def test_threads_touching_it_at_once_run_its_code_once(tmp_path: Path) -> None:
    out = _run(tmp_path, """
        import slow
        seen = []
        start = threading.Barrier(4)
        def touch():
            start.wait()
            seen.append(slow.VALUE)
        threads = [threading.Thread(target=touch) for _ in range(4)]
        for t in threads: t.start()
        for t in threads: t.join()
        print(seen, sys._runs)
    """)  # fmt: skip
    assert out.split() == ["[7,", "7,", "7,", "7]", "['slow']"]


def test_its_own_code_may_use_the_module_while_it_runs(tmp_path: Path) -> None:
    out = _run(tmp_path, """
        import selfref
        print(selfref.B, sys._runs)
    """)  # fmt: skip
    assert out.split() == ["2", "['selfref']"]


def test_a_failing_module_fails_where_it_is_used_and_is_not_left_imported(
    tmp_path: Path,
) -> None:
    out = _run(tmp_path, """
        import broken
        try:
            broken.anything
        except RuntimeError as exc:
            print("raised", exc)
        print("broken" in sys.modules)
    """)  # fmt: skip
    assert out.splitlines() == ["raised broken at import", "False"]


def test_extension_modules_and_unlisted_ones_import_as_usual(tmp_path: Path) -> None:
    out = _run(tmp_path, """
        import math, json
        print(stand_in("math"), stand_in("json"), math.sqrt(4.0))
    """)  # fmt: skip
    assert out.split() == ["False", "False", "2.0"]


def test_stop_loads_what_waits_and_imports_plainly_after(tmp_path: Path) -> None:
    out = _run(tmp_path, """
        import plain, slow
        deferred.stop()
        print(stand_in("plain"), stand_in("slow"), sorted(sys._runs))
        import selfref
        print(stand_in("selfref"), deferred._Finder in sys.meta_path, deferred._waiting)
    """)  # fmt: skip
    assert out.splitlines() == ["False False ['plain', 'slow']", "False False []"]


@pytest.mark.parametrize("name", sorted(DEFERRED))
def test_the_listed_standard_modules_work_when_deferred(name: str) -> None:
    """Each module of DEFERRED, deferred for real, works when used (a smoke use of each; in a
    fresh `python -c`, which has imported none of them)."""
    uses = {
        "bz2": "assert bz2.decompress(bz2.compress(b'x')) == b'x'",
        "subprocess": "assert subprocess.run(['true']).returncode == 0",
        "textwrap": "assert textwrap.dedent('  a') == 'a'",
        "tokenize": "assert tokenize.TokenInfo",
        "token": "assert token.NAME",
        "linecache": "assert linecache.getline(sys.executable + '.none', 1) == ''",
        "lzma": "assert lzma.decompress(lzma.compress(b'x')) == b'x'",
        "fnmatch": "assert fnmatch.fnmatch('ab', 'a*')",
        "ipaddress": "assert ipaddress.ip_address('::1').is_loopback",
        "ntpath": "assert ntpath.join('a', 'b') == 'a\\\\b'",
        "difflib": "assert difflib.get_close_matches('--lmit', ['--limit']) == ['--limit']",
        "gettext": "assert gettext.gettext('Options') == 'Options'",
        "platform": "assert platform.machine() and platform.python_version()",
        "shutil": "assert shutil.which('sh') and shutil.get_terminal_size().columns > 0",
        "urllib.parse": "assert urllib.parse.quote('a b') == 'a%20b'",
    }
    code = (  # -S: without site, which imports fnmatch and ntpath for an editable install
        f"import sys\nsys.path.insert(0, {ROOT!r})\n"
        f"if {name!r} in sys.modules: print('ALREADY'); sys.exit(0)\n"  # 3.13: linecache
        "from jobctl import deferred\ndeferred.install()\n"
        f"import {name}\nassert isinstance({name}, deferred._StandIn)\n{uses[name]}\n"
        f"assert not isinstance({name}, deferred._StandIn)\n"
    )
    done = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    if done.stdout.strip() == "ALREADY":
        pytest.skip(f"this Python imports {name} at start-up: nothing to defer")


def test_a_module_whose_extension_is_missing_imports_as_usual(tmp_path: Path) -> None:
    """bz2 and lzma need _bz2 and _lzma, which a Python built without bzip2 or xz lacks:
    shutil imports them in a try, so there they must fail at once, not be deferred."""
    out = _run(tmp_path, """
        deferred.NEEDS = {"plain": "_no_such_extension", "slow": "math"}
        import plain, slow
        print(stand_in("plain"), stand_in("slow"), sys._runs)
    """)  # fmt: skip
    assert out.split() == ["False", "True", "['plain']"]


def test_stop_leaves_a_failing_module_to_fail_where_it_is_used(tmp_path: Path) -> None:
    """A long-running command's start (stop) never dies of a deferred module's error: the
    module is left unimported, and its next import meets the error, as without deferring."""
    out = _run(tmp_path, """
        import broken, plain
        deferred.stop()
        print("broken" in sys.modules, stand_in("plain"), sorted(sys._runs))
        try:
            import broken
        except RuntimeError as exc:
            print("raised", exc)
    """)  # fmt: skip
    assert out.splitlines() == ["False False ['broken', 'plain']", "raised broken at import"]


def test_a_stand_ins_loader_answers_as_the_real_one(tmp_path: Path) -> None:
    out = _run(tmp_path, """
        import plain
        print(plain.__spec__.loader.get_filename("plain").endswith("plain.py"), stand_in("plain"))
    """)  # fmt: skip
    assert out.split() == ["True", "True"]


def test_a_forwarded_function_loads_its_module_on_its_first_call(tmp_path: Path) -> None:
    """FORWARDED: `from plain import twice` (typer's `from shutil import get_terminal_size`)
    takes a forwarder and leaves the module waiting; the first call loads it, once."""
    out = _run(tmp_path, """
        deferred.FORWARDED = {"plain": frozenset({"twice"})}
        from plain import twice
        from plain import twice as again
        print(again is twice, twice.__name__, stand_in("plain"), sys._runs)
        print(twice(2), twice(3), stand_in("plain"), sys._runs)
        from plain import twice as real
        print(real is not twice, real(5), sys._runs)
    """)  # fmt: skip
    assert out.splitlines() == ["True twice True []", "4 6 False ['plain']", "True 10 ['plain']"]


def test_the_forwarded_names_are_functions_of_their_modules() -> None:
    """A forwarder stands only for a function (a class would fail isinstance and issubclass):
    each name FORWARDED lists is one, in this Python."""
    import importlib
    import types

    from jobctl.deferred import FORWARDED

    for module, names in FORWARDED.items():
        assert module in DEFERRED
        for name in names:
            assert isinstance(getattr(importlib.import_module(module), name), types.FunctionType)


@pytest.mark.skipif(sys.platform != "linux", reason="platform is deferred on Linux only")
def test_a_waiting_platform_answers_system_as_platform_does() -> None:
    """uuid's import asks platform.system(): answered without loading platform, with what
    platform itself answers once loaded."""
    code = (
        f"import sys\nsys.path.insert(0, {ROOT!r})\n"
        "from jobctl import deferred\ndeferred.install()\n"
        "import uuid, platform\n"
        "early = platform.system()\n"
        "assert isinstance(platform, deferred._StandIn) and uuid._LINUX\n"
        "assert getattr(uuid, '_platform_system', 'Linux') == 'Linux'  # 3.11, 3.12 ask it\n"
        "deferred.stop()\n"
        "assert not isinstance(platform, deferred._StandIn)\n"
        "print(early, platform.system(), platform.uname().system)\n"
    )
    done = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["Linux"] * 3
