"""What a runner hears of other connections' commits (PostgreSQL LISTEN/NOTIFY, migration 7):
the kind of each change, and nothing for the changes no runner acts on (a claim, a pid, a
fire moving a job on). With every commit heard, the chaos suite's baseline showed each
runner's loop woken by every other runner's claims and ends, never sleeping."""

from __future__ import annotations

import threading
import time

from jobctl.models import Job, Run
from jobctl.records import replace
from jobctl.store.base import CHANGE_KINDS, Fire
from jobctl.store.postgres import PostgresStore
from tests.waiting import DEADLINE_S, wait_for


def job(name: str, **kw) -> Job:  # type: ignore[no-untyped-def]
    kw.setdefault("next_run_at", 1000.0)
    return Job(name=name, command=["true"], created_at=1.0, updated_at=1.0, **kw)


def after(listener: PostgresStore, other: PostgresStore, action) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """The kinds `action` (on `other`) notified, read as payloads on a LISTEN connection of
    the test's own: a job edit from a third connection follows the action as a marker, and
    notifications are delivered in commit order, so once the marker's has arrived, the
    action's have. (`listener`: the store whose changed() counts must agree.)"""
    import psycopg

    from jobctl.store.pg_schema import CHANGE_LETTERS

    kind_of = {letter: kind for kind, letter in CHANGE_LETTERS.items()}
    assert other.conn is not None and other.url
    raw = psycopg.connect(other.url, autocommit=True)
    raw.execute(psycopg.sql.SQL("LISTEN {}").format(other._channel))
    marker = PostgresStore(other.url)
    assert marker.conn is not None
    before = {kind: listener.changed((kind,)) for kind in CHANGE_KINDS}
    action()
    marker.update_jobs(["marker"], lambda j: replace(j, description=f"{time.monotonic()}"))
    heard: dict[str, int] = {}
    sender, marked = other.conn.info.backend_pid, marker.conn.info.backend_pid
    done = False
    while not done:
        for note in raw.notifies(timeout=DEADLINE_S, stop_after=1):
            if note.pid == marked:
                done = True
            elif note.pid == sender:
                for letter in note.payload:
                    heard[kind_of[letter]] = heard.get(kind_of[letter], 0) + 1
    raw.close()
    marker.close()
    # the store's own counts, per kind, moved by what was heard (and the marker's "jobs")
    wait_for(lambda: listener.changed(("jobs",)) > before["jobs"] + heard.get("jobs", 0))
    for kind in CHANGE_KINDS:
        assert listener.changed((kind,)) - before[kind] == heard.get(kind, 0) + (kind == "jobs")
    return heard


def pick_all(queued, running, jobs, limit):  # type: ignore[no-untyped-def]
    return queued[:limit], []


def test_each_kind_of_change_is_heard_as_its_kind_and_claims_as_nothing(pg_url: str) -> None:
    me, other = PostgresStore(pg_url), PostgresStore(pg_url)
    other.add_job(job("marker"))
    other.add_job(job("a"))
    me.changed()  # starts listening
    assert after(me, other, lambda: other.add_job(job("b"))) == {"jobs": 1}
    queued = Run(job="a", scheduled_for=5.0, not_before=0.0)
    assert after(me, other, lambda: other.add_run(queued)) == {"queued": 1}
    claimed: list = []
    assert after(me, other, lambda: claimed.extend(
        other.claim("o", "h", time.time(), 5, pick_all))) == {}  # fmt: skip
    run, _ = claimed[0]
    started = replace(run, pid=123, proc_start=5, started_at=6.0)
    assert after(me, other, lambda: other.mark_started_all([started])) == {}
    assert after(me, other, lambda: other.update_run(run.id, cancel_requested_at=7.0)) == {
        "cancel": 1
    }
    ended = replace(started, status="succeeded", finished_at=8.0, exit_code=0)
    retry = Run(job="a", scheduled_for=5.0, attempt=2, not_before=9.0)
    assert after(me, other, lambda: other.finish_run(ended, retry)) == {"ended": 1, "queued": 1}
    me.close()
    other.close()


def test_a_fire_moving_a_job_on_wakes_nobody_but_an_edit_or_an_earlier_time_does(
    pg_url: str,
) -> None:
    me, other = PostgresStore(pg_url), PostgresStore(pg_url)
    other.add_job(job("marker"))
    j = other.add_job(job("tick", next_run_at=1000.0))
    me.changed()
    skipped = Run(job="tick", scheduled_for=1000.0, status="skipped", finished_at=1000.0)
    fire = Fire(j, [skipped], 1001.0, {})
    assert after(me, other, lambda: other.fire_all([fire])) == {}
    assert after(me, other, lambda: other.update_jobs(
        ["tick"], lambda x: replace(x, next_run_at=900.0))) == {"jobs": 1}  # fmt: skip
    assert after(me, other, lambda: other.update_jobs(
        ["tick"], lambda x: replace(x, state="paused"))) == {"jobs": 1}  # fmt: skip
    assert after(me, other, lambda: other.remove_job("tick")) == {"jobs": 1}
    me.close()
    other.close()


def test_wait_for_change_sleeps_through_kinds_it_was_not_asked_for(pg_url: str) -> None:
    me, other = PostgresStore(pg_url), PostgresStore(pg_url)
    other.add_job(job("a"))
    me.changed()
    # a queued run while we only want edits of jobs: slept through, until the edit comes
    threading.Timer(0.2, lambda: other.add_run(Run(job="a", scheduled_for=1.0))).start()
    threading.Timer(0.6, lambda: other.add_job(job("b"))).start()
    t0 = time.monotonic()
    me.wait_for_change(30, kinds=("jobs",))
    assert 0.5 <= time.monotonic() - t0 < 29
    # ... and woken by one when asked for it
    threading.Timer(0.2, lambda: other.add_run(Run(job="a", scheduled_for=2.0))).start()
    t0 = time.monotonic()
    me.wait_for_change(30, kinds=("queued",))
    assert time.monotonic() - t0 < 29
    me.close()
    other.close()
