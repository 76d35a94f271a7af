"""Fees (收费管理, DESIGN.md item 7) part 1: fee items, fee standards and their approval, meter
readings, bills and billing runs. Payments, receipts, late fees and dunning: views/payments.py.

Rights (app/roles.py): only Managers write items and standards; declaring, approving, rejecting,
retiring and revising a standard are writes on ``fee_standard`` (so Manager only). Bills are
made by billing runs; a Manager may add a one-off line by hand, mark a bill disputed and waive a
late fee with a reason; bills are never deleted. A billing run is started by adding one (the
"run billing" form: estate and period): the row is committed and the job (jobs/billing.py) is
queued with its id.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from flask import abort, current_app, flash, g, redirect, request, url_for
from flask_appbuilder.baseviews import expose
from flask_appbuilder.fieldwidgets import Select2ManyWidget
from flask_appbuilder.security.decorators import has_access, permission_name, protect
from sqlalchemy import func, select
from wtforms import BooleanField, SelectMultipleField
from wtforms.validators import DataRequired

from app.i18n import T
from models.archives import UNIT_USES, Unit
from models.errors import Conflict, FieldErrors
from models.fees import (
    BASES,
    BILL_STATUSES,
    FEE_KINDS,
    ROUNDINGS,
    RUN_STATUSES,
    STANDARD_STATUSES,
    Bill,
    BillingRun,
    FeeItem,
    FeeStandard,
    MeterReading,
    due_date_for,
    local_today,
    month_bounds,
    next_revision,
    round_money,
)
from models.payments import sync_bill_status
from views.archives import UNIT_LOOKUP
from views.datamodel import MSG_CONFLICT
from views.excel import METER_READING_IMPORT
from views.registry import Action, Input, Link, Resource, register
from views.uploads import send_stored

MSG_DONE = T("已保存", "Saved")
DOC_EXTENSIONS = {".pdf", ".ofd", ".jpg", ".jpeg", ".png", ".doc", ".docx", ".xls", ".xlsx"}


def _messages(e: FieldErrors) -> str:
    return "; ".join(m for msgs in e.errors.values() for m in msgs)


def _check_version(item, version) -> None:
    """Workflow routes accept the version the user read; a stale one is a conflict."""
    if version not in (None, "") and str(version) != str(item.version):
        raise Conflict(str(MSG_CONFLICT), current_version=item.version)


# --- fee items -------------------------------------------------------------------------------
class FeeItemRules:
    def pre_delete(self, item):
        used = self.datamodel.session.execute(
            select(func.count()).select_from(FeeStandard).where(FeeStandard.item_id == item.id)
        ).scalar()
        if used:
            raise FieldErrors(
                {
                    "code": [
                        str(
                            T(
                                "已有收费标准的项目不能删除，可停用",
                                "An item with standards cannot be deleted; deactivate it",
                            )
                        )
                    ]
                }
            )


ITEM_LABELS = {
    "kind": T("类型", "Kind"),
    "grace_days": T("宽限天数", "Grace days"),
    "late_daily_rate": T("滞纳金日费率", "Late fee daily rate"),
    "late_cap_rate": T("滞纳金上限（占本金）", "Late fee cap (share of principal)"),
    "due_days": T("缴费日（账期起第几天）", "Due day (days after the period starts)"),
    "payment_term_days": T("缴费期（出账后至少天数）", "Payment term (days after issue, at least)"),
    "active": T("启用", "Active"),
}

register(
    Resource(
        name="fee_item",
        model=FeeItem,
        label=T("收费项目", "Fee items"),
        category="fees",
        icon="fa-list",
        list_columns=[
            "code",
            "name",
            "kind",
            "due_days",
            "payment_term_days",
            "grace_days",
            "late_daily_rate",
            "late_cap_rate",
            "active",
        ],
        edit_columns=[
            "code",
            "name",
            "kind",
            "due_days",
            "payment_term_days",
            "grace_days",
            "late_daily_rate",
            "late_cap_rate",
            "active",
            "note",
        ],
        search_columns=["code", "name", "kind", "active"],
        order=("code", "asc"),
        labels=ITEM_LABELS,
        choices={"kind": FEE_KINDS},
        view_mixins=(FeeItemRules,),
        api_mixins=(FeeItemRules,),
        descriptions={
            "payment_term_days": T(
                "账单到期日不早于出账日加此天数（如 11 月 29 日出的 11 月账单不会在 11 月 16 日到期）",
                "A bill is never due before its issue date plus this many days",
            )
        },
    )
)


# --- fee standards ---------------------------------------------------------------------------
MSG_EDIT_DRAFT = T(
    "只有草稿或被驳回的标准可以修改；已批准的标准请“新建修订版”",
    "Only a draft or rejected standard can be changed; for an approved one make a new revision",
)


def _unit_uses_errors(value) -> dict:
    if not isinstance(value, list) or not value or not all(isinstance(u, str) and u in UNIT_USES for u in value):
        return {
            "unit_uses": [
                str(
                    T(
                        f"适用房屋用途为以下代码的列表：{', '.join(UNIT_USES)}",
                        f"A list of unit use codes: {', '.join(UNIT_USES)}",
                    )
                )
            ]
        }
    return {}


class FeeStandardRules:
    """Shared by screen and API: a new standard is a draft of the next revision; only drafts and
    rejected ones are edited or deleted."""

    def pre_add(self, item):
        errors = _unit_uses_errors(item.unit_uses)
        if errors:
            raise FieldErrors(errors)
        item.status = "draft"
        item.supersedes_id = None
        item_id = item.item_id or (item.item.id if item.item is not None else None)
        if item_id is None:
            raise FieldErrors({"item": [str(T("必填", "Required"))]})
        item.revision = next_revision(self.datamodel.session, item_id)

    def pre_update(self, item):
        errors = _unit_uses_errors(item.unit_uses)
        if errors:
            raise FieldErrors(errors)
        from sqlalchemy import inspect

        status_hist = inspect(item).attrs.status.history
        old_status = status_hist.deleted[0] if status_hist.deleted else item.status
        if old_status not in ("draft", "rejected"):
            raise FieldErrors({"status": [str(MSG_EDIT_DRAFT)]})

    def pre_delete(self, item):
        if item.status not in ("draft", "rejected"):
            raise FieldErrors({"status": [str(MSG_EDIT_DRAFT)]})


class UnitUsesFormMixin:
    """``unit_uses`` is a JSON list: a multi-select of UNIT_USES on the forms, labels in lists."""

    def __init__(self, **kwargs):
        field = SelectMultipleField(
            str(T("适用房屋用途", "Unit uses")),
            choices=[(k, v) for k, v in UNIT_USES.items()],
            widget=Select2ManyWidget(),
            validators=[DataRequired()],
            default=["residential"],
        )
        # A NOT NULL boolean would be a required checkbox: unticked must mean False.
        unsold = BooleanField(str(STANDARD_LABELS["bill_unsold_to_developer"]), default=True)
        extra = {"unit_uses": field, "bill_unsold_to_developer": unsold}
        self.add_form_extra_fields = {**self.add_form_extra_fields, **extra}
        self.edit_form_extra_fields = {**self.edit_form_extra_fields, **extra}
        self.formatters_columns = {
            **self.formatters_columns,
            "unit_uses": lambda v: "、".join(str(UNIT_USES.get(u, u)) for u in (v or [])),
        }
        super().__init__(**kwargs)


class FeeStandardViewMixin(UnitUsesFormMixin, FeeStandardRules):
    @expose("/document/<int:pk>", methods=["GET"])
    @has_access
    def document(self, pk):
        std = self.datamodel.get(pk, self._base_filters)
        return send_stored(std.basis_document if std is not None else None, f"fee_standard_{pk}")


def _new_revision(std: FeeStandard, session) -> FeeStandard:
    """A change to an approved standard is a new draft revision (it supersedes this one once
    approved)."""
    if std.status not in ("approved", "retired"):
        raise FieldErrors(
            {"status": [str(T("只有已批准或已停用的标准可以修订", "Only an approved or retired standard can be revised"))]}
        )
    rev = std.new_revision()
    rev.revision = next_revision(session, std.item_id)
    session.add(rev)
    session.flush()
    return rev


def _standard_answer(std, returned) -> dict:
    record = returned if isinstance(returned, FeeStandard) else std
    # What would keep it from billing (an approval with none of these bills something).
    return {"revision": record.revision, "warnings": record.billing_warnings()}


def _warnings_of(std: FeeStandard, returned) -> list:
    return std.billing_warnings()


NOTE = Input("note", T("审批意见", "Note"))
STANDARD_ACTIONS = [
    Action(
        "declare",
        T("申报（附依据文件）", "Declare (with the basis document)"),
        method="declare",
        inputs=[Input("document", T("依据文件", "Basis document"), kind="file", accept=tuple(sorted(DOC_EXTENSIONS)))],
        when=lambda s: s.status in ("draft", "rejected"),
        needs_version=False,
        style="primary",
        description=T("申报待批（附依据文件）", "Declare a standard for approval (申报), with its basis document"),
        result=_standard_answer,
        notices=lambda std: std.billing_warnings() if isinstance(std, FeeStandard) else [],
    ),
    Action(
        "approve",
        T("批准", "Approve"),
        method=lambda std, user, note=None: std.approve(user.id, note=note),
        inputs=[NOTE],
        when=lambda s: s.status == "declared",
        needs_version=False,
        style="success",
        description=T("批准已申报的标准", "Approve a declared standard; refused (422 on effective_from) if it overlaps"),
        result=_standard_answer,
    ),
    Action(
        "reject",
        T("驳回", "Reject"),
        method=lambda std, note=None: std.reject(note or ""),
        inputs=[Input("note", T("驳回原因", "Reason"))],
        when=lambda s: s.status == "declared",
        needs_version=False,
        style="warning",
        description=T("驳回已申报的标准（写明原因）", "Reject a declared standard, with the reason in note"),
        result=_standard_answer,
    ),
    Action(
        "retire",
        T("停用", "Retire"),
        method="retire",
        inputs=[Input("last_day", T("最后生效日（可空）", "Last effective day (optional)"), kind="date")],
        when=lambda s: s.status == "approved",
        needs_version=False,
        description=T("停用已批准的标准", "Retire an approved standard (optionally from a last day)"),
        result=_standard_answer,
    ),
    Action(
        "new_revision",
        T("新建修订版", "New revision"),
        method=_new_revision,
        when=lambda s: s.status in ("approved", "retired"),
        needs_version=False,
        creates="fee_standard",
        description=T("新建修订版草稿", "Make a draft of the next revision; approving it supersedes this one"),
        result=_standard_answer,
    ),
]


STANDARD_LABELS = {
    "item": T("收费项目", "Fee item"),
    "item.name": T("收费项目", "Fee item"),
    "revision": T("版本号", "Revision"),
    "supersedes": T("替代", "Supersedes"),
    "basis": T("计费方式", "Basis"),
    "unit_price": T("单价", "Unit price"),
    "rounding": T("舍入规则", "Rounding"),
    "unit_uses": T("适用房屋用途", "Unit uses"),
    "estates": T("适用小区", "Estates"),
    "effective_from": T("生效日期", "Effective from"),
    "effective_to": T("截止日期", "Effective to"),
    "status": T("状态", "Status"),
    "basis_document": T("依据文件", "Basis document"),
    "declared_at": T("申报时间", "Declared at"),
    "approved_at": T("批准时间", "Approved at"),
    "approved_by.username": T("批准人", "Approved by"),
    "decision_note": T("审批意见", "Decision note"),
    "bill_unsold_to_developer": T("未售房屋向开发商计费", "Bill unsold units to the developer"),
}
STANDARD_EDIT = [
    "item",
    "basis",
    "unit_price",
    "rounding",
    "unit_uses",
    "estates",
    "effective_from",
    "effective_to",
    "bill_unsold_to_developer",
]

register(
    Resource(
        name="fee_standard",
        model=FeeStandard,
        label=T("收费标准", "Fee standards"),
        category="fees",
        icon="fa-balance-scale",
        list_columns=[
            "item.name",
            "revision",
            "basis",
            "unit_price",
            "rounding",
            "effective_from",
            "effective_to",
            "status",
        ],
        edit_columns=STANDARD_EDIT,
        show_columns=[
            "item.name",
            "revision",
            "status",
            "basis",
            "unit_price",
            "rounding",
            "unit_uses",
            "estates",
            "effective_from",
            "effective_to",
            "bill_unsold_to_developer",
            "basis_document",
            "declared_at",
            "approved_at",
            "approved_by.username",
            "decision_note",
            "created_at",
            "created_by.username",
            "changed_at",
            "changed_by.username",
        ],
        search_columns=["basis", "status", "effective_from", "effective_to", "revision"],
        order=("id", "desc"),
        order_columns=["revision", "basis", "unit_price", "rounding", "effective_from", "effective_to", "status", "id"],
        labels=STANDARD_LABELS,
        choices={"basis": BASES, "rounding": ROUNDINGS, "status": STANDARD_STATUSES},
        view_mixins=(FeeStandardViewMixin,),
        api_mixins=(FeeStandardRules,),
        actions=STANDARD_ACTIONS,
        links=[Link(T("下载依据文件", "Download the basis document"), "document", when=lambda s: bool(s.basis_document))],
        descriptions={
            "unit_price": T("最多 4 位小数", "At most 4 decimal places"),
            "effective_to": T("含当日；空为长期有效", "Inclusive; empty: open-ended"),
        },
    )
)


# --- meter readings --------------------------------------------------------------------------
register(
    Resource(
        name="meter_reading",
        model=MeterReading,
        label=T("抄表记录", "Meter readings"),
        category="fees",
        icon="fa-tachometer",
        list_columns=[
            "period",
            "unit.code",
            "item.name",
            "read_on",
            "previous_reading",
            "reading",
            "quantity",
            "is_replacement",
        ],
        edit_columns=["unit", "item", "period", "read_on", "reading", "is_replacement"],
        search_columns=["period", "read_on", "is_replacement"],
        order=("id", "desc"),
        order_columns=["period", "read_on", "previous_reading", "reading", "quantity", "is_replacement", "id"],
        labels={
            "unit": T("房屋", "Unit"),
            "unit.code": T("房号", "Unit"),
            "item": T("收费项目", "Fee item"),
            "item.name": T("收费项目", "Fee item"),
            "period": T("账期（YYYY-MM）", "Period (YYYY-MM)"),
            "read_on": T("抄表日期", "Read on"),
            "reading": T("本期读数", "Reading"),
            "previous_reading": T("上期读数", "Previous reading"),
            "quantity": T("用量", "Quantity"),
            "is_replacement": T("换表", "Meter replaced"),
        },
        lookups=[UNIT_LOOKUP],
        importer=METER_READING_IMPORT,
        descriptions={
            "is_replacement": T(
                "换表后本期读数即为用量；读数低于上期且未勾选换表将被拒绝",
                "After a replacement the reading is the quantity; a reading below the previous one is refused otherwise",
            )
        },
    )
)


# --- bills -----------------------------------------------------------------------------------
MSG_NO_DELETE = T(
    "账单不能删除；如有误请标记争议或由收费模块作废", "Bills are never deleted; mark it disputed or void it"
)


def prepare_manual_bill(session, bill: Bill) -> None:
    """A one-off line added by hand (a charge with its own reference): estate, owner and amount
    follow from the unit and the price; monthly lines come from billing runs only."""
    from jobs.billing import _current_owners

    errors = {}
    bill.source = (bill.source or "").strip()
    if not bill.source:
        errors["source"] = [
            str(T("手工账单须填写来源单据号（月度账单由计费生成）", "A hand-made line needs its source reference"))
        ]
    unit = bill.unit or (session.get(Unit, bill.unit_id) if bill.unit_id else None)
    if unit is None:
        errors["unit"] = [str(T("必填", "Required"))]
    item = bill.item or (session.get(FeeItem, bill.item_id) if bill.item_id else None)
    if item is None:
        errors["item"] = [str(T("必填", "Required"))]
    if bill.unit_price is None or Decimal(bill.unit_price) < 0:
        errors["unit_price"] = [str(T("单价不能为负数", "The unit price cannot be negative"))]
    if bill.quantity is not None and Decimal(bill.quantity) <= 0:
        errors["quantity"] = [str(T("数量须大于 0", "The quantity must be above 0"))]
    if errors:
        raise FieldErrors(errors)
    first, _ = month_bounds(bill.period or "")
    bill.estate_id = unit.estate_id
    bill.billed_to_developer = unit.status == "unsold"
    bill.owner_id = None if bill.billed_to_developer else _current_owners(session, [unit.id], first, _).get(unit.id)
    bill.quantity = Decimal(bill.quantity or 1)
    bill.amount = round_money(bill.quantity * Decimal(bill.unit_price), "half_up_cent")
    bill.issued_on = local_today()
    if bill.due_date is None:
        bill.due_date = due_date_for(item, bill.issued_on)
    # An earlier due date than the payment term allows is refused by Bill.before_insert (due_date).
    bill.status = "open"


def set_disputed(bill: Bill, disputed: bool, note: str | None) -> None:
    if disputed and not (note or "").strip():
        raise FieldErrors({"dispute_note": [str(T("请写明争议内容", "Describe the dispute"))]})
    bill.disputed = disputed
    bill.dispute_note = (note or "").strip() or bill.dispute_note


def waive_late_fee(bill: Bill, amount, reason: str | None) -> None:
    """Waive (part of) a bill's late fee; the reason is required and kept."""
    if not (reason or "").strip():
        raise FieldErrors({"waive_reason": [str(T("减免须写明原因", "A waiver needs a reason"))]})
    try:
        value = Decimal(str(amount))
    except (InvalidOperation, ValueError):
        raise FieldErrors({"amount": [str(T("金额无效", "Invalid amount"))]}) from None
    if not value.is_finite() or value <= 0 or value.as_tuple().exponent < -2:
        raise FieldErrors({"amount": [str(T("金额须大于 0，最多 2 位小数", "Above 0, at most 2 decimal places"))]})
    if Decimal(bill.late_fee_waived) + value > Decimal(bill.late_fee):
        raise FieldErrors(
            {"amount": [str(T(f"减免超过滞纳金（{bill.late_fee}）", f"More than the late fee ({bill.late_fee})"))]}
        )
    bill.late_fee_waived = Decimal(bill.late_fee_waived) + value
    bill.waive_reason = reason.strip()[:200]
    # What is owed changed: a bill whose rest was only the waived fee is paid now.
    sync_bill_status(bill)


def lock_bill(session, bill: Bill) -> Bill:
    """Take the unit's money lock (the one payments, voids, refunds and billing's prepaid use
    take), then the bill's row, and read the bill as it is now: a waiver or a dispute decided on
    amounts read before a concurrent payment or late-fee run would overwrite them."""
    from models.payments import _lock_unit

    _lock_unit(session, bill.unit_id)
    session.execute(
        select(Bill).where(Bill.id == bill.id).with_for_update().execution_options(populate_existing=True)
    ).scalar_one()
    return bill


class BillRules:
    def pre_add(self, item):
        prepare_manual_bill(self.datamodel.session, item)

    def post_add(self, item):
        # The unit's prepaid balance meets a bill added by hand, as it meets billed ones.
        from models.payments import apply_prepaid

        session = self.datamodel.session
        if apply_prepaid(session, item.unit_id):
            session.commit()

    def pre_update(self, item):
        set_disputed(item, bool(item.disputed), item.dispute_note)

    def pre_delete(self, item):
        raise FieldErrors({"id": [str(MSG_NO_DELETE)]})


class BillViewMixin(BillRules):
    def _act(self, pk, fn):
        session = self.datamodel.session
        bill = self.datamodel.get(pk, self._base_filters)
        if bill is None:
            abort(404)
        try:
            _check_version(bill, request.form.get("version"))
            read = bill.version
            lock_bill(session, bill)
            _check_version(bill, read)  # changed by a payment or a waiver while we waited
            fn(bill)
            session.commit()
            flash(str(MSG_DONE), "success")
        except FieldErrors as e:
            session.rollback()
            flash(_messages(e), "danger")
        except Conflict as e:
            session.rollback()
            flash(str(e), "danger")
        return redirect(url_for(f"{type(self).__name__}.show", pk=pk))

    @expose("/dispute/<int:pk>", methods=["POST"])
    @has_access
    def dispute(self, pk):
        disputed = request.form.get("disputed", "1") in ("1", "true", "on", "yes")
        return self._act(pk, lambda b: set_disputed(b, disputed, request.form.get("note")))

    @expose("/waive/<int:pk>", methods=["POST"])
    @has_access
    def waive(self, pk):
        return self._act(pk, lambda b: waive_late_fee(b, request.form.get("amount"), request.form.get("reason")))

    @expose("/show/<pk>", methods=["GET"])
    @has_access
    def show(self, pk):
        item = self.datamodel.get(pk, self._base_filters)
        if item is None:
            abort(404)
        g.desk_show = {"item": item}
        return super().show(pk)


class BillApiMixin(BillRules):
    def _act(self, pk, fn):
        session = self.datamodel.session
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return self.response_400(message="Request is not JSON")
        bill = self.datamodel.get(pk, self._base_filters)
        if bill is None:
            return self.response_404()
        try:
            _check_version(bill, body.get("version"))
            read = bill.version
            lock_bill(session, bill)
            _check_version(bill, read)  # changed by a payment or a waiver while we waited
            fn(bill, body)
            session.commit()
        except FieldErrors as e:
            session.rollback()
            return self.response_422(message=e.errors)
        except Conflict as e:
            session.rollback()
            return self.response(409, message=str(e), version=e.current_version)
        return self.response(
            200,
            disputed=bill.disputed,
            late_fee_waived=str(bill.late_fee_waived),
            outstanding=str(bill.outstanding),
            version=bill.version,
        )

    @expose("/<int:pk>/dispute", methods=["POST"])
    @protect()
    @permission_name("dispute")
    def dispute(self, pk):
        """Mark a bill disputed (with a note) or no longer disputed.
        ---
        post:
          parameters:
          - in: path
            schema:
              type: integer
            name: pk
          requestBody:
            content:
              application/json:
                schema:
                  type: object
                  properties:
                    disputed:
                      type: boolean
                    note:
                      type: string
                    version:
                      type: integer
          responses:
            200:
              description: Saved
            404:
              $ref: '#/components/responses/404'
            422:
              $ref: '#/components/responses/422'
        """

        def fn(bill, body):
            disputed = body.get("disputed", True)
            if not isinstance(disputed, bool):
                raise FieldErrors({"disputed": [str(T("应为 true 或 false", "true or false"))]})
            note = body.get("note") if isinstance(body.get("note"), str) else None
            set_disputed(bill, disputed, note)

        return self._act(pk, fn)

    @expose("/<int:pk>/waive", methods=["POST"])
    @protect()
    @permission_name("waive")
    def waive(self, pk):
        """Waive (part of) a bill's late fee, with a reason.
        ---
        post:
          parameters:
          - in: path
            schema:
              type: integer
            name: pk
          requestBody:
            content:
              application/json:
                schema:
                  type: object
                  properties:
                    amount:
                      type: string
                    reason:
                      type: string
                    version:
                      type: integer
          responses:
            200:
              description: Waived
            404:
              $ref: '#/components/responses/404'
            422:
              $ref: '#/components/responses/422'
        """

        def fn(bill, body):
            reason = body.get("reason") if isinstance(body.get("reason"), str) else None
            amount = body.get("amount")
            if isinstance(amount, (bool, float)) or amount is None:
                raise FieldErrors(
                    {"amount": [str(T("金额以字符串或整数给出", "Give the amount as a string or integer"))]}
                )
            waive_late_fee(bill, amount, reason)

        return self._act(pk, fn)


BILL_LABELS = {
    "estate.name": T("小区", "Estate"),
    "unit": T("房屋", "Unit"),
    "unit.code": T("房号", "Unit"),
    "owner.name": T("业主", "Owner"),
    "billed_to_developer": T("开发商承担", "Billed to the developer"),
    "item": T("收费项目", "Fee item"),
    "item.name": T("收费项目", "Fee item"),
    "standard.revision": T("标准版本", "Standard revision"),
    "period": T("账期", "Period"),
    "source": T("来源单据", "Source"),
    "quantity": T("数量", "Quantity"),
    "unit_price": T("单价", "Unit price"),
    "billed_days": T("计费天数", "Billed days"),
    "amount": T("应收金额", "Amount"),
    "paid_amount": T("已收金额", "Paid"),
    "late_fee": T("滞纳金", "Late fee"),
    "late_fee_waived": T("减免滞纳金", "Late fee waived"),
    "waive_reason": T("减免原因", "Waiver reason"),
    "issued_on": T("出账日期", "Issued on"),
    "due_date": T("缴费期限", "Due"),
    "status": T("状态", "Status"),
    "disputed": T("有争议", "Disputed"),
    "dispute_note": T("争议说明", "Dispute note"),
    "run_id": T("计费批次", "Billing run"),
}

register(
    Resource(
        name="bill",
        model=Bill,
        label=T("账单", "Bills"),
        category="fees",
        deletable=False,
        icon="fa-file-text-o",
        list_columns=[
            "period",
            "unit.code",
            "owner.name",
            "item.name",
            "amount",
            "paid_amount",
            "late_fee",
            "due_date",
            "status",
            "disputed",
        ],
        edit_columns=["disputed", "dispute_note"],
        add_columns=["unit", "item", "period", "source", "quantity", "unit_price", "due_date"],
        show_columns=[
            "period",
            "estate.name",
            "unit.code",
            "owner.name",
            "billed_to_developer",
            "item.name",
            "standard.revision",
            "source",
            "quantity",
            "unit_price",
            "billed_days",
            "amount",
            "paid_amount",
            "late_fee",
            "late_fee_waived",
            "waive_reason",
            "issued_on",
            "due_date",
            "status",
            "disputed",
            "dispute_note",
            "created_at",
            "created_by.username",
            "changed_at",
            "changed_by.username",
        ],
        search_columns=["period", "status", "disputed", "due_date", "billed_to_developer", "source"],
        order=("id", "desc"),
        order_columns=["period", "amount", "paid_amount", "late_fee", "due_date", "status", "disputed", "id"],
        labels=BILL_LABELS,
        choices={"status": BILL_STATUSES},
        lookups=[UNIT_LOOKUP],
        view_mixins=(BillViewMixin,),
        api_mixins=(BillApiMixin,),
        show_template="desk/bill_show.html",
        descriptions={"source": T("手工账单的单据号，如 service_order:17", "The reference of a hand-made line")},
    )
)


# --- billing runs ----------------------------------------------------------------------------
MSG_RUN_RECORD = T(
    "计费批次是记录，不能修改或删除；请发起新的计费", "A billing run is a record; start a new run instead"
)


def start_billing(run: BillingRun) -> None:
    """Queue the job for a committed run row (it completes that row; see jobs/billing.py)."""
    from jobs.billing import run_billing_task

    # This app's own Celery (not the process-wide default: a process may hold several apps).
    current_app.extensions["celery"].tasks[run_billing_task.name].apply_async(
        args=[run.estate_id, run.period, run.started_by, run.id]
    )


class BillingRunRules:
    def pre_add(self, item):
        if item.estate is None and item.estate_id is None:
            raise FieldErrors({"estate": [str(T("请选择小区", "Choose the estate"))]})
        month_bounds(item.period or "")
        item.status = "running"
        item.started_by = g.user.username[:64]
        item.lines_created = item.lines_total = 0
        item.amount_created = item.amount_total = Decimal(0)

    def post_add(self, item):
        start_billing(item)

    def pre_update(self, item):
        raise FieldErrors({"period": [str(MSG_RUN_RECORD)]})

    def pre_delete(self, item):
        raise FieldErrors({"period": [str(MSG_RUN_RECORD)]})


register(
    Resource(
        name="billing_run",
        model=BillingRun,
        label=T("计费批次", "Billing runs"),
        category="fees",
        deletable=False,
        icon="fa-calculator",
        list_columns=[
            "period",
            "estate.name",
            "status",
            "started_by",
            "started_at",
            "finished_at",
            "lines_created",
            "amount_created",
            "lines_total",
            "amount_total",
        ],
        # A run is a record of what was billed: started, never edited.
        edit_columns=(),
        add_columns=["estate", "period"],
        show_columns=[
            "period",
            "estate.name",
            "status",
            "started_by",
            "started_at",
            "finished_at",
            "lines_created",
            "amount_created",
            "lines_total",
            "amount_total",
            "prepaid_applied",
            "explanation",
            "error",
        ],
        search_columns=["period", "status", "started_at"],
        order=("id", "desc"),
        order_columns=["period", "status", "started_by", "started_at", "finished_at", "lines_created", "id"],
        labels={
            "estate": T("小区", "Estate"),
            "estate.name": T("小区", "Estate"),
            "period": T("账期（YYYY-MM）", "Period (YYYY-MM)"),
            "status": T("状态", "Status"),
            "started_by": T("发起人", "Started by"),
            "started_at": T("开始时间", "Started at"),
            "finished_at": T("完成时间", "Finished at"),
            "lines_created": T("本次新增行数", "Lines created"),
            "amount_created": T("本次新增金额", "Amount created"),
            "lines_total": T("账期总行数", "Lines in period"),
            "amount_total": T("账期总金额", "Amount in period"),
            "prepaid_applied": T("预存款抵扣", "Prepaid balance used"),
            "explanation": T("说明（未出账原因）", "Explanation (why nothing was billed)"),
            "error": T("错误", "Error"),
        },
        choices={"status": RUN_STATUSES},
        view_mixins=(BillingRunRules,),
        api_mixins=(BillingRunRules,),
        descriptions={
            "period": T("新增即发起计费；重复计费不会重复出账", "Adding one starts billing; a rerun never bills twice")
        },
    )
)
