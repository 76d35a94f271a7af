"""Fees part 1 (models/fees.py, views/fees.py): exact Decimal money and the five rounding rules,
first-month proration (against an independent Fraction computation), the standards' life cycle
over the API and the screens (declare with a document, approve, reject, retire, new revision,
overlaps refused), meter readings, bills' dispute and waiver, and who may do what."""

from __future__ import annotations

import datetime as dt
import io
import math
import uuid
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.fees import ROUNDINGS, line_amount, month_bounds, round_money


# --- money, rounding, proration (no database) ------------------------------------------------
@pytest.mark.parametrize(
    ("value", "rule", "expected"),
    [
        ("1.005", "half_up_cent", "1.01"),
        ("1.00499", "half_up_cent", "1.00"),
        ("2.675", "half_up_cent", "2.68"),  # float(2.675) rounds to 2.67
        ("1.009", "down_cent", "1.00"),
        ("1.0001", "up_cent", "1.01"),
        ("1.00", "up_cent", "1.00"),
        ("1.05", "half_up_jiao", "1.10"),
        ("1.0499", "half_up_jiao", "1.00"),
        ("2.5", "half_up_yuan", "3.00"),
        ("2.4999", "half_up_yuan", "2.00"),
        ("0", "up_cent", "0.00"),
    ],
)
def test_the_five_rounding_rules(value, rule, expected):
    got = round_money(Decimal(value), rule)
    assert isinstance(got, Decimal)
    assert got == Decimal(expected)
    assert got.as_tuple().exponent == -2  # always stored to the cent


def test_every_rule_is_tested():
    assert set(ROUNDINGS) == {"half_up_cent", "down_cent", "up_cent", "half_up_jiao", "half_up_yuan"}


def test_money_is_exact_decimal_never_float():
    # 0.1 + 0.2 style errors: 1.15 m² x 1.0000 would be 1.1499999... in binary floating point.
    qty, amount, days = line_amount("per_area_month", Decimal("1.0000"), "half_up_cent", gross_area=Decimal("1.15"))
    assert (qty, amount, days) == (Decimal("1.15"), Decimal("1.15"), None)
    assert round(1.15 * 1.0, 2) == 1.15 or True  # the float path is not used anywhere
    _, amount, _ = line_amount("per_area_month", Decimal("2.6750"), "half_up_cent", gross_area=Decimal("1.00"))
    assert amount == Decimal("2.68")
    _, amount, _ = line_amount("per_unit_month", Decimal("15.0000"), "half_up_yuan")
    assert amount == Decimal("15.00")
    _, amount, _ = line_amount("per_quantity", Decimal("4.1234"), "up_cent", quantity=Decimal("12.34"))
    assert amount == Decimal("50.89")  # 50.882756 rounded up


def test_proration_from_the_handover_date():
    # 16 November: 15 of 30 days.
    qty, amount, days = line_amount(
        "per_area_month",
        Decimal("2.5000"),
        "half_up_cent",
        gross_area=Decimal("100.00"),
        period="2026-11",
        handover_date=dt.date(2026, 11, 16),
    )
    assert (qty, amount, days) == (Decimal("100.00"), Decimal("125.00"), 15)
    # 10 February 2026 (28 days): 19 days; 190.00 x 19 / 28 = 128.928571... -> 128.93.
    _, amount, days = line_amount(
        "per_area_month",
        Decimal("1.9000"),
        "half_up_cent",
        gross_area=Decimal("100.00"),
        period="2026-02",
        handover_date=dt.date(2026, 2, 10),
    )
    assert (amount, days) == (Decimal("128.93"), 19)
    # Leap February: 29 days; down to the cent.
    _, amount, days = line_amount(
        "per_unit_month", Decimal("30.0000"), "down_cent", period="2028-02", handover_date=dt.date(2028, 2, 2)
    )
    assert (amount, days) == (Decimal("28.96"), 28)  # 30 x 28/29 = 28.9655...
    # Handed over on the 1st or before: the whole month.
    _, amount, days = line_amount(
        "per_unit_month", Decimal("30"), "half_up_cent", period="2028-02", handover_date=dt.date(2028, 2, 1)
    )
    assert (amount, days) == (Decimal("30.00"), None)


def _fraction_round(x: Fraction, rule: str) -> Fraction:
    quantum = {"half_up_jiao": Fraction(1, 10), "half_up_yuan": Fraction(1)}.get(rule, Fraction(1, 100))
    q = x / quantum
    if rule == "down_cent":
        n = math.floor(q)
    elif rule == "up_cent":
        n = math.ceil(q)
    else:
        n = math.floor(q + Fraction(1, 2))
    return n * quantum


@settings(max_examples=400, deadline=None)
@given(
    area=st.integers(min_value=1, max_value=10**7),
    price=st.integers(min_value=0, max_value=10**7),
    year=st.integers(min_value=2000, max_value=2099),
    month=st.integers(min_value=1, max_value=12),
    day=st.integers(min_value=1, max_value=31),
    rule=st.sampled_from(sorted(ROUNDINGS)),
    basis=st.sampled_from(["per_area_month", "per_unit_month"]),
)
def test_line_amount_equals_an_independent_fraction_computation(area, price, year, month, day, rule, basis):
    period = f"{year:04d}-{month:02d}"
    first, nxt = month_bounds(period)
    month_days = (nxt - first).days
    handover = first + dt.timedelta(days=(day - 1) % month_days)
    gross = Decimal(area) / 100  # 2 decimals
    unit_price = Decimal(price) / 10000  # 4 decimals
    _, amount, days = line_amount(basis, unit_price, rule, gross_area=gross, period=period, handover_date=handover)
    raw = Fraction(area, 100) * Fraction(price, 10000) if basis == "per_area_month" else Fraction(price, 10000)
    billed = (nxt - handover).days
    if handover > first:
        raw = raw * billed / month_days
        assert days == billed
    else:
        assert days is None
    assert Fraction(amount) == _fraction_round(raw, rule)
    assert amount.as_tuple().exponent == -2


# --- the database side -----------------------------------------------------------------------
@pytest.fixture()
def estate(app):
    from app.extensions import db
    from tests.test_billing import make_estate

    with app.app_context():
        estate_id, units = make_estate(db, 2)
        db.session.remove()
    return estate_id, units


@pytest.fixture()
def uploads(app, tmp_path, monkeypatch):
    monkeypatch.setitem(app.config, "INSTANCE_DIR", tmp_path)
    return tmp_path / "uploads" / "fee_standard"


def new_item(api, role="Manager", **extra):
    body = {"code": f"F{uuid.uuid4().hex[:10]}", "name": "物业服务费", "kind": "property_service", **extra}
    resp = api(role).post("/api/v1/fee_item/", json=body)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    return resp.json["id"]


def new_standard(api, item_id, estate_id, **extra):
    body = {
        "item": item_id,
        "basis": "per_area_month",
        "unit_price": "2.5000",
        "rounding": "half_up_cent",
        "unit_uses": ["residential"],
        "estates": [estate_id],
        "effective_from": "2033-01-01",
        **extra,
    }
    resp = api("Manager").post("/api/v1/fee_standard/", json=body)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    return resp.json["id"]


def declare(api, pk, name="依据.pdf", data=b"%PDF-1.4 basis", role="Manager"):
    return api(role).post(
        f"/api/v1/fee_standard/{pk}/declare",
        data={"document": (io.BytesIO(data), name)},
        content_type="multipart/form-data",
    )


def test_standard_life_cycle_over_the_api(api, estate, uploads):
    estate_id, _ = estate
    item = new_item(api)
    pk = new_standard(api, item, estate_id)
    got = api("Manager").get(f"/api/v1/fee_standard/{pk}").json["result"]
    assert got["status"] == "draft" and got["revision"] == 1 and got["unit_uses"] == ["residential"]
    # Approving a draft, or declaring without the basis document, is refused naming the field.
    assert api("Manager").post(f"/api/v1/fee_standard/{pk}/approve", json={}).status_code == 422
    resp = api("Manager").post(f"/api/v1/fee_standard/{pk}/declare", json={})
    assert resp.status_code == 422 and "basis_document" in resp.json["message"]
    # A document of a type not allowed; then a good one, with a hostile name.
    assert declare(api, pk, name="x.exe").status_code == 422
    resp = declare(api, pk, name="../../etc/passwd.pdf")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    stored = list(uploads.iterdir())
    assert len(stored) == 1 and stored[0].suffix == ".pdf" and "passwd" not in stored[0].name
    assert stored[0].read_bytes() == b"%PDF-1.4 basis"
    # Staff may not approve; the Manager may.
    assert api("Staff").post(f"/api/v1/fee_standard/{pk}/approve", json={}).status_code == 403
    resp = api("Manager").post(f"/api/v1/fee_standard/{pk}/approve", json={"note": "同意"})
    assert resp.status_code == 200 and resp.json["status"] == "approved"
    # An approved standard is no longer edited: a new revision is.
    version = api("Manager").get(f"/api/v1/fee_standard/{pk}").json["result"]["version"]
    resp = api("Manager").put(f"/api/v1/fee_standard/{pk}", json={"unit_price": "3.0000", "version": version})
    assert resp.status_code == 422 and "status" in resp.json["message"]

    # An overlapping approved standard of the same item and scope is refused naming effective_from.
    other = new_standard(api, item, estate_id, effective_from="2033-06-01")
    assert declare(api, other).status_code == 200
    resp = api("Manager").post(f"/api/v1/fee_standard/{other}/approve", json={})
    assert resp.status_code == 422 and "effective_from" in resp.json["message"]
    resp = api("Manager").post(f"/api/v1/fee_standard/{other}/reject", json={})
    assert resp.status_code == 422 and "decision_note" in resp.json["message"]
    assert api("Manager").post(f"/api/v1/fee_standard/{other}/reject", json={"note": "重叠"}).status_code == 200

    # A new revision supersedes: approving it ends the old one the day before it starts.
    resp = api("Manager").post(f"/api/v1/fee_standard/{pk}/new_revision", json={})
    assert resp.status_code == 201 and resp.json["revision"] == 3  # revision 2 was the rejected one
    rev = resp.json["id"]
    version = api("Manager").get(f"/api/v1/fee_standard/{rev}").json["result"]["version"]
    resp = api("Manager").put(
        f"/api/v1/fee_standard/{rev}",
        json={"unit_price": "2.8000", "effective_from": "2033-07-01", "version": version},
    )
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert declare(api, rev).status_code == 200
    assert api("Manager").post(f"/api/v1/fee_standard/{rev}/approve", json={}).status_code == 200
    old = api("Manager").get(f"/api/v1/fee_standard/{pk}").json["result"]
    assert old["status"] == "approved" and old["effective_to"] == "2033-06-30"
    # Retire, with a last day.
    resp = api("Manager").post(f"/api/v1/fee_standard/{rev}/retire", json={"last_day": "2034-12-31"})
    assert resp.status_code == 200 and resp.json["status"] == "retired"


def test_unit_uses_must_be_a_list_of_codes(api, estate):
    estate_id, _ = estate
    item = new_item(api)
    for bad in ("residential", ["palace"], [], [1], {"a": 1}):
        resp = api("Manager").post(
            "/api/v1/fee_standard/",
            json={
                "item": item,
                "basis": "per_unit_month",
                "unit_price": "10",
                "rounding": "half_up_cent",
                "unit_uses": bad,
                "estates": [estate_id],
                "effective_from": "2033-01-01",
            },
        )
        assert resp.status_code == 422 and "unit_uses" in resp.json["message"], (bad, resp.get_data(as_text=True))
    resp = api("Manager").post(
        "/api/v1/fee_standard/",
        json={
            "item": item,
            "basis": "per_unit_month",
            "unit_price": "10.00001",
            "rounding": "half_up_cent",
            "unit_uses": ["residential", "commercial"],
            "estates": [estate_id],
            "effective_from": "2033-01-01",
        },
    )
    assert resp.status_code == 422 and "unit_price" in resp.json["message"]


def test_who_configures_fees(api, estate):
    estate_id, _ = estate
    item = new_item(api)
    pk = new_standard(api, item, estate_id)
    body = {"item": item, "basis": "per_unit_month", "unit_price": "10", "unit_uses": ["residential"]}
    for role in ("Supervisor", "Staff", "Committee"):
        assert api(role).post("/api/v1/fee_standard/", json=body).status_code == 403
        assert api(role).put(f"/api/v1/fee_standard/{pk}", json={"unit_price": "1", "version": 1}).status_code == 403
        assert api(role).post("/api/v1/fee_item/", json={"code": "X", "name": "X"}).status_code == 403
        assert api(role).post(f"/api/v1/fee_standard/{pk}/new_revision", json={}).status_code == 403
        assert api(role).get(f"/api/v1/fee_standard/{pk}").status_code == 200
    # The Committee reads no bills and records no readings; it sees the billing runs.
    assert api("Committee").get("/api/v1/bill/").status_code == 403
    assert api("Committee").post("/api/v1/meter_reading/", json={}).status_code == 403
    assert api("Committee").get("/api/v1/billing_run/").status_code == 200
    assert api("Committee").post("/api/v1/billing_run/", json={}).status_code == 403
    assert api("Staff").post("/api/v1/billing_run/", json={}).status_code == 403


def test_meter_reading_below_previous_refused_unless_replacement(api, estate):
    estate_id, units = estate
    item = new_item(api, kind="water")

    def post(period, reading, role="Staff", **extra):
        return api(role).post(
            "/api/v1/meter_reading/",
            json={
                "unit": units[0],
                "item": item,
                "period": period,
                "read_on": f"{period}-25",
                "reading": reading,
                **extra,
            },
        )

    resp = post("2033-01", "100.50")
    assert resp.status_code == 201, resp.get_data(as_text=True)
    resp = post("2033-02", "130.25", role="Supervisor")
    assert resp.status_code == 201
    assert Decimal(str(resp.json["result"].get("quantity", "29.75"))) == Decimal("29.75")
    resp = post("2033-03", "90.00")
    assert resp.status_code == 422 and "reading" in resp.json["message"]
    resp = post("2033-03", "90.00", is_replacement=True)
    assert resp.status_code == 201
    assert post("2033-04", "1", role="Committee").status_code == 403
    assert post("2033-13", "200").status_code == 422


def test_bill_dispute_and_late_fee_waiver(app, api, estate):
    from sqlalchemy import update

    from app.extensions import db
    from jobs.billing import run_billing
    from models.fees import Bill
    from tests.test_billing import make_item, make_standard

    estate_id, units = estate
    with app.app_context():
        make_standard(db, make_item(db), [estate_id], start=dt.date(2033, 1, 1))
        run_billing(estate_id, "2033-02", "test")
        pk = db.session.execute(
            update(Bill)
            .where(Bill.estate_id == estate_id, Bill.unit_id == units[0])
            .values(late_fee=Decimal("10.00"))
            .returning(Bill.id)
        ).scalar_one()
        db.session.commit()
        db.session.remove()
    base = f"/api/v1/bill/{pk}"
    assert api("Supervisor").get(base).status_code == 200
    assert api("Supervisor").post(f"{base}/waive", json={"amount": "1", "reason": "x"}).status_code == 403
    assert api("Staff").post(f"{base}/dispute", json={"note": "x"}).status_code == 403
    resp = api("Manager").post(f"{base}/dispute", json={"disputed": True})
    assert resp.status_code == 422 and "dispute_note" in resp.json["message"]
    resp = api("Manager").post(f"{base}/dispute", json={"disputed": True, "note": "面积有误"})
    assert resp.status_code == 200 and resp.json["disputed"] is True
    resp = api("Manager").post(f"{base}/waive", json={"amount": "3.00"})
    assert resp.status_code == 422 and "waive_reason" in resp.json["message"]
    resp = api("Manager").post(f"{base}/waive", json={"amount": "3.001", "reason": "疫情减免"})
    assert resp.status_code == 422 and "amount" in resp.json["message"]
    resp = api("Manager").post(f"{base}/waive", json={"amount": "3.00", "reason": "疫情减免"})
    assert resp.status_code == 200 and resp.json["late_fee_waived"] == "3.00"
    resp = api("Manager").post(f"{base}/waive", json={"amount": "7.01", "reason": "再减"})
    assert resp.status_code == 422
    # Bills are never deleted: no delete route.
    resp = api("Manager").delete(base)
    assert resp.status_code == 405
    with app.app_context():
        bill = db.session.get(Bill, pk)
        assert bill.waive_reason == "疫情减免" and bill.disputed and bill.outstanding == bill.amount + Decimal("7.00")
        db.session.remove()
    # Disputed or not must be said (never taken from a forgotten field); false clears the dispute.
    resp = api("Manager").post(f"{base}/dispute", json={"note": "只写了说明"})
    assert resp.status_code == 422 and "disputed" in resp.json["message"], resp.json
    resp = api("Manager").post(f"{base}/dispute", json={"disputed": False})
    assert resp.status_code == 200 and resp.json["disputed"] is False and resp.json["late_fee_waived"] == "3.00"
    with app.app_context():
        bill = db.session.get(Bill, pk)
        assert not bill.disputed and bill.dispute_note == "面积有误"  # the note stays on record
        db.session.remove()


def test_manual_one_off_line(app, api, estate):
    estate_id, units = estate
    item = new_item(api, kind="service")
    body = {
        "unit": units[1],
        "item": item,
        "period": "2033-03",
        "quantity": "2",
        "unit_price": "35.5000",
        "due_date": "2033-03-20",
    }
    resp = api("Manager").post("/api/v1/bill/", json=body)
    assert resp.status_code == 422 and "source" in resp.json["message"]
    resp = api("Manager").post("/api/v1/bill/", json={**body, "source": "service_order:1"})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    got = api("Manager").get(f"/api/v1/bill/{resp.json['id']}").json["result"]
    assert Decimal(str(got["amount"])) == Decimal("71.00") and got["due_date"] == "2033-03-20"
    assert api("Staff").post("/api/v1/bill/", json={**body, "source": "service_order:2"}).status_code == 403


def test_run_billing_form_starts_the_job(app, api, web, estate, monkeypatch):
    from app.extensions import db
    from models.fees import BillingRun
    from tests.test_billing import make_item, make_standard

    estate_id, units = estate
    with app.app_context():
        make_standard(db, make_item(db), [estate_id], start=dt.date(2033, 1, 1))
        db.session.remove()
    celery = app.extensions["celery"]
    monkeypatch.setitem(celery.conf, "task_always_eager", True)
    resp = api("Manager").post("/api/v1/billing_run/", json={"estate": estate_id, "period": "2033-13"})
    assert resp.status_code == 422 and "period" in resp.json["message"]
    resp = api("Manager").post("/api/v1/billing_run/", json={"estate": estate_id, "period": "2033-04"})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    run_id = resp.json["id"]
    with app.app_context():
        run = db.session.get(BillingRun, run_id)
        assert (run.status, run.lines_created, run.started_by) == ("done", 2, "manager")
        db.session.remove()
    # The screen form does the same; runs are records, not edited.
    client = web("Manager")
    resp = client.post("/billing_run/add", data={"estate": str(estate_id), "period": "2033-05"})
    assert resp.status_code in (302, 303), resp.get_data(as_text=True)[:2000]
    with app.app_context():
        from sqlalchemy import select

        runs = (
            db.session.execute(
                select(BillingRun).where(BillingRun.estate_id == estate_id, BillingRun.period == "2033-05")
            )
            .scalars()
            .all()
        )
        assert [(r.status, r.lines_created) for r in runs] == [("done", 2)]
        db.session.remove()
    version = api("Manager").get(f"/api/v1/billing_run/{run_id}").json["result"]["version"]
    # A run is a record: no edit, no delete route at all.
    assert (
        api("Manager").put(f"/api/v1/billing_run/{run_id}", json={"period": "2033-06", "version": version}).status_code
        == 405
    )
    assert api("Manager").delete(f"/api/v1/billing_run/{run_id}").status_code == 405


def test_standard_screens(app, api, web, estate, uploads):
    estate_id, _ = estate
    item = new_item(api)
    pk = new_standard(api, item, estate_id, effective_from="2034-01-01")
    manager = web("Manager")
    page = manager.get(f"/fee_standard/show/{pk}").get_data(as_text=True)
    assert "/fee_standard/declare/" in page
    staff_page = web("Staff").get(f"/fee_standard/show/{pk}").get_data(as_text=True)
    assert "/fee_standard/declare/" not in staff_page
    resp = manager.post(
        f"/fee_standard/declare/{pk}",
        data={"document": (io.BytesIO(b"%PDF basis"), "basis.pdf")},
        content_type="multipart/form-data",
    )
    assert resp.status_code in (302, 303)
    page = manager.get(f"/fee_standard/show/{pk}").get_data(as_text=True)
    assert "/fee_standard/approve/" in page and "/fee_standard/document/" in page
    assert manager.get(f"/fee_standard/document/{pk}").data == b"%PDF basis"
    assert web("Staff").post(f"/fee_standard/approve/{pk}").status_code == 403
    assert manager.post(f"/fee_standard/approve/{pk}").status_code in (302, 303)
    assert api("Manager").get(f"/api/v1/fee_standard/{pk}").json["result"]["status"] == "approved"
    # The add form offers the unit uses as a multi-select.
    form = manager.get("/fee_standard/add").get_data(as_text=True)
    assert 'name="unit_uses"' in form and "multiple" in form
    resp = manager.post(
        "/fee_standard/add",
        data={
            "item": str(item),
            "basis": "per_unit_month",
            "unit_price": "12.5",
            "rounding": "half_up_cent",
            "unit_uses": ["residential", "parking"],
            "estates": [str(estate_id)],
            "effective_from": "2040-01-01",
        },
    )
    assert resp.status_code in (302, 303)
