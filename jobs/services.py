"""Periodic paid services (DESIGN.md item 9): every active ``ServiceSubscription`` gets its orders
for the next ``SERVICE_ORDER_HORIZON_DAYS`` days.

Safe to run twice and to be killed halfway: one transaction per subscription; an order is keyed
by (subscription, start) (a unique constraint), the existing starts are read under a
per-subscription advisory lock on PostgreSQL, so two runs at once create each order once. An
order whose subscribed assignee is already booked in that slot is created unassigned (requested),
with a note, for the desk to schedule.
"""

from __future__ import annotations

import calendar
import datetime as dt

from celery import shared_task
from flask import current_app
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from models.archives import Ownership
from models.base import utcnow
from models.errors import FieldErrors
from models.services import ServiceItem, ServiceOrder, ServiceSubscription, lock_assignee

STEP_DAYS = {"weekly": 7, "biweekly": 14}


def _add_months(day: dt.datetime, months: int) -> dt.datetime:
    month0 = day.month - 1 + months
    year, month = day.year + month0 // 12, month0 % 12 + 1
    return day.replace(year=year, month=month, day=min(day.day, calendar.monthrange(year, month)[1]))


def occurrences(sub: ServiceSubscription, start: dt.datetime, end: dt.datetime, tz) -> list[dt.datetime]:
    """The subscription's visit starts in [start, end), at the same local wall time each time."""
    first = sub.first_start.astimezone(tz)
    last = min(end, sub.until) if sub.until is not None else end
    result = []
    n = 0
    while True:
        if sub.recurrence == "monthly":
            local = _add_months(first, n)
        else:
            local = first + dt.timedelta(days=STEP_DAYS.get(sub.recurrence, 7) * n)
        when = local.replace(tzinfo=None).replace(tzinfo=tz).astimezone(dt.UTC)
        if when >= last:
            break
        if when >= start:
            result.append(when)
        n += 1
        if n > 100000:  # a first start centuries ago: never loop forever
            break
    return result


def _owner_of(session, unit_id: int) -> int | None:
    today = dt.date.today()
    return session.execute(
        select(Ownership.owner_id)
        .where(Ownership.unit_id == unit_id, (Ownership.until.is_(None)) | (Ownership.until >= today))
        .order_by(Ownership.share.desc(), Ownership.id)
        .limit(1)
    ).scalar()


def _generate_for(session, sub: ServiceSubscription, start, end, tz) -> tuple[int, int, int]:
    """(created, existing, unassigned) for one subscription, in the caller's transaction."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"desk.service_sub:{sub.id}"})
    wanted = occurrences(sub, start, end, tz)
    if not wanted:
        return 0, 0, 0
    have = set(
        session.execute(
            select(ServiceOrder.requested_start).where(
                ServiceOrder.subscription_id == sub.id,
                ServiceOrder.requested_start >= wanted[0],
                ServiceOrder.requested_start <= wanted[-1],
            )
        ).scalars()
    )
    created = unassigned = 0
    owner_id = _owner_of(session, sub.unit_id)
    for when in wanted:
        if when in have:
            continue
        lock_assignee(session, sub.assignee_id)
        order = ServiceOrder(
            item_id=sub.item_id,
            unit_id=sub.unit_id,
            owner_id=owner_id,
            subscription_id=sub.id,
            requested_start=when,
            requested_end=when + dt.timedelta(minutes=sub.duration_minutes or 60),
            assignee_id=sub.assignee_id,
            status="scheduled" if sub.assignee_id else "requested",
        )
        with session.no_autoflush:
            session.add(order)
            clash = order.double_booking()
        if clash is not None:
            order.assignee_id = None
            order.status = "requested"
            order.note = (
                f"定期服务原定人员在此时段已有服务单 {clash.number}，请重新排期 / "
                f"the subscribed assignee already has order {clash.number} in this slot: schedule again"
            )
            unassigned += 1
        created += 1
    return created, len(wanted) - created, unassigned


def generate_orders(session, now: dt.datetime | None = None, horizon_days: int | None = None) -> dict:
    from zoneinfo import ZoneInfo

    now = now or utcnow()
    if horizon_days is None:
        horizon_days = int(current_app.config.get("SERVICE_ORDER_HORIZON_DAYS", 14))
    tz = ZoneInfo(current_app.config.get("DISPLAY_TIMEZONE", "Asia/Shanghai"))
    end = now + dt.timedelta(days=horizon_days)
    sub_ids = (
        session.execute(
            select(ServiceSubscription.id)
            .join(ServiceItem, ServiceItem.id == ServiceSubscription.item_id)
            .where(
                ServiceSubscription.active.is_(True),
                ServiceItem.active.is_(True),
                ServiceSubscription.first_start < end,
                (ServiceSubscription.until.is_(None)) | (ServiceSubscription.until > now),
            )
            .order_by(ServiceSubscription.id)
        )
        .scalars()
        .all()
    )
    totals = {"subscriptions": len(sub_ids), "created": 0, "existing": 0, "unassigned": 0, "failed": 0}
    for sub_id in sub_ids:
        try:
            sub = session.get(ServiceSubscription, sub_id)
            created, existing, unassigned = _generate_for(session, sub, now, end, tz)
            session.commit()
        except (IntegrityError, FieldErrors):
            # Another run created one first (the unique key), or the row broke a rule: the next
            # run picks it up again.
            session.rollback()
            totals["failed"] += 1
            continue
        totals["created"] += created
        totals["existing"] += existing
        totals["unassigned"] += unassigned
    return totals


@shared_task(name="jobs.services.generate_periodic_orders")
def generate_periodic_orders(horizon_days: int | None = None) -> dict:
    return generate_orders(db.session, horizon_days=horizon_days)
