"""Fees (收费): fee items, fee standards and their approval, meter readings, monthly bills and
billing runs. DESIGN.md item 7. Money is ``Numeric`` / ``Decimal`` everywhere, never float.

A standard is drafted, declared for approval (申报) with its basis document, approved by a
Manager and only then bills; a change is a new version (``revision``) that supersedes the old one;
a bill keeps the standard version it used. Two effective approved standards of the same item and
scope (estate x unit use) may not overlap in time.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_DOWN, ROUND_HALF_UP, ROUND_UP, Decimal, InvalidOperation

from flask_appbuilder import Model
from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
    select,
)
from sqlalchemy.orm import Mapped, Session, mapped_column, object_session, relationship

from app.i18n import T
from models.archives import UNIT_USES
from models.base import AuditedModel, UTCDateTime, utcnow
from models.errors import Conflict, FieldErrors
from models.scope import InUnitsEstate

MONEY = Numeric(14, 2)
PRICE = Numeric(14, 4)
RATE = Numeric(8, 6)

FEE_KINDS = {
    "property_service": T("物业服务费", "Property service fee"),
    "parking": T("停车费", "Parking fee"),
    "garbage": T("垃圾处理费", "Garbage fee"),
    "water": T("水费（代收）", "Water (collected on behalf)"),
    "electricity": T("电费（代收）", "Electricity (collected on behalf)"),
    "gas": T("燃气费（代收）", "Gas (collected on behalf)"),
    "elevator": T("电梯费", "Elevator fee"),
    "renovation": T("装修费用", "Renovation charges"),
    "service": T("有偿服务费", "Paid services"),
    "other": T("其他", "Other"),
}
BASES = {
    "per_area_month": T("按建筑面积每月（元/㎡·月）", "Per m² of gross area per month"),
    "per_unit_month": T("按户每月（元/户·月）", "Fixed per unit per month"),
    "per_quantity": T("按计量（元/度、元/吨）", "Per metered quantity"),
    "one_off": T("一次性", "One-off"),
}
ROUNDINGS = {
    "half_up_cent": T("四舍五入到分", "Round half up to the cent"),
    "down_cent": T("舍去到分", "Round down to the cent"),
    "up_cent": T("进位到分", "Round up to the cent"),
    "half_up_jiao": T("四舍五入到角", "Round half up to 10 cents"),
    "half_up_yuan": T("四舍五入到元", "Round half up to the yuan"),
}
_ROUNDING_RULES = {
    "half_up_cent": (Decimal("0.01"), ROUND_HALF_UP),
    "down_cent": (Decimal("0.01"), ROUND_DOWN),
    "up_cent": (Decimal("0.01"), ROUND_UP),
    "half_up_jiao": (Decimal("0.1"), ROUND_HALF_UP),
    "half_up_yuan": (Decimal("1"), ROUND_HALF_UP),
}
STANDARD_STATUSES = {
    "draft": T("草稿", "Draft"),
    "declared": T("已申报", "Declared for approval"),
    "approved": T("已批准", "Approved"),
    "rejected": T("已驳回", "Rejected"),
    "retired": T("已停用", "Retired"),
}
BILL_STATUSES = {
    "open": T("未缴", "Unpaid"),
    "partial": T("部分缴纳", "Partly paid"),
    "paid": T("已缴清", "Paid"),
    "void": T("已作废", "Void"),
}
DEFAULT_PAYMENT_TERM_DAYS = 15
RUN_STATUSES = {"running": T("进行中", "Running"), "done": T("完成", "Done"), "failed": T("失败", "Failed")}


def local_today(now: dt.datetime | None = None) -> dt.date:
    """Today in the display time zone (a bill is issued on a local date)."""
    from zoneinfo import ZoneInfo

    from flask import current_app, has_app_context

    zone = current_app.config.get("DISPLAY_TIMEZONE", "Asia/Shanghai") if has_app_context() else "Asia/Shanghai"
    return (now or utcnow()).astimezone(ZoneInfo(zone)).date()


def payment_term(item: FeeItem) -> int:
    # An item added in the same flush has no column default yet.
    term = item.payment_term_days
    return DEFAULT_PAYMENT_TERM_DAYS if term is None else int(term)


def due_date_for(item: FeeItem, issued_on: dt.date, period: str | None = None) -> dt.date:
    """When a bill of ``item`` issued on ``issued_on`` is due: a monthly line on its period's due
    day (period start + ``due_days``), but never before the issue date plus the payment term (a
    month billed on the 29th is not due on the 16th); a one-off charge (no period) the issue date
    plus the payment term. Every path that makes bills uses this (billing, one-off charges, bills
    added by hand), and ``Bill.before_insert`` refuses an earlier one."""
    earliest = issued_on + dt.timedelta(days=payment_term(item))
    if period is None:
        return earliest
    first, _ = month_bounds(period)
    return max(first + dt.timedelta(days=int(item.due_days or 0)), earliest)


def round_money(value: Decimal, rule: str) -> Decimal:
    """The standard's rounding rule, applied once to a bill line's amount."""
    quantum, mode = _ROUNDING_RULES[rule]
    return Decimal(value).quantize(quantum, rounding=mode).quantize(Decimal("0.01"))


def month_bounds(period: str) -> tuple[dt.date, dt.date]:
    """'2026-11' -> (2026-11-01, 2026-12-01)."""
    try:
        year, month = (int(x) for x in period.split("-"))
        first = dt.date(year, month, 1)
    except (ValueError, AttributeError):
        raise FieldErrors({"period": [str(T("账期格式为 YYYY-MM", "The period is YYYY-MM"))]}) from None
    nxt = dt.date(year + (month == 12), month % 12 + 1, 1)
    return first, nxt


def line_amount(
    basis: str,
    unit_price: Decimal,
    rounding: str,
    *,
    gross_area: Decimal | None = None,
    quantity: Decimal | None = None,
    period: str | None = None,
    handover_date: dt.date | None = None,
) -> tuple[Decimal, Decimal, int | None]:
    """The reference computation of one bill line: (quantity, amount, billed days or None).

    Monthly bases are prorated in the first month from the handover date: the month's share is
    (days from handover to month end) / (days in month), applied before rounding. The SQL billing
    path in jobs/billing.py must give the same amounts (a test compares them).
    """
    price = Decimal(unit_price)
    days = None
    if basis == "per_area_month":
        qty = Decimal(gross_area)
        raw = qty * price
    elif basis == "per_unit_month":
        qty = Decimal(1)
        raw = price
    elif basis == "per_quantity":
        qty = Decimal(quantity or 0)
        raw = qty * price
    else:  # one_off
        qty = Decimal(quantity or 1)
        raw = qty * price
    if basis in ("per_area_month", "per_unit_month") and period and handover_date:
        first, nxt = month_bounds(period)
        if first < handover_date < nxt:
            month_days = (nxt - first).days
            days = (nxt - handover_date).days
            raw = raw * Decimal(days) / Decimal(month_days)
    return qty, round_money(raw, rounding), days


class FeeItem(AuditedModel):
    """A kind of charge (收费项目) with its late-fee rule."""

    __tablename__ = "fee_item"

    code: Mapped[str] = mapped_column(String(32), nullable=False, unique=True)
    name: Mapped[str] = mapped_column(String(64), nullable=False)
    kind: Mapped[str] = mapped_column(String(24), nullable=False, default="other")
    # Late fees (滞纳金): after the grace days, a daily rate on the unpaid principal, capped at a
    # share of the principal (1.0 = never more than the principal itself).
    grace_days: Mapped[int] = mapped_column(Integer, nullable=False, default=30)
    late_daily_rate: Mapped[Decimal] = mapped_column(RATE, nullable=False, default=Decimal("0"))
    late_cap_rate: Mapped[Decimal] = mapped_column(RATE, nullable=False, default=Decimal("0"))
    due_days: Mapped[int] = mapped_column(Integer, nullable=False, default=15)  # after the period starts
    # The payment term (缴费期限): a bill is never due before its issue date plus this many days,
    # whenever it is issued (a month billed late, a one-off charge).
    payment_term_days: Mapped[int] = mapped_column(
        Integer, nullable=False, default=DEFAULT_PAYMENT_TERM_DAYS, server_default=str(DEFAULT_PAYMENT_TERM_DAYS)
    )
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    note: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        CheckConstraint("grace_days >= 0 AND due_days >= 0", name="ck_fee_item_days"),
        CheckConstraint("payment_term_days >= 0", name="ck_fee_item_payment_term"),
        CheckConstraint("late_daily_rate >= 0 AND late_cap_rate >= 0", name="ck_fee_item_rates"),
    )

    def check(self) -> None:
        errors = {}
        if self.kind not in FEE_KINDS:
            errors["kind"] = [str(T("类型无效", "Invalid kind"))]
        for f in ("grace_days", "due_days", "payment_term_days"):
            if getattr(self, f) is None or getattr(self, f) < 0:
                errors[f] = [str(T("不能为负数", "Cannot be negative"))]
        for f in ("late_daily_rate", "late_cap_rate"):
            if getattr(self, f) is None or Decimal(getattr(self, f)) < 0:
                errors[f] = [str(T("不能为负数", "Cannot be negative"))]
        if errors:
            raise FieldErrors(errors)

    def refuse_delete(self, session: Session) -> None:
        """An item with standards is kept (bills name it); it is deactivated instead."""
        if session.execute(select(FeeStandard.id).where(FeeStandard.item_id == self.id).limit(1)).first():
            raise FieldErrors(
                {"code": [str(T("已有收费标准的项目不能删除，可停用", "An item with standards cannot be deleted; deactivate it"))]}
            )


fee_standard_estate = Table(
    "fee_standard_estate",
    Model.metadata,
    Column("fee_standard_id", ForeignKey("fee_standard.id", ondelete="CASCADE"), primary_key=True),
    Column("estate_id", ForeignKey("estate.id"), primary_key=True),
)


MSG_EDIT_DRAFT = T(
    "只有草稿或被驳回的标准可以修改；已批准的标准请“新建修订版”",
    "Only a draft or rejected standard can be changed; for an approved one make a new revision",
)


class FeeStandard(AuditedModel):
    """A price for a fee item (收费标准): basis, unit price, rounding, scope, effective period."""

    __tablename__ = "fee_standard"

    item_id: Mapped[int] = mapped_column(ForeignKey("fee_item.id"), nullable=False)
    revision: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    supersedes_id: Mapped[int | None] = mapped_column(ForeignKey("fee_standard.id"))
    basis: Mapped[str] = mapped_column(String(24), nullable=False)
    unit_price: Mapped[Decimal] = mapped_column(PRICE, nullable=False)
    rounding: Mapped[str] = mapped_column(String(16), nullable=False, default="half_up_cent")
    unit_uses: Mapped[list] = mapped_column(JSON, nullable=False, default=lambda: ["residential"])
    effective_from: Mapped[dt.date] = mapped_column(Date, nullable=False)
    effective_to: Mapped[dt.date | None] = mapped_column(Date)  # inclusive; None: open-ended
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="draft")
    basis_document: Mapped[str | None] = mapped_column(String(255))  # stored file name (申报依据)
    declared_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    approved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    approved_by_id: Mapped[int | None] = mapped_column(ForeignKey("ab_user.id"))
    decision_note: Mapped[str | None] = mapped_column(Text)
    # Metered standards: unsold units billed to the developer, or not billed at all.
    bill_unsold_to_developer: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)

    item = relationship("FeeItem", lazy="select")
    estates = relationship("Estate", secondary=fee_standard_estate, lazy="select")
    supersedes = relationship("FeeStandard", remote_side="FeeStandard.id", lazy="select")
    approved_by = relationship("User", foreign_keys=[approved_by_id], lazy="select")

    __table_args__ = (
        CheckConstraint("unit_price >= 0", name="ck_fee_standard_price"),
        CheckConstraint("effective_to IS NULL OR effective_to >= effective_from", name="ck_fee_standard_period"),
        Index("ix_fee_standard_item_status", "item_id", "status"),
    )

    def __str__(self) -> str:
        item = self.item.name if self.item else self.item_id
        return f"{item} v{self.revision} ¥{self.unit_price}"

    def check(self) -> None:
        errors = {}
        if self.basis not in BASES:
            errors["basis"] = [str(T("计费方式无效", "Invalid basis"))]
        if self.rounding not in ROUNDINGS:
            errors["rounding"] = [str(T("舍入规则无效", "Invalid rounding rule"))]
        if self.unit_price is None or Decimal(self.unit_price) < 0:
            errors["unit_price"] = [str(T("单价不能为负数", "The unit price cannot be negative"))]
        elif Decimal(self.unit_price).as_tuple().exponent < -4:
            errors["unit_price"] = [str(T("单价最多 4 位小数", "At most 4 decimal places"))]
        if not self.unit_uses or any(u not in UNIT_USES for u in self.unit_uses):
            errors["unit_uses"] = [str(T("适用房屋用途无效", "Invalid unit uses"))]
        if self.effective_from and self.effective_to and self.effective_to < self.effective_from:
            errors["effective_to"] = [
                str(T("结束日期不能早于开始日期", "The end date cannot be before the start date"))
            ]
        if self.status not in STANDARD_STATUSES:
            errors["status"] = [str(T("状态无效", "Invalid status"))]
        if errors:
            raise FieldErrors(errors)

    # --- life cycle ----------------------------------------------------------------------
    def _check_unit_uses(self) -> None:
        value = self.unit_uses
        if not isinstance(value, list) or not value or not all(isinstance(u, str) and u in UNIT_USES for u in value):
            codes = ", ".join(UNIT_USES)
            raise FieldErrors(
                {"unit_uses": [str(T(f"适用房屋用途为以下代码的列表：{codes}", f"A list of unit use codes: {codes}"))]}
            )

    def prepare_draft(self, session: Session) -> None:
        """A new standard is a draft of its item's next revision."""
        self._check_unit_uses()
        self.status, self.supersedes_id = "draft", None
        item_id = self.item_id or (self.item.id if self.item is not None else None)
        if item_id is None:
            raise FieldErrors({"item": [str(T("必填", "Required"))]})
        self.revision = next_revision(session, item_id)

    def refuse_change(self, deleting: bool = False) -> None:
        """Only drafts and rejected standards are edited or deleted; an approved one is revised."""
        if not deleting:
            self._check_unit_uses()
        from sqlalchemy import inspect

        history = inspect(self).attrs.status.history
        old_status = history.deleted[0] if history.deleted else self.status
        if old_status not in ("draft", "rejected"):
            raise FieldErrors({"status": [str(MSG_EDIT_DRAFT)]})

    def revise(self, session: Session) -> FeeStandard:
        """A change to an approved (or retired) standard: a new draft revision, added."""
        if self.status not in ("approved", "retired"):
            raise FieldErrors(
                {"status": [str(T("只有已批准或已停用的标准可以修订", "Only an approved or retired standard can be revised"))]}
            )
        rev = self.new_revision()
        rev.revision = next_revision(session, self.item_id)
        session.add(rev)
        session.flush()
        return rev

    def declare(self, document: str | None = None, now: dt.datetime | None = None) -> None:
        if self.status not in ("draft", "rejected"):
            raise FieldErrors(
                {
                    "status": [
                        str(T("只有草稿或被驳回的标准可以申报", "Only a draft or rejected standard can be declared"))
                    ]
                }
            )
        document = document or self.basis_document
        if not document:
            raise FieldErrors({"basis_document": [str(T("申报须附依据文件", "Attach the basis document to declare"))]})
        self.basis_document = document
        self.status = "declared"
        self.declared_at = now or utcnow()

    def approve(self, approver_id: int, note: str | None = None, now: dt.datetime | None = None) -> None:
        """A Manager approves a declared standard; it must not overlap another effective one."""
        if self.status != "declared":
            raise FieldErrors(
                {"status": [str(T("只有已申报的标准可以批准", "Only a declared standard can be approved"))]}
            )
        if not self.estates:
            # Saved without an estate (the field is optional while drafting), it would bill nothing.
            raise FieldErrors(
                {
                    "estates": [
                        str(
                            T(
                                "未选择适用小区：此标准不会产生任何账单，请先选择小区",
                                "No estate chosen: this standard would bill nothing; choose its estates first",
                            )
                        )
                    ]
                }
            )
        clash = self.overlapping(ignore_id=self.supersedes_id)
        if clash is not None:
            raise FieldErrors(
                {
                    "effective_from": [
                        str(
                            T(
                                f"与已生效的标准（第 {clash.revision} 版，{clash.effective_from} 起）时间重叠",
                                f"Overlaps the effective standard (revision {clash.revision}, from {clash.effective_from})",
                            )
                        )
                    ]
                }
            )
        self._supersede()
        self.status = "approved"
        self.approved_by_id = approver_id
        self.approved_at = now or utcnow()
        self.decision_note = note

    def billing_warnings(self) -> list[str]:
        """What would keep an approved standard from billing (shown when it is declared and
        approved, and on its page): no estate, an inactive item, a one-off basis (monthly billing
        skips it), no unit of its uses in its estates, a zero price."""
        from models.archives import Unit

        out = []
        if not self.estates:
            out.append(str(T("未选择适用小区，不会产生账单", "No estate: it bills nothing")))
        item = self.item
        if item is not None and not item.active:
            out.append(str(T("收费项目已停用，不会产生账单", "The fee item is inactive: it bills nothing")))
        if self.basis == "one_off":
            out.append(
                str(T("一次性标准不参与月度计费", "A one-off standard is not used by monthly billing"))
            )
        elif self.estates and self.unit_uses:
            session = object_session(self)
            units = session.execute(
                select(Unit.id)
                .where(Unit.estate_id.in_([e.id for e in self.estates]), Unit.use.in_(list(self.unit_uses)))
                .limit(1)
            ).scalar()
            if units is None:
                out.append(
                    str(
                        T(
                            "适用小区内没有该用途的房屋，目前不会产生账单",
                            "No unit of these uses in its estates: it bills nothing for now",
                        )
                    )
                )
        if self.unit_price is not None and Decimal(self.unit_price) == 0:
            out.append(str(T("单价为 0，账单金额均为 0", "The unit price is 0: every line is 0.00")))
        return out

    def reject(self, note: str) -> None:
        if self.status != "declared":
            raise FieldErrors(
                {"status": [str(T("只有已申报的标准可以驳回", "Only a declared standard can be rejected"))]}
            )
        if not note:
            raise FieldErrors({"decision_note": [str(T("驳回须写明原因", "A rejection needs a reason"))]})
        self.status = "rejected"
        self.decision_note = note

    def retire(self, last_day: dt.date | None = None) -> None:
        if self.status != "approved":
            raise FieldErrors(
                {"status": [str(T("只有已批准的标准可以停用", "Only an approved standard can be retired"))]}
            )
        if last_day is not None:
            self.effective_to = last_day
        self.status = "retired"

    def new_revision(self) -> FeeStandard:
        """A change is a new version: a draft copy that will supersede this one when approved."""
        return FeeStandard(
            item_id=self.item_id,
            revision=self.revision + 1,
            supersedes_id=self.id,
            basis=self.basis,
            unit_price=self.unit_price,
            rounding=self.rounding,
            unit_uses=list(self.unit_uses),
            effective_from=self.effective_from,
            effective_to=self.effective_to,
            estates=list(self.estates),
            bill_unsold_to_developer=self.bill_unsold_to_developer,
            status="draft",
        )

    def _supersede(self) -> None:
        """Approving a revision ends the approved version it supersedes the day before this one
        starts (or retires it, when this one starts no later than it did). Bills keep the version
        they were made with (``Bill.standard_id``)."""
        old = self.supersedes
        if old is None or old.status != "approved":
            return
        if (old.effective_to or dt.date.max) < self.effective_from:
            return
        if old.effective_from < self.effective_from:
            old.effective_to = self.effective_from - dt.timedelta(days=1)
        else:
            old.status = "retired"

    def overlapping(self, ignore_id: int | None = None) -> FeeStandard | None:
        """Another approved standard of the same item whose scope (estates x uses) and dates meet
        this one's. ``ignore_id``: the version this revision supersedes (approval ends it)."""
        session = object_session(self)
        mine_estates = {e.id for e in self.estates}
        candidates = session.execute(
            select(FeeStandard).where(
                FeeStandard.item_id == self.item_id,
                FeeStandard.status == "approved",
                FeeStandard.id != (self.id or 0),
                FeeStandard.id != (ignore_id or 0),
            )
        ).scalars()
        for other in candidates:
            if not (mine_estates & {e.id for e in other.estates}):
                continue
            if not set(self.unit_uses) & set(other.unit_uses):
                continue
            a_end = self.effective_to or dt.date.max
            b_end = other.effective_to or dt.date.max
            if self.effective_from <= b_end and other.effective_from <= a_end:
                return other
        return None


class MeterReading(InUnitsEstate, AuditedModel):
    """A meter reading for a metered fee item (水、电、燃气)."""

    __tablename__ = "meter_reading"

    unit_id: Mapped[int] = mapped_column(ForeignKey("unit.id"), nullable=False)
    item_id: Mapped[int] = mapped_column(ForeignKey("fee_item.id"), nullable=False)
    period: Mapped[str] = mapped_column(String(7), nullable=False)
    read_on: Mapped[dt.date] = mapped_column(Date, nullable=False)
    reading: Mapped[Decimal] = mapped_column(Numeric(14, 2), nullable=False)
    previous_reading: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    is_replacement: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    quantity: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))

    unit = relationship("Unit", lazy="select")
    item = relationship("FeeItem", lazy="select")

    __table_args__ = (UniqueConstraint("unit_id", "item_id", "period", name="uq_meter_reading_unit_item_period"),)

    def check(self) -> None:
        errors = {}
        month_bounds(self.period or "")
        session = object_session(self)
        # Set through the relationships (forms, API), the keys are only filled by the flush.
        if self.unit_id is None and self.unit is not None:
            self.unit_id = self.unit.id
        if self.item_id is None and self.item is not None:
            self.item_id = self.item.id
        prev = session.execute(
            select(MeterReading)
            .where(
                MeterReading.unit_id == self.unit_id,
                MeterReading.item_id == self.item_id,
                MeterReading.period < self.period,
            )
            .order_by(MeterReading.period.desc())
            .limit(1)
        ).scalar()
        if self.reading is None or Decimal(self.reading) < 0:
            errors["reading"] = [str(T("读数不能为负数", "The reading cannot be negative"))]
        elif prev is not None:
            self.previous_reading = prev.reading
            if Decimal(self.reading) < Decimal(prev.reading) and not self.is_replacement:
                errors["reading"] = [
                    str(
                        T(
                            f"读数低于上期（{prev.reading}）；如已换表请勾选“换表”",
                            f"Below the previous reading ({prev.reading}); tick 'meter replaced' if the meter was changed",
                        )
                    )
                ]
        if not errors:
            base = (
                Decimal(0) if (self.is_replacement or self.previous_reading is None) else Decimal(self.previous_reading)
            )
            self.quantity = Decimal(self.reading) - base
        if errors:
            raise FieldErrors(errors)


class BillingRun(AuditedModel):
    """One billing of one period for one estate: who or what started it, counts and totals."""

    __tablename__ = "billing_run"

    estate_id: Mapped[int] = mapped_column(ForeignKey("estate.id"), nullable=False)
    period: Mapped[str] = mapped_column(String(7), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="running")
    started_by: Mapped[str] = mapped_column(String(64), nullable=False)  # a username or "beat"
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    lines_created: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    amount_created: Mapped[Decimal] = mapped_column(MONEY, nullable=False, default=Decimal("0"))
    lines_total: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    amount_total: Mapped[Decimal] = mapped_column(MONEY, nullable=False, default=Decimal("0"))
    # Prepaid balances this run used for the bills (models.payments.apply_prepaid).
    prepaid_applied: Mapped[Decimal] = mapped_column(MONEY, nullable=False, default=Decimal("0"), server_default="0")
    # Why a run billed nothing (or what it could not bill): shown on the run's screen and API.
    explanation: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)

    estate = relationship("Estate", lazy="select")

    __table_args__ = (Index("ix_billing_run_estate_period", "estate_id", "period"),)

    def __str__(self) -> str:
        return f"{self.period} #{self.id}"

    def start(self, username: str) -> None:
        """A run started on the form: its row is committed ``running`` and the job completes it."""
        if self.estate is None and self.estate_id is None:
            raise FieldErrors({"estate": [str(T("请选择小区", "Choose the estate"))]})
        month_bounds(self.period or "")
        self.status, self.started_by = "running", username[:64]
        self.lines_created = self.lines_total = 0
        self.amount_created = self.amount_total = Decimal(0)

    @property
    def reasons(self) -> list[T]:
        """The explanation, one reason a line, each in both languages (the job stores "zh / en")."""
        out = []
        for line in (self.explanation or "").splitlines():
            zh, _, en = line.partition(" / ")
            out.append(T(zh.strip(), (en or zh).strip()))
        return [r for r in out if r.zh]


class Bill(AuditedModel):
    """One bill line: a unit, a fee item, a period, the standard version used, the amount."""

    __tablename__ = "bill"

    estate_id: Mapped[int] = mapped_column(ForeignKey("estate.id"), nullable=False)
    unit_id: Mapped[int] = mapped_column(ForeignKey("unit.id"), nullable=False)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("owner.id"))  # None: the developer (unsold)
    billed_to_developer: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    item_id: Mapped[int] = mapped_column(ForeignKey("fee_item.id"), nullable=False)
    standard_id: Mapped[int | None] = mapped_column(ForeignKey("fee_standard.id"))
    period: Mapped[str] = mapped_column(String(7), nullable=False)
    # One-off charges (renovation deposit, a paid service) carry their own reference, e.g.
    # "service_order:17"; monthly lines have "" (not NULL, so the unique key holds on SQLite too).
    source: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    quantity: Mapped[Decimal] = mapped_column(Numeric(14, 4), nullable=False)
    unit_price: Mapped[Decimal] = mapped_column(PRICE, nullable=False)
    billed_days: Mapped[int | None] = mapped_column(Integer)
    amount: Mapped[Decimal] = mapped_column(MONEY, nullable=False)
    paid_amount: Mapped[Decimal] = mapped_column(MONEY, nullable=False, default=Decimal("0"))
    late_fee: Mapped[Decimal] = mapped_column(MONEY, nullable=False, default=Decimal("0"))
    late_fee_waived: Mapped[Decimal] = mapped_column(MONEY, nullable=False, default=Decimal("0"))
    waive_reason: Mapped[str | None] = mapped_column(String(200))
    # The local date the line was issued on; the due date is never before it plus the item's
    # payment term (``due_date_for``).
    issued_on: Mapped[dt.date] = mapped_column(Date, nullable=False)
    due_date: Mapped[dt.date] = mapped_column(Date, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="open")
    disputed: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    dispute_note: Mapped[str | None] = mapped_column(Text)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("billing_run.id"))

    estate = relationship("Estate", lazy="select")
    unit = relationship("Unit", lazy="select")
    owner = relationship("Owner", lazy="select")
    item = relationship("FeeItem", lazy="select")
    standard = relationship("FeeStandard", lazy="select")

    __table_args__ = (
        # The idempotency key of billing: a unit is billed once per item and period (monthly), or
        # once per source (one-off charges).
        UniqueConstraint("unit_id", "item_id", "period", "source", name="uq_bill_unit_item_period_source"),
        CheckConstraint(
            "amount >= 0 AND paid_amount >= 0 AND paid_amount <= amount + late_fee", name="ck_bill_amounts"
        ),
        CheckConstraint(
            "late_fee >= 0 AND late_fee_waived >= 0 AND late_fee_waived <= late_fee", name="ck_bill_late_fee"
        ),
        Index("ix_bill_open_due", "status", "due_date"),
        # Arrears read only the unpaid lines: a partial index that carries what the report sums,
        # so the report is an index-only scan (models/arrears.py).
        Index(
            "ix_bill_unpaid",
            "due_date",
            "unit_id",
            postgresql_where="status IN ('open', 'partial')",
            postgresql_include=["owner_id", "estate_id", "amount", "late_fee", "late_fee_waived", "paid_amount", "disputed", "period"],
        ),
        Index("ix_bill_unit_period", "unit_id", "period"),
        Index("ix_bill_estate_period", "estate_id", "period"),
        Index("ix_bill_estate", "estate_id", "id"),  # the scope filter, newest first
        # A month's billed and collected sums (the workbench, per estate or for the company):
        # an index-only scan of the month's lines.
        Index(
            "ix_bill_period_money",
            "period",
            "estate_id",
            postgresql_include=["status", "amount", "late_fee", "late_fee_waived", "paid_amount"],
        ),
    )

    @property
    def outstanding(self) -> Decimal:
        """What is still owed on this line: principal plus unwaived late fee, less payments."""
        return Decimal(self.amount) + Decimal(self.late_fee) - Decimal(self.late_fee_waived) - Decimal(self.paid_amount)

    @property
    def late_fee_left(self) -> Decimal:
        """The late fee not yet waived: what a waiver may still take."""
        return Decimal(self.late_fee) - Decimal(self.late_fee_waived)

    # --- a Manager's steps: each under the unit's money lock, on the bill as it is now ---------
    def _locked(self, session: Session) -> None:
        read = self.version
        lock_bill(session, self)
        if self.version != read:  # a payment, a late-fee run or a waiver came first
            raise Conflict(str(MSG_CHANGED), current_version=self.version)

    def dispute(self, session: Session, disputed: bool, note: str | None = None) -> None:
        """Mark the bill disputed (with what is disputed) or clear the dispute. A disputed bill is
        not allocated automatically, late-feed or dunned."""
        self._locked(session)
        set_disputed(self, disputed, note)

    def waive(self, session: Session, amount, reason: str | None = None) -> None:
        """Waive (part of) the late fee, with the reason kept."""
        self._locked(session)
        waive_late_fee(self, amount, reason)

    def prepare_manual(self, session: Session) -> None:
        """A one-off line added by hand (a charge with its own reference): estate, owner and
        amount follow from the unit and the price; monthly lines come from billing runs only."""
        from jobs.billing import _current_owners
        from models.archives import Unit

        errors = {}
        self.source = (self.source or "").strip()
        if not self.source:
            errors["source"] = [
                str(T("手工账单须填写来源单据号（月度账单由计费生成）", "A hand-made line needs its source reference"))
            ]
        unit = self.unit or (session.get(Unit, self.unit_id) if self.unit_id else None)
        if unit is None:
            errors["unit"] = [str(T("必填", "Required"))]
        item = self.item or (session.get(FeeItem, self.item_id) if self.item_id else None)
        if item is None:
            errors["item"] = [str(T("必填", "Required"))]
        if self.unit_price is None or Decimal(self.unit_price) < 0:
            errors["unit_price"] = [str(T("单价不能为负数", "The unit price cannot be negative"))]
        if self.quantity is not None and Decimal(self.quantity) <= 0:
            errors["quantity"] = [str(T("数量须大于 0", "The quantity must be above 0"))]
        if errors:
            raise FieldErrors(errors)
        first, nxt = month_bounds(self.period or "")
        self.estate_id = unit.estate_id
        self.billed_to_developer = unit.status == "unsold"
        owner = None if self.billed_to_developer else _current_owners(session, [unit.id], first, nxt).get(unit.id)
        self.owner_id = owner
        self.quantity = Decimal(self.quantity or 1)
        self.amount = round_money(self.quantity * Decimal(self.unit_price), "half_up_cent")
        self.issued_on = local_today()
        if self.due_date is None:
            self.due_date = due_date_for(item, self.issued_on)
        # An earlier due date than the payment term allows is refused by before_insert (due_date).
        self.status = "open"

    def before_insert(self, session: Session) -> None:
        """Every bill made through the ORM gets the payment term rule (the set-based billing path
        applies the same ``due_date_for``)."""
        item = self.item or (session.get(FeeItem, self.item_id) if self.item_id else None)
        if item is None:
            raise FieldErrors({"item": [str(T("必填", "Required"))]})
        if self.issued_on is None:
            self.issued_on = local_today()
        one_off = bool(self.source)
        if self.due_date is None:
            self.due_date = due_date_for(item, self.issued_on, None if one_off else self.period)
        term = payment_term(item)
        earliest = self.issued_on + dt.timedelta(days=term)
        if self.due_date < earliest:
            raise FieldErrors(
                {
                    "due_date": [
                        str(
                            T(
                                f"缴费期限不能早于出账日加缴费期（{term} 天），即 {earliest}",
                                f"Cannot be due before the issue date plus the payment term ({term} days): {earliest}",
                            )
                        )
                    ]
                }
            )

    def check(self) -> None:
        errors = {}
        month_bounds(self.period or "")
        if self.status not in BILL_STATUSES:
            errors["status"] = [str(T("状态无效", "Invalid status"))]
        if Decimal(self.amount) < 0:
            errors["amount"] = [str(T("金额不能为负数", "The amount cannot be negative"))]
        if self.outstanding < 0:
            errors["paid_amount"] = [str(T("实收超过应收", "Paid more than owed"))]
        if errors:
            raise FieldErrors(errors)

    def __str__(self) -> str:
        return f"{self.period} {self.item.name if self.item else ''} ¥{self.amount}"


MSG_CHANGED = T(
    "该账单已被他人修改（收款、滞纳金或减免），请刷新后再办理（本次操作未保存）",
    "Someone changed this bill (a payment, a late fee or a waiver); reload it and try again (nothing was saved)",
)


def lock_bill(session: Session, bill: Bill) -> Bill:
    """Take the unit's money lock (the one payments, voids, refunds and billing's prepaid use
    take), then the bill's row, and read the bill as it is now: a waiver or a dispute decided on
    amounts read before a concurrent payment or late-fee run would overwrite them."""
    from models.payments import _lock_unit

    _lock_unit(session, bill.unit_id)
    session.execute(
        select(Bill).where(Bill.id == bill.id).with_for_update().execution_options(populate_existing=True)
    ).scalar_one()
    return bill


def set_disputed(bill: Bill, disputed: bool, note: str | None) -> None:
    if disputed and not (note or "").strip():
        raise FieldErrors({"dispute_note": [str(T("请写明争议内容", "Describe the dispute"))]})
    bill.disputed = disputed
    bill.dispute_note = (note or "").strip() or bill.dispute_note


def waive_late_fee(bill: Bill, amount, reason: str | None) -> None:
    """Waive (part of) a bill's late fee; the reason is required and kept."""
    from models.payments import sync_bill_status

    if not (reason or "").strip():
        raise FieldErrors({"waive_reason": [str(T("减免须写明原因", "A waiver needs a reason"))]})
    try:
        value = Decimal(str(amount))
    except (InvalidOperation, ValueError):
        raise FieldErrors({"amount": [str(T("金额无效", "Invalid amount"))]}) from None
    if not value.is_finite() or value <= 0 or value.as_tuple().exponent < -2:
        raise FieldErrors({"amount": [str(T("金额须大于 0，最多 2 位小数", "Above 0, at most 2 decimal places"))]})
    if Decimal(bill.late_fee_waived) + value > Decimal(bill.late_fee):
        raise FieldErrors(
            {"amount": [str(T(f"减免超过滞纳金（{bill.late_fee}）", f"More than the late fee ({bill.late_fee})"))]}
        )
    bill.late_fee_waived = Decimal(bill.late_fee_waived) + value
    bill.waive_reason = reason.strip()[:200]
    # What is owed changed: a bill whose rest was only the waived fee is paid now.
    sync_bill_status(bill)


def next_revision(session: Session, item_id: int) -> int:
    last = session.execute(
        select(FeeStandard.revision)
        .where(FeeStandard.item_id == item_id)
        .order_by(FeeStandard.revision.desc())
        .limit(1)
    ).scalar()
    return (last or 0) + 1


def post_one_off_charge(
    session: Session,
    *,
    unit,
    item: FeeItem,
    amount: Decimal,
    source: str,
    period: str | None = None,
    due_date: dt.date | None = None,
    quantity: Decimal = Decimal(1),
    issued_on: dt.date | None = None,
) -> Bill:
    """Put a one-off charge (a renovation deposit or fee, a paid service) on the unit's bills.
    Idempotent by ``source``: posting the same source twice returns the existing line. Due the
    issue date plus the item's payment term (``due_date_for``); an earlier ``due_date`` is refused.
    The unit's prepaid balance meets it at the next billing or daily late-fee run
    (``models.payments.apply_prepaid_balances``), or at once if the caller calls ``apply_prepaid``."""
    existing = session.execute(
        select(Bill).where(Bill.unit_id == unit.id, Bill.item_id == item.id, Bill.source == source)
    ).scalar()
    if existing is not None:
        return existing
    amount = Decimal(amount)
    if amount < 0 or amount.as_tuple().exponent < -2:
        raise FieldErrors(
            {"amount": [str(T("金额须为非负数，最多 2 位小数", "The amount must be >= 0 with at most 2 decimals"))]}
        )
    today = issued_on or local_today()
    from models.archives import Ownership

    owner_id = session.execute(
        select(Ownership.owner_id)
        .where(Ownership.unit_id == unit.id, (Ownership.until.is_(None)) | (Ownership.until >= today))
        .order_by(Ownership.share.desc(), Ownership.id)
        .limit(1)
    ).scalar()
    bill = Bill(
        estate_id=unit.estate_id,
        unit_id=unit.id,
        owner_id=owner_id,
        billed_to_developer=False,
        item_id=item.id,
        item=item,
        standard_id=None,
        period=period or f"{today:%Y-%m}",
        source=source,
        quantity=Decimal(quantity),
        unit_price=amount / Decimal(quantity) if quantity else amount,
        amount=amount,
        issued_on=today,
        due_date=due_date or due_date_for(item, today),
        status="open",
    )
    session.add(bill)
    return bill
