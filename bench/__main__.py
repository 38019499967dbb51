"""`python -m bench` (or `bench/run` from a fresh clone): jobctl's benchmark suite.

    python -m bench --quick          # every measurement, reduced sizes, under 2 minutes
    python -m bench                  # the full run; writes docs/benchmarks.md and its pictures
    python -m bench --only drain,precision --skip cron --no-install

Each measurement lives in its own module (drain, precision, commands, idle, scale, recovery,
fleet) and returns a common.Result; peers (task-spooler, cron, APScheduler 3) are installed when
missing unless --no-install, and skipped with a note when they cannot be had. Nothing here
is part of the test command; tests/test_bench_smoke.py only checks that the suite starts.

fleet (the runner on PostgreSQL, bench/fleet.py) needs a server (JOBCTL_BENCH_PG, default
postgresql://postgres@127.0.0.1:5432/test; skipped with one line without one) and takes
about 2 minutes even in quick mode (6.5 in full), so it is part of the full run only:
`--quick --only fleet` runs it quick.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

from bench import common, peers

ORDER = ("commands", "idle", "drain", "precision", "scale", "recovery")  # quiet things first
FULL_ONLY = ("fleet",)  # in the default of a full run, not of --quick (its 2 minutes)
PARTS = ORDER + FULL_ONLY


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="reduced sizes, under 2 minutes")
    ap.add_argument("--only", default=None,
                    help=f"comma list of {', '.join(PARTS)} (default: all; --quick: all but "
                         f"{', '.join(FULL_ONLY)})")  # fmt: skip
    ap.add_argument("--skip", default="", help="peers to leave out: tsp,cron,apscheduler")
    ap.add_argument("--no-install", action="store_true", help="never install missing peers")
    ap.add_argument("--drain-runs", type=int, default=2000, help="runs in the drain (2000)")
    ap.add_argument(
        "--report",
        type=Path,
        default=None,
        help="write the markdown report here (default: docs/benchmarks.md in full mode only)",
    )
    args = ap.parse_args(argv)
    default = ORDER if args.quick else PARTS
    only = [m.strip() for m in (args.only or ",".join(default)).split(",") if m.strip()]
    unknown = sorted(set(only) - set(PARTS))
    if unknown:
        ap.error(f"unknown measurement: {', '.join(unknown)}")
    skip = {p.strip() for p in args.skip.split(",") if p.strip()}
    if skip - set(peers.ALL):
        ap.error(f"unknown peer: {', '.join(sorted(skip - set(peers.ALL)))}")
    common.jobctl_bin()  # fail early, with a hint, if jobctl is not installed here

    have, notes = peers.ensure(set(peers.ALL) - skip, install=not args.no_install)
    for n in notes:
        print(f"peers: {n}", flush=True)
    started = time.monotonic()
    results: list[common.Result] = []
    for key in [k for k in PARTS if k in only]:
        module = importlib.import_module(f"bench.{key}")
        t0 = time.monotonic()
        print(f"-- {key} ...", flush=True)
        if key == "drain":
            result = module.measure(args.quick, have, n=args.drain_runs)
        else:
            result = module.measure(args.quick, have)
        if result is None:  # skipped, and it said why (fleet without a PostgreSQL server)
            continue
        results.append(result)
        print(common.render(result), f"\n   ({time.monotonic() - t0:.0f} s)\n", flush=True)
    took = time.monotonic() - started

    budgets = [b for r in results for b in r.budgets]
    print("== Budgets")
    for b in budgets:
        sign = "≥" if b.higher_is_better else "≤"
        print(f"  {'ok    ' if b.ok else 'MISSED'} {b.name}: {b.measured:,.3g} {b.unit} "
              f"({sign} {b.limit:g})")  # fmt: skip
    print(f"total {took:.0f} s{' (quick mode)' if args.quick else ''}")

    report = args.report or (None if args.quick else Path("docs/benchmarks.md"))
    if report is not None:
        from bench import report as rep

        rep.write(report, results, have, notes, quick=args.quick, took_s=took)
        print(f"wrote {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
