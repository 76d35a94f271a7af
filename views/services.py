"""Paid convenience services (有偿便民服务, DESIGN.md item 9): the catalog, periodic
subscriptions and service orders, declared once; the order workflow and the report are mixins.

An order is requested, scheduled (an assignee and a slot; one staff member is never booked twice
for overlapping slots: ``lock_assignee`` serialises the check on PostgreSQL), started, done (the
actual quantity, materials, the quote; the amount comes from ``models.services.order_amount``),
charged (to the unit's bills through ``post_one_off_charge``, or paid on the spot with a receipt)
and rated; or cancelled with a reason. Every move not in ``ORDER_TRANSITIONS`` is refused with
the reason; every move needs the ``version`` the client read. Staff never accept tips or gifts:
an order records only the charged amount.

An owner-paid repair ticket hands its work to an order (``from_ticket``); the ticket page lists
the orders made from it.

Rights (app/roles.py): the catalog is a Manager's (write on ``service_item``); the workflow
routes are writes on ``service_order``; the report is a read.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation

from flask import abort, flash, g, redirect, request, url_for
from flask_appbuilder.baseviews import expose
from flask_appbuilder.security.decorators import has_access, permission_name, protect
from flask_appbuilder.security.sqla.models import User
from sqlalchemy import func, literal_column, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from app.i18n import T, current_language
from app.security import user_label, working_user_clause
from models.base import utcnow
from models.desk import Ticket
from models.errors import Conflict, FieldErrors
from models.fees import FeeItem, post_one_off_charge
from models.services import (
    CHARGE_MODES,
    NO_TIPS,
    ORDER_STATUSES,
    ORDER_TRANSITIONS,
    PRICINGS,
    RECURRENCES,
    SERVICE_CATEGORIES,
    ServiceItem,
    ServiceOrder,
    ServiceSubscription,
    lock_assignee,
    order_amount,
)
from views.archives import OWNER_LOOKUP, UNIT_LOOKUP
from views.datamodel import MSG_CONFLICT
from views.registers import RangeError, display_tz, parse_range
from views.registry import Lookup, Resource, register
from views.reports import bar_chart_svg

MSG_DONE = T("已保存", "Saved")
MSG_VERSION = T("缺少版本号：请提交读取服务单时得到的 version", "Missing version: send the version you read")
MSG_DEMO_PRICE = T("示例价格", "Demo price")
STATUS_ORDER = list(ORDER_STATUSES)
# The workflow routes and the status each one moves an order to.
ACTIONS = {
    "schedule": "scheduled",
    "start": "in_progress",
    "done": "done",
    "charge": "charged",
    "rate": "rated",
    "cancel": "cancelled",
}
LIVE_STATUSES = ("requested", "scheduled", "in_progress")
PAID_STATUSES = ("charged", "rated")


def _messages(e: FieldErrors) -> str:
    return "; ".join(m for msgs in e.errors.values() for m in msgs)


# --- parsing inputs (form strings or JSON values) ---------------------------------------------
def _err(field: str, zh: str, en: str) -> FieldErrors:
    return FieldErrors({field: [str(T(zh, en))]})


def parse_money(value, field: str, *, required: bool = False) -> Decimal | None:
    """An exact decimal >= 0 with at most 2 places; a float is refused (it is not exact)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise _err(field, "必填", "Required")
        return None
    if isinstance(value, (bool, float)):
        raise _err(field, "金额以字符串或整数给出", "Give the amount as a string or integer")
    try:
        d = Decimal(str(value).strip())
    except InvalidOperation:
        raise _err(field, "应为数字", "Must be a number") from None
    if not d.is_finite() or d < 0:
        raise _err(field, "应为非负数", "Must be zero or more")
    if d.as_tuple().exponent < -2:
        raise _err(field, "最多 2 位小数", "At most 2 decimal places")
    if d >= Decimal("100000000"):
        raise _err(field, "数值过大", "Too large")
    return d


def parse_when(value, field: str, *, required: bool = False) -> dt.datetime | None:
    """An ISO date-time; without an offset it is local time (the screens' datetime inputs)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise _err(field, "必填", "Required")
        return None
    if not isinstance(value, str):
        raise _err(field, "应为日期时间（YYYY-MM-DDTHH:MM）", "Must be a date-time (YYYY-MM-DDTHH:MM)")
    try:
        when = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise _err(field, "应为日期时间（YYYY-MM-DDTHH:MM）", "Must be a date-time (YYYY-MM-DDTHH:MM)") from None
    if not dt.datetime(1970, 1, 2) <= when.replace(tzinfo=None) <= dt.datetime(2999, 12, 31):
        raise _err(field, "日期超出范围", "Date out of range")
    if when.tzinfo is None:
        when = when.replace(tzinfo=display_tz())
    return when.astimezone(dt.UTC)


def parse_id(value, field: str, *, required: bool = True) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise _err(field, "必填", "Required")
        return None
    if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit())):
        raise _err(field, "应为编号（整数）", "Must be an id (a whole number)")
    n = int(value)
    if not 0 < n < 2**62:
        raise _err(field, "编号无效", "Invalid id")
    return n


def _text(value, field: str, limit: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _err(field, "应为文字", "Must be text")
    value = value.strip()
    if "\x00" in value:
        raise _err(field, "不能包含空字符", "Must not contain NUL")
    if len(value) > limit:
        raise _err(field, f"最多 {limit} 个字", f"At most {limit} characters")
    return value or None


# --- the workflow ----------------------------------------------------------------------------
def _label(status: str, lang: str) -> str:
    label = ORDER_STATUSES.get(status)
    return label.resolve(lang) if label is not None else status


def require_move(order: ServiceOrder, to: str) -> None:
    """Refuse a move ``ORDER_TRANSITIONS`` does not allow, saying why and what may follow."""
    allowed = ORDER_TRANSITIONS.get(order.status, set())
    if to in allowed:
        return
    nxt = [s for s in STATUS_ORDER if s in allowed]

    def say(lang: str, template: str, none: str, sep: str) -> str:
        tail = sep.join(_label(s, lang) for s in nxt) if nxt else none
        return template.format(cur=_label(order.status, lang), to=_label(to, lang), tail=tail)

    raise FieldErrors(
        {
            "status": [
                str(
                    T(
                        say("zh", "服务单当前为“{cur}”，不能转为“{to}”；可转为：{tail}", "无（服务单已结束）", "、"),
                        say(
                            "en",
                            "The order is {cur}; it cannot become {to}. Allowed next: {tail}",
                            "none (the order is finished)",
                            ", ",
                        ),
                    )
                )
            ]
        }
    )


def schedule_order(session, order: ServiceOrder, data: dict) -> None:
    require_move(order, "scheduled")
    assignee_id = parse_id(data.get("assignee"), "assignee")
    if session.execute(select(User.id).where(User.id == assignee_id, working_user_clause())).first() is None:
        raise _err("assignee", "没有这个在职员工", "No such active staff member")
    start = parse_when(data.get("requested_start"), "requested_start") or order.requested_start
    end = parse_when(data.get("requested_end"), "requested_end")
    if end is None:
        end = start + (order.requested_end - order.requested_start)
    if end <= start:
        raise _err("requested_end", "结束时间须晚于开始时间", "The end must be after the start")
    # Before the double-booking check (at the flush): a concurrent booking of the same person
    # waits here until this transaction ends, then sees this order.
    lock_assignee(session, assignee_id)
    order.assignee_id = assignee_id
    order.requested_start, order.requested_end = start, end
    order.status = "scheduled"


def start_order(session, order: ServiceOrder, data: dict) -> None:
    require_move(order, "in_progress")
    if not order.assignee_id:
        raise _err("assignee", "请先指派服务人员", "Assign someone first")
    order.status = "in_progress"


def complete_order(session, order: ServiceOrder, data: dict) -> None:
    require_move(order, "done")
    item = order.item
    quantity = parse_money(data.get("quantity"), "quantity")
    materials = parse_money(data.get("materials_amount"), "materials_amount") if item.materials_extra else None
    quoted = parse_money(data.get("quoted_price"), "quoted_price") if item.pricing == "quoted" else None
    if quantity is not None and quantity <= 0:
        raise _err("quantity", "数量须大于 0", "The quantity must be more than 0")
    order.amount = order_amount(item, quantity, materials, quoted)
    order.quantity = quantity if quantity is not None else (Decimal(1) if item.pricing == "fixed" else None)
    order.materials_amount = materials
    order.materials_note = _text(data.get("materials_note"), "materials_note", 200)
    order.quoted_price = quoted
    order.status = "done"


def service_fee_item(session, item: ServiceItem) -> FeeItem:
    """The fee item an order is billed under: the catalog entry's, else the active 'service' one."""
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


def record_on_spot_payment(session, order: ServiceOrder, bill, method: str, payer_name: str | None):
    """A payment on the spot, with the next receipt number, settling the order's bill line."""
    from models.payments import record_payment

    return record_payment(
        session,
        order.unit,
        Decimal(order.amount),
        method,
        bill_ids=[bill.id],
        payer_name=payer_name,
        reference=order.number,
        note=str(T(f"便民服务单 {order.number}", f"Service order {order.number}")),
    )


def charge_order(session, order: ServiceOrder, data: dict) -> None:
    require_move(order, "charged")
    mode = data.get("charge_mode")
    if mode not in CHARGE_MODES:
        raise _err(
            "charge_mode", "请选择收费方式：计入账单或现场收款", "Choose how: add to the bill or paid on the spot"
        )
    order.charge_mode = mode
    if order.amount is not None and Decimal(order.amount) > 0:
        fee_item = service_fee_item(session, order.item)
        # The bill line is the order's charge either way (idempotent by its source); paid on the
        # spot, a payment with a receipt settles it at once.
        bill = post_one_off_charge(
            session, unit=order.unit, item=fee_item, amount=Decimal(order.amount), source=f"service_order:{order.id}"
        )
        session.flush()
        order.bill_id = bill.id
        if mode == "on_spot":
            method = data.get("method") or "cash"
            from models.payments import PAYMENT_METHODS

            if method not in PAYMENT_METHODS:
                raise _err("method", "付款方式无效", "Invalid payment method")
            payment = record_on_spot_payment(
                session, order, bill, method, _text(data.get("payer_name"), "payer_name", 64)
            )
            session.flush()
            order.payment_id = payment.id
        else:
            # Charged to the bill: a prepaid balance meets it at once, as monthly billing does.
            from models.payments import apply_prepaid

            apply_prepaid(session, order.unit)
    order.status = "charged"


def rate_order(session, order: ServiceOrder, data: dict) -> None:
    require_move(order, "rated")
    sat = data.get("satisfaction")
    if isinstance(sat, str) and sat.strip().isdigit():
        sat = int(sat)
    if isinstance(sat, bool) or not isinstance(sat, int) or not 1 <= sat <= 5:
        raise _err("satisfaction", "满意度为 1 到 5 分", "Satisfaction is 1 to 5")
    order.satisfaction = sat
    order.rating_comment = _text(data.get("comment"), "comment", 2000)
    order.status = "rated"


def cancel_order(session, order: ServiceOrder, data: dict) -> None:
    require_move(order, "cancelled")
    reason = _text(data.get("reason"), "cancel_reason", 200)
    if not reason:
        raise _err("cancel_reason", "取消必须填写原因", "A cancellation needs a reason")
    order.cancel_reason = reason
    order.status = "cancelled"


HANDLERS = {
    "schedule": schedule_order,
    "start": start_order,
    "done": complete_order,
    "charge": charge_order,
    "rate": rate_order,
    "cancel": cancel_order,
}


def commit(session) -> None:
    """Commit; a lost optimistic-lock race is a Conflict, a broken unique key a FieldErrors."""
    try:
        session.commit()
    except StaleDataError:
        session.rollback()
        raise Conflict(str(MSG_CONFLICT)) from None
    except IntegrityError:
        session.rollback()
        raise FieldErrors({"id": [str(MSG_CONFLICT)]}) from None


def run_action(session, order: ServiceOrder, action: str, data: dict, version) -> None:
    """Shared by the screen and the API: the version check, the move, one commit."""
    if version is None or str(version).strip() == "":
        raise FieldErrors({"version": [str(MSG_VERSION)]})
    if str(version) != str(order.version):
        raise Conflict(str(MSG_CONFLICT), current_version=order.version)
    try:
        HANDLERS[action](session, order, data)
        commit(session)
    except (FieldErrors, Conflict):
        session.rollback()
        raise
    except StaleDataError:
        session.rollback()
        raise Conflict(str(MSG_CONFLICT)) from None
    except IntegrityError:
        # A concurrent request charged or booked first (a unique key): the same as a stale read.
        session.rollback()
        raise Conflict(str(MSG_CONFLICT)) from None


def order_from_ticket(session, data: dict) -> ServiceOrder:
    """A service order for an owner-paid repair ticket (DESIGN.md items 4, 5 and 9)."""
    ticket_id = parse_id(data.get("ticket"), "ticket")
    ticket = session.get(Ticket, ticket_id)
    if ticket is None or ticket.archived_at is not None:
        raise _err("ticket", "没有这个求助单", "No such ticket")
    if ticket.responsibility != "owner_paid":
        raise _err(
            "ticket",
            "只有维修责任为“业主自费”的求助单才转为有偿服务单",
            "Only a ticket whose repair responsibility is owner-paid becomes a paid service order",
        )
    if ticket.unit_id is None:
        raise _err("unit", "求助单没有房屋，无法收费", "The ticket has no unit to charge")
    item_id = parse_id(data.get("item"), "item")
    item = session.get(ServiceItem, item_id)
    if item is None or not item.active:
        raise _err("item", "没有这个服务项目", "No such service")
    live = session.execute(
        select(ServiceOrder.number).where(
            ServiceOrder.ticket_id == ticket.id, ServiceOrder.item_id == item.id, ServiceOrder.status != "cancelled"
        )
    ).scalar()
    if live:
        raise _err("ticket", f"该求助单已有此项服务单 {live}", f"The ticket already has order {live} for this service")
    start = parse_when(data.get("requested_start"), "requested_start")
    if start is None:
        start = ticket.agreed_visit_at or (utcnow() + dt.timedelta(hours=1)).replace(second=0, microsecond=0)
    end = parse_when(data.get("requested_end"), "requested_end") or start + dt.timedelta(hours=1)
    order = ServiceOrder(
        item_id=item.id,
        unit_id=ticket.unit_id,
        owner_id=ticket.owner_id,
        resident_id=ticket.resident_id,
        ticket_id=ticket.id,
        requested_start=start,
        requested_end=end,
        status="requested",
        note=_text(data.get("note"), "note", 4000) or ticket.description,
    )
    session.add(order)
    try:
        commit(session)
    except (FieldErrors, Conflict):
        session.rollback()
        raise
    return order


# --- rules on the generic add / edit ---------------------------------------------------------
class ServiceOrderRules:
    def pre_add(self, item):
        item.status = "requested"
        lock_assignee(self.datamodel.session, item.assignee.id if item.assignee is not None else item.assignee_id)

    def pre_update(self, item):
        from sqlalchemy import inspect as sa_inspect

        state = sa_inspect(item)
        before = state.attrs["status"].history.deleted or [item.status]
        if before[0] not in ("requested", "scheduled"):
            raise _err(
                "status",
                "只有已申请或已排期的服务单可以修改；其余请走办理流程",
                "Only a requested or scheduled order can be edited; use the workflow for the rest",
            )
        lock_assignee(self.datamodel.session, item.assignee.id if item.assignee is not None else item.assignee_id)

    def pre_delete(self, item):
        raise _err("id", "服务单不能删除，请取消并填写原因", "An order is never deleted: cancel it with a reason")


def catalog_items(category: str | None = None) -> list[ServiceItem]:
    """Active catalog entries (of one category), for the ticket page's "make an order" form."""
    from app.extensions import db

    stmt = select(ServiceItem).where(ServiceItem.active.is_(True)).order_by(ServiceItem.category, ServiceItem.code)
    if category:
        stmt = stmt.where(ServiceItem.category == category)
    return list(db.session.execute(stmt).scalars())


def order_status_label(status: str) -> str:
    return str(ORDER_STATUSES.get(status, status))


class ServiceOrderViewMixin(ServiceOrderRules):
    def create_blueprint(self, appbuilder, *args, **kwargs):
        # Template helpers for other pages (the ticket page lists its orders), app-wide.
        bp = super().create_blueprint(appbuilder, *args, **kwargs)
        bp.app_context_processor(lambda: {"desk_service_items": catalog_items, "desk_order_status": order_status_label})
        return bp

    def _act(self, pk, action: str):
        session = self.datamodel.session
        order = self.datamodel.get(pk, self._base_filters)
        if order is None:
            abort(404)
        try:
            run_action(session, order, action, request.form.to_dict(), request.form.get("version"))
            flash(str(MSG_DONE), "success")
        except FieldErrors as e:
            flash(_messages(e), "danger")
        except Conflict as e:
            flash(str(e), "danger")
        return redirect(url_for(f"{type(self).__name__}.show", pk=pk))

    @expose("/schedule/<int:pk>", methods=["POST"])
    @has_access
    def schedule(self, pk):
        return self._act(pk, "schedule")

    @expose("/start/<int:pk>", methods=["POST"])
    @has_access
    def start(self, pk):
        return self._act(pk, "start")

    @expose("/done/<int:pk>", methods=["POST"])
    @has_access
    def done(self, pk):
        return self._act(pk, "done")

    @expose("/charge/<int:pk>", methods=["POST"])
    @has_access
    def charge(self, pk):
        return self._act(pk, "charge")

    @expose("/rate/<int:pk>", methods=["POST"])
    @has_access
    def rate(self, pk):
        return self._act(pk, "rate")

    @expose("/cancel/<int:pk>", methods=["POST"])
    @has_access
    def cancel(self, pk):
        return self._act(pk, "cancel")

    @expose("/from_ticket", methods=["POST"])
    @has_access
    def from_ticket(self):
        session = self.datamodel.session
        try:
            order = order_from_ticket(session, request.form.to_dict())
        except FieldErrors as e:
            flash(_messages(e), "danger")
            ticket = request.form.get("ticket", "")
            if ticket.isdigit():
                return redirect(url_for("TicketView.show", pk=int(ticket)))
            return redirect(url_for(f"{type(self).__name__}.list"))
        flash(str(T(f"已生成服务单 {order.number}", f"Order {order.number} created")), "success")
        return redirect(url_for(f"{type(self).__name__}.show", pk=order.id))

    @expose("/show/<pk>", methods=["GET"])
    @has_access
    def show(self, pk):
        item = self.datamodel.get(pk, self._base_filters)
        if item is None:
            abort(404)
        session = self.datamodel.session
        users = []
        if item.status in ("requested", "scheduled"):
            users = (
                session.execute(select(User).where(working_user_clause()).order_by(User.username).limit(500))
                .scalars()
                .all()
            )
        from models.payments import PAYMENT_METHODS

        tz = display_tz()

        def local_input(value):
            return value.astimezone(tz).strftime("%Y-%m-%dT%H:%M") if value else ""

        g.desk_show = {
            "item": item,
            "next": [s for s in STATUS_ORDER if s in ORDER_TRANSITIONS.get(item.status, ())],
            "statuses": ORDER_STATUSES,
            "pricings": PRICINGS,
            "charge_modes": CHARGE_MODES,
            "payment_methods": PAYMENT_METHODS,
            "users": users,
            "no_tips": NO_TIPS,
            "demo_price": MSG_DEMO_PRICE,
            "start_input": local_input(item.requested_start),
            "end_input": local_input(item.requested_end),
        }
        return super().show(pk)

    @expose("/report")
    @has_access
    def report(self):
        try:
            rng = parse_range(_report_args(request.args))
        except RangeError as err:
            abort(400, description=f"{err.field}: {err.message}")
        fig = report_figures(self.datamodel.session, rng)
        return self.render_template(
            "desk/service_order_show.html",
            desk_service_report=True,
            fig=fig,
            charts=report_charts(fig),
            rng=rng,
        )


class ServiceOrderApiMixin(ServiceOrderRules):
    def _act(self, pk, action: str):
        session = self.datamodel.session
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return self.response_400(message="Request is not JSON")
        order = self.datamodel.get(pk, self._base_filters)
        if order is None:
            return self.response_404()
        if "version" not in body or isinstance(body.get("version"), bool):
            return self.response_422(message={"version": [str(MSG_VERSION)]})
        try:
            run_action(session, order, action, body, body.get("version"))
        except FieldErrors as e:
            return self.response_422(message=e.errors)
        except Conflict as e:
            return self.response(409, message=str(e), version=e.current_version)
        return self.response(
            200,
            id=order.id,
            number=order.number,
            status=order.status,
            version=order.version,
            amount=None if order.amount is None else str(order.amount),
            bill_id=order.bill_id,
            payment_id=order.payment_id,
        )

    @expose("/<int:pk>/schedule", methods=["POST"])
    @protect()
    @permission_name("schedule")
    def schedule(self, pk):
        """Schedule an order: the assignee and the slot. A staff member already booked for an
        overlapping slot is refused (422 on ``assignee``).
        ---
        post:
          parameters:
          - in: path
            schema:
              type: integer
            name: pk
          requestBody:
            required: true
            content:
              application/json:
                schema:
                  type: object
                  required: [assignee, version]
                  properties:
                    assignee:
                      type: integer
                    requested_start:
                      type: string
                      format: date-time
                    requested_end:
                      type: string
                      format: date-time
                    version:
                      type: integer
          responses:
            200:
              description: Scheduled
            404:
              $ref: '#/components/responses/404'
            409:
              description: Someone changed the order first
            422:
              $ref: '#/components/responses/422'
        """
        return self._act(pk, "schedule")

    @expose("/<int:pk>/start", methods=["POST"])
    @protect()
    @permission_name("start")
    def start(self, pk):
        """Start a scheduled order.
        ---
        post:
          parameters:
          - in: path
            schema:
              type: integer
            name: pk
          requestBody:
            required: true
            content:
              application/json:
                schema:
                  type: object
                  required: [version]
                  properties:
                    version:
                      type: integer
          responses:
            200:
              description: Started
            404:
              $ref: '#/components/responses/404'
            409:
              description: Someone changed the order first
            422:
              $ref: '#/components/responses/422'
        """
        return self._act(pk, "start")

    @expose("/<int:pk>/done", methods=["POST"])
    @protect()
    @permission_name("done")
    def done(self, pk):
        """Finish an order: the actual quantity (hours, pieces), materials (amount and note, for
        services that charge them extra), the quote (quoted services); the amount is computed.
        ---
        post:
          parameters:
          - in: path
            schema:
              type: integer
            name: pk
          requestBody:
            required: true
            content:
              application/json:
                schema:
                  type: object
                  required: [version]
                  properties:
                    quantity:
                      type: string
                    materials_amount:
                      type: string
                    materials_note:
                      type: string
                    quoted_price:
                      type: string
                    version:
                      type: integer
          responses:
            200:
              description: Done, with the amount
            404:
              $ref: '#/components/responses/404'
            409:
              description: Someone changed the order first
            422:
              $ref: '#/components/responses/422'
        """
        return self._act(pk, "done")

    @expose("/<int:pk>/charge", methods=["POST"])
    @protect()
    @permission_name("charge")
    def charge(self, pk):
        """Charge a done order: ``bill`` puts it on the unit's bills, ``on_spot`` records a
        payment with a receipt as well.
        ---
        post:
          parameters:
          - in: path
            schema:
              type: integer
            name: pk
          requestBody:
            required: true
            content:
              application/json:
                schema:
                  type: object
                  required: [charge_mode, version]
                  properties:
                    charge_mode:
                      type: string
                      enum: [bill, on_spot]
                    method:
                      type: string
                      enum: [cash, bank_transfer, wechat, alipay]
                    payer_name:
                      type: string
                    version:
                      type: integer
          responses:
            200:
              description: Charged (bill_id, payment_id)
            404:
              $ref: '#/components/responses/404'
            409:
              description: Someone changed the order first
            422:
              $ref: '#/components/responses/422'
        """
        return self._act(pk, "charge")

    @expose("/<int:pk>/rate", methods=["POST"])
    @protect()
    @permission_name("rate")
    def rate(self, pk):
        """Record the resident's rating of a charged order (1-5) and comment.
        ---
        post:
          parameters:
          - in: path
            schema:
              type: integer
            name: pk
          requestBody:
            required: true
            content:
              application/json:
                schema:
                  type: object
                  required: [satisfaction, version]
                  properties:
                    satisfaction:
                      type: integer
                      minimum: 1
                      maximum: 5
                    comment:
                      type: string
                    version:
                      type: integer
          responses:
            200:
              description: Rated
            404:
              $ref: '#/components/responses/404'
            409:
              description: Someone changed the order first
            422:
              $ref: '#/components/responses/422'
        """
        return self._act(pk, "rate")

    @expose("/<int:pk>/cancel", methods=["POST"])
    @protect()
    @permission_name("cancel")
    def cancel(self, pk):
        """Cancel a requested or scheduled order, with a reason.
        ---
        post:
          parameters:
          - in: path
            schema:
              type: integer
            name: pk
          requestBody:
            required: true
            content:
              application/json:
                schema:
                  type: object
                  required: [reason, version]
                  properties:
                    reason:
                      type: string
                    version:
                      type: integer
          responses:
            200:
              description: Cancelled
            404:
              $ref: '#/components/responses/404'
            409:
              description: Someone changed the order first
            422:
              $ref: '#/components/responses/422'
        """
        return self._act(pk, "cancel")

    @expose("/from_ticket", methods=["POST"])
    @protect()
    @permission_name("from_ticket")
    def from_ticket(self):
        """Make a service order from an owner-paid repair ticket.
        ---
        post:
          requestBody:
            required: true
            content:
              application/json:
                schema:
                  type: object
                  required: [ticket, item]
                  properties:
                    ticket:
                      type: integer
                    item:
                      type: integer
                    requested_start:
                      type: string
                      format: date-time
                    requested_end:
                      type: string
                      format: date-time
                    note:
                      type: string
          responses:
            201:
              description: Created (id, number, version)
            400:
              $ref: '#/components/responses/400'
            422:
              $ref: '#/components/responses/422'
        """
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return self.response_400(message="Request is not JSON")
        try:
            order = order_from_ticket(self.datamodel.session, body)
        except FieldErrors as e:
            return self.response_422(message=e.errors)
        except Conflict as e:
            return self.response(409, message=str(e))
        return self.response(201, id=order.id, number=order.number, status=order.status, version=order.version)

    @expose("/report", methods=["GET"])
    @protect()
    @permission_name("report")
    def report(self):
        """Orders and revenue per catalog item and month; satisfaction per item and per staff
        member, for a range of local dates of the orders' slots.
        ---
        get:
          parameters:
          - in: query
            name: from
            schema:
              type: string
              format: date
            description: First local date, included; default the first day of the month a year ago
          - in: query
            name: to
            schema:
              type: string
              format: date
            description: Last local date, included; default today
          responses:
            200:
              description: The figures
              content:
                application/json:
                  schema:
                    type: object
            400:
              description: A bad argument, named in the message
            401:
              $ref: '#/components/responses/401'
            403:
              $ref: '#/components/responses/403'
        """
        try:
            rng = parse_range(_report_args(request.args))
        except RangeError as err:
            return self.response_400(message={err.field: [str(err.message)]})
        return self.response(200, **report_figures(self.datamodel.session, rng))


# --- the report ------------------------------------------------------------------------------
def _report_args(args) -> dict:
    """Default range: from the first day of the month eleven months ago (a year of months)."""
    result = dict(args.items())
    if not (result.get("from") or "").strip():
        today = dt.datetime.now(display_tz()).date()
        y, m = today.year, today.month - 11
        while m <= 0:
            y, m = y - 1, m + 12
        result["from"] = dt.date(y, m, 1).isoformat()
    return result


def _local_month(session):
    """The local (display time zone) month ``YYYY-MM`` of an order's start, as SQL."""
    tz = display_tz()
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
    if not count:
        return None
    return float((Decimal(total) / Decimal(count)).quantize(Decimal("0.01")))


def report_figures(session, rng) -> dict:
    where = [ServiceOrder.requested_start >= rng.start, ServiceOrder.requested_start < rng.end]
    month = _local_month(session).label("month")
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
    sat_item = session.execute(
        select(
            ServiceOrder.item_id,
            func.count(ServiceOrder.satisfaction).label("n"),
            func.coalesce(func.sum(ServiceOrder.satisfaction), 0).label("total"),
        )
        .where(*where, ServiceOrder.satisfaction.is_not(None))
        .group_by(ServiceOrder.item_id)
    ).all()
    sat_staff = session.execute(
        select(
            ServiceOrder.assignee_id,
            func.count(ServiceOrder.satisfaction).label("n"),
            func.coalesce(func.sum(ServiceOrder.satisfaction), 0).label("total"),
            func.count().label("orders"),
        )
        .where(*where, ServiceOrder.assignee_id.is_not(None), ServiceOrder.status.in_(("done", *PAID_STATUSES)))
        .group_by(ServiceOrder.assignee_id)
    ).all()
    item_ids = {r.item_id for r in rows} | {r.item_id for r in sat_item}
    items = {i.id: i for i in session.execute(select(ServiceItem).where(ServiceItem.id.in_(item_ids or {0}))).scalars()}
    user_ids = {r.assignee_id for r in sat_staff}
    users = {u.id: u for u in session.execute(select(User).where(User.id.in_(user_ids or {0}))).scalars()}

    def item_name(item_id):
        i = items.get(item_id)
        if i is None:
            return str(item_id)
        return i.name_en if current_language() == "en" else i.name

    per_item: dict[int, dict] = {}
    per_month: dict[str, dict] = {}
    lines = []
    for r in rows:
        revenue = Decimal(r.revenue).quantize(Decimal("0.01"))
        lines.append(
            {
                "month": r.month,
                "item_id": r.item_id,
                "item": item_name(r.item_id),
                "orders": r.orders,
                "cancelled": r.cancelled,
                "charged": r.charged,
                "revenue": str(revenue),
            }
        )
        agg = per_item.setdefault(
            r.item_id,
            {"item_id": r.item_id, "item": item_name(r.item_id), "orders": 0, "charged": 0, "revenue": Decimal(0)},
        )
        agg["orders"] += r.orders
        agg["charged"] += r.charged
        agg["revenue"] += revenue
        m = per_month.setdefault(r.month, {"month": r.month, "orders": 0, "revenue": Decimal(0)})
        m["orders"] += r.orders
        m["revenue"] += revenue
    sat_of = {r.item_id: r for r in sat_item}
    by_item = []
    for item_id, agg in sorted(per_item.items(), key=lambda kv: (-kv[1]["revenue"], kv[1]["item"])):
        s = sat_of.get(item_id)
        by_item.append(
            {
                **agg,
                "revenue": str(agg["revenue"]),
                "ratings": s.n if s else 0,
                "satisfaction": _avg(s.total, s.n) if s else None,
            }
        )
    for item_id, s in sat_of.items():
        if item_id not in per_item:
            by_item.append(
                {
                    "item_id": item_id,
                    "item": item_name(item_id),
                    "orders": 0,
                    "charged": 0,
                    "revenue": "0.00",
                    "ratings": s.n,
                    "satisfaction": _avg(s.total, s.n),
                }
            )
    by_staff = []
    for r in sorted(sat_staff, key=lambda r: users[r.assignee_id].username if r.assignee_id in users else ""):
        u = users.get(r.assignee_id)
        by_staff.append(
            {
                "user_id": r.assignee_id,
                "staff": f"{u.first_name}{u.last_name} ({u.username})" if u else str(r.assignee_id),
                "orders": r.orders,
                "ratings": r.n,
                "satisfaction": _avg(r.total, r.n),
            }
        )
    total_revenue = sum((Decimal(x["revenue"]) for x in lines), Decimal(0))
    return {
        "from": rng.first.isoformat(),
        "to": rng.last.isoformat(),
        "orders": sum(x["orders"] for x in lines),
        "revenue": str(total_revenue.quantize(Decimal("0.01"))),
        "lines": lines,
        "by_month": [{**m, "revenue": str(m["revenue"])} for _, m in sorted(per_month.items())],
        "by_item": by_item,
        "by_staff": by_staff,
    }


def report_charts(fig: dict) -> dict:
    return {
        "revenue_by_item": bar_chart_svg(
            [(x["item"], float(x["revenue"])) for x in fig["by_item"][:20]],
            title=str(T("各服务项目收入（元）", "Revenue per service (CNY)")),
            horizontal=True,
        ),
        "by_month": bar_chart_svg(
            [(m["month"], float(m["revenue"])) for m in fig["by_month"]],
            title=str(T("每月收入（元）", "Revenue per month (CNY)")),
        ),
        "satisfaction_by_staff": bar_chart_svg(
            [(s["staff"], s["satisfaction"] or 0) for s in fig["by_staff"]],
            title=str(T("员工服务满意度（平均分）", "Satisfaction per staff member (average)")),
            horizontal=True,
            color="#4a9a5a",
        ),
    }


# --- the catalog -----------------------------------------------------------------------------
class ServiceItemViewMixin:
    """The catalog list says which prices are demo prices (示例价格)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.formatters_columns = {
            **self.formatters_columns,
            "demo_price": lambda v: str(MSG_DEMO_PRICE) if v else "",
        }


class ServiceItemRules:
    def pre_delete(self, item):
        used = self.datamodel.session.execute(
            select(func.count()).select_from(ServiceOrder).where(ServiceOrder.item_id == item.id)
        ).scalar()
        if used:
            raise _err(
                "code", "已有服务单的项目不能删除，可停用", "A service with orders cannot be deleted; deactivate it"
            )


ITEM_LABELS = {
    "category": T("类别", "Category"),
    "name": T("服务名称", "Service"),
    "name_en": T("英文名称", "English name"),
    "description": T("服务说明", "Description"),
    "pricing": T("计价方式", "Pricing"),
    "price": T("价格(元)", "Price (CNY)"),
    "unit_label": T("计价单位", "Per"),
    "materials_extra": T("材料费另计", "Materials extra"),
    "demo_price": T("示例价格", "Demo price"),
    "active": T("启用", "Active"),
    "fee_item": T("收费项目", "Fee item"),
    "fee_item.name": T("收费项目", "Fee item"),
    "estates": T("适用小区（空为全部）", "Estates (empty: all)"),
}

register(
    Resource(
        name="service_item",
        model=ServiceItem,
        label=T("服务项目", "Service catalog"),
        category="services",
        icon="fa-list-alt",
        list_columns=[
            "code",
            "category",
            "name",
            "pricing",
            "price",
            "unit_label",
            "materials_extra",
            "demo_price",
            "active",
        ],
        edit_columns=[
            "code",
            "category",
            "name",
            "name_en",
            "description",
            "pricing",
            "price",
            "unit_label",
            "materials_extra",
            "demo_price",
            "active",
            "fee_item",
            "estates",
        ],
        search_columns=["code", "category", "name", "pricing", "active", "demo_price"],
        order=("code", "asc"),
        labels=ITEM_LABELS,
        choices={"category": SERVICE_CATEGORIES, "pricing": PRICINGS},
        descriptions={
            "price": T(
                "上门报价、免费的服务可不填；标为示例价格的是演示数据，请按实际定价修改",
                "Not needed for quoted or free services; demo prices are sample data: set the real ones",
            ),
            "materials_extra": T("勾选则材料费按实收取，另计", "Ticked: materials are charged at cost on top"),
        },
        view_mixins=(ServiceItemViewMixin, ServiceItemRules),
        api_mixins=(ServiceItemRules,),
    )
)


# --- subscriptions ---------------------------------------------------------------------------
register(
    Resource(
        name="service_subscription",
        model=ServiceSubscription,
        label=T("定期服务", "Periodic services"),
        category="services",
        icon="fa-repeat",
        list_columns=["item.name", "unit.code", "recurrence", "first_start", "until", "assignee.username", "active"],
        edit_columns=["item", "unit", "recurrence", "first_start", "duration_minutes", "until", "assignee", "active"],
        search_columns=["item", "recurrence", "active", "first_start"],
        order=("id", "desc"),
        labels={
            "item": T("服务项目", "Service"),
            "item.name": T("服务项目", "Service"),
            "unit": T("房屋", "Unit"),
            "unit.code": T("房号", "Unit"),
            "recurrence": T("周期", "Recurrence"),
            "first_start": T("首次服务时间", "First visit"),
            "duration_minutes": T("每次时长(分钟)", "Duration (min)"),
            "until": T("截止时间", "Until"),
            "assignee": T("服务人员", "Assignee"),
            "assignee.username": T("服务人员", "Assignee"),
            "active": T("启用", "Active"),
        },
        choices={"recurrence": RECURRENCES},
        descriptions={
            "first_start": T(
                "每天的任务按周期生成未来若干天的服务单", "A daily job makes the orders of the coming days from this"
            ),
        },
        lookups=[UNIT_LOOKUP, Lookup("assignee", search=("username", "first_name"), label=user_label)],
    )
)


# --- orders ----------------------------------------------------------------------------------
ORDER_LABELS = {
    "number": T("服务单号", "Order no."),
    "item": T("服务项目", "Service"),
    "item.name": T("服务项目", "Service"),
    "unit": T("房屋", "Unit"),
    "unit.code": T("房号", "Unit"),
    "owner": T("业主", "Owner"),
    "owner.name": T("业主", "Owner"),
    "ticket.number": T("来源求助单", "From ticket"),
    "requested_start": T("预约开始", "Slot start"),
    "requested_end": T("预约结束", "Slot end"),
    "assignee": T("服务人员", "Assignee"),
    "assignee.username": T("服务人员", "Assignee"),
    "status": T("状态", "Status"),
    "cancel_reason": T("取消原因", "Cancellation reason"),
    "quantity": T("实际数量/时长", "Actual quantity / hours"),
    "materials_amount": T("材料费(元)", "Materials (CNY)"),
    "materials_note": T("材料说明", "Materials note"),
    "quoted_price": T("报价(元)", "Quote (CNY)"),
    "amount": T("收费金额(元)", "Charged amount (CNY)"),
    "charge_mode": T("收费方式", "Charged how"),
    "bill.id": T("账单编号", "Bill no."),
    "payment.receipt_no": T("收据号", "Receipt no."),
    "satisfaction": T("满意度(1-5)", "Satisfaction (1-5)"),
    "rating_comment": T("评价", "Comment"),
}

register(
    Resource(
        name="service_order",
        model=ServiceOrder,
        label=T("服务单", "Service orders"),
        category="services",
        deletable=False,
        icon="fa-handshake-o",
        list_columns=[
            "number",
            "item.name",
            "unit.code",
            "requested_start",
            "assignee.username",
            "status",
            "amount",
            "satisfaction",
        ],
        edit_columns=["item", "unit", "owner", "requested_start", "requested_end", "note"],
        show_columns=[
            "number",
            "item.name",
            "unit.code",
            "owner.name",
            "ticket.number",
            "requested_start",
            "requested_end",
            "assignee.username",
            "status",
            "cancel_reason",
            "quantity",
            "materials_amount",
            "materials_note",
            "quoted_price",
            "amount",
            "charge_mode",
            "bill.id",
            "payment.receipt_no",
            "satisfaction",
            "rating_comment",
            "note",
            "created_at",
            "created_by.username",
            "changed_at",
            "changed_by.username",
        ],
        search_columns=["number", "status", "requested_start", "item", "assignee", "satisfaction"],
        order=("id", "desc"),
        labels=ORDER_LABELS,
        choices={"status": ORDER_STATUSES, "charge_mode": CHARGE_MODES},
        descriptions={
            "item": NO_TIPS,
            "amount": NO_TIPS,
            "requested_start": T("住户希望的上门时间", "When the resident wants the visit"),
        },
        lookups=[UNIT_LOOKUP, OWNER_LOOKUP],
        view_mixins=(ServiceOrderViewMixin,),
        api_mixins=(ServiceOrderApiMixin,),
        show_template="desk/service_order_show.html",
    )
)
