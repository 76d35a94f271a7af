"""Paid convenience services (有偿便民服务, DESIGN.md item 9): the catalog, periodic
subscriptions and service orders, declared once.

An order is requested, scheduled (an assignee and a slot; nobody is booked twice for overlapping
slots), started, done (the amount follows from the catalog), charged (to the unit's bills, or paid
on the spot with a receipt) and rated; or cancelled with a reason. Each step is an ``Action``
below over a method of ``models.services.ServiceOrder``, which holds the rules; the API endpoint,
the screen route, the version check and the detail page's forms are built from it
(views/actions.py). Staff never accept tips or gifts: an order records only the charged amount.

Hand-written here: the API's ``POST /api/v1/service_order/from_ticket`` (an order from an
owner-paid repair ticket named in the body: there is no order yet to act on; the ticket page
uses the ticket's own declared action, views/desk.py, over the same ``ServiceOrder.from_ticket``),
and the report.

Rights (app/roles.py): the catalog is a Manager's (write on ``service_item``); the workflow is a
write on ``service_order``; the report is a read.
"""

from __future__ import annotations

import datetime as dt
import json

from flask import abort, request
from flask_appbuilder.baseviews import expose
from flask_appbuilder.security.decorators import has_access, permission_name, protect

from app.i18n import T
from app.security import user_label
from models.errors import Conflict, FieldErrors
from models.payments import PAYMENT_METHODS
from models.registers import RangeError, display_tz, parse_range
from models.services import (
    CHARGE_MODES,
    NO_TIPS,
    ORDER_STATUSES,
    ORDER_TRANSITIONS,
    PAID_STATUSES,
    PRICINGS,
    RECURRENCES,
    SATISFACTION,
    SERVICE_CATEGORIES,
    ServiceItem,
    ServiceOrder,
    ServiceSubscription,
    lock_assignee,
    service_report,
)
from views.actions import _openapi, parse_inputs
from views.archives import OWNER_LOOKUP, UNIT_LOOKUP
from views.registry import REGISTRY, Action, Input, Lookup, MenuEntry, Related, Resource, Section, moves_to, register
from views.reports import chart
from views.scope import scoped_range

MSG_DEMO_PRICE = T("示例价格", "Demo price")


# --- orders from owner-paid repair tickets ----------------------------------------------------
FROM_TICKET = Action(
    "from_ticket",
    T("转有偿服务单", "Make a paid service order"),
    method=ServiceOrder.from_ticket,
    inputs=[
        Input("ticket", T("求助单", "Ticket"), kind="int", required=True),
        Input("item", T("服务项目", "Service"), kind="int", required=True),
        Input("requested_start", T("预约开始", "Slot start"), kind="datetime"),
        Input("requested_end", T("预约结束", "Slot end"), kind="datetime"),
        Input("note", T("备注", "Note"), kind="textarea", max_length=4000),
    ],
    needs_version=False,
    creates="service_order",
    description=T("由业主自费的维修求助单生成有偿服务单", "Make a service order from an owner-paid repair ticket"),
)


def order_from_ticket(datamodel, source) -> ServiceOrder:
    """The inputs typed as a declared action's are (422 naming the field), the model's rule, one
    commit."""
    data = parse_inputs(REGISTRY["service_order"], FROM_TICKET, None, source, None)
    made = []
    datamodel._commit(lambda: made.append(ServiceOrder.from_ticket(datamodel.session, **data)))
    return made[0]


# --- the report ------------------------------------------------------------------------------
def report(session, args) -> tuple:
    """The range (default: a year of months, from the first day of the month eleven months ago)
    and the figures. Raises RangeError naming a bad argument."""
    args = dict(args.items())
    if not (args.get("from") or "").strip():
        today = dt.datetime.now(display_tz()).date()
        months = today.year * 12 + today.month - 12  # eleven months back, zero-based month
        args["from"] = dt.date(months // 12, months % 12 + 1, 1).isoformat()
    rng = scoped_range(parse_range(args))
    estates = rng.estate_id if rng.estate_id is not None else rng.estates
    fig = service_report(session, rng.start, rng.end, display_tz(), estates=estates)
    return rng, {"from": rng.first.isoformat(), "to": rng.last.isoformat(), **fig}


def report_charts(fig: dict) -> dict:
    """The report's charts (views/reports.py ``chart``), from the rows of the tables under them."""
    items = fig["by_item"][:20]
    return {
        "revenue_by_item": chart(
            [x["item"] for x in items],
            [(T("收入", "Revenue"), [x["revenue"] for x in items])],
            title=T("各服务项目收入（元）", "Revenue per service (CNY)")
            if len(fig["by_item"]) <= 20
            else T("收入最多的 20 个服务项目（元）", "The 20 services with the most revenue (CNY)"),
            unit=T("元", " CNY"),
            decimals=2,
            horizontal=True,
        ),
        "by_month": chart(
            [m["month"] for m in fig["by_month"]],
            [(T("收入", "Revenue"), [m["revenue"] for m in fig["by_month"]])],
            title=T("每月收入（元）", "Revenue per month (CNY)"),
            unit=T("元", " CNY"),
            decimals=2,
        ),
        "satisfaction_by_staff": chart(
            [s["staff"] for s in fig["by_staff"]],
            [(T("满意度", "Satisfaction"), [s["satisfaction"] for s in fig["by_staff"]])],
            title=T("员工服务满意度（平均分，满分 5）", "Satisfaction per staff member (average of 5)"),
            unit=T("分", ""),
            decimals=2,
            horizontal=True,
            axis_max=5,
        ),
    }


# --- the screen and API's own routes -----------------------------------------------------------
class ServiceOrderRules:
    def pre_update(self, item):
        item.check_editable()
        lock_assignee(self.datamodel.session, item.assignee_id)


class ServiceOrderViewMixin(ServiceOrderRules):
    @expose("/report")
    @has_access
    def report(self):
        try:
            rng, fig = report(self.datamodel.session, request.args)
        except RangeError as err:
            abort(400, description=f"{err.field}: {err.message}")
        return self.render_template("desk/service_report.html", fig=fig, charts=report_charts(fig), rng=rng)


class ServiceOrderApiMixin(ServiceOrderRules):
    @expose("/from_ticket", methods=["POST"])
    @protect()
    @permission_name("from_ticket")
    def from_ticket(self):
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return self.response_400(message="Request is not JSON")
        try:
            order = order_from_ticket(self.datamodel, body)
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
          - {in: query, name: from, schema: {type: string, format: date},
             description: "First local date, included; default the first day of the month a year ago"}
          - {in: query, name: to, schema: {type: string, format: date},
             description: "Last local date, included; default today"}
          responses:
            200:
              description: The figures
              content: {application/json: {schema: {type: object}}}
            400: {description: "A bad argument, named in the message"}
            401: {$ref: '#/components/responses/401'}
            403: {$ref: '#/components/responses/403'}
        """
        try:
            _rng, fig = report(self.datamodel.session, request.args)
        except RangeError as err:
            return self.response_400(message={err.field: [str(err.message)]})
        return self.response(200, **fig)


def _from_ticket_doc() -> str:
    """The OpenAPI description of the declared inputs, without a record's pk (there is no order yet)."""
    spec = json.loads(_openapi(None, FROM_TICKET).split("\n---\n", 1)[1])
    del spec["post"]["parameters"]
    return f"{FROM_TICKET.description.en}\n---\n{json.dumps(spec)}"


ServiceOrderApiMixin.from_ticket.__doc__ = _from_ticket_doc()


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
        item.check_deletable(self.datamodel.session)


ORDER_COLUMNS = ["number", "requested_start", "assignee.username", "status", "amount"]
SUBSCRIPTION_SHOWN = [
    "item.name",
    "unit.code",
    "recurrence",
    "first_start",
    "duration_minutes",
    "until",
    "assignee.username",
    "active",
]
RECORD = Section(T("记录", "Record"), ["created_at", "created_by.username", "changed_at", "changed_by.username"])

register(
    Resource(
        name="service_item",
        model=ServiceItem,
        label=T("服务项目", "Service catalog"),
        category="services",
        estate="estates",
        estate_optional=True,
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
        labels={
            "category": T("类别", "Category"),
            "name": T("服务名称", "Service"),
            "name_en": T("英文名称", "English name"),
            "description": T("服务说明", "Description"),
            "pricing": T("计价方式", "Pricing"),
            "price": T("价格(元)", "Price (CNY)"),
            "unit_label": T("计价单位", "Per"),
            "materials_extra": T("材料费另计", "Materials extra"),
            "demo_price": MSG_DEMO_PRICE,
            "active": T("启用", "Active"),
            "fee_item": T("收费项目", "Fee item"),
            "fee_item.name": T("收费项目", "Fee item"),
            "estates": T("适用小区（空为全部）", "Estates (empty: all)"),
        },
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
        related=[
            Related(T("最近的服务单", "Latest orders"), resource="service_order", via="item_id", columns=ORDER_COLUMNS)
        ],
    )
)


# --- subscriptions ---------------------------------------------------------------------------
register(
    Resource(
        name="service_subscription",
        model=ServiceSubscription,
        label=T("定期服务", "Periodic services"),
        category="services",
        estate="estate_id",
        icon="fa-repeat",
        list_columns=["item.name", "unit.code", "recurrence", "first_start", "until", "assignee.username", "active"],
        edit_columns=["item", "unit", "recurrence", "first_start", "duration_minutes", "until", "assignee", "active"],
        # The API serves the relations (id and label) too; the page shows the section.
        show_columns=[*SUBSCRIPTION_SHOWN, "item", "unit", "assignee", *RECORD.columns],
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
        sections=[
            Section(T("定期服务", "Periodic service"), SUBSCRIPTION_SHOWN),
            RECORD,
        ],
        related=[
            Related(
                T("生成的服务单", "Orders made from it"),
                resource="service_order",
                via="subscription_id",
                columns=ORDER_COLUMNS,
            )
        ],
    )
)


# --- orders ----------------------------------------------------------------------------------
def _answer(order: ServiceOrder, _returned) -> dict:
    amount = None if order.amount is None else str(order.amount)
    return {"number": order.number, "amount": amount, "bill_id": order.bill_id, "payment_id": order.payment_id}


def _step(name: str, label: T, method: str, to: str, description: T, inputs=(), **kw) -> Action:
    """One move of ``ORDER_TRANSITIONS`` (it is offered exactly when the table allows it)."""
    return Action(
        name,
        label,
        method=method,
        inputs=inputs,
        when=moves_to(ORDER_TRANSITIONS, to),
        description=description,
        result=_answer,
        **kw,
    )


ORDER_ACTIONS = [
    _step(
        "schedule",
        T("排期", "Schedule"),
        "schedule",
        "scheduled",
        T(
            "排期或改期：服务人员与时段；该员工在重叠时段已有服务单则拒绝（assignee）",
            "Schedule an order: the assignee and the slot. A staff member already booked for an overlapping slot "
            "is refused (422 on assignee)",
        ),
        inputs=[
            Input("assignee", T("服务人员", "Assignee"), kind="person", required=True),
            Input("requested_start", T("开始（空：不变）", "Start (empty: unchanged)"), kind="datetime"),
            Input("requested_end", T("结束（空：时长不变）", "End (empty: same length)"), kind="datetime"),
        ],
        style="primary",
    ),
    _step(
        "start",
        T("开始服务", "Start"),
        "start",
        "in_progress",
        T("开始服务", "Start a scheduled order"),
        style="primary",
    ),
    _step(
        "done",
        T("完成服务", "Done"),
        "complete",
        "done",
        T(
            "完成服务：实际数量/时长、材料费（另计的服务）、报价（上门报价的服务）；金额按目录计算",
            "Finish an order: the actual quantity (hours, pieces), materials (for services that charge them "
            "extra), the quote (quoted services); the amount is computed",
        ),
        inputs=[
            Input("quantity", T("实际数量/时长", "Actual quantity / hours"), kind="decimal"),
            Input("quoted_price", T("报价(元)", "Quote (CNY)"), kind="decimal"),
            Input("materials_amount", T("材料费(元)", "Materials (CNY)"), kind="decimal"),
            Input("materials_note", T("材料说明", "Materials note"), max_length=200),
        ],
        style="success",
    ),
    _step(
        "charge",
        T("收费", "Charge"),
        "charge",
        "charged",
        T(
            "收费：计入物业账单（bill），或现场收款并开收据（on_spot）",
            "Charge a done order: bill puts it on the unit's bills, on_spot records a payment with a receipt as well",
        ),
        inputs=[
            Input("charge_mode", T("收费方式", "Charged how"), kind="choice", choices=CHARGE_MODES, required=True),
            Input("method", T("现场收款方式", "Paid on the spot by"), kind="choice", choices=PAYMENT_METHODS),
            Input("payer_name", T("付款人", "Payer"), max_length=64),
        ],
        style="primary",
    ),
    _step(
        "rate",
        T("记录评价", "Record rating"),
        "rate",
        "rated",
        T(
            "记录住户对已收费服务单的评价（1-5 分）",
            "Record the resident's rating of a charged order (1-5) and comment",
        ),
        inputs=[
            Input("satisfaction", T("满意度", "Satisfaction"), kind="choice", choices=SATISFACTION, required=True),
            Input("comment", T("住户评价", "Resident comment")),
        ],
    ),
    _step(
        "cancel",
        T("取消服务单", "Cancel order"),
        "cancel",
        "cancelled",
        T("取消已申请或已排期的服务单（须填原因）", "Cancel a requested or scheduled order, with a reason"),
        inputs=[Input("reason", T("取消原因（必填）", "Reason (required)"), max_length=200)],
        style="danger",
        confirm=T("确定取消此服务单？", "Cancel this order?"),
    ),
]

register(
    Resource(
        name="service_order",
        model=ServiceOrder,
        label=T("服务单", "Service orders"),
        category="services",
        estate="estate_id",
        deletable=False,
        menus=[MenuEntry("report", T("便民服务报表", "Service report"), "report", icon="fa-pie-chart")],
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
        sections=[
            Section(
                T("服务单", "Order"),
                ["number", "status", "item.name", "price_terms", "unit.code", "owner.name", "ticket.number", "note"],
            ),
            Section(T("预约与派工", "Slot and assignee"), ["requested_start", "requested_end", "assignee.username"]),
            Section(
                T("完成情况", "Work done"),
                ["quantity", "materials_amount", "materials_note", "quoted_price", "amount"],
                when=lambda o: o.status in ("done", *PAID_STATUSES),
            ),
            Section(
                T("收费", "Charge"),
                ["charge_mode", "bill.period", "payment.receipt_no"],
                when=lambda o: o.status in PAID_STATUSES,
            ),
            Section(T("评价", "Rating"), ["satisfaction", "rating_comment"], when=lambda o: o.status == "rated"),
            Section(T("取消", "Cancellation"), ["cancel_reason"], when=lambda o: o.status == "cancelled"),
            Section(T("服务纪律", "Conduct"), ["conduct"]),
            RECORD,
        ],
        search_columns=["number", "status", "requested_start", "item", "assignee", "satisfaction"],
        order=("id", "desc"),
        labels={
            "number": T("服务单号", "Order no."),
            "item": T("服务项目", "Service"),
            "item.name": T("服务项目", "Service"),
            "price_terms": T("计价", "Pricing"),
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
            "bill.period": T("计入账单（账期）", "Bill (period)"),
            "payment.receipt_no": T("收据号", "Receipt no."),
            "satisfaction": T("满意度(1-5)", "Satisfaction (1-5)"),
            "rating_comment": T("评价", "Comment"),
            "conduct": T("员工守则", "Staff rule"),
        },
        choices={"status": ORDER_STATUSES, "charge_mode": CHARGE_MODES},
        descriptions={
            "item": NO_TIPS,
            "amount": NO_TIPS,
            "requested_start": T("住户希望的上门时间", "When the resident wants the visit"),
        },
        lookups=[UNIT_LOOKUP, OWNER_LOOKUP],
        view_mixins=(ServiceOrderViewMixin,),
        api_mixins=(ServiceOrderApiMixin,),
        actions=ORDER_ACTIONS,
    )
)
