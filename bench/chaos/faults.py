"""The fault schedule: which faults, on which runner, when and for how long (pure, seeded).

Kinds (each takes `lease` as its unit of time, so that "shorter" and "longer than the lease"
mean what they say whatever --lease is):
- kill: kill -9 of a runner; started again after a random delay (0.3 to 2 leases);
- stop-short / stop-long: SIGSTOP of a runner for 0.3 lease / 1.5 to 2 leases, then SIGCONT;
- cut-short / cut-long: the runner's proxy cut off for 0.3 lease / 1.5 to 2 leases
  (flavour, at random: `blackhole` or `reject`; see proxy.py); in --netns mode a cut may
  instead take the runner's link down (`link`);
- db-fast / db-immediate: pg_ctl restart -m fast / -m immediate (a crash: its recovery runs);
- latency: 0.2 to 1.5 s added each way on one runner's proxy, for 0.5 to 1.5 leases.

A schedule is built by `make_schedule(rng, duration, lease, hosts, ...)`: every kind at least
once (the quick mode), then more at random until the run's time is used; start times are
random, and a fault is placed only where it does not overlap another fault of the same
runner or (for database restarts) another restart, and only where it ends before the run's
end. At least one runner is left without a runner fault at every moment, so that the
"fire lost while a runner was healthy" rule has a healthy runner to judge by (database
restarts take all of them down briefly: fires due then are judged separately).
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from typing import Any

KINDS = (
    "kill",
    "stop-short",
    "stop-long",
    "cut-short",
    "cut-long",
    "db-fast",
    "db-immediate",
    "latency",
)
RUNNER_KINDS = tuple(k for k in KINDS if not k.startswith("db-"))
#: kinds after which the runner's runs are taken over by the others (takeover times)
TAKEOVER_KINDS = ("kill", "cut-long", "stop-long")


@dataclass
class Fault:
    kind: str
    at: float  # planned start, seconds after the run's t0
    length: float  # planned length (kill: the delay before the runner starts again)
    target: str | None = None  # host; None for the database
    flavour: str = ""  # cut: blackhole | reject | link; latency: the seconds added
    # filled when carried out (epoch seconds, wall clock of the harness)
    started: float | None = None
    ended: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def end_at(self) -> float:
        return self.at + self.length

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Fault:
        return cls(**d)

    def describe(self) -> str:
        who = self.target or "database"
        extra = f" ({self.flavour})" if self.flavour else ""
        return f"{self.kind}{extra} {who} for {self.length:.1f} s"


def _length(kind: str, lease: float, rng: random.Random) -> float:
    if kind == "kill":
        return rng.uniform(0.3, 2.0) * lease
    if kind in ("stop-short", "cut-short"):
        return 0.3 * lease
    if kind in ("stop-long", "cut-long"):
        return rng.uniform(1.5, 2.0) * lease
    if kind == "latency":
        return rng.uniform(0.5, 1.5) * lease
    return 0.0  # a database restart lasts what pg_ctl takes


def _flavour(kind: str, rng: random.Random, netns: bool) -> str:
    if kind.startswith("cut-"):
        return rng.choice(("blackhole", "reject", "link") if netns else ("blackhole", "reject"))
    if kind == "latency":
        return f"{rng.uniform(0.2, 1.5):.2f}"
    return ""


def make_schedule(
    rng: random.Random,
    duration: float,
    lease: float,
    hosts: tuple[str, ...],
    start: float = 5.0,
    tail: float | None = None,
    netns: bool = False,
    every_kind_once: bool = True,
    max_tries: int = 2000,
) -> list[Fault]:
    """Faults in [start, duration - tail], sorted by start. `tail` (default: 2 leases) keeps
    the end of the run quiet so that the last takeovers happen inside the window."""
    tail = 2 * lease if tail is None else tail
    last = duration - tail
    placed: list[Fault] = []
    wanted: list[str] = list(KINDS) if every_kind_once else []
    rng.shuffle(wanted)
    failures = 0
    while failures < max_tries:
        kind = wanted.pop() if wanted else rng.choice(KINDS)
        length = _length(kind, lease, rng)
        hold = length + (1.0 if kind.startswith("db-") else 0.0)  # a restart takes ~1 s
        if last - start - hold <= 0:
            failures += 1
            continue
        at = rng.uniform(start, last - hold)
        target = None
        if kind in RUNNER_KINDS:
            free = [h for h in hosts if _free(placed, h, at, at + hold, lease, hosts)]
            target = rng.choice(free) if free else None
            if target is None:
                failures += 1
                if kind in wanted or (every_kind_once and not _has(placed, kind)):
                    wanted.append(kind)
                continue
        elif any(f.target is None and _overlaps(f, at, at + hold, lease) for f in placed):
            failures += 1
            if every_kind_once and not _has(placed, kind):
                wanted.append(kind)
            continue
        placed.append(
            Fault(kind, round(at, 2), round(length, 2), target, _flavour(kind, rng, netns))
        )
        failures = 0 if wanted else failures + 1  # once all kinds are in, fill up to a point
        if not wanted and _busy_share(placed, duration) >= 0.6:
            break
    return sorted(placed, key=lambda f: f.at)


def _has(placed: list[Fault], kind: str) -> bool:
    return any(f.kind == kind for f in placed)


def _overlaps(f: Fault, a: float, b: float, gap: float) -> bool:
    """Whether `f` (plus `gap` after it, for the takeover to settle) meets [a, b)."""
    return f.at < b + gap and a < f.end_at + 1.0 + gap


def _free(
    placed: list[Fault], host: str, a: float, b: float, lease: float, hosts: tuple[str, ...]
) -> bool:
    """`host` has no fault then, and some other runner is left without one."""
    clash = [f for f in placed if f.target is not None and _overlaps(f, a, b, lease)]
    if any(f.target == host for f in clash):
        return False
    return len({f.target for f in clash} | {host}) < len(hosts)


def _busy_share(placed: list[Fault], duration: float) -> float:
    return sum(f.length + 1.0 for f in placed) / max(duration, 1.0)
