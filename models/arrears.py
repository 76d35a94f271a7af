"""Arrears (欠费) as of a date: per unit and owner, in aging buckets by days past due.

Buckets (days past the due date, as of ``as_of``): 0-30, 31-90, 91-180, over 180. A bill is in
arrears when it is unpaid (open / partial) and its due date is before ``as_of``; the amount is
its outstanding (principal + unwaived late fee - paid). Disputed bills are in the report, flagged
(``disputed`` amount), and left out of dunning (``dunnable``).

One GROUP BY over the unpaid bills (the index ``ix_bill_open_due`` on status and due date finds
them); bucket limits are compared as dates (no per-row date arithmetic), and names are joined
after the aggregation, for the page asked only.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import and_, case, func, literal, select
from sqlalchemy.orm import Session

from app.i18n import T
from models.scope import estate_condition

UNPAID = ("open", "partial")
BUCKETS = (
    ("d0_30", T("0-30天", "0-30 days"), 0, 30),
    ("d31_90", T("31-90天", "31-90 days"), 31, 90),
    ("d91_180", T("91-180天", "91-180 days"), 91, 180),
    ("d181", T("180天以上", "Over 180 days"), 181, None),
)


def outstanding_expr():
    from models.fees import Bill

    return Bill.amount + Bill.late_fee - Bill.late_fee_waived - Bill.paid_amount


def _bucket_sums(as_of: dt.date, owed):
    from models.fees import Bill

    cols = []
    for key, _label, low, high in BUCKETS:
        # days past due d = as_of - due_date; low <= d <= high  <=>  as_of - high <= due <= as_of - low
        cond = Bill.due_date <= as_of - dt.timedelta(days=low)
        if high is not None:
            cond = and_(cond, Bill.due_date >= as_of - dt.timedelta(days=high))
        cols.append(func.coalesce(func.sum(case((cond, owed), else_=literal(0))), 0).label(key))
    return cols


def _arrears_where(as_of: dt.date, estate_id: int | None):
    from models.fees import Bill

    where = [Bill.status.in_(UNPAID), Bill.due_date < as_of]
    if estate_id is not None:  # an id, or the estates a user works for (models/scope.py)
        where.append(estate_condition(Bill.estate_id, estate_id))
    return where


def arrears_by_unit(
    session: Session,
    as_of: dt.date,
    *,
    estate_id: int | None = None,
    limit: int | None = 100,
    offset: int = 0,
    order: str = "total",
) -> list[dict]:
    """Rows per unit and owner, biggest arrears first (or ``order="unit"``)."""
    from models.archives import Estate, Owner, Unit
    from models.fees import Bill

    owed = outstanding_expr()
    where = list(_arrears_where(as_of, estate_id))
    if limit is not None and order != "unit":
        # Biggest first: find the page's units with one cheap sum over the unpaid lines, then
        # work out the aging buckets for those units only (half the time of bucketing them all).
        top = (
            select(Bill.unit_id)
            .where(*where)
            .group_by(Bill.unit_id, Bill.owner_id)
            .order_by(func.sum(owed).desc(), Bill.unit_id, Bill.owner_id)
            .limit(limit)
            .offset(offset)
        )
        where.append(Bill.unit_id.in_(top.scalar_subquery()))
        offset = 0
    agg = (
        select(
            Bill.unit_id.label("unit_id"),
            Bill.owner_id.label("owner_id"),
            *_bucket_sums(as_of, owed),
            func.sum(owed).label("total"),
            func.coalesce(func.sum(case((Bill.disputed.is_(True), owed), else_=literal(0))), 0).label("disputed"),
            func.min(Bill.due_date).label("oldest_due"),
            func.min(Bill.period).label("first_period"),
            func.max(Bill.period).label("last_period"),
            func.count().label("bills"),
        )
        .where(*where)
        .group_by(Bill.unit_id, Bill.owner_id)
    )
    if order == "unit":
        agg = agg.order_by(Bill.unit_id, Bill.owner_id)
    else:
        agg = agg.order_by(func.sum(owed).desc(), Bill.unit_id, Bill.owner_id)
    if limit is not None:
        agg = agg.limit(limit).offset(offset)
    agg = agg.subquery()
    q = (
        select(
            agg,
            Unit.code.label("unit_code"),
            Estate.id.label("estate_id"),
            Estate.name.label("estate_name"),
            Owner.name.label("owner_name"),
        )
        .join(Unit, Unit.id == agg.c.unit_id)
        .join(Estate, Estate.id == Unit.estate_id)
        .outerjoin(Owner, Owner.id == agg.c.owner_id)
    )
    if order == "unit":
        q = q.order_by(agg.c.unit_id, agg.c.owner_id)
    else:
        q = q.order_by(agg.c.total.desc(), agg.c.unit_id, agg.c.owner_id)
    out = []
    for r in session.execute(q).mappings():
        row = dict(r)
        for key in [b[0] for b in BUCKETS] + ["total", "disputed"]:
            row[key] = Decimal(row[key] or 0)
        row["dunnable"] = row["total"] - row["disputed"]
        row["flagged"] = row["disputed"] > 0
        row["days_past_due"] = (as_of - row["oldest_due"]).days
        out.append(row)
    return out


def arrears_summary(session: Session, as_of: dt.date, *, estate_id: int | None = None) -> list[dict]:
    """The same buckets per estate (what the Committee sees: no unit or owner)."""
    from models.archives import Estate
    from models.fees import Bill

    owed = outstanding_expr()
    agg = (
        select(
            Bill.estate_id.label("estate_id"),
            *_bucket_sums(as_of, owed),
            func.sum(owed).label("total"),
            func.coalesce(func.sum(case((Bill.disputed.is_(True), owed), else_=literal(0))), 0).label("disputed"),
            func.count(func.distinct(Bill.unit_id)).label("units"),
        )
        .where(*_arrears_where(as_of, estate_id))
        .group_by(Bill.estate_id)
        .subquery()
    )
    q = select(agg, Estate.name.label("estate_name")).join(Estate, Estate.id == agg.c.estate_id).order_by(Estate.name)
    rows = []
    for r in session.execute(q).mappings():
        row = dict(r)
        for key in [b[0] for b in BUCKETS] + ["total", "disputed"]:
            row[key] = Decimal(row[key] or 0)
        rows.append(row)
    return rows


def arrears_count(session: Session, as_of: dt.date, *, estate_id: int | None = None) -> int:
    from models.fees import Bill

    inner = select(Bill.unit_id, Bill.owner_id).where(*_arrears_where(as_of, estate_id)).distinct().subquery()
    return int(session.execute(select(func.count()).select_from(inner)).scalar() or 0)
