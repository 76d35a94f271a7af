"""Issue 9, items 3, 10 and 11: billing uses prepaid balances (both billing paths, exactly,
idempotently; a covered bill is then not in arrears, not late-feed, not dunned); a bill is never
due before its issue date plus its item's payment term, whatever makes it; a billing run that
bills nothing says why, and a standard that cannot bill is refused on approval."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest
from sqlalchemy import select

from tests.conftest import as_system
from tests.test_issue9_jobs_beat import pg_app, sqlite_app  # noqa: F401  (module-scoped apps of their own)

pytestmark = pytest.mark.services

D = Decimal


@pytest.fixture(params=["postgresql", "sqlite"])
def fees_app(request):
    """Billing's set-based PostgreSQL path and its Python SQLite path."""
    return request.getfixturevalue("pg_app" if request.param == "postgresql" else "sqlite_app")




def estate_with_units(s, n: int):
    from models.archives import Building, Estate, Owner, Ownership, Unit

    tag = uuid.uuid4().hex[:8]
    estate = Estate(code=f"P{tag}", name=f"预存小区{tag}")
    building = Building(estate=estate, code="1")
    s.add_all([estate, building])
    s.flush()
    units = []
    for i in range(n):
        unit = Unit(building=building, code=f"1-{i + 1}", gross_area=D("90.00"), handover_date=dt.date(2020, 1, 1))
        owner = Owner(name=f"业主{i}", phone="13800138000")
        s.add_all([unit, owner])
        s.flush()
        s.add(Ownership(unit_id=unit.id, owner_id=owner.id, since=dt.date(2020, 1, 1)))
        units.append(unit.id)
    s.flush()
    return estate.id, units


def approved_standard(s, estate_id, *, price="210.02", basis="per_unit_month", start=dt.date(2020, 1, 1), **item_kw):
    from models.archives import Estate
    from models.base import system_user_id
    from models.fees import FeeItem, FeeStandard

    item = FeeItem(code=f"Q{uuid.uuid4().hex[:10]}", name="物业服务费", kind="property_service", **item_kw)
    s.add(item)
    s.flush()
    std = FeeStandard(item_id=item.id, revision=1, basis=basis, unit_price=D(price), rounding="half_up_cent",
                      unit_uses=["residential"], effective_from=start, estates=[s.get(Estate, estate_id)],
                      status="draft")  # fmt: skip
    s.add(std)
    s.flush()
    std.declare("fee_standard/test.pdf")
    std.approve(system_user_id(s))
    return item.id, std.id


def state_of(s, unit_id):
    from models.fees import Bill
    from models.payments import prepaid_balance

    bills = s.execute(select(Bill).where(Bill.unit_id == unit_id).order_by(Bill.id)).scalars().all()
    return [(b.status, b.paid_amount, b.outstanding, b.late_fee) for b in bills], prepaid_balance(s, unit_id)


# --- item 3: prepaid balances meet new bills ---------------------------------------------------
def test_billing_uses_prepaid_exactly_partly_and_idempotently(fees_app):
    """Four owners and one 210.02 bill each: 288.72 paid in advance (covers it, 78.70 left),
    100.00 (covers part: 110.02 still owed), exactly 210.02 (nothing left), nothing. The amounts
    below are worked out by hand, not by the code under test."""
    from jobs.billing import run_billing
    from jobs.dunning import run_dunning
    from jobs.late_fees import compute_late_fees
    from models.arrears import arrears_by_unit
    from models.payments import DunningNotice, record_payment

    period, issue_day = "2026-10", dt.date(2026, 10, 1)

    def seed(s):
        estate_id, units = estate_with_units(s, 4)
        approved_standard(s, estate_id, grace_days=0, late_daily_rate=D("0.001"), late_cap_rate=D("1"))
        for unit_id, advance in zip(units, ("288.72", "100.00", "210.02", None), strict=True):
            if advance:
                record_payment(s, unit_id, advance, "wechat", paid_at=dt.datetime(2026, 9, 20, 2, tzinfo=dt.UTC))
        return estate_id, units

    estate_id, (covered, partly, exact, none) = as_system(fees_app, seed)

    def bill(s):
        return run_billing(estate_id, period, "test", today=issue_day)

    first = as_system(fees_app, bill)
    assert first["lines_created"] == 4
    assert D(first["prepaid_applied"]) == D("520.04")  # 210.02 + 100.00 + 210.02
    expected = {
        covered: ([("paid", D("210.02"), D("0.00"), D("0.00"))], D("78.70")),
        partly: ([("partial", D("100.00"), D("110.02"), D("0.00"))], D("0.00")),
        exact: ([("paid", D("210.02"), D("0.00"), D("0.00"))], D("0.00")),
        none: ([("open", D("0.00"), D("210.02"), D("0.00"))], D("0.00")),
    }
    got = as_system(fees_app, lambda s: {u: state_of(s, u) for u in expected})
    assert got == expected

    # A rerun (and a redelivered task) bills nothing again and uses no money twice.
    again = as_system(fees_app, bill)
    assert again["lines_created"] == 0 and D(again["prepaid_applied"]) == 0
    assert as_system(fees_app, lambda s: {u: state_of(s, u) for u in expected}) == expected

    # 10 days after the due date: no arrears, late fee or dunning for the covered bills.
    due = issue_day + dt.timedelta(days=15)
    as_of = due + dt.timedelta(days=100)

    def after(s):
        compute_late_fees(as_of, estate_id)
        run_dunning(as_of, estate_id)
        rows = {r["unit_id"]: r["total"] for r in arrears_by_unit(s, as_of, estate_id=estate_id)}
        notices = set(s.execute(select(DunningNotice.unit_id).where(DunningNotice.estate_id == estate_id)).scalars())
        return rows, notices, {u: state_of(s, u)[0][0][3] for u in expected}

    arrears, notices, fees = as_system(fees_app, after)
    assert set(arrears) == {partly, none} and notices == {partly, none}
    # Late fee on the principal still owed: 110.02 x 0.001 x 100 = 11.002 -> 11.00; 210.02 x ... = 21.00
    assert fees == {covered: D("0.00"), partly: D("11.00"), exact: D("0.00"), none: D("21.00")}
    assert arrears == {partly: D("121.02"), none: D("231.02")}


def test_a_one_off_charge_is_met_by_prepaid_before_it_accrues_or_is_dunned(pg_app):  # noqa: F811
    from jobs.dunning import run_dunning
    from jobs.late_fees import compute_late_fees
    from models.archives import Unit
    from models.fees import FeeItem, post_one_off_charge
    from models.payments import record_payment

    def seed(s):
        estate_id, (unit_id,) = estate_with_units(s, 1)
        record_payment(s, unit_id, "50.00", "cash")
        item = FeeItem(code=f"S{uuid.uuid4().hex[:8]}", name="有偿服务", kind="service", late_daily_rate=D("0.01"))
        s.add(item)
        s.flush()
        post_one_off_charge(s, unit=s.get(Unit, unit_id), item=item, amount=D("35.50"), source="service_order:t",
                            issued_on=dt.date(2026, 1, 1))  # fmt: skip
        return estate_id, unit_id

    estate_id, unit_id = as_system(pg_app, seed)
    as_system(
        pg_app,
        lambda s: (compute_late_fees(dt.date(2026, 6, 1), estate_id), run_dunning(dt.date(2026, 6, 1), estate_id)),
    )
    lines, balance = as_system(pg_app, lambda s: state_of(s, unit_id))
    assert lines == [("paid", D("35.50"), D("0.00"), D("0.00"))] and balance == D("14.50")


# --- item 10: due dates ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("issued", "term", "due"),
    [
        (dt.date(2026, 11, 29), 15, dt.date(2026, 12, 14)),  # billed late: issue + 15 days
        (dt.date(2026, 11, 1), 15, dt.date(2026, 11, 16)),  # on the 1st: the period's due day
        (dt.date(2026, 11, 1), 30, dt.date(2026, 12, 1)),  # a longer term wins over the due day
        (dt.date(2026, 10, 20), 15, dt.date(2026, 11, 16)),  # billed early: the period's due day
    ],
)
def test_monthly_bills_are_never_due_before_issue_plus_term(fees_app, issued, term, due):
    from jobs.billing import run_billing
    from models.fees import Bill

    def go(s):
        estate_id, units = estate_with_units(s, 2)
        approved_standard(s, estate_id, payment_term_days=term)
        s.commit()
        run_billing(estate_id, "2026-11", "test", today=issued)
        return [(b.issued_on, b.due_date) for b in s.execute(select(Bill).where(Bill.unit_id.in_(units))).scalars()]

    assert as_system(fees_app, go) == [(issued, due), (issued, due)]


def test_one_off_and_hand_made_bills_follow_the_payment_term(pg_app):  # noqa: F811
    from models.archives import Unit
    from models.errors import FieldErrors
    from models.fees import FeeItem, local_today, post_one_off_charge
    from tests.conftest import login_tokens

    def seed(s):
        estate_id, (unit_id,) = estate_with_units(s, 1)
        item = FeeItem(code=f"O{uuid.uuid4().hex[:8]}", name="装修管理费", kind="renovation", payment_term_days=20)
        s.add(item)
        s.flush()
        bill = post_one_off_charge(
            s, unit=s.get(Unit, unit_id), item=item, amount=D("300.00"), source="renovation:t:fee"
        )
        s.flush()
        return unit_id, item.id, bill.issued_on, bill.due_date

    unit_id, item_id, issued, due = as_system(pg_app, seed)
    with pg_app.app_context():
        today = local_today()
    assert (issued, due) == (today, today + dt.timedelta(days=20))

    # A caller asking for an earlier due date is refused, naming the field.
    def too_early(s):
        item = s.get(FeeItem, item_id)
        post_one_off_charge(s, unit=s.get(Unit, unit_id), item=item, amount=D("1.00"), source="x:1", due_date=today)
        s.flush()

    with pytest.raises(FieldErrors) as err:
        as_system(pg_app, too_early)
    assert "due_date" in err.value.errors

    # By hand through the API: the term's last day is accepted; a day earlier is a 422 on due_date.
    token = login_tokens(pg_app)["Manager"]
    headers = {"Authorization": f"Bearer {token}"}
    body = {
        "unit": unit_id,
        "item": item_id,
        "period": f"{today:%Y-%m}",
        "source": "hand:1",
        "unit_price": "10.00",
        "quantity": "1",
        "due_date": (today + dt.timedelta(days=20)).isoformat(),
    }
    with pg_app.app_context():
        resp = pg_app.test_client().post("/api/v1/bill/", json=body, headers=headers)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    with pg_app.app_context():
        shown = pg_app.test_client().get(f"/api/v1/bill/{resp.json['id']}", headers=headers).json["result"]
    assert (shown["issued_on"], shown["due_date"]) == (today.isoformat(), (today + dt.timedelta(days=20)).isoformat())
    with pg_app.app_context():
        bad = pg_app.test_client().post(
            "/api/v1/bill/",
            json={**body, "source": "hand:2", "due_date": (today + dt.timedelta(days=19)).isoformat()},
            headers=headers,
        )
    assert bad.status_code == 422 and "due_date" in bad.json["message"], bad.get_data(as_text=True)


# --- item 11: a run that bills nothing says why ---------------------------------------------
def test_an_empty_run_says_why_on_the_api(fees_app):
    from jobs.billing import run_billing
    from models.fees import FeeStandard, MeterReading  # noqa: F401

    def seed(s):
        nothing, _ = estate_with_units(s, 1)  # no standard at all
        no_estate, _ = estate_with_units(s, 1)
        _item, std = approved_standard(s, no_estate)
        # An approved standard that lost its estates (as saved before approval refused it).
        s.get(FeeStandard, std).estates = []
        metered, _ = estate_with_units(s, 1)
        approved_standard(s, metered, basis="per_quantity", price="4.2000")
        billed, _ = estate_with_units(s, 2)
        approved_standard(s, billed)
        return nothing, no_estate, metered, billed

    nothing, no_estate, metered, billed = as_system(fees_app, seed)
    runs = {}
    for name, estate in (("nothing", nothing), ("no_estate", no_estate), ("metered", metered), ("billed", billed)):
        as_system(fees_app, lambda s, e=estate: run_billing(e, "2026-09", "test"))
        runs[name] = as_system(fees_app, lambda s, e=estate: run_billing(e, "2026-09", "test"))
    for name in ("nothing", "no_estate", "metered"):
        assert runs[name]["lines_created"] == 0 and runs[name]["lines_total"] == 0
    assert "没有生效的已批准" in runs["nothing"]["explanation"] and "No approved" in runs["nothing"]["explanation"]
    assert "未选择适用小区" in runs["no_estate"]["explanation"]
    assert "没有抄表记录" in runs["metered"]["explanation"] and "no meter readings" in runs["metered"]["explanation"]
    assert runs["billed"]["lines_total"] == 2 and "已出账 2 行" in runs["billed"]["explanation"]

    from tests.conftest import login_tokens

    token = login_tokens(fees_app)["Manager"]
    with fees_app.app_context():
        shown = fees_app.test_client().get(
            f"/api/v1/billing_run/{runs['metered']['run_id']}", headers={"Authorization": f"Bearer {token}"}
        )
    assert shown.status_code == 200 and "没有抄表记录" in shown.json["result"]["explanation"]
    # The run's page lists the reasons in the reader's language only.
    from tests.conftest import PASSWORD, FreshContextClient

    web = FreshContextClient(fees_app, fees_app.test_client())
    web.post("/login/", data={"username": "manager", "password": PASSWORD})
    page = web.get(f"/billing_run/show/{runs['metered']['run_id']}").get_data(as_text=True)
    assert "没有抄表记录" in page and "no meter readings" not in page


def test_a_standard_without_an_estate_is_refused_on_approval(pg_app):  # noqa: F811
    from models.fees import FeeItem, FeeStandard
    from tests.conftest import login_tokens

    def seed(s):
        item = FeeItem(code=f"N{uuid.uuid4().hex[:8]}", name="停车费", kind="parking", active=False)
        s.add(item)
        s.flush()
        std = FeeStandard(item_id=item.id, revision=1, basis="per_unit_month", unit_price=D("100"),
                          unit_uses=["residential"], effective_from=dt.date(2026, 1, 1), status="draft")  # fmt: skip
        s.add(std)
        s.flush()
        std.declare("fee_standard/x.pdf")
        return std.id

    pk = as_system(pg_app, seed)
    version = as_system(pg_app, lambda s: s.get(FeeStandard, pk).version)
    headers = {"Authorization": f"Bearer {login_tokens(pg_app)['Manager']}"}
    with pg_app.app_context():
        resp = pg_app.test_client().post(
            f"/api/v1/fee_standard/{pk}/approve", json={"version": version}, headers=headers
        )
    assert resp.status_code == 422 and "estates" in resp.json["message"], resp.get_data(as_text=True)
    assert as_system(pg_app, lambda s: s.get(FeeStandard, pk).status) == "declared"
    # With an estate it is approved, and told that its item is inactive.
    from models.archives import Estate

    def add_estate(s):
        estate_id, _ = estate_with_units(s, 1)
        std = s.get(FeeStandard, pk)
        std.estates = [s.get(Estate, estate_id)]

    as_system(pg_app, add_estate)
    version = as_system(pg_app, lambda s: s.get(FeeStandard, pk).version)
    with pg_app.app_context():
        resp = pg_app.test_client().post(
            f"/api/v1/fee_standard/{pk}/approve", json={"version": version}, headers=headers
        )
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert any("停用" in w for w in resp.json["warnings"])
    assert (
        as_system(pg_app, lambda s: s.execute(select(FeeStandard.status).where(FeeStandard.id == pk)).scalar())
        == "approved"
    )
