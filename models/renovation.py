"""Renovation management (装修管理): application, approval, permit, inspections, violations and
rectification, extensions, completion acceptance, deposit refund. DESIGN.md item 8. Deposits and
fees are posted to the unit's bills (one-off lines with ``source`` ``renovation:<id>:deposit`` /
``:fee``); the refund is recorded as a ``models.payments.Refund``, less recorded deductions.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.i18n import T
from models.base import AuditedModel, UTCDateTime
from models.errors import FieldErrors
from models.validators import check_phone

MONEY = Numeric(14, 2)

RENOVATION_SCOPES = {
    "walls": T("墙面", "Walls"),
    "plumbing": T("给排水", "Plumbing"),
    "electrical": T("电路", "Electrical"),
    "floors": T("地面", "Floors"),
    "ceiling": T("吊顶", "Ceiling"),
    "balcony": T("阳台", "Balcony"),
    "kitchen": T("厨房", "Kitchen"),
    "bathroom": T("卫生间（含防水）", "Bathroom (waterproofing)"),
    "doors_windows": T("门窗", "Doors and windows"),
    "air_conditioning": T("空调安装", "Air conditioning"),
}
RENOVATION_STATUSES = {
    "applied": T("已申请", "Applied"),
    "approved": T("已批准", "Approved"),
    "rejected": T("已驳回", "Rejected"),
    "active": T("施工中", "In progress"),
    "completed": T("已完工待验收", "Completed, awaiting acceptance"),
    "accepted": T("验收合格", "Accepted"),
    "failed": T("验收不合格", "Failed acceptance"),
    "refunded": T("押金已退", "Deposit refunded"),
    "cancelled": T("已取消", "Cancelled"),
}
RENOVATION_TRANSITIONS = {
    "applied": {"approved", "rejected", "cancelled"},
    "approved": {"active", "cancelled"},
    "rejected": set(),
    "active": {"completed"},
    "completed": {"accepted", "failed"},
    "failed": {"completed"},  # after rectification, apply for acceptance again
    "accepted": {"refunded"},
    "refunded": set(),
    "cancelled": set(),
}
RECTIFICATION_STATUSES = {
    "open": T("整改中", "Open"),
    "done": T("已整改", "Rectified"),
    "verified": T("已复查", "Verified"),
}
EXTENSION_STATUSES = {
    "requested": T("待审批", "Requested"),
    "approved": T("已批准", "Approved"),
    "rejected": T("已驳回", "Rejected"),
}


class Renovation(AuditedModel):
    __tablename__ = "renovation"

    number: Mapped[str] = mapped_column(String(24), nullable=False, unique=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("unit.id"), nullable=False)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("owner.id"))
    contractor: Mapped[str] = mapped_column(String(100), nullable=False)
    person_in_charge: Mapped[str] = mapped_column(String(64), nullable=False)
    phone: Mapped[str] = mapped_column(String(32), nullable=False)
    workers: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    scope: Mapped[list] = mapped_column(JSON, nullable=False, default=list)
    load_bearing_change: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    description: Mapped[str | None] = mapped_column(Text)
    planned_start: Mapped[dt.date] = mapped_column(Date, nullable=False)
    planned_end: Mapped[dt.date] = mapped_column(Date, nullable=False)
    working_hours: Mapped[str] = mapped_column(String(64), nullable=False, default="08:00-12:00,14:00-18:00")
    drawings: Mapped[list] = mapped_column(JSON, nullable=False, default=list)  # stored file names
    deposit: Mapped[Decimal] = mapped_column(MONEY, nullable=False, default=Decimal("0"))
    management_fee: Mapped[Decimal] = mapped_column(MONEY, nullable=False, default=Decimal("0"))
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="applied")
    decision_note: Mapped[str | None] = mapped_column(Text)
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("ab_user.id"))
    permit_no: Mapped[str | None] = mapped_column(String(32), unique=True)
    actual_end: Mapped[dt.date | None] = mapped_column(Date)
    acceptance_note: Mapped[str | None] = mapped_column(Text)
    deposit_refunded: Mapped[Decimal | None] = mapped_column(MONEY)
    refund_id: Mapped[int | None] = mapped_column(ForeignKey("refund.id"))
    next_inspection_on: Mapped[dt.date | None] = mapped_column(Date)
    overdue_alerted_on: Mapped[dt.date | None] = mapped_column(Date)

    unit = relationship("Unit", lazy="select")
    owner = relationship("Owner", lazy="select")
    decided_by = relationship("User", foreign_keys=[decided_by_id], lazy="select")
    inspections = relationship(
        "RenovationInspection", back_populates="renovation", lazy="select", order_by="RenovationInspection.id"
    )
    deductions = relationship("DepositDeduction", back_populates="renovation", lazy="select")

    __personal__ = {"phone": "phone"}

    __table_args__ = (
        CheckConstraint("planned_end >= planned_start", name="ck_renovation_dates"),
        CheckConstraint("deposit >= 0 AND management_fee >= 0", name="ck_renovation_money"),
        Index("ix_renovation_unit", "unit_id"),
        Index("ix_renovation_status", "status"),
    )

    def check(self) -> None:
        errors = {}
        if self.load_bearing_change:
            errors["load_bearing_change"] = [
                str(T("不得改动承重结构，申请不予受理", "Changes to load-bearing structure are refused"))
            ]
        if not self.scope or any(s not in RENOVATION_SCOPES for s in self.scope):
            errors["scope"] = [str(T("请选择装修范围", "Choose the scope of work"))]
        if self.planned_start and self.planned_end and self.planned_end < self.planned_start:
            errors["planned_end"] = [str(T("结束日期不能早于开始日期", "The end date cannot be before the start date"))]
        try:
            self.phone = check_phone(self.phone)
        except ValueError as e:
            errors["phone"] = [str(e)]
        if not self.phone and "phone" not in errors:
            errors["phone"] = [str(T("必填", "Required"))]
        if self.workers is not None and self.workers < 1:
            errors["workers"] = [str(T("至少 1 人", "At least one"))]
        if self.status not in RENOVATION_STATUSES:
            errors["status"] = [str(T("状态无效", "Invalid status"))]
        if errors:
            raise FieldErrors(errors)

    def __str__(self) -> str:
        return self.number


class RenovationInspection(AuditedModel):
    """An inspection during the works (巡查): findings and photos; a violation opens a
    rectification order."""

    __tablename__ = "renovation_inspection"

    renovation_id: Mapped[int] = mapped_column(ForeignKey("renovation.id"), nullable=False)
    inspected_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    inspector_id: Mapped[int | None] = mapped_column(ForeignKey("ab_user.id"))
    findings: Mapped[str] = mapped_column(Text, nullable=False)
    photos: Mapped[list] = mapped_column(JSON, nullable=False, default=list)
    violation: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)

    renovation = relationship("Renovation", back_populates="inspections", lazy="select")
    inspector = relationship("User", foreign_keys=[inspector_id], lazy="select")


class RectificationOrder(AuditedModel):
    """整改通知: what must be put right by when; late ones escalate like tickets."""

    __tablename__ = "rectification_order"

    renovation_id: Mapped[int] = mapped_column(ForeignKey("renovation.id"), nullable=False)
    inspection_id: Mapped[int | None] = mapped_column(ForeignKey("renovation_inspection.id"))
    description: Mapped[str] = mapped_column(Text, nullable=False)
    deadline: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="open")
    done_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    steps_done: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_due_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    renovation = relationship("Renovation", lazy="select")
    inspection = relationship("RenovationInspection", lazy="select")

    __table_args__ = (Index("ix_rectification_next_due", "next_due_at"),)


class RenovationExtension(AuditedModel):
    """A request to extend the planned end date; approved or rejected."""

    __tablename__ = "renovation_extension"

    renovation_id: Mapped[int] = mapped_column(ForeignKey("renovation.id"), nullable=False)
    new_end: Mapped[dt.date] = mapped_column(Date, nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="requested")
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    decision_note: Mapped[str | None] = mapped_column(Text)

    renovation = relationship("Renovation", lazy="select")


class DepositDeduction(AuditedModel):
    """A recorded deduction from the deposit (damage to common areas, unrectified violations)."""

    __tablename__ = "deposit_deduction"

    renovation_id: Mapped[int] = mapped_column(ForeignKey("renovation.id"), nullable=False)
    amount: Mapped[Decimal] = mapped_column(MONEY, nullable=False)
    reason: Mapped[str] = mapped_column(String(200), nullable=False)

    renovation = relationship("Renovation", back_populates="deductions", lazy="select")

    __table_args__ = (CheckConstraint("amount > 0", name="ck_deposit_deduction_amount"),)


# Complaints caused by a renovation link to it (Ticket.renovation_id) and show on its page.
__all__ = [
    "DepositDeduction",
    "RectificationOrder",
    "Renovation",
    "RenovationExtension",
    "RenovationInspection",
]
