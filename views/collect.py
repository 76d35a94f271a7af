"""Taking money at the desk (收款, issue 12 §4): the 收款 button of a unit's page and of a bill's page
(a ``Link`` of the registry, offered to those who may record payments) opens a form with the
unit's open bills oldest first, ticked, their amounts due, the prepaid balance and a live total;
saving records the payment through ``models.payments.collect_payment`` (which goes through
``record_payment``: receipt number, allocation, row locks) and opens the receipt to print.

The routes are screens' own routes (``/unit/collect/<pk>``, ``/bill/collect/<pk>``): they need the
right to read the unit or bill (every role that may see the page) and the right to write payments
(checked here; the Committee has neither). A unit outside the user's estates is not there (404),
as on every path. The same for API clients: ``/api/v1/payment/collect/<unit_id>`` (views/payments.py).
"""

from __future__ import annotations

from flask import abort, make_response, redirect, request, url_for
from flask_appbuilder.baseviews import expose
from flask_appbuilder.security.decorators import has_access

from app.i18n import T
from models.errors import Conflict, FieldErrors
from models.payments import PAYABLE_STATUSES, collect_payment, collect_sheet, parse_collect_bills
from views.registry import Link
from views.scope import OutOfScope

LABELS = {
    "bills": T("账单", "Bills"),
    "extra": T("预存金额", "Paid in advance"),
    "method": T("付款方式", "Method"),
    "paid_on": T("收款日期", "Payment date"),
    "payer_name": T("交款人", "Payer"),
    "reference": T("交易流水号", "Transaction no."),
    "note": T("备注", "Note"),
    "unit": T("房屋", "Unit"),
}
MSG_FORM = T("收款未保存，请改正：", "The payment was not recorded; please correct:")


def may_collect() -> bool:
    """Recording a payment is a write of payments (app/roles.py); the page also needs the unit."""
    from views.base import rights

    return "write" in rights("payment")


# The buttons (views/registry.py Link): on a unit's page, and on a bill's page while it is unpaid.
UNIT_COLLECT = Link(T("收款", "Collect"), "collect", when=lambda _unit: may_collect(), style="success")
BILL_COLLECT = Link(
    T("收款", "Collect"), "collect", when=lambda bill: bill.status in PAYABLE_STATUSES and may_collect(), style="success"
)


class _CollectRight:
    """``collect`` is a page beside the records: it folds into ``read`` of the resource (the
    payment right is checked by the route itself)."""

    def __init__(self, **kwargs):
        self.method_permission_name = {**self.method_permission_name, "collect": "read"}
        super().__init__(**kwargs)


def form_input(form) -> dict:
    """The collect form's fields as ``collect_payment`` takes them. Each ticked box is a bill id
    with the version and amount due the page showed beside it."""
    chosen = []
    for raw in form.getlist("bill"):
        raw = raw.strip()
        if not raw.isdigit() or len(raw) > 18:
            raise FieldErrors({"bills": [str(T("账单选择无效", "Invalid bill choice"))]})
        version = form.get(f"version_{raw}", "").strip()
        chosen.append(
            {
                "id": int(raw),
                "version": int(version) if version.isdigit() and len(version) < 10 else None,
                "due": form.get(f"due_{raw}", "").strip() or None,
            }
        )
    return {
        "bills": parse_collect_bills(chosen),
        "extra": form.get("extra", "").strip() or None,
        "method": form.get("method", ""),
        "paid_on": form.get("paid_on", "").strip() or None,
        "payer_name": form.get("payer_name"),
        "reference": form.get("reference"),
        "note": form.get("note"),
    }


def save_collected(datamodel, unit, data: dict):
    """Record it and commit (the datamodel's commit: a lost race or a lock not had is a 409,
    never a 500); the payment must be of the user's estates (403)."""
    from views.registry import REGISTRY
    from views.scope import admit

    session = datamodel.session
    out = []

    def work():
        payment = collect_payment(session, unit, **data)
        admit(REGISTRY["payment"], payment)
        datamodel._check_text(payment)
        out.append(payment)

    try:
        datamodel._commit(work)
    except OutOfScope:
        session.rollback()
        raise
    return out[0]


class CollectUnitMixin(_CollectRight):
    """The unit's screen: ``/unit/collect/<pk>`` (GET the form, POST it)."""

    @expose("/collect/<int:pk>", methods=["GET", "POST"])
    @has_access
    def collect(self, pk):
        unit = self.datamodel.get(pk, self._base_filters)
        if unit is None:
            abort(404)
        if not may_collect():
            abort(403)
        session = self.datamodel.session
        errors, conflict, status, ticked = {}, None, 200, None
        if request.method == "POST":
            ticked = {int(b) for b in request.form.getlist("bill") if b.strip().isdigit() and len(b.strip()) < 19}
            try:
                payment = save_collected(self.datamodel, unit, form_input(request.form))
            except FieldErrors as e:
                session.rollback()
                errors, status = e.errors, 422
            except Conflict as e:
                session.rollback()
                conflict, status = str(e), 409
            except OutOfScope as e:
                abort(403, description=str(e))
            else:
                return redirect(url_for("PaymentView.receipt", pk=payment.id, saved=1))
            unit = self.datamodel.get(pk, self._base_filters)  # as it is now (the rollback expired it)
        bill = request.args.get("bill", "")
        sheet = collect_sheet(session, unit, int(bill) if bill.isdigit() and len(bill) < 19 else None)
        if ticked is not None:  # the clerk's own choice, kept when the form comes back
            for b in sheet["bills"]:
                b["ticked"] = b["id"] in ticked
        form = request.form if request.method == "POST" else {}
        return make_response(
            self.render_template(
                "desk/collect.html",
                s=sheet,
                errors=errors,
                conflict=conflict,
                form=form,
                labels=LABELS,
                message=MSG_FORM,
                unit_url=url_for(f"{type(self).__name__}.show", pk=unit.id),
            ),
            status,
        )


class CollectBillMixin(_CollectRight):
    """The bill's screen: ``/bill/collect/<pk>`` opens the unit's form with this bill ticked."""

    @expose("/collect/<int:pk>")
    @has_access
    def collect(self, pk):
        bill = self.datamodel.get(pk, self._base_filters)
        if bill is None:
            abort(404)
        if not may_collect():
            abort(403)
        return redirect(url_for("UnitView.collect", pk=bill.unit_id, bill=bill.id))
