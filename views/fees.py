"""Fees (收费管理, DESIGN.md item 7) part 1: fee items, fee standards and their approval, meter
readings, bills and billing runs (payments, refunds, dunning, reports: views/payments.py). Only
Managers write items and standards (app/roles.py). Bills come from billing runs; a Manager adds a
one-off line by hand, marks a bill disputed, waives a late fee; bills are never deleted. Adding a
billing run commits its row and queues the job (jobs/billing.py). The rules are the models'
(models/fees.py); the workflow steps are declared here (``Action``, views/actions.py)."""

from __future__ import annotations

from flask import current_app, g, url_for
from flask_appbuilder.baseviews import expose
from flask_appbuilder.fieldwidgets import Select2ManyWidget
from flask_appbuilder.security.decorators import has_access
from sqlalchemy.orm import object_session
from wtforms import BooleanField, SelectMultipleField
from wtforms.validators import DataRequired

from app.i18n import T
from models.archives import UNIT_USES
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
    set_disputed,
)
from models.payments import payments_of_bill
from views.archives import UNIT_LOOKUP
from views.collect import BILL_COLLECT, CollectBillMixin
from views.excel import METER_READING_IMPORT
from views.registry import REGISTRY, Action, Input, Link, Related, Resource, Section, register
from views.scope import COMPANY
from views.uploads import send_stored

DOC_EXTENSIONS = {".pdf", ".ofd", ".jpg", ".jpeg", ".png", ".doc", ".docx", ".xls", ".xlsx"}

# Labels the fee resources share (views/payments.py too); a resource overrides what differs.
LABELS = {
    "estate": T("小区", "Estate"),
    "estate.name": T("小区", "Estate"),
    "unit": T("房屋", "Unit"),
    "unit.code": T("房号", "Unit"),
    "owner.name": T("业主", "Owner"),
    "item": T("收费项目", "Fee item"),
    "item.name": T("收费项目", "Fee item"),
    "period": T("账期", "Period"),
    "status": T("状态", "Status"),
    "amount": T("金额", "Amount"),
    "unit_price": T("单价", "Unit price"),
    "quantity": T("数量", "Quantity"),
    "paid_amount": T("已收金额", "Paid"),
    "late_fee": T("滞纳金", "Late fee"),
    "due_date": T("缴费期限", "Due"),
    "receipt_no": T("收据号", "Receipt no."),
    "paid_at": T("收款时间", "Paid at"),
    "method": T("付款方式", "Method"),
    "reversed_at": T("冲回时间", "Reversed at"),
    "state": T("状态", "State"),
}
ALLOCATED = T("冲抵金额", "Amount allocated")
AUDIT = Section(T("记录", "Record"), ["created_at", "created_by.username", "changed_at", "changed_by.username"])
PERIOD_FORMAT = T("格式如 2025-03", "YYYY-MM, e.g. 2025-03")


def linked_rows(resource: str, rows: list[dict], pk: str) -> list[dict]:
    """Rows of a related list as shown (local times, 是/否), each opening its record on the
    ``resource`` screen when the user may read it; nothing when the user may not."""
    from views.base import rights
    from views.fields import show_value

    if "read" not in rights(resource):
        return []
    view = f"{REGISTRY[resource].class_stem}View.show"
    return [{**{k: show_value(v) for k, v in r.items()}, "_url": url_for(view, pk=r[pk])} for r in rows]


# --- fee items -------------------------------------------------------------------------------
class FeeItemRules:
    def pre_delete(self, item):
        item.refuse_delete(self.datamodel.session)


ITEM_COLUMNS = ["code", "name", "kind", "due_days", "payment_term_days", "grace_days", "late_daily_rate"]
ITEM_COLUMNS += ["late_cap_rate", "active"]
register(
    Resource(
        name="fee_item",
        model=FeeItem,
        label=T("收费项目", "Fee items"),
        category="fees",
        estate=COMPANY,
        icon="fa-list",
        list_columns=ITEM_COLUMNS,
        edit_columns=[*ITEM_COLUMNS, "note"],
        search_columns=["code", "name", "kind", "active"],
        order=("code", "asc"),
        labels={
            "kind": T("类型", "Kind"),
            "grace_days": T("宽限天数", "Grace days"),
            "late_daily_rate": T("滞纳金日费率", "Late fee daily rate"),
            "late_cap_rate": T("滞纳金上限（占本金）", "Late fee cap (share of principal)"),
            "due_days": T("缴费日（账期起第几天）", "Due day (days after the period starts)"),
            "payment_term_days": T("缴费期（出账后至少天数）", "Payment term (days after issue, at least)"),
            "active": T("启用", "Active"),
        },
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
class FeeStandardRules:
    """A new standard is a draft of the next revision; only drafts and rejected ones are edited
    or deleted (models/fees.py)."""

    def pre_add(self, item):
        item.prepare_draft(self.datamodel.session)

    def pre_update(self, item):
        item.refuse_change()

    def pre_delete(self, item):
        item.refuse_change(deleting=True)


class FeeStandardViewMixin(FeeStandardRules):
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

    @expose("/document/<int:pk>", methods=["GET"])
    @has_access
    def document(self, pk):
        std = self.datamodel.get(pk, self._base_filters)
        return send_stored(std.basis_document if std is not None else None, f"fee_standard_{pk}")


def _standard_answer(std, returned) -> dict:
    record = returned if isinstance(returned, FeeStandard) else std
    # What would keep it from billing (an approval with none of these bills something).
    return {"revision": record.revision, "warnings": record.billing_warnings()}


def _step(name: str, label: T, **kw) -> Action:
    """A standard's step: no version needed (a stale one sent is still 409); the answer names
    the revision and what would keep it from billing."""
    return Action(name, label, needs_version=False, result=_standard_answer, **kw)


STANDARD_ACTIONS = [
    _step(
        "declare",
        T("申报（附依据文件）", "Declare (with the basis document)"),
        method="declare",
        inputs=[Input("document", T("依据文件", "Basis document"), kind="file", accept=tuple(sorted(DOC_EXTENSIONS)))],
        when=lambda s: s.status in ("draft", "rejected"),
        style="primary",
        description=T("申报待批（附依据文件）", "Declare a standard for approval (申报), with its basis document"),
        notices=lambda std: std.billing_warnings() if isinstance(std, FeeStandard) else [],
    ),
    _step(
        "approve",
        T("批准", "Approve"),
        method=lambda std, user, note=None: std.approve(user.id, note=note),
        inputs=[Input("note", T("审批意见", "Note"))],
        when=lambda s: s.status == "declared",
        style="success",
        description=T("批准已申报的标准", "Approve a declared standard; refused (422 on effective_from) on overlap"),
    ),
    _step(
        "reject",
        T("驳回", "Reject"),
        method=lambda std, note=None: std.reject(note or ""),
        inputs=[Input("note", T("驳回原因", "Reason"))],
        when=lambda s: s.status == "declared",
        style="warning",
        description=T("驳回已申报的标准（写明原因）", "Reject a declared standard, with the reason in note"),
    ),
    _step(
        "retire",
        T("停用", "Retire"),
        method="retire",
        inputs=[Input("last_day", T("最后生效日（可空）", "Last effective day (optional)"), kind="date")],
        when=lambda s: s.status == "approved",
        description=T("停用已批准的标准", "Retire an approved standard (optionally from a last day)"),
    ),
    _step(
        "new_revision",
        T("新建修订版", "New revision"),
        method="revise",
        when=lambda s: s.status in ("approved", "retired"),
        creates="fee_standard",
        description=T("新建修订版草稿", "Make a draft of the next revision; approving it supersedes this one"),
    ),
]
STANDARD_LABELS = {
    **LABELS,
    "revision": T("版本号", "Revision"),
    "basis": T("计费方式", "Basis"),
    "rounding": T("舍入规则", "Rounding"),
    "unit_uses": T("适用房屋用途", "Unit uses"),
    "estates": T("适用小区", "Estates"),
    "effective_from": T("生效日期", "Effective from"),
    "effective_to": T("截止日期", "Effective to"),
    "basis_document": T("依据文件", "Basis document"),
    "declared_at": T("申报时间", "Declared at"),
    "approved_at": T("批准时间", "Approved at"),
    "approved_by.username": T("批准人", "Approved by"),
    "decision_note": T("审批意见", "Decision note"),
    "bill_unsold_to_developer": T("未售房屋向开发商计费", "Bill unsold units to the developer"),
}
STANDARD_PRICE = ["basis", "unit_price", "rounding"]
STANDARD_DECISION = ["basis_document", "declared_at", "approved_at", "approved_by.username", "decision_note"]
STANDARD_SCOPE = ["unit_uses", "estates", "effective_from", "effective_to", "bill_unsold_to_developer"]
register(
    Resource(
        name="fee_standard",
        model=FeeStandard,
        label=T("收费标准", "Fee standards"),
        category="fees",
        estate="estates",
        estate_optional=True,
        icon="fa-balance-scale",
        list_columns=["item.name", "revision", *STANDARD_PRICE, "effective_from", "effective_to", "status"],
        edit_columns=["item", *STANDARD_PRICE, *STANDARD_SCOPE],
        show_columns=["item.name", "revision", "status", *STANDARD_PRICE, *STANDARD_SCOPE, *STANDARD_DECISION]
        + AUDIT.columns,
        search_columns=["basis", "status", "effective_from", "effective_to", "revision"],
        order_columns=["revision", "basis", "unit_price", "rounding", "effective_from", "effective_to", "status", "id"],
        labels=STANDARD_LABELS,
        choices={"basis": BASES, "rounding": ROUNDINGS, "status": STANDARD_STATUSES},
        view_mixins=(FeeStandardViewMixin,),
        api_mixins=(FeeStandardRules,),
        actions=STANDARD_ACTIONS,
        links=[Link(T("下载依据文件", "Download the basis document"), "document", when=lambda s: s.basis_document)],
        descriptions={
            "unit_price": T("最多 4 位小数", "At most 4 decimal places"),
            "effective_to": T("含当日；空为长期有效", "Inclusive; empty: open-ended"),
        },
    )
)


# --- meter readings --------------------------------------------------------------------------
READING_LIST = ["period", "unit.code", "item.name", "read_on", "previous_reading", "reading", "quantity"]
register(
    Resource(
        name="meter_reading",
        model=MeterReading,
        label=T("抄表记录", "Meter readings"),
        category="fees",
        estate="estate_id",
        icon="fa-tachometer",
        list_columns=[*READING_LIST, "is_replacement"],
        edit_columns=["unit", "item", "period", "read_on", "reading", "is_replacement"],
        search_columns=["period", "read_on", "is_replacement"],
        order_columns=["period", "read_on", "previous_reading", "reading", "quantity", "is_replacement", "id"],
        labels={
            **LABELS,
            "read_on": T("抄表日期", "Read on"),
            "reading": T("本期读数", "Reading"),
            "previous_reading": T("上期读数", "Previous reading"),
            "quantity": T("用量", "Quantity"),
            "is_replacement": T("换表", "Meter replaced"),
        },
        lookups=[UNIT_LOOKUP],
        importer=METER_READING_IMPORT,
        descriptions={
            "period": PERIOD_FORMAT,
            "is_replacement": T(
                "换表后本期读数即为用量；读数低于上期且未勾选换表将被拒绝",
                "After a replacement the reading is the quantity; otherwise a reading below the last one is refused",
            )
        },
    )
)


# --- bills -----------------------------------------------------------------------------------
class BillRules:
    def pre_add(self, item):
        item.prepare_manual(self.datamodel.session)

    def post_add(self, item):
        # The unit's prepaid balance meets a bill added by hand, as it meets billed ones.
        from models.payments import apply_prepaid

        session = self.datamodel.session
        if apply_prepaid(session, item.unit_id):
            session.commit()

    def pre_update(self, item):
        set_disputed(item, bool(item.disputed), item.dispute_note)


def _bill_payments(bill) -> list[dict]:
    return linked_rows("payment", payments_of_bill(object_session(bill), bill.id), "payment")


def _bill_answer(bill, _returned) -> dict:
    money = {k: str(getattr(bill, k)) for k in ("late_fee_waived", "outstanding")}
    return {"disputed": bill.disputed, **money}


BILL_ACTIONS = [
    Action(
        "dispute",
        T("登记/撤销争议", "Record or clear a dispute"),
        method="dispute",
        inputs=[
            Input("disputed", T("有争议？", "Disputed?"), kind="bool", required=True),  # said, never a forgotten box
            Input("note", T("争议说明", "Dispute note"), kind="textarea"),
        ],
        needs_version=False,
        description=T("标记账单有争议（写明说明）或撤销争议", "Mark a bill disputed (with a note), or clear it (disputed false)"),
        result=_bill_answer,
    ),
    Action(
        "waive",
        T("减免滞纳金", "Waive late fee"),
        method="waive",
        inputs=[
            Input("amount", T("减免金额", "Amount"), kind="decimal", required=True),
            Input("reason", T("减免原因", "Reason")),
        ],
        when=lambda b: b.late_fee_left > 0,
        needs_version=False,
        style="warning",
        description=T("减免（部分）滞纳金，写明原因", "Waive (part of) a bill's late fee, with a reason"),
        result=_bill_answer,
    ),
]
BILL_HEAD = ["period", "estate.name", "unit.code", "owner.name", "billed_to_developer", "item.name"]
BILL_HEAD += ["standard.revision", "source", "issued_on", "due_date", "status"]
BILL_MONEY = ["quantity", "unit_price", "billed_days", "amount", "paid_amount", "late_fee", "late_fee_waived"]
BILL_MONEY += ["outstanding"]
BILL_LIST = ["period", "unit.code", "owner.name", "item.name", "amount", "paid_amount", "late_fee", "due_date"]
BILL_LIST += ["status", "disputed"]
BILL_LABELS = {
    **LABELS,
    "billed_to_developer": T("开发商承担", "Billed to the developer"),
    "standard.revision": T("标准版本", "Standard revision"),
    "source": T("来源单据", "Source"),
    "billed_days": T("计费天数", "Billed days"),
    "amount": T("应收金额", "Amount"),
    "late_fee_waived": T("减免滞纳金", "Late fee waived"),
    "outstanding": T("欠缴金额", "Outstanding"),
    "waive_reason": T("减免原因", "Waiver reason"),
    "issued_on": T("出账日期", "Issued on"),
    "disputed": T("有争议", "Disputed"),
    "dispute_note": T("争议说明", "Dispute note"),
}
register(
    Resource(
        name="bill",
        model=Bill,
        label=T("账单", "Bills"),
        category="fees",
        estate="estate_id",
        deletable=False,
        icon="fa-file-text-o",
        list_columns=BILL_LIST,
        edit_columns=["disputed", "dispute_note"],
        add_columns=["unit", "item", "period", "source", "quantity", "unit_price", "due_date"],
        sections=[
            Section(T("账单", "Bill"), BILL_HEAD),
            Section(T("金额", "Amounts"), [*BILL_MONEY, "disputed"]),
            Section(T("滞纳金减免", "Late fee waiver"), ["waive_reason"], when=lambda b: b.late_fee_waived > 0),
            Section(T("争议", "Dispute"), ["dispute_note"], when=lambda b: b.disputed or bool(b.dispute_note)),
            AUDIT,
        ],
        search_columns=["period", "status", "disputed", "due_date", "billed_to_developer", "source"],
        order_columns=["period", "amount", "paid_amount", "late_fee", "due_date", "status", "disputed", "id"],
        labels=BILL_LABELS,
        choices={"status": BILL_STATUSES},
        lookups=[UNIT_LOOKUP],
        view_mixins=(BillRules, CollectBillMixin),  # 收款 from the bill: the unit's form, this bill ticked
        api_mixins=(BillRules,),
        actions=BILL_ACTIONS,
        links=[BILL_COLLECT],
        related=[
            Related(
                T("收款记录", "Payments"),
                rows=_bill_payments,
                columns=["receipt_no", "paid_at", "method", "amount", "state"],
                labels={**LABELS, "amount": ALLOCATED},
            )
        ],
        descriptions={"source": T("手工账单的单据号，如 service_order:17", "The reference of a hand-made line")},
    )
)


# --- billing runs ----------------------------------------------------------------------------
class BillingRunRules:
    def pre_add(self, item):
        item.start(g.user.username)

    def post_add(self, item):
        """Queue the job for the committed run row (it completes that row; see jobs/billing.py), on
        this app's own Celery (not the process-wide default: a process may hold several apps)."""
        from jobs.billing import run_billing_task

        task = current_app.extensions["celery"].tasks[run_billing_task.name]
        task.apply_async(args=[item.estate_id, item.period, item.started_by, item.id])


EXPLANATION, REASON = T("计费说明（未出账原因）", "Explanation (why nothing was billed)"), {"reason": T("原因", "Reason")}
RUN_HEAD = ["period", "estate.name", "status", "started_by", "started_at", "finished_at"]
RUN_COUNTS = ["lines_created", "amount_created", "lines_total", "amount_total"]
register(
    Resource(
        name="billing_run",
        model=BillingRun,
        label=T("计费批次", "Billing runs"),
        category="fees",
        estate="estate_id",
        deletable=False,
        icon="fa-calculator",
        list_columns=[*RUN_HEAD, *RUN_COUNTS],
        add_columns=["estate", "period"],  # a run is a record of what was billed: started, never edited
        sections=[
            Section(T("计费批次", "Billing run"), RUN_HEAD),
            Section(T("计费结果", "Result"), [*RUN_COUNTS, "prepaid_applied"]),
            Section(T("错误", "Error"), ["error"], when=lambda r: bool(r.error)),
        ],
        # The API serves the stored explanation; the page lists its reasons in the reader's language.
        show_columns=[*RUN_HEAD, *RUN_COUNTS, "prepaid_applied", "explanation", "error"],
        search_columns=["period", "status", "started_at"],
        order_columns=["period", "status", "started_by", "started_at", "finished_at", "lines_created", "id"],
        labels={
            **LABELS,
            "started_by": T("发起人", "Started by"),
            "started_at": T("开始时间", "Started at"),
            "finished_at": T("完成时间", "Finished at"),
            "lines_created": T("本次新增行数", "Lines created"),
            "amount_created": T("本次新增金额", "Amount created"),
            "lines_total": T("账期总行数", "Lines in period"),
            "amount_total": T("账期总金额", "Amount in period"),
            "prepaid_applied": T("预存款抵扣", "Prepaid balance used"),
            "explanation": EXPLANATION,
            "error": T("错误", "Error"),
        },
        choices={"status": RUN_STATUSES},
        view_mixins=(BillingRunRules,),
        api_mixins=(BillingRunRules,),
        related=[
            Related(
                EXPLANATION,
                rows=lambda r: [{"reason": x} for x in r.reasons],
                columns=["reason"],
                labels=REASON,
                when=lambda r: bool(r.explanation),
            ),
            Related(
                T("本批次账单", "Bills of this run"),
                resource="bill",
                via="run_id",
                columns=["unit.code", "owner.name", "item.name", "amount", "status"],
            ),
        ],
        descriptions={"period": T("格式如 2025-03；新增即发起计费，重复计费不会重复出账", "YYYY-MM; a rerun never bills twice")},
    )
)
