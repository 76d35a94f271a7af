"""Monthly billing (DESIGN.md item 7): one bill line per unit x applicable approved standard.

``run_billing(estate_id, period, started_by)`` records a ``BillingRun`` and, in ONE transaction:

- takes ``pg_advisory_xact_lock`` on (period, estate), so two runs of the same estate and period
  are serialised (the second finds every line there and creates none);
- marks any other run of that estate and period still 'running' as failed: holding the lock, it
  cannot be alive (a live run holds the lock until it commits or rolls back), so it was a run row
  committed by the screen whose job died, or never started;
- on PostgreSQL inserts the lines of each standard with one
  ``INSERT ... SELECT ... ON CONFLICT (unit_id, item_id, period, source) DO NOTHING``, amounts
  computed in SQL with the same rounding as ``models.fees.round_money`` (a test compares them
  with ``line_amount()``); on SQLite computes the lines in Python with ``line_amount()``;
- gives every line its issue date (the run's local date) and a due date no earlier than that plus
  the item's payment term (``models.fees.due_date_for``);
- uses the prepaid balances of the estate's units for their unpaid bills
  (``models.payments.apply_prepaid_balances``: per unit, under the unit's row lock, exactly as a
  payment's allocation), in the same transaction, so a bill covered by money paid in advance is
  never left open, in arrears, late-feed or dunned;
- fills the run's counts and totals, says why when it billed nothing (``explanation``), and marks
  it done.

A worker killed halfway rolls back everything, the run row included (or leaves the screen's
committed 'running' row, which the redelivered task, given that ``run_id``, completes). A rerun
creates no line twice: the unique key is the idempotency key.

Scope of a standard: the estate is one of the standard's estates, the unit's use is one of its
``unit_uses``, the standard is effective on some day of the period; units handed over after the
period are not billed; the first month is prorated from the handover date; unsold units are billed
to the developer (``owner_id`` NULL, ``billed_to_developer``) or skipped, per the standard; a
metered standard bills the period's reading and nothing without one.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

from celery import shared_task
from flask import current_app
from sqlalchemy import func, insert, select, text, update

from app.extensions import db
from models.archives import UNIT_USES, Estate, Ownership, Unit
from models.base import ChangeLog, current_actor_id, utcnow
from models.errors import FieldErrors
from models.fees import (
    BASES,
    STANDARD_STATUSES,
    Bill,
    BillingRun,
    FeeItem,
    FeeStandard,
    MeterReading,
    due_date_for,
    fee_standard_estate,
    line_amount,
    local_today,
    month_bounds,
)
from models.payments import apply_prepaid_balances

MONTHLY_BASES = ("per_area_month", "per_unit_month", "per_quantity")
LOCK_NAMESPACE = "desk.billing:"

# SQL for ``round_money``: ``x`` is a non-negative numeric. PostgreSQL's round() on numeric rounds
# half away from zero (= ROUND_HALF_UP for x >= 0), trunc() is ROUND_DOWN, ceil() is ROUND_UP.
SQL_ROUNDING = {
    "half_up_cent": "round({x}, 2)",
    "down_cent": "trunc({x}, 2)",
    "up_cent": "(ceil(({x}) * 100) / 100)",
    "half_up_jiao": "round({x}, 1)",
    "half_up_yuan": "round({x}, 0)",
}


def applicable_standards(session, estate_id: int, period: str) -> list[FeeStandard]:
    first, nxt = month_bounds(period)
    last = nxt - dt.timedelta(days=1)
    return list(
        session.execute(
            select(FeeStandard)
            .join(fee_standard_estate, fee_standard_estate.c.fee_standard_id == FeeStandard.id)
            .join(FeeItem, FeeItem.id == FeeStandard.item_id)
            .where(
                fee_standard_estate.c.estate_id == estate_id,
                FeeStandard.status == "approved",
                FeeStandard.basis.in_(MONTHLY_BASES),
                FeeStandard.effective_from <= last,
                (FeeStandard.effective_to.is_(None)) | (FeeStandard.effective_to >= first),
                FeeItem.active.is_(True),
            )
            .order_by(FeeStandard.item_id, FeeStandard.effective_from.desc(), FeeStandard.id)
        ).scalars()
    )


def _amount_sql(standard: FeeStandard) -> tuple[str, str, str]:
    """(quantity, billed_days, amount) SQL expressions for one standard's lines."""
    prorated = "(u.handover_date > :first AND u.handover_date < :next)"
    days = f"CASE WHEN {prorated} THEN (:next - u.handover_date) END"
    if standard.basis == "per_area_month":
        qty, base = "u.gross_area", "u.gross_area * CAST(:price AS numeric)"
    elif standard.basis == "per_unit_month":
        qty, base = "CAST(1 AS numeric)", "CAST(:price AS numeric)"
    else:  # per_quantity: no proration
        qty, base = "m.quantity", "m.quantity * CAST(:price AS numeric)"
        days = "CAST(NULL AS integer)"
        prorated = "false"
    # As line_amount(): raw * days / month_days, before the single rounding.
    raw = (
        f"(CASE WHEN {prorated} THEN {base} * (:next - u.handover_date) / CAST(:month_days AS numeric) ELSE {base} END)"
    )
    amount = "CAST(" + SQL_ROUNDING[standard.rounding].format(x=raw) + " AS numeric(14, 2))"
    return qty, days, amount


def _insert_sql(standard: FeeStandard) -> str:
    qty, days, amount = _amount_sql(standard)
    meter = (
        "JOIN meter_reading m ON m.unit_id = u.id AND m.item_id = :item_id AND m.period = :period"
        " AND m.quantity IS NOT NULL"
        if standard.basis == "per_quantity"
        else ""
    )
    unsold = "" if standard.bill_unsold_to_developer else "AND u.status <> 'unsold'"
    return f"""
WITH ins AS (
  INSERT INTO bill (estate_id, unit_id, owner_id, billed_to_developer, item_id, standard_id, period, source,
                    quantity, unit_price, billed_days, amount, paid_amount, late_fee, late_fee_waived,
                    issued_on, due_date, status, disputed, run_id,
                    version, created_at, changed_at, created_by_id, changed_by_id)
  SELECT u.estate_id, u.id,
         CASE WHEN u.status = 'unsold' THEN NULL ELSE o.owner_id END,
         u.status = 'unsold',
         :item_id, :standard_id, :period, '',
         {qty}, CAST(:price AS numeric), {days}, {amount}, 0, 0, 0,
         :issued_on, :due_date, 'open', false, :run_id,
         1, :now, :now, :uid, :uid
  FROM unit u
  {meter}
  LEFT JOIN LATERAL (
    SELECT ow.owner_id FROM ownership ow
    WHERE ow.unit_id = u.id AND (ow.until IS NULL OR ow.until >= :first)
      AND (ow.since IS NULL OR ow.since < :next)
    ORDER BY ow.share DESC, ow.since ASC NULLS FIRST, ow.id
    LIMIT 1
  ) o ON true
  WHERE u.estate_id = :estate_id
    AND u.use = ANY(CAST(:uses AS varchar[]))
    AND (u.handover_date IS NULL OR u.handover_date < :next)
    {unsold}
  ON CONFLICT (unit_id, item_id, period, source) DO NOTHING
  RETURNING amount
)
SELECT count(*), coalesce(sum(amount), 0) FROM ins
"""


def _params(
    standard: FeeStandard, estate_id: int, period: str, run_id: int, uid: int, now, today: dt.date | None = None
) -> dict:
    first, nxt = month_bounds(period)
    issued_on = today or local_today(now)
    return {
        "item_id": standard.item_id,
        "standard_id": standard.id,
        "period": period,
        "price": Decimal(standard.unit_price),
        "first": first,
        "next": nxt,
        "month_days": (nxt - first).days,
        "issued_on": issued_on,
        "due_date": due_date_for(standard.item, issued_on, period),
        "run_id": run_id,
        "now": now,
        "uid": uid,
        "estate_id": estate_id,
        "uses": list(standard.unit_uses),
    }


def _bill_standard_sql(session, standard, estate_id, period, run_id, uid, now, today) -> tuple[int, Decimal]:
    params = _params(standard, estate_id, period, run_id, uid, now, today)
    n, total = session.execute(text(_insert_sql(standard)), params).one()
    return int(n), Decimal(total)


def _current_owners(session, unit_ids: list[int], first: dt.date, nxt: dt.date) -> dict[int, int]:
    owners: dict[int, tuple] = {}
    rows = session.execute(
        select(Ownership.unit_id, Ownership.owner_id, Ownership.share, Ownership.since, Ownership.id).where(
            Ownership.unit_id.in_(unit_ids),
            (Ownership.until.is_(None)) | (Ownership.until >= first),
            (Ownership.since.is_(None)) | (Ownership.since < nxt),
        )
    ).all()
    for unit_id, owner_id, share, since, oid in rows:
        key = (-Decimal(share), since or dt.date.min, oid)
        if unit_id not in owners or key < owners[unit_id][0]:
            owners[unit_id] = (key, owner_id)
    return {k: v[1] for k, v in owners.items()}


def bill_lines_python(session, standard, estate_id, period, today: dt.date | None = None) -> list[dict]:
    """The lines of one standard computed with ``line_amount()`` (the SQLite path, and the
    reference the SQL path is tested against). ``today``: the issue date (default: local today)."""
    first, nxt = month_bounds(period)
    issued_on = today or local_today()
    q = select(Unit.id, Unit.gross_area, Unit.status, Unit.handover_date).where(
        Unit.estate_id == estate_id,
        Unit.use.in_(list(standard.unit_uses)),
        (Unit.handover_date.is_(None)) | (Unit.handover_date < nxt),
    )
    if not standard.bill_unsold_to_developer:
        q = q.where(Unit.status != "unsold")
    units = session.execute(q.order_by(Unit.id)).all()
    quantities = {}
    if standard.basis == "per_quantity":
        quantities = dict(
            session.execute(
                select(MeterReading.unit_id, MeterReading.quantity).where(
                    MeterReading.item_id == standard.item_id,
                    MeterReading.period == period,
                    MeterReading.quantity.is_not(None),
                )
            ).all()
        )
    owners = _current_owners(session, [u.id for u in units], first, nxt) if units else {}
    due = due_date_for(standard.item, issued_on, period)
    lines = []
    for u in units:
        if standard.basis == "per_quantity" and u.id not in quantities:
            continue
        qty, amount, days = line_amount(
            standard.basis,
            Decimal(standard.unit_price),
            standard.rounding,
            gross_area=u.gross_area,
            quantity=quantities.get(u.id),
            period=period,
            handover_date=u.handover_date,
        )
        unsold = u.status == "unsold"
        lines.append(
            {
                "estate_id": estate_id,
                "unit_id": u.id,
                "owner_id": None if unsold else owners.get(u.id),
                "billed_to_developer": unsold,
                "item_id": standard.item_id,
                "standard_id": standard.id,
                "period": period,
                "source": "",
                "quantity": qty,
                "unit_price": Decimal(standard.unit_price),
                "billed_days": days,
                "amount": amount,
                "issued_on": issued_on,
                "due_date": due,
            }
        )
    return lines


def _bill_standard_python(session, standard, estate_id, period, run_id, uid, now, today) -> tuple[int, Decimal]:
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    stamp = {"version": 1, "created_at": now, "changed_at": now, "created_by_id": uid, "changed_by_id": uid}
    defaults = {"paid_amount": Decimal(0), "late_fee": Decimal(0), "late_fee_waived": Decimal(0), "status": "open"}
    n, total = 0, Decimal(0)
    for line in bill_lines_python(session, standard, estate_id, period, today):
        row = {**line, **defaults, **stamp, "disputed": False, "run_id": run_id}
        stmt = (
            sqlite_insert(Bill)
            .values(row)
            .on_conflict_do_nothing(index_elements=["unit_id", "item_id", "period", "source"])
        )
        if session.execute(stmt).rowcount == 1:
            n += 1
            total += line["amount"]
    return n, total


def run_billing(
    estate_id: int, period: str, started_by: str, run_id: int | None = None, today: dt.date | None = None
) -> dict:
    """Bill one estate for one period; returns the run's summary. See the module docstring.
    ``today``: the issue date of the lines (default: the local date now)."""
    session = db.session
    month_bounds(period)  # a FieldErrors on a bad period, before anything is written
    if session.get(Estate, estate_id) is None:
        raise FieldErrors({"estate": ["unknown estate"]})
    postgres = session.get_bind().dialect.name == "postgresql"
    try:
        if postgres:
            session.execute(
                text("SELECT pg_advisory_xact_lock(hashtext(:ns || :period), :estate)"),
                {"ns": LOCK_NAMESPACE, "period": period, "estate": estate_id},
            )
        run = session.get(BillingRun, run_id, populate_existing=True) if run_id else None
        if run is not None and run.status == "done":
            session.rollback()
            return summary(run)  # a redelivered task: the work is done
        if run is None:
            run = BillingRun(estate_id=estate_id, period=period, started_by=started_by[:64], status="running")
            session.add(run)
        else:
            run.status, run.error = "running", None
        session.flush()
        now = utcnow()
        today = today or local_today(now)
        uid = current_actor_id(session)
        # Any other 'running' run of this estate and period is dead (we hold its lock).
        session.execute(
            update(BillingRun)
            .where(
                BillingRun.estate_id == estate_id,
                BillingRun.period == period,
                BillingRun.status == "running",
                BillingRun.id != run.id,
            )
            .values(
                status="failed",
                finished_at=now,
                error=f"interrupted; superseded by run #{run.id}",
                changed_at=now,
                changed_by_id=uid,
                version=BillingRun.version + 1,
            )
            .execution_options(synchronize_session=False)
        )
        created, amount = 0, Decimal(0)
        bill_one = _bill_standard_sql if postgres else _bill_standard_python
        standards = applicable_standards(session, estate_id, period)
        made: dict[int, int] = {}
        for standard in standards:
            n, total = bill_one(session, standard, estate_id, period, run.id, uid, now, today)
            made[standard.id] = n
            created += n
            amount += total
        # Money paid in advance meets the new bills (and any other unpaid one of these units).
        run.prepaid_applied = apply_prepaid_balances(session, estate_id=estate_id)
        lines_total, amount_total = session.execute(
            select(func.count(), func.coalesce(func.sum(Bill.amount), 0)).where(
                Bill.estate_id == estate_id, Bill.period == period, Bill.source == ""
            )
        ).one()
        run.lines_created, run.amount_created = created, amount
        run.lines_total, run.amount_total = int(lines_total), Decimal(amount_total)
        run.explanation = explain(session, estate_id, period, standards, made, int(lines_total)) or None
        run.status, run.finished_at = "done", utcnow()
        if created:
            session.execute(
                insert(ChangeLog),
                [
                    {
                        "table_name": "bill",
                        "row_id": 0,
                        "action": "insert",
                        "changed_at": now,
                        "user_id": uid,
                        "changes": {"billing_run": run.id, "period": period, "generated": created},
                    }
                ],
            )
        session.commit()
        return summary(run)
    except BaseException:
        session.rollback()
        raise


# --- why a run billed nothing -------------------------------------------------------------
def _both(zh: str, en: str) -> str:
    """A stored explanation is read in either language: both, as other stored job notes."""
    return f"{zh} / {en}"


def explain(session, estate_id: int, period: str, standards: list, made: dict[int, int], lines_total: int) -> str:
    """Why this run created no line (or, per standard, why a standard in force created none):
    no approved standard in force (drafts waiting for approval, approved ones with no estate or
    outside the period, inactive items), no unit of the standard's uses, units handed over after
    the period, unsold units not billed, no meter readings, or everything already billed."""
    from models.archives import Unit

    first, nxt = month_bounds(period)
    last = nxt - dt.timedelta(days=1)
    reasons: list[str] = []
    if not standards:
        reasons.append(
            _both(
                f"本小区在 {period} 没有生效的已批准月度收费标准，未出账",
                f"No approved monthly fee standard of this estate is in force in {period}: nothing billed",
            )
        )
        rows = session.execute(
            select(FeeStandard, FeeItem.name, FeeItem.active)
            .join(FeeItem, FeeItem.id == FeeStandard.item_id)
            .outerjoin(fee_standard_estate, fee_standard_estate.c.fee_standard_id == FeeStandard.id)
            .where((fee_standard_estate.c.estate_id == estate_id) | (fee_standard_estate.c.estate_id.is_(None)))
            .order_by(FeeStandard.item_id, FeeStandard.revision)
        ).all()
        for std, item, active in rows:
            label = f"{item} v{std.revision}"
            if not std.estates:
                reasons.append(
                    _both(f"{label}：未选择适用小区", f"{label}: no estate chosen")
                    if std.status == "approved"
                    else _both(f"{label}：未选择适用小区，且尚未批准", f"{label}: no estate and not approved")
                )
            elif std.status in ("draft", "declared", "rejected"):
                state = STANDARD_STATUSES[std.status]
                reasons.append(_both(f"{label}：尚未批准（{state.zh}）", f"{label}: not approved ({state.en.lower()})"))
            elif std.status == "approved" and (std.effective_from > last or (std.effective_to or last) < first):
                span = f"{std.effective_from} ~ {std.effective_to or ''}"
                reasons.append(
                    _both(f"{label}：生效期 {span} 不含本账期", f"{label}: in force {span}, not in {period}")
                )
            elif std.status == "approved" and not active:
                reasons.append(_both(f"{label}：收费项目已停用", f"{label}: the fee item is inactive"))
            elif std.status == "approved" and std.basis not in MONTHLY_BASES:
                basis = BASES[std.basis]
                reasons.append(
                    _both(f"{label}：{basis.zh}，不参与月度计费", f"{label}: {basis.en}, not billed monthly")
                )
        return "\n".join(reasons)
    for std in standards:
        if made.get(std.id):
            continue
        label = f"{std.item.name} v{std.revision}"
        already = session.execute(
            select(func.count()).where(
                Bill.estate_id == estate_id, Bill.period == period, Bill.item_id == std.item_id, Bill.source == ""
            )
        ).scalar()
        if already:
            continue
        in_scope = select(func.count()).where(Unit.estate_id == estate_id, Unit.use.in_(list(std.unit_uses)))
        units = session.execute(in_scope).scalar()
        if not units:
            reasons.append(
                _both(
                    f"{label}：本小区没有适用用途（{'、'.join(getattr(UNIT_USES.get(u), 'zh', u) for u in std.unit_uses)}）的房屋",
                    f"{label}: no unit of its uses ({', '.join(getattr(UNIT_USES.get(u), 'en', u).lower() for u in std.unit_uses)}) in this estate",
                )
            )
            continue
        handed = session.execute(in_scope.where((Unit.handover_date.is_(None)) | (Unit.handover_date < nxt))).scalar()
        if not handed:
            reasons.append(
                _both(f"{label}：适用房屋均在本账期之后交付", f"{label}: every unit is handed over after {period}")
            )
            continue
        if not std.bill_unsold_to_developer:
            sold = session.execute(
                in_scope.where((Unit.handover_date.is_(None)) | (Unit.handover_date < nxt), Unit.status != "unsold")
            ).scalar()
            if not sold:
                reasons.append(
                    _both(
                        f"{label}：适用房屋均未售，此标准不向开发商计费",
                        f"{label}: every unit is unsold and not billed",
                    )
                )
                continue
        if std.basis == "per_quantity":
            reasons.append(_both(f"{label}：本账期没有抄表记录", f"{label}: no meter readings for {period}"))
            continue
        reasons.append(_both(f"{label}：没有可出账的房屋", f"{label}: no unit to bill"))
    if not reasons and not any(made.values()) and lines_total:
        reasons.append(
            _both(
                f"本账期已出账 {lines_total} 行，本次无新增（重复计费不会重复出账）",
                f"{period} already has {lines_total} lines: nothing new (a rerun never bills twice)",
            )
        )
    return "\n".join(reasons)


def summary(run: BillingRun) -> dict:
    return {
        "run_id": run.id,
        "estate_id": run.estate_id,
        "period": run.period,
        "status": run.status,
        "lines_created": run.lines_created,
        "amount_created": str(run.amount_created),
        "lines_total": run.lines_total,
        "amount_total": str(run.amount_total),
        "prepaid_applied": str(run.prepaid_applied),
        "explanation": run.explanation,
    }


def current_period(now: dt.datetime | None = None) -> str:
    tz = ZoneInfo(current_app.config.get("DISPLAY_TIMEZONE", "Asia/Shanghai"))
    local = (now or utcnow()).astimezone(tz)
    return f"{local.year:04d}-{local.month:02d}"


def bill_all_estates(period: str | None = None, started_by: str = "beat") -> dict:
    """The periodic job: bill the current local month for every estate that has no completed run
    for it yet (runs daily, so a missed 1st is caught up; a later manual run catches changes)."""
    period = period or current_period()
    session = db.session
    done = set(
        session.execute(
            select(BillingRun.estate_id).where(BillingRun.period == period, BillingRun.status == "done")
        ).scalars()
    )
    estates = [e for e in session.execute(select(Estate.id).order_by(Estate.id)).scalars() if e not in done]
    session.rollback()
    results = [run_billing(e, period, started_by) for e in estates]
    return {
        "period": period,
        "estates": len(results),
        "lines_created": sum(r["lines_created"] for r in results),
    }


@shared_task(name="jobs.billing.run")
def run_billing_task(estate_id: int, period: str, started_by: str, run_id: int | None = None) -> dict:
    return run_billing(estate_id, period, started_by, run_id)


@shared_task(name="jobs.billing.monthly")
def monthly(period: str | None = None) -> dict:
    return bill_all_estates(period)
