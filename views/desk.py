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
    EVENT_KINDS,
    NOTIFICATION_CHANNELS,
    NOTIFICATION_STATES,
    PRIORITIES,
    RULE_CHOICES,
    STATUSES,
    TICKET_CODED,
    TICKET_KINDS,
    TRANSITIONS,
    Callback,
    DutyShift,
    Notification,
    NotificationRoute,
    SlaPolicy,
    Ticket,
    recompute_open_tickets,
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

    def _get_add_widget(self, form, exclude_cols=None, widgets=None):
        # The clock starts when the request came in: a new form starts at "now" (the clerk changes
        # it for a letter received by post or a call noted during an outage).
        if request.method == "GET" and "received_at" in form and form["received_at"].data is None:
            form["received_at"].data = utcnow()
        return super()._get_add_widget(form=form, exclude_cols=exclude_cols, widgets=widgets)

    @staticmethod
    def _timeline(item) -> list:
        """The ticket's timeline as the viewer may read it: a confidential request's content is
        hidden from those who are not its readers."""
        from types import SimpleNamespace

        from models.visibility import may_read_row
        from views.registers import CONFIDENTIAL, CONFIDENTIAL_EVENT_KINDS
        from views.visibility import current_user

        if may_read_row(item, current_user()):
            return list(item.events)
        return [
            SimpleNamespace(
                at=e.at,
                kind=e.kind,
                from_status=e.from_status,
                to_status=e.to_status,
                user=e.user,
                body=str(CONFIDENTIAL) if e.kind in CONFIDENTIAL_EVENT_KINDS and e.body else e.body,
            )
            for e in item.events
        ]

    def _show_widget_args(self, item) -> dict:
        return {
            "desk_basis": item.deadline_basis(self.datamodel.session),
            "desk_final": item.status in Ticket.__final__.states or item.archived_at is not None,
            "desk_timeline": self._timeline(item),
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
    "address": T("地址/地点", "Address / place"),
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
    "received_at": T("受理时间", "Received at"),
    "received_late_reason": T("补登原因", "Reason for late entry"),
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
            "received_at",
            "reply_due_at",
            "escalation_level",
        ],
        edit_columns=[
            "kind",
            "subkind",
            "channel",
            "received_at",
            "received_late_reason",
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
            "received_at",
            "received_late_reason",
            "reported_at",
            "reply_due_at",
            "replied_at",
            "resolve_due_at",
            "resolved_at",
            "closed_at",
        ],
        search_columns=["number", "kind", "priority", "status", "received_at", "reported_at", "escalation_level", "unit"],
        order=("id", "desc"),
        order_columns=[
            "number",
            "kind",
            "priority",
            "status",
            "received_at",
            "reported_at",
            "reply_due_at",
            "escalation_level",
            "id",
        ],
        labels=TICKET_LABELS,
        choices=TICKET_CODED,
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
                T("登记（紧急情况先记地址和电话）", "Record (emergencies: address and phone first)"),
                [
                    "kind",
                    "subkind",
                    "priority",
                    "channel",
                    "received_at",
                    "received_late_reason",
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
            "address": T(
                "急救、治安事件、灾害：先登记地址（派人前往的地点）和联系电话",
                "Medical emergencies, security incidents, disasters: record the address (where to send people) "
                "and the phone first",
            ),
            "received_at": T(
                "收到求助的时间，时限由此起算；默认为现在，不能是将来",
                "When the office received the request; deadlines run from it. Now by default, never in the future",
            ),
            "received_late_reason": T(
                "受理时间早于登记一小时以上时必填（如信件邮寄、停电时记录的来电）",
                "Required when received more than an hour before it is recorded (a letter by post, a call noted "
                "during an outage)",
            ),
            "cost": T(
                "有偿服务按收费程序办理；员工不得收受住户财物",
                "Paid work follows the paid-service procedure; staff never accept money or gifts",
            ),
        },
    )
)

# The archived help registers (DESIGN.md item 13, jobs/retention.py): the same table, read-only,
# only the rows the yearly job archived; Managers and the Committee search them here.
TICKET_ARCHIVE_COLUMNS = ["number", "kind", "priority", "status", "unit.code", "received_at", "closed_at", "archived_at"]
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
            "received_at",
            "received_late_reason",
            "reported_at",
            "replied_at",
            "resolved_at",
            "closed_at",
            "archived_at",
        ],
        search_columns=["number", "kind", "priority", "status", "received_at", "closed_at", "archived_at"],
        order=("id", "desc"),
        order_columns=["number", "kind", "priority", "status", "received_at", "closed_at", "archived_at", "id"],
        labels={**TICKET_LABELS, "archived_at": T("归档时间", "Archived at")},
        choices=TICKET_CODED,
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

    # All classes: an edit may move a policy from one class to another.
    def post_add(self, item):
        recompute_open_tickets(self.datamodel.session)

    def post_update(self, item):
        recompute_open_tickets(self.datamodel.session)

    def post_delete(self, item):
        recompute_open_tickets(self.datamodel.session)


class PolicyShowMixin:
    """The detail page says, for each procedure rule of the class, whether it or the policy applies."""

    @expose("/show/<pk>", methods=["GET"])
    @has_access
    def show(self, pk):
        item = self.datamodel.get(pk, self._base_filters)
        if item is None:
            abort(404)
        g.desk_policy_rules = item.rule_effects()
        return super().show(pk)


MSG_RULES = T(
    "规程底线：答复 5 分钟内（所有类别）；书面咨询 2 个工作日内书面答复。策略只能按同样的计时方式收紧它们"
    "（书面答复按工作日）；要放宽或改用其他计时，须在「替代规程」中选择该条。详情页显示每条规程是否适用。",
    "The procedure's floor: reply within 5 minutes (every class); a written reply to a written consultation within "
    "2 working days. A policy may only tighten them in the same terms (working days for the written reply); to "
    "loosen one or count it otherwise, choose it under 'Replaces procedure rule'. The detail page says which applies.",
)


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
            "replaces_rule",
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
            "replaces_rule",
            "active",
        ],
        search_columns=["kind", "priority", "active", "replaces_rule"],
        order=("kind", "asc"),
        labels={
            "kind": T("类别", "Class"),
            "priority": T("优先级（空为全部）", "Priority (empty: any)"),
            "reply_minutes": T("答复时限(分钟)", "Reply within (min)"),
            "resolve_minutes": T("解决时限(分钟)", "Resolve within (min)"),
            "resolve_working_days": T("解决时限(工作日)", "Resolve within (working days)"),
            "second_level_minutes": T("二级升级(超时后分钟)", "Second level after (min)"),
            "warn_minutes": T("提前预警(分钟)", "Warn before (min)"),
            "replaces_rule": T("替代规程", "Replaces procedure rule"),
            "active": T("启用", "Active"),
        },
        choices={"kind": TICKET_KINDS, "priority": PRIORITIES, "replaces_rule": RULE_CHOICES},
        descriptions={
            "replaces_rule": MSG_RULES,
            "resolve_minutes": T(
                "按日历分钟计时；书面咨询仍按规程 2 个工作日，除非在「替代规程」中选择该条",
                "Counted in calendar minutes; written consultations keep the procedure's 2 working days unless "
                "that rule is chosen under 'Replaces procedure rule'",
            ),
            "reply_minutes": T(
                "不超过规程的 5 分钟；更长须在「替代规程」中选择答复条款",
                "At most the procedure's 5 minutes; longer only when the reply rule is chosen under 'Replaces "
                "procedure rule'",
            ),
        },
        view_mixins=(PolicyShowMixin, PolicyRecompute),
        api_mixins=(PolicyRecompute,),
        show_template="desk/sla_policy_show.html",
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
        descriptions={
            "day": T(
                "由 chinese-calendar 按国务院通知装入（flask desk holidays --year 年份）；经理可修改，修改过的日期不会被覆盖",
                "Loaded from chinese-calendar, which follows the State Council's notice (flask desk holidays --year "
                "YEAR); a Manager may correct them, and corrected days are never overwritten",
            )
        },
        # Working-day deadlines of open requests follow the calendar as it is corrected.
        view_mixins=(PolicyRecompute,),
        api_mixins=(PolicyRecompute,),
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
        # A callback made by hand (an extra follow-up) names its request; the request cannot change.
        add_columns=["ticket", "due_at", "assignee", "comment"],
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
            Lookup("ticket", search=("number",), label=lambda t: t.number),
            Lookup(
                "assignee",
                search=("username", "first_name"),
                label=lambda u: f"{u.first_name}{u.last_name} ({u.username})",
            ),
        ],
        descriptions={
            "ticket": T(
                "已解决、待回访或已关闭的求助单（输入编号搜索）",
                "A resolved, awaiting-callback or closed request (type its number)",
            ),
            "assignee": T("记录回访结果时自动填为记录人", "Set to whoever records the outcome"),
        },
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
