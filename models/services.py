"""Paid convenience services (有偿便民服务): the catalog a Manager maintains and the orders staff
carry out. DESIGN.md item 9. Charges go through the unit's bills (``models.fees.Bill`` with a
``source`` of ``service_order:<id>``) or a payment on the spot with a receipt; never a parallel
money path. Staff never accept tips or gifts: an order records only the charged amount.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal

from flask_appbuilder import Model
from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
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
from sqlalchemy import inspect as sa_inspect
from sqlalchemy import text as sa_text
from sqlalchemy.orm import Mapped, Session, mapped_column, object_session, relationship

from app.i18n import T
from models.base import AuditedModel, UTCDateTime, utcnow
from models.errors import FieldErrors
from models.scope import InUnitsEstate

MONEY = Numeric(14, 2)

SERVICE_CATEGORIES = {
    "repairs": T("维修服务", "Repairs"),
    "periodic": T("定期服务", "Periodic services"),
    "errands": T("代办服务", "Errands"),
    "car_wash": T("洗车打蜡", "Car wash and waxing"),
    "recreation": T("文体活动", "Recreation"),
    "medical": T("医疗服务", "Medical service"),
}
PRICINGS = {
    "fixed": T("按次定价", "Fixed price"),
    "per_hour": T("按小时", "Per hour"),
    "per_unit": T("按数量", "Per unit"),
    "quoted": T("上门报价", "Quoted on site"),
    "free": T("免费", "Free"),
}
ORDER_STATUSES = {
    "requested": T("已申请", "Requested"),
    "scheduled": T("已排期", "Scheduled"),
    "in_progress": T("服务中", "In progress"),
    "done": T("已完成", "Done"),
    "charged": T("已收费", "Charged"),
    "rated": T("已评价", "Rated"),
    "cancelled": T("已取消", "Cancelled"),
}
ORDER_TRANSITIONS = {
    "requested": {"scheduled", "cancelled"},
    "scheduled": {"in_progress", "cancelled", "scheduled"},
    "in_progress": {"done"},
    "done": {"charged"},
    "charged": {"rated"},
    "rated": set(),
    "cancelled": set(),
}
CHARGE_MODES = {
    "bill": T("计入物业账单", "Add to the unit's bill"),
    "on_spot": T("现场收款（开收据）", "Paid on the spot (receipt)"),
}
RECURRENCES = {
    "weekly": T("每周", "Weekly"),
    "biweekly": T("每两周", "Every two weeks"),
    "monthly": T("每月", "Monthly"),
}


def _err(field: str, zh: str, en: str) -> FieldErrors:
    return FieldErrors({field: [str(T(zh, en))]})


NO_TIPS = T(
    "员工不得收受住户任何小费、礼品或现金；本单只记录实际收费金额。",
    "Staff never accept tips, gifts or cash from residents; this order records only the charged amount.",
)

service_item_estate = Table(
    "service_item_estate",
    Model.metadata,
    Column("service_item_id", ForeignKey("service_item.id", ondelete="CASCADE"), primary_key=True),
    Column("estate_id", ForeignKey("estate.id"), primary_key=True),
)


class ServiceItem(AuditedModel):
    """A catalog entry: what the office offers, how it is priced."""

    __tablename__ = "service_item"

    code: Mapped[str] = mapped_column(String(32), nullable=False, unique=True)
    category: Mapped[str] = mapped_column(String(16), nullable=False)
    name: Mapped[str] = mapped_column(String(64), nullable=False)
    name_en: Mapped[str] = mapped_column(String(100), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    pricing: Mapped[str] = mapped_column(String(16), nullable=False, default="fixed")
    price: Mapped[Decimal | None] = mapped_column(MONEY)
    unit_label: Mapped[str | None] = mapped_column(String(16))  # 次 / 小时 / 个 ...
    materials_extra: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    demo_price: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    fee_item_id: Mapped[int | None] = mapped_column(ForeignKey("fee_item.id"))  # how it is billed

    estates = relationship("Estate", secondary=service_item_estate, lazy="select")
    fee_item = relationship("FeeItem", lazy="select")

    __table_args__ = (CheckConstraint("price IS NULL OR price >= 0", name="ck_service_item_price"),)

    def check_deletable(self, session: Session) -> None:
        """A catalog entry with orders is deactivated, never deleted."""
        if session.execute(select(ServiceOrder.id).where(ServiceOrder.item_id == self.id).limit(1)).first():
            raise _err(
                "code", "已有服务单的项目不能删除，可停用", "A service with orders cannot be deleted; deactivate it"
            )

    @property
    def price_terms(self) -> str:
        """How it is priced, as one line: 按次定价 ¥30.00/次（材料费另计）（示例价格）."""
        text = str(PRICINGS.get(self.pricing, self.pricing))
        if self.price is not None:
            text += f" ¥{self.price}" + (f"/{self.unit_label}" if self.unit_label else "")
        if self.materials_extra:
            text += str(T("（材料费另计）", " (materials extra)"))
        return text + (str(T("（示例价格）", " (demo price)")) if self.demo_price else "")

    def check(self) -> None:
        errors = {}
        if self.category not in SERVICE_CATEGORIES:
            errors["category"] = [str(T("类别无效", "Invalid category"))]
        if self.pricing not in PRICINGS:
            errors["pricing"] = [str(T("计价方式无效", "Invalid pricing"))]
        elif self.pricing in ("fixed", "per_hour", "per_unit") and self.price is None:
            errors["price"] = [str(T("该计价方式须填写价格", "This pricing needs a price"))]
        if self.price is not None and Decimal(self.price).as_tuple().exponent < -2:
            errors["price"] = [str(T("最多 2 位小数", "At most 2 decimal places"))]
        if errors:
            raise FieldErrors(errors)


def order_amount(
    item: ServiceItem, quantity: Decimal | None, materials: Decimal | None, quoted: Decimal | None
) -> Decimal:
    """The amount of an order from the catalog, exact to the cent."""
    materials = Decimal(materials or 0) if item.materials_extra else Decimal(0)
    if item.pricing == "free":
        base = Decimal(0)
    elif item.pricing == "quoted":
        if quoted is None:
            raise FieldErrors(
                {"quoted_price": [str(T("上门报价的服务须填写报价", "A quoted service needs its quote"))]}
            )
        base = Decimal(quoted)
    elif item.pricing == "fixed":
        base = Decimal(item.price) * Decimal(quantity or 1)
    else:
        if quantity is None or Decimal(quantity) <= 0:
            raise FieldErrors({"quantity": [str(T("请填写实际数量/时长", "Give the actual quantity / hours"))]})
        base = Decimal(item.price) * Decimal(quantity)
    return (base + materials).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


class ServiceSubscription(InUnitsEstate, AuditedModel):
    """A periodic service (weekly cleaning, say) that generates its orders from a job."""

    __tablename__ = "service_subscription"

    item_id: Mapped[int] = mapped_column(ForeignKey("service_item.id"), nullable=False)
    unit_id: Mapped[int] = mapped_column(ForeignKey("unit.id"), nullable=False)
    recurrence: Mapped[str] = mapped_column(String(16), nullable=False, default="weekly")
    first_start: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    duration_minutes: Mapped[int] = mapped_column(Integer, nullable=False, default=120)
    until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("ab_user.id"))
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)

    item = relationship("ServiceItem", lazy="select")
    unit = relationship("Unit", lazy="select")
    assignee = relationship("User", foreign_keys=[assignee_id], lazy="select")

    def check(self) -> None:
        if self.recurrence not in RECURRENCES:
            raise FieldErrors({"recurrence": [str(T("周期无效", "Invalid recurrence"))]})


class ServiceOrder(InUnitsEstate, AuditedModel):
    """An order for a catalog service (便民服务单)."""

    __tablename__ = "service_order"

    number: Mapped[str] = mapped_column(String(24), nullable=False, unique=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("service_item.id"), nullable=False)
    unit_id: Mapped[int] = mapped_column(ForeignKey("unit.id"), nullable=False)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("owner.id"))
    resident_id: Mapped[int | None] = mapped_column(ForeignKey("resident.id"))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("ticket.id"))  # an owner-paid repair
    subscription_id: Mapped[int | None] = mapped_column(ForeignKey("service_subscription.id"))
    requested_start: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    requested_end: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("ab_user.id"))
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="requested")
    cancel_reason: Mapped[str | None] = mapped_column(String(200))
    quantity: Mapped[Decimal | None] = mapped_column(Numeric(10, 2))
    materials_amount: Mapped[Decimal | None] = mapped_column(MONEY)
    materials_note: Mapped[str | None] = mapped_column(String(200))
    quoted_price: Mapped[Decimal | None] = mapped_column(MONEY)
    amount: Mapped[Decimal | None] = mapped_column(MONEY)
    charge_mode: Mapped[str | None] = mapped_column(String(16))
    bill_id: Mapped[int | None] = mapped_column(ForeignKey("bill.id"))
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payment.id"))
    satisfaction: Mapped[int | None] = mapped_column(Integer)
    rating_comment: Mapped[str | None] = mapped_column(Text)
    note: Mapped[str | None] = mapped_column(Text)

    item = relationship("ServiceItem", lazy="select")
    unit = relationship("Unit", lazy="select")
    owner = relationship("Owner", lazy="select")
    resident = relationship("Resident", lazy="select")
    ticket = relationship("Ticket", lazy="select")
    assignee = relationship("User", foreign_keys=[assignee_id], lazy="select")
    bill = relationship("Bill", lazy="select")
    payment = relationship("Payment", lazy="select")

    __table_args__ = (
        UniqueConstraint("subscription_id", "requested_start", name="uq_service_order_subscription_start"),
        CheckConstraint("requested_end > requested_start", name="ck_service_order_slot"),
        CheckConstraint("satisfaction IS NULL OR satisfaction BETWEEN 1 AND 5", name="ck_service_order_satisfaction"),
        CheckConstraint("amount IS NULL OR amount >= 0", name="ck_service_order_amount"),
        Index("ix_service_order_assignee_slot", "assignee_id", "requested_start", "requested_end"),
        Index("ix_service_order_status", "status"),
    )

    def check(self) -> None:
        errors = {}
        if self.status not in ORDER_STATUSES:
            errors["status"] = [str(T("状态无效", "Invalid status"))]
        if self.requested_start and self.requested_end and self.requested_end <= self.requested_start:
            errors["requested_end"] = [str(T("结束时间须晚于开始时间", "The end must be after the start"))]
        if self.status == "cancelled" and not self.cancel_reason:
            errors["cancel_reason"] = [str(T("取消必须填写原因", "A cancellation needs a reason"))]
        if self.charge_mode is not None and self.charge_mode not in CHARGE_MODES:
            errors["charge_mode"] = [str(T("收费方式无效", "Invalid charge mode"))]
        for f, digits in (("quantity", 8), ("materials_amount", 12), ("quoted_price", 12), ("amount", 12)):
            v = getattr(self, f)
            if v is not None and Decimal(v) < 0:
                errors[f] = [str(T("不能为负数", "Cannot be negative"))]
            elif v is not None and Decimal(v) >= 10**digits:  # what NUMERIC holds, on SQLite too
                errors[f] = [str(T("数值过大", "Too large"))]
        clash = self.double_booking()
        if clash is not None:
            errors["assignee"] = [
                str(
                    T(
                        f"该员工在此时段已有服务单 {clash.number}",
                        f"This staff member already has order {clash.number} in that slot",
                    )
                )
            ]
        if errors:
            raise FieldErrors(errors)

    # --- hooks run on every write path (models/base.py) ----------------------------------
    def _sync_assignee(self) -> None:
        """A form or schema sets the ``assignee`` relation; the rules read ``assignee_id``, which
        SQLAlchemy would only fill later in the flush."""
        if sa_inspect(self).attrs["assignee"].history.has_changes():
            self.assignee_id = self.assignee.id if self.assignee is not None else None

    def before_insert(self, session: Session) -> None:
        self._sync_assignee()
        # The parents first, then the number: an order from a subscription or a ticket depends
        # on their state, read again under their lock (see _check_parents).
        self._check_parents(session)
        if not self.number:
            self.number = next_order_number(session)

    def before_update(self, session: Session) -> None:
        self._sync_assignee()
        self._money_is_settled()

    # Set when charged; then the bill line (and the receipt) carry them: never changed after.
    SETTLED = ("amount", "quantity", "materials_amount", "quoted_price", "charge_mode", "bill_id", "payment_id")

    def _money_is_settled(self) -> None:
        """A charged order's money is on the unit's bills: whatever the path, it stays as charged."""
        state = sa_inspect(self)
        before = state.attrs["status"].history.deleted or [self.status]
        if before[0] not in ("charged", "rated"):
            return
        changed = [f for f in (*self.SETTLED, "unit_id", "item_id") if state.attrs[f].history.deleted]
        changed += [f for f in ("unit", "item") if state.attrs[f].history.deleted]
        if changed:
            msg = str(T("已收费的服务单，金额与收费信息不能修改", "The order is charged: its money cannot change"))
            raise FieldErrors({f: [msg] for f in changed})

    def _check_parents(self, session: Session) -> None:
        """Lock, read again and check the rows this order depends on. A subscription's order
        (the periodic job) is refused once the subscription is inactive or over, so an order never
        appears after its subscription was stopped. An order from a ticket is refused unless the
        ticket is an owner-paid repair without a live order for the same service, so two requests
        at once make one order. PostgreSQL row locks; SQLite: see ``lock_row``."""
        from models.renovation import lock_and_read

        if self.subscription_id is not None:
            sub = lock_and_read(session, ServiceSubscription, self.subscription_id)
            if sub is None or not sub.active:
                raise FieldErrors(
                    {"subscription": [str(T("定期服务已停用，不再生成服务单", "The periodic service is stopped"))]}
                )
            if sub.until is not None and self.requested_start >= sub.until:
                raise FieldErrors(
                    {"subscription": [str(T("已超过定期服务的截止时间", "After the end of the periodic service"))]}
                )
        if self.ticket_id is not None:
            from models.desk import Ticket

            ticket = lock_and_read(session, Ticket, self.ticket_id)
            if ticket is None or ticket.archived_at is not None:
                raise FieldErrors({"ticket": [str(T("没有这个求助单", "No such ticket"))]})
            if ticket.responsibility != "owner_paid":
                raise FieldErrors(
                    {
                        "ticket": [
                            str(
                                T(
                                    "只有维修责任为“业主自费”的求助单才转为有偿服务单",
                                    "Only a ticket whose repair responsibility is owner-paid becomes a paid service order",
                                )
                            )
                        ]
                    }
                )
            live = session.execute(
                select(ServiceOrder.number).where(
                    ServiceOrder.ticket_id == self.ticket_id,
                    ServiceOrder.item_id == self.item_id,
                    ServiceOrder.status != "cancelled",
                    ServiceOrder.id != (self.id or 0),
                )
            ).scalar()
            if live:
                raise FieldErrors(
                    {
                        "ticket": [
                            str(
                                T(
                                    f"该求助单已有此项服务单 {live}",
                                    f"The ticket already has order {live} for this service",
                                )
                            )
                        ]
                    }
                )

    def double_booking(self) -> ServiceOrder | None:
        """Another live order of the same assignee whose slot overlaps this one."""
        if not self.assignee_id or self.status in ("cancelled", "done", "charged", "rated"):
            return None
        session = object_session(self)
        return session.execute(
            select(ServiceOrder)
            .where(
                ServiceOrder.assignee_id == self.assignee_id,
                ServiceOrder.id != (self.id or 0),
                ServiceOrder.status.in_(("requested", "scheduled", "in_progress")),
                ServiceOrder.requested_start < self.requested_end,
                ServiceOrder.requested_end > self.requested_start,
            )
            .limit(1)
        ).scalar()

    def __str__(self) -> str:
        return self.number

    # --- the workflow: each step declared once in views/services.py ---------------------------
    @property
    def price_terms(self) -> str:
        return self.item.price_terms if self.item is not None else ""

    @property
    def conduct(self) -> str:
        return str(NO_TIPS)

    def _may_move(self, to: str) -> None:
        """Refuse a move ``ORDER_TRANSITIONS`` does not allow (the screens and the API refuse it
        before; this guards every other caller). Each step sets the status last: a query on the way
        flushes what is set, and a charged order's money is settled from then on."""
        if to not in ORDER_TRANSITIONS.get(self.status, ()):
            now, then = ORDER_STATUSES.get(self.status), ORDER_STATUSES[to]
            raise _err(
                "status",
                f"服务单当前为“{now.zh}”，不能转为“{then.zh}”",
                f"The order is {now.en}; it cannot become {then.en}",
            )

    def check_editable(self) -> None:
        """The generic edit form is for a requested or scheduled order; the rest is the workflow."""
        before = sa_inspect(self).attrs["status"].history.deleted or [self.status]
        if before[0] not in ("requested", "scheduled"):
            raise _err(
                "status",
                "只有已申请或已排期的服务单可以修改；其余请走办理流程",
                "Only a requested or scheduled order can be edited; use the workflow for the rest",
            )

    def schedule(
        self,
        session: Session,
        assignee: int,
        requested_start: dt.datetime | None = None,
        requested_end: dt.datetime | None = None,
    ) -> None:
        """Book a staff member (``assignee``, one of the working staff) for the slot; without a new
        start the slot stays, without a new end it keeps its length. Overlaps are refused at the
        flush (``double_booking``), behind ``lock_assignee``."""
        self._may_move("scheduled")
        start = requested_start or self.requested_start
        end = requested_end or start + (self.requested_end - self.requested_start)
        if end <= start:
            raise _err("requested_end", "结束时间须晚于开始时间", "The end must be after the start")
        # Before the double-booking check (at the flush): a concurrent booking of the same person
        # waits here until this transaction ends, then sees this order.
        lock_assignee(session, assignee)
        self.assignee_id, self.requested_start, self.requested_end = assignee, start, end
        self.status = "scheduled"

    def start(self) -> None:
        self._may_move("in_progress")
        if not self.assignee_id:
            raise _err("assignee", "请先指派服务人员", "Assign someone first")
        self.status = "in_progress"

    def complete(
        self,
        quantity: Decimal | None = None,
        materials_amount: Decimal | None = None,
        materials_note: str | None = None,
        quoted_price: Decimal | None = None,
    ) -> None:
        """The work is done: the actual quantity (hours, pieces), the materials (for services that
        charge them extra), the quote (quoted services); the amount follows from the catalog.
        Figures a service does not use are ignored."""
        self._may_move("done")
        item = self.item
        if quantity is not None and quantity <= 0:
            raise _err("quantity", "数量须大于 0", "The quantity must be more than 0")
        materials = materials_amount if item.materials_extra else None
        quoted = quoted_price if item.pricing == "quoted" else None
        self.amount = order_amount(item, quantity, materials, quoted)
        self.quantity = quantity if quantity is not None else (Decimal(1) if item.pricing == "fixed" else None)
        self.materials_amount, self.materials_note, self.quoted_price = materials, materials_note, quoted
        self.status = "done"

    def charge(self, session: Session, charge_mode: str, method: str | None = None, payer_name: str | None = None):
        """Charge a done order: its amount becomes a line of the unit's bills (idempotent by its
        source) and, paid on the spot, a payment with a receipt settles it at once; charged to the
        bill, a prepaid balance meets it at once, as monthly billing does."""
        from models.fees import post_one_off_charge
        from models.payments import apply_prepaid, record_payment

        self._may_move("charged")
        if self.amount is not None and Decimal(self.amount) > 0:
            bill = post_one_off_charge(
                session,
                unit=self.unit,
                item=service_fee_item(session, self.item),
                amount=Decimal(self.amount),
                source=f"service_order:{self.id}",
            )
            session.flush()
            if charge_mode == "on_spot":
                note = str(T(f"便民服务单 {self.number}", f"Service order {self.number}"))
                payment = record_payment(
                    session,
                    self.unit,
                    Decimal(self.amount),
                    method or "cash",
                    bill_ids=[bill.id],
                    payer_name=payer_name,
                    reference=self.number,
                    note=note,
                )
                session.flush()
                self.payment_id = payment.id
            else:
                apply_prepaid(session, self.unit)
            self.bill_id = bill.id  # the order itself changes once, after the queries
        self.charge_mode, self.status = charge_mode, "charged"

    def rate(self, satisfaction: str | int, comment: str | None = None) -> None:
        self._may_move("rated")
        if str(satisfaction) not in SATISFACTION:
            raise _err("satisfaction", "满意度为 1 到 5 分", "Satisfaction is 1 to 5")
        self.satisfaction, self.rating_comment, self.status = int(satisfaction), comment, "rated"

    def cancel(self, reason: str | None = None) -> None:
        """Cancel a requested or scheduled order; the reason is kept (an order is never deleted)."""
        self._may_move("cancelled")
        if not reason:
            raise _err("cancel_reason", "取消必须填写原因", "A cancellation needs a reason")
        self.cancel_reason, self.status = reason, "cancelled"

    @classmethod
    def from_ticket(
        cls,
        session: Session,
        ticket: int,
        item: int,
        requested_start: dt.datetime | None = None,
        requested_end: dt.datetime | None = None,
        note: str | None = None,
    ) -> ServiceOrder:
        """An order for an owner-paid repair ticket (DESIGN.md items 4, 5 and 9): the ticket's unit,
        owner and resident, at the agreed visit time (else in an hour) for an hour. The ticket is
        locked and checked again at the flush (``_check_parents``): one live order per service."""
        from models.desk import Ticket

        row = session.get(Ticket, ticket)
        if row is None or row.archived_at is not None:
            raise _err("ticket", "没有这个求助单", "No such ticket")
        if row.unit_id is None:
            raise _err("unit", "求助单没有房屋，无法收费", "The ticket has no unit to charge")
        service = session.get(ServiceItem, item)
        if service is None or not service.active:
            raise _err("item", "没有这个服务项目", "No such service")
        start = (
            requested_start
            or row.agreed_visit_at
            or (utcnow() + dt.timedelta(hours=1)).replace(second=0, microsecond=0)
        )
        order = cls(
            item_id=service.id,
            unit_id=row.unit_id,
            owner_id=row.owner_id,
            resident_id=row.resident_id,
            ticket_id=row.id,
            requested_start=start,
            requested_end=requested_end or start + dt.timedelta(hours=1),
            status="requested",
            note=note or row.description,
        )
        session.add(order)
        session.flush()
        return order


SATISFACTION = {str(n): T(f"{n} 分", f"{n} of 5") for n in range(5, 0, -1)}


def service_fee_item(session: Session, item: ServiceItem):
    """The fee item an order is billed under: the catalog entry's, else the active 'service' one."""
    from models.fees import FeeItem

    if item.fee_item is not None:
        return item.fee_item
    fee_item = session.execute(
        select(FeeItem).where(FeeItem.kind == "service", FeeItem.active.is_(True)).order_by(FeeItem.id).limit(1)
    ).scalar()
    if fee_item is None:
        raise _err(
            "charge_mode",
            "没有“有偿服务费”收费项目：请经理先在收费项目中设置",
            "There is no 'paid services' fee item: a Manager must set one up first",
        )
    return fee_item


def catalog_items(session: Session, category: str | None = None) -> list[ServiceItem]:
    """Active catalog entries (of one category): what an order may be made for."""
    stmt = select(ServiceItem).where(ServiceItem.active.is_(True)).order_by(ServiceItem.category, ServiceItem.code)
    if category:
        stmt = stmt.where(ServiceItem.category == category)
    return list(session.execute(stmt).scalars())


def lock_assignee(session: Session, assignee_id: int | None) -> None:
    """Serialise bookings of one staff member (PostgreSQL): taken before the double-booking check
    and held to the end of the transaction, so two concurrent bookings of the same person in the
    same slot cannot both pass the check."""
    if assignee_id and session.get_bind().dialect.name == "postgresql":
        session.execute(
            sa_text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
            {"key": f"desk.service_assignee:{int(assignee_id)}"},
        )


def next_order_number(session: Session, now: dt.datetime | None = None) -> str:
    """FW + local date + a 4-digit sequence of the day. On PostgreSQL an advisory lock on the
    day's prefix, held to the commit, keeps concurrent writers from taking the same number."""
    from models.calendar import SHANGHAI

    now = now or utcnow()
    prefix = f"FW{now.astimezone(SHANGHAI):%Y%m%d}-"
    if session.get_bind().dialect.name == "postgresql":
        session.execute(sa_text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"desk.{prefix}"})
    last = session.execute(
        select(ServiceOrder.number)
        .where(ServiceOrder.number.startswith(prefix))
        .order_by(ServiceOrder.number.desc())
        .limit(1)
    ).scalar()
    # Orders inserted in the same flush (a job making several) have numbers the table lacks yet.
    pending = [o.number for o in session.new if isinstance(o, ServiceOrder) and (o.number or "").startswith(prefix)]
    last = max([n for n in (last, *pending) if n], default=None)
    seq = int(last.rsplit("-", 1)[1]) + 1 if last else 1
    return f"{prefix}{seq:04d}"


# --- the paid-services report (DESIGN.md item 12) -------------------------------------------------
PAID_STATUSES = ("charged", "rated")


def _local_month(session: Session, tz):
    """The local month ``YYYY-MM`` of an order's slot, as SQL (PostgreSQL: the zone's rules;
    SQLite: today's offset)."""
    from sqlalchemy import func, literal_column

    if session.get_bind().dialect.name == "postgresql":
        name = str(tz.key).replace("'", "''")
        return func.to_char(
            func.timezone(literal_column(f"'{name}'"), ServiceOrder.requested_start), literal_column("'YYYY-MM'")
        )
    minutes = int(dt.datetime.now(tz).utcoffset().total_seconds() // 60)
    return func.strftime(
        literal_column("'%Y-%m'"), ServiceOrder.requested_start, literal_column(f"'{minutes:+d} minutes'")
    )


def _avg(total, count) -> float | None:
    return float((Decimal(total) / Decimal(count)).quantize(Decimal("0.01"))) if count else None


def service_report(session: Session, start: dt.datetime, end: dt.datetime, tz, estates=None) -> dict:
    """Orders and revenue per catalog item and local month of the slot, satisfaction per item and
    per staff member, for the orders whose slot starts in [start, end). Money as exact strings.
    ``estates``: only these estates' orders (models/scope.py; None: every estate)."""
    from flask_appbuilder.security.sqla.models import User
    from sqlalchemy import func

    from models.archives import Unit
    from models.scope import estate_condition

    where = [ServiceOrder.requested_start >= start, ServiceOrder.requested_start < end]
    in_scope = estate_condition(Unit.estate_id, estates)
    if in_scope is not None:
        where.append(ServiceOrder.unit_id.in_(select(Unit.id).where(in_scope)))
    month = _local_month(session, tz).label("month")
    paid = ServiceOrder.status.in_(PAID_STATUSES)
    rows = session.execute(
        select(
            ServiceOrder.item_id,
            month,
            func.count().label("orders"),
            func.count().filter(ServiceOrder.status == "cancelled").label("cancelled"),
            func.count().filter(paid).label("charged"),
            func.coalesce(func.sum(ServiceOrder.amount).filter(paid), 0).label("revenue"),
        )
        .where(*where)
        .group_by(ServiceOrder.item_id, month)
        .order_by(month, ServiceOrder.item_id)
    ).all()
    rated = ServiceOrder.satisfaction
    sat_item = {
        r.item_id: r
        for r in session.execute(
            select(ServiceOrder.item_id, func.count(rated).label("n"), func.coalesce(func.sum(rated), 0).label("total"))
            .where(*where, rated.is_not(None))
            .group_by(ServiceOrder.item_id)
        )
    }
    sat_staff = session.execute(
        select(
            ServiceOrder.assignee_id,
            func.count(rated).label("n"),
            func.coalesce(func.sum(rated), 0).label("total"),
            func.count().label("orders"),
        )
        .where(*where, ServiceOrder.assignee_id.is_not(None), ServiceOrder.status.in_(("done", *PAID_STATUSES)))
        .group_by(ServiceOrder.assignee_id)
    ).all()
    item_ids = {r.item_id for r in rows} | set(sat_item)
    items = {i.id: i for i in session.execute(select(ServiceItem).where(ServiceItem.id.in_(item_ids or {0}))).scalars()}
    users = {
        u.id: u
        for u in session.execute(select(User).where(User.id.in_({r.assignee_id for r in sat_staff} or {0}))).scalars()
    }

    def name(item_id) -> str:
        i = items.get(item_id)
        return str(T(i.name, i.name_en)) if i is not None else str(item_id)

    cent = Decimal("0.01")
    lines = [
        {
            "month": r.month,
            "item_id": r.item_id,
            "item": name(r.item_id),
            "orders": r.orders,
            "cancelled": r.cancelled,
            "charged": r.charged,
            "revenue": Decimal(r.revenue).quantize(cent),
        }
        for r in rows
    ]
    per_item: dict[int, dict] = {
        i: {"item_id": i, "item": name(i), "orders": 0, "charged": 0, "revenue": Decimal(0)} for i in item_ids
    }
    per_month: dict[str, dict] = {}
    for x in lines:
        m = per_month.setdefault(x["month"], {"month": x["month"], "orders": 0, "revenue": Decimal(0)})
        for agg, keys in ((per_item[x["item_id"]], ("orders", "charged", "revenue")), (m, ("orders", "revenue"))):
            for key in keys:
                agg[key] += x[key]
    by_item = []
    for agg in sorted(per_item.values(), key=lambda a: (-a["revenue"], a["item"])):
        s = sat_item.get(agg["item_id"])
        by_item.append(
            {
                **agg,
                "revenue": str(agg["revenue"].quantize(cent)),
                "ratings": s.n if s else 0,
                "satisfaction": _avg(s.total, s.n) if s else None,
            }
        )
    by_staff = [
        {
            "user_id": r.assignee_id,
            "staff": f"{u.first_name}{u.last_name} ({u.username})" if u else str(r.assignee_id),
            "orders": r.orders,
            "ratings": r.n,
            "satisfaction": _avg(r.total, r.n),
        }
        for r, u in sorted(
            ((r, users.get(r.assignee_id)) for r in sat_staff), key=lambda ru: ru[1].username if ru[1] else ""
        )
    ]
    return {
        "orders": sum(x["orders"] for x in lines),
        "revenue": str(sum((x["revenue"] for x in lines), Decimal(0)).quantize(cent)),
        "lines": [{**x, "revenue": str(x["revenue"])} for x in lines],
        "by_month": [{**m, "revenue": str(m["revenue"])} for _, m in sorted(per_month.items())],
        "by_item": by_item,
        "by_staff": by_staff,
    }
