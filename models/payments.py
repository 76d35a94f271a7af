"""Payments and receipts, allocation to bills, prepaid balances, refunds, late-fee waivers and
dunning notices (催缴). DESIGN.md item 7. Money is exact ``Decimal``.

- A payment is recorded (cash, bank transfer, WeChat Pay, Alipay; no gateway), gets the next
  receipt number of its estate and year (a counter row locked in the same transaction, so the
  numbers are unique and gap-free under concurrent payments), and is allocated to the oldest open
  bills or to chosen ones. What is not allocated is the unit's prepaid balance, used by later bills.
- A payment is voided with a reason, never deleted: its allocations are reversed.
- A refund pays prepaid balance back out, recorded with its reason.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.i18n import T
from models.base import AuditedModel, UTCDateTime, utcnow
from models.errors import Conflict
from models.scope import InUnitsEstate

MONEY = Numeric(14, 2)

PAYMENT_METHODS = {
    "cash": T("现金", "Cash"),
    "bank_transfer": T("银行转账", "Bank transfer"),
    "wechat": T("微信支付", "WeChat Pay"),
    "alipay": T("支付宝", "Alipay"),
}
PAYMENT_STATUSES = {"valid": T("有效", "Valid"), "void": T("已作废", "VOID")}
VOID_MARK = PAYMENT_STATUSES["void"]  # how a voided payment or receipt is marked wherever it appears
DUNNING_STAGES = {
    "reminder": T("缴费提醒", "Reminder"),
    "formal": T("催缴通知", "Formal notice"),
    "final": T("最后催缴通知", "Final notice"),
}


MSG_PAYMENT_RECORD = T(
    "收款是财务记录，不能修改金额或删除；录错请作废后重新收款",
    "A payment is a financial record: it cannot be changed or deleted; void it and record it again",
)


class ReceiptCounter(AuditedModel):
    """The last receipt number used per estate and year; locked while a payment takes the next."""

    __tablename__ = "receipt_counter"
    __record_label__ = T("收据编号", "Receipt numbering")  # no screen of its own (models/base.py __str__)

    estate_id: Mapped[int] = mapped_column(ForeignKey("estate.id"), nullable=False)
    year: Mapped[int] = mapped_column(Integer, nullable=False)
    last_number: Mapped[int] = mapped_column(Integer, nullable=False, default=0)

    __table_args__ = (UniqueConstraint("estate_id", "year", name="uq_receipt_counter_estate_year"),)


class Payment(AuditedModel):
    __tablename__ = "payment"

    estate_id: Mapped[int] = mapped_column(ForeignKey("estate.id"), nullable=False)
    unit_id: Mapped[int] = mapped_column(ForeignKey("unit.id"), nullable=False)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("owner.id"))
    payer_name: Mapped[str | None] = mapped_column(String(64))
    amount: Mapped[Decimal] = mapped_column(MONEY, nullable=False)
    method: Mapped[str] = mapped_column(String(16), nullable=False, default="cash")
    paid_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    reference: Mapped[str | None] = mapped_column(String(64))  # bank / WeChat / Alipay transaction no.
    receipt_year: Mapped[int] = mapped_column(Integer, nullable=False)
    receipt_seq: Mapped[int] = mapped_column(Integer, nullable=False)
    receipt_no: Mapped[str] = mapped_column(String(32), nullable=False, unique=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="valid")
    void_reason: Mapped[str | None] = mapped_column(String(200))
    voided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    note: Mapped[str | None] = mapped_column(Text)

    estate = relationship("Estate", lazy="select")
    unit = relationship("Unit", lazy="select")
    owner = relationship("Owner", lazy="select")
    allocations = relationship("PaymentAllocation", back_populates="payment", lazy="select")

    __table_args__ = (
        UniqueConstraint("estate_id", "receipt_year", "receipt_seq", name="uq_payment_receipt_seq"),
        CheckConstraint("amount > 0", name="ck_payment_amount"),
        Index("ix_payment_unit", "unit_id"),
        Index("ix_payment_paid_at", "paid_at"),
        Index("ix_payment_estate", "estate_id", "id"),  # the scope filter, newest first
    )

    def __str__(self) -> str:
        return self.receipt_no

    def refuse_change(self) -> None:
        """Only the note of a payment may change; its money is a record (void and record again)."""
        from sqlalchemy import inspect

        from models.errors import FieldErrors

        state = inspect(self)
        for col in ("amount", "method", "unit_id", "receipt_no", "status", "paid_at"):
            if state.attrs[col].history.has_changes():
                raise FieldErrors({col: [str(MSG_PAYMENT_RECORD)]})

    def void(self, reason: str | None = None) -> None:
        """Void with a reason (``void_payment``): allocations reversed, nothing deleted."""
        void_payment(self, reason)

    @property
    def unit_prepaid_balance(self) -> Decimal:
        """The unit's prepaid balance now (all its payments, not only this one)."""
        from sqlalchemy.orm import object_session

        return prepaid_balance(object_session(self), self.unit_id)


class PaymentAllocation(AuditedModel):
    """How much of a payment settles which bill line. Reversed (``reversed_at``) when the payment
    is voided; never deleted."""

    __tablename__ = "payment_allocation"
    __record_label__ = T("收款冲抵", "Payment allocation")  # no screen of its own (models/base.py __str__)

    payment_id: Mapped[int] = mapped_column(ForeignKey("payment.id"), nullable=False)
    bill_id: Mapped[int] = mapped_column(ForeignKey("bill.id"), nullable=False)
    amount: Mapped[Decimal] = mapped_column(MONEY, nullable=False)
    reversed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    payment = relationship("Payment", back_populates="allocations", lazy="select")
    bill = relationship("Bill", lazy="select")

    __table_args__ = (
        CheckConstraint("amount > 0", name="ck_payment_allocation_amount"),
        Index("ix_payment_allocation_bill", "bill_id"),
        Index("ix_payment_allocation_payment", "payment_id"),
    )


REFUND_KINDS = {
    "prepaid": T("预存款退款", "Prepaid balance refund"),
    "deposit": T("押金退还", "Deposit refund"),
}


class Refund(InUnitsEstate, AuditedModel):
    """Money paid back: prepaid balance (reduces it), or a deposit (装修押金, held apart from the
    prepaid balance: it was paid against its own bill)."""

    __tablename__ = "refund"

    kind: Mapped[str] = mapped_column(String(16), nullable=False, default="prepaid")

    unit_id: Mapped[int] = mapped_column(ForeignKey("unit.id"), nullable=False)
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payment.id"))
    amount: Mapped[Decimal] = mapped_column(MONEY, nullable=False)
    method: Mapped[str] = mapped_column(String(16), nullable=False, default="bank_transfer")
    reason: Mapped[str] = mapped_column(String(200), nullable=False)
    refunded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)

    unit = relationship("Unit", lazy="select")
    payment = relationship("Payment", lazy="select")

    __table_args__ = (
        CheckConstraint("amount > 0", name="ck_refund_amount"),
        CheckConstraint("kind IN ('prepaid', 'deposit')", name="ck_refund_kind"),
    )


class DunningNotice(AuditedModel):
    """A staged arrears notice to a unit (催缴): reminder, formal notice, final notice. One per
    unit, stage and cycle (the oldest unpaid due date it answers), so the job is idempotent."""

    __tablename__ = "dunning_notice"

    estate_id: Mapped[int] = mapped_column(ForeignKey("estate.id"), nullable=False)
    unit_id: Mapped[int] = mapped_column(ForeignKey("unit.id"), nullable=False)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("owner.id"))
    stage: Mapped[str] = mapped_column(String(16), nullable=False)
    cycle_due_date: Mapped[dt.date] = mapped_column(Date, nullable=False)
    amount_due: Mapped[Decimal] = mapped_column(MONEY, nullable=False)
    oldest_period: Mapped[str] = mapped_column(String(7), nullable=False)
    issued_on: Mapped[dt.date] = mapped_column(Date, nullable=False)
    sent: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    letter: Mapped[str | None] = mapped_column(Text)

    estate = relationship("Estate", lazy="select")
    unit = relationship("Unit", lazy="select")
    owner = relationship("Owner", lazy="select")

    __table_args__ = (
        UniqueConstraint("unit_id", "stage", "cycle_due_date", name="uq_dunning_notice_unit_stage_cycle"),
        Index("ix_dunning_notice_issued", "issued_on"),
        Index("ix_dunning_notice_estate", "estate_id", "id"),  # the scope filter, newest first
    )

    def mark_sent(self) -> None:
        """The letter reached the owner (a supervisor marks it delivered)."""
        self.sent = True


# --- services ------------------------------------------------------------------------------------
# Shared by the screens, the API, billing (``apply_prepaid``) and the jobs. They flush but never
# commit: the caller's transaction holds the receipt counter's row lock until it commits, so a
# payment that rolls back gives its number back and the sequence stays gap-free.
CENT = Decimal("0.01")
PAYABLE_STATUSES = ("open", "partial")


def _msg(zh: str, en: str) -> str:
    return str(T(zh, en))


def to_money(value, field: str = "amount", *, positive: bool = True) -> Decimal:
    """An exact amount of money: a Decimal with at most 2 decimals (never a float's rounding)."""
    from decimal import InvalidOperation

    from models.errors import FieldErrors

    if isinstance(value, (bool, float)) or value is None:
        raise FieldErrors({field: [_msg("金额以字符串或整数给出", "Give the amount as a string or integer")]})
    try:
        money = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise FieldErrors({field: [_msg("金额无效", "Invalid amount")]}) from None
    if not money.is_finite() or money.as_tuple().exponent < -2:
        raise FieldErrors({field: [_msg("金额最多 2 位小数", "At most 2 decimal places")]})
    if positive and money <= 0:
        raise FieldErrors({field: [_msg("金额须大于 0", "The amount must be above 0")]})
    if abs(money) >= Decimal("1e12"):
        raise FieldErrors({field: [_msg("金额过大", "The amount is too large")]})
    return money.quantize(CENT)


def sync_bill_status(bill) -> None:
    """open (nothing paid) / partial / paid, from the amounts; a void bill stays void."""
    if bill.status == "void":
        return
    paid = Decimal(bill.paid_amount or 0)
    if bill.outstanding <= 0:
        bill.status = "paid"
    elif paid > 0:
        bill.status = "partial"
    else:
        bill.status = "open"


def _lock_unit(session, unit_or_id):
    """Serialise money movements of one unit: every writer of a unit's money (payments,
    allocations, voids, refunds, prepaid use by billing, late-fee waivers, disputes) takes this
    same row lock first, then the unit's bills in (due date, id) order, as the late-fee job does."""
    from sqlalchemy import select

    from models.archives import Unit

    unit_id = getattr(unit_or_id, "id", unit_or_id)
    unit = session.execute(
        select(Unit).where(Unit.id == unit_id).with_for_update().execution_options(populate_existing=True)
    ).scalar()
    if unit is None:
        from models.errors import FieldErrors

        raise FieldErrors({"unit": [_msg("房屋不存在", "No such unit")]})
    return unit


def next_receipt_seq(session, estate_id: int, year: int) -> int:
    """Take the next receipt number of an estate and year: one ``INSERT ... ON CONFLICT DO UPDATE
    ... RETURNING``, which locks the counter row until this transaction ends (a concurrent payment
    waits; a rolled-back one gives its number back)."""
    from sqlalchemy.dialects.postgresql import insert as pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    from models.base import current_actor_id

    insert_ = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    actor = current_actor_id(session)
    now = utcnow()
    table = ReceiptCounter.__table__
    stmt = insert_(table).values(
        estate_id=estate_id,
        year=year,
        last_number=1,
        version=1,
        created_at=now,
        changed_at=now,
        created_by_id=actor,
        changed_by_id=actor,
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.estate_id, table.c.year],
        set_={
            "last_number": table.c.last_number + 1,
            "version": table.c.version + 1,
            "changed_at": now,
            "changed_by_id": actor,
        },
    ).returning(table.c.last_number)
    return int(session.execute(stmt).scalar_one())


def receipt_number(estate_code: str, year: int, seq: int) -> str:
    return f"{estate_code}-{year}-{seq:06d}"


def _payable_bills(session, unit_id: int, bill_ids=None):
    """The unit's bills a payment may settle, oldest first (due date, id), locked. Without a
    choice, disputed bills are left alone (they are paid only when chosen)."""
    from sqlalchemy import select

    from models.fees import Bill

    q = select(Bill).where(Bill.unit_id == unit_id, Bill.status.in_(PAYABLE_STATUSES))
    if bill_ids is None:
        q = q.where(Bill.disputed.is_(False))
    else:
        q = q.where(Bill.id.in_(list(bill_ids)))
    # populate_existing: a bill already in the session (read before the lock) must show the
    # amounts as they are now, not as they were read (the late-fee job writes without the ORM).
    return (
        session.execute(
            q.order_by(Bill.due_date, Bill.id).with_for_update(of=Bill).execution_options(populate_existing=True)
        )
        .scalars()
        .all()
    )


def _allocate(session, payment: Payment, bills, available: Decimal) -> Decimal:
    """Allocate up to ``available`` of ``payment`` to ``bills`` in order; return what was used."""
    used = Decimal(0)
    for bill in bills:
        if available - used <= 0:
            break
        take = min(available - used, bill.outstanding)
        if take <= 0:
            continue
        session.add(PaymentAllocation(payment=payment, bill_id=bill.id, amount=take))
        bill.paid_amount = Decimal(bill.paid_amount) + take
        sync_bill_status(bill)
        used += take
    return used


def _active_allocated(session, payment_ids) -> dict[int, Decimal]:
    from sqlalchemy import func, select

    if not payment_ids:
        return {}
    rows = session.execute(
        select(PaymentAllocation.payment_id, func.coalesce(func.sum(PaymentAllocation.amount), 0))
        .where(PaymentAllocation.payment_id.in_(list(payment_ids)), PaymentAllocation.reversed_at.is_(None))
        .group_by(PaymentAllocation.payment_id)
    ).all()
    return {pid: Decimal(total) for pid, total in rows}


def prepaid_balance(session, unit_id: int) -> Decimal:
    """The unit's prepaid balance (预存款): valid payments - active allocations - refunds."""
    from sqlalchemy import func, select

    session.flush()
    paid = session.execute(
        select(func.coalesce(func.sum(Payment.amount), 0)).where(Payment.unit_id == unit_id, Payment.status == "valid")
    ).scalar()
    allocated = session.execute(
        select(func.coalesce(func.sum(PaymentAllocation.amount), 0))
        .join(Payment, PaymentAllocation.payment_id == Payment.id)
        .where(
            Payment.unit_id == unit_id,
            Payment.status == "valid",
            PaymentAllocation.reversed_at.is_(None),
        )
    ).scalar()
    refunded = session.execute(
        select(func.coalesce(func.sum(Refund.amount), 0)).where(Refund.unit_id == unit_id, Refund.kind == "prepaid")
    ).scalar()
    return (Decimal(paid) - Decimal(allocated) - Decimal(refunded)).quantize(CENT)


def apply_prepaid(session, unit, *, _locked: bool = False) -> Decimal:
    """Use the unit's prepaid balance for its open bills, oldest first (disputed bills excepted).
    Each allocation comes from a payment with money left, oldest payment first; refunds are taken
    to have paid out the oldest money left. Returns the amount applied. Billing calls this after
    it makes a unit's new bills."""
    from sqlalchemy import select

    unit_id = getattr(unit, "id", unit)
    if not _locked:
        _lock_unit(session, unit_id)
    session.flush()
    balance = prepaid_balance(session, unit_id)
    if balance <= 0:
        return Decimal(0)
    bills = _payable_bills(session, unit_id)
    if not bills:
        return Decimal(0)
    payments = (
        session.execute(
            select(Payment)
            .where(Payment.unit_id == unit_id, Payment.status == "valid")
            .order_by(Payment.paid_at, Payment.id)
        )
        .scalars()
        .all()
    )
    allocated = _active_allocated(session, [p.id for p in payments])
    # The money left on payments minus the balance is what refunds paid out: skip it, oldest first.
    refunded = sum((Decimal(p.amount) - allocated.get(p.id, Decimal(0)) for p in payments), Decimal(0)) - balance
    applied = Decimal(0)
    for p in payments:
        left = Decimal(p.amount) - allocated.get(p.id, Decimal(0))
        skip = min(left, refunded)
        refunded -= skip
        left -= skip
        if left <= 0:
            continue
        applied += _allocate(session, p, bills, left)
        if all(b.outstanding <= 0 for b in bills):
            break
    session.flush()
    return applied


def units_with_usable_prepaid(session, *, estate_id: int | None = None, unit_ids=None) -> list[int]:
    """Units that have a prepaid balance and an unpaid, undisputed bill it could settle: the
    units ``apply_prepaid`` has work for. One query (no per-unit balance), in unit order."""
    from sqlalchemy import and_, func, select

    from models.fees import Bill

    owing = select(Bill.unit_id).where(Bill.status.in_(PAYABLE_STATUSES), Bill.disputed.is_(False))
    if estate_id is not None:
        owing = owing.where(Bill.estate_id == estate_id)
    if unit_ids is not None:
        owing = owing.where(Bill.unit_id.in_(list(unit_ids)))
    owing = owing.distinct().subquery()
    paid = (
        select(Payment.unit_id.label("unit_id"), func.sum(Payment.amount).label("total"))
        .join(owing, owing.c.unit_id == Payment.unit_id)
        .where(Payment.status == "valid")
        .group_by(Payment.unit_id)
        .subquery()
    )
    allocated = (
        select(Payment.unit_id.label("unit_id"), func.sum(PaymentAllocation.amount).label("total"))
        .join(Payment, Payment.id == PaymentAllocation.payment_id)
        .join(owing, owing.c.unit_id == Payment.unit_id)
        .where(Payment.status == "valid", PaymentAllocation.reversed_at.is_(None))
        .group_by(Payment.unit_id)
        .subquery()
    )
    refunded = (
        select(Refund.unit_id.label("unit_id"), func.sum(Refund.amount).label("total"))
        .join(owing, owing.c.unit_id == Refund.unit_id)
        .where(Refund.kind == "prepaid")
        .group_by(Refund.unit_id)
        .subquery()
    )
    balance = paid.c.total - func.coalesce(allocated.c.total, 0) - func.coalesce(refunded.c.total, 0)
    q = (
        select(paid.c.unit_id)
        .outerjoin(allocated, and_(allocated.c.unit_id == paid.c.unit_id))
        .outerjoin(refunded, and_(refunded.c.unit_id == paid.c.unit_id))
        .where(balance > 0)
        .order_by(paid.c.unit_id)
    )
    return list(session.execute(q).scalars())


def apply_prepaid_balances(session, *, estate_id: int | None = None, unit_ids=None, commit_every: int = 0) -> Decimal:
    """Use every unit's prepaid balance for its unpaid bills (``apply_prepaid``, unit by unit in
    unit order, each under its unit lock). Billing calls it for the units it billed; the daily
    late-fee and dunning jobs call it first for every unit, so a bill made by any path (a one-off
    charge, a bill added by hand) is met by money the owner paid in advance before it can be
    late-feed or dunned. ``commit_every``: commit after so many units (jobs; 0: the caller's
    transaction). Idempotent: a unit with nothing left to apply is not touched."""
    total = Decimal(0)
    ids = units_with_usable_prepaid(session, estate_id=estate_id, unit_ids=unit_ids)
    for n, unit_id in enumerate(ids, 1):
        total += apply_prepaid(session, unit_id)
        if commit_every and n % commit_every == 0:
            session.commit()
    if commit_every:
        session.commit()
    return total


def parse_bill_ids(raw) -> list[int] | None:
    """The bills a payment is for: ``"1, 2 3"`` or ``[1, 2]`` -> [1, 2]; empty -> None (the
    oldest bills first)."""
    from models.errors import FieldErrors

    if raw is None or raw == "" or raw == []:
        return None
    parts = raw if isinstance(raw, list) else str(raw).replace("，", ",").replace(" ", ",").split(",")
    out = []
    for p in parts:
        s = "" if isinstance(p, (bool, float)) else str(p).strip()
        if isinstance(p, (bool, float)) or (s and (not s.isdigit() or len(s) > 18)):
            raise FieldErrors({"bills": [_msg("账单编号应为整数", "Bill ids are whole numbers")]})
        if s:
            out.append(int(s))
    return out or None


def record_payment_from(session, body: dict) -> Payment:
    """A payment recorded from an API body: ``{"unit": id, "amount": "100.00", "method": "cash",
    "bills": [ids], "payer_name", "reference", "note"}``; every field refused is named."""
    from models.archives import Unit
    from models.errors import FieldErrors

    texts = ("payer_name", "reference", "note", "method")
    errors = {k: ["Unknown field."] for k in sorted(set(body) - {"unit", "amount", "bills", *texts})}
    errors |= {
        k: [_msg("应为文本", "Must be text")] for k in texts if body.get(k) is not None and not isinstance(body[k], str)
    }
    unit_id = body.get("unit")
    if isinstance(unit_id, bool) or not isinstance(unit_id, int) or not 0 < unit_id < 2**63:
        errors["unit"] = [_msg("应为房屋编号（整数）", "The unit's id (a whole number)")]
    if errors:
        raise FieldErrors(errors)
    unit = session.get(Unit, unit_id)
    if unit is None:
        raise FieldErrors({"unit": [_msg("房屋不存在", "No such unit")]})
    notes = {k: body.get(k) for k in ("payer_name", "reference", "note")}
    bills = parse_bill_ids(body.get("bills"))
    return record_payment(session, unit, body.get("amount"), body.get("method") or "cash", bills, **notes)


def record_payment(
    session,
    unit,
    amount,
    method: str = "cash",
    bill_ids=None,
    *,
    payer_name: str | None = None,
    reference: str | None = None,
    note: str | None = None,
    paid_at: dt.datetime | None = None,
    payment: Payment | None = None,
) -> Payment:
    """Record a payment of a unit: the next receipt number of its estate and year, allocation to
    the chosen bills (``bill_ids``) or else to the oldest open bills first; what is left is the
    unit's prepaid balance. Without a choice, older prepaid money is used first."""
    from sqlalchemy import select

    from models.archives import Estate, Ownership
    from models.errors import FieldErrors

    amount = to_money(amount)
    if method not in PAYMENT_METHODS:
        raise FieldErrors({"method": [_msg("付款方式无效", "Invalid payment method")]})
    if unit is None:
        raise FieldErrors({"unit": [_msg("请选择房屋", "Choose the unit")]})
    unit = _lock_unit(session, unit)
    if bill_ids is not None:
        try:
            bill_ids = sorted({int(b) for b in bill_ids})
        except (TypeError, ValueError):
            raise FieldErrors({"bills": [_msg("账单编号无效", "Invalid bill ids")]}) from None
    bills = []
    if bill_ids:
        bills = _payable_bills(session, unit.id, bill_ids)
        if len(bills) != len(bill_ids):
            raise FieldErrors(
                {"bills": [_msg("所选账单须为本房屋的未缴账单", "The chosen bills must be unpaid bills of this unit")]}
            )
    elif bill_ids is None:
        apply_prepaid(session, unit, _locked=True)
        bills = _payable_bills(session, unit.id)
    paid_at = paid_at or utcnow()
    from zoneinfo import ZoneInfo

    year = paid_at.astimezone(ZoneInfo(_display_tz())).year
    estate = session.get(Estate, unit.estate_id)
    seq = next_receipt_seq(session, estate.id, year)
    today = paid_at.date()
    owner_id = session.execute(
        select(Ownership.owner_id)
        .where(Ownership.unit_id == unit.id, (Ownership.until.is_(None)) | (Ownership.until >= today))
        .order_by(Ownership.share.desc(), Ownership.id)
        .limit(1)
    ).scalar()
    payment = payment if payment is not None else Payment()
    payment.estate_id = estate.id
    payment.unit_id = unit.id
    payment.unit = unit
    payment.owner_id = payment.owner_id or owner_id
    payment.payer_name = (payer_name or payment.payer_name or "").strip()[:64] or None
    payment.amount = amount
    payment.method = method
    payment.paid_at = paid_at
    payment.reference = (reference or payment.reference or "").strip()[:64] or None
    payment.note = note if note is not None else payment.note
    payment.receipt_year = year
    payment.receipt_seq = seq
    payment.receipt_no = receipt_number(estate.code, year, seq)
    payment.status = "valid"
    session.add(payment)
    session.flush()
    _allocate(session, payment, bills, amount)
    session.flush()
    return payment


# --- collecting at the desk (收款) ------------------------------------------------------------------
# The clerk ticks the unit's open bills on a form (views/collect.py) that showed each bill's amount
# due as it was read; the payment is recorded by ``record_payment`` for exactly what was ticked,
# plus any amount paid in advance. A bill paid or changed by someone else since the form was read
# is a conflict, never a silent difference between what the payer was told and what is recorded.
COLLECT_BACKDATE_DAYS = 366  # a payment date at most a year back (a late-entered bank transfer)
COLLECT_TEXTS = {"payer_name": 64, "reference": 64, "note": 2000}


class BillsChanged(Conflict):
    """A ticked bill was paid or changed since the form was read (409 naming ``bills``)."""

    field = "bills"


def _bill_words(period: str, item: str | None) -> str:
    return f"{period} {item or ''}".strip()


def open_bills_of(session, unit_id: int) -> list[dict]:
    """The unit's unpaid bills as the collect form shows them, oldest first (due date, id): the
    amount, the late fee still owed (less any waiver), what was paid, what is due now, and the
    version and amount due the form sends back to prove what the clerk saw."""
    from sqlalchemy import select

    from models.fees import Bill, FeeItem

    rows = session.execute(
        select(Bill, FeeItem.name)
        .join(FeeItem, FeeItem.id == Bill.item_id)
        .where(Bill.unit_id == unit_id, Bill.status.in_(PAYABLE_STATUSES))
        .order_by(Bill.due_date, Bill.id)
    ).all()
    return [
        {
            "id": b.id,
            "version": b.version,
            "period": b.period,
            "item": item,
            "due_date": b.due_date,
            "amount": Decimal(b.amount),
            "late_fee": b.late_fee_left,
            "paid": Decimal(b.paid_amount),
            "outstanding": b.outstanding,
            "disputed": bool(b.disputed),
            "status": b.status,
        }
        for b, item in rows
    ]


def parse_collect_bills(raw) -> list[dict]:
    """The ticked bills: ``[12, 13]`` or ``[{"id": 12, "version": 3, "due": "100.00"}, ...]``
    (version and due optional: each given one is checked). Refused naming ``bills``."""
    from models.errors import FieldErrors

    bad = FieldErrors(
        {"bills": [_msg("账单应为编号列表，或含 id、version、due 的对象列表", "Bill ids, or objects with id, version, due")]}
    )
    if raw is None or raw == "":
        return []
    if not isinstance(raw, list) or len(raw) > 500:
        raise bad
    out, seen = [], set()
    for entry in raw:
        entry = entry if isinstance(entry, dict) else {"id": entry}
        if set(entry) - {"id", "version", "due"}:
            raise bad
        bid, version, due = entry.get("id"), entry.get("version"), entry.get("due")
        for value, low in ((bid, 1), (version, 0)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not low <= value < 2**63):
                raise bad
        if bid is None or bid in seen:
            raise bad
        seen.add(bid)
        out.append({"id": bid, "version": version, "due": None if due in (None, "") else to_money(due, "bills", positive=False)})
    return out


def _paid_at(paid_on, today: dt.date) -> dt.datetime:
    """The payment's time: now for today, noon in the office's zone for a day before."""
    from zoneinfo import ZoneInfo

    if paid_on is None or paid_on == today:
        return utcnow()
    return dt.datetime.combine(paid_on, dt.time(12), ZoneInfo(_display_tz())).astimezone(dt.UTC)


def collect_payment(
    session,
    unit,
    bills,
    extra=None,
    method: str = "cash",
    paid_on: dt.date | str | None = None,
    *,
    payer_name: str | None = None,
    reference: str | None = None,
    note: str | None = None,
) -> Payment:
    """Collect the ticked ``bills`` of ``unit`` (``parse_collect_bills``' dicts) and ``extra`` paid
    in advance: one payment through ``record_payment`` (its receipt number, its allocation to the
    ticked bills, the rest prepaid). Checked first, all errors at once (422 naming each field):
    the method, the extra amount, the date (not in the future, at most a year back), the texts,
    something to collect, every bill one of this unit's. Then, under the unit's money lock and the
    bills' row locks, each ticked bill must still be unpaid and as it was read (its version, its
    amount due): else ``BillsChanged`` (409) and nothing is written."""
    from sqlalchemy import select

    from models.errors import FieldErrors
    from models.fees import Bill, FeeItem, local_today

    errors: dict[str, list[str]] = {}
    if not isinstance(method, str) or method not in PAYMENT_METHODS:
        errors["method"] = [_msg("请选择付款方式", "Choose the payment method")]
    try:
        extra_money = Decimal(0) if extra in (None, "") else to_money(extra, "extra", positive=False)
        if extra_money < 0:
            raise FieldErrors({"extra": [_msg("预存金额不能为负数", "The amount paid in advance cannot be negative")]})
    except FieldErrors as e:
        errors.update(e.errors)
        extra_money = Decimal(0)
    today = local_today()
    if isinstance(paid_on, str):
        try:
            paid_on = dt.date.fromisoformat(paid_on.strip()) if paid_on.strip() else None
        except ValueError:
            paid_on = False  # not a date: said below
    if paid_on is not None and (not isinstance(paid_on, dt.date) or isinstance(paid_on, dt.datetime)):
        errors["paid_on"] = [_msg("日期格式为 YYYY-MM-DD", "A date is YYYY-MM-DD")]
    elif paid_on is not None and paid_on > today:
        errors["paid_on"] = [_msg("收款日期不能晚于今天", "The payment date cannot be after today")]
    elif paid_on is not None and (today - paid_on).days > COLLECT_BACKDATE_DAYS:
        errors["paid_on"] = [_msg("收款日期不能早于一年前", "The payment date cannot be more than a year back")]
    texts = {"payer_name": payer_name, "reference": reference, "note": note}
    for key, limit in COLLECT_TEXTS.items():
        value = texts[key]
        if value is not None and not isinstance(value, str):
            errors[key] = [_msg("应为文本", "Must be text")]
        elif value and len(value.strip()) > limit:
            errors[key] = [_msg(f"最多 {limit} 字", f"At most {limit} characters")]
    chosen = list(bills or [])
    if not chosen and extra_money == 0 and "extra" not in errors:
        errors["bills"] = [
            _msg("请勾选要收的账单，或填写预存金额", "Tick the bills to collect, or enter an amount paid in advance")
        ]
    ids = [c["id"] for c in chosen]
    if ids and unit is not None:
        # Which unit each named bill is of, before any bill is locked: only this unit's are.
        owners = dict(session.execute(select(Bill.id, Bill.unit_id).where(Bill.id.in_(ids))).all())
        if any(owners.get(i) != getattr(unit, "id", unit) for i in ids):
            errors["bills"] = [_msg("所选账单须为本房屋的账单", "The ticked bills must be this unit's")]
    if unit is None:
        errors["unit"] = [_msg("请选择房屋", "Choose the unit")]
    if errors:
        raise FieldErrors(errors)

    unit = _lock_unit(session, unit)
    locked = session.execute(
        select(Bill, FeeItem.name)
        .join(FeeItem, FeeItem.id == Bill.item_id)
        .where(Bill.id.in_(ids or [0]))
        .order_by(Bill.due_date, Bill.id)
        .with_for_update(of=Bill)
        .execution_options(populate_existing=True)
    ).all()
    by_id = {b.id: (b, item) for b, item in locked}
    total = Decimal(0)
    for c in chosen:
        bill, item = by_id[c["id"]]
        words = _bill_words(bill.period, item)
        if bill.status not in PAYABLE_STATUSES:
            raise BillsChanged(
                _msg(
                    f"账单「{words}」已由他人收款或已作废，请刷新后重新勾选（本次未收款）",
                    f"The bill '{words}' was paid by someone else or voided meanwhile; reload and tick again (nothing was recorded)",
                ),
                current_version=bill.version,
            )
        if (c.get("version") is not None and c["version"] != bill.version) or (
            c.get("due") is not None and c["due"] != bill.outstanding
        ):
            raise BillsChanged(
                _msg(
                    f"账单「{words}」已被他人修改（收款、滞纳金或减免），应缴 {bill.outstanding}，请刷新后再收（本次未收款）",
                    f"The bill '{words}' changed meanwhile (a payment, a late fee or a waiver): {bill.outstanding} is due now; "
                    "reload and collect again (nothing was recorded)",
                ),
                current_version=bill.version,
            )
        total += bill.outstanding
    clean = {k: (v.strip() or None) if isinstance(v, str) else None for k, v in texts.items()}
    return record_payment(
        session,
        unit,
        total + extra_money,
        method,
        ids,
        paid_at=_paid_at(paid_on, today),
        **clean,
    )


def collect_sheet(session, unit, bill_id: int | None = None) -> dict:
    """What the collect form shows for a unit: its open bills oldest first, which are ticked (all
    undisputed ones; only ``bill_id`` when the clerk came from that bill and it is open), the
    prepaid balance, the current owner, the methods, today."""
    from sqlalchemy import select

    from models.archives import Owner, Ownership
    from models.fees import local_today

    bills = open_bills_of(session, unit.id)
    asked = bill_id is not None and any(b["id"] == bill_id for b in bills)
    for b in bills:
        b["ticked"] = (b["id"] == bill_id) if asked else not b["disputed"]
    today = local_today()
    owner = session.execute(
        select(Owner.name)
        .join(Ownership, Ownership.owner_id == Owner.id)
        .where(Ownership.unit_id == unit.id, (Ownership.until.is_(None)) | (Ownership.until >= today))
        .order_by(Ownership.share.desc(), Ownership.id)
        .limit(1)
    ).scalar()
    return {
        "unit": unit,
        "bills": bills,
        "asked": asked,
        "prepaid": prepaid_balance(session, unit.id),
        "owner": owner,
        "methods": PAYMENT_METHODS,
        "today": today,
        "earliest": today - dt.timedelta(days=COLLECT_BACKDATE_DAYS),
    }


def allocations_of(session, payment_id: int) -> list[dict]:
    """A payment's allocations with their bills' period and item, oldest bill first."""
    from sqlalchemy import select

    from models.fees import Bill, FeeItem

    rows = session.execute(
        select(PaymentAllocation, Bill.period, FeeItem.name)
        .join(Bill, Bill.id == PaymentAllocation.bill_id)
        .join(FeeItem, FeeItem.id == Bill.item_id)
        .where(PaymentAllocation.payment_id == payment_id)
        .order_by(Bill.due_date, Bill.id, PaymentAllocation.id)
    ).all()
    return [
        {
            "id": a.id,
            "bill": a.bill_id,
            "period": period,
            "item": item,
            "amount": Decimal(a.amount),
            "reversed_at": a.reversed_at,
        }
        for a, period, item in rows
    ]


def payments_of_bill(session, bill_id: int) -> list[dict]:
    """The payments that settled (or settled, then were voided for) a bill, newest first."""
    from sqlalchemy import select

    rows = session.execute(
        select(PaymentAllocation, Payment)
        .join(Payment, Payment.id == PaymentAllocation.payment_id)
        .where(PaymentAllocation.bill_id == bill_id)
        .order_by(PaymentAllocation.id.desc())
    ).all()
    return [
        {
            "payment": p.id,
            "receipt_no": p.receipt_no,
            "paid_at": p.paid_at,
            "method": PAYMENT_METHODS.get(p.method, p.method),
            "amount": Decimal(a.amount),
            # A voided payment says so wherever it is listed (its allocations were reversed with it).
            "state": VOID_MARK if p.status == "void" else T("已冲回", "Reversed") if a.reversed_at else T("有效", "Valid"),
        }
        for a, p in rows
    ]


def payment_answer(session, payment: Payment) -> dict:
    """What the API answers about a payment (recorded, voided, its receipt)."""
    allocations = sorted(allocations_of(session, payment.id), key=lambda a: a["id"])
    return {
        "receipt_no": payment.receipt_no,
        "status": payment.status,
        "amount": str(payment.amount),
        "amount_in_words": amount_in_words(payment.amount),
        "allocations": [
            {
                "bill": a["bill"],
                "amount": str(a["amount"]),
                "reversed_at": a["reversed_at"].isoformat() if a["reversed_at"] else None,
            }
            for a in allocations
        ],
        "prepaid_balance": str(prepaid_balance(session, payment.unit_id)),
    }


def receipt_data(session, payment: Payment) -> dict:
    """The printed receipt (收款收据): its lines, the prepaid rest, the amount in capitals."""
    from zoneinfo import ZoneInfo

    from flask import current_app, has_app_context

    config = current_app.config if has_app_context() else {}
    lines = [
        {**a, "reversed": a["reversed_at"] is not None}
        for a in allocations_of(session, payment.id)
        if a["reversed_at"] is None or payment.status == "void"
    ]
    amount = Decimal(payment.amount)
    allocated = sum((ln["amount"] for ln in lines), Decimal(0))
    return {
        "payment": payment,
        "lines": lines,
        "prepaid": amount - allocated if payment.status == "valid" else Decimal(0),
        "amount": amount,
        "amount_words": amount_in_words(amount),
        "method": str(PAYMENT_METHODS.get(payment.method, payment.method)),
        "paid_at": payment.paid_at.astimezone(ZoneInfo(_display_tz())),
        "company": config.get("FEES_COMPANY_NAME", "物业服务中心"),
        "phone": config.get("FEES_COMPANY_PHONE", ""),
        "payer": payment.payer_name or (payment.owner.name if payment.owner else ""),
    }


def letter_data(notice: DunningNotice, lines: list[dict]) -> dict:
    """The printed dunning letter (催缴通知书) of a notice and the bills it is about."""
    from flask import current_app, has_app_context

    config = current_app.config if has_app_context() else {}
    return {
        "n": notice,
        "stage": DUNNING_STAGES[notice.stage],
        "lines": lines,
        "amount_words": amount_in_words(notice.amount_due),
        "company": config.get("FEES_COMPANY_NAME", "物业服务中心"),
        "phone": config.get("FEES_COMPANY_PHONE", ""),
    }


def _display_tz() -> str:
    from flask import current_app, has_app_context

    return current_app.config.get("DISPLAY_TIMEZONE", "Asia/Shanghai") if has_app_context() else "Asia/Shanghai"


def void_payment(payment: Payment, reason: str | None, now: dt.datetime | None = None) -> None:
    """Void a payment with a reason: its allocations are reversed (kept, with ``reversed_at``),
    the bills owe again, nothing is deleted. Refused when the money was already refunded."""
    from sqlalchemy import select
    from sqlalchemy.orm import object_session

    from models.errors import FieldErrors
    from models.fees import Bill

    if not (reason or "").strip():
        raise FieldErrors({"void_reason": [_msg("作废须写明原因", "Voiding needs a reason")]})
    session = object_session(payment)
    _lock_unit(session, payment.unit_id)
    # Judged on the payment as it is once the unit is ours: a void that waited for another void
    # of the same payment must see it void, not reverse its allocations twice.
    session.refresh(payment)
    if payment.status != "valid":
        raise FieldErrors({"status": [_msg("该收款已作废", "This payment is already void")]})
    now = now or utcnow()
    active = (
        session.execute(
            select(PaymentAllocation).where(
                PaymentAllocation.payment_id == payment.id, PaymentAllocation.reversed_at.is_(None)
            )
        )
        .scalars()
        .all()
    )
    # Money of this payment that was paid back (a renovation deposit refunded): voiding it too
    # would give it back twice. Deposit refunds leave the prepaid balance alone, so ask directly.
    refunded = session.execute(select(Refund.id).where(Refund.payment_id == payment.id).limit(1)).first()
    if refunded is not None:
        raise FieldErrors(
            {
                "status": [
                    _msg(
                        "该收款已有退款（如装修押金退还），不能作废",
                        "Money of this payment was refunded (e.g. a renovation deposit); it cannot be voided",
                    )
                ]
            }
        )
    unallocated = Decimal(payment.amount) - sum((Decimal(a.amount) for a in active), Decimal(0))
    if prepaid_balance(session, payment.unit_id) - unallocated < 0:
        raise FieldErrors(
            {
                "status": [
                    _msg(
                        "该收款的预存部分已退款，不能作废（请先核对退款）",
                        "Part of this payment was refunded as prepaid balance; it cannot be voided",
                    )
                ]
            }
        )
    bill_ids = [a.bill_id for a in active]
    bills = {
        b.id: b
        for b in session.execute(
            select(Bill)
            .where(Bill.id.in_(bill_ids))
            .order_by(Bill.unit_id, Bill.due_date, Bill.id)
            .with_for_update(of=Bill)
            .execution_options(populate_existing=True)
        ).scalars()
    }
    for a in active:
        bill = bills[a.bill_id]
        bill.paid_amount = Decimal(bill.paid_amount) - Decimal(a.amount)
        sync_bill_status(bill)
        a.reversed_at = now
    payment.status = "void"
    payment.void_reason = reason.strip()[:200]
    payment.voided_at = now
    session.flush()
    # Money the unit still has in advance now meets the bills this payment had settled.
    apply_prepaid(session, payment.unit_id, _locked=True)


def refund(
    session, unit, amount, reason: str | None, method: str = "bank_transfer", refund_row: Refund | None = None
) -> Refund:
    """Pay prepaid balance back out; never more than the balance."""
    from models.errors import FieldErrors

    amount = to_money(amount)
    if not (reason or "").strip():
        raise FieldErrors({"reason": [_msg("退款须写明原因", "A refund needs a reason")]})
    if method not in PAYMENT_METHODS:
        raise FieldErrors({"method": [_msg("退款方式无效", "Invalid method")]})
    if unit is None:
        raise FieldErrors({"unit": [_msg("请选择房屋", "Choose the unit")]})
    unit = _lock_unit(session, unit)
    balance = prepaid_balance(session, unit.id)
    if amount > balance:
        raise FieldErrors(
            {"amount": [_msg(f"退款不能超过预存余额（{balance}）", f"More than the prepaid balance ({balance})")]}
        )
    row = refund_row if refund_row is not None else Refund()
    row.unit_id = unit.id
    row.unit = unit
    row.amount = amount
    row.reason = reason.strip()[:200]
    row.method = method
    row.refunded_at = row.refunded_at or utcnow()
    session.add(row)
    session.flush()
    return row


# --- 大写金额 -------------------------------------------------------------------------------------
_DIGITS = "零壹贰叁肆伍陆柒捌玖"
_SMALL_UNITS = ("", "拾", "佰", "仟")
_BIG_UNITS = ("", "万", "亿", "万亿")


def _four(n: int) -> str:
    """0 < n < 10000 -> e.g. 1001 -> 壹仟零壹 (zeros inside collapse to one 零)."""
    out, zero = [], False
    for pos in range(3, -1, -1):
        d = n // 10**pos % 10
        if d == 0:
            zero = bool(out)
            continue
        if zero:
            out.append("零")
            zero = False
        out.append(_DIGITS[d] + _SMALL_UNITS[pos])
    return "".join(out)


def amount_in_words(value) -> str:
    """A sum of money in Chinese capital numerals (大写金额) as receipts write it:
    1234.56 -> 壹仟贰佰叁拾肆元伍角陆分; 10 -> 壹拾元整; 0.05 -> 伍分; 100.10 -> 壹佰元壹角整."""
    money = Decimal(str(value)).quantize(CENT, rounding="ROUND_HALF_UP")
    if money < 0:
        return "负" + amount_in_words(-money)
    yuan = int(money)
    jiao = int(money * 10) % 10
    fen = int(money * 100) % 10
    if yuan >= 10**16:
        raise ValueError("amount too large")
    parts = []
    if yuan:
        groups = []
        n = yuan
        while n:
            groups.append(n % 10000)
            n //= 10000
        text, zero = [], False
        for i in range(len(groups) - 1, -1, -1):
            g = groups[i]
            if g == 0:
                zero = bool(text)
                continue
            if text and (zero or g < 1000):
                text.append("零")
            text.append(_four(g) + _BIG_UNITS[i])
            zero = False
        parts.append("".join(text) + "元")
    if jiao == 0 and fen == 0:
        return (parts[0] + "整") if parts else "零元整"
    if jiao:
        parts.append(_DIGITS[jiao] + "角")
    elif yuan:
        parts.append("零")
    if fen:
        parts.append(_DIGITS[fen] + "分")
    else:
        parts.append("整")
    return "".join(parts)
