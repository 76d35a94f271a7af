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

MONEY = Numeric(14, 2)

PAYMENT_METHODS = {
    "cash": T("现金", "Cash"),
    "bank_transfer": T("银行转账", "Bank transfer"),
    "wechat": T("微信支付", "WeChat Pay"),
    "alipay": T("支付宝", "Alipay"),
}
PAYMENT_STATUSES = {"valid": T("有效", "Valid"), "void": T("已作废", "Void")}
DUNNING_STAGES = {
    "reminder": T("缴费提醒", "Reminder"),
    "formal": T("催缴通知", "Formal notice"),
    "final": T("最后催缴通知", "Final notice"),
}


class ReceiptCounter(AuditedModel):
    """The last receipt number used per estate and year; locked while a payment takes the next."""

    __tablename__ = "receipt_counter"

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
    )

    def __str__(self) -> str:
        return self.receipt_no


class PaymentAllocation(AuditedModel):
    """How much of a payment settles which bill line. Reversed (``reversed_at``) when the payment
    is voided; never deleted."""

    __tablename__ = "payment_allocation"

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


class Refund(AuditedModel):
    """Prepaid balance paid back to the payer."""

    __tablename__ = "refund"

    unit_id: Mapped[int] = mapped_column(ForeignKey("unit.id"), nullable=False)
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payment.id"))
    amount: Mapped[Decimal] = mapped_column(MONEY, nullable=False)
    method: Mapped[str] = mapped_column(String(16), nullable=False, default="bank_transfer")
    reason: Mapped[str] = mapped_column(String(200), nullable=False)
    refunded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)

    unit = relationship("Unit", lazy="select")
    payment = relationship("Payment", lazy="select")

    __table_args__ = (CheckConstraint("amount > 0", name="ck_refund_amount"),)


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
    )
