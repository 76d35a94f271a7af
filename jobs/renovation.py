"""Renovation jobs (DESIGN.md item 8), each safe to run twice and at once:

- ``inspection_reminders``: an active renovation whose inspection is due (``next_inspection_on``,
  every RENOVATION_INSPECTION_DAYS days, moved on by each recorded inspection) is told to Staff and
  Supervisors; one reminder per renovation and local day (the notification's unique key).
- ``overdue_alerts``: works past their planned end and not yet accepted are told to the supervisor
  (on duty, else all) once per renovation and day; ``overdue_alerted_on`` records the day.
- ``rectification_sweep``: an open rectification order past its deadline escalates like a late
  ticket: to the supervisor, then (RECTIFICATION_SECOND_LEVEL_HOURS later) to the manager. The
  step counter and the claims move in one transaction; rows are taken ``FOR UPDATE SKIP LOCKED``.

Every function takes ``now`` (an injected clock for tests and ``flask desk run-job``).
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from celery import shared_task
from flask import current_app
from sqlalchemy import select, update

from app.extensions import db
from models.base import utcnow
from models.desk import claim_notifications, recipients, supervisors_on_duty, users_with_role
from models.renovation import RectificationOrder, Renovation, local_today

BATCH = 500


def _day_start(day: dt.date) -> dt.datetime:
    """The start of a local day, as the UTC moment that keys a once-a-day notification."""
    tz = ZoneInfo(current_app.config.get("DISPLAY_TIMEZONE", "Asia/Shanghai"))
    return dt.datetime.combine(day, dt.time(0, 0), tzinfo=tz).astimezone(dt.UTC)


def _estate_id(renovation: Renovation) -> int | None:
    return renovation.unit.estate_id if renovation.unit is not None else None


def inspection_reminders(now: dt.datetime | None = None) -> int:
    """Remind Staff and Supervisors of the inspections due today. Returns notifications made."""
    now = now or utcnow()
    today = local_today(now)
    session = db.session
    due = (
        session.execute(
            select(Renovation)
            .where(Renovation.status == "active", Renovation.next_inspection_on <= today)
            .order_by(Renovation.id)
        )
        .scalars()
        .all()
    )
    made = 0
    for r in due:
        estate_id = _estate_id(r)  # the staff and supervisors of that estate
        people = {
            "Staff": users_with_role(session, "Staff", estate_id),
            "Supervisor": users_with_role(session, "Supervisor", estate_id),
        }
        unit = r.unit.code if r.unit is not None else ""
        made += len(
            claim_notifications(
                session,
                subject_type="renovation",
                subject_id=r.id,
                kind="reno_inspection",
                deadline_at=_day_start(today),
                people=people,
                title=f"【装修巡查】{unit} {r.number} 今日应巡查",
                body=f"{r.contractor} {r.person_in_charge}；计划 {r.planned_start} 至 {r.planned_end}",
            )
        )
    session.commit()
    return made


def overdue_alerts(now: dt.datetime | None = None) -> int:
    """Tell the supervisor of works past their planned end and not accepted, once a day."""
    now = now or utcnow()
    today = local_today(now)
    session = db.session
    late = (
        session.execute(
            select(Renovation)
            .where(
                Renovation.status.in_(("active", "completed", "failed")),
                Renovation.planned_end < today,
                (Renovation.overdue_alerted_on.is_(None)) | (Renovation.overdue_alerted_on < today),
            )
            .order_by(Renovation.id)
            .with_for_update(skip_locked=True, of=Renovation)
        )
        .scalars()
        .all()
    )
    made = 0
    for r in late:
        unit = r.unit.code if r.unit is not None else ""
        made += len(
            claim_notifications(
                session,
                subject_type="renovation",
                subject_id=r.id,
                kind="reno_overdue",
                deadline_at=_day_start(today),
                people={"Supervisor": supervisors_on_duty(session, _estate_id(r), now)},
                title=f"【装修超期】{unit} {r.number} 已超过计划完工日期 {r.planned_end}",
                body=f"{r.contractor} {r.person_in_charge}",
            )
        )
        # Bookkeeping, not a person's edit: no version bump, nobody's open form conflicts.
        session.execute(
            update(Renovation)
            .where(Renovation.id == r.id)
            .values(overdue_alerted_on=today)
            .execution_options(synchronize_session=False)
        )
        session.expunge(r)
    session.commit()
    return made


def _rectification_batch(now: dt.datetime, limit: int) -> tuple[int, int]:
    session = db.session
    second = dt.timedelta(hours=int(current_app.config.get("RECTIFICATION_SECOND_LEVEL_HOURS", 24)))
    orders = (
        session.execute(
            select(RectificationOrder)
            .where(RectificationOrder.next_due_at <= now)
            .order_by(RectificationOrder.next_due_at)
            .limit(limit)
            .with_for_update(skip_locked=True, of=RectificationOrder)
        )
        .scalars()
        .all()
    )
    handled = 0
    for order in orders:
        next_due = None
        steps = order.steps_done
        if order.status == "open" and steps < 2:
            level = steps + 1
            renovation = session.get(Renovation, order.renovation_id)
            unit = renovation.unit.code if renovation.unit is not None else ""
            who = "主管" if level == 1 else "经理"
            claim_notifications(
                session,
                subject_type="rectification",
                subject_id=order.id,
                kind=f"rect_level{level}",
                deadline_at=order.deadline,
                people=recipients(session, level, _estate_id(renovation), now),
                title=f"【整改超时·升级至{who}】{unit} {renovation.number} 整改未按期完成",
                body=order.description,
            )
            steps = level
            handled += 1
            if level == 1:
                next_due = order.deadline + second
        session.execute(
            update(RectificationOrder)
            .where(RectificationOrder.id == order.id)
            .values(steps_done=steps, next_due_at=next_due)
            .execution_options(synchronize_session=False)
        )
        session.expunge(order)
    session.commit()
    return len(orders), handled


def rectification_sweep(now: dt.datetime | None = None, limit: int = BATCH) -> int:
    """Escalate late rectification orders; returns the escalation steps taken."""
    now = now or utcnow()
    total = 0
    while True:
        taken, handled = _rectification_batch(now, limit)
        total += handled
        if taken < limit:
            return total


def _when(now: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(now) if now else None


@shared_task(name="jobs.renovation.inspection_reminders")
def inspection_reminders_task(now: str | None = None) -> int:
    return inspection_reminders(_when(now))


@shared_task(name="jobs.renovation.overdue_alerts")
def overdue_alerts_task(now: str | None = None) -> int:
    return overdue_alerts(_when(now))


@shared_task(name="jobs.renovation.rectification_sweep")
def rectification_sweep_task(now: str | None = None) -> int:
    return rectification_sweep(_when(now))
