"""Screens and APIs of the service desk, declared once; workflow routes are mixins."""

from __future__ import annotations

from flask import abort, flash, g, redirect, request, url_for
from flask_appbuilder.baseviews import expose
from flask_appbuilder.models.filters import BaseFilter
from flask_appbuilder.models.sqla.filters import FilterEqualFunction, get_field_setup_query
from flask_appbuilder.security.decorators import has_access, permission_name, protect
from sqlalchemy import func, select, update

from app.i18n import T
from models.base import utcnow
from models.calendar import DAY_KINDS, Holiday
from models.desk import (
    CALLBACK_STATUSES,
    CHANNELS,
    COMPLAINT_ABOUT,
    CONSULT_MODES,
    ESCALATION_LEVELS,
    EVENT_KINDS,
    MEDICAL_PATHS,
    NOTIFICATION_CHANNELS,
    NOTIFICATION_STATES,
    PRIORITIES,
    RESPONSIBILITIES,
    STATUSES,
    TICKET_KINDS,
    TICKET_SUBKINDS,
    TRANSITIONS,
    Callback,
    DutyShift,
    Notification,
    NotificationRoute,
    SlaPolicy,
    Ticket,
    record_callback_outcome,
)
from models.errors import Conflict, FieldErrors
from views.archives import OWNER_LOOKUP, UNIT_LOOKUP
from views.datamodel import MSG_CONFLICT
from views.registers import TicketRegisterMixin
from views.registry import Lookup, Resource, register
from views.reports import TicketReportApiMixin, TicketReportViewMixin

MSG_DONE = T("已保存", "Saved")


def _current_user_id():
    return g.user.id


# --- tickets ---------------------------------------------------------------------------------
def apply_transition(session, ticket: Ticket, to: str, reason: str | None, version) -> None:
    """Shared by the screen and the API: version check, the move, one commit."""
    if version is None or str(version) != str(ticket.version):
        raise Conflict(str(MSG_CONFLICT), current_version=ticket.version)
    ticket.transition(session, to, reason=reason)
    session.commit()


class TicketViewMixin:
    @expose("/transition/<int:pk>", methods=["POST"])
    @has_access
    def transition(self, pk):
        session = self.datamodel.session
        ticket = self.datamodel.get(pk, self._base_filters)  # an archived ticket is no longer worked on
        if ticket is None:
            abort(404)
        try:
            apply_transition(
                session,
                ticket,
                request.form.get("to", ""),
                request.form.get("reason") or None,
                request.form.get("version"),
            )
            flash(str(MSG_DONE), "success")
        except FieldErrors as e:
            session.rollback()
            flash("; ".join(m for msgs in e.errors.values() for m in msgs), "danger")
        except Conflict as e:
            session.rollback()
            flash(str(e), "danger")
        return redirect(url_for(f"{type(self).__name__}.show", pk=pk))

    def _show_widget_args(self, item) -> dict:
        return {
            "desk_timeline": item.events,
            "desk_next": sorted(TRANSITIONS.get(item.status, ())),
            "desk_statuses": STATUSES,
            "desk_event_kinds": EVENT_KINDS,
            # A runtime value: Jinja folds a filter over constants at compile time, which would
            # freeze one user's permission check into the template for everyone.
            "service_view": "ServiceOrderView",
        }

    @expose("/show/<pk>", methods=["GET"])
    @has_access
    def show(self, pk):
        item = self.datamodel.get(pk, self._base_filters)
        if item is None:
            abort(404)
        # Per request (``g``), never on the shared view object.
        g.desk_show = {**self._show_widget_args(item), "item": item}
        return super().show(pk)


class TicketApiMixin:
    @expose("/<int:pk>/transition", methods=["POST"])
    @protect()
    @permission_name("transition")
    def transition(self, pk):
        """Move a ticket to another status.
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
                  properties:
                    to:
                      type: string
                    reason:
                      type: string
                    version:
                      type: integer
          responses:
            200:
              description: Moved
            404:
              $ref: '#/components/responses/404'
            409:
              description: Someone changed the ticket first
            422:
              $ref: '#/components/responses/422'
        """
        session = self.datamodel.session
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return self.response_400(message="Request is not JSON")
        ticket = self.datamodel.get(pk, self._base_filters)
        if ticket is None:
            return self.response_404()
        if "version" not in body:
            return self.response_422(message={"version": [str(T("缺少版本号", "Missing version"))]})
        if not isinstance(body.get("to"), str):
            return self.response_422(message={"to": [str(T("请给出目标状态", "Give the target status"))]})
        reason = body.get("reason") if isinstance(body.get("reason"), str) else None
        try:
            apply_transition(session, ticket, body["to"], reason, body.get("version"))
        except FieldErrors as e:
            session.rollback()
            return self.response_422(message=e.errors)
        except Conflict as e:
            session.rollback()
            return self.response(409, message=str(e), version=e.current_version)
        return self.response(200, status=ticket.status, version=ticket.version)


class FilterIsNull(BaseFilter):
    """Base filter: the column is empty (``IS NULL``)."""

    name = "Is empty"
    arg_name = "desk_null"

    def apply(self, query, value):
        query, field = get_field_setup_query(query, self.model, self.column_name)
        return query.filter(field.is_(None))


class FilterIsNotNull(BaseFilter):
    """Base filter: the column is filled (``IS NOT NULL``)."""

    name = "Is filled"
    arg_name = "desk_not_null"

    def apply(self, query, value):
        query, field = get_field_setup_query(query, self.model, self.column_name)
        return query.filter(field.is_not(None))




TICKET_LABELS = {
    "number": T("编号", "Number"),
    "estate": T("小区", "Estate"),
    "estate.name": T("小区", "Estate"),
    "unit": T("房屋", "Unit"),
    "unit.code": T("房号", "Unit"),
    "owner": T("业主", "Owner"),
    "owner.name": T("业主", "Owner"),
    "resident": T("住户", "Resident"),
    "visitor_name": T("来访人", "Visitor"),
    "visitor_phone": T("来访人电话", "Visitor phone"),
    "kind": T("类别", "Class"),
    "subkind": T("细类", "Sub-class"),
    "channel": T("渠道", "Channel"),
    "priority": T("优先级", "Priority"),
    "address": T("地址", "Address"),
    "callback_phone": T("联系电话", "Callback phone"),
    "description": T("求助内容", "Request"),
    "status": T("状态", "Status"),
    "cancel_reason": T("取消原因", "Cancellation reason"),
    "assignee": T("处理人", "Assignee"),
    "assignee.username": T("处理人", "Assignee"),
    "escalation_level": T("升级级别", "Escalation level"),
    "responsibility": T("维修责任", "Repair responsibility"),
    "agreed_visit_at": T("约定上门时间", "Agreed visit time"),
    "cost": T("费用(元)", "Cost (CNY)"),
    "medical_path": T("急救处置", "Emergency path"),
    "dispatched": T("派出人员", "Who was sent"),
    "consult_mode": T("咨询方式", "Consultation mode"),
    "reply": T("答复内容", "Reply"),
    "confidential": T("保密", "Confidential"),
    "complaint_about": T("投诉对象", "Complaint about"),
    "reported_at": T("登记时间", "Recorded at"),
    "replied_at": T("答复时间", "Replied at"),
    "resolved_at": T("解决时间", "Resolved at"),
    "closed_at": T("关闭时间", "Closed at"),
    "reply_due_at": T("答复时限", "Reply due"),
    "resolve_due_at": T("解决时限", "Resolve due"),
    "next_due_at": T("下一时限", "Next deadline"),
}

register(
    Resource(
        name="ticket",
        model=Ticket,
        label=T("住户求助", "Help requests"),
        category="desk",
        icon="fa-life-ring",
        list_columns=[
            "number",
            "kind",
            "priority",
            "status",
            "unit.code",
            "reported_at",
            "reply_due_at",
            "escalation_level",
        ],
        edit_columns=[
            "kind",
            "subkind",
            "channel",
            "priority",
            "unit",
            "owner",
            "visitor_name",
            "visitor_phone",
            "address",
            "callback_phone",
            "description",
            "assignee",
            "responsibility",
            "agreed_visit_at",
            "cost",
            "medical_path",
            "dispatched",
            "consult_mode",
            "reply",
            "confidential",
            "complaint_about",
        ],
        show_columns=[
            "number",
            "kind",
            "subkind",
            "channel",
            "priority",
            "status",
            "escalation_level",
            "estate.name",
            "unit.code",
            "owner.name",
            "visitor_name",
            "visitor_phone",
            "address",
            "callback_phone",
            "description",
            "assignee.username",
            "responsibility",
            "agreed_visit_at",
            "cost",
            "medical_path",
            "dispatched",
            "consult_mode",
            "reply",
            "confidential",
            "complaint_about",
            "cancel_reason",
            "reported_at",
            "reply_due_at",
            "replied_at",
            "resolve_due_at",
            "resolved_at",
            "closed_at",
        ],
        search_columns=["number", "kind", "priority", "status", "reported_at", "escalation_level", "unit"],
        order=("id", "desc"),
        order_columns=["number", "kind", "priority", "status", "reported_at", "reply_due_at", "escalation_level", "id"],
        labels=TICKET_LABELS,
        choices={
            "kind": TICKET_KINDS,
            "subkind": TICKET_SUBKINDS,
            "channel": CHANNELS,
            "priority": PRIORITIES,
            "status": STATUSES,
            "responsibility": RESPONSIBILITIES,
            "medical_path": MEDICAL_PATHS,
            "consult_mode": CONSULT_MODES,
            "complaint_about": COMPLAINT_ABOUT,
            "escalation_level": ESCALATION_LEVELS,
        },
        lookups=[
            UNIT_LOOKUP,
            OWNER_LOOKUP,
            Lookup(
                "assignee",
                search=("username", "first_name"),
                label=lambda u: f"{u.first_name}{u.last_name} ({u.username})",
            ),
        ],
        view_mixins=(TicketViewMixin, TicketRegisterMixin, TicketReportViewMixin),
        api_mixins=(TicketApiMixin, TicketReportApiMixin),
        # Archived registers (DESIGN.md item 13) leave the working lists: see ``ticket_archive``.
        base_filters=[["archived_at", FilterIsNull, None]],
        show_template="desk/ticket_show.html",
        fieldsets=[
            (
                T("登记（急救先记地址和电话）", "Record (emergency: address and phone first)"),
                [
                    "kind",
                    "subkind",
                    "priority",
                    "channel",
                    "address",
                    "callback_phone",
                    "unit",
                    "owner",
                    "visitor_name",
                    "visitor_phone",
                    "description",
                    "assignee",
                ],
                True,
            ),
            (T("报修", "Repair"), ["responsibility", "agreed_visit_at", "cost"], True),
            (T("急救", "Emergency medical"), ["medical_path", "dispatched"], True),
            (T("咨询", "Consultation"), ["consult_mode", "reply", "confidential"], True),
            (T("投诉", "Complaint"), ["complaint_about"], True),
        ],
        descriptions={
            "address": T("急救：先登记地址和电话", "Emergency: record address and phone first"),
            "cost": T(
                "有偿服务按收费程序办理；员工不得收受住户财物",
                "Paid work follows the paid-service procedure; staff never accept money or gifts",
            ),
        },
    )
)

# The archived help registers (DESIGN.md item 13, jobs/retention.py): the same table, read-only,
# only the rows the yearly job archived; Managers and the Committee search them here.
TICKET_ARCHIVE_COLUMNS = ["number", "kind", "priority", "status", "unit.code", "reported_at", "closed_at", "archived_at"]
register(
    Resource(
        name="ticket_archive",
        model=Ticket,
        label=T("求助归档", "Archived requests"),
        category="desk",
        icon="fa-archive",
        list_columns=TICKET_ARCHIVE_COLUMNS,
        show_columns=[
            "number",
            "kind",
            "subkind",
            "channel",
            "priority",
            "status",
            "escalation_level",
            "estate.name",
            "unit.code",
            "owner.name",
            "visitor_name",
            "visitor_phone",
            "address",
            "callback_phone",
            "description",
            "assignee.username",
            "responsibility",
            "agreed_visit_at",
            "cost",
            "medical_path",
            "dispatched",
            "consult_mode",
            "reply",
            "confidential",
            "complaint_about",
            "cancel_reason",
            "reported_at",
            "replied_at",
            "resolved_at",
            "closed_at",
            "archived_at",
        ],
        search_columns=["number", "kind", "priority", "status", "reported_at", "closed_at", "archived_at"],
        order=("id", "desc"),
        order_columns=["number", "kind", "priority", "status", "reported_at", "closed_at", "archived_at", "id"],
        labels={**TICKET_LABELS, "archived_at": T("归档时间", "Archived at")},
        choices={
            "kind": TICKET_KINDS,
            "subkind": TICKET_SUBKINDS,
            "channel": CHANNELS,
            "priority": PRIORITIES,
            "status": STATUSES,
            "responsibility": RESPONSIBILITIES,
            "medical_path": MEDICAL_PATHS,
            "consult_mode": CONSULT_MODES,
            "complaint_about": COMPLAINT_ABOUT,
        },
        writable=False,
        base_filters=[["archived_at", FilterIsNotNull, None]],
        # The timeline on the detail page; its status form needs a write right nobody has here.
        view_mixins=(TicketViewMixin,),
        show_template="desk/ticket_show.html",
    )
)


# --- response policies and calendar ----------------------------------------------------------
class PolicyRecompute:
    """Changing a policy recomputes the deadlines of the open tickets it governs."""

    def post_add(self, item):
        recompute_open_tickets(self.datamodel.session, item.kind)

    def post_update(self, item):
        recompute_open_tickets(self.datamodel.session, item.kind)

    def post_delete(self, item):
        recompute_open_tickets(self.datamodel.session, item.kind)


def recompute_open_tickets(session, kind: str) -> int:
    from models.calendar import WorkCalendar
    from models.desk import OPEN_STATUSES

    calendar = WorkCalendar.load(session)
    tickets = (
        session.execute(
            select(Ticket).where(Ticket.kind == kind, Ticket.status.in_(OPEN_STATUSES), Ticket.archived_at.is_(None))
        )
        .scalars()
        .all()
    )
    for t in tickets:
        t.apply_policy(session, calendar)
        # Deadlines are system bookkeeping: no version bump for the people editing these tickets.
        session.execute(
            update(Ticket)
            .where(Ticket.id == t.id)
            .values(
                reply_due_at=t.reply_due_at,
                resolve_due_at=t.resolve_due_at,
                second_level_minutes=t.second_level_minutes,
                warn_minutes=t.warn_minutes,
                next_due_at=t.next_due_at,
            )
            .execution_options(synchronize_session=False)
        )
        session.expunge(t)
    session.commit()
    return len(tickets)


register(
    Resource(
        name="sla_policy",
        model=SlaPolicy,
        label=T("响应时限", "Response policies"),
        category="desk_settings",
        icon="fa-clock-o",
        list_columns=[
            "kind",
            "priority",
            "reply_minutes",
            "resolve_minutes",
            "resolve_working_days",
            "second_level_minutes",
            "warn_minutes",
            "active",
        ],
        edit_columns=[
            "kind",
            "priority",
            "reply_minutes",
            "resolve_minutes",
            "resolve_working_days",
            "second_level_minutes",
            "warn_minutes",
            "active",
        ],
        search_columns=["kind", "priority", "active"],
        order=("kind", "asc"),
        labels={
            "kind": T("类别", "Class"),
            "priority": T("优先级（空为全部）", "Priority (empty: any)"),
            "reply_minutes": T("答复时限(分钟)", "Reply within (min)"),
            "resolve_minutes": T("解决时限(分钟)", "Resolve within (min)"),
            "resolve_working_days": T("解决时限(工作日)", "Resolve within (working days)"),
            "second_level_minutes": T("二级升级(超时后分钟)", "Second level after (min)"),
            "warn_minutes": T("提前预警(分钟)", "Warn before (min)"),
            "active": T("启用", "Active"),
        },
        choices={"kind": TICKET_KINDS, "priority": PRIORITIES},
        view_mixins=(PolicyRecompute,),
        api_mixins=(PolicyRecompute,),
    )
)


register(
    Resource(
        name="holiday",
        model=Holiday,
        label=T("节假日与调休", "Holidays and make-up days"),
        category="desk_settings",
        icon="fa-calendar",
        list_columns=["day", "kind", "name"],
        edit_columns=["day", "kind", "name"],
        search_columns=["day", "kind", "name"],
        order=("day", "asc"),
        labels={"day": T("日期", "Date"), "kind": T("类型", "Kind"), "name": T("名称", "Name")},
        choices={"kind": DAY_KINDS},
    )
)


# --- callbacks -------------------------------------------------------------------------------
class CallbackViewMixin:
    @expose("/show/<pk>", methods=["GET"])
    @has_access
    def show(self, pk):
        g.desk_callback = self.datamodel.get(pk, self._base_filters)
        return super().show(pk)

    @expose("/outcome/<int:pk>", methods=["POST"])
    @has_access
    def outcome(self, pk):
        session = self.datamodel.session
        cb = session.get(Callback, pk)
        if cb is None:
            abort(404)
        reached = request.form.get("reached") in ("1", "true", "on", "yes")
        sat = request.form.get("satisfaction")
        try:
            record_callback_outcome(
                session,
                cb,
                reached=reached,
                satisfaction=int(sat) if sat and sat.isdigit() else None,
                comment=request.form.get("comment") or None,
            )
            session.commit()
            flash(str(MSG_DONE), "success")
        except FieldErrors as e:
            session.rollback()
            flash("; ".join(m for msgs in e.errors.values() for m in msgs), "danger")
        return redirect(url_for(f"{type(self).__name__}.show", pk=pk))


class CallbackApiMixin:
    @expose("/<int:pk>/outcome", methods=["POST"])
    @protect()
    @permission_name("outcome")
    def outcome(self, pk):
        """Record a callback's outcome (reached, satisfaction 1-5, comment).
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
                  properties:
                    reached:
                      type: boolean
                    satisfaction:
                      type: integer
                    comment:
                      type: string
          responses:
            200:
              description: Recorded
            404:
              $ref: '#/components/responses/404'
            422:
              $ref: '#/components/responses/422'
        """
        session = self.datamodel.session
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return self.response_400(message="Request is not JSON")
        cb = self.datamodel.get(pk, self._base_filters)
        if cb is None:
            return self.response_404()
        if not isinstance(body.get("reached"), bool):
            return self.response_422(
                message={"reached": [str(T("请说明是否联系上", "Say whether the resident was reached"))]}
            )
        sat = body.get("satisfaction")
        if sat is not None and (not isinstance(sat, int) or isinstance(sat, bool)):
            return self.response_422(message={"satisfaction": [str(T("满意度为 1 到 5 分", "Satisfaction is 1 to 5"))]})
        comment = body.get("comment") if isinstance(body.get("comment"), str) else None
        try:
            record_callback_outcome(session, cb, reached=body["reached"], satisfaction=sat, comment=comment)
            session.commit()
        except FieldErrors as e:
            session.rollback()
            return self.response_422(message=e.errors)
        return self.response(200, status=cb.status, ticket_status=cb.ticket.status)


register(
    Resource(
        name="callback",
        model=Callback,
        label=T("回访", "Callbacks"),
        category="desk",
        icon="fa-phone",
        list_columns=["ticket.number", "due_at", "status", "attempts", "satisfaction", "assignee.username"],
        edit_columns=["due_at", "assignee", "comment"],
        show_columns=[
            "ticket.number",
            "due_at",
            "status",
            "attempts",
            "reached",
            "satisfaction",
            "comment",
            "done_at",
            "assignee.username",
        ],
        search_columns=["status", "due_at", "satisfaction"],
        order=("due_at", "asc"),
        labels={
            "ticket": T("求助单", "Ticket"),
            "ticket.number": T("求助单", "Ticket"),
            "due_at": T("应回访时间", "Due"),
            "status": T("状态", "Status"),
            "attempts": T("联系次数", "Tries"),
            "reached": T("已联系上", "Reached"),
            "satisfaction": T("满意度(1-5)", "Satisfaction (1-5)"),
            "comment": T("回访意见", "Comment"),
            "done_at": T("完成时间", "Done at"),
            "assignee": T("回访人", "Assignee"),
            "assignee.username": T("回访人", "Assignee"),
        },
        choices={"status": CALLBACK_STATUSES},
        lookups=[
            Lookup(
                "assignee",
                search=("username", "first_name"),
                label=lambda u: f"{u.first_name}{u.last_name} ({u.username})",
            )
        ],
        view_mixins=(CallbackViewMixin,),
        api_mixins=(CallbackApiMixin,),
        show_template="desk/callback_show.html",
    )
)


# --- duty ------------------------------------------------------------------------------------
register(
    Resource(
        name="duty_shift",
        model=DutyShift,
        label=T("值班安排", "Duty shifts"),
        category="desk",
        icon="fa-user-clock",
        list_columns=["user.username", "estate.name", "starts_at", "ends_at", "post"],
        edit_columns=["user", "estate", "starts_at", "ends_at", "post", "note"],
        search_columns=["starts_at", "ends_at", "post"],
        order=("starts_at", "desc"),
        labels={
            "user": T("值班人", "On duty"),
            "user.username": T("值班人", "On duty"),
            "estate": T("小区", "Estate"),
            "estate.name": T("小区", "Estate"),
            "starts_at": T("开始", "Starts"),
            "ends_at": T("结束", "Ends"),
            "post": T("岗位", "Post"),
        },
        lookups=[
            Lookup(
                "user", search=("username", "first_name"), label=lambda u: f"{u.first_name}{u.last_name} ({u.username})"
            )
        ],
    )
)


# --- notifications ---------------------------------------------------------------------------
class NotificationViewMixin:
    @expose("/read/<int:pk>", methods=["POST"])
    @has_access
    def mark_read(self, pk):
        mark_read(self.datamodel.session, pk)
        return redirect(request.referrer or url_for(f"{type(self).__name__}.list"))


def mark_read(session, pk: int) -> bool:
    if not 0 < pk < 2**63:  # no such row can exist; and the database would refuse the number
        return False
    result = session.execute(
        update(Notification)
        .where(Notification.id == pk, Notification.user_id == g.user.id, Notification.read_at.is_(None))
        .values(read_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return result.rowcount == 1


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
        n = self.datamodel.session.execute(
            select(func.count())
            .select_from(Notification)
            .where(Notification.user_id == g.user.id, Notification.channel == "inbox", Notification.read_at.is_(None))
        ).scalar()
        return self.response(200, unread=n)

    @expose("/<int:pk>/read", methods=["POST"])
    @protect()
    @permission_name("mark_read")
    def mark_read(self, pk):
        """Mark one of my notifications as read.
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
        if not mark_read(self.datamodel.session, pk):
            return self.response_404()
        return self.response(200, message="OK")


register(
    Resource(
        name="notification",
        model=Notification,
        label=T("我的通知", "My notifications"),
        category="desk",
        icon="fa-bell",
        list_columns=["created_at", "title", "kind", "channel", "state", "read_at"],
        show_columns=[
            "created_at",
            "title",
            "body",
            "kind",
            "channel",
            "state",
            "attempts",
            "sent_at",
            "read_at",
            "last_error",
        ],
        search_columns=["kind", "state", "created_at"],
        order=("id", "desc"),
        writable=False,
        labels={
            "created_at": T("时间", "When"),
            "title": T("标题", "Title"),
            "body": T("内容", "Body"),
            "kind": T("类型", "Kind"),
            "channel": T("渠道", "Channel"),
            "state": T("发送状态", "Delivery"),
            "attempts": T("尝试次数", "Attempts"),
            "sent_at": T("发送时间", "Sent at"),
            "read_at": T("已读时间", "Read at"),
            "last_error": T("最近错误", "Last error"),
        },
        choices={"channel": NOTIFICATION_CHANNELS, "state": NOTIFICATION_STATES},
        base_filters=[["user_id", FilterEqualFunction, _current_user_id]],
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
            "role": {
                "Supervisor": T("主管", "Supervisor"),
                "Manager": T("经理", "Manager"),
                "Staff": T("员工", "Staff"),
            },
            "channel": {
                "email": T("邮件", "Email"),
                "webhook": T("群机器人（企业微信/钉钉）", "Group robot (WeCom/DingTalk)"),
            },
        },
    )
)
