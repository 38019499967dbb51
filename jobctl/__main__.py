"""Entry point (`jobctl` and `python -m jobctl`).

`--version` is answered here before anything is imported, so that it costs no more than
starting Python; everything else goes to jobctl.cli.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if args in (["--version"], ["-V"]):
        from jobctl import __version__

        sys.stdout.write(f"jobctl {__version__}\n")
        return 0
    from jobctl.cli import run

    return run(args)


if __name__ == "__main__":
    sys.exit(main())
