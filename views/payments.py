"""Payments and receipts, refunds, dunning notices and the fee reports (DESIGN.md item 7, part 2):
a payment recorded (screen or ``POST /api/v1/payment/``, optionally to chosen bills), voided, its
receipt printed (收款收据); refunds of prepaid balance; the dunning job's notices, their letters
printed and marked delivered; the fee reports (figures: models/reports.py), the arrears per unit
and owner only for those who may read bills. Rules in models/, workflow steps declared here."""

from __future__ import annotations

import datetime as dt
import io
import json
from decimal import Decimal

from flask import abort, request, send_file, url_for
from flask_appbuilder.baseviews import expose
from flask_appbuilder.security.decorators import has_access, permission_name, protect
from sqlalchemy.orm import object_session

from app.i18n import T
from models.archives import Unit
from models.arrears import BUCKETS
from models.errors import FieldErrors
from models.fees import BILL_STATUSES, Bill
from models.payments import (
    DUNNING_STAGES,
    PAYMENT_METHODS,
    PAYMENT_STATUSES,
    DunningNotice,
    Payment,
    Refund,
    allocations_of,
    letter_data,
    parse_collect_bills,
    payment_answer,
    prepaid_balance,
    receipt_data,
    record_payment,
    record_payment_from,
    refund,
)
from models.payments import collect_sheet as unit_collect_sheet
from models.reports import arrears_page, chart_series, jsonable, report_args, report_figures, report_workbook
from views.archives import UNIT_LOOKUP
from views.base import rights
from views.fees import ALLOCATED, AUDIT, LABELS, linked_rows
from views.registry import Action, Input, Link, MenuEntry, Related, Resource, Section, register
from views.scope import OutOfScope, admit, scoped_estate


def _spec(summary: str, params: list[tuple[str, str, str]], path: str | None = None) -> str:
    """A GET endpoint's OpenAPI docstring (FAB reads the YAML after ``---``): its query
    parameters (name, type, description) or its path parameter."""
    parameters = [{"in": "query", "name": n, "schema": {"type": t}, "description": d} for n, t, d in params]
    if path:
        parameters.append({"in": "path", "name": path, "required": True, "schema": {"type": "integer"}})
    responses = {"200": {"description": summary}, "400": {"description": "A bad argument, named in the message"}}
    responses |= {code: {"$ref": f"#/components/responses/{code}"} for code in ("401", "403", "404")}
    spec = {"get": {"summary": summary, "parameters": parameters, "responses": responses}}
    return f"{summary}\n---\n{json.dumps(spec)}"


# --- payments --------------------------------------------------------------------------------
class PaymentRules:
    def pre_update(self, item):
        item.refuse_change()


class PaymentViewMixin(PaymentRules):
    # The screen's payment form allocates oldest first (the rest is prepaid); bills are chosen by
    # ticking them on the collect form (收款, views/collect.py), never by typing their ids.
    def pre_add(self, item):
        session = self.datamodel.session
        try:
            record_payment(session, item.unit, item.amount, item.method, None, payment=item)
        except FieldErrors:
            session.rollback()
            raise

    @expose("/receipt/<int:pk>")
    @has_access
    def receipt(self, pk):
        payment = self.datamodel.get(pk, self._base_filters)
        if payment is None:
            abort(404)
        # Opened right after collecting (views/collect.py): it says so, and leads back to the unit.
        unit_url = url_for("UnitView.show", pk=payment.unit_id) if "read" in rights("unit") else None
        return self.render_template(
            "desk/payment_receipt.html",
            r=receipt_data(self.datamodel.session, payment),
            saved=request.args.get("saved") == "1",
            unit_url=unit_url,
        )


def scoped_unit(session, unit_id: int):
    """A unit of the user's estates, or None (another estate's is not there: 404)."""
    from sqlalchemy import select

    from views.registry import REGISTRY
    from views.scope import clause_for

    if not 0 < unit_id < 2**63:
        return None
    stmt = select(Unit).where(Unit.id == unit_id)
    clause = clause_for(REGISTRY["unit"])
    return session.execute(stmt if clause is None else stmt.where(clause)).scalar()


COLLECT_FIELDS = {"bills", "extra", "method", "paid_on", "payer_name", "reference", "note"}
COLLECT_SPEC = {
    "post": {
        "summary": "Collect a unit's bills (收款): the ticked bills, as read, plus any amount paid in advance",
        "parameters": [{"in": "path", "name": "unit_id", "required": True, "schema": {"type": "integer"}}],
        "requestBody": {
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "bills": {
                                "type": "array",
                                "description": "bill ids, or objects {id, version, due} as read from GET collect/<unit_id>: "
                                "each version and amount due given is checked (a bill paid or changed since: 409)",
                                "items": {"oneOf": [{"type": "integer"}, {"type": "object"}]},
                            },
                            "extra": {"type": "string", "description": "paid in advance beyond the bills, e.g. 100.00"},
                            "method": {"type": "string", "enum": list(PAYMENT_METHODS)},
                            "paid_on": {"type": "string", "format": "date", "description": "default today"},
                            "payer_name": {"type": "string"},
                            "reference": {"type": "string"},
                            "note": {"type": "string"},
                        },
                        "required": ["method"],
                    }
                }
            }
        },
        "responses": {
            "201": {"description": "Recorded: the receipt's data"},
            "400": {"$ref": "#/components/responses/400"},
            "401": {"$ref": "#/components/responses/401"},
            "403": {"$ref": "#/components/responses/403"},
            "404": {"$ref": "#/components/responses/404"},
            "409": {"description": "A ticked bill was paid or changed since it was read (message names bills)"},
            "422": {"$ref": "#/components/responses/422"},
        },
    }
}


class PaymentApiMixin(PaymentRules):
    def __init__(self):
        # Routes beside the records fold into the matrix's rights on ``payment`` (views/base.py).
        self.method_permission_name = {**self.method_permission_name, "collect": "write", "collect_sheet": "read"}
        super().__init__()

    def post_headless(self):
        """Record a payment (models.payments.record_payment_from): the receipt's data in the answer."""
        from views.datamodel import DeskInterface

        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return self.response_400(message="Request is not JSON")
        session = self.datamodel.session
        try:
            # The unit (and any record named) as on every write: of the user's estates (403).
            bad = self._relation_errors({k: v for k, v in body.items() if k == "unit"})
            if bad:
                return self.response_422(message=bad)
            payment = record_payment_from(session, body)
            admit(self.resource, payment)
            DeskInterface._check_text(payment)
            session.commit()
        except FieldErrors as e:
            session.rollback()
            return self.response_422(message=e.errors)
        except OutOfScope as e:
            session.rollback()
            return self.response(403, message=str(e))
        return self.response(201, id=payment.id, version=payment.version, **payment_answer(session, payment))

    @expose("/<int:pk>/receipt", methods=["GET"])
    @protect()
    @permission_name("receipt")
    def receipt(self, pk):
        payment = self.datamodel.get(pk, self._base_filters)
        if payment is None:
            return self.response_404()
        return self.response(200, id=payment.id, **payment_answer(self.datamodel.session, payment))

    receipt.__doc__ = _spec("A payment's receipt: number, allocations, amount in figures and in capitals", [], "pk")

    @expose("/balance/<int:unit_id>", methods=["GET"])
    @protect()
    @permission_name("balance")
    def balance(self, unit_id):
        session = self.datamodel.session
        if scoped_unit(session, unit_id) is None:
            return self.response_404()
        return self.response(200, unit=unit_id, prepaid_balance=str(prepaid_balance(session, unit_id)))

    balance.__doc__ = _spec("A unit's prepaid balance (valid payments - active allocations - refunds)", [], "unit_id")

    @expose("/collect/<int:unit_id>", methods=["GET"])
    @protect()
    @permission_name("collect_sheet")
    def collect_sheet(self, unit_id):
        session = self.datamodel.session
        unit = scoped_unit(session, unit_id)
        if unit is None:
            return self.response_404()
        sheet = unit_collect_sheet(session, unit)
        bills = [
            {
                **{k: str(v) if isinstance(v, Decimal) else v for k, v in b.items()},
                "due_date": b["due_date"].isoformat(),
                "due": str(b["outstanding"]),
            }
            for b in sheet["bills"]
        ]
        return self.response(
            200,
            unit={"id": unit.id, "code": unit.code, "estate": unit.estate.name},
            owner=sheet["owner"],
            prepaid_balance=str(sheet["prepaid"]),
            bills=bills,
            methods={k: str(v) for k, v in PAYMENT_METHODS.items()},
            today=sheet["today"].isoformat(),
        )

    collect_sheet.__doc__ = _spec(
        "What collecting a unit shows: its unpaid bills oldest first (version and amount due to send back), "
        "which are ticked by default, the prepaid balance, the methods",
        [],
        "unit_id",
    )

    @expose("/collect/<int:unit_id>", methods=["POST"])
    @protect()
    @permission_name("collect")
    def collect(self, unit_id):
        from models.errors import Conflict
        from views.collect import save_collected

        session = self.datamodel.session
        unit = scoped_unit(session, unit_id)
        if unit is None:
            return self.response_404()
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return self.response_400(message="Request is not JSON")
        unknown = sorted(set(body) - COLLECT_FIELDS)
        if unknown:
            return self.response_422(message={k: ["Unknown field."] for k in unknown})
        try:
            data = {k: body.get(k) for k in COLLECT_FIELDS - {"bills"}}
            payment = save_collected(self.datamodel, unit, {**data, "bills": parse_collect_bills(body.get("bills"))})
        except FieldErrors as e:
            session.rollback()
            return self.response_422(message=e.errors)
        except Conflict as e:
            session.rollback()
            field = getattr(e, "field", None)
            return self.response(409, message={field: [str(e)]} if field else str(e))
        except OutOfScope as e:
            return self.response(403, message=str(e))
        return self.response(201, id=payment.id, version=payment.version, **payment_answer(session, payment))

    collect.__doc__ = f"Collect a unit's bills\n---\n{json.dumps(COLLECT_SPEC)}"


PAYMENT_LABELS = {
    **LABELS,
    "payer_name": T("交款人", "Payer"),
    "reference": T("交易流水号", "Transaction no."),
    "void_reason": T("作废原因", "Void reason"),
    "voided_at": T("作废时间", "Voided at"),
    "unit_prepaid_balance": T("该房屋预存余额", "The unit's prepaid balance"),
    "bills": T("指定账单（可选）", "Bills (optional)"),
}
PAYMENT_HEAD = ["receipt_no", "paid_at", "estate.name", "unit.code", "owner.name", "payer_name", "amount", "method"]
VOID = Action(
    "void",
    T("作废", "Void"),
    method="void",
    inputs=[Input("reason", T("作废原因", "Reason"))],
    when=lambda p: p.status == "valid",
    style="danger",
    confirm=T("作废后冲抵的账单重新欠费，确定作废？", "The bills it settled will be owed again. Void it?"),
    description=T("作废收款（写明原因）", "Void a payment with a reason: its allocations reversed, nothing deleted"),
    result=lambda p, _returned: payment_answer(object_session(p), p),
)
register(
    Resource(
        name="payment",
        model=Payment,
        label=T("收款", "Payments"),
        category="fees",
        estate="estate_id",
        deletable=False,
        icon="fa-money",
        list_columns=[*PAYMENT_HEAD[:4], "payer_name", "amount", "method", "status"],
        # A financial record: no edit form, no PUT, no delete (it is voided with a reason).
        edit_columns=[],
        add_columns=["unit", "amount", "method", "payer_name", "reference", "note"],
        sections=[
            Section(T("收款", "Payment"), [*PAYMENT_HEAD, "reference", "status", "unit_prepaid_balance", "note"]),
            Section(T("作废", "Void"), ["void_reason", "voided_at"], when=lambda p: p.status == "void"),
            AUDIT,
        ],
        search_columns=["receipt_no", "paid_at", "method", "status", "payer_name", "reference"],
        order_columns=["receipt_no", "paid_at", "payer_name", "amount", "method", "status", "id"],
        labels=PAYMENT_LABELS,
        choices={"method": PAYMENT_METHODS, "status": PAYMENT_STATUSES},
        lookups=[UNIT_LOOKUP],
        view_mixins=(PaymentViewMixin,),
        api_mixins=(PaymentApiMixin,),
        actions=[VOID],
        links=[Link(T("打印收据", "Print receipt"), "receipt", new_tab=True)],
        related=[
            Related(
                T("冲抵账单", "Bills settled"),
                rows=lambda p: linked_rows("bill", allocations_of(object_session(p), p.id), "bill"),
                columns=["period", "item", "amount", "reversed_at"],
                labels={**LABELS, "amount": ALLOCATED},
            )
        ],
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


register(
    Resource(
        name="refund",
        model=Refund,
        label=T("退款", "Refunds"),
        category="fees",
        estate="estate_id",
        deletable=False,
        icon="fa-undo",
        list_columns=["refunded_at", "unit.code", "amount", "method", "reason"],
        add_columns=["unit", "amount", "method", "reason"],  # a financial record: recorded once, never edited
        search_columns=["refunded_at", "method", "reason"],
        order_columns=["refunded_at", "amount", "method", "id"],
        labels={
            **LABELS,
            "refunded_at": T("退款时间", "Refunded at"),
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
class DunningViewMixin:
    @expose("/letter/<int:pk>")
    @has_access
    def letter(self, pk):
        notice = self.datamodel.get(pk, self._base_filters)
        if notice is None:
            abort(404)
        return self.render_template("desk/dunning_letter.html", **letter_data(notice, _notice_lines(notice)))


def _notice_lines(notice) -> list[dict]:
    """The unpaid, undisputed bills the notice is about (jobs/dunning.py)."""
    from jobs.dunning import notice_lines

    return notice_lines(object_session(notice), notice)


NOTICE_HEAD = ["issued_on", "estate.name", "unit.code", "owner.name", "stage", "cycle_due_date", "oldest_period"]
NOTICE_HEAD += ["amount_due", "sent"]
NOTICE_AUDIT = ["created_at", "changed_at", "changed_by.username"]  # made by the job: no creator to name
NOTICE_LINES = {k: LABELS[k] for k in ("period", "item", "due_date")} | {"amount": T("欠费金额", "Amount due")}
register(
    Resource(
        name="dunning_notice",
        model=DunningNotice,
        label=T("催缴通知", "Dunning notices"),
        category="fees",
        estate="estate_id",
        deletable=False,
        icon="fa-envelope-o",
        list_columns=NOTICE_HEAD,
        edit_columns=["sent"],
        add_columns=[],
        # The page: the notice and its arrears (the letter is its print form); the API: the letter too.
        sections=[Section(T("催缴通知", "Dunning notice"), NOTICE_HEAD), Section(AUDIT.title, NOTICE_AUDIT)],
        show_columns=[*NOTICE_HEAD, "letter", *NOTICE_AUDIT],
        search_columns=["issued_on", "stage", "sent", "cycle_due_date", "oldest_period"],
        order_columns=["issued_on", "stage", "cycle_due_date", "oldest_period", "amount_due", "sent", "id"],
        labels={
            **LABELS,
            "issued_on": T("发出日期", "Issued on"),
            "stage": T("阶段", "Stage"),
            "cycle_due_date": T("最早欠费期限", "Oldest due date"),
            "oldest_period": T("最早欠费账期", "Oldest period"),
            "amount_due": T("欠费金额", "Amount due"),
            "sent": T("已送达", "Delivered"),
            "letter": T("通知书", "Letter"),
        },
        choices={"stage": DUNNING_STAGES},
        view_mixins=(DunningViewMixin,),
        actions=[
            Action(
                "mark_sent",
                T("标记已送达", "Mark delivered"),
                method="mark_sent",
                when=lambda n: not n.sent,
                style="success",
                description=T("标记催缴通知书已送达业主", "Mark the notice delivered to the owner"),
                result=lambda n, _returned: {"sent": n.sent},
            )
        ],
        links=[Link(T("打印催缴通知书", "Print the letter"), "letter", new_tab=True)],
        related=[
            Related(T("欠费明细", "Arrears"), rows=_notice_lines, columns=[*NOTICE_LINES], labels=NOTICE_LINES)
        ],
    )
)


# --- reports ---------------------------------------------------------------------------------
def report_charts(figures: dict) -> dict:
    """The report's charts (views/reports.py ``chart``: drawn by the product's own ECharts)."""
    from views.reports import chart

    return {name: chart(**spec) for name, spec in chart_series(figures).items()}


def sees_unit_arrears() -> bool:
    """Arrears per unit and owner are owners' financial data: for those who may read bills."""
    return "read" in rights("bill")


def _paging(args) -> tuple[int, int]:
    page, size = args.get("page", "0"), args.get("page_size", "100")
    if not (page.isdigit() and size.isdigit() and len(page) < 7 and 1 <= int(size) <= 1000):
        raise FieldErrors({"page": ["page >= 0, 1 <= page_size <= 1000"]})
    return int(page), int(size)


def scoped_report_args(source) -> dict:
    """The report's arguments, its estate kept to the user's (views/scope.py)."""
    args = report_args(source)
    args["estate"] = scoped_estate(args["estate"])
    return args


class CollectionReportViewMixin:
    def _args_or_400(self, paged: bool = False):
        try:
            args = scoped_report_args(request.args)
            return (args, *_paging({"page": request.args.get("page", "0")})) if paged else args
        except FieldErrors as err:
            abort(400, description=str(err))

    @expose("/report")
    @has_access
    def report(self):
        args = self._args_or_400()
        figures = report_figures(self.datamodel.session, args)
        return self.render_template(
            "desk/fee_report.html",
            args=args,
            col=figures["collection"],
            income=figures["income"],
            aging=figures["aging"],
            buckets=BUCKETS,
            charts=report_charts(figures),
            units_visible=sees_unit_arrears(),
        )

    @expose("/arrears")
    @has_access
    def arrears(self):
        if not sees_unit_arrears():
            abort(403)
        args, page, size = self._args_or_400(paged=True)
        rows, total = arrears_page(self.datamodel.session, args, page, size)
        from views.reports import arrears_aging

        return self.render_template(
            "desk/fee_arrears.html", args=args, rows=rows, buckets=BUCKETS, page=page, size=size, total=total,
            **arrears_aging(self.datamodel.session, args),
        )

    @expose("/report.xlsx")
    @has_access
    def report_xlsx(self):
        from views.fields import office_zone

        data = report_workbook(self.datamodel.session, self._args_or_400(), sees_unit_arrears())
        return send_file(
            io.BytesIO(data),
            mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            as_attachment=True,
            download_name=f"fee-report-{dt.datetime.now(office_zone()):%Y%m%d-%H%M}.xlsx",
        )


REPORT_PARAMS = [
    ("from", "string", "First period (YYYY-MM); default January of this year"),
    ("to", "string", "Last period (YYYY-MM); default this month"),
    ("estate", "integer", "An estate's id"),
    ("as_of", "string", "Arrears as of this date (YYYY-MM-DD); default today"),
]


class CollectionReportApiMixin:
    @expose("/report", methods=["GET"])
    @protect()
    @permission_name("report")
    def report(self):
        try:
            args = scoped_report_args(request.args)
        except FieldErrors as err:
            return self.response_400(message=err.errors)
        figures = jsonable(report_figures(self.datamodel.session, args))
        return self.response(200, **figures, as_of=args["as_of"].isoformat())

    report.__doc__ = _spec(
        "Collection rate per month, estate and item; income by item and method; arrears aging per estate", REPORT_PARAMS
    )

    @expose("/arrears", methods=["GET"])
    @protect()
    @permission_name("arrears")
    def arrears(self):
        if not sees_unit_arrears():
            return self.response(403, message="Forbidden")
        try:
            args = scoped_report_args(request.args)
            rows, count = arrears_page(self.datamodel.session, args, *_paging(request.args))
        except FieldErrors as err:
            return self.response_400(message=err.errors)
        return self.response(200, as_of=args["as_of"].isoformat(), count=count, result=jsonable(rows))

    arrears.__doc__ = _spec(
        "Arrears per unit and owner in aging buckets (0-30, 31-90, 91-180, >180 days past due), disputed amounts "
        "flagged, biggest first; only for roles that may read bills",
        [*REPORT_PARAMS[2:], ("page", "integer", "Page (from 0)"), ("page_size", "integer", "1 to 1000; default 100")],
    )


register(
    Resource(
        name="collection_report",
        model=Bill,
        label=T("收费报表", "Fee reports"),
        category="reports",
        estate="estate_id",
        icon="fa-bar-chart",
        # Bill lines without unit or owner: no personal data (the reports are the point).
        list_columns=["period", "item.name", "amount", "paid_amount", "status"],
        show_columns=["period", "item.name", "amount", "paid_amount", "late_fee", "status"],
        search_columns=["period", "status"],
        writable=False,
        records=False,
        menu_route="report",
        menus=[
            MenuEntry(
                "arrears", T("欠费明细（按户）", "Arrears by household"), "arrears", icon="fa-exclamation-circle",
                needs=("bill", "read"),
            )
        ],
        order_columns=["period", "amount", "paid_amount", "status", "id"],
        labels={**LABELS, "amount": T("应收金额", "Amount")},
        choices={"status": BILL_STATUSES},
        view_mixins=(CollectionReportViewMixin,),
        api_mixins=(CollectionReportApiMixin,),
    )
)
