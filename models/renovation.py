"""Renovation management (装修管理): application, approval, permit, inspections, violations and
rectification, extensions, completion acceptance, deposit refund. DESIGN.md item 8. Deposits and
fees are posted to the unit's bills (one-off lines with ``source`` ``renovation:<id>:deposit`` /
``:fee``); the refund is recorded as a ``models.payments.Refund``, less recorded deductions.

Concurrency: a child row that changes or depends on the renovation's money or state (deduction,
extension, inspection, rectification order) takes the renovation's row lock in its own flush hooks
(every path: API, screens, workflow, jobs) and checks the renovation as committed; the moves that
read those children (refund, acceptance, completion, cancel) take the same lock first
(``lock_renovation``). Lock order: renovation, then unit, then bills (as payments do).
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
    event,
)
from sqlalchemy.orm import Mapped, Session, mapped_column, object_session, relationship

from app.i18n import T
from models.base import AuditedModel, UTCDateTime
from models.errors import Conflict, FieldErrors
from models.scope import InUnitsEstate
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


class Renovation(InUnitsEstate, AuditedModel):
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
    # The unit's status before the works began (restored when they end; 'occupied' if unknown).
    unit_status_before: Mapped[str | None] = mapped_column(String(16))

    unit = relationship("Unit", lazy="select")
    owner = relationship("Owner", lazy="select")
    decided_by = relationship("User", foreign_keys=[decided_by_id], lazy="select")
    inspections = relationship(
        "RenovationInspection", back_populates="renovation", lazy="select", order_by="RenovationInspection.id"
    )
    deductions = relationship("DepositDeduction", back_populates="renovation", lazy="select")
    # Read-only views for the renovation's page.
    rectifications = relationship("RectificationOrder", viewonly=True, lazy="select", order_by="RectificationOrder.id")
    extensions = relationship("RenovationExtension", viewonly=True, lazy="select", order_by="RenovationExtension.id")
    # Complaints caused by this renovation (Ticket.renovation_id).
    complaints = relationship(
        "Ticket",
        primaryjoin="Ticket.renovation_id == Renovation.id",
        foreign_keys="Ticket.renovation_id",
        viewonly=True,
        lazy="select",
        order_by="Ticket.id",
    )

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

    # --- facts for its page (and its API record) ------------------------------------------------
    @property
    def has_permit(self) -> bool:
        """Approved and not withdrawn: the permit (装修许可证) can be printed."""
        return bool(self.permit_no) and self.status not in ("applied", "rejected", "cancelled")

    @property
    def deducted(self) -> Decimal:
        """The deductions recorded against the deposit."""
        return deductions_total(object_session(self), self)

    @property
    def refundable(self) -> Decimal:
        """What a refund would pay now: the deposit less the deductions (nothing once refunded)."""
        if self.deposit_refunded is not None:
            return Decimal("0.00")
        return refund_amount(object_session(self), self)

    # --- the workflow as the screens and the API run it (views/renovation.py declares each one);
    # every method calls the module function of the same name below, shared with the jobs. ------
    def approve(self, session, user, note: str | None = None) -> None:
        approve(session, self, user_id=getattr(user, "id", None), note=note)

    def reject(self, session, user, reason: str) -> None:
        reject(session, self, reason, user_id=getattr(user, "id", None))

    def start(self, session) -> None:
        start(session, self)

    def complete(self, session) -> None:
        complete(session, self)

    def accept(self, session, passed: bool, note: str | None = None):
        return accept(session, self, passed, note)

    def refund(self, session, method: str | None = None, reason: str | None = None):
        return refund_deposit(session, self, method=method or "bank_transfer", reason=reason)

    def cancel(self, session, reason: str) -> None:
        cancel(session, self, reason)

    def add_drawings(self, drawings: list[str]) -> None:
        """Stored drawings (views/uploads.py) added to the application's."""
        if not drawings:
            raise _err("drawings", "请选择文件", "Choose the files")
        self.drawings = [*(self.drawings or []), *drawings]

    def record_inspection(self, session, user, findings: str, violation: bool = False, photos=()):
        return record_inspection(
            session, self, findings, violation=violation, photos=photos or (), inspector_id=getattr(user, "id", None)
        )

    def request_extension(self, session, new_end: dt.date, reason: str):
        return request_extension(session, self, new_end, reason)

    def deduct(self, session, amount: Decimal, reason: str):
        return record_deduction(session, self, amount, reason)

    def link_complaint(self, session, ticket: str):
        """Link a complaint (by its number, or its id) to the renovation that caused it."""
        from sqlalchemy import or_, select

        from models.desk import Ticket

        ref = str(ticket or "").strip()
        if not ref:
            raise _err("ticket", "请填写投诉单编号", "Give the complaint's number")
        cond = Ticket.number == ref
        if ref.isdigit() and len(ref) < 15:
            cond = or_(cond, Ticket.id == int(ref))
        row = session.execute(select(Ticket).where(cond, Ticket.archived_at.is_(None)).limit(1)).scalar()
        if row is None:
            raise _err("ticket", "没有这个求助单", "No such ticket")
        if row.kind != "complaint":
            raise _err("ticket", "只有投诉可以关联到装修", "Only a complaint can be linked to a renovation")
        row.renovation_id = self.id
        if row.complaint_about is None:
            row.complaint_about = "renovation"
        session.flush()
        return row


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

    # --- hooks run on every write path (models/base.py) ----------------------------------
    def before_insert(self, session: Session) -> None:
        # Under the renovation's lock: never an inspection (nor the order a violation opens) on
        # works accepted or refunded meanwhile; the acceptance takes the same lock.
        renovation = lock_renovation(session, _parent_id(self))
        check_inspectable(renovation)
        self.findings = _text(self.findings, "findings", 4000, required=True)
        self.violation = bool(self.violation)
        from models.base import current_actor_id, utcnow

        if self.inspected_at is None:
            self.inspected_at = utcnow()
        if self.inspector_id is None and self.inspector is None:
            self.inspector_id = current_actor_id(session)  # who records it inspected
        if renovation.status == "active":
            _next_inspection_moves_on(session, renovation)

    def after_insert(self, session: Session) -> None:
        # In the same transaction (flushed before the commit): a violation's rectification order.
        if self.violation:
            renovation = session.get(Renovation, self.renovation_id)
            open_rectification(session, renovation, self.findings, inspection=self, now=self.inspected_at, flush=False)


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

    def before_insert(self, session: Session) -> None:
        # An open order stops the acceptance, which counts them under the same lock.
        check_inspectable(lock_renovation(session, _parent_id(self)))
        self.description = _text(self.description, "description", 4000, required=True)
        if self.deadline is None:
            from models.base import utcnow

            self.deadline = utcnow() + dt.timedelta(days=int(_cfg("RECTIFICATION_DAYS", 3)))
        self.status = self.status or "open"
        self.steps_done = self.steps_done or 0
        if self.status == "open" and not self.steps_done and self.next_due_at is None:
            self.next_due_at = self.deadline

    def before_update(self, session: Session) -> None:
        if _parent_changed(self):  # moved to another renovation: the same rule as a new order
            check_inspectable(lock_renovation(session, _parent_id(self)))

    def rectified(self, session) -> None:
        rectification_done(session, self)

    def verify(self, session) -> None:
        rectification_verify(session, self)


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

    def before_insert(self, session: Session) -> None:
        # Under the renovation's lock: two requests at once cannot both find "none pending".
        renovation = lock_renovation(session, _parent_id(self))
        self.status = self.status or "requested"
        if self.status == "requested":
            self.new_end, self.reason = check_extension(session, renovation, self.new_end, self.reason)

    def before_update(self, session: Session) -> None:
        if _parent_changed(self):
            raise _err("renovation", "延期申请不能改到其他装修", "An extension cannot move to another renovation")

    def approve(self, session, note: str | None = None) -> None:
        decide_extension(session, self, True, note)

    def reject(self, session, note: str) -> None:
        decide_extension(session, self, False, note)


class DepositDeduction(AuditedModel):
    """A recorded deduction from the deposit (damage to common areas, unrectified violations)."""

    __tablename__ = "deposit_deduction"

    renovation_id: Mapped[int] = mapped_column(ForeignKey("renovation.id"), nullable=False)
    amount: Mapped[Decimal] = mapped_column(MONEY, nullable=False)
    reason: Mapped[str] = mapped_column(String(200), nullable=False)

    renovation = relationship("Renovation", back_populates="deductions", lazy="select")

    __table_args__ = (CheckConstraint("amount > 0", name="ck_deposit_deduction_amount"),)

    # Every write of a deduction changes the refund: it takes the renovation's lock and finds the
    # renovation still taking deductions, or it is refused. The refund takes the same lock before
    # it sums the deductions, so a deduction is either counted by the refund or refused.
    def before_insert(self, session: Session) -> None:
        renovation = lock_renovation(session, _parent_id(self))
        self.amount, self.reason = check_deduction(renovation, self.amount, self.reason)

    def before_update(self, session: Session) -> None:
        for renovation_id in sorted({_parent_id(self), *_old_parent_ids(self)}):
            renovation = lock_renovation(session, renovation_id)
            self.amount, self.reason = check_deduction(renovation, self.amount, self.reason)

    def before_delete(self, session: Session) -> None:
        check_deduction(lock_renovation(session, self.renovation_id), self.amount, self.reason)


# --- the workflow ------------------------------------------------------------------------------
# Shared by the screens, the API and the jobs. They flush but never commit (the caller commits);
# every move not in RENOVATION_TRANSITIONS is refused with a FieldErrors saying why.
LIVE_STATUSES = ("approved", "active", "completed", "failed")  # a unit has at most one of these
WORKING_STATUSES = ("active", "completed", "failed")  # inspections, deductions
CENT = Decimal("0.01")
DELETE_GUARDED = (DepositDeduction,)


def _cfg(name: str, default):
    from flask import current_app, has_app_context

    return current_app.config.get(name, default) if has_app_context() else default


def local_today(now: dt.datetime | None = None) -> dt.date:
    from zoneinfo import ZoneInfo

    from models.base import utcnow

    return (now or utcnow()).astimezone(ZoneInfo(_cfg("DISPLAY_TIMEZONE", "Asia/Shanghai"))).date()


def _err(field: str, zh: str, en: str) -> FieldErrors:
    return FieldErrors({field: [str(T(zh, en))]})


MSG_STALE = T(
    "该装修申请已被他人修改，请刷新后再办理（本次操作未保存）",
    "Someone else changed this renovation; reload it and try again (nothing was saved)",
)


# --- locks: a child that changes or depends on its renovation's money or state -----------------
def lock_row(session, model, pk) -> None:
    """Lock one row until the transaction ends. PostgreSQL: ``SELECT ... FOR UPDATE``. SQLite has
    no row locks: a no-op UPDATE of the row takes the database's write lock instead (SQLite admits
    one writer at a time, held to the commit), so what is read after it, and the write that
    follows, happen in one write transaction that no other writer can interleave with."""
    from sqlalchemy import select, update

    table = model.__table__
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(table.c.id).where(table.c.id == pk).with_for_update())
    else:
        session.execute(update(table).where(table.c.id == pk).values(id=table.c.id))


def lock_renovation(session, renovation_id) -> Renovation:
    """Take the renovation's lock and return it as now committed (read again after the lock),
    unless this transaction has changed it itself. Every write of a child that changes or depends
    on the renovation's money or state (deduction, extension, inspection, rectification order)
    and every move that reads those children (acceptance, completion, refund, cancel) takes it
    first: they happen one after the other, each seeing what the one before it committed."""
    if renovation_id is None:
        raise _err("renovation", "请选择装修", "Choose the renovation")
    renovation = lock_and_read(session, Renovation, renovation_id)
    if renovation is None:
        raise _err("renovation", "没有这个装修申请", "No such renovation")
    return renovation


def lock_and_read(session, model, pk):
    """``lock_row``, then the row as now committed: loaded, or read again when the session holds
    an older copy, unless this transaction has changed it itself (its own changes stand)."""
    from sqlalchemy import inspect as sa_inspect

    lock_row(session, model, pk)
    mine = session.identity_map.get(session.identity_key(model, pk))
    if mine is None:
        return session.get(model, pk)
    if mine not in session.new and not session.is_modified(mine, include_collections=False):
        # Columns only: a child just appended to one of its collections (a backref) stays
        # pending, and the object stays as the flush in progress found it.
        session.refresh(mine, attribute_names=[c.key for c in sa_inspect(model).column_attrs])
    return mine


def _lock_for_move(session, renovation: Renovation) -> None:
    """A move of the renovation itself: its lock, and the version the caller read must still be
    the committed one (a move decided on a stale read is a Conflict, not an overwrite)."""
    read = renovation.version
    current = lock_renovation(session, renovation.id)
    if current.version != read:
        raise Conflict(str(MSG_STALE), current_version=current.version)


def _parent_id(child) -> int | None:
    """The renovation a child row points to: the relation when a form or schema set it (the key
    follows only later in the flush), else the key."""
    from sqlalchemy import inspect as sa_inspect

    if sa_inspect(child).attrs["renovation"].history.has_changes() or child.renovation_id is None:
        return child.renovation.id if child.renovation is not None else None
    return child.renovation_id


def _old_parent_ids(child) -> set[int]:
    from sqlalchemy import inspect as sa_inspect

    attrs = sa_inspect(child).attrs
    old = {r.id for r in attrs["renovation"].history.deleted if r is not None}
    old |= {rid for rid in attrs["renovation_id"].history.deleted if rid is not None}
    return old


def _parent_changed(child) -> bool:
    return bool(_old_parent_ids(child) - {_parent_id(child)})


def _next_inspection_moves_on(session, renovation: Renovation, now=None) -> None:
    """Bookkeeping, not a person's edit of the renovation: no version bump, so an inspection never
    makes someone's open renovation form (or move) conflict."""
    from sqlalchemy import update
    from sqlalchemy.orm.attributes import set_committed_value

    day = local_today(now) + dt.timedelta(days=int(_cfg("RENOVATION_INSPECTION_DAYS", 3)))
    session.execute(
        update(Renovation.__table__).where(Renovation.__table__.c.id == renovation.id).values(next_inspection_on=day)
    )
    set_committed_value(renovation, "next_inspection_on", day)


# Deleting a row runs no hook in models/base.py: the children that guard money get theirs here.
@event.listens_for(Session, "before_flush")
def _before_delete_hooks(session, flush_context, instances) -> None:
    for obj in list(session.deleted):
        if isinstance(obj, DELETE_GUARDED):
            obj.before_delete(session)


def _status_label(status: str, lang: str) -> str:
    label = RENOVATION_STATUSES.get(status)
    return label.resolve(lang) if label is not None else status


def require_move(renovation: Renovation, to: str) -> None:
    """Refuse a move RENOVATION_TRANSITIONS does not allow, saying why and what may follow."""
    allowed = RENOVATION_TRANSITIONS.get(renovation.status, set())
    if to in allowed:
        return
    nxt = [s for s in RENOVATION_STATUSES if s in allowed]

    def say(lang: str, template: str, none: str, sep: str) -> str:
        tail = sep.join(_status_label(s, lang) for s in nxt) if nxt else none
        return template.format(cur=_status_label(renovation.status, lang), to=_status_label(to, lang), tail=tail)

    raise FieldErrors(
        {
            "status": [
                str(
                    T(
                        say("zh", "装修申请当前为“{cur}”，不能转为“{to}”；可转为：{tail}", "无（已结束）", "、"),
                        say(
                            "en",
                            "The renovation is {cur}; it cannot become {to}. Allowed next: {tail}",
                            "none (it is finished)",
                            ", ",
                        ),
                    )
                )
            ]
        }
    )


def next_renovation_number(session, now: dt.datetime | None = None) -> str:
    """ZX + local date + a 3-digit sequence of the day; the unique index settles races."""
    from sqlalchemy import select

    prefix = f"ZX{local_today(now):%Y%m%d}-"
    last = session.execute(
        select(Renovation.number)
        .where(Renovation.number.startswith(prefix))
        .order_by(Renovation.number.desc())
        .limit(1)
    ).scalar()
    seq = int(last.rsplit("-", 1)[1]) + 1 if last else 1
    return f"{prefix}{seq:03d}"


def _renovation_before_insert(self, session) -> None:
    from sqlalchemy import select

    from models.archives import Owner, Ownership

    if not self.number:
        self.number = next_renovation_number(session)
    if not self.status:
        self.status = "applied"
    unit_id = self.unit.id if self.unit is not None else self.unit_id
    if self.owner is None and self.owner_id is None and unit_id is not None:
        # The unit's (largest) current owner by default.
        owner_id = session.execute(
            select(Ownership.owner_id)
            .where(Ownership.unit_id == unit_id, Ownership.until.is_(None))
            .order_by(Ownership.share.desc(), Ownership.id)
            .limit(1)
        ).scalar()
        # The relationship, not the key: a relationship left at None would win at the flush.
        self.owner = session.get(Owner, owner_id) if owner_id else None


Renovation.before_insert = _renovation_before_insert


def _money(value, field: str) -> Decimal:
    from decimal import InvalidOperation

    if isinstance(value, (bool, float)) or value is None or (isinstance(value, str) and not value.strip()):
        raise _err(field, "请填写金额（最多 2 位小数）", "Give the amount (at most 2 decimals)")
    try:
        d = Decimal(str(value).strip())
    except InvalidOperation:
        raise _err(field, "应为数字", "Must be a number") from None
    if not d.is_finite() or d <= 0 or d.as_tuple().exponent < -2 or d >= Decimal("100000000"):
        raise _err(field, "须为正数，最多 2 位小数", "Must be positive, with at most 2 decimals")
    return d


def _text(value, field: str, limit: int, *, required: bool = False) -> str | None:
    if value is not None and not isinstance(value, str):
        raise _err(field, "应为文字", "Must be text")
    value = (value or "").strip().replace("\x00", "")
    if required and not value:
        raise _err(field, "必填", "Required")
    if len(value) > limit:
        raise _err(field, f"最多 {limit} 个字", f"At most {limit} characters")
    return value or None


def fee_items(session) -> tuple:
    """The fee items (kind 'renovation') the deposit and the management fee are billed under,
    by code (config RENOVATION_DEPOSIT_ITEM / RENOVATION_FEE_ITEM)."""
    from sqlalchemy import select

    from models.fees import FeeItem

    found = []
    for field, key, default in (
        ("deposit", "RENOVATION_DEPOSIT_ITEM", "RENO-DEPOSIT"),
        ("management_fee", "RENOVATION_FEE_ITEM", "RENO-FEE"),
    ):
        code = _cfg(key, default)
        item = session.execute(select(FeeItem).where(FeeItem.code == code)).scalar()
        if item is None:
            raise _err(
                field,
                f"请先在收费项目中设置装修收费项目（编码 {code}）",
                f"Set up the renovation fee item first (code {code})",
            )
        found.append(item)
    return tuple(found)


def renovation_bills(session, renovation: Renovation, *, lock: bool = False) -> dict:
    """'deposit' / 'fee' -> the bill line posted for it (if any). ``lock``: a move that decides
    on what was paid takes the unit's lock and the bills' (the order payments take them in,
    models/payments.py), so a payment or a void cannot change them under it."""
    from sqlalchemy import select

    from models.fees import Bill

    stmt = select(Bill).where(
        Bill.unit_id == renovation.unit_id, Bill.source.startswith(f"renovation:{renovation.id}:")
    )
    if lock:
        from models.archives import Unit

        lock_row(session, Unit, renovation.unit_id)
        stmt = stmt.order_by(Bill.id).with_for_update().execution_options(populate_existing=True)
    rows = session.execute(stmt).scalars()
    return {b.source.rsplit(":", 1)[1]: b for b in rows}


def post_charges(session, renovation: Renovation) -> dict:
    """Post the deposit and the management fee to the unit's bills, once (by source)."""
    from models.fees import post_one_off_charge

    deposit_item, fee_item = fee_items(session)
    posted = {}
    for which, item, amount in (
        ("deposit", deposit_item, renovation.deposit),
        ("fee", fee_item, renovation.management_fee),
    ):
        if amount is not None and Decimal(amount) > 0:
            posted[which] = post_one_off_charge(
                session,
                unit=renovation.unit,
                item=item,
                amount=Decimal(amount),
                source=f"renovation:{renovation.id}:{which}",
            )
    session.flush()
    return posted


def approve(session, renovation: Renovation, *, user_id: int | None = None, note: str | None = None, now=None) -> None:
    """Approve (Manager): a permit number, the deposit and fee on the unit's bills."""
    from sqlalchemy import select

    from models.base import utcnow

    now = now or utcnow()
    require_move(renovation, "approved")
    renovation.check()
    _lock_for_move(session, renovation)
    # One live renovation per unit: two approvals on one unit wait for each other here.
    from models.archives import Unit

    lock_row(session, Unit, renovation.unit_id)
    other = session.execute(
        select(Renovation.number).where(
            Renovation.unit_id == renovation.unit_id,
            Renovation.id != renovation.id,
            Renovation.status.in_(LIVE_STATUSES),
        )
    ).scalar()
    if other:
        raise _err("unit", f"该房屋已有进行中的装修 {other}", f"The unit already has renovation {other} under way")
    renovation.status = "approved"
    renovation.decided_at = now
    renovation.decided_by_id = user_id
    renovation.decision_note = _text(note, "decision_note", 2000)
    renovation.permit_no = renovation.permit_no or f"ZXXK{local_today(now):%Y}-{renovation.id:06d}"
    post_charges(session, renovation)
    session.flush()


def reject(session, renovation: Renovation, reason, *, user_id: int | None = None, now=None) -> None:
    from models.base import utcnow

    reason = _text(reason, "reason", 2000, required=True)
    require_move(renovation, "rejected")
    _lock_for_move(session, renovation)
    renovation.status = "rejected"
    renovation.decision_note = reason
    renovation.decided_at = now or utcnow()
    renovation.decided_by_id = user_id
    session.flush()


def _open_rectifications(session, renovation: Renovation, statuses=("open",)) -> int:
    from sqlalchemy import func, select

    return session.execute(
        select(func.count())
        .select_from(RectificationOrder)
        .where(RectificationOrder.renovation_id == renovation.id, RectificationOrder.status.in_(statuses))
    ).scalar()


def start(session, renovation: Renovation, *, now=None) -> None:
    """The works begin: the unit is 'renovating' while they last; inspections fall due."""
    require_move(renovation, "active")
    _lock_for_move(session, renovation)  # the renovation before the unit, as every move here
    unit = renovation.unit
    if unit.status != "renovating":
        renovation.unit_status_before = unit.status
    unit.status = "renovating"
    renovation.status = "active"
    renovation.next_inspection_on = local_today(now) + dt.timedelta(days=int(_cfg("RENOVATION_INSPECTION_DAYS", 3)))
    session.flush()


def complete(session, renovation: Renovation, *, now=None) -> None:
    """The contractor reports the works done (again, after a failed acceptance and rectification)."""
    require_move(renovation, "completed")
    _lock_for_move(session, renovation)  # no rectification order is opened while counting
    if _open_rectifications(session, renovation):
        raise _err(
            "status",
            "还有未整改的整改通知，整改后才能报完工",
            "Open rectification orders remain: rectify them before reporting completion",
        )
    renovation.status = "completed"
    renovation.actual_end = local_today(now)
    session.flush()


def _restore_unit(renovation: Renovation) -> None:
    unit = renovation.unit
    if unit is not None and unit.status == "renovating":
        unit.status = renovation.unit_status_before or "occupied"


def accept(session, renovation: Renovation, passed: bool, note=None, *, now=None) -> RectificationOrder | None:
    """Completion acceptance (验收): pass, or fail with what must be put right (a rectification
    order with a deadline); after rectification the works are reported completed again."""
    from models.base import utcnow

    now = now or utcnow()
    if passed:
        require_move(renovation, "accepted")
        _lock_for_move(session, renovation)  # no inspection or order is added while counting
        if _open_rectifications(session, renovation, ("open", "done")):
            raise _err(
                "status",
                "还有未复查通过的整改通知，不能验收合格",
                "Rectification orders are not yet verified: the works cannot pass acceptance",
            )
        renovation.status = "accepted"
        renovation.acceptance_note = _text(note, "note", 2000)
        renovation.next_inspection_on = None
        _restore_unit(renovation)
        session.flush()
        return None
    require_move(renovation, "failed")
    note = _text(note, "note", 2000)
    if not note:
        raise _err("note", "验收不合格须写明整改要求", "A failed acceptance needs what must be put right")
    _lock_for_move(session, renovation)
    renovation.status = "failed"
    renovation.acceptance_note = note
    order = open_rectification(session, renovation, note, now=now)
    session.flush()
    return order


def cancel(session, renovation: Renovation, reason) -> None:
    """Withdraw an application (or an approved one before the works start). Unpaid deposit and
    fee lines are voided; money already paid is refused here (refund it first)."""
    reason = _text(reason, "reason", 2000, required=True)
    require_move(renovation, "cancelled")
    _lock_for_move(session, renovation)
    bills = renovation_bills(session, renovation, lock=True)  # no payment lands while voiding
    if any(Decimal(b.paid_amount) > 0 for b in bills.values()):
        raise _err(
            "status",
            "押金或管理费已有缴款，不能直接取消；请先办理退款",
            "The deposit or fee is already (partly) paid: refund it before cancelling",
        )
    for b in bills.values():
        b.status = "void"
    renovation.status = "cancelled"
    renovation.decision_note = reason
    session.flush()


def open_rectification(
    session, renovation: Renovation, description: str, *, inspection=None, now=None, flush: bool = True
):
    """A rectification order with its deadline; ``flush=False`` from a flush hook (the commit
    flushes it, with its own hooks, in the same transaction)."""
    from models.base import utcnow

    now = now or utcnow()
    deadline = now + dt.timedelta(days=int(_cfg("RECTIFICATION_DAYS", 3)))
    order = RectificationOrder(
        renovation_id=renovation.id,
        inspection_id=inspection.id if inspection is not None else None,
        description=description,
        deadline=deadline,
        status="open",
        steps_done=0,
        next_due_at=deadline,
    )
    session.add(order)
    if flush:
        session.flush()
    return order


def check_inspectable(renovation: Renovation) -> None:
    if renovation.status not in WORKING_STATUSES:
        raise _err(
            "status",
            f"装修为“{_status_label(renovation.status, 'zh')}”，只有施工中或待验收的装修可以巡查",
            f"The renovation is {_status_label(renovation.status, 'en')}; only works under way can be inspected",
        )


def record_inspection(
    session, renovation: Renovation, findings, *, violation: bool = False, photos=(), inspector_id=None, now=None
) -> RenovationInspection:
    """An inspection during the works; a violation opens a rectification order and the next
    inspection falls due N days on (the inspection's hooks, whatever the path)."""
    from models.base import utcnow

    now = now or utcnow()
    findings = _text(findings, "findings", 4000, required=True)
    check_inspectable(renovation)
    inspection = RenovationInspection(
        renovation_id=renovation.id,
        inspected_at=now,
        inspector_id=inspector_id,
        findings=findings,
        photos=list(photos),
        violation=bool(violation),
    )
    session.add(inspection)
    session.flush()
    return inspection


def rectification_done(session, order: RectificationOrder, *, now=None) -> None:
    from models.base import utcnow

    if order.status != "open":
        raise _err("status", "只有整改中的通知可以报已整改", "Only an open order can be reported rectified")
    order.status = "done"
    order.done_at = now or utcnow()
    order.next_due_at = None
    session.flush()


def rectification_verify(session, order: RectificationOrder) -> None:
    if order.status != "done":
        raise _err("status", "只有已整改的通知可以复查", "Only a rectified order can be verified")
    order.status = "verified"
    session.flush()


def check_extension(session, renovation: Renovation, new_end, reason) -> tuple[dt.date, str]:
    from sqlalchemy import select

    reason = _text(reason, "reason", 2000, required=True)
    if renovation.status not in ("approved", "active"):
        raise _err(
            "status",
            f"装修为“{_status_label(renovation.status, 'zh')}”，只有已批准或施工中的装修可以申请延期",
            f"The renovation is {_status_label(renovation.status, 'en')}; only approved or active works can be extended",
        )
    if not isinstance(new_end, dt.date) or new_end <= renovation.planned_end:
        raise _err("new_end", "新的完工日期须晚于原计划完工日期", "The new end must be after the planned end")
    pending = session.execute(
        select(RenovationExtension.id).where(
            RenovationExtension.renovation_id == renovation.id, RenovationExtension.status == "requested"
        )
    ).scalar()
    if pending:
        raise _err("new_end", "已有待审批的延期申请", "An extension request is already waiting for a decision")
    return new_end, reason


def request_extension(session, renovation: Renovation, new_end, reason) -> RenovationExtension:
    new_end, reason = check_extension(session, renovation, new_end, reason)
    ext = RenovationExtension(renovation_id=renovation.id, new_end=new_end, reason=reason, status="requested")
    session.add(ext)
    session.flush()
    return ext


def decide_extension(session, ext: RenovationExtension, approved: bool, note=None, *, now=None) -> None:
    """Approve (the planned end moves) or reject (it does not) an extension: Manager only."""
    from models.base import utcnow

    if ext.status != "requested":
        raise _err("status", "该延期申请已审批", "This extension request has already been decided")
    note = _text(note, "decision_note", 2000, required=not approved)
    renovation = lock_renovation(session, ext.renovation_id)  # decided on its current state
    if approved:
        if renovation.status not in ("approved", "active"):
            raise _err(
                "status",
                f"装修为“{_status_label(renovation.status, 'zh')}”，不能延期",
                f"The renovation is {_status_label(renovation.status, 'en')}; it cannot be extended",
            )
        if ext.new_end <= renovation.planned_end:
            raise _err("new_end", "新的完工日期须晚于原计划完工日期", "The new end must be after the planned end")
        renovation.planned_end = ext.new_end
        renovation.overdue_alerted_on = None
    ext.status = "approved" if approved else "rejected"
    ext.decided_at = now or utcnow()
    ext.decision_note = note
    session.flush()


def deductions_total(session, renovation: Renovation) -> Decimal:
    from sqlalchemy import func, select

    total = session.execute(
        select(func.coalesce(func.sum(DepositDeduction.amount), 0)).where(
            DepositDeduction.renovation_id == renovation.id
        )
    ).scalar()
    return Decimal(total).quantize(CENT)


def check_deduction(renovation: Renovation, amount, reason) -> tuple[Decimal, str]:
    amount = _money(amount, "amount")
    reason = _text(reason, "reason", 200, required=True)
    if renovation.status not in (*WORKING_STATUSES, "accepted"):
        raise _err(
            "status",
            f"装修为“{_status_label(renovation.status, 'zh')}”，不能再从押金中扣除",
            f"The renovation is {_status_label(renovation.status, 'en')}; no deduction can be recorded",
        )
    return amount, reason


def record_deduction(session, renovation: Renovation, amount, reason) -> DepositDeduction:
    amount, reason = check_deduction(renovation, amount, reason)
    row = DepositDeduction(renovation_id=renovation.id, amount=amount, reason=reason)
    session.add(row)
    session.flush()
    return row


def refund_amount(session, renovation: Renovation) -> Decimal:
    """The deposit less the recorded deductions, never negative."""
    return max(Decimal(renovation.deposit or 0) - deductions_total(session, renovation), Decimal(0)).quantize(CENT)


def refund_deposit(session, renovation: Renovation, *, method: str = "bank_transfer", reason=None, now=None):
    """Refund the deposit once, less deductions: a ``Refund`` row (the deposit's payment when
    there is one) unless nothing is left; the renovation records it and ends. Not bounded by the
    unit's prepaid balance: the money refunded is the deposit's, not prepaid fees."""
    from sqlalchemy import select

    from models.base import utcnow
    from models.payments import PAYMENT_METHODS, PaymentAllocation, Refund

    now = now or utcnow()
    # The renovation's lock before the deductions are summed: a deduction is either committed
    # before (and counted) or waits and finds the deposit refunded (refused). A second refund
    # decided on the same read is a Conflict.
    _lock_for_move(session, renovation)
    if renovation.refund_id is not None or renovation.deposit_refunded is not None:
        raise _err("status", "押金已退还，不能重复退款", "The deposit has already been refunded")
    require_move(renovation, "refunded")
    if method not in PAYMENT_METHODS:
        raise _err("method", "退款方式无效", "Invalid method")
    amount = refund_amount(session, renovation)
    payment_id = None
    if Decimal(renovation.deposit or 0) > 0:
        bill = renovation_bills(session, renovation, lock=True).get("deposit")  # no void meanwhile
        if bill is None or bill.status != "paid":
            raise _err("status", "押金尚未缴清，不能退还", "The deposit has not been paid in full: nothing to refund")
        payment_id = session.execute(
            select(PaymentAllocation.payment_id)
            .where(PaymentAllocation.bill_id == bill.id, PaymentAllocation.reversed_at.is_(None))
            .order_by(PaymentAllocation.id.desc())
            .limit(1)
        ).scalar()
    refund_row = None
    if amount > 0:
        deducted = deductions_total(session, renovation)
        text = _text(reason, "reason", 120) or ""
        refund_row = Refund(
            kind="deposit",
            unit_id=renovation.unit_id,
            payment_id=payment_id,
            amount=amount,
            method=method,
            reason=f"装修押金退还 {renovation.number}（押金 {renovation.deposit}，扣除 {deducted}）{text}"[:200],
            refunded_at=now,
        )
        session.add(refund_row)
        session.flush()
        renovation.refund_id = refund_row.id
    renovation.deposit_refunded = amount
    renovation.status = "refunded"
    session.flush()
    return refund_row


def report_lists(session, now: dt.datetime | None = None, estates=None) -> dict:
    """The renovations report: active, overdue (past the planned end, not accepted), with open
    violations; and the count of late rectification orders. ``estates``: only these estates'
    (models/scope.py; None: every estate)."""
    from sqlalchemy import func, select

    from models.archives import Unit
    from models.base import utcnow
    from models.scope import estate_condition

    today = local_today(now)
    base = select(Renovation).order_by(Renovation.planned_end, Renovation.id)
    in_scope = estate_condition(Unit.estate_id, estates)
    if in_scope is not None:
        base = base.where(Renovation.unit_id.in_(select(Unit.id).where(in_scope)))
    open_orders = (
        select(RectificationOrder.renovation_id)
        .where(RectificationOrder.status.in_(("open", "done")))
        .scalar_subquery()
    )
    late = select(func.count()).select_from(RectificationOrder)
    if in_scope is not None:
        late = late.where(RectificationOrder.renovation_id.in_(base.with_only_columns(Renovation.id).order_by(None)))
    late_orders = session.execute(
        late.where(RectificationOrder.status == "open", RectificationOrder.deadline < (now or utcnow()))
    ).scalar()
    live = ("active", "completed", "failed")
    return {
        "today": today,
        "active": session.execute(base.where(Renovation.status == "active")).scalars().all(),
        "overdue": session.execute(base.where(Renovation.status.in_(live), Renovation.planned_end < today))
        .scalars()
        .all(),
        "violations": session.execute(
            base.where(Renovation.id.in_(open_orders), Renovation.status.not_in(("cancelled", "rejected")))
        )
        .scalars()
        .all(),
        "late_rectifications": late_orders,
    }


# Complaints caused by a renovation link to it (Ticket.renovation_id) and show on its page.
__all__ = [
    "DepositDeduction",
    "RectificationOrder",
    "Renovation",
    "RenovationExtension",
    "RenovationInspection",
]
