"""Payments and receipts, refunds, dunning notices and the fee reports (DESIGN.md item 7, part 2).

- ``payment``: record a payment (screen form or ``POST /api/v1/payment/``, optionally choosing
  the bills), void it with a reason (``/payment/void/<pk>``, ``POST /api/v1/payment/<pk>/void``),
  print its receipt (``/payment/receipt/<pk>``: 收款收据 with the amount in capital numerals),
  a unit's prepaid balance (``GET /api/v1/payment/balance/<unit_id>``);
- ``refund``: pay prepaid balance back, never more than it;
- ``dunning_notice``: the notices the dunning job made, their printable letters
  (``/dunning_notice/letter/<pk>``), marked delivered by a supervisor;
- ``collection_report``: read-only, the reports: collection rate per month, estate and item,
  arrears in aging buckets, income by item and method; SVG charts drawn here; .xlsx export.
  The arrears list per unit and owner is shown only to those who may read bills (not the
  Committee, which sees the per-estate aging).
Late-fee waivers live on the bill (views/fees.py: ``/bill/waive/<pk>``, Managers only).
"""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal
from zoneinfo import ZoneInfo

from flask import abort, current_app, flash, g, redirect, request, send_file, url_for
from flask_appbuilder.baseviews import expose
from flask_appbuilder.security.decorators import has_access, permission_name, protect
from sqlalchemy import func, select
from wtforms import StringField
from wtforms.validators import Optional

from app.i18n import T
from models.archives import Estate, Unit
from models.arrears import BUCKETS, arrears_by_unit, arrears_count, arrears_summary
from models.errors import Conflict, FieldErrors
from models.fees import BILL_STATUSES, Bill, FeeItem, month_bounds
from models.payments import (
    DUNNING_STAGES,
    PAYMENT_METHODS,
    PAYMENT_STATUSES,
    DunningNotice,
    Payment,
    PaymentAllocation,
    Refund,
    amount_in_words,
    prepaid_balance,
    record_payment,
    refund,
    void_payment,
)
from views.archives import UNIT_LOOKUP
from views.base import rights
from views.datamodel import MSG_CONFLICT
from views.registry import Resource, register

MSG_DONE = T("已保存", "Saved")
MSG_PAYMENT_RECORD = T(
    "收款是财务记录，不能修改金额或删除；录错请作废后重新收款",
    "A payment is a financial record: it cannot be changed or deleted; void it and record it again",
)
MSG_REFUND_RECORD = T(
    "退款是财务记录，不能修改或删除", "A refund is a financial record: it cannot be changed or deleted"
)
MSG_NOTICE_RECORD = T(
    "催缴通知由每日催缴任务生成，不能手工新增或删除", "Dunning notices are made by the daily job; they cannot be added"
)


def _messages(e: FieldErrors) -> str:
    return "; ".join(f"{k}: {' '.join(v)}" for k, v in e.errors.items())


def _tz() -> ZoneInfo:
    return ZoneInfo(current_app.config.get("DISPLAY_TIMEZONE", "Asia/Shanghai"))


def _parse_bill_ids(raw):
    """``"1, 2 3"`` or ``[1, 2]`` -> [1, 2]; empty -> None (automatic allocation)."""
    if raw is None or raw == "" or raw == []:
        return None
    parts = raw if isinstance(raw, list) else str(raw).replace("，", ",").replace(" ", ",").split(",")
    out = []
    for p in parts:
        if isinstance(p, bool) or isinstance(p, float):
            raise FieldErrors({"bills": [str(T("账单编号应为整数", "Bill ids are whole numbers"))]})
        s = str(p).strip()
        if not s:
            continue
        if not s.isdigit() or len(s) > 18:
            raise FieldErrors({"bills": [str(T("账单编号应为整数", "Bill ids are whole numbers"))]})
        out.append(int(s))
    return out or None


# --- payments --------------------------------------------------------------------------------
def receipt_data(session, payment: Payment) -> dict:
    rows = session.execute(
        select(PaymentAllocation, Bill.period, FeeItem.name)
        .join(Bill, Bill.id == PaymentAllocation.bill_id)
        .join(FeeItem, FeeItem.id == Bill.item_id)
        .where(PaymentAllocation.payment_id == payment.id)
        .order_by(Bill.due_date, Bill.id, PaymentAllocation.id)
    ).all()
    lines = [
        {"period": period, "item": item, "amount": Decimal(a.amount), "reversed": a.reversed_at is not None}
        for a, period, item in rows
        if a.reversed_at is None or payment.status == "void"
    ]
    allocated = sum((ln["amount"] for ln in lines), Decimal(0))
    amount = Decimal(payment.amount)
    return {
        "payment": payment,
        "lines": lines,
        "prepaid": amount - allocated if payment.status == "valid" else Decimal(0),
        "amount": amount,
        "amount_words": amount_in_words(amount),
        "method": str(PAYMENT_METHODS.get(payment.method, payment.method)),
        "paid_at": payment.paid_at.astimezone(_tz()),
        "company": current_app.config.get("FEES_COMPANY_NAME", "物业服务中心"),
        "phone": current_app.config.get("FEES_COMPANY_PHONE", ""),
        "payer": payment.payer_name or (payment.owner.name if payment.owner else ""),
    }


class PaymentRules:
    def pre_update(self, item):
        # Only the note may change (the edit form has nothing else); the amount is a record.
        from sqlalchemy import inspect

        state = inspect(item)
        for col in ("amount", "method", "unit_id", "receipt_no", "status", "paid_at"):
            if state.attrs[col].history.has_changes():
                raise FieldErrors({col: [str(MSG_PAYMENT_RECORD)]})

    def pre_delete(self, item):
        raise FieldErrors({"id": [str(MSG_PAYMENT_RECORD)]})


class PaymentViewMixin(PaymentRules):
    def _init_forms(self):
        # The optional choice of bills: ids typed in (shown on the unit's bills list).
        self.add_columns = [*self.add_columns, "bills"]
        self.add_form_extra_fields = {
            **self.add_form_extra_fields,
            "bills": StringField(
                str(T("指定账单（可选）", "Bills (optional)")),
                validators=[Optional()],
                description=str(
                    T(
                        "账单编号，以逗号分隔；不填则按缴费期限从早到晚自动冲抵，余额转为预存款",
                        "Bill ids, comma-separated; empty: the oldest bills first, the rest becomes prepaid balance",
                    )
                ),
            ),
        }
        self.label_columns = {**self.label_columns, "bills": str(T("指定账单（可选）", "Bills (optional)"))}
        super()._init_forms()

    def pre_add(self, item):
        session = self.datamodel.session
        try:
            record_payment(
                session,
                item.unit,
                item.amount,
                item.method,
                _parse_bill_ids(request.form.get("bills")),
                payment=item,
            )
        except FieldErrors:
            session.rollback()
            raise

    @expose("/void/<int:pk>", methods=["POST"])
    @has_access
    def void(self, pk):
        session = self.datamodel.session
        payment = self.datamodel.get(pk, self._base_filters)
        if payment is None:
            abort(404)
        try:
            if str(request.form.get("version")) != str(payment.version):
                raise Conflict(str(MSG_CONFLICT), current_version=payment.version)
            void_payment(payment, request.form.get("reason"))
            session.commit()
            flash(str(T("已作废", "Voided")), "success")
        except (FieldErrors, Conflict) as e:
            session.rollback()
            flash(_messages(e) if isinstance(e, FieldErrors) else str(e), "danger")
        return redirect(url_for(f"{type(self).__name__}.show", pk=pk))

    @expose("/receipt/<int:pk>")
    @has_access
    def receipt(self, pk):
        payment = self.datamodel.get(pk, self._base_filters)
        if payment is None:
            abort(404)
        return self.render_template("desk/payment_receipt.html", r=receipt_data(self.datamodel.session, payment))

    @expose("/show/<pk>", methods=["GET"])
    @has_access
    def show(self, pk):
        item = self.datamodel.get(pk, self._base_filters)
        if item is None:
            abort(404)
        g.desk_show = {"item": item, "balance": prepaid_balance(self.datamodel.session, item.unit_id)}
        return super().show(pk)


class PaymentApiMixin(PaymentRules):
    def post_headless(self):
        """Record a payment: ``{"unit": id, "amount": "100.00", "method": "cash", "bills": [ids],
        "payer_name": ..., "reference": ..., "note": ...}``."""
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return self.response_400(message="Request is not JSON")
        session = self.datamodel.session
        allowed = {"unit", "amount", "method", "bills", "payer_name", "reference", "note"}
        unknown = sorted(set(body) - allowed)
        if unknown:
            return self.response_422(message={k: ["Unknown field."] for k in unknown})
        errors = {}
        unit_id = body.get("unit")
        if isinstance(unit_id, bool) or not isinstance(unit_id, int) or not 0 < unit_id < 2**63:
            errors["unit"] = [str(T("应为房屋编号（整数）", "The unit's id (a whole number)"))]
        for key in ("payer_name", "reference", "note", "method"):
            if body.get(key) is not None and not isinstance(body.get(key), str):
                errors[key] = [str(T("应为文本", "Must be text"))]
        if errors:
            return self.response_422(message=errors)
        try:
            unit = session.get(Unit, unit_id)
            if unit is None:
                raise FieldErrors({"unit": [str(T("房屋不存在", "No such unit"))]})
            payment = record_payment(
                session,
                unit,
                body.get("amount"),
                body.get("method") or "cash",
                _parse_bill_ids(body.get("bills")),
                payer_name=body.get("payer_name"),
                reference=body.get("reference"),
                note=body.get("note"),
            )
            self._check_text(payment)
            session.commit()
        except FieldErrors as e:
            session.rollback()
            return self.response_422(message=e.errors)
        return self.response(201, id=payment.id, version=payment.version, **self._payment_json(payment))

    @staticmethod
    def _check_text(payment):
        from views.datamodel import DeskInterface

        DeskInterface._check_text(payment)

    def _payment_json(self, payment: Payment) -> dict:
        session = self.datamodel.session
        allocations = session.execute(
            select(PaymentAllocation).where(PaymentAllocation.payment_id == payment.id).order_by(PaymentAllocation.id)
        ).scalars()
        return {
            "receipt_no": payment.receipt_no,
            "status": payment.status,
            "amount": str(payment.amount),
            "amount_in_words": amount_in_words(payment.amount),
            "allocations": [
                {
                    "bill": a.bill_id,
                    "amount": str(a.amount),
                    "reversed_at": a.reversed_at.isoformat() if a.reversed_at else None,
                }
                for a in allocations
            ],
            "prepaid_balance": str(prepaid_balance(session, payment.unit_id)),
        }

    @expose("/<int:pk>/void", methods=["POST"])
    @protect()
    @permission_name("void")
    def void(self, pk):
        """Void a payment with a reason; its allocations are reversed, nothing is deleted.
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
                    reason:
                      type: string
                    version:
                      type: integer
          responses:
            200:
              description: Voided
            404:
              $ref: '#/components/responses/404'
            409:
              description: The payment changed since it was read
            422:
              $ref: '#/components/responses/422'
        """
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return self.response_400(message="Request is not JSON")
        session = self.datamodel.session
        payment = self.datamodel.get(pk, self._base_filters)
        if payment is None:
            return self.response_404()
        reason = body.get("reason") if isinstance(body.get("reason"), str) else None
        if body.get("version") is None or str(body.get("version")) != str(payment.version):
            return self.response(409, message=str(MSG_CONFLICT), version=payment.version)
        try:
            void_payment(payment, reason)
            session.commit()
        except FieldErrors as e:
            session.rollback()
            return self.response_422(message=e.errors)
        return self.response(200, id=payment.id, version=payment.version, **self._payment_json(payment))

    @expose("/<int:pk>/receipt", methods=["GET"])
    @protect()
    @permission_name("receipt")
    def receipt(self, pk):
        """A payment's receipt: number, allocations, amount in figures and in capital numerals.
        ---
        get:
          parameters:
          - in: path
            schema:
              type: integer
            name: pk
          responses:
            200:
              description: The receipt
            404:
              $ref: '#/components/responses/404'
        """
        payment = self.datamodel.get(pk, self._base_filters)
        if payment is None:
            return self.response_404()
        return self.response(200, id=payment.id, **self._payment_json(payment))

    @expose("/balance/<int:unit_id>", methods=["GET"])
    @protect()
    @permission_name("balance")
    def balance(self, unit_id):
        """A unit's prepaid balance (valid payments - active allocations - refunds).
        ---
        get:
          parameters:
          - in: path
            schema:
              type: integer
            name: unit_id
          responses:
            200:
              description: The balance
            404:
              $ref: '#/components/responses/404'
        """
        session = self.datamodel.session
        if unit_id >= 2**63 or session.get(Unit, unit_id) is None:
            return self.response_404()
        return self.response(200, unit=unit_id, prepaid_balance=str(prepaid_balance(session, unit_id)))


PAYMENT_LABELS = {
    "receipt_no": T("收据号", "Receipt no."),
    "estate": T("小区", "Estate"),
    "estate.name": T("小区", "Estate"),
    "unit": T("房屋", "Unit"),
    "unit.code": T("房号", "Unit"),
    "owner.name": T("业主", "Owner"),
    "payer_name": T("交款人", "Payer"),
    "amount": T("金额", "Amount"),
    "method": T("付款方式", "Method"),
    "paid_at": T("收款时间", "Paid at"),
    "reference": T("交易流水号", "Transaction no."),
    "status": T("状态", "Status"),
    "void_reason": T("作废原因", "Void reason"),
    "voided_at": T("作废时间", "Voided at"),
    "bills": T("指定账单（可选）", "Bills (optional)"),
}

register(
    Resource(
        name="payment",
        model=Payment,
        label=T("收款", "Payments"),
        category="fees",
        deletable=False,
        icon="fa-money",
        list_columns=["receipt_no", "paid_at", "estate.name", "unit.code", "payer_name", "amount", "method", "status"],
        edit_columns=["note"],
        add_columns=["unit", "amount", "method", "payer_name", "reference", "note"],
        show_columns=[
            "receipt_no",
            "paid_at",
            "estate.name",
            "unit.code",
            "owner.name",
            "payer_name",
            "amount",
            "method",
            "reference",
            "status",
            "void_reason",
            "voided_at",
            "note",
            "created_at",
            "created_by.username",
            "changed_at",
            "changed_by.username",
        ],
        search_columns=["receipt_no", "paid_at", "method", "status", "payer_name", "reference"],
        order=("id", "desc"),
        order_columns=["receipt_no", "paid_at", "payer_name", "amount", "method", "status", "id"],
        labels=PAYMENT_LABELS,
        choices={"method": PAYMENT_METHODS, "status": PAYMENT_STATUSES},
        lookups=[UNIT_LOOKUP],
        view_mixins=(PaymentViewMixin,),
        api_mixins=(PaymentApiMixin,),
        show_template="desk/payment_show.html",
        descriptions={
            "amount": T("不指定账单时按缴费期限从早到晚冲抵，余额转为预存款", "Oldest bills first; the rest is prepaid")
        },
    )
)


# --- refunds ---------------------------------------------------------------------------------
class RefundRules:
    def pre_add(self, item):
        session = self.datamodel.session
        try:
            refund(session, item.unit, item.amount, item.reason, item.method or "bank_transfer", refund_row=item)
        except FieldErrors:
            session.rollback()
            raise

    def pre_update(self, item):
        raise FieldErrors({"reason": [str(MSG_REFUND_RECORD)]})

    def pre_delete(self, item):
        raise FieldErrors({"id": [str(MSG_REFUND_RECORD)]})


register(
    Resource(
        name="refund",
        model=Refund,
        label=T("退款", "Refunds"),
        category="fees",
        deletable=False,
        icon="fa-undo",
        list_columns=["refunded_at", "unit.code", "amount", "method", "reason"],
        # A refund is a financial record: recorded once, never edited.
        edit_columns=(),
        add_columns=["unit", "amount", "method", "reason"],
        show_columns=[
            "refunded_at",
            "unit.code",
            "amount",
            "method",
            "reason",
            "created_at",
            "created_by.username",
        ],
        search_columns=["refunded_at", "method", "reason"],
        order=("id", "desc"),
        order_columns=["refunded_at", "amount", "method", "id"],
        labels={
            "refunded_at": T("退款时间", "Refunded at"),
            "unit": T("房屋", "Unit"),
            "unit.code": T("房号", "Unit"),
            "amount": T("退款金额", "Amount"),
            "method": T("退款方式", "Method"),
            "reason": T("退款原因", "Reason"),
        },
        choices={"method": PAYMENT_METHODS},
        lookups=[UNIT_LOOKUP],
        view_mixins=(RefundRules,),
        api_mixins=(RefundRules,),
        descriptions={"amount": T("不能超过该房屋的预存余额", "At most the unit's prepaid balance")},
    )
)


# --- dunning notices -------------------------------------------------------------------------
class DunningRules:
    def pre_add(self, item):
        raise FieldErrors({"stage": [str(MSG_NOTICE_RECORD)]})

    def pre_update(self, item):
        from sqlalchemy import inspect

        state = inspect(item)
        for col in ("stage", "amount_due", "unit_id", "cycle_due_date", "letter"):
            if state.attrs[col].history.has_changes():
                raise FieldErrors({col: [str(MSG_NOTICE_RECORD)]})

    def pre_delete(self, item):
        raise FieldErrors({"id": [str(MSG_NOTICE_RECORD)]})


class DunningViewMixin(DunningRules):
    @expose("/letter/<int:pk>")
    @has_access
    def letter(self, pk):
        from jobs.dunning import notice_lines

        notice = self.datamodel.get(pk, self._base_filters)
        if notice is None:
            abort(404)
        lines = notice_lines(self.datamodel.session, notice)
        return self.render_template(
            "desk/dunning_letter.html",
            n=notice,
            stage=DUNNING_STAGES[notice.stage],
            lines=lines,
            amount_words=amount_in_words(notice.amount_due),
            company=current_app.config.get("FEES_COMPANY_NAME", "物业服务中心"),
            phone=current_app.config.get("FEES_COMPANY_PHONE", ""),
        )


register(
    Resource(
        name="dunning_notice",
        model=DunningNotice,
        label=T("催缴通知", "Dunning notices"),
        category="fees",
        deletable=False,
        icon="fa-envelope-o",
        list_columns=[
            "issued_on",
            "estate.name",
            "unit.code",
            "owner.name",
            "stage",
            "cycle_due_date",
            "oldest_period",
            "amount_due",
            "sent",
        ],
        edit_columns=["sent"],
        add_columns=[],
        show_columns=[
            "issued_on",
            "estate.name",
            "unit.code",
            "owner.name",
            "stage",
            "cycle_due_date",
            "oldest_period",
            "amount_due",
            "sent",
            "letter",
            "created_at",
            "changed_at",
            "changed_by.username",
        ],
        search_columns=["issued_on", "stage", "sent", "cycle_due_date", "oldest_period"],
        order=("id", "desc"),
        order_columns=["issued_on", "stage", "cycle_due_date", "oldest_period", "amount_due", "sent", "id"],
        labels={
            "issued_on": T("发出日期", "Issued on"),
            "estate.name": T("小区", "Estate"),
            "unit.code": T("房号", "Unit"),
            "owner.name": T("业主", "Owner"),
            "stage": T("阶段", "Stage"),
            "cycle_due_date": T("最早欠费期限", "Oldest due date"),
            "oldest_period": T("最早欠费账期", "Oldest period"),
            "amount_due": T("欠费金额", "Amount due"),
            "sent": T("已送达", "Delivered"),
            "letter": T("通知书", "Letter"),
        },
        choices={"stage": DUNNING_STAGES},
        view_mixins=(DunningViewMixin,),
        api_mixins=(DunningRules,),
        show_template="desk/dunning_notice_show.html",
    )
)


# --- reports ---------------------------------------------------------------------------------
class ReportArgsError(Exception):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field, self.message = field, message


def _period_arg(name: str, default: str) -> str:
    value = (request.args.get(name) or default).strip()
    try:
        month_bounds(value)
    except FieldErrors:
        raise ReportArgsError(name, str(T("账期格式为 YYYY-MM", "The period is YYYY-MM"))) from None
    if len(value) != 7:
        raise ReportArgsError(name, str(T("账期格式为 YYYY-MM", "The period is YYYY-MM")))
    return value


def report_args() -> dict:
    today = dt.datetime.now(_tz()).date()
    first = _period_arg("from", f"{today.year}-01")
    last = _period_arg("to", f"{today:%Y-%m}")
    if first > last:
        raise ReportArgsError("to", str(T("结束账期不能早于开始账期", "The end is before the start")))
    estate = request.args.get("estate") or None
    if estate is not None:
        if not estate.isdigit() or len(estate) > 18:
            raise ReportArgsError("estate", str(T("应为小区编号", "The estate's id")))
        estate = int(estate)
    raw = request.args.get("as_of")
    try:
        as_of = dt.date.fromisoformat(raw) if raw else today
    except ValueError:
        raise ReportArgsError("as_of", str(T("日期格式为 YYYY-MM-DD", "The date is YYYY-MM-DD"))) from None
    return {"from": first, "to": last, "estate": estate, "as_of": as_of}


def _rate(collected: Decimal, billed: Decimal) -> float | None:
    if not billed:
        return None
    return float((collected / billed).quantize(Decimal("0.0001")))


def collection_figures(session, first: str, last: str, estate_id: int | None = None) -> dict:
    """Billed (amount + unwaived late fee) and collected (paid) per month, estate and item, from
    one GROUP BY; the three views are sums of its rows."""
    billed = Bill.amount + Bill.late_fee - Bill.late_fee_waived
    q = (
        select(
            Bill.period,
            Bill.estate_id,
            Bill.item_id,
            func.sum(billed).label("billed"),
            func.sum(Bill.paid_amount).label("collected"),
            func.count().label("bills"),
        )
        .where(Bill.status != "void", Bill.period >= first, Bill.period <= last)
        .group_by(Bill.period, Bill.estate_id, Bill.item_id)
    )
    if estate_id:
        q = q.where(Bill.estate_id == estate_id)
    rows = session.execute(q).all()
    estates = dict(
        session.execute(select(Estate.id, Estate.name).where(Estate.id.in_({r.estate_id for r in rows}))).all()
    )
    items = dict(
        session.execute(select(FeeItem.id, FeeItem.name).where(FeeItem.id.in_({r.item_id for r in rows}))).all()
    )

    def roll(key_of, label_of):
        acc: dict = {}
        for r in rows:
            k = key_of(r)
            a = acc.setdefault(k, {"key": k, "label": label_of(k), "billed": Decimal(0), "collected": Decimal(0)})
            a["billed"] += Decimal(r.billed)
            a["collected"] += Decimal(r.collected)
        out = sorted(acc.values(), key=lambda a: str(a["label"]))
        for a in out:
            a["outstanding"] = a["billed"] - a["collected"]
            a["rate"] = _rate(a["collected"], a["billed"])
        return out

    total_billed = sum((Decimal(r.billed) for r in rows), Decimal(0))
    total_collected = sum((Decimal(r.collected) for r in rows), Decimal(0))
    by_month = roll(lambda r: r.period, lambda k: k)
    by_month.sort(key=lambda a: a["key"])
    return {
        "from": first,
        "to": last,
        "estate": estate_id,
        "billed": total_billed,
        "collected": total_collected,
        "rate": _rate(total_collected, total_billed),
        "by_month": by_month,
        "by_estate": roll(lambda r: r.estate_id, lambda k: estates.get(k, k)),
        "by_item": roll(lambda r: r.item_id, lambda k: items.get(k, k)),
    }


def income_figures(session, first: str, last: str, estate_id: int | None = None) -> dict:
    """Money received (valid payments) in the months' local dates, by method, and by fee item x
    method from the allocations; what no bill took yet is prepaid (预收)."""
    tz = _tz()
    start = dt.datetime.combine(month_bounds(first)[0], dt.time(0), tzinfo=tz)
    end = dt.datetime.combine(month_bounds(last)[1], dt.time(0), tzinfo=tz)
    where = [Payment.status == "valid", Payment.paid_at >= start, Payment.paid_at < end]
    if estate_id:
        where.append(Payment.estate_id == estate_id)
    by_method = {
        m: (Decimal(total), n)
        for m, total, n in session.execute(
            select(Payment.method, func.sum(Payment.amount), func.count()).where(*where).group_by(Payment.method)
        ).all()
    }
    cells = session.execute(
        select(Bill.item_id, Payment.method, func.sum(PaymentAllocation.amount))
        .join(Payment, Payment.id == PaymentAllocation.payment_id)
        .join(Bill, Bill.id == PaymentAllocation.bill_id)
        .where(*where, PaymentAllocation.reversed_at.is_(None))
        .group_by(Bill.item_id, Payment.method)
    ).all()
    items = dict(session.execute(select(FeeItem.id, FeeItem.name).where(FeeItem.id.in_({c[0] for c in cells}))).all())
    methods = list(PAYMENT_METHODS)
    table: dict = {}
    for item_id, method, total in cells:
        row = table.setdefault(item_id, {"label": items.get(item_id, item_id), **{m: Decimal(0) for m in methods}})
        row[method] = row.get(method, Decimal(0)) + Decimal(total)
    rows = sorted(table.values(), key=lambda r: str(r["label"]))
    prepaid = {"label": str(T("预收款（未冲抵）", "Prepaid (not yet allocated)")), **{m: Decimal(0) for m in methods}}
    for m in methods:
        allocated = sum((r[m] for r in rows), Decimal(0))
        prepaid[m] = by_method.get(m, (Decimal(0), 0))[0] - allocated
    rows.append(prepaid)
    for r in rows:
        r["total"] = sum((r[m] for m in methods), Decimal(0))
    return {
        "from": first,
        "to": last,
        "methods": [{"method": m, "label": str(PAYMENT_METHODS[m])} for m in methods],
        "by_method": [
            {
                "method": m,
                "label": str(PAYMENT_METHODS[m]),
                "amount": by_method.get(m, (Decimal(0), 0))[0],
                "payments": by_method.get(m, (Decimal(0), 0))[1],
            }
            for m in methods
        ],
        "by_item": rows,
        "total": sum((v[0] for v in by_method.values()), Decimal(0)),
    }


def _jsonable(value):
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, T):
        return str(value)
    return value


def report_charts(col: dict, aging: list[dict], income: dict) -> dict:
    from views.reports import bar_chart_svg

    def pct(r):
        return round((r or 0) * 100, 1)

    bucket_totals = [(str(label), float(sum((row[key] for row in aging), Decimal(0)))) for key, label, _, _ in BUCKETS]
    return {
        "by_month": bar_chart_svg(
            [(a["label"][2:], pct(a["rate"])) for a in col["by_month"]],
            title=str(T("各月收缴率（%）", "Collection rate per month (%)")),
        ),
        "by_item": bar_chart_svg(
            [(str(a["label"]), pct(a["rate"])) for a in col["by_item"]],
            title=str(T("各收费项目收缴率（%）", "Collection rate per item (%)")),
            horizontal=True,
            color="#4a9a5a",
        ),
        "aging": bar_chart_svg(
            bucket_totals,
            title=str(T("欠费账龄（元）", "Arrears by age (CNY)")),
            width=420,
            height=220,
            color="#b4543c",
        ),
        "income": bar_chart_svg(
            [(m["label"], float(m["amount"])) for m in income["by_method"]],
            title=str(T("各付款方式收入（元）", "Income by method (CNY)")),
            horizontal=True,
            color="#8a6db4",
        ),
    }


def _workbook(sheets: list[tuple[str, list[str], list[list]]], name: str):
    from openpyxl import Workbook
    from openpyxl.styles import Font

    wb = Workbook()
    wb.remove(wb.active)
    for title, header, rows in sheets:
        ws = wb.create_sheet(title=title[:31])
        ws.append(header)
        for cell in ws[1]:
            cell.font = Font(bold=True)
        for row in rows:
            ws.append([float(v) if isinstance(v, Decimal) else v for v in row])
    from views.excel import workbook_bytes

    buf = io.BytesIO(workbook_bytes(wb))
    stamp = dt.datetime.now(_tz()).strftime("%Y%m%d-%H%M")
    return send_file(
        buf,
        mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        as_attachment=True,
        download_name=f"{name}-{stamp}.xlsx",
    )


def _rate_text(rate):
    return None if rate is None else round(rate * 100, 2)


def report_workbook(session, args: dict, with_units: bool):
    col = collection_figures(session, args["from"], args["to"], args["estate"])
    income = income_figures(session, args["from"], args["to"], args["estate"])
    head = [
        str(T("项目", "Key")),
        str(T("应收", "Billed")),
        str(T("实收", "Collected")),
        str(T("欠收", "Outstanding")),
        str(T("收缴率%", "Rate %")),
    ]

    def rows_of(block):
        return [[str(a["label"]), a["billed"], a["collected"], a["outstanding"], _rate_text(a["rate"])] for a in block]

    bucket_head = [str(label) for _, label, _, _ in BUCKETS]
    sheets = [
        (str(T("按月收缴率", "By month")), head, rows_of(col["by_month"])),
        (str(T("按小区收缴率", "By estate")), head, rows_of(col["by_estate"])),
        (str(T("按项目收缴率", "By item")), head, rows_of(col["by_item"])),
        (
            str(T("收入", "Income")),
            [str(T("收费项目", "Item")), *[m["label"] for m in income["methods"]], str(T("合计", "Total"))],
            [[str(r["label"]), *[r[m["method"]] for m in income["methods"]], r["total"]] for r in income["by_item"]],
        ),
        (
            str(T("欠费账龄（小区）", "Aging by estate")),
            [
                str(T("小区", "Estate")),
                str(T("户数", "Units")),
                *bucket_head,
                str(T("合计", "Total")),
                str(T("其中争议", "Disputed")),
            ],
            [
                [r["estate_name"], r["units"], *[r[k] for k, _, _, _ in BUCKETS], r["total"], r["disputed"]]
                for r in arrears_summary(session, args["as_of"], estate_id=args["estate"])
            ],
        ),
    ]
    if with_units:
        units = arrears_by_unit(session, args["as_of"], estate_id=args["estate"], limit=200_000)
        sheets.append(
            (
                str(T("欠费明细", "Arrears by unit")),
                [
                    str(T("小区", "Estate")),
                    str(T("房号", "Unit")),
                    str(T("业主", "Owner")),
                    str(T("最早账期", "From")),
                    str(T("逾期天数", "Days late")),
                    *bucket_head,
                    str(T("合计", "Total")),
                    str(T("其中争议", "Disputed")),
                ],
                [
                    [
                        u["estate_name"],
                        u["unit_code"],
                        u["owner_name"] or "",
                        u["first_period"],
                        u["days_past_due"],
                        *[u[k] for k, _, _, _ in BUCKETS],
                        u["total"],
                        u["disputed"],
                    ]
                    for u in units
                ],
            )
        )
    return _workbook(sheets, "fee-report")


def sees_unit_arrears() -> bool:
    """Arrears per unit and owner are owners' financial data: for those who may read bills."""
    return "read" in rights("bill")


class CollectionReportViewMixin:
    def _args_or_400(self):
        try:
            return report_args()
        except ReportArgsError as err:
            abort(400, description=f"{err.field}: {err.message}")

    @expose("/report")
    @has_access
    def report(self):
        args = self._args_or_400()
        session = self.datamodel.session
        col = collection_figures(session, args["from"], args["to"], args["estate"])
        income = income_figures(session, args["from"], args["to"], args["estate"])
        aging = arrears_summary(session, args["as_of"], estate_id=args["estate"])
        return self.render_template(
            "desk/fee_report.html",
            args=args,
            col=col,
            income=income,
            aging=aging,
            buckets=BUCKETS,
            charts=report_charts(col, aging, income),
            units_visible=sees_unit_arrears(),
        )

    @expose("/arrears")
    @has_access
    def arrears(self):
        if not sees_unit_arrears():
            abort(403)
        args = self._args_or_400()
        page = request.args.get("page", "0")
        if not page.isdigit() or len(page) > 6:
            abort(400, description="page")
        page = int(page)
        size = 100
        session = self.datamodel.session
        rows = arrears_by_unit(session, args["as_of"], estate_id=args["estate"], limit=size, offset=page * size)
        total = arrears_count(session, args["as_of"], estate_id=args["estate"])
        return self.render_template(
            "desk/fee_arrears.html", args=args, rows=rows, buckets=BUCKETS, page=page, size=size, total=total
        )

    @expose("/report.xlsx")
    @has_access
    def report_xlsx(self):
        args = self._args_or_400()
        return report_workbook(self.datamodel.session, args, sees_unit_arrears())


class CollectionReportApiMixin:
    def _args(self):
        try:
            return report_args(), None
        except ReportArgsError as err:
            return None, self.response_400(message={err.field: [err.message]})

    @expose("/report", methods=["GET"])
    @protect()
    @permission_name("report")
    def report(self):
        """Collection rate per month, estate and item; income by item and method; arrears aging
        per estate.
        ---
        get:
          parameters:
          - in: query
            name: from
            schema:
              type: string
            description: First period (YYYY-MM); default January of this year
          - in: query
            name: to
            schema:
              type: string
            description: Last period (YYYY-MM); default this month
          - in: query
            name: estate
            schema:
              type: integer
          - in: query
            name: as_of
            schema:
              type: string
              format: date
            description: Arrears as of this date; default today
          responses:
            200:
              description: The figures
            400:
              description: A bad argument, named in the message
            401:
              $ref: '#/components/responses/401'
            403:
              $ref: '#/components/responses/403'
        """
        args, bad = self._args()
        if bad is not None:
            return bad
        session = self.datamodel.session
        return self.response(
            200,
            collection=_jsonable(collection_figures(session, args["from"], args["to"], args["estate"])),
            income=_jsonable(income_figures(session, args["from"], args["to"], args["estate"])),
            aging=_jsonable(arrears_summary(session, args["as_of"], estate_id=args["estate"])),
            as_of=args["as_of"].isoformat(),
        )

    @expose("/arrears", methods=["GET"])
    @protect()
    @permission_name("arrears")
    def arrears(self):
        """Arrears per unit and owner in aging buckets (0-30, 31-90, 91-180, >180 days past due);
        disputed amounts flagged. Only for roles that may read bills.
        ---
        get:
          parameters:
          - in: query
            name: as_of
            schema:
              type: string
              format: date
          - in: query
            name: estate
            schema:
              type: integer
          - in: query
            name: page
            schema:
              type: integer
          - in: query
            name: page_size
            schema:
              type: integer
          responses:
            200:
              description: The rows, biggest arrears first
            400:
              description: A bad argument
            403:
              $ref: '#/components/responses/403'
        """
        if not sees_unit_arrears():
            return self.response(403, message="Forbidden")
        args, bad = self._args()
        if bad is not None:
            return bad
        page, size = request.args.get("page", "0"), request.args.get("page_size", "100")
        if not (page.isdigit() and size.isdigit() and len(page) < 7 and 1 <= int(size) <= 1000):
            return self.response_400(message={"page": ["page >= 0, 1 <= page_size <= 1000"]})
        session = self.datamodel.session
        rows = arrears_by_unit(
            session, args["as_of"], estate_id=args["estate"], limit=int(size), offset=int(page) * int(size)
        )
        return self.response(
            200,
            as_of=args["as_of"].isoformat(),
            count=arrears_count(session, args["as_of"], estate_id=args["estate"]),
            result=_jsonable(rows),
        )


register(
    Resource(
        name="collection_report",
        model=Bill,
        label=T("收费报表", "Fee reports"),
        category="fees",
        icon="fa-bar-chart",
        # Bill lines without unit or owner: no personal data (the reports are the point).
        list_columns=["period", "item.name", "amount", "paid_amount", "status"],
        show_columns=["period", "item.name", "amount", "paid_amount", "late_fee", "status"],
        search_columns=["period", "status"],
        writable=False,
        records=False,
        menu_route="report",
        order=("id", "desc"),
        order_columns=["period", "amount", "paid_amount", "status", "id"],
        labels={
            "period": T("账期", "Period"),
            "item.name": T("收费项目", "Fee item"),
            "amount": T("应收金额", "Amount"),
            "paid_amount": T("已收金额", "Paid"),
            "late_fee": T("滞纳金", "Late fee"),
            "status": T("状态", "Status"),
        },
        choices={"status": BILL_STATUSES},
        view_mixins=(CollectionReportViewMixin,),
        api_mixins=(CollectionReportApiMixin,),
    )
)
