"""Payments, receipts, allocation, prepaid balance, refunds, late fees and the fee reports, on the
real PostgreSQL (DESIGN.md item 7, part 2). Bills are made through the ORM here."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from models.payments import amount_in_words

D = Decimal


# --- helpers ---------------------------------------------------------------------------------
def new_item(session, **rule):
    from models.fees import FeeItem

    item = FeeItem(
        code=f"PF{uuid.uuid4().hex[:8]}",
        name="物业服务费",
        kind="property_service",
        grace_days=rule.get("grace_days", 0),
        late_daily_rate=D(rule.get("rate", "0")),
        late_cap_rate=D(rule.get("cap", "0")),
    )
    session.add(item)
    session.flush()
    return item


def new_bill(session, unit, item, amount, due, period=None, disputed=False, source=None):
    from models.fees import Bill

    bill = Bill(
        estate_id=unit.estate_id,
        unit_id=unit.id,
        item_id=item.id,
        period=period or f"{due:%Y-%m}",
        source=source if source is not None else f"t:{uuid.uuid4().hex[:10]}",
        quantity=D(1),
        unit_price=D(amount),
        amount=D(amount),
        # Issued the item's payment term before it is due (a bill is never due sooner).
        issued_on=due - dt.timedelta(days=item.payment_term_days or 15),
        due_date=due,
        disputed=disputed,
        dispute_note="有争议" if disputed else None,
    )
    session.add(bill)
    session.flush()
    return bill


@pytest.fixture()
def unit(app, db_session, make_unit):
    from models.archives import Unit

    ids = make_unit()
    return db_session.get(Unit, ids["unit"])


# --- 大写 ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("0.05", "伍分"),
        ("10", "壹拾元整"),
        ("100.10", "壹佰元壹角整"),
        ("1001", "壹仟零壹元整"),
        ("10000.01", "壹万元零壹分"),
        ("123456789.12", "壹亿贰仟叁佰肆拾伍万陆仟柒佰捌拾玖元壹角贰分"),
        ("1234.56", "壹仟贰佰叁拾肆元伍角陆分"),
        ("0", "零元整"),
        ("100000001", "壹亿零壹元整"),
        ("10010", "壹万零壹拾元整"),
        ("100100", "壹拾万零壹佰元整"),
        ("0.5", "伍角整"),
        ("2.05", "贰元零伍分"),
    ],
)
def test_amount_in_words(value, words):
    assert amount_in_words(value) == words


# --- allocation ------------------------------------------------------------------------------
def test_oldest_first_partial_and_prepaid(app, db_session, unit):
    from models.payments import apply_prepaid, prepaid_balance, record_payment

    s = db_session
    item = new_item(s)
    b1 = new_bill(s, unit, item, "100.00", dt.date(2026, 1, 15))
    b2 = new_bill(s, unit, item, "100.00", dt.date(2026, 2, 15))
    s.commit()
    p = record_payment(s, unit, "150.00", "wechat")
    s.commit()
    assert (b1.status, b1.paid_amount, b2.status, b2.paid_amount) == ("paid", D("100.00"), "partial", D("50.00"))
    assert p.receipt_no.startswith(f"{unit.estate.code}-") and p.receipt_seq == 1
    # Overpayment: the rest is prepaid balance, used by a later bill.
    p2 = record_payment(s, unit, "80.00", "cash")
    s.commit()
    assert b2.status == "paid" and prepaid_balance(s, unit.id) == D("30.00")
    assert p2.receipt_seq == 2
    b3 = new_bill(s, unit, item, "45.00", dt.date(2026, 3, 15))
    assert apply_prepaid(s, unit) == D("30.00")
    s.commit()
    assert (b3.status, b3.paid_amount, prepaid_balance(s, unit.id)) == ("partial", D("30.00"), D("0.00"))


def test_chosen_bills_and_disputed_left_alone(app, db_session, unit):
    from models.errors import FieldErrors
    from models.payments import prepaid_balance, record_payment

    s = db_session
    item = new_item(s)
    old = new_bill(s, unit, item, "100.00", dt.date(2026, 1, 15))
    disputed = new_bill(s, unit, item, "60.00", dt.date(2025, 12, 15), disputed=True)
    new = new_bill(s, unit, item, "100.00", dt.date(2026, 2, 15))
    s.commit()
    record_payment(s, unit, "120.00", "cash", bill_ids=[new.id])
    s.commit()
    assert (new.status, old.status, prepaid_balance(s, unit.id)) == ("paid", "open", D("20.00"))
    record_payment(s, unit, "500.00", "cash")  # automatic: the disputed bill is not touched
    s.commit()
    assert old.status == "paid" and disputed.status == "open" and disputed.paid_amount == 0
    assert prepaid_balance(s, unit.id) == D("420.00")
    with pytest.raises(FieldErrors):
        record_payment(s, unit, "1.00", "cash", bill_ids=[old.id])  # already paid
    s.rollback()
    for bad in ("0", "-1", "1.001", 1.5, "abc"):
        with pytest.raises(FieldErrors):
            record_payment(s, unit, bad, "cash")
        s.rollback()


def test_void_reverses_and_refund_capped(app, db_session, unit):
    from models.errors import FieldErrors
    from models.payments import PaymentAllocation, prepaid_balance, record_payment, refund, void_payment

    s = db_session
    item = new_item(s)
    bill = new_bill(s, unit, item, "100.00", dt.date(2026, 1, 15))
    s.commit()
    p = record_payment(s, unit, "130.00", "alipay")
    s.commit()
    assert bill.status == "paid" and prepaid_balance(s, unit.id) == D("30.00")
    with pytest.raises(FieldErrors):
        refund(s, unit, "30.01", "业主搬离")
    s.rollback()
    with pytest.raises(FieldErrors):
        refund(s, unit, "10.00", "")  # a reason is required
    s.rollback()
    r = refund(s, unit, "10.00", "业主要求退还部分预存")
    s.commit()
    assert r.id and prepaid_balance(s, unit.id) == D("20.00")
    with pytest.raises(FieldErrors):
        void_payment(p, "")  # a reason is required
    # Voiding would leave the refunded 10 uncovered: refused.
    with pytest.raises(FieldErrors):
        void_payment(p, "转账退回")
    s.rollback()
    p2 = record_payment(s, unit, "50.00", "cash")
    s.commit()
    void_payment(p, "转账退回")
    s.commit()
    allocs = s.execute(select(PaymentAllocation).where(PaymentAllocation.payment_id == p.id)).scalars().all()
    assert allocs and all(a.reversed_at is not None for a in allocs)  # kept, reversed
    assert p.status == "void" and p.void_reason == "转账退回"
    # The other payment's 50, less the 10 refunded, now meets the reopened bill.
    assert bill.paid_amount == D("40.00") and bill.status == "partial"
    assert prepaid_balance(s, unit.id) == D("0.00")
    assert p2.status == "valid"


amounts = st.decimals(min_value=D("0.01"), max_value=D("500"), places=2)
ops = st.lists(
    st.one_of(
        st.tuples(st.just("bill"), amounts, st.booleans()),
        st.tuples(st.just("pay"), amounts, st.booleans()),
        st.tuples(st.just("void"), st.integers(0, 20), st.just(False)),
        st.tuples(st.just("refund"), amounts, st.just(False)),
    ),
    min_size=1,
    max_size=14,
)


@settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(seq=ops)
def test_allocation_properties(app, make_unit, seq):
    from app.extensions import db
    from models.archives import Unit
    from models.errors import FieldErrors
    from models.fees import Bill
    from models.payments import (
        Payment,
        PaymentAllocation,
        Refund,
        apply_prepaid,
        prepaid_balance,
        record_payment,
        refund,
        void_payment,
    )

    ids = make_unit()
    with app.app_context():
        s = db.session
        unit = s.get(Unit, ids["unit"])
        item = new_item(s)
        s.commit()
        payments, day = [], dt.date(2025, 1, 1)
        for op, value, flag in seq:
            if op == "bill":
                day += dt.timedelta(days=30)
                new_bill(s, unit, item, value, day, disputed=flag and value < 50)
                apply_prepaid(s, unit)  # as billing does
            elif op == "pay":
                open_bills = s.execute(
                    select(Bill).where(Bill.unit_id == unit.id, Bill.status.in_(("open", "partial")))
                ).scalars()
                chosen = [b.id for b in open_bills][:1] if flag else None
                eligible = s.execute(
                    select(func.coalesce(func.sum(Bill.amount - Bill.paid_amount), 0)).where(
                        Bill.unit_id == unit.id,
                        Bill.status.in_(("open", "partial")),
                        *([Bill.id.in_(chosen)] if chosen else [Bill.disputed.is_(False)]),
                    )
                ).scalar()
                if chosen == []:
                    chosen = None
                    eligible = s.execute(
                        select(func.coalesce(func.sum(Bill.amount - Bill.paid_amount), 0)).where(
                            Bill.unit_id == unit.id, Bill.status.in_(("open", "partial")), Bill.disputed.is_(False)
                        )
                    ).scalar()
                before = prepaid_balance(s, unit.id)
                p = record_payment(s, unit, value, "cash", bill_ids=chosen)
                got = sum((a.amount for a in p.allocations), D(0))
                if chosen is None and before == 0:
                    assert got == min(value, D(eligible))
                assert got <= value
                payments.append(p)
            elif op == "void" and payments:
                p = payments[value % len(payments)]
                try:
                    void_payment(p, "测试作废")
                except FieldErrors:
                    s.rollback()
                    continue
            elif op == "refund":
                try:
                    refund(s, unit, value, "测试退款")
                except FieldErrors:
                    s.rollback()
                    assert value > prepaid_balance(s, unit.id)
                    continue
            s.commit()
            # invariants
            bal = prepaid_balance(s, unit.id)
            assert bal >= 0
            bills = s.execute(select(Bill).where(Bill.unit_id == unit.id)).scalars().all()
            for b in bills:
                assert 0 <= b.paid_amount <= b.amount + b.late_fee
                assert b.status == ("paid" if b.outstanding <= 0 else "partial" if b.paid_amount > 0 else "open")
            active = s.execute(
                select(func.coalesce(func.sum(PaymentAllocation.amount), 0))
                .join(Payment)
                .where(Payment.unit_id == unit.id, PaymentAllocation.reversed_at.is_(None))
            ).scalar()
            assert D(active) == sum((b.paid_amount for b in bills), D(0))
            valid = s.execute(
                select(func.coalesce(func.sum(Payment.amount), 0)).where(
                    Payment.unit_id == unit.id, Payment.status == "valid"
                )
            ).scalar()
            refunds = s.execute(
                select(func.coalesce(func.sum(Refund.amount), 0)).where(Refund.unit_id == unit.id)
            ).scalar()
            assert D(valid) == D(active) + D(refunds) + bal
            # no allocation comes from a void payment; no payment is allocated beyond its amount
            for p in s.execute(select(Payment).where(Payment.unit_id == unit.id)).scalars():
                live = sum((a.amount for a in p.allocations if a.reversed_at is None), D(0))
                assert live <= p.amount
                if p.status == "void":
                    assert live == 0
        db.session.remove()


# --- receipt numbers under concurrency -------------------------------------------------------
def test_receipt_numbers_gap_free_under_concurrency(app):
    from app.extensions import db
    from models.archives import Building, Estate, Unit
    from models.payments import Payment, record_payment

    with app.app_context():
        tag = uuid.uuid4().hex[:6]
        estate = Estate(code=f"C{tag}", name=f"并发小区{tag}")
        building = Building(estate=estate, code="1")
        units = [Unit(building=building, code=f"1-{i}", gross_area=D("80")) for i in range(8)]
        db.session.add_all([estate, building, *units])
        db.session.commit()
        unit_ids, estate_id = [u.id for u in units], estate.id
        db.session.remove()

    errors = []
    barrier = threading.Barrier(8)

    def worker(unit_id):
        try:
            with app.app_context():
                s = db.session
                barrier.wait()
                for _ in range(10):
                    unit = s.get(Unit, unit_id)
                    record_payment(s, unit, "1.00", "cash")
                    s.commit()
                s.remove() if hasattr(s, "remove") else db.session.remove()
        except Exception as e:  # pragma: no cover - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(uid,)) for uid in unit_ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    with app.app_context():
        seqs = sorted(
            db.session.execute(select(Payment.receipt_seq).where(Payment.estate_id == estate_id)).scalars().all()
        )
        nos = db.session.execute(select(Payment.receipt_no).where(Payment.estate_id == estate_id)).scalars().all()
        db.session.remove()
    assert seqs == list(range(1, 81))
    assert len(set(nos)) == 80


# --- late fees ---------------------------------------------------------------------------------
def test_late_fee_math_grace_cap_disputed_idempotent(app, db_session, unit):
    from jobs.late_fees import compute_late_fees, late_fee_for
    from models.payments import record_payment

    s = db_session
    item = new_item(s, grace_days=10, rate="0.0005", cap="0.1")
    due = dt.date(2026, 1, 15)
    a = new_bill(s, unit, item, "1000.00", due)
    b = new_bill(s, unit, item, "333.33", due)
    c = new_bill(s, unit, item, "500.00", due, disputed=True)
    d = new_bill(s, unit, item, "1000.00", dt.date(2026, 3, 1))
    s.commit()
    estate = unit.estate_id
    # Within the grace days: nothing.
    assert compute_late_fees(dt.date(2026, 1, 25), estate)["changed"] == 0
    # 35 days after due + grace: 1000 x 0.0005 x 35 = 17.50; 333.33 x 0.0005 x 35 = 5.833275 -> 5.83.
    res = compute_late_fees(dt.date(2026, 3, 1), estate)
    s.expire_all()
    assert (a.late_fee, b.late_fee, c.late_fee, d.late_fee) == (D("17.50"), D("5.83"), D("0.00"), D("0.00"))
    assert res["changed"] == 2
    # Idempotent: the same day again changes nothing.
    assert compute_late_fees(dt.date(2026, 3, 1), estate)["changed"] == 0
    # Half-up at the cent: 333.33 x 0.0005 x 3 = 0.499995 -> 0.50 (reference function).
    assert late_fee_for(
        amount=D("333.33"), paid=D(0), due_date=due, grace_days=10, daily_rate=D("0.0005"),
        cap_rate=D("0.1"), today=dt.date(2026, 1, 28),
    ) == D("0.50")  # fmt: skip
    # The cap: 1000 x 0.1 = 100.00 however late.
    compute_late_fees(dt.date(2027, 6, 1), estate)
    s.expire_all()
    assert a.late_fee == D("100.00") and b.late_fee == D("33.33") and c.late_fee == 0
    # SQL and the reference agree.
    for bill in (a, b, d):
        assert bill.late_fee == late_fee_for(
            amount=bill.amount, paid=D(0), due_date=bill.due_date, grace_days=10, daily_rate=D("0.0005"),
            cap_rate=D("0.1"), today=dt.date(2027, 6, 1),
        )  # fmt: skip
    # Paying the principal stops growth but keeps what accrued; paying it all marks it paid.
    record_payment(s, unit, "1100.00", "cash", bill_ids=[a.id])
    s.commit()
    assert a.status == "paid" and a.paid_amount == D("1100.00")


def test_manager_waives_late_fee_staff_cannot(app, db_session, unit, api):
    from jobs.late_fees import compute_late_fees

    s = db_session
    item = new_item(s, grace_days=0, rate="0.001", cap="0.5")
    bill = new_bill(s, unit, item, "200.00", dt.date(2026, 1, 1))
    s.commit()
    compute_late_fees(dt.date(2026, 1, 11), unit.estate_id)
    s.expire_all()
    assert bill.late_fee == D("2.00")
    body = {"amount": "2.00", "reason": "疫情期间减免", "version": bill.version}
    assert api("Staff").post(f"/api/v1/bill/{bill.id}/waive", json=body).status_code == 403
    resp = api("Manager").post(f"/api/v1/bill/{bill.id}/waive", json=body)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    s.expire_all()
    assert bill.late_fee_waived == D("2.00") and bill.outstanding == D("200.00")


# --- the API, screens and roles ------------------------------------------------------------
def test_payment_api_receipt_and_roles(app, db_session, unit, api, web):
    s = db_session
    item = new_item(s)
    bill = new_bill(s, unit, item, "88.50", dt.date(2026, 1, 15))
    s.commit()
    resp = api("Staff").post("/api/v1/payment/", json={"unit": unit.id, "amount": "100.00", "method": "wechat"})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    data = resp.json
    assert data["allocations"] == [{"bill": bill.id, "amount": "88.50", "reversed_at": None}]
    assert data["prepaid_balance"] == "11.50" and data["amount_in_words"] == "壹佰元整"
    pid = data["id"]
    bad = api("Staff").post("/api/v1/payment/", json={"unit": unit.id, "amount": 1.5})
    assert bad.status_code == 422
    assert api("Committee").get("/api/v1/payment/").status_code == 403
    assert api("Committee").post("/api/v1/payment/", json={"unit": unit.id, "amount": "1"}).status_code == 403
    # The fee reports serve figures, never bills one by one (the Committee may not read bills).
    assert api("Committee").get("/api/v1/collection_report/").status_code == 404
    assert api("Committee").get(f"/api/v1/collection_report/{bill.id}").status_code == 404
    assert api("Committee").get("/api/v1/collection_report/report").status_code == 200
    assert api("Committee").get("/api/v1/collection_report/arrears").status_code == 403
    assert api("Manager").get("/api/v1/collection_report/arrears").status_code == 200
    assert api("Staff").get(f"/api/v1/payment/balance/{unit.id}").json["prepaid_balance"] == "11.50"
    # Staff records payments but does not touch fee standards.
    assert api("Staff").post("/api/v1/fee_standard/", json={}).status_code == 403
    # The printable receipt.
    page = web("Staff").get(f"/payment/receipt/{pid}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "收款收据" in html and "壹佰元整" in html and "88.50" in html
    assert "收款人：StaffTester" in html  # the collector's name (first and last), not the login
    assert web("Committee").get(f"/payment/receipt/{pid}").status_code == 403
    # Void through the API (a declared action): the version is required (422 naming it), a stale one is 409.
    version = api("Staff").get(f"/api/v1/payment/{pid}").json["result"]["version"]
    missing = api("Staff").post(f"/api/v1/payment/{pid}/void", json={"reason": "录错"})
    assert missing.status_code == 422 and "version" in missing.json["message"], missing.json
    stale = api("Staff").post(f"/api/v1/payment/{pid}/void", json={"reason": "录错", "version": version - 1})
    assert stale.status_code == 409
    resp = api("Staff").post(f"/api/v1/payment/{pid}/void", json={"reason": "录错", "version": version})
    assert resp.status_code == 200 and resp.json["status"] == "void"
    s.expire_all()
    assert bill.status == "open" and bill.paid_amount == 0
    # Payments are records: voided, never deleted (no delete route).
    assert api("Manager").delete(f"/api/v1/payment/{pid}").status_code == 405


def test_reports_screens_and_xlsx(app, db_session, unit, web):
    from models.payments import record_payment

    s = db_session
    item = new_item(s)
    new_bill(s, unit, item, "100.00", dt.date(2026, 1, 15), period="2026-01")
    new_bill(s, unit, item, "100.00", dt.date(2026, 2, 15), period="2026-02")
    s.commit()
    record_payment(s, unit, "150.00", "bank_transfer")
    s.commit()
    committee = web("Committee")
    page = committee.get(f"/collection_report/report?from=2026-01&to=2026-02&estate={unit.estate_id}&as_of=2026-06-30")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and 'class="desk-chart"' in html and "75.0%" in html
    assert "http://" not in html and "https://" not in html
    assert committee.get("/collection_report/arrears").status_code == 403
    assert committee.get("/collection_report/report?from=2026-13").status_code == 400
    x = committee.get(f"/collection_report/report.xlsx?from=2026-01&to=2026-02&estate={unit.estate_id}")
    assert x.status_code == 200 and x.data[:2] == b"PK"
    manager = web("Manager")
    arrears = manager.get(f"/collection_report/arrears?as_of=2026-06-30&estate={unit.estate_id}")
    assert arrears.status_code == 200 and unit.code in arrears.get_data(as_text=True)


def test_collection_and_income_figures(app, db_session, unit):
    from models.payments import record_payment
    from models.reports import collection_figures, income_figures

    s = db_session
    item = new_item(s)
    new_bill(s, unit, item, "100.00", dt.date(2026, 1, 15), period="2026-01")
    new_bill(s, unit, item, "300.00", dt.date(2026, 2, 15), period="2026-02")
    s.commit()
    record_payment(s, unit, "150.00", "cash", paid_at=dt.datetime(2026, 2, 1, 2, tzinfo=dt.UTC))
    record_payment(s, unit, "400.00", "wechat", paid_at=dt.datetime(2026, 2, 3, 2, tzinfo=dt.UTC))
    s.commit()
    col = collection_figures(s, "2026-01", "2026-02", unit.estate_id)
    assert (col["billed"], col["collected"], col["rate"]) == (D("400.00"), D("400.00"), 1.0)
    months = {m["key"]: (m["billed"], m["collected"]) for m in col["by_month"]}
    assert months == {"2026-01": (D("100.00"), D("100.00")), "2026-02": (D("300.00"), D("300.00"))}
    inc = income_figures(s, "2026-02", "2026-02", unit.estate_id)
    assert inc["total"] == D("550.00")
    row = next(r for r in inc["by_item"] if r["label"] == "物业服务费")
    assert (row["cash"], row["wechat"]) == (D("150.00"), D("250.00"))
    assert inc["by_item"][-1]["wechat"] == D("150.00")  # prepaid part
