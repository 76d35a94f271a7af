"""The escalation sweep: reads only tickets and callbacks whose earliest pending deadline has
come (``next_due_at <= now``, an indexed range), warns before a deadline, escalates a late reply
or resolution to the supervisor on duty and then to the manager, and writes the timeline.

Safe to run twice and at once: rows are taken with ``FOR UPDATE SKIP LOCKED`` (two sweeps split
the work), each message is claimed through its unique notification row before it is sent, and the
step counters move in the same transaction as the claims, so a sweep killed halfway leaves
nothing half-done: the next one does the step again and finds the rows already claimed.
"""

from __future__ import annotations

import datetime as dt

from celery import shared_task
from flask import current_app
from sqlalchemy import select, update
from sqlalchemy.orm.attributes import set_committed_value

from app.extensions import db
from models.base import utcnow
from models.desk import (
    NOTIFICATION_KINDS,
    TICKET_KINDS,
    Callback,
    Ticket,
    TicketEvent,
    claim_notifications,
    recipients,
)

STEP_LEVEL = {"warn": 0, "level1": 1, "level2": 2}
BATCH = 500


def _title(ticket: Ticket, which: str, step: str) -> str:
    what = "答复" if which == "reply" else "处理"
    kind = TICKET_KINDS[ticket.kind].zh
    if step == "warn":
        return f"【即将超时】{kind} {ticket.number} {what}时限将到"
    return f"【{NOTIFICATION_KINDS[step].zh}】{kind} {ticket.number} {what}已超时"


def _batch_until_done(one_batch, now: dt.datetime, limit: int) -> int:
    """Run batches (each its own transaction, so a sweep killed halfway keeps what it finished)
    until one takes fewer rows than ``limit``: everything due is handled in this run, not
    ``limit`` rows per beat interval. A row handled gets a later ``next_due_at`` (or none), so it
    is never taken twice by the same ``now``."""
    total = 0
    while True:
        taken, handled = one_batch(now, limit)
        total += handled
        if taken < limit:
            return total


def sweep_tickets(now: dt.datetime, limit: int = BATCH) -> int:
    return _batch_until_done(_ticket_batch, now, limit)


def sweep_callbacks(now: dt.datetime, limit: int = BATCH) -> int:
    return _batch_until_done(_callback_batch, now, limit)


def _ticket_batch(now: dt.datetime, limit: int) -> tuple[int, int]:
    session = db.session
    tickets = (
        session.execute(
            select(Ticket)
            .where(Ticket.next_due_at <= now)
            .order_by(Ticket.next_due_at)
            .limit(limit)
            .with_for_update(skip_locked=True, of=Ticket)
        )
        .scalars()
        .all()
    )
    handled = 0
    people_of: dict[tuple, dict] = {}
    for ticket in tickets:
        steps = {"reply": ticket.reply_steps_done, "resolve": ticket.resolve_steps_done}
        level = ticket.escalation_level
        for which, step, at in ticket.pending_steps():
            if at > now:
                break
            deadline = ticket.reply_due_at if which == "reply" else ticket.resolve_due_at
            # Who is told depends on the level, the estate and the assignee only: ask once per batch.
            key = (STEP_LEVEL[step], ticket.estate_id, ticket.assignee_id if STEP_LEVEL[step] == 0 else None)
            if key not in people_of:
                people_of[key] = recipients(session, key[0], ticket.estate_id, now, assignee=ticket.assignee)
            people = people_of[key]
            title = _title(ticket, which, step)
            ids = claim_notifications(
                session,
                subject_type="ticket",
                subject_id=ticket.id,
                kind=f"{which}_{step}",
                deadline_at=deadline,
                people=people,
                title=title,
                body=ticket.description,
            )
            session.add(
                TicketEvent(
                    ticket_id=ticket.id,
                    kind="warning" if step == "warn" else "escalation",
                    body=title,
                    user_id=None,
                    at=now,
                    data={"deadline": which, "step": step, "notifications": len(ids)},
                )
            )
            steps[which] += 1
            level = max(level, STEP_LEVEL[step])
            handled += 1
        # Loaded values are replaced without history: the ORM must not flush the ticket (that
        # would bump its version and log a change as if a person had edited it).
        set_committed_value(ticket, "reply_steps_done", steps["reply"])
        set_committed_value(ticket, "resolve_steps_done", steps["resolve"])
        pending = ticket.pending_steps()
        set_committed_value(ticket, "next_due_at", pending[0][2] if pending else None)
        # System bookkeeping, not a person's edit: no version bump, so nobody's open form conflicts.
        session.execute(
            update(Ticket)
            .where(Ticket.id == ticket.id)
            .values(
                reply_steps_done=steps["reply"],
                resolve_steps_done=steps["resolve"],
                escalation_level=level,
                next_due_at=ticket.next_due_at,
            )
            .execution_options(synchronize_session=False)
        )
        session.expunge(ticket)
    session.commit()
    return len(tickets), handled


def _callback_batch(now: dt.datetime, limit: int) -> tuple[int, int]:
    session = db.session
    second = int(current_app.config.get("CALLBACK_SECOND_LEVEL_MINUTES", 240))
    callbacks = (
        session.execute(
            select(Callback)
            .where(Callback.next_due_at <= now)
            .order_by(Callback.next_due_at)
            .limit(limit)
            .with_for_update(skip_locked=True, of=Callback)
        )
        .scalars()
        .all()
    )
    for cb in callbacks:
        level = cb.steps_done + 1
        ticket = session.get(Ticket, cb.ticket_id)
        title = f"【回访超时】{ticket.number} 回访未完成"
        ids = claim_notifications(
            session,
            subject_type="callback",
            subject_id=cb.id,
            kind=f"callback_level{level}",
            deadline_at=cb.due_at,
            people=recipients(session, level, ticket.estate_id, now),
            title=title,
            body=ticket.description,
        )
        session.add(
            TicketEvent(
                ticket_id=ticket.id,
                kind="escalation",
                body=title,
                at=now,
                data={"callback": cb.id, "level": level, "notifications": len(ids)},
            )
        )
        set_committed_value(cb, "steps_done", level)
        cb.refresh_next_due(second)
        set_committed_value(cb, "next_due_at", cb.next_due_at)  # no ORM flush, no version bump
        session.execute(
            update(Callback)
            .where(Callback.id == cb.id)
            .values(steps_done=cb.steps_done, next_due_at=cb.next_due_at)
            .execution_options(synchronize_session=False)
        )
        session.expunge(cb)
    session.commit()
    return len(callbacks), len(callbacks)


def sweep(now: dt.datetime | None = None, batch: int = BATCH) -> dict:
    now = now or utcnow()
    return {"tickets": sweep_tickets(now, batch), "callbacks": sweep_callbacks(now, batch)}


@shared_task(name="jobs.escalation.sweep")
def escalation_sweep(now: str | None = None, batch: int = BATCH) -> dict:
    return sweep(dt.datetime.fromisoformat(now) if now else None, batch)
