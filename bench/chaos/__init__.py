"""The fleet chaos suite (issue 10): three runners on one throwaway PostgreSQL cluster, faults
at seeded random times, and a checker that believes the jobs' own side effects, not the store.

- faults.py   the fault kinds and the seeded schedule (pure)
- proxy.py    the fault proxy between each runner and the database
- harness.py  the run: cluster, runners, jobs, faults carried out, evidence collected
- check.py    the checker: duplicates, overlaps, lost fires, stuck runs, orphans, takeovers,
              lateness, from the evidence folder (pure)
- report.py   the summary (markdown) and the picture

`python -m bench.chaos --quick` (60 s, CI) or `python -m bench.chaos` (10 min); docs/chaos.md.
"""
