"""Renovations (装修管理, DESIGN.md item 8): applications, approval and the permit, inspections,
violations and rectification, extensions, completion acceptance, deductions and the deposit
refund, declared once as resources with their workflow actions (views/actions.py builds the API
endpoints, screen routes, permissions, forms and refusals from them).

Rights (app/roles.py): every action is a write on its resource, except approving and rejecting a
renovation or an extension: those need the separate ``approve`` right, which only Managers hold.
The rules are in ``models/renovation.py`` (shared with the jobs and the tests); this module keeps
the forms, the print form (the permit), the downloads and the report.
"""

from __future__ import annotations

import datetime as dt

from flask import abort, current_app, make_response, request, url_for
from flask_appbuilder.baseviews import expose
from flask_appbuilder.security.decorators import has_access, permission_name, protect
from sqlalchemy.orm import object_session
from wtforms import BooleanField, MultipleFileField, SelectMultipleField
from wtforms.validators import DataRequired, Optional

from app.i18n import T
from models.errors import FieldErrors
from models.payments import PAYMENT_METHODS
from models.renovation import (
    EXTENSION_STATUSES,
    RECTIFICATION_STATUSES,
    RENOVATION_SCOPES,
    RENOVATION_STATUSES,
    RENOVATION_TRANSITIONS,
    WORKING_STATUSES,
    DepositDeduction,
    RectificationOrder,
    Renovation,
    RenovationExtension,
    RenovationInspection,
    renovation_bills,
    report_lists,
)
from views.archives import OWNER_LOOKUP, UNIT_LOOKUP
from views.registry import Action, Input, Link, Lookup, MenuEntry, Related, Resource, Section, moves_to, register
from views.scope import user_estates
from views.uploads import save_uploads, send_nth

DRAWING_EXTENSIONS = (".dwg", ".dxf", ".jpeg", ".jpg", ".pdf", ".png")
PHOTO_EXTENSIONS = (".jpeg", ".jpg", ".png", ".webp")
MSG_EDIT_APPLIED = T(
    "只有待审批的申请可以修改；其余请走办理流程（延期、取消等）",
    "Only an application awaiting approval can be edited; use the workflow for the rest",
)
MSG_DRAWINGS_API = T(
    "图纸请通过 /api/v1/renovation/<id>/drawings 上传", "Upload drawings through /api/v1/renovation/<id>/drawings"
)


def _scope_text(value) -> str:
    return "、".join(str(RENOVATION_SCOPES.get(s, s)) for s in value) if isinstance(value, list) else ""


def _count(value) -> str:
    return str(len(value)) if isinstance(value, list) else "0"


def _files(label: T, route: str, pk: int, names) -> list[dict]:
    """A related list of stored files, each a download of the screen's ``route``, by the name it
    was uploaded under (views/uploads.py)."""
    from views.uploads import display_name

    return [
        {"name": display_name(stored, f"{label} {n + 1}"), "_url": url_for(route, pk=pk, n=n)}
        for n, stored in enumerate(names or [])
    ]


# --- the renovation ----------------------------------------------------------------------------
class RenovationRules:
    def pre_update(self, item):
        from sqlalchemy import inspect as sa_inspect

        before = sa_inspect(item).attrs["status"].history.deleted or [item.status]
        if before[0] != "applied":
            raise FieldErrors({"status": [str(MSG_EDIT_APPLIED)]})


class RenovationViewMixin(RenovationRules):
    def __init__(self, **kwargs):
        both = {  # a multi-select of the scopes; ticking the load-bearing box is refused by check()
            "scope": SelectMultipleField(
                str(RENOVATION_LABELS["scope"]), choices=list(RENOVATION_SCOPES.items()), validators=[DataRequired()]
            ),
            "load_bearing_change": BooleanField(
                str(RENOVATION_LABELS["load_bearing_change"]),
                description=str(RENOVATION_DESCRIPTIONS["load_bearing_change"]),
                validators=[Optional()],
            ),
        }
        drawings = MultipleFileField(
            str(RENOVATION_LABELS["drawings"]),
            description=str(T("PDF、图片或 CAD 文件，每个最大 10 MB", "PDF, images or CAD files, 10 MB each")),
        )
        self.add_form_extra_fields = {**(self.add_form_extra_fields or {}), **both, "drawings": drawings}
        self.edit_form_extra_fields = {**(self.edit_form_extra_fields or {}), **both}
        self.formatters_columns = {**(self.formatters_columns or {}), "scope": _scope_text, "drawings": _count}
        super().__init__(**kwargs)

    def pre_add(self, item):
        item.drawings = save_uploads(request.files.getlist("drawings"), "drawings", DRAWING_EXTENSIONS, "renovation")

    @expose("/drawing/<int:pk>/<int:n>", methods=["GET"])
    @has_access
    def drawing(self, pk, n):
        renovation = self.datamodel.get(pk, self._base_filters)
        if renovation is None:
            abort(404)
        return send_nth(renovation.drawings, n, f"{renovation.number}-drawing")

    @expose("/permit/<int:pk>", methods=["GET"])
    @has_access
    def permit(self, pk):
        from models.validators import mask_phone
        from views.base import sees_personal
        from views.registers import display_tz

        r = self.datamodel.get(pk, self._base_filters)
        if r is None:
            abort(404)
        if not r.has_permit:
            msg = T("装修申请尚未批准，没有许可证", "The renovation is not approved: there is no permit")
            return make_response(self.render_template("desk/error.html", message=msg), 409)
        return self.render_template(
            "desk/renovation_permit.html",
            r=r,
            phone=r.phone if sees_personal("renovation") else mask_phone(r.phone),
            scope=_scope_text(r.scope),
            company=current_app.config.get("FEES_COMPANY_NAME", "物业服务中心"),
            company_phone=current_app.config.get("FEES_COMPANY_PHONE", ""),
            printed_at=dt.datetime.now(display_tz()).strftime("%Y-%m-%d %H:%M"),
        )

    @expose("/report", methods=["GET"])
    @has_access
    def report(self):
        from views.reports import renovation_charts

        lists = report_lists(self.datamodel.session, estates=user_estates())
        return self.render_template(
            "desk/renovation_report.html", lists=lists, statuses=RENOVATION_STATUSES, charts=renovation_charts(lists)
        )


class RenovationApiMixin(RenovationRules):
    """Drawings are files, uploaded through their action (``/drawings``), never names in JSON."""

    def pre_add(self, item):
        if item.drawings:
            raise FieldErrors({"drawings": [str(MSG_DRAWINGS_API)]})
        item.drawings = []

    def pre_update(self, item):
        from sqlalchemy import inspect as sa_inspect

        if sa_inspect(item).attrs["drawings"].history.has_changes():
            raise FieldErrors({"drawings": [str(MSG_DRAWINGS_API)]})
        super().pre_update(item)

    @expose("/report", methods=["GET"])
    @protect()
    @permission_name("report")
    def report(self):
        """Counts: renovations active, overdue, with open violations; late rectification orders.
        ---
        get:
          responses:
            200:
              description: The counts
            403:
              $ref: '#/components/responses/403'
        """
        lists = report_lists(self.datamodel.session, estates=user_estates())
        return self.response(
            200,
            today=lists["today"].isoformat(),
            active=len(lists["active"]),
            overdue=len(lists["overdue"]),
            open_violations=len(lists["violations"]),
            late_rectifications=lists["late_rectifications"],
        )


# The record an action made, named in its answer.
CREATED = {"RenovationInspection": "inspection", "RenovationExtension": "extension", "DepositDeduction": "deduction"}
CREATED.update(RectificationOrder="rectification_order", Ticket="ticket")


def _answer(r: Renovation, returned) -> dict:
    """What every renovation action answers besides id, version and status."""
    out = {
        "number": r.number,
        "permit_no": r.permit_no,
        "planned_end": r.planned_end.isoformat() if r.planned_end else None,
        "deposit_refunded": None if r.deposit_refunded is None else str(r.deposit_refunded),
        "refund_id": r.refund_id,
        "drawings": len(r.drawings or []),
    }
    if type(returned).__name__ in CREATED:
        out[CREATED[type(returned).__name__]] = returned.id
    return out


def _sees_bills(r: Renovation) -> bool:
    """The deposit and fee are billed once approved; shown to those who may read bills."""
    from views.base import rights

    return r.status not in ("applied", "rejected") and "read" in rights("bill")


def _bill_rows(r: Renovation) -> list[dict]:
    """The deposit and fee lines on the unit's bills."""
    from models.fees import BILL_STATUSES

    names = {"deposit": T("装修押金", "Deposit"), "fee": T("装修管理费", "Management fee")}
    return [
        {
            "item": names.get(which, which),
            "amount": b.amount,
            "paid": b.paid_amount,
            "status": BILL_STATUSES.get(b.status, b.status),
            "_url": url_for("BillView.show", pk=b.id),
        }
        for which, b in sorted(renovation_bills(object_session(r), r).items())
    ]


def _step(name: str, label: T, to: str | None = None, **kw) -> Action:
    """A renovation action: the model method of its name (``to``: the state it moves to, from the
    transition table), answering the renovation's facts."""
    if to:
        kw["when"] = moves_to(RENOVATION_TRANSITIONS, to)
    return Action(name, label, method=kw.pop("method", name), result=_answer, **kw)


RENOVATION_ACTIONS = [
    _step(
        "approve",
        T("批准并发许可证", "Approve and issue the permit"),
        "approved",
        right="approve",
        inputs=[Input("note", T("审批意见", "Note"))],
        style="success",
        screen_route="approve_renovation",
        description=T("批准（经理）", "Approve (Managers): a permit number, the deposit and fee billed to the unit"),
    ),
    _step(
        "reject",
        T("驳回", "Reject"),
        "rejected",
        right="approve",
        inputs=[Input("reason", T("驳回原因", "Reason"), required=True)],
        style="danger",
        screen_route="reject_renovation",
        description=T("驳回（经理）", "Reject an application with the reason (Managers)"),
    ),
    _step("start", T("开工", "Start the works"), "active", style="primary"),
    _step("complete", T("报完工", "Report completed"), "completed", style="primary"),
    _step(
        "accept",
        T("验收", "Record acceptance"),
        "accepted",
        inputs=[
            Input("passed", T("验收合格？", "Passed?"), kind="bool", required=True),
            Input("note", T("验收意见（不合格须写明整改要求）", "Note (what to put right if failed)"), kind="textarea"),
        ],
        style="primary",
        description=T("完工验收", "Completion acceptance: passed true, or false with the note (a rectification order)"),
    ),
    _step(
        "refund",
        T("退还押金", "Refund the deposit"),
        "refunded",
        inputs=[
            Input(
                "method",
                T("退款方式（默认银行转账）", "Method (else bank transfer)"),
                kind="choice",
                choices=PAYMENT_METHODS,
            ),
            Input("reason", T("备注", "Note"), max_length=120),
        ],
        style="warning",
        confirm=T("退还押金（扣除已记录的扣款）？", "Refund the deposit, less the recorded deductions?"),
        description=T("退还押金", "Refund the deposit less deductions, once (a Refund row unless nothing is left)"),
    ),
    _step(
        "cancel", T("取消申请", "Cancel"), "cancelled", inputs=[Input("reason", T("取消原因", "Reason"), required=True)]
    ),
    _step(
        "record_inspection",
        T("记录巡查", "Record an inspection"),
        inputs=[
            Input("findings", T("巡查情况", "Findings"), kind="textarea", required=True, max_length=4000),
            Input("violation", T("违规（下整改通知）", "Violation (a rectification order)"), kind="bool"),
            Input("photos", T("照片", "Photos"), kind="files", accept=PHOTO_EXTENSIONS),
        ],
        when=lambda r: r.status in WORKING_STATUSES,
        needs_version=False,
        style="primary",
    ),
    _step(
        "request_extension",
        T("申请延期", "Request an extension"),
        inputs=[
            Input("new_end", T("延期至", "New end"), kind="date", required=True),
            Input("reason", T("延期原因", "Reason"), required=True),
        ],
        when=lambda r: r.status in ("approved", "active"),
        needs_version=False,
    ),
    _step(
        "deduct",
        T("记录押金扣除", "Record a deduction"),
        inputs=[
            Input("amount", T("扣除金额(元)", "Amount (CNY)"), kind="decimal", required=True),
            Input("reason", T("扣除原因", "Reason"), required=True, max_length=200),
        ],
        when=lambda r: r.status in (*WORKING_STATUSES, "accepted"),
        needs_version=False,
    ),
    _step(
        "link_complaint",
        T("关联投诉", "Link a complaint"),
        inputs=[Input("ticket", T("投诉单编号", "Complaint number"), required=True, max_length=40)],
        needs_version=False,
        description=T("关联投诉", "Link a complaint ticket (its number or id) to this renovation"),
    ),
    _step(
        "add_drawings",
        T("补充图纸", "Add drawings"),
        inputs=[Input("drawings", T("施工图纸", "Drawings"), kind="files", required=True, accept=DRAWING_EXTENSIONS)],
        api_route="drawings",
    ),
]

RENOVATION_LABELS = {
    "number": T("申请编号", "Number"),
    "unit": T("房屋", "Unit"),
    "unit.code": T("房号", "Unit"),
    "owner": T("业主", "Owner"),
    "owner.name": T("业主", "Owner"),
    "contractor": T("施工单位", "Contractor"),
    "person_in_charge": T("施工负责人", "Person in charge"),
    "phone": T("负责人电话", "Phone"),
    "workers": T("施工人数", "Workers"),
    "scope": T("装修范围", "Scope of work"),
    "load_bearing_change": T("改动承重结构", "Changes load-bearing structure"),
    "description": T("装修内容说明", "Description"),
    "planned_start": T("计划开工", "Planned start"),
    "planned_end": T("计划完工", "Planned end"),
    "working_hours": T("施工时间", "Working hours"),
    "drawings": T("施工图纸", "Drawings"),
    "deposit": T("装修押金(元)", "Deposit (CNY)"),
    "management_fee": T("装修管理费(元)", "Management fee (CNY)"),
    "status": T("状态", "Status"),
    "decision_note": T("审批意见", "Decision note"),
    "decided_at": T("审批时间", "Decided at"),
    "permit_no": T("许可证号", "Permit no."),
    "actual_end": T("实际完工", "Actual end"),
    "acceptance_note": T("验收意见", "Acceptance note"),
    "deposit_refunded": T("已退押金(元)", "Deposit refunded (CNY)"),
    "next_inspection_on": T("下次巡查", "Next inspection"),
    "deducted": T("已扣除(元)", "Deducted (CNY)"),
    "refundable": T("可退押金(元)", "Refundable (CNY)"),
}
RENOVATION_DESCRIPTIONS = {
    "load_bearing_change": T(
        "不得改动承重墙、梁、柱、楼板：勾选即不予受理",
        "Load-bearing walls, beams, columns and slabs must not be changed: ticking it refuses the application",
    ),
    "working_hours": T("如 08:00-12:00,14:00-18:00", "e.g. 08:00-12:00,14:00-18:00"),
}
MONEY = ["deducted", "refundable", "deposit_refunded"]
BILL_ROW_LABELS = {
    "item": T("项目", "Item"),
    "amount": T("金额(元)", "Amount (CNY)"),
    "paid": T("已缴(元)", "Paid (CNY)"),
    "status": T("状态", "Status"),
}


def _began(r: Renovation) -> bool:
    return r.status in (*WORKING_STATUSES, "accepted", "refunded")


def _decided(r: Renovation) -> bool:
    return r.status not in ("applied", "rejected")


def _child(label: T, resource: str, columns: list[str], when=_began) -> Related:
    """A list of the renovation's rows of another resource (shown once they may exist)."""
    return Related(label, resource=resource, via="renovation_id", columns=columns, when=when, name=resource)


APPLICATION = ["unit", "owner", "contractor", "person_in_charge", "phone", "workers", "scope"]
APPLICATION += ["load_bearing_change", "description", "planned_start", "planned_end", "working_hours"]

register(
    Resource(
        name="renovation",
        model=Renovation,
        label=T("装修申请", "Renovations"),
        category="renovation",
        estate="estate_id",
        deletable=False,
        menus=[MenuEntry("report", T("装修报表", "Renovation report"), "report", icon="fa-area-chart")],
        icon="fa-paint-brush",
        list_columns=[
            "number",
            "unit.code",
            "owner.name",
            "contractor",
            "status",
            "planned_start",
            "planned_end",
            "permit_no",
        ],
        edit_columns=[*APPLICATION, "deposit", "management_fee"],
        add_columns=[*APPLICATION, "drawings", "deposit", "management_fee"],
        sections=[
            Section(
                T("申请", "Application"), ["number", "status", "unit.code", "owner.name", *APPLICATION[2:], "drawings"]
            ),
            Section(
                T("审批", "Decision"),
                ["permit_no", "decided_at", "decision_note"],
                when=lambda r: r.status != "applied",
            ),
            Section(T("押金与管理费", "Deposit and fee"), ["deposit", "management_fee", *MONEY]),
            Section(T("施工与验收", "Works"), ["next_inspection_on", "actual_end", "acceptance_note"], when=_began),
        ],
        related=[
            Related(
                T("施工图纸", "Drawings"),
                rows=lambda r: _files(T("图纸", "Drawing"), "RenovationView.drawing", r.id, r.drawings),
                columns=["name"],
                labels={"name": T("文件", "File")},
                when=lambda r: bool(r.drawings),
                name="drawings",
            ),
            Related(
                T("押金与管理费账单", "Deposit and fee bills"),
                rows=_bill_rows,
                columns=["item", "amount", "paid", "status"],
                labels=BILL_ROW_LABELS,
                when=_sees_bills,
                name="bills",
            ),
            _child(
                T("巡查记录", "Inspections"),
                "inspection",
                ["inspected_at", "inspector.username", "violation", "findings"],
            ),
            _child(
                T("整改通知", "Rectification orders"),
                "rectification_order",
                ["description", "deadline", "status", "steps_done"],
            ),
            _child(
                T("延期申请", "Extensions"),
                "renovation_extension",
                ["new_end", "reason", "status", "decision_note"],
                _decided,
            ),
            _child(T("押金扣除", "Deposit deductions"), "deposit_deduction", ["amount", "reason", "created_at"]),
            _child(T("相关投诉", "Complaints"), "ticket", ["number", "reported_at", "description", "status"], None),
        ],
        search_columns=["number", "status", "contractor", "planned_start", "planned_end", "permit_no"],
        order=("id", "desc"),
        labels=RENOVATION_LABELS,
        descriptions=RENOVATION_DESCRIPTIONS,
        choices={"status": RENOVATION_STATUSES},
        lookups=[UNIT_LOOKUP, OWNER_LOOKUP],
        view_mixins=(RenovationViewMixin,),
        api_mixins=(RenovationApiMixin,),
        actions=RENOVATION_ACTIONS,
        links=[Link(T("打印装修许可证", "Print the permit"), "permit", when=lambda r: r.has_permit, new_tab=True)],
    )
)


# --- inspections -------------------------------------------------------------------------------
RENOVATION_LOOKUP = Lookup("renovation", search=("number",), label=lambda r: f"{r.number}")
RENOVATION_OF = {"renovation": T("装修", "Renovation"), "renovation.number": T("装修", "Renovation")}


class InspectionViewMixin:
    def __init__(self, **kwargs):
        self.formatters_columns = {**(self.formatters_columns or {}), "photos": _count}
        super().__init__(**kwargs)

    @expose("/photo/<int:pk>/<int:n>", methods=["GET"])
    @has_access
    def photo(self, pk, n):
        row = self.datamodel.get(pk, self._base_filters)
        if row is None:
            abort(404)
        return send_nth(row.photos, n, f"inspection-{pk}-photo")


register(
    Resource(
        name="inspection",
        model=RenovationInspection,
        label=T("装修巡查", "Inspections"),
        category="renovation",
        estate="renovation.estate_id",
        deletable=False,
        icon="fa-search",
        list_columns=["renovation.number", "inspected_at", "inspector.username", "violation", "findings"],
        # An inspection is what was found that day: recorded, never edited (a later one is new).
        # Photos come with the renovation's 记录巡查 action (uploaded files).
        edit_columns=(),
        add_columns=["renovation", "findings", "violation"],
        show_columns=["renovation.number", "inspected_at", "inspector.username", "violation", "findings", "photos"],
        search_columns=["inspected_at", "violation"],
        order=("id", "desc"),
        labels={
            **RENOVATION_OF,
            "inspected_at": T("巡查时间", "Inspected at"),
            "inspector": T("巡查人", "Inspector"),
            "inspector.username": T("巡查人", "Inspector"),
            "findings": T("巡查情况", "Findings"),
            "violation": T("违规", "Violation"),
            "photos": T("照片", "Photos"),
        },
        lookups=[RENOVATION_LOOKUP],
        view_mixins=(InspectionViewMixin,),
        related=[
            Related(
                T("照片", "Photos"),
                rows=lambda i: _files(T("照片", "Photo"), "InspectionView.photo", i.id, i.photos),
                columns=["name"],
                when=lambda i: bool(i.photos),
                name="photos",
                labels={"name": T("文件", "File")},
            ),
            Related(
                T("整改通知", "Rectification orders"),
                resource="rectification_order",
                via="inspection_id",
                columns=["description", "deadline", "status"],
                when=lambda i: i.violation,
                name="rectification_order",
            ),
        ],
    )
)


# --- rectification orders ----------------------------------------------------------------------
class RectificationRules:
    def pre_update(self, item):
        from sqlalchemy import inspect as sa_inspect

        before = sa_inspect(item).attrs["status"].history.deleted or [item.status]
        if before[0] != "open":
            raise FieldErrors({"status": [str(T("只有整改中的通知可以修改", "Only an open order can be edited"))]})
        if item.steps_done == 0:
            item.next_due_at = item.deadline


register(
    Resource(
        name="rectification_order",
        model=RectificationOrder,
        label=T("整改通知", "Rectification orders"),
        category="renovation",
        estate="renovation.estate_id",
        deletable=False,
        icon="fa-exclamation-triangle",
        list_columns=["renovation.number", "description", "deadline", "status", "steps_done"],
        edit_columns=["renovation", "description", "deadline"],
        show_columns=["renovation.number", "description", "deadline", "status", "done_at", "steps_done", "next_due_at"],
        search_columns=["status", "deadline"],
        order=("id", "desc"),
        labels={
            **RENOVATION_OF,
            "description": T("整改要求", "What must be put right"),
            "deadline": T("整改期限", "Deadline"),
            "status": T("状态", "Status"),
            "done_at": T("整改完成时间", "Rectified at"),
            "steps_done": T("升级次数", "Escalations"),
            "next_due_at": T("下次升级", "Next escalation"),
        },
        choices={"status": RECTIFICATION_STATUSES},
        lookups=[RENOVATION_LOOKUP],
        view_mixins=(RectificationRules,),
        api_mixins=(RectificationRules,),
        actions=[
            Action(
                "rectified",
                T("已整改", "Rectified"),
                method="rectified",
                when=lambda o: o.status == "open",
                style="primary",
                description=T("报已整改", "Report a rectification order put right"),
            ),
            Action(
                "verify",
                T("复查通过", "Verified"),
                method="verify",
                when=lambda o: o.status == "done",
                style="success",
                description=T("复查", "Verify a rectified order (复查)"),
            ),
        ],
    )
)


# --- extensions --------------------------------------------------------------------------------
def _decision(name: str, label: T, style: str, note: Input) -> Action:
    """A Manager's decision on an extension request (the ``approve`` right); approving moves the
    renovation's planned end, which the answer gives."""
    return Action(
        name,
        label,
        method=name,
        right="approve",
        inputs=[note],
        when=lambda e: e.status == "requested",
        style=style,
        screen_route=f"{name}_extension",
        description=T(f"{label.zh}（经理）", f"{name.title()} an extension request (Managers only)"),
        result=lambda ext, _: {"planned_end": ext.renovation.planned_end.isoformat()},
    )


register(
    Resource(
        name="renovation_extension",
        model=RenovationExtension,
        label=T("延期申请", "Extensions"),
        category="renovation",
        estate="renovation.estate_id",
        deletable=False,
        icon="fa-calendar-plus-o",
        list_columns=["renovation.number", "new_end", "reason", "status", "decided_at"],
        # A request is decided (approved or rejected), never rewritten: a new one is asked instead.
        edit_columns=(),
        add_columns=["renovation", "new_end", "reason"],
        show_columns=["renovation.number", "new_end", "reason", "status", "decided_at", "decision_note"],
        search_columns=["status", "new_end"],
        order=("id", "desc"),
        labels={
            **RENOVATION_OF,
            "new_end": T("延期至", "New end"),
            "reason": T("延期原因", "Reason"),
            "status": T("状态", "Status"),
            "decided_at": T("审批时间", "Decided at"),
            "decision_note": T("审批意见", "Decision note"),
        },
        choices={"status": EXTENSION_STATUSES},
        lookups=[RENOVATION_LOOKUP],
        actions=[
            _decision("approve", T("批准延期", "Approve"), "success", Input("note", T("审批意见", "Note"))),
            _decision("reject", T("驳回", "Reject"), "danger", Input("note", T("驳回原因", "Reason"), required=True)),
        ],
    )
)


# --- deposit deductions ------------------------------------------------------------------------
register(
    Resource(
        name="deposit_deduction",
        model=DepositDeduction,
        label=T("押金扣除", "Deposit deductions"),
        category="renovation",
        estate="renovation.estate_id",
        deletable=False,
        icon="fa-minus-circle",
        list_columns=["renovation.number", "amount", "reason", "created_at"],
        # A deduction is money taken from the deposit: recorded once, never edited.
        edit_columns=(),
        add_columns=["renovation", "amount", "reason"],
        search_columns=["amount", "reason"],
        order=("id", "desc"),
        labels={
            **RENOVATION_OF,
            "amount": T("扣除金额(元)", "Amount (CNY)"),
            "reason": T("扣除原因", "Reason"),
            "created_at": T("记录时间", "Recorded at"),
        },
        lookups=[RENOVATION_LOOKUP],
    )
)
