"""`python -m bench.chaos [--quick] [--seed N] [--duration S] [--lease D] [--netns]`, or
`python -m bench.chaos --check DIR` to check (and draw) a finished run again.

Exit status: 0 when every verdict is 0, 1 when one is not, 2 when the run could not be made
(no PostgreSQL binaries, no psycopg).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from pathlib import Path

from bench.chaos import check, harness, report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m bench.chaos", description="The fleet chaos suite (issue 10)."
    )
    ap.add_argument("--quick", action="store_true", help="60 s, --lease 5s (CI)")
    ap.add_argument("--seed", type=int, default=None, help="the fault schedule's seed (random)")
    ap.add_argument("--duration", type=float, default=None, help="seconds of faults (600)")
    ap.add_argument("--lease", default=None, help="the runners' --lease (10s; quick 5s)")
    ap.add_argument("--ticks", type=int, default=50, help="jobs firing every second (50)")
    ap.add_argument("--workers", type=int, default=24, help="workers per runner (24)")
    ap.add_argument(
        "--netns",
        action="store_true",
        help="each runner in its own network namespace (root); cuts may also take its link down",
    )
    ap.add_argument(
        "--no-faults", action="store_true", help="the same load with no fault (a baseline)"
    )
    ap.add_argument("--dir", type=Path, default=None, help="folder for the run's evidence")
    ap.add_argument("--picture", type=Path, default=None, help="also draw the timeline here")
    ap.add_argument(
        "--check",
        type=Path,
        default=None,
        metavar="DIR",
        help="check a finished run's folder again",
    )
    args = ap.parse_args(argv)
    if args.check is None:
        from tests.pg import _pg_bin

        if not (_pg_bin("initdb") and _pg_bin("pg_ctl")):
            print(
                "chaos: no initdb/pg_ctl on PATH or under /usr/lib/postgresql/*/bin",
                file=sys.stderr,
            )
            return 2
        if args.netns and (why := harness.netns_works()):
            print(f"chaos: --netns cannot work here: {why}", file=sys.stderr)
            return 2
        from jobctl.jobdef import option_duration

        lease = args.lease or ("5s" if args.quick else "10s")
        seed = args.seed if args.seed is not None else random.randrange(1_000_000)
        folder = args.dir or Path(tempfile.mkdtemp(prefix=f"jobctl-chaos-{seed}-"))
        settings = harness.Settings(
            duration=args.duration or (60.0 if args.quick else 600.0),
            lease=lease,
            lease_s=option_duration(lease, "--lease"),
            seed=seed,
            ticks=args.ticks,
            workers=args.workers,
            netns=args.netns,
            folder=folder,
            faults=not args.no_faults,
        )
        print(f"chaos: seed {seed}, evidence in {folder}", flush=True)
        harness.run(settings)
    else:
        folder = args.check
    ev = check.load(folder)
    rep = check.check(ev)
    text = report.render(ev, rep)
    (folder / "summary.md").write_text(text)
    (folder / "verdicts.json").write_text(json.dumps(rep.verdicts, indent=1) + "\n")
    print(text)
    if args.picture:
        report.picture(ev, rep, args.picture)
        print(f"picture: {args.picture}")
    print(f"evidence: {folder}")
    return 0 if rep.ok else 1


if __name__ == "__main__":
    sys.exit(main())
