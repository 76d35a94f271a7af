"""The escalation sweep on the real services: two sweeps at once, a worker killed halfway, and an
unanswered ticket escalated by a real worker and beat within a minute of its deadline.

Tickets are inserted with Core (``benchmarks.sla_sweep.insert_tickets``: one ``INSERT ... SELECT
generate_series``, deadlines and ``next_due_at`` as the model computes them), so hundreds of due
tickets cost milliseconds to make.
"""

from __future__ import annotations

import collections
import datetime as dt
import os
import signal
import threading
import time

import pytest
import redis
from sqlalchemy import func, select

from benchmarks.sla_sweep import insert_tickets
from tests.conftest import REDIS_URL
from tests.workers import celery_worker, new_queue, routed_to

pytestmark = pytest.mark.services

UTC = dt.UTC


# --- helpers ---------------------------------------------------------------------------------
def make_due_tickets(app, n: int, reply_due_at: dt.datetime, warn_minutes: int = 2) -> list[int]:
    from app.extensions import db
    from models.base import system_user_id

    with app.app_context():
        ids = insert_tickets(
            db.session, n, reply_due_at=reply_due_at, user_id=system_user_id(db.session), warn_minutes=warn_minutes
        )
        db.session.commit()
        db.session.remove()
    return ids


def notification_keys(app, ids: list[int]) -> list[tuple]:
    from app.extensions import db
    from models.desk import Notification

    with app.app_context():
        rows = db.session.execute(
            select(
                Notification.subject_id,
                Notification.kind,
                Notification.deadline_at,
                Notification.recipient,
                Notification.channel,
            ).where(Notification.subject_type == "ticket", Notification.subject_id.in_(ids))
        ).all()
        db.session.remove()
    return [tuple(r) for r in rows]


def timeline_steps(app, ids: list[int]) -> collections.Counter:
    """(ticket, deadline, step) -> how many warning/escalation events the timeline has."""
    from app.extensions import db
    from models.desk import TicketEvent

    with app.app_context():
        rows = db.session.execute(
            select(TicketEvent.ticket_id, TicketEvent.data).where(
                TicketEvent.ticket_id.in_(ids), TicketEvent.kind.in_(("warning", "escalation"))
            )
        ).all()
        db.session.remove()
    return collections.Counter((tid, data["deadline"], data["step"]) for tid, data in rows)


def ticket_state(app, ids: list[int]) -> dict[int, tuple]:
    from app.extensions import db
    from models.desk import Ticket

    with app.app_context():
        rows = db.session.execute(
            select(
                Ticket.id,
                Ticket.reply_steps_done,
                Ticket.resolve_steps_done,
                Ticket.escalation_level,
                Ticket.version,
                Ticket.next_due_at,
            ).where(Ticket.id.in_(ids))
        ).all()
        db.session.remove()
    return {r[0]: tuple(r[1:]) for r in rows}


def expected_keys(app, ids: list[int], steps: list[tuple[str, str]], now: dt.datetime) -> set[tuple]:
    """What the sweep must have claimed: for each ticket and (deadline, step), one inbox row per
    recipient ``models.desk.recipients`` names (no routes are configured in these tests)."""
    from app.extensions import db
    from jobs.escalation import STEP_LEVEL
    from models.desk import NotificationRoute, Ticket, recipients

    out = set()
    with app.app_context():
        assert not db.session.execute(select(NotificationRoute.id).where(NotificationRoute.active)).first()
        tickets = db.session.execute(select(Ticket).where(Ticket.id.in_(ids))).scalars().all()
        for t in tickets:
            for which, step in steps:
                due = t.reply_due_at if which == "reply" else t.resolve_due_at
                people = recipients(db.session, STEP_LEVEL[step], t.estate_id, now)
                for users in people.values():
                    for u in users:
                        out.add((t.id, f"{which}_{step}", due, f"user:{u.id}", "inbox"))
        db.session.remove()
    return out


def assert_exactly_once(app, ids, steps, now):
    keys = notification_keys(app, ids)
    dupes = [k for k, c in collections.Counter(keys).items() if c > 1]
    assert not dupes, f"duplicate notifications: {dupes[:5]}"
    want = expected_keys(app, ids, steps, now)
    missing = want - set(keys)
    assert not missing, f"{len(missing)} notifications skipped, e.g. {sorted(missing)[:3]}"
    assert set(keys) == want
    events = timeline_steps(app, ids)
    want_events = {(tid, which, step) for tid in ids for which, step in steps}
    assert set(events) == want_events, "timeline steps missing or unexpected"
    assert all(c == 1 for c in events.values()), f"timeline steps twice: {[k for k, c in events.items() if c > 1][:5]}"


def wait_for(predicate, timeout: float, worker=None, what: str = "condition", interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if worker is not None and not worker.alive():
            pytest.fail(f"worker died while waiting for {what}:\n{worker.log()}")
        time.sleep(interval)
    pytest.fail(f"{what} not reached within {timeout} s" + (f"; worker log:\n{worker.log()}" if worker else ""))


def steps_done(app, ids: list[int], reply: int, resolve: int = 0) -> int:
    """How many of ``ids`` have at least these step counters (committed)."""
    from app.extensions import db
    from models.desk import Ticket

    with app.app_context():
        n = db.session.execute(
            select(func.count()).where(
                Ticket.id.in_(ids), Ticket.reply_steps_done >= reply, Ticket.resolve_steps_done >= resolve
            )
        ).scalar()
        db.session.remove()
    return n


@pytest.fixture()
def scratch_queue():
    """A queue nobody consumes, for the deliveries a sweep queues when delivery is not the subject."""
    queue = new_queue()
    with routed_to(queue):
        yield queue
    redis.Redis.from_url(REDIS_URL).delete(queue)


# --- 1. two sweeps at once ---------------------------------------------------------------------
def test_two_concurrent_sweeps_escalate_each_step_exactly_once(app, scratch_queue):
    from jobs.escalation import sweep

    n = 200
    reply_due = dt.datetime.now(UTC) - dt.timedelta(minutes=1)
    ids = make_due_tickets(app, n, reply_due)
    now = reply_due + dt.timedelta(seconds=30)
    before = ticket_state(app, ids)

    barrier = threading.Barrier(2)
    results, errors = [], []

    def run():
        try:
            with app.app_context():
                barrier.wait(timeout=10)
                # Small batches, so the two really interleave instead of one taking everything.
                results.append(sweep(now=now, batch=20))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert len(results) == 2

    assert_exactly_once(app, ids, [("reply", "warn"), ("reply", "level1")], now)
    state = ticket_state(app, ids)
    for tid in ids:
        reply_steps, resolve_steps, level, version, next_due = state[tid]
        assert (reply_steps, resolve_steps, level) == (2, 0, 1), tid
        # System bookkeeping must not bump the version (nobody's open form should conflict).
        assert version == before[tid][3], f"ticket {tid}: version {before[tid][3]} -> {version}"
        assert next_due == reply_due + dt.timedelta(minutes=30)  # level 2 next
    # Both sweeps did part of the work.
    print(f"two sweeps: {results}")

    # Another sweep at the same moment: nothing new.
    keys, events = sorted(notification_keys(app, ids)), timeline_steps(app, ids)
    with app.app_context():
        sweep(now=now)
    assert sorted(notification_keys(app, ids)) == keys
    assert timeline_steps(app, ids) == events


# --- 2. a worker killed halfway ------------------------------------------------------------------
def test_worker_killed_halfway_leaves_no_duplicate_and_no_gap(app, database_url, tmp_path, scratch_queue):
    from celery import current_app

    n = 1200
    batch = 20
    reply_due = dt.datetime.now(UTC) - dt.timedelta(minutes=1)
    ids = make_due_tickets(app, n, reply_due)
    queue = new_queue()
    env = {"DESK_TEST_DELIVERY_QUEUE": scratch_queue}
    celery = current_app._get_current_object()
    try:
        # (a) the pool process running the sweep is SIGKILLed: the parent re-queues the task
        # (acks_late + reject_on_worker_lost) and a new pool process runs it again.
        now1 = reply_due + dt.timedelta(seconds=30)
        with celery_worker(tmp_path, database_url, REDIS_URL, queue, pool="prefork", concurrency=1, env=env) as w:
            celery.send_task("jobs.escalation.sweep", kwargs={"now": now1.isoformat(), "batch": batch}, queue=queue)
            partial = wait_for(
                lambda: (k := steps_done(app, ids, 2)) >= 3 * batch and k, 60, w, "the first batches committed", 0.02
            )
            children = w.children()
            assert len(children) == 1, children
            os.kill(children[0], signal.SIGKILL)
            killed_at = steps_done(app, ids, 2)
            assert killed_at < n, "the sweep finished before it could be killed: make it bigger"
            wait_for(lambda: steps_done(app, ids, 2) == n, 180, w, "all reply steps after the redelivery", 0.5)
            log = w.log(100000)
        assert "WorkerLostError" in log or "SIGKILL" in log or "signal 9" in log, log[-3000:]
        assert_exactly_once(app, ids, [("reply", "warn"), ("reply", "level1")], now1)
        print(f"pool process killed after {partial}..{killed_at} of {n} tickets; redelivered and finished")

        # (b) the whole worker is SIGKILLed mid-sweep (nothing acknowledged, nothing re-queued for
        # an hour); a new worker runs the next sweep and finishes the job.
        now2 = reply_due + dt.timedelta(days=1, seconds=30)  # reply level 2, resolve warn + level 1
        with celery_worker(tmp_path, database_url, REDIS_URL, queue, pool="prefork", concurrency=1, env=env) as w:
            celery.send_task("jobs.escalation.sweep", kwargs={"now": now2.isoformat(), "batch": batch}, queue=queue)
            wait_for(lambda: steps_done(app, ids, 3, 2) >= 3 * batch, 60, w, "the first batches committed", 0.02)
            w.kill()
        killed_at = steps_done(app, ids, 3, 2)
        assert killed_at < n, "the sweep finished before it could be killed: make it bigger"
        with celery_worker(tmp_path, database_url, REDIS_URL, queue, pool="prefork", concurrency=1, env=env) as w:
            celery.send_task("jobs.escalation.sweep", kwargs={"now": now2.isoformat(), "batch": batch}, queue=queue)
            wait_for(lambda: steps_done(app, ids, 3, 2) == n, 180, w, "all steps after a new worker's sweep", 0.5)
        assert_exactly_once(
            app,
            ids,
            [("reply", "warn"), ("reply", "level1"), ("reply", "level2"), ("resolve", "warn"), ("resolve", "level1")],
            now2,
        )
        state = ticket_state(app, ids)
        assert {s[:3] for s in state.values()} == {(3, 2, 2)}
        print(f"worker killed after {killed_at} of {n} tickets; a new worker finished the rest")
    finally:
        redis.Redis.from_url(REDIS_URL).delete(queue)


# --- 3. real worker and beat: escalated within a minute --------------------------------------
def test_unanswered_ticket_escalates_within_a_minute_with_worker_and_beat(app, database_url, tmp_path):
    from app.extensions import db
    from models.desk import Notification

    queue = new_queue()
    try:
        with celery_worker(
            tmp_path,
            database_url,
            REDIS_URL,
            queue,
            pool="prefork",
            concurrency=1,
            beat=True,
            env={"DESK_ESCALATION_SWEEP_SECONDS": "5"},
        ) as w:
            # No warning step (warn 0): the reply falls due a few seconds from now.
            reply_due = dt.datetime.now(UTC) + dt.timedelta(seconds=5)
            (tid,) = make_due_tickets(app, 1, reply_due, warn_minutes=0)

            def level1():
                with app.app_context():
                    row = db.session.execute(
                        select(Notification.created_at, Notification.state).where(
                            Notification.subject_id == tid, Notification.kind == "reply_level1"
                        )
                    ).first()
                    db.session.remove()
                return row

            created_at, _state = wait_for(level1, 90, w, "the level-1 notification", 0.25)
            latency = (created_at - reply_due).total_seconds()
            # The worker delivers the inbox row it queued.
            wait_for(lambda: level1()[1] == "sent", 30, w, "the inbox row delivered", 0.25)
            log = w.log(100000)
        assert "beat: Starting" in log or "Scheduler" in log
        print(f"escalation latency with worker + beat (sweep every 5 s): {latency:.2f} s")
        assert 0 <= latency < 60
        state = ticket_state(app, [tid])[tid]
        assert state[0] == 1 and state[2] == 1  # level-1 step done, escalation level 1
    finally:
        redis.Redis.from_url(REDIS_URL).delete(queue)
