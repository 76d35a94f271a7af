"""Late fees (滞纳金), daily.

For every unpaid (open / partial), undisputed bill past its due date plus the item's grace days:

    late fee = min(principal outstanding x daily rate x days late, principal x cap rate)

with ``days late = today - (due date + grace days)``, exact decimals, rounded half-up to the cent
(PostgreSQL's ``round(numeric, 2)`` rounds half away from zero, the same for amounts >= 0).
Payments settle the principal first (``principal outstanding = amount - paid``).

The job is idempotent: run twice on a day it sets the same values. A late fee already accrued is
never lowered by the job (``greatest(current, computed)``): paying the principal stops the fee
growing but does not erase what accrued before; only a Manager's waiver (with a reason, on the
bill) reduces what is owed. Disputed bills get no late fee while disputed. Bills are not version-
bumped (system bookkeeping, like the escalation sweep) but every change is in the change log.

Before computing, prepaid balances are used for unpaid bills (``apply_prepaid_balances``): a bill
that money paid in advance covers never accrues a late fee, whatever made it. Bills are locked in
(unit, due date, id) order, the order payments lock a unit's bills in, so the job and a payment
never wait on each other in a circle.

The statement is built for the scope asked (all estates, or one), not with ``:estate_id IS NULL``:
psycopg sends a None parameter untyped and PostgreSQL refuses to guess its type.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from celery import shared_task
from flask import current_app
from sqlalchemy import insert, text

from app.extensions import db
from models.base import ChangeLog, current_actor_id, utcnow
from models.payments import apply_prepaid_balances

CENT = Decimal("0.01")


def local_today() -> dt.date:
    return dt.datetime.now(ZoneInfo(current_app.config.get("DISPLAY_TIMEZONE", "Asia/Shanghai"))).date()


def late_fee_for(
    *,
    amount: Decimal,
    paid: Decimal,
    due_date: dt.date,
    grace_days: int,
    daily_rate: Decimal,
    cap_rate: Decimal,
    today: dt.date,
    current: Decimal = Decimal(0),
) -> Decimal:
    """The reference computation (the SQL below must agree; a test compares them)."""
    days = (today - (due_date + dt.timedelta(days=grace_days))).days
    if days <= 0 or Decimal(daily_rate) <= 0:
        return Decimal(current)
    principal_left = max(Decimal(amount) - Decimal(paid), Decimal(0))
    accrued = (principal_left * Decimal(daily_rate) * days).quantize(CENT, rounding=ROUND_HALF_UP)
    cap = (Decimal(amount) * Decimal(cap_rate)).quantize(CENT, rounding=ROUND_HALF_UP)
    return max(Decimal(current), min(accrued, cap))


_PG_UPDATE = """
WITH calc AS (
    SELECT b.id, b.late_fee AS old_fee,
           GREATEST(b.late_fee, LEAST(
               ROUND(GREATEST(b.amount - b.paid_amount, 0) * i.late_daily_rate
                     * ((CAST(:today AS date) - (b.due_date + i.grace_days))), 2),
               ROUND(b.amount * i.late_cap_rate, 2))) AS new_fee
    FROM bill b JOIN fee_item i ON i.id = b.item_id
    WHERE b.status IN ('open', 'partial') AND NOT b.disputed
      AND b.due_date + i.grace_days < CAST(:today AS date)
      AND i.late_daily_rate > 0
      {scope}
    ORDER BY b.unit_id, b.due_date, b.id
    FOR UPDATE OF b
)
UPDATE bill SET
    late_fee = calc.new_fee,
    status = CASE
        WHEN bill.amount + calc.new_fee - bill.late_fee_waived - bill.paid_amount <= 0 THEN 'paid'
        WHEN bill.paid_amount > 0 THEN 'partial' ELSE 'open' END,
    changed_at = :now,
    changed_by_id = :uid
FROM calc
WHERE bill.id = calc.id AND calc.new_fee <> calc.old_fee
RETURNING bill.id, calc.old_fee, bill.late_fee
"""


def _pg_update(estate_id: int | None):
    """The statement for the scope: every estate, or one (a typed parameter, never a NULL test)."""
    if estate_id is None:
        return text(_PG_UPDATE.format(scope="")), {}
    return text(_PG_UPDATE.format(scope="AND b.estate_id = CAST(:estate_id AS bigint)")), {"estate_id": int(estate_id)}


def compute_late_fees(today: dt.date | None = None, estate_id: int | None = None) -> dict:
    """Set every due late fee as of ``today`` (local date); returns counts."""
    session = db.session
    today = today or local_today()
    # Money paid in advance first (committed in chunks): what it covers owes no late fee.
    prepaid = apply_prepaid_balances(session, estate_id=estate_id, commit_every=200)
    now = utcnow()
    uid = current_actor_id(session)
    if session.get_bind().dialect.name == "postgresql":
        stmt, scope = _pg_update(estate_id)
        rows = session.execute(stmt, {"today": today, "now": now, "uid": uid, **scope}).all()
    else:  # the embedded SQLite demo: the same rule, row by row, in Python
        rows = _python_update(session, today, estate_id, now, uid)
    if rows:
        session.execute(
            insert(ChangeLog),
            [
                {
                    "table_name": "bill",
                    "row_id": bill_id,
                    "action": "update",
                    "changed_at": now,
                    "user_id": uid,
                    "changes": {"late_fee": [str(old), str(new)], "job": "late_fees", "as_of": today.isoformat()},
                }
                for bill_id, old, new in rows
            ],
        )
    session.commit()
    return {"as_of": today.isoformat(), "changed": len(rows), "prepaid_applied": str(prepaid)}


def _python_update(session, today, estate_id, now, uid):
    from sqlalchemy import select, update

    from models.fees import Bill, FeeItem
    from models.payments import sync_bill_status

    q = (
        select(Bill, FeeItem)
        .join(FeeItem, FeeItem.id == Bill.item_id)
        .where(Bill.status.in_(("open", "partial")), Bill.disputed.is_(False), FeeItem.late_daily_rate > 0)
    )
    if estate_id is not None:
        q = q.where(Bill.estate_id == estate_id)
    out = []
    for bill, item in session.execute(q).all():
        new = late_fee_for(
            amount=bill.amount,
            paid=bill.paid_amount,
            due_date=bill.due_date,
            grace_days=item.grace_days,
            daily_rate=item.late_daily_rate,
            cap_rate=item.late_cap_rate,
            today=today,
            current=bill.late_fee,
        )
        if new == bill.late_fee:
            continue
        old = bill.late_fee
        probe = Bill(
            amount=bill.amount, paid_amount=bill.paid_amount, late_fee=new, late_fee_waived=bill.late_fee_waived
        )
        probe.status = bill.status
        sync_bill_status(probe)
        session.expunge(probe) if probe in session else None
        session.execute(
            update(Bill)
            .where(Bill.id == bill.id)
            .values(late_fee=new, status=probe.status, changed_at=now, changed_by_id=uid)
            .execution_options(synchronize_session=False)
        )
        out.append((bill.id, old, new))
    return out


@shared_task(name="jobs.late_fees.daily")
def daily(today: str | None = None) -> dict:
    return compute_late_fees(dt.date.fromisoformat(today) if today else None)
