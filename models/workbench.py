"""The office's day (工作台): the named views of a list a clerk works from (mine, overdue,
escalated, today...) and the figures of the day and the month.

A *preset* is a condition on a model's rows for a person at a moment, declared once here: the
list behind it (``?preset=<name>`` on the screen, the API and the export; views/presets.py) and
the workbench's count of it (views/workbench.py) use the same condition, so a tile never says 7
where its list shows 6. Counts are one statement per table (``count(*) FILTER (WHERE ...)``),
inside the user's estates (models/scope.py).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import case, func, or_, select, true

from app.i18n import T
from models.arrears import BUCKETS, _arrears_where, _bucket_sums, outstanding_expr
from models.base import utcnow
from models.desk import OPEN_STATUSES, Callback, DutyShift, Notification, Ticket
from models.fees import Bill, FeeStandard
from models.registers import compliance_conditions
from models.renovation import RectificationOrder, Renovation
from models.scope import scope_clause
from models.services import ServiceOrder

REPLY_SOON = dt.timedelta(minutes=30)  # "about to miss the reply deadline"


@dataclass(frozen=True)
class Moment:
    """Who is asking and when: the day and the month are the office's (Asia/Shanghai), as UTC."""

    user_id: int
    now: dt.datetime
    day_start: dt.datetime
    day_end: dt.datetime
    month_start: dt.datetime
    today: dt.date
    period: str  # the billing period of this month, "2026-11"


def moment(user_id: int, now: dt.datetime | None = None, tz: ZoneInfo | None = None) -> Moment:
    now = now or utcnow()
    tz = tz or ZoneInfo("Asia/Shanghai")
    local = now.astimezone(tz)
    day = dt.datetime.combine(local.date(), dt.time(), tz)
    month = day.replace(day=1)
    return Moment(
        user_id=user_id,
        now=now,
        day_start=day.astimezone(dt.UTC),
        day_end=(day + dt.timedelta(days=1)).astimezone(dt.UTC),
        month_start=month.astimezone(dt.UTC),
        today=local.date(),
        period=f"{local:%Y-%m}",
    )


@dataclass(frozen=True)
class Preset:
    """A named view of a list: its label and its condition for a moment."""

    name: str
    label: T
    where: Callable[[Moment], object]


def _open_ticket(m: Moment):
    return Ticket.status.in_(OPEN_STATUSES) & Ticket.archived_at.is_(None)


def ticket_deadline():
    """The deadline a request is working to now: the reply until it is answered, then the
    resolution (not the next escalation step, which the sweep keeps in ``next_due_at``)."""
    return case((Ticket.replied_at.is_(None), Ticket.reply_due_at), else_=Ticket.resolve_due_at)


# model -> its presets, in the order a list offers them
PRESETS: dict[type, tuple[Preset, ...]] = {
    Ticket: (
        Preset("mine", T("我的待办", "Mine"), lambda m: _open_ticket(m) & (Ticket.assignee_id == m.user_id)),
        Preset("overdue", T("已超时", "Overdue"), lambda m: _open_ticket(m) & (ticket_deadline() < m.now)),
        Preset(
            "reply_soon",
            T("即将超时未答复", "Reply due soon"),
            lambda m: _open_ticket(m)
            & Ticket.replied_at.is_(None)
            & (Ticket.reply_due_at >= m.now)
            & (Ticket.reply_due_at < m.now + REPLY_SOON),
        ),
        Preset("escalated", T("已升级", "Escalated"), lambda m: _open_ticket(m) & (Ticket.escalation_level >= 1)),
        Preset("level2", T("二级升级", "Second level"), lambda m: _open_ticket(m) & (Ticket.escalation_level >= 2)),
        Preset("unassigned", T("未分派", "Unassigned"), lambda m: _open_ticket(m) & Ticket.assignee_id.is_(None)),
        Preset(
            "today",
            T("今日受理", "Received today"),
            lambda m: (Ticket.received_at >= m.day_start) & (Ticket.received_at < m.day_end),
        ),
        Preset("month", T("本月受理", "This month"), lambda m: Ticket.received_at >= m.month_start),
    ),
    Callback: (
        Preset(
            "due_today",
            T("今日待回访", "Due today"),
            lambda m: (Callback.status == "pending") & (Callback.due_at < m.day_end),
        ),
    ),
    ServiceOrder: (
        Preset(
            "today",
            T("今日上门", "Today"),
            lambda m: ServiceOrder.status.in_(("scheduled", "in_progress"))
            & (ServiceOrder.requested_start >= m.day_start)
            & (ServiceOrder.requested_start < m.day_end),
        ),
    ),
    Renovation: (
        Preset(
            "inspection_due",
            T("待巡查", "Inspection due"),
            lambda m: (Renovation.status == "active") & (Renovation.next_inspection_on <= m.today),
        ),
        Preset("awaiting_approval", T("待审批", "Awaiting approval"), lambda m: Renovation.status == "applied"),
    ),
    RectificationOrder: (
        Preset(
            "overdue",
            T("逾期未整改", "Overdue"),
            lambda m: (RectificationOrder.status == "open") & (RectificationOrder.deadline < m.now),
        ),
    ),
    FeeStandard: (
        Preset("awaiting_approval", T("待审批", "Awaiting approval"), lambda m: FeeStandard.status == "declared"),
    ),
    Notification: (
        Preset(
            "unread",
            T("未读", "Unread"),
            lambda m: (Notification.user_id == m.user_id)
            & (Notification.channel == "inbox")
            & Notification.read_at.is_(None),
        ),
    ),
    DutyShift: (
        Preset(
            "today",
            T("今日值班", "On duty today"),
            lambda m: (DutyShift.starts_at < m.day_end) & (DutyShift.ends_at > m.day_start),
        ),
    ),
}


def presets_of(model) -> dict[str, Preset]:
    return {p.name: p for p in PRESETS.get(model, ())}


def preset_counts(session, model, names, m: Moment, scope=true()) -> dict[str, int]:
    """How many rows each named preset of ``model`` holds, in one statement."""
    presets = presets_of(model)
    conditions = {n: presets[n].where(m) for n in names}
    cols = [func.count().filter(c).label(n) for n, c in conditions.items()]
    # Only the rows some preset counts are read: each condition has its index (open requests by
    # status, this month's by received time...), and PostgreSQL ORs their bitmaps.
    row = session.execute(select(*cols).select_from(model).where(scope, or_(*conditions.values()))).one()
    return dict(row._mapping)


def my_open_tickets(session, m: Moment, scope=true(), limit: int = 10) -> list[tuple[Ticket, dt.datetime | None]]:
    """The signed-in clerk's open requests with the deadline each works to, overdue first, then
    the nearest deadline."""
    where = presets_of(Ticket)["mine"].where(m)
    deadline = ticket_deadline()
    return [
        (t, due)
        for t, due in session.execute(
            select(Ticket, deadline.label("deadline"))
            .where(where, scope)
            .order_by(deadline.is_(None), deadline, Ticket.id)
            .limit(limit)
        ).all()
    ]


def duty_today(session, m: Moment, scope=true()) -> list[DutyShift]:
    return list(
        session.execute(
            select(DutyShift).where(presets_of(DutyShift)["today"].where(m), scope).order_by(DutyShift.starts_at)
        ).scalars()
    )


def duty_gaps(shifts: list[DutyShift], m: Moment) -> list[tuple[dt.datetime, dt.datetime]]:
    """The stretches of today nobody is on duty for (the office is staffed around the clock)."""
    gaps, covered = [], m.day_start
    for s in sorted(shifts, key=lambda s: s.starts_at):
        if s.starts_at > covered:
            gaps.append((covered, min(s.starts_at, m.day_end)))
        covered = max(covered, s.ends_at)
        if covered >= m.day_end:
            break
    if covered < m.day_end:
        gaps.append((covered, m.day_end))
    return gaps


def desk_month_figures(session, m: Moment, estates) -> dict:
    """This month's requests: how many, reply and resolve compliance (as the desk report counts
    them), callback satisfaction: two statements."""
    scope = scope_clause(Ticket, "estate_id", estates) if estates is not None else true()
    reply_met, reply_missed, resolve_met, resolve_missed = compliance_conditions(m.now)
    in_month = Ticket.received_at >= m.month_start
    r = session.execute(
        select(
            func.count().label("total"),
            func.count().filter(Ticket.received_at >= m.day_start).label("today"),
            func.count().filter(reply_met).label("reply_met"),
            func.count().filter(reply_missed).label("reply_missed"),
            func.count().filter(resolve_met).label("resolve_met"),
            func.count().filter(resolve_missed).label("resolve_missed"),
        ).where(in_month, scope)
    ).one()
    sat = session.execute(
        select(func.count(Callback.satisfaction), func.avg(Callback.satisfaction))
        .join(Ticket, Callback.ticket_id == Ticket.id)
        .where(in_month, scope, Callback.satisfaction.is_not(None))
    ).one()
    return {
        "total": r.total,
        "today": r.today,
        "reply_rate": _rate(r.reply_met, r.reply_met + r.reply_missed),
        "resolve_rate": _rate(r.resolve_met, r.resolve_met + r.resolve_missed),
        "satisfaction": round(float(sat[1]), 2) if sat[0] else None,
        "rated": sat[0],
    }


def money_figures(session, m: Moment, estates) -> dict:
    """This month's collection rate and the arrears in the arrears report's aging buckets: two
    statements, on the bills' own indexes (the period; the unpaid bills' partial index)."""
    scope = scope_clause(Bill, "estate_id", estates) if estates is not None else true()
    billed = Bill.amount + Bill.late_fee - Bill.late_fee_waived
    month = session.execute(
        select(func.coalesce(func.sum(billed), 0), func.coalesce(func.sum(Bill.paid_amount), 0)).where(
            Bill.period == m.period, Bill.status != "void", scope
        )
    ).one()
    aging = session.execute(
        select(*_bucket_sums(m.today, outstanding_expr())).where(*_arrears_where(m.today, None), scope)
    ).one()
    return {
        "billed": Decimal(month[0]),
        "collected": Decimal(month[1]),
        "collection_rate": _rate(Decimal(month[1]), Decimal(month[0])),
        "arrears": sum((Decimal(v) for v in aging), Decimal(0)),
        "aging": [
            {"key": key, "label": label, "amount": Decimal(v)}
            for (key, label, _low, _high), v in zip(BUCKETS, aging, strict=True)
        ],
    }


def _rate(part, whole) -> float | None:
    if not whole:
        return None
    return float((Decimal(part) / Decimal(whole)).quantize(Decimal("0.0001")))
