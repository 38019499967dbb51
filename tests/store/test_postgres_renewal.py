"""A runner's lease renewal and a store's opening, each in as few round trips as they can:
over a slow link (the chaos suite's latency faults, 0.7-1.3 s each way) a renewal of two
round trips plus a reconnection of seven outlasted half the lease, and the runner fenced
itself. renew_lease() renews and reads the database's clock in one statement; the session
settings go in one simple query."""

from __future__ import annotations

from jobctl.store.base import RunnerInfo
from jobctl.store.postgres import DEAD_LINK_S, PostgresStore


def test_renew_lease_renews_and_reads_the_clock_in_one_statement(pg_url: str) -> None:
    store = PostgresStore(pg_url)
    t = store.now()
    epoch = store.register_runner(RunnerInfo(owner="h1:1:1", pid=1, host="h1", since=t,
                                             heartbeat_at=t, lease_expires_at=t + 2))  # fmt: skip
    held, at = store.renew_lease("h1:1:1", 60.0, epoch)
    assert held and at >= t
    (me,) = [r for r in store.runners() if r.owner == "h1:1:1"]
    assert me.lease_expires_at == at + 60.0  # renewed from the clock it returned
    assert store.renew_lease("h1:1:1", 60.0, epoch + 1)[0] is False  # another epoch's lease
    assert store.renew_lease("nobody", 60.0, None)[0] is False
    assert store.conn is not None
    store.conn.execute("UPDATE runner SET lease_expires_at = 0 WHERE owner = 'h1:1:1'")
    held, later = store.renew_lease("h1:1:1", 60.0, epoch)
    assert held is False and later >= at  # expired: fenced, and the clock still read
    store.close()


def test_a_store_connection_carries_every_session_setting(pg_url: str) -> None:
    store = PostgresStore(pg_url, lock_timeout_s=7.5)
    assert store.conn is not None
    shown = {name: store.conn.execute(f"SHOW {name}").fetchone() for name in (
        "lock_timeout", "idle_in_transaction_session_timeout", "tcp_keepalives_idle",
        "tcp_keepalives_interval", "tcp_keepalives_count")}  # fmt: skip
    values = {name: next(iter(row.values())) for name, row in shown.items() if row}
    assert values == {
        "lock_timeout": "7500ms",
        "idle_in_transaction_session_timeout": f"{DEAD_LINK_S}s",
        "tcp_keepalives_idle": str(DEAD_LINK_S),
        "tcp_keepalives_interval": "1",
        "tcp_keepalives_count": str(DEAD_LINK_S),
    }
    store.close()
