"""What `jobctl status` reports, gathered as data: the registered runners and whether each is
alive, the running runs, the queue, the next fires, failures of the last 24 h, the dead list.

Below the CLI (which renders a Status as text or JSON): no printing, no flag parsing.
"""

from __future__ import annotations

from jobctl.models import Run
from jobctl.records import record
from jobctl.store.base import RunFilter, RunnerInfo, Store

DAY_S = 86400.0


@record
class Status:
    runners: list[RunnerInfo]  # as registered, oldest first
    alive: dict[str, bool]  # by runner owner
    running: list[Run]
    queued: int
    upcoming: list[tuple[float, str]]  # (next fire, job), soonest first
    failed_24h: int
    dead: int
    store_now: float  # the store's clock (a shared store's decides leases)

    @property
    def runner(self) -> RunnerInfo | None:
        """The runner `"runner"` describes (SPEC 7: one runner; the latest registered)."""
        return self.runners[-1] if self.runners else None

    @property
    def active(self) -> bool:
        return self.runner is not None and self.alive[self.runner.owner]

    def running_on(self, runner: RunnerInfo) -> int:
        return sum(1 for r in self.running if r.owner == runner.owner)


def runners_alive(store: Store) -> tuple[list[RunnerInfo], dict[str, bool], float]:
    """The registered runners, whether each is alive, and the store's clock: on a shared
    store a runner on any machine is alive while its lease holds by the store's clock; on
    SQLite, while its process lives."""
    from jobctl import owners

    registered = store.runners()
    db_now = store.now()
    if store.shared:
        alive = {r.owner: (r.lease_expires_at or 0.0) > db_now for r in registered}
    else:
        alive = {r.owner: owners.alive(r.owner) for r in registered}
    return registered, alive, db_now


def gather(store: Store, now: float, upcoming: int = 5) -> Status:
    """Everything `status` shows, read now."""
    from jobctl.models import FAILED_STATUSES
    from jobctl.runs import dead_runs

    registered, alive, db_now = runners_alive(store)
    return Status(
        runners=registered,
        alive=alive,
        running=store.list_runs(RunFilter(statuses=["running"])),
        queued=store.count_runs(RunFilter(statuses=["queued"])),
        upcoming=store.next_fires(upcoming),
        failed_24h=store.count_runs(RunFilter(statuses=sorted(FAILED_STATUSES), since=now - DAY_S)),
        dead=len(dead_runs(store)),
        store_now=db_now,
    )
