"""Renovations (装修管理, DESIGN.md item 8): applications, approval and the permit, inspections,
violations and rectification, extensions, completion acceptance, deductions and the deposit
refund; declared once as resources, the workflow as mixins on their screens and APIs.

Rights (app/roles.py): every workflow route is a write on its resource, except approving and
rejecting a renovation or an extension: those map to the separate ``approve`` right
(``can_approve`` on ``renovation`` / ``renovation_extension``), which only Managers hold, so the
rule lives in the role matrix like every other right and the permission tests see it. Every move
needs the ``version`` the client read (409 when stale) and every illegal move is a 422 saying why.

The workflow itself is in ``models/renovation.py`` (shared with the jobs and the tests).
"""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

from flask import abort, current_app, flash, g, make_response, redirect, request, send_file, url_for
from flask_appbuilder.baseviews import expose
from flask_appbuilder.security.decorators import has_access, permission_name, protect
from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError
from wtforms import BooleanField, MultipleFileField, SelectMultipleField
from wtforms.validators import DataRequired, Optional

from app.i18n import T
from models.base import utcnow
from models.desk import STATUSES as TICKET_STATUSES
from models.desk import Ticket
from models.errors import Conflict, FieldErrors
from models.renovation import (
    EXTENSION_STATUSES,
    RECTIFICATION_STATUSES,
    RENOVATION_SCOPES,
    RENOVATION_STATUSES,
    RENOVATION_TRANSITIONS,
    DepositDeduction,
    RectificationOrder,
    Renovation,
    RenovationExtension,
    RenovationInspection,
    accept,
    approve,
    cancel,
    check_deduction,
    check_extension,
    check_inspectable,
    complete,
    decide_extension,
    deductions_total,
    local_today,
    record_deduction,
    record_inspection,
    rectification_done,
    rectification_verify,
    refund_amount,
    refund_deposit,
    reject,
    renovation_bills,
    request_extension,
    start,
)
from views.archives import OWNER_LOOKUP, UNIT_LOOKUP
from views.datamodel import MSG_CONFLICT
from views.registry import Lookup, Resource, register

MSG_DONE = T("已保存", "Saved")
MSG_VERSION = T("缺少版本号：请提交读取记录时得到的 version", "Missing version: send the version you read")
DRAWING_EXTENSIONS = {".pdf", ".jpg", ".jpeg", ".png", ".dwg", ".dxf"}
PHOTO_EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp"}
MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_FILES = 20
UPLOAD_SUBDIR = "renovation"
ACCEPT_RESULTS = {"pass": T("验收合格", "Pass"), "fail": T("验收不合格", "Fail")}


def _messages(e: FieldErrors) -> str:
    return "; ".join(m for msgs in e.errors.values() for m in msgs)


def _err(field: str, zh: str, en: str) -> FieldErrors:
    return FieldErrors({field: [str(T(zh, en))]})


def _user_id() -> int | None:
    user = getattr(g, "user", None)
    return getattr(user, "id", None)


# --- uploads ---------------------------------------------------------------------------------
def upload_root() -> Path:
    return Path(current_app.config["INSTANCE_DIR"]) / "uploads"


def save_uploads(files, field: str, extensions: set[str]) -> list[str]:
    """Store uploaded files under INSTANCE_DIR/uploads/renovation with generated names (the
    client's file name is never a path). Returns the stored (relative) names."""
    files = [f for f in files or () if f is not None and getattr(f, "filename", "")]
    if len(files) > MAX_FILES:
        raise _err(field, f"一次最多上传 {MAX_FILES} 个文件", f"At most {MAX_FILES} files at a time")
    blobs = []
    for storage in files:
        ext = Path(storage.filename).suffix.lower()
        if ext not in extensions:
            allowed = sorted(extensions)
            raise _err(field, f"文件须为 {'、'.join(allowed)} 之一", f"Files must be one of {', '.join(allowed)}")
        data = storage.stream.read(MAX_UPLOAD_BYTES + 1)
        if not data:
            raise _err(field, "文件为空", "The file is empty")
        if len(data) > MAX_UPLOAD_BYTES:
            raise _err(field, "文件过大（最大 10 MB）", "The file is too large (10 MB at most)")
        blobs.append((ext, data))
    folder = upload_root() / UPLOAD_SUBDIR
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for ext, data in blobs:
        name = f"{uuid.uuid4().hex}{ext}"
        (folder / name).write_bytes(data)
        names.append(f"{UPLOAD_SUBDIR}/{name}")
    return names


def stored_path(stored: str) -> Path | None:
    root = upload_root().resolve()
    path = (root / str(stored)).resolve()
    if root not in path.parents or not path.is_file():
        return None
    return path


def _send_stored(names: list, n: int, download_stem: str):
    if not isinstance(names, list) or not 0 <= n < len(names):
        abort(404)
    path = stored_path(names[n])
    if path is None:
        abort(404)
    return send_file(path, as_attachment=True, download_name=f"{download_stem}{path.suffix}")


# --- running a move ----------------------------------------------------------------------------
def check_version(obj, version) -> None:
    if version is None or isinstance(version, bool) or (isinstance(version, str) and not version.strip()):
        raise FieldErrors({"version": [str(MSG_VERSION)]})
    if str(version).strip() != str(obj.version):
        raise Conflict(str(MSG_CONFLICT), current_version=obj.version)


def perform(session, obj, version, fn, *, versioned: bool = True):
    """The version check, the move, one commit; a lost race is a Conflict."""
    try:
        if versioned:
            check_version(obj, version)
        result = fn()
        session.commit()
        return result
    except (FieldErrors, Conflict):
        session.rollback()
        raise
    except (StaleDataError, IntegrityError):
        session.rollback()
        raise Conflict(str(MSG_CONFLICT)) from None


def _passed(value) -> bool:
    if isinstance(value, bool):
        return value
    if value in ("pass", "1", "true", "yes", "on"):
        return True
    if value in ("fail", "0", "false", "no"):
        return False
    raise _err("passed", "请给出验收结果（合格 / 不合格）", "Give the acceptance result (pass / fail)")


def link_complaint(session, renovation: Renovation, ticket_ref) -> Ticket:
    """Link a complaint ticket (by number or id) to the renovation that caused it."""
    ref = str(ticket_ref or "").strip()
    if not ref:
        raise _err("ticket", "请填写投诉单编号", "Give the complaint's number")
    cond = Ticket.number == ref
    if ref.isdigit() and len(ref) < 15:
        cond = or_(cond, Ticket.id == int(ref))
    ticket = session.execute(select(Ticket).where(cond, Ticket.archived_at.is_(None)).limit(1)).scalar()
    if ticket is None:
        raise _err("ticket", "没有这个求助单", "No such ticket")
    if ticket.kind != "complaint":
        raise _err("ticket", "只有投诉可以关联到装修", "Only a complaint can be linked to a renovation")
    ticket.renovation_id = renovation.id
    if ticket.complaint_about is None:
        ticket.complaint_about = "renovation"
    session.flush()
    return ticket


# The moves on a renovation: name -> (function(session, renovation, data), needs the version).
RENOVATION_ACTIONS = {
    "approve_renovation": (lambda s, r, d: approve(s, r, user_id=_user_id(), note=d.get("note")), True),
    "reject_renovation": (lambda s, r, d: reject(s, r, d.get("reason"), user_id=_user_id()), True),
    "start": (lambda s, r, d: start(s, r), True),
    "complete": (lambda s, r, d: complete(s, r), True),
    "accept": (lambda s, r, d: accept(s, r, _passed(d.get("passed", d.get("result"))), d.get("note")), True),
    "refund": (
        lambda s, r, d: refund_deposit(s, r, method=d.get("method") or "bank_transfer", reason=d.get("reason")),
        True,
    ),
    "cancel": (lambda s, r, d: cancel(s, r, d.get("reason")), True),
    "link_complaint": (lambda s, r, d: link_complaint(s, r, d.get("ticket")), False),
}


def _renovation_result(r: Renovation) -> dict:
    return {
        "id": r.id,
        "number": r.number,
        "status": r.status,
        "version": r.version,
        "permit_no": r.permit_no,
        "planned_end": r.planned_end.isoformat() if r.planned_end else None,
        "deposit_refunded": None if r.deposit_refunded is None else str(r.deposit_refunded),
        "refund_id": r.refund_id,
    }


# --- reports ---------------------------------------------------------------------------------
def report_lists(session, now: dt.datetime | None = None) -> dict:
    """Renovations active, overdue (past the planned end, not accepted) and with open violations."""
    today = local_today(now)
    base = select(Renovation).order_by(Renovation.planned_end, Renovation.id)
    open_orders = (
        select(RectificationOrder.renovation_id)
        .where(RectificationOrder.status.in_(("open", "done")))
        .scalar_subquery()
    )
    late_orders = session.execute(
        select(func.count())
        .select_from(RectificationOrder)
        .where(RectificationOrder.status == "open", RectificationOrder.deadline < (now or utcnow()))
    ).scalar()
    return {
        "today": today,
        "active": session.execute(base.where(Renovation.status == "active")).scalars().all(),
        "overdue": session.execute(
            base.where(Renovation.status.in_(("active", "completed", "failed")), Renovation.planned_end < today)
        )
        .scalars()
        .all(),
        "violations": session.execute(
            base.where(Renovation.id.in_(open_orders), Renovation.status.not_in(("cancelled", "rejected")))
        )
        .scalars()
        .all(),
        "late_rectifications": late_orders,
    }


# --- rules on the generic add / edit / delete ------------------------------------------------
class RenovationRules:
    def pre_add(self, item):
        item.status = "applied"
        if item.owner is None and item.owner_id is None and item.unit is not None:
            from models.archives import Owner, Ownership

            session = self.datamodel.session
            owner_id = session.execute(
                select(Ownership.owner_id)
                .where(Ownership.unit_id == item.unit.id, Ownership.until.is_(None))
                .order_by(Ownership.share.desc(), Ownership.id)
                .limit(1)
            ).scalar()
            # The relationship, not the key: a relationship set to None would win at the flush.
            item.owner = session.get(Owner, owner_id) if owner_id else None

    def pre_update(self, item):
        from sqlalchemy import inspect as sa_inspect

        state = sa_inspect(item)
        before = state.attrs["status"].history.deleted or [item.status]
        if before[0] != "applied":
            raise _err(
                "status",
                "只有待审批的申请可以修改；其余请走办理流程（延期、取消等）",
                "Only an application awaiting approval can be edited; use the workflow for the rest",
            )

    def pre_delete(self, item):
        raise _err("id", "装修申请不能删除，请取消并填写原因", "A renovation is never deleted: cancel it with a reason")


def _renovation_of(session, item) -> Renovation:
    renovation = item.renovation or (session.get(Renovation, item.renovation_id) if item.renovation_id else None)
    if renovation is None:
        raise _err("renovation", "请选择装修", "Choose the renovation")
    return renovation


class InspectionRules:
    """The generic add records an inspection by the same rules as the renovation page."""

    def pre_add(self, item):
        renovation = _renovation_of(self.datamodel.session, item)
        if not (item.findings or "").strip():
            raise _err("findings", "必填", "Required")
        check_inspectable(renovation)
        item.inspected_at = utcnow()
        item.inspector_id = _user_id()
        item.photos = []  # photos come with the renovation page's form (uploaded files)
        item.violation = bool(item.violation)
        # The rectification order of a violation and the next due date come with the
        # inspection's own hooks, in its transaction (models/renovation.py).

    def pre_update(self, item):
        raise _err(
            "findings", "巡查记录不能修改，请另行记录", "An inspection record is never changed: record another one"
        )

    def pre_delete(self, item):
        raise _err("findings", "巡查记录不能删除", "An inspection record is never deleted")


class RectificationRules:
    def pre_add(self, item):
        renovation = _renovation_of(self.datamodel.session, item)
        check_inspectable(renovation)
        if not (item.description or "").strip():
            raise _err("description", "必填", "Required")
        item.status = "open"
        item.steps_done = 0
        if item.deadline is None:
            days = int(current_app.config.get("RECTIFICATION_DAYS", 3))
            item.deadline = utcnow() + dt.timedelta(days=days)
        item.next_due_at = item.deadline

    def pre_update(self, item):
        from sqlalchemy import inspect as sa_inspect

        before = sa_inspect(item).attrs["status"].history.deleted or [item.status]
        if before[0] != "open":
            raise _err("status", "只有整改中的通知可以修改", "Only an open order can be edited")
        if item.steps_done == 0:
            item.next_due_at = item.deadline

    def pre_delete(self, item):
        raise _err("status", "整改通知不能删除", "A rectification order is never deleted")


class ExtensionRules:
    def pre_add(self, item):
        session = self.datamodel.session
        renovation = _renovation_of(session, item)
        item.new_end, item.reason = check_extension(session, renovation, item.new_end, item.reason)
        item.status = "requested"
        item.decided_at = None
        item.decision_note = None

    def pre_update(self, item):
        raise _err("status", "延期申请不能修改，请审批或另行申请", "An extension request is decided, not edited")

    def pre_delete(self, item):
        raise _err("status", "延期申请不能删除", "An extension request is never deleted")


class DeductionRules:
    def pre_add(self, item):
        renovation = _renovation_of(self.datamodel.session, item)
        item.amount, item.reason = check_deduction(renovation, item.amount, item.reason)

    def pre_update(self, item):
        raise _err("amount", "扣款记录不能修改", "A deduction is never changed")

    def pre_delete(self, item):
        raise _err("amount", "扣款记录不能删除", "A deduction is never deleted")


# --- the renovation screen and API -------------------------------------------------------------
def _scope_text(value) -> str:
    if not isinstance(value, list):
        return ""
    return "、".join(str(RENOVATION_SCOPES.get(s, s)) for s in value)


def _drawings_text(value) -> str:
    return str(len(value)) if isinstance(value, list) else "0"


class RenovationViewMixin(RenovationRules):
    def __init__(self, **kwargs):
        scope_choices = [(k, v) for k, v in RENOVATION_SCOPES.items()]
        scope_label = str(T("装修范围", "Scope of work"))

        def load_bearing():
            # Not "required" (an unticked box is the normal answer); ticking it is refused by
            # Renovation.check() with the reason, next to the box.
            return BooleanField(
                str(RENOVATION_LABELS["load_bearing_change"]),
                description=str(RENOVATION_DESCRIPTIONS["load_bearing_change"]),
                validators=[Optional()],
            )

        self.add_form_extra_fields = {
            **(self.add_form_extra_fields or {}),
            "scope": SelectMultipleField(scope_label, choices=scope_choices, validators=[DataRequired()]),
            "load_bearing_change": load_bearing(),
            "drawings": MultipleFileField(
                str(T("施工图纸", "Drawings")),
                description=str(T("PDF、图片或 CAD 文件，每个最大 10 MB", "PDF, images or CAD files, 10 MB each")),
            ),
        }
        self.edit_form_extra_fields = {
            **(self.edit_form_extra_fields or {}),
            "scope": SelectMultipleField(scope_label, choices=scope_choices, validators=[DataRequired()]),
            "load_bearing_change": load_bearing(),
        }
        self.formatters_columns = {
            **(self.formatters_columns or {}),
            "scope": _scope_text,
            "drawings": _drawings_text,
        }
        super().__init__(**kwargs)

    def pre_add(self, item):
        files = request.files.getlist("drawings")
        item.drawings = save_uploads(files, "drawings", DRAWING_EXTENSIONS)
        super().pre_add(item)

    def _act(self, pk, action: str):
        session = self.datamodel.session
        renovation = self.datamodel.get(pk, self._base_filters)
        if renovation is None:
            abort(404)
        fn, versioned = RENOVATION_ACTIONS[action]
        data = request.form.to_dict()
        try:
            perform(
                session, renovation, data.get("version"), lambda: fn(session, renovation, data), versioned=versioned
            )
            flash(str(MSG_DONE), "success")
        except FieldErrors as e:
            flash(_messages(e), "danger")
        except Conflict as e:
            flash(str(e), "danger")
        return redirect(url_for(f"{type(self).__name__}.show", pk=pk))

    @expose("/approve_renovation/<int:pk>", methods=["POST"])
    @has_access
    def approve_renovation(self, pk):
        return self._act(pk, "approve_renovation")

    @expose("/reject_renovation/<int:pk>", methods=["POST"])
    @has_access
    def reject_renovation(self, pk):
        return self._act(pk, "reject_renovation")

    @expose("/start/<int:pk>", methods=["POST"])
    @has_access
    def start(self, pk):
        return self._act(pk, "start")

    @expose("/complete/<int:pk>", methods=["POST"])
    @has_access
    def complete(self, pk):
        return self._act(pk, "complete")

    @expose("/accept/<int:pk>", methods=["POST"])
    @has_access
    def accept(self, pk):
        return self._act(pk, "accept")

    @expose("/refund/<int:pk>", methods=["POST"])
    @has_access
    def refund(self, pk):
        return self._act(pk, "refund")

    @expose("/cancel/<int:pk>", methods=["POST"])
    @has_access
    def cancel(self, pk):
        return self._act(pk, "cancel")

    @expose("/link_complaint/<int:pk>", methods=["POST"])
    @has_access
    def link_complaint(self, pk):
        return self._act(pk, "link_complaint")

    @expose("/add_drawings/<int:pk>", methods=["POST"])
    @has_access
    def add_drawings(self, pk):
        session = self.datamodel.session
        renovation = self.datamodel.get(pk, self._base_filters)
        if renovation is None:
            abort(404)

        def add():
            names = save_uploads(request.files.getlist("drawings"), "drawings", DRAWING_EXTENSIONS)
            if not names:
                raise _err("drawings", "请选择文件", "Choose the files")
            renovation.drawings = [*(renovation.drawings or []), *names]

        try:
            perform(session, renovation, request.form.get("version"), add)
            flash(str(MSG_DONE), "success")
        except FieldErrors as e:
            flash(_messages(e), "danger")
        except Conflict as e:
            flash(str(e), "danger")
        return redirect(url_for(f"{type(self).__name__}.show", pk=pk))

    @expose("/drawing/<int:pk>/<int:n>", methods=["GET"])
    @has_access
    def drawing(self, pk, n):
        renovation = self.datamodel.get(pk, self._base_filters)
        if renovation is None:
            abort(404)
        return _send_stored(renovation.drawings, n, f"{renovation.number}-drawing-{n + 1}")

    @expose("/show/<pk>", methods=["GET"])
    @has_access
    def show(self, pk):
        from models.payments import PAYMENT_METHODS

        item = self.datamodel.get(pk, self._base_filters)
        if item is None:
            abort(404)
        session = self.datamodel.session
        g.desk_show = {
            "item": item,
            "next": [s for s in RENOVATION_STATUSES if s in RENOVATION_TRANSITIONS.get(item.status, ())],
            "statuses": RENOVATION_STATUSES,
            "scope": _scope_text(item.scope),
            "rect_statuses": RECTIFICATION_STATUSES,
            "ext_statuses": EXTENSION_STATUSES,
            "ticket_statuses": TICKET_STATUSES,
            "bills": renovation_bills(session, item),
            "deducted": deductions_total(session, item),
            "refundable": refund_amount(session, item),
            "methods": PAYMENT_METHODS,
            "accept_results": ACCEPT_RESULTS,
            # Runtime values on purpose (see the template): the screens the forms post to.
            "views": {
                "renovation": type(self).__name__,
                "inspection": "InspectionView",
                "rectification": "RectificationOrderView",
                "extension": "RenovationExtensionView",
                "deduction": "DepositDeductionView",
                "ticket": "TicketView",
            },
        }
        return super().show(pk)

    @expose("/permit/<int:pk>", methods=["GET"])
    @has_access
    def permit(self, pk):
        from views.base import sees_personal
        from views.registers import display_tz

        r = self.datamodel.get(pk, self._base_filters)
        if r is None:
            abort(404)
        if not r.permit_no or r.status in ("applied", "rejected", "cancelled"):
            msg = T("装修申请尚未批准，没有许可证", "The renovation is not approved: there is no permit")
            return make_response(self.render_template("desk/error.html", message=msg), 409)
        phone = r.phone
        if not sees_personal("renovation"):
            from models.validators import mask_phone

            phone = mask_phone(phone)
        return self.render_template(
            "desk/renovation_permit.html",
            r=r,
            phone=phone,
            scope=_scope_text(r.scope),
            company=current_app.config.get("FEES_COMPANY_NAME", "物业服务中心"),
            company_phone=current_app.config.get("FEES_COMPANY_PHONE", ""),
            printed_at=dt.datetime.now(display_tz()).strftime("%Y-%m-%d %H:%M"),
        )

    @expose("/report", methods=["GET"])
    @has_access
    def report(self):
        lists = report_lists(self.datamodel.session)
        return self.render_template(
            "desk/renovation_show.html", desk_reno_report=True, lists=lists, statuses=RENOVATION_STATUSES
        )


_PK = """
          parameters:
          - in: path
            schema:
              type: integer
            name: pk"""


def _doc(summary: str, props: str) -> str:
    return f"""{summary}
        ---
        post:{_PK}
          requestBody:
            required: true
            content:
              application/json:
                schema:
                  type: object
                  properties:
                    version:
                      type: integer{props}
          responses:
            200:
              description: Done; the new status and version
            403:
              $ref: '#/components/responses/403'
            404:
              $ref: '#/components/responses/404'
            409:
              description: Someone changed the record first
            422:
              $ref: '#/components/responses/422'
        """


_NOTE = """
                    note:
                      type: string"""
_REASON = """
                    reason:
                      type: string"""


class RenovationApiMixin(RenovationRules):
    def pre_add(self, item):
        if item.drawings:
            raise _err(
                "drawings",
                "图纸请通过 /api/v1/renovation/<id>/drawings 上传",
                "Upload drawings through /api/v1/renovation/<id>/drawings",
            )
        item.drawings = []
        super().pre_add(item)

    def pre_update(self, item):
        from sqlalchemy import inspect as sa_inspect

        if sa_inspect(item).attrs["drawings"].history.has_changes():
            raise _err(
                "drawings",
                "图纸请通过 /api/v1/renovation/<id>/drawings 上传",
                "Upload drawings through /api/v1/renovation/<id>/drawings",
            )
        super().pre_update(item)

    def _act(self, pk, action: str):
        session = self.datamodel.session
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return self.response_400(message="Request is not JSON")
        renovation = self.datamodel.get(pk, self._base_filters)
        if renovation is None:
            return self.response_404()
        fn, versioned = RENOVATION_ACTIONS[action]
        try:
            perform(
                session, renovation, body.get("version"), lambda: fn(session, renovation, body), versioned=versioned
            )
        except FieldErrors as e:
            return self.response_422(message=e.errors)
        except Conflict as e:
            return self.response(409, message=str(e), version=e.current_version)
        return self.response(200, **_renovation_result(renovation))

    @expose("/<int:pk>/approve", methods=["POST"])
    @protect()
    @permission_name("approve_renovation")
    def approve_renovation(self, pk):
        return self._act(pk, "approve_renovation")

    approve_renovation.__doc__ = _doc(
        "Approve an application (Managers only): a permit number, the deposit and the fee on the unit's bills.",
        _NOTE,
    )

    @expose("/<int:pk>/reject", methods=["POST"])
    @protect()
    @permission_name("reject_renovation")
    def reject_renovation(self, pk):
        return self._act(pk, "reject_renovation")

    reject_renovation.__doc__ = _doc("Reject an application with the reason (Managers only).", _REASON)

    @expose("/<int:pk>/start", methods=["POST"])
    @protect()
    @permission_name("start")
    def start(self, pk):
        return self._act(pk, "start")

    start.__doc__ = _doc("The works begin: the unit is 'renovating' until they are accepted.", "")

    @expose("/<int:pk>/complete", methods=["POST"])
    @protect()
    @permission_name("complete")
    def complete(self, pk):
        return self._act(pk, "complete")

    complete.__doc__ = _doc("Report the works completed (again after a failed acceptance).", "")

    @expose("/<int:pk>/accept", methods=["POST"])
    @protect()
    @permission_name("accept")
    def accept(self, pk):
        return self._act(pk, "accept")

    accept.__doc__ = _doc(
        "Completion acceptance: passed true, or false with the note (a rectification order).",
        """
                    passed:
                      type: boolean"""
        + _NOTE,
    )

    @expose("/<int:pk>/refund", methods=["POST"])
    @protect()
    @permission_name("refund")
    def refund(self, pk):
        return self._act(pk, "refund")

    refund.__doc__ = _doc(
        "Refund the deposit less deductions, once (a Refund row; nothing when nothing is left).",
        """
                    method:
                      type: string"""
        + _REASON,
    )

    @expose("/<int:pk>/cancel", methods=["POST"])
    @protect()
    @permission_name("cancel")
    def cancel(self, pk):
        return self._act(pk, "cancel")

    cancel.__doc__ = _doc("Cancel an application (or an approved one before the works start).", _REASON)

    @expose("/<int:pk>/link_complaint", methods=["POST"])
    @protect()
    @permission_name("link_complaint")
    def link_complaint(self, pk):
        return self._act(pk, "link_complaint")

    link_complaint.__doc__ = _doc(
        "Link a complaint ticket (its number or id) to this renovation.",
        """
                    ticket:
                      type: string""",
    )

    @expose("/<int:pk>/drawings", methods=["POST"])
    @protect()
    @permission_name("add_drawings")
    def add_drawings(self, pk):
        """Upload drawings (multipart ``drawings``, several allowed) with the ``version``.
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
              multipart/form-data:
                schema:
                  type: object
                  properties:
                    version:
                      type: integer
                    drawings:
                      type: array
                      items:
                        type: string
                        format: binary
          responses:
            200:
              description: Stored
            404:
              $ref: '#/components/responses/404'
            409:
              description: Someone changed the record first
            422:
              $ref: '#/components/responses/422'
        """
        session = self.datamodel.session
        renovation = self.datamodel.get(pk, self._base_filters)
        if renovation is None:
            return self.response_404()

        def add():
            names = save_uploads(request.files.getlist("drawings"), "drawings", DRAWING_EXTENSIONS)
            if not names:
                raise _err("drawings", "请选择文件", "Choose the files")
            renovation.drawings = [*(renovation.drawings or []), *names]

        try:
            perform(session, renovation, request.form.get("version"), add)
        except FieldErrors as e:
            return self.response_422(message=e.errors)
        except Conflict as e:
            return self.response(409, message=str(e), version=e.current_version)
        return self.response(200, drawings=len(renovation.drawings), version=renovation.version)

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
        lists = report_lists(self.datamodel.session)
        return self.response(
            200,
            today=lists["today"].isoformat(),
            active=len(lists["active"]),
            overdue=len(lists["overdue"]),
            open_violations=len(lists["violations"]),
            late_rectifications=lists["late_rectifications"],
        )


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
}

RENOVATION_DESCRIPTIONS = {
    "load_bearing_change": T(
        "不得改动承重墙、梁、柱、楼板：勾选即不予受理",
        "Load-bearing walls, beams, columns and slabs must not be changed: ticking it refuses the application",
    ),
    "working_hours": T("如 08:00-12:00,14:00-18:00", "e.g. 08:00-12:00,14:00-18:00"),
}

register(
    Resource(
        name="renovation",
        model=Renovation,
        label=T("装修申请", "Renovations"),
        category="renovation",
        deletable=False,
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
        edit_columns=[
            "unit",
            "owner",
            "contractor",
            "person_in_charge",
            "phone",
            "workers",
            "scope",
            "load_bearing_change",
            "description",
            "planned_start",
            "planned_end",
            "working_hours",
            "deposit",
            "management_fee",
        ],
        add_columns=[
            "unit",
            "owner",
            "contractor",
            "person_in_charge",
            "phone",
            "workers",
            "scope",
            "load_bearing_change",
            "description",
            "planned_start",
            "planned_end",
            "working_hours",
            "drawings",
            "deposit",
            "management_fee",
        ],
        show_columns=[
            "number",
            "status",
            "permit_no",
            "unit.code",
            "owner.name",
            "contractor",
            "person_in_charge",
            "phone",
            "workers",
            "scope",
            "load_bearing_change",
            "description",
            "planned_start",
            "planned_end",
            "working_hours",
            "drawings",
            "deposit",
            "management_fee",
            "decision_note",
            "decided_at",
            "actual_end",
            "acceptance_note",
            "deposit_refunded",
            "next_inspection_on",
        ],
        search_columns=["number", "status", "contractor", "planned_start", "planned_end", "permit_no"],
        order=("id", "desc"),
        labels=RENOVATION_LABELS,
        descriptions=RENOVATION_DESCRIPTIONS,
        choices={"status": RENOVATION_STATUSES},
        lookups=[UNIT_LOOKUP, OWNER_LOOKUP],
        view_mixins=(RenovationViewMixin,),
        api_mixins=(RenovationApiMixin,),
        show_template="desk/renovation_show.html",
    )
)


# --- inspections -------------------------------------------------------------------------------
RENOVATION_LOOKUP = Lookup("renovation", search=("number",), label=lambda r: f"{r.number}")


class InspectionViewMixin(InspectionRules):
    @expose("/record/<int:renovation_pk>", methods=["POST"])
    @has_access
    def record(self, renovation_pk):
        session = self.datamodel.session
        renovation = session.get(Renovation, renovation_pk)
        if renovation is None:
            abort(404)

        def run():
            photos = save_uploads(request.files.getlist("photos"), "photos", PHOTO_EXTENSIONS)
            return record_inspection(
                session,
                renovation,
                request.form.get("findings"),
                violation=request.form.get("violation") in ("1", "y", "on", "true", "yes"),
                photos=photos,
                inspector_id=_user_id(),
            )

        try:
            perform(session, renovation, None, run, versioned=False)
            flash(str(MSG_DONE), "success")
        except FieldErrors as e:
            flash(_messages(e), "danger")
        except Conflict as e:
            flash(str(e), "danger")
        return redirect(url_for("RenovationView.show", pk=renovation_pk))

    @expose("/photo/<int:pk>/<int:n>", methods=["GET"])
    @has_access
    def photo(self, pk, n):
        row = self.datamodel.get(pk, self._base_filters)
        if row is None:
            abort(404)
        return _send_stored(row.photos, n, f"inspection-{pk}-photo-{n + 1}")


register(
    Resource(
        name="inspection",
        model=RenovationInspection,
        label=T("装修巡查", "Inspections"),
        category="renovation",
        deletable=False,
        icon="fa-search",
        list_columns=["renovation.number", "inspected_at", "inspector.username", "violation", "findings"],
        # An inspection is what was found that day: recorded, never edited (a later one is new).
        edit_columns=(),
        add_columns=["renovation", "findings", "violation"],
        show_columns=["renovation.number", "inspected_at", "inspector.username", "violation", "findings", "photos"],
        search_columns=["inspected_at", "violation"],
        order=("id", "desc"),
        labels={
            "renovation": T("装修", "Renovation"),
            "renovation.number": T("装修", "Renovation"),
            "inspected_at": T("巡查时间", "Inspected at"),
            "inspector": T("巡查人", "Inspector"),
            "inspector.username": T("巡查人", "Inspector"),
            "findings": T("巡查情况", "Findings"),
            "violation": T("违规", "Violation"),
            "photos": T("照片", "Photos"),
        },
        lookups=[RENOVATION_LOOKUP],
        view_mixins=(InspectionViewMixin,),
        api_mixins=(InspectionRules,),
    )
)


# --- rectification orders ----------------------------------------------------------------------
def _order_move(session, order, version, fn):
    perform(session, order, version, lambda: fn(session, order))


RECT_ACTIONS = {"rectified": rectification_done, "verify": rectification_verify}


class RectificationViewMixin(RectificationRules):
    def _act(self, pk, action):
        session = self.datamodel.session
        order = self.datamodel.get(pk, self._base_filters)
        if order is None:
            abort(404)
        try:
            _order_move(session, order, request.form.get("version"), RECT_ACTIONS[action])
            flash(str(MSG_DONE), "success")
        except FieldErrors as e:
            flash(_messages(e), "danger")
        except Conflict as e:
            flash(str(e), "danger")
        back = request.form.get("back")
        if back == "renovation":
            return redirect(url_for("RenovationView.show", pk=order.renovation_id))
        return redirect(url_for(f"{type(self).__name__}.show", pk=pk))

    @expose("/rectified/<int:pk>", methods=["POST"])
    @has_access
    def rectified(self, pk):
        return self._act(pk, "rectified")

    @expose("/verify/<int:pk>", methods=["POST"])
    @has_access
    def verify(self, pk):
        return self._act(pk, "verify")


class RectificationApiMixin(RectificationRules):
    def _act(self, pk, action):
        session = self.datamodel.session
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return self.response_400(message="Request is not JSON")
        order = self.datamodel.get(pk, self._base_filters)
        if order is None:
            return self.response_404()
        try:
            _order_move(session, order, body.get("version"), RECT_ACTIONS[action])
        except FieldErrors as e:
            return self.response_422(message=e.errors)
        except Conflict as e:
            return self.response(409, message=str(e), version=e.current_version)
        return self.response(200, id=order.id, status=order.status, version=order.version)

    @expose("/<int:pk>/rectified", methods=["POST"])
    @protect()
    @permission_name("rectified")
    def rectified(self, pk):
        return self._act(pk, "rectified")

    rectified.__doc__ = _doc("Report a rectification order put right.", "")

    @expose("/<int:pk>/verify", methods=["POST"])
    @protect()
    @permission_name("verify")
    def verify(self, pk):
        return self._act(pk, "verify")

    verify.__doc__ = _doc("Verify a rectified order (复查).", "")


register(
    Resource(
        name="rectification_order",
        model=RectificationOrder,
        label=T("整改通知", "Rectification orders"),
        category="renovation",
        deletable=False,
        icon="fa-exclamation-triangle",
        list_columns=["renovation.number", "description", "deadline", "status", "steps_done"],
        edit_columns=["renovation", "description", "deadline"],
        show_columns=[
            "renovation.number",
            "description",
            "deadline",
            "status",
            "done_at",
            "steps_done",
            "next_due_at",
        ],
        search_columns=["status", "deadline"],
        order=("id", "desc"),
        labels={
            "renovation": T("装修", "Renovation"),
            "renovation.number": T("装修", "Renovation"),
            "description": T("整改要求", "What must be put right"),
            "deadline": T("整改期限", "Deadline"),
            "status": T("状态", "Status"),
            "done_at": T("整改完成时间", "Rectified at"),
            "steps_done": T("升级次数", "Escalations"),
            "next_due_at": T("下次升级", "Next escalation"),
        },
        choices={"status": RECTIFICATION_STATUSES},
        lookups=[RENOVATION_LOOKUP],
        view_mixins=(RectificationViewMixin,),
        api_mixins=(RectificationApiMixin,),
    )
)


# --- extensions --------------------------------------------------------------------------------
def _parse_day(value, field: str) -> dt.date:
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value or "").strip())
    except ValueError:
        raise _err(field, "应为日期（YYYY-MM-DD）", "Must be a date (YYYY-MM-DD)") from None


EXT_ACTIONS = {
    "approve_extension": lambda s, e, d: decide_extension(s, e, True, d.get("note")),
    "reject_extension": lambda s, e, d: decide_extension(s, e, False, d.get("note") or d.get("reason")),
}


class ExtensionViewMixin(ExtensionRules):
    def _act(self, pk, action):
        session = self.datamodel.session
        ext = self.datamodel.get(pk, self._base_filters)
        if ext is None:
            abort(404)
        data = request.form.to_dict()
        try:
            perform(session, ext, data.get("version"), lambda: EXT_ACTIONS[action](session, ext, data))
            flash(str(MSG_DONE), "success")
        except FieldErrors as e:
            flash(_messages(e), "danger")
        except Conflict as e:
            flash(str(e), "danger")
        if data.get("back") == "renovation":
            return redirect(url_for("RenovationView.show", pk=ext.renovation_id))
        return redirect(url_for(f"{type(self).__name__}.show", pk=pk))

    @expose("/approve_extension/<int:pk>", methods=["POST"])
    @has_access
    def approve_extension(self, pk):
        return self._act(pk, "approve_extension")

    @expose("/reject_extension/<int:pk>", methods=["POST"])
    @has_access
    def reject_extension(self, pk):
        return self._act(pk, "reject_extension")

    @expose("/request_extension/<int:renovation_pk>", methods=["POST"])
    @has_access
    def request_extension(self, renovation_pk):
        session = self.datamodel.session
        renovation = session.get(Renovation, renovation_pk)
        if renovation is None:
            abort(404)
        try:
            perform(
                session,
                renovation,
                None,
                lambda: request_extension(
                    session,
                    renovation,
                    _parse_day(request.form.get("new_end"), "new_end"),
                    request.form.get("reason"),
                ),
                versioned=False,
            )
            flash(str(MSG_DONE), "success")
        except FieldErrors as e:
            flash(_messages(e), "danger")
        except Conflict as e:
            flash(str(e), "danger")
        return redirect(url_for("RenovationView.show", pk=renovation_pk))


class ExtensionApiMixin(ExtensionRules):
    def _act(self, pk, action):
        session = self.datamodel.session
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return self.response_400(message="Request is not JSON")
        ext = self.datamodel.get(pk, self._base_filters)
        if ext is None:
            return self.response_404()
        try:
            perform(session, ext, body.get("version"), lambda: EXT_ACTIONS[action](session, ext, body))
        except FieldErrors as e:
            return self.response_422(message=e.errors)
        except Conflict as e:
            return self.response(409, message=str(e), version=e.current_version)
        return self.response(
            200,
            id=ext.id,
            status=ext.status,
            version=ext.version,
            planned_end=ext.renovation.planned_end.isoformat(),
        )

    @expose("/<int:pk>/approve", methods=["POST"])
    @protect()
    @permission_name("approve_extension")
    def approve_extension(self, pk):
        return self._act(pk, "approve_extension")

    approve_extension.__doc__ = _doc("Approve an extension (Managers only): the planned end moves.", _NOTE)

    @expose("/<int:pk>/reject", methods=["POST"])
    @protect()
    @permission_name("reject_extension")
    def reject_extension(self, pk):
        return self._act(pk, "reject_extension")

    reject_extension.__doc__ = _doc("Reject an extension with a note (Managers only).", _NOTE)


register(
    Resource(
        name="renovation_extension",
        model=RenovationExtension,
        label=T("延期申请", "Extensions"),
        category="renovation",
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
            "renovation": T("装修", "Renovation"),
            "renovation.number": T("装修", "Renovation"),
            "new_end": T("延期至", "New end"),
            "reason": T("延期原因", "Reason"),
            "status": T("状态", "Status"),
            "decided_at": T("审批时间", "Decided at"),
            "decision_note": T("审批意见", "Decision note"),
        },
        choices={"status": EXTENSION_STATUSES},
        lookups=[RENOVATION_LOOKUP],
        view_mixins=(ExtensionViewMixin,),
        api_mixins=(ExtensionApiMixin,),
    )
)


# --- deposit deductions ------------------------------------------------------------------------
class DeductionViewMixin(DeductionRules):
    @expose("/deduct/<int:renovation_pk>", methods=["POST"])
    @has_access
    def deduct(self, renovation_pk):
        session = self.datamodel.session
        renovation = session.get(Renovation, renovation_pk)
        if renovation is None:
            abort(404)
        try:
            perform(
                session,
                renovation,
                None,
                lambda: record_deduction(session, renovation, request.form.get("amount"), request.form.get("reason")),
                versioned=False,
            )
            flash(str(MSG_DONE), "success")
        except FieldErrors as e:
            flash(_messages(e), "danger")
        except Conflict as e:
            flash(str(e), "danger")
        return redirect(url_for("RenovationView.show", pk=renovation_pk))


register(
    Resource(
        name="deposit_deduction",
        model=DepositDeduction,
        label=T("押金扣除", "Deposit deductions"),
        category="renovation",
        deletable=False,
        icon="fa-minus-circle",
        list_columns=["renovation.number", "amount", "reason", "created_at"],
        # A deduction is money taken from the deposit: recorded once, never edited.
        edit_columns=(),
        add_columns=["renovation", "amount", "reason"],
        search_columns=["amount", "reason"],
        order=("id", "desc"),
        labels={
            "renovation": T("装修", "Renovation"),
            "renovation.number": T("装修", "Renovation"),
            "amount": T("扣除金额(元)", "Amount (CNY)"),
            "reason": T("扣除原因", "Reason"),
            "created_at": T("记录时间", "Recorded at"),
        },
        lookups=[RENOVATION_LOOKUP],
        view_mixins=(DeductionViewMixin,),
        api_mixins=(DeductionRules,),
    )
)
