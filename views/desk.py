"""The service desk (DESIGN.md items 3 to 6, 10), declared once: help requests and their archive,
response policies, the calendar, callbacks, duty shifts, notifications and their channels.

The rules live in models/desk.py; a request's status, a callback's outcome and a paid service order
made from an owner-paid repair are workflow actions (views/actions.py builds their API, screen route,
permission and form); the detail pages come from the sections and related lists declared here
(views/detail.py). The registers, the print form and the reports: views/registers.py, views/reports.py.
"""

from __future__ import annotations

from flask import g, redirect, request, url_for
from flask_appbuilder.baseviews import expose
from flask_appbuilder.models.filters import BaseFilter
from flask_appbuilder.models.sqla.filters import FilterEqualFunction, get_field_setup_query
from flask_appbuilder.security.decorators import has_access, permission_name, protect
from sqlalchemy import select

from app.i18n import T
from models.base import utcnow
from models.calendar import DAY_KINDS, Holiday
from models.desk import (
    CALLBACK_LABELS,
    CALLBACK_STATUSES,
    CALLBACK_TICKET_STATUSES,
    DUTY_LABELS,
    NOTIFICATION_CHANNELS,
    NOTIFICATION_KIND_LABELS,
    NOTIFICATION_LABELS,
    NOTIFICATION_STATES,
    POLICY_HELP,
    POLICY_LABELS,
    PRIORITIES,
    RULE_CHOICES,
    STATUSES,
    TICKET_CODED,
    TICKET_HELP,
    TICKET_KINDS,
    TICKET_LABELS,
    TICKET_PARTS,
    TRANSITIONS,
    Callback,
    DutyShift,
    Notification,
    NotificationRoute,
    SlaPolicy,
    Ticket,
    TicketSubkind,
    recompute_open_tickets,
)
from models.registers import TIMELINE_LABELS, display_tz, timeline
from views.archives import OWNER_LOOKUP, UNIT_LOOKUP
from views.registers import TicketRegisterMixin
from views.registry import REGISTRY, Action, Input, Link, Lookup, MenuEntry, Related, Resource, Section, register
from views.reports import TicketReportApiMixin, TicketReportViewMixin
from views.scope import COMPANY
from views.visibility import current_user

__all__ = ["TICKET_LABELS", "FilterIsNull", "FilterIsNotNull"]


class FilterIsNull(BaseFilter):
    """Base filter: the column is empty (``IS NULL``)."""

    name, arg_name, filled = "Is empty", "desk_null", False

    def apply(self, query, value):
        query, field = get_field_setup_query(query, self.model, self.column_name)
        return query.filter(field.is_not(None) if self.filled else field.is_(None))


class FilterIsNotNull(FilterIsNull):
    """Base filter: the column is filled (``IS NOT NULL``)."""

    name, arg_name, filled = "Is filled", "desk_not_null", True


USER_LOOKUP = Lookup(
    "assignee", search=("username", "first_name"), label=lambda u: f"{u.first_name}{u.last_name} ({u.username})"
)


# --- help requests ---------------------------------------------------------------------------
class TicketViewMixin:
    """Taking a call: the caller card beside the form (who is calling, their units, open requests
    and arrears: models/callers.py) and the sub-classes each class offers (data, not code)."""

    add_template = "desk/ticket_add.html"
    edit_template = "desk/ticket_edit.html"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        from app.extensions import db
        from models.desk import subkinds_of

        self.extra_args["desk_subkinds"] = lambda: subkinds_of(db.session, None)

    @expose("/caller")
    @has_access
    def caller(self):
        """The caller card: ``?q=`` what the clerk typed (part of a phone, a unit code, a name) or
        ``?unit=<id>`` the unit picked on the form. JSON with the people found and the card's HTML."""
        from flask import jsonify, render_template

        from models.callers import find_callers
        from models.fees import local_today
        from views.base import rights, sees_personal
        from views.scope import user_estates
        from views.visibility import mask_value

        try:
            unit_id = int(request.args["unit"]) if request.args.get("unit") else None
        except ValueError:
            return jsonify(message={"unit": [str(T("房屋编号无效", "Invalid unit"))]}), 400
        term = (request.args.get("q") or "")[:64]
        people = find_callers(
            self.datamodel.session, term, unit_id=unit_id, estates=user_estates(), today=local_today(),
            with_arrears="read" in rights("bill"),
        )
        if not sees_personal("owner"):
            for p in people:
                p["phone"] = mask_value("phone", p["phone"])
        for p in people:
            for u in p["units"]:
                for t in u["tickets"]:
                    t["url"] = url_for("TicketView.show", pk=t["id"])
                    t["kind_label"] = str(TICKET_KINDS.get(t["kind"], t["kind"]))
                    t["status_label"] = str(STATUSES.get(t["status"], t["status"]))
        html = render_template(
            "desk/caller_card.html", people=people, term=term, unit_asked=unit_id is not None,
            unit_url=lambda pk: url_for("UnitView.show", pk=pk) if "read" in rights("unit") else None,
            owner_url=lambda pk: url_for("OwnerView.show", pk=pk) if pk and "read" in rights("owner") else None,
        )
        data = [
            {
                **{k: p[k] for k in ("kind", "id", "name", "phone")},
                "units": [
                    {
                        **{k: u[k] for k in ("id", "code", "estate_id", "estate", "owner_id", "owner")},
                        "arrears": None if u["arrears"] is None else str(u["arrears"]),
                        "tickets": [
                            {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in t.items()}
                            for t in u["tickets"]
                        ],
                    }
                    for u in p["units"]
                ],
            }
            for p in people
        ]
        return jsonify(people=data, html=html)

    def _get_add_widget(self, form, exclude_cols=None, widgets=None):
        # The clock starts when the request came in: a new form starts at "now" (the clerk changes
        # it for a letter received by post or a call noted during an outage).
        if request.method == "GET" and "received_at" in form and form["received_at"].data is None:
            form["received_at"].data = utcnow()
        return super()._get_add_widget(form=form, exclude_cols=exclude_cols, widgets=widgets)


def _repair_services(ticket) -> dict:
    from app.extensions import db
    from models.services import catalog_items

    return {str(i.id): i.name for i in catalog_items(db.session, "repairs")}


def _paid_order(ticket, session, item):
    """Owner-paid repairs go through the paid-service procedure (models/services.py)."""
    from models.services import ServiceOrder

    return ServiceOrder.from_ticket(session, ticket=ticket.id, item=int(item))


TICKET_ACTIONS = [
    Action(
        "transition",
        T("变更状态", "Change status"),
        method="transition",
        inputs=[
            # Any status is taken (the model says why a move is refused); the form offers what may follow.
            Input(
                "to", T("新状态", "New status"), kind="choice", required=True, choices=STATUSES,
                offer=lambda t: {s: label for s, label in STATUSES.items() if s in TRANSITIONS.get(t.status, ())},
            ),
            Input("reason", T("说明/取消原因", "Note / reason")),
        ],
        when=lambda t: bool(TRANSITIONS.get(t.status)),
        style="primary",
        description=T("变更求助单状态（取消须写原因）", "Move a request to another status (a cancellation needs a reason)"),
    ),
    Action(
        "from_ticket",
        T("转有偿服务单", "Make a paid service order"),
        method=_paid_order,
        inputs=[Input("item", T("服务项目", "Service"), kind="choice", required=True, choices=_repair_services)],
        when=lambda t: t.responsibility == "owner_paid" and t.archived_at is None,
        needs_version=False,
        creates="service_order",
        result=lambda t, order: {"number": order.number},
        description=T("由业主自费的报修生成有偿服务单", "Make a paid service order from an owner-paid repair"),
    ),
]


RECORD_FORM = [
    "kind", "subkind", "priority", "channel", "received_at", "received_late_reason", "address", "callback_phone",
    "estate", "unit", "owner", "visitor_name", "visitor_phone", "description", "assignee",
]


def _part(kind: str) -> Section:
    title, columns = TICKET_PARTS[kind]
    return Section(title, columns, when=lambda t: t.has_part(kind))


def ticket_sections(*more_times: str) -> list[Section]:
    """The detail page of a request: what was recorded, its class's part only, its times."""
    return [
        Section(T("只读", "Read-only"), ["read_only_notice"], when=lambda t: t.is_read_only),
        Section(
            T("登记", "Record"),
            [
                "number", "kind", "subkind", "channel", "priority", "status", "escalation_level", "estate.name",
                "unit.code", "owner.name", "visitor_name", "visitor_phone", "address", "callback_phone",
                "description", "assignee.username", "deadline",
            ],
        ),
        *[_part(kind) for kind in TICKET_PARTS],
        Section(T("取消", "Cancellation"), ["cancel_reason"], when=lambda t: bool(t.cancel_reason)),
        Section(
            T("时间与时限", "Times and deadlines"),
            [
                "received_at", "received_late_reason", "reported_at", "reply_due_at", "reply_basis", "replied_at",
                "resolve_due_at", "resolve_basis", "resolved_at", "closed_at", *more_times,
            ],
        ),
    ]


def _timeline_rows(ticket) -> list[dict]:
    return timeline(ticket, reader=current_user(), tz=display_tz())


# The timeline (what a confidential request says hidden from those who may not read it), the paid
# service orders of an owner-paid repair, the callbacks of a finished request.
TICKET_RELATED = [
    Related(T("时间线", "Timeline"), rows=_timeline_rows, columns=list(TIMELINE_LABELS), labels=TIMELINE_LABELS, name="timeline"),
    Related(
        T("有偿服务单", "Paid service orders"), "service_order", "ticket_id", ["number", "item.name", "status", "amount"],
        when=lambda t: t.responsibility == "owner_paid" or bool(t.service_orders), name="service-orders",
    ),
    Related(
        T("回访", "Callbacks"), "callback", "ticket_id", ["due_at", "status", "attempts", "satisfaction", "comment", "assignee.username"],
        when=lambda t: t.kind in ("repair", "complaint") or t.status in CALLBACK_TICKET_STATUSES, name="callbacks",
    ),
]

register(
    Resource(
        name="ticket",
        model=Ticket,
        label=T("住户求助", "Help requests"),
        category="desk",
        estate="estate_id",
        icon="fa-life-ring",
        # What a clerk scans a list for: what it is about, who called, which unit, how long is
        # left, who has it (by name).
        list_columns=[
            "number", "kind", "subject", "visitor_phone", "unit.code", "deadline", "assignee.username", "status",
            "priority", "received_at", "escalation_level",
        ],
        edit_columns=[*RECORD_FORM, *[c for _title, columns in TICKET_PARTS.values() for c in columns]],
        search_columns=[
            "number", "kind", "subkind", "description", "visitor_name", "visitor_phone", "status", "priority",
            "assignee", "received_at", "reported_at", "escalation_level", "unit",
        ],
        order_columns=[
            "number", "kind", "priority", "status", "received_at", "reported_at", "reply_due_at", "escalation_level", "id",
        ],
        labels=TICKET_LABELS,
        choices=TICKET_CODED,
        lookups=[UNIT_LOOKUP, OWNER_LOOKUP, USER_LOOKUP],
        view_mixins=(TicketViewMixin, TicketRegisterMixin, TicketReportViewMixin),
        api_mixins=(TicketReportApiMixin,),
        # Archived registers (DESIGN.md item 13) leave the working lists: see ``ticket_archive``.
        base_filters=[["archived_at", FilterIsNull, None]],
        # The form: what to record first (for emergencies, where to send people and a phone), then
        # the class's own part (desk.js shows the chosen class's part only).
        fieldsets=[
            (T("登记（紧急情况先记地址和电话）", "Record (emergencies: address and phone first)"), RECORD_FORM, True),
            *[(title, list(columns), True) for title, columns in TICKET_PARTS.values()],
        ],
        descriptions=TICKET_HELP,
        actions=TICKET_ACTIONS,
        links=[Link(T("打印登记表", "Print form"), "print_form")],
        sections=ticket_sections(),
        related=TICKET_RELATED,
        menus=[
            MenuEntry("report", T("求助统计报表", "Help desk report"), "report", icon="fa-line-chart"),
            MenuEntry("register_help", T("住户求助登记表", "Help register"), "register?register=help", icon="fa-book"),
            MenuEntry("register_repair", T("住户报修登记表", "Repair register"), "register?register=repair", icon="fa-wrench"),
            MenuEntry(
                "register_complaint", T("投诉受理登记表", "Complaint register"), "register?register=complaint",
                icon="fa-commenting-o",
            ),
        ],
    )
)

# The archived help registers (DESIGN.md item 13, jobs/retention.py): the same table, read-only,
# only the rows the yearly job archived; Managers and the Committee search them here.
ARCHIVE_COLUMNS = ["number", "kind", "priority", "status", "unit.code", "received_at", "closed_at", "archived_at"]
register(
    Resource(
        name="ticket_archive",
        model=Ticket,
        label=T("求助归档", "Archived requests"),
        category="desk",
        estate="estate_id",
        icon="fa-archive",
        list_columns=ARCHIVE_COLUMNS,
        search_columns=[c for c in ARCHIVE_COLUMNS if c != "unit.code"],
        order_columns=[*[c for c in ARCHIVE_COLUMNS if c != "unit.code"], "id"],
        labels=TICKET_LABELS,
        choices=TICKET_CODED,
        writable=False,
        base_filters=[["archived_at", FilterIsNotNull, None]],
        sections=ticket_sections("archived_at"),
        related=TICKET_RELATED,
    )
)


# --- response policies and calendar ----------------------------------------------------------
class PolicyRecompute:
    """Changing a policy or the calendar recomputes the deadlines of the open tickets they govern."""

    # All classes: an edit may move a policy from one class to another.
    def _recompute(self, item):
        recompute_open_tickets(self.datamodel.session)

    post_add = post_update = post_delete = _recompute


POLICY_COLUMNS = [
    "kind", "priority", "reply_minutes", "resolve_minutes", "resolve_working_days", "second_level_minutes",
    "warn_minutes", "replaces_rule", "active",
]

register(
    Resource(
        name="sla_policy",
        model=SlaPolicy,
        label=T("响应时限", "Response policies"),
        category="desk_settings",
        estate=COMPANY,
        icon="fa-clock-o",
        list_columns=POLICY_COLUMNS,
        edit_columns=POLICY_COLUMNS,
        search_columns=["kind", "priority", "active", "replaces_rule"],
        order=("kind", "asc"),
        labels=POLICY_LABELS,
        choices={"kind": TICKET_KINDS, "priority": PRIORITIES, "replaces_rule": RULE_CHOICES},
        descriptions=POLICY_HELP,
        view_mixins=(PolicyRecompute,),
        api_mixins=(PolicyRecompute,),
        sections=[
            Section(T("响应时限", "Response policy"), POLICY_COLUMNS),
            Section(T("规程条款与本策略", "Procedure rules and this policy"), ["rule_notes"]),
        ],
    )
)

SUBKIND_COLUMNS = ["kind", "code", "name", "name_en", "position", "active"]
register(
    Resource(
        name="ticket_subkind",
        model=TicketSubkind,
        label=T("求助细类", "Request sub-classes"),
        category="desk_settings",
        estate=COMPANY,
        icon="fa-tags",
        list_columns=SUBKIND_COLUMNS,
        edit_columns=SUBKIND_COLUMNS,
        search_columns=["kind", "code", "name", "active"],
        order=("kind", "asc"),
        labels={
            "kind": T("类别", "Class"),
            "code": T("编码", "Code"),
            "name": T("名称", "Name"),
            "name_en": T("英文名称", "English name"),
            "position": T("排序", "Order"),
            "active": T("启用", "Active"),
        },
        descriptions={
            "code": T("英文字母、数字和下划线，保存后不要改动（求助单记录的是编码）",
                      "Letters, digits and underscores; keep it once used (requests store the code)"),
            "active": T("停用后登记时不再提供，已登记的求助单不受影响",
                        "A retired sub-class is no longer offered; requests that used it keep it"),
        },
        choices={"kind": TICKET_KINDS},
        # Retire a sub-class instead: requests keep its code.
        deletable=False,
    )
)

register(
    Resource(
        name="holiday",
        model=Holiday,
        label=T("节假日与调休", "Holidays and make-up days"),
        category="desk_settings",
        estate=COMPANY,
        icon="fa-calendar",
        list_columns=["day", "kind", "name"],
        edit_columns=["day", "kind", "name"],
        search_columns=["day", "kind", "name"],
        order=("day", "asc"),
        labels={"day": T("日期", "Date"), "kind": T("类型", "Kind"), "name": T("名称", "Name")},
        choices={"kind": DAY_KINDS},
        descriptions={
            "day": T(
                "由系统按国务院办公厅的放假安排装入；经理可修改，修改过的日期不会被覆盖",
                "Loaded from chinese-calendar (the State Council's notice; flask desk holidays --year YEAR); a Manager "
                "may correct them, and corrected days are never overwritten",
            )
        },
        # Working-day deadlines of open requests follow the calendar as it is corrected.
        view_mixins=(PolicyRecompute,),
        api_mixins=(PolicyRecompute,),
    )
)


# --- callbacks -------------------------------------------------------------------------------
SATISFACTION = {str(n): T(f"{n} 分", f"{n} of 5") for n in range(5, 0, -1)}


def _callback_ticket(cb) -> list[dict]:
    """The request a callback is about, with a button to it (its archive page once archived)."""
    from views.base import rights

    t = cb.ticket
    resource = "ticket_archive" if t.archived_at is not None else "ticket"
    url = url_for(f"{REGISTRY[resource].class_stem}View.show", pk=t.id) if "read" in rights(resource) else None
    return [{"number": t.number, "kind": TICKET_KINDS.get(t.kind, t.kind), "status": STATUSES.get(t.status), "_url": url}]


register(
    Resource(
        name="callback",
        model=Callback,
        label=T("回访", "Callbacks"),
        category="desk",
        estate="ticket.estate_id",
        icon="fa-phone",
        list_columns=["ticket.number", "due_at", "status", "attempts", "satisfaction", "assignee.username"],
        edit_columns=["due_at", "assignee", "comment"],
        # A callback made by hand (an extra follow-up) names its request; the request cannot change.
        add_columns=["ticket", "due_at", "assignee", "comment"],
        show_columns=[
            "ticket.number", "due_at", "status", "attempts", "reached", "satisfaction", "comment", "done_at",
            "assignee.username",
        ],
        search_columns=["status", "due_at", "satisfaction"],
        order=("due_at", "asc"),
        labels=CALLBACK_LABELS,
        choices={"status": CALLBACK_STATUSES},
        lookups=[Lookup("ticket", search=("number",), label=lambda t: t.number), USER_LOOKUP],
        descriptions={
            "ticket": T(
                "已解决、待回访或已关闭的求助单（输入编号搜索）",
                "A resolved, awaiting-callback or closed request (type its number)",
            ),
            "assignee": T("记录回访结果时自动填为记录人", "Set to whoever records the outcome"),
        },
        actions=[
            Action(
                "outcome",
                T("记录回访结果", "Record the outcome"),
                method="record_outcome",
                inputs=[
                    Input("reached", T("是否联系上", "Reached?"), kind="bool", required=True),
                    Input("satisfaction", T("满意度", "Satisfaction"), kind="choice", choices=SATISFACTION),
                    Input("comment", T("回访意见", "Comment")),
                ],
                when=lambda cb: cb.status == "pending",
                needs_version=False,
                style="primary",
                description=T(
                    "记录回访结果：联系上的记满意度（不满意则重新打开）；联系不上的计次",
                    "Record a callback's outcome: reached with a satisfaction 1-5 (unsatisfied reopens the "
                    "request), or not reached (tries are counted)",
                ),
                result=lambda cb, _: {"ticket_status": cb.ticket.status},
            )
        ],
        related=[Related(T("求助单", "Request"), rows=_callback_ticket, columns=["number", "kind", "status"], labels=TICKET_LABELS, name="ticket")],
    )
)


# --- duty ------------------------------------------------------------------------------------
register(
    Resource(
        name="duty_shift",
        model=DutyShift,
        label=T("值班安排", "Duty shifts"),
        category="desk",
        estate="estate_id",
        estate_optional=True,
        icon="fa-user-clock",
        list_columns=["user.username", "estate.name", "starts_at", "ends_at", "post"],
        edit_columns=["user", "estate", "starts_at", "ends_at", "post", "note"],
        search_columns=["starts_at", "ends_at", "post"],
        order=("starts_at", "desc"),
        labels=DUTY_LABELS,
        lookups=[Lookup("user", search=USER_LOOKUP.search, label=USER_LOOKUP.label)],
    )
)


# --- notifications: each user's own. Reading one is an atomic flag on a record without a version
# (404 when it is not mine or read already), not a workflow step: its two routes are written here.
# What a notification is about -> the screen that shows it (dunning runs are about an estate: the
# notices to print). A resource added later with notifications adds its line here.
NOTIFICATION_SUBJECTS = {
    "ticket": lambda pk: _ticket_url(pk),
    "callback": lambda pk: url_for("CallbackView.show", pk=pk),
    "renovation": lambda pk: url_for("RenovationView.show", pk=pk),
    "rectification": lambda pk: url_for("RectificationOrderView.show", pk=pk),
    "estate": lambda pk: url_for("DunningNoticeView.list"),
}


def _ticket_url(pk: int) -> str:
    from app.extensions import db

    archived = db.session.execute(select(Ticket.archived_at).where(Ticket.id == pk)).scalar()
    return url_for("TicketArchiveView.show" if archived else "TicketView.show", pk=pk)


class NotificationViewMixin:
    def _show(self, pk):
        # Opening one of my notifications reads it (the bell counts one fewer).
        if str(pk).isdigit():
            Notification.mark_read(self.datamodel.session, int(pk), g.user.id)
        return super()._show(pk)

    @expose("/open/<int:pk>")
    @has_access
    def open(self, pk):
        """The record the notification is about (marked read on the way)."""
        from flask import abort

        item = self.datamodel.get(pk, self._base_filters)
        if item is None:
            abort(404)
        Notification.mark_read(self.datamodel.session, pk, g.user.id)
        target = NOTIFICATION_SUBJECTS.get(item.subject_type)
        return redirect(target(item.subject_id) if target else url_for(f"{type(self).__name__}.show", pk=pk))

    @expose("/read/<int:pk>", methods=["POST"])
    @has_access
    def mark_read(self, pk):
        Notification.mark_read(self.datamodel.session, pk, g.user.id)
        return redirect(request.referrer or url_for(f"{type(self).__name__}.list"))


class NotificationApiMixin:
    @expose("/unread", methods=["GET"])
    @protect()
    @permission_name("unread")
    def unread(self):
        """How many in-app notifications of mine are unread.
        ---
        get:
          responses:
            200:
              description: The count
        """
        return self.response(200, unread=Notification.unread_count(self.datamodel.session, g.user.id))

    @expose("/<int:pk>/read", methods=["POST"])
    @protect()
    @permission_name("mark_read")
    def mark_read(self, pk):
        """Mark one of my notifications as read (404: not mine, or read already).
        ---
        post:
          parameters:
          - in: path
            schema:
              type: integer
            name: pk
          responses:
            200:
              description: Marked
            404:
              $ref: '#/components/responses/404'
        """
        if not Notification.mark_read(self.datamodel.session, pk, g.user.id):
            return self.response_404()
        return self.response(200, message="OK")


register(
    Resource(
        name="notification",
        model=Notification,
        label=T("我的通知", "My notifications"),
        category="desk",
        estate=COMPANY,
        icon="fa-bell",
        list_columns=["created_at", "title", "kind", "channel", "state", "read_at"],
        show_columns=["created_at", "title", "body", "kind", "channel", "state", "attempts", "sent_at", "read_at", "last_error"],
        search_columns=["kind", "state", "created_at"],
        order=("id", "desc"),
        writable=False,
        labels=NOTIFICATION_LABELS,
        choices={"kind": NOTIFICATION_KIND_LABELS, "channel": NOTIFICATION_CHANNELS, "state": NOTIFICATION_STATES},
        base_filters=[["user_id", FilterEqualFunction, lambda: g.user.id]],
        links=[Link(T("打开相关记录", "Open the record"), "open")],
        view_mixins=(NotificationViewMixin,),
        api_mixins=(NotificationApiMixin,),
    )
)

register(
    Resource(
        name="notification_route",
        model=NotificationRoute,
        label=T("通知渠道", "Notification channels"),
        category="desk_settings",
        estate=COMPANY,
        icon="fa-bullhorn",
        list_columns=["role", "channel", "target", "active"],
        edit_columns=["role", "channel", "target", "active"],
        search_columns=["role", "channel"],
        order=("role", "asc"),
        labels={
            "role": T("角色", "Role"),
            "channel": T("渠道", "Channel"),
            "target": T("群机器人地址", "Robot webhook URL"),
            "active": T("启用", "Active"),
        },
        choices={
            "role": {"Supervisor": T("主管", "Supervisor"), "Manager": T("经理", "Manager"), "Staff": T("员工", "Staff")},
            "channel": {"email": T("邮件", "Email"), "webhook": T("群机器人（企业微信/钉钉）", "Group robot (WeCom/DingTalk)")},
        },
    )
)
