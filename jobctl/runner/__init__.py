"""The runner: fires due jobs and executes queued runs (SPEC 7). Its rooms:

- loop.py       Runner: the loop and its steps (fire, clock steps, @reboot, store outages,
                the store-identity guard, shutdown)
- workers.py    WorkerPool: at most N runs at once, in one event loop (every job process in
                one selector) and a bookkeeper that claims and records in batches; cancel
                and replace
- execution.py  execute(): one run from its start to its recorded end (the foreground
                `jobctl run`); the job's environment and Spec, record_end, the start-time Gates
- recovery.py   runs left behind by dead runners: their orphans killed, recorded abandoned

None of it knows the CLI; `jobctl.cli.runner` wires it to a store, a lock and a printer.
"""

from jobctl.runner.execution import OWNER_VAR, Gates, execute, job_env, spec_for
from jobctl.runner.loop import LEAD_S, MAX_SLEEP_S, Runner

__all__ = [
    "LEAD_S",
    "MAX_SLEEP_S",
    "OWNER_VAR",
    "Gates",
    "Runner",
    "execute",
    "job_env",
    "spec_for",
]
