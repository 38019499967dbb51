"""Entry point (`jobctl` and `python -m jobctl`).

`--version` is answered here before anything is imported, so that it costs no more than
starting Python, and so are the Tabs jobctl/completing.py answers without typer (a verb, the
first argument of a verb, the value of an option with a known list); everything else goes to
jobctl.cli.

A short command started from the shell (`main()` without arguments: the console script,
`python -m jobctl`) runs with the cyclic garbage collector off while it imports and works
(jobctl.cli turns it back on for the commands that keep running: the runner, --watch,
--follow) and, once its output is flushed and the exit handlers have run, leaves with
`os._exit`: tearing down the ~200 modules a command imports costs more than the command's own
work (issue 13's start-up budget); the standard modules it imports without using are loaded
only if used (jobctl/deferred.py). Called with a list (the tests, in-process), it just returns.
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        import gc

        gc.disable()  # jobctl.cli.run re-enables it for long-running commands
    args = sys.argv[1:] if argv is None else list(argv)
    if args in (["--version"], ["-V"]):
        from jobctl import __version__

        sys.stdout.write(f"jobctl {__version__}\n")
        return 0
    if argv is None and "_JOBCTL_COMPLETE" in os.environ:  # a Tab: the common ones first
        from jobctl.completing import answer

        try:
            text = answer()
        except Exception:  # never a traceback on Tab: typer answers, or says what is wrong
            text = None
        if text is not None:
            sys.stdout.write(text + "\n")
            fast_exit(0)
            return 0
    if argv is None:
        from jobctl import deferred

        deferred.install()  # typer's unused standard modules load on first use, if ever
    from jobctl.cli import run

    code = run(args)
    if argv is None:
        fast_exit(code)
    return code


def fast_exit(code: int) -> None:
    """Exit now, skipping the interpreter's teardown, when nothing else needs it: streams
    flushed, atexit handlers run, no other thread alive (else return, and Python exits as
    usual). Data is safe: every store write has committed (SQLite's WAL is durable at commit
    and is replayed by the next opener; a PostgreSQL connection's end is a clean close)."""
    import atexit
    import os
    import threading

    if threading.active_count() > 1:
        return
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (BrokenPipeError, ValueError):  # a closed reader: nothing more to say
            pass
        except OSError:
            return  # let Python report it as usual
    atexit._run_exitfuncs()
    os._exit(code if 0 <= code <= 255 else 1)


if __name__ == "__main__":
    sys.exit(main())
