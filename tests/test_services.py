"""Paid convenience services (DESIGN.md item 9): the order state machine, exact money, double
booking (also from two threads at once), the periodic job, charging to the bill, orders from an
owner-paid repair ticket, the demo catalog and the role matrix."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from models.errors import FieldErrors
from models.services import ORDER_TRANSITIONS, ServiceItem, order_amount

BASE = dt.datetime(2031, 3, 2, 1, 0, tzinfo=dt.UTC)
_slots = itertools.count()
ACTIONS = {
    "schedule": "scheduled",
    "start": "in_progress",
    "done": "done",
    "charge": "charged",
    "rate": "rated",
    "cancel": "cancelled",
}


def slot(hours: int = 2) -> tuple[str, str]:
    """A fresh slot nobody else in this run uses."""
    start = BASE + dt.timedelta(hours=3 * next(_slots))
    return start.isoformat(), (start + dt.timedelta(hours=hours)).isoformat()


@pytest.fixture(scope="module")
def catalog(app):
    from app.extensions import db
    from app.seed import service_catalog

    with app.app_context():
        service_catalog()
        rows = db.session.execute(select(ServiceItem.code, ServiceItem.id)).all()
        db.session.remove()
    return dict(rows)


@pytest.fixture(scope="module")
def users(app):
    from flask_appbuilder.security.sqla.models import User

    from app.extensions import db

    with app.app_context():
        rows = db.session.execute(select(User.username, User.id)).all()
        db.session.remove()
    return dict(rows)


@pytest.fixture()
def order(api, make_unit, catalog):
    """``order(code)``: a new requested order (through the API, as Staff); returns its JSON."""

    def make(code: str = "R-TAP", unit: int | None = None, when: tuple[str, str] | None = None):
        unit = unit or make_unit()["unit"]
        start, end = when or slot()
        resp = api("Staff").post(
            "/api/v1/service_order/",
            json={"item": catalog[code], "unit": unit, "requested_start": start, "requested_end": end},
        )
        assert resp.status_code == 201, resp.get_data(as_text=True)
        return {"id": resp.json["id"], "version": resp.json["version"], "unit": unit, "start": start, "end": end}

    return make


def act(api, o: dict, action: str, role: str = "Staff", **body):
    body.setdefault("version", o["version"])
    resp = api(role).post(f"/api/v1/service_order/{o['id']}/{action}", json=body)
    if resp.status_code == 200:
        o["version"] = resp.json["version"]
    return resp


def walk(api, users, o, to: str):
    """Move an order along the happy path up to ``to``."""
    steps = [
        ("schedule", {"assignee": users["staff"]}),
        ("start", {}),
        ("done", {"quantity": "1", "materials_amount": "12.34"}),
        ("charge", {"charge_mode": "bill"}),
        ("rate", {"satisfaction": 5, "comment": "很好"}),
    ]
    for action, body in steps:
        if ACTIONS[action] == "scheduled" and "start" not in body:
            body = {**body, "requested_start": o["start"], "requested_end": o["end"]}
        resp = act(api, o, action, **body)
        assert resp.status_code == 200, (action, resp.get_data(as_text=True))
        if ACTIONS[action] == to:
            return resp
    return None


# --- money -----------------------------------------------------------------------------------
def _item(pricing, price=None, materials=False):
    return ServiceItem(
        code="X", category="repairs", name="x", name_en="x", pricing=pricing, price=price, materials_extra=materials
    )


@pytest.mark.parametrize(
    ("pricing", "price", "materials_extra", "quantity", "materials", "quoted", "expected"),
    [
        ("fixed", "80", False, None, None, None, "80.00"),
        ("fixed", "80", False, "2", None, None, "160.00"),
        ("fixed", "30", True, None, "12.34", None, "42.34"),
        ("fixed", "30", False, None, "12.34", None, "30.00"),  # materials included in the price
        ("per_hour", "50", False, "2.5", None, None, "125.00"),
        ("per_hour", "33.33", False, "1.5", None, None, "50.00"),  # 49.995 rounds half up
        ("per_hour", "60", True, "0.5", "0.10", None, "30.10"),
        ("per_unit", "15", False, "3", None, None, "45.00"),
        ("per_unit", "0.1", False, "3", None, None, "0.30"),  # never 0.30000000000000004
        ("quoted", None, True, None, "100.01", "333.33", "433.34"),
        ("quoted", None, False, None, "100", "333.33", "333.33"),
        ("free", None, False, None, None, None, "0.00"),
        ("free", None, True, None, "5.50", None, "5.50"),  # free work, materials at cost
    ],
)
def test_order_amount_is_exact(app, pricing, price, materials_extra, quantity, materials, quoted, expected):
    def dec(v):
        return None if v is None else Decimal(v)

    amount = order_amount(_item(pricing, dec(price), materials_extra), dec(quantity), dec(materials), dec(quoted))
    assert isinstance(amount, Decimal)
    assert amount == Decimal(expected) and str(amount) == expected


def test_order_amount_needs_quantity_and_quote(app):
    with pytest.raises(FieldErrors) as e:
        order_amount(_item("per_hour", Decimal("50")), None, None, None)
    assert "quantity" in e.value.errors
    with pytest.raises(FieldErrors) as e:
        order_amount(_item("quoted"), None, None, None)
    assert "quoted_price" in e.value.errors


def test_done_computes_the_amount_through_the_api(api, users, order):
    o = order("R-APPLIANCE")  # per hour 60, materials extra
    act(api, o, "schedule", assignee=users["staff"])
    act(api, o, "start")
    resp = act(api, o, "done", quantity="1.5", materials_amount="20.05", materials_note="保险丝")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.json["amount"] == "110.05"
    got = api("Staff").get(f"/api/v1/service_order/{o['id']}").json["result"]
    assert Decimal(str(got["amount"])) == Decimal("110.05")


def test_done_refuses_inexact_or_missing_figures(api, users, order):
    o = order("P-CLEAN")  # per hour
    act(api, o, "schedule", assignee=users["staff"])
    act(api, o, "start")
    assert act(api, o, "done").status_code == 422  # no hours
    assert "quantity" in act(api, o, "done", quantity="1.005").json["message"]
    assert "quantity" in act(api, o, "done", quantity=1.5).json["message"]  # a float is not exact
    q = order("R-DOORWIN")  # quoted
    act(api, q, "schedule", assignee=users["supervisor"])
    act(api, q, "start", role="Supervisor")
    assert "quoted_price" in act(api, q, "done").json["message"]
    assert act(api, q, "done", quoted_price="420", materials_amount="80").json["amount"] == "500.00"


# --- the state machine -----------------------------------------------------------------------
def _body(action, users, o):
    return {
        "schedule": {"assignee": users["staff"], "requested_start": o["start"], "requested_end": o["end"]},
        "start": {},
        "done": {"quantity": "1", "quoted_price": "10"},
        "charge": {"charge_mode": "bill"},
        "rate": {"satisfaction": 4},
        "cancel": {"reason": "住户改期"},
    }[action]


def _refuses_every_illegal_move(api, users, o, status):
    for action, target in ACTIONS.items():
        if target in ORDER_TRANSITIONS[status]:
            continue
        resp = act(api, o, action, **_body(action, users, o))
        assert resp.status_code == 422, (status, action, resp.get_data(as_text=True))
        message = resp.json["message"]["status"][0]
        assert "不能" in message and "可转为" in message, message


def test_every_illegal_transition_is_refused_with_the_reason(api, users, order):
    o = order("R-TAP")
    _refuses_every_illegal_move(api, users, o, "requested")
    for action in ("schedule", "start", "done", "charge", "rate"):
        assert act(api, o, action, **_body(action, users, o)).status_code == 200, action
        _refuses_every_illegal_move(api, users, o, ACTIONS[action])
    c = order("R-TAP")
    assert act(api, c, "cancel", reason="住户取消").status_code == 200
    _refuses_every_illegal_move(api, users, c, "cancelled")
    # a scheduled order may be rescheduled and cancelled
    s = order("R-TAP")
    assert act(api, s, "schedule", **_body("schedule", users, s)).status_code == 200
    new_start, new_end = slot()
    assert (
        act(api, s, "schedule", assignee=users["staff"], requested_start=new_start, requested_end=new_end).status_code
        == 200
    )
    assert act(api, s, "cancel", reason="住户出差").status_code == 200


def test_cancel_needs_a_reason_and_moves_need_the_version(api, order):
    o = order("R-TAP")
    resp = act(api, o, "cancel")
    assert resp.status_code == 422 and "cancel_reason" in resp.json["message"]
    resp = api("Staff").post(f"/api/v1/service_order/{o['id']}/cancel", json={"reason": "x"})
    assert resp.status_code == 422 and "version" in resp.json["message"]
    resp = api("Staff").post(
        f"/api/v1/service_order/{o['id']}/cancel", json={"reason": "x", "version": o["version"] + 7}
    )
    assert resp.status_code == 409
    assert api("Staff").post(f"/api/v1/service_order/{o['id']}/cancel", data="x").status_code == 400
    assert api("Staff").post("/api/v1/service_order/987654321/cancel", json={"version": 1}).status_code == 404


def test_an_order_is_never_deleted(api, order):
    o = order("R-TAP")
    # Cancelled with a reason, never deleted: there is no delete route, on the API or the screen.
    assert api("Manager").delete(f"/api/v1/service_order/{o['id']}").status_code == 405


# --- double booking --------------------------------------------------------------------------
def test_double_booking_is_refused_on_the_assignee(api, users, order):
    start, end = slot(hours=2)
    a, b = order("R-TAP", when=(start, end)), order("R-VALVE", when=(start, end))
    assert act(api, a, "schedule", assignee=users["supervisor"]).status_code == 200
    overlapping = (dt.datetime.fromisoformat(start) + dt.timedelta(hours=1)).isoformat()
    resp = act(api, b, "schedule", assignee=users["supervisor"], requested_start=overlapping)
    assert resp.status_code == 422, resp.get_data(as_text=True)
    assert "assignee" in resp.json["message"]
    # right after the first slot: fine; someone else in the same slot: fine
    after = dt.datetime.fromisoformat(end)
    ok = act(
        api,
        b,
        "schedule",
        assignee=users["supervisor"],
        requested_start=after.isoformat(),
        requested_end=(after + dt.timedelta(hours=1)).isoformat(),
    )
    assert ok.status_code == 200, ok.get_data(as_text=True)
    c = order("R-TAP", when=(start, end))
    assert act(api, c, "schedule", assignee=users["staff"]).status_code == 200
    # a finished order frees the slot
    act(api, a, "start", role="Supervisor")
    act(api, a, "done", role="Supervisor", quantity="1")
    d = order("R-TAP", when=(start, end))
    assert act(api, d, "schedule", assignee=users["supervisor"]).status_code == 200


def test_concurrent_double_booking_only_one_wins(app, api, users, order):
    """Two orders for the same slot, both booked for the same person at once through the API: one
    is scheduled, the other refused (422 on the assignee)."""
    from app.extensions import db
    from models.services import ServiceOrder
    from tests.test_issue9_races_renovation import post, race

    when = slot(hours=2)
    orders = [order("R-TAP", when=when), order("R-DRAIN", when=when)]
    body = {"assignee": users["manager"]}
    results = race(
        [post(api, "Staff", f"/api/v1/service_order/{o['id']}/schedule", {**body, "version": o["version"]}) for o in orders]
    )
    assert sorted(code for code, _ in results) == [200, 422], results
    [lost] = [answer for code, answer in results if code == 422]
    assert "assignee" in lost["message"], lost
    with app.app_context():
        n = db.session.execute(
            select(func.count())
            .select_from(ServiceOrder)
            .where(ServiceOrder.id.in_([o["id"] for o in orders]), ServiceOrder.assignee_id == users["manager"])
        ).scalar()
        db.session.remove()
    assert n == 1


# --- charging --------------------------------------------------------------------------------
def test_charge_to_the_bill_makes_exactly_one_bill_line(app, api, users, order):
    from app.extensions import db
    from models.fees import Bill, post_one_off_charge
    from models.services import ServiceOrder

    o = order("R-TAP")
    walk(api, users, o, "done")
    resp = act(api, o, "charge", charge_mode="bill")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.json["status"] == "charged" and resp.json["bill_id"]
    again = act(api, o, "charge", charge_mode="bill")
    assert again.status_code == 422
    source = f"service_order:{o['id']}"
    with app.app_context():
        bills = db.session.execute(select(Bill).where(Bill.source == source)).scalars().all()
        assert len(bills) == 1
        assert bills[0].amount == Decimal("42.34") and bills[0].unit_id == o["unit"]
        assert bills[0].item.kind == "service"
        row = db.session.get(ServiceOrder, o["id"])
        assert row.bill_id == bills[0].id and row.charge_mode == "bill"
        # posting the same source again returns the same line
        same = post_one_off_charge(
            db.session, unit=row.unit, item=bills[0].item, amount=Decimal("42.34"), source=source
        )
        assert same.id == bills[0].id
        db.session.rollback()
        assert db.session.execute(select(func.count()).select_from(Bill).where(Bill.source == source)).scalar() == 1
        db.session.remove()


def test_charge_needs_a_mode(api, users, order):
    o = order("R-TAP")
    walk(api, users, o, "done")
    resp = act(api, o, "charge")
    assert resp.status_code == 422 and "charge_mode" in resp.json["message"]


def test_free_service_is_charged_without_money(app, api, users, order):
    o = order("E-MAIL")
    walk(api, users, o, "done")
    resp = act(api, o, "charge", charge_mode="bill")
    assert resp.status_code == 200 and resp.json["amount"] == "0.00" and resp.json["bill_id"] is None


def test_paid_on_the_spot_with_a_receipt(app, api, users, order):
    import models.payments as payments
    from models.fees import Bill

    o = order("C-WASH")
    walk(api, users, o, "done")
    resp = act(api, o, "charge", charge_mode="on_spot", method="wechat")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.json["payment_id"] and resp.json["bill_id"]
    from app.extensions import db

    with app.app_context():
        payment = db.session.get(payments.Payment, resp.json["payment_id"])
        assert payment.amount == Decimal("30.00") and payment.receipt_no and payment.method == "wechat"
        bill = db.session.get(Bill, resp.json["bill_id"])
        assert bill.amount == Decimal("30.00") and bill.outstanding == 0
        db.session.remove()


# --- periodic services -----------------------------------------------------------------------
def test_periodic_job_is_idempotent(app, make_unit, catalog, users):
    from app.extensions import db
    from jobs.services import generate_orders
    from models.services import ServiceOrder, ServiceSubscription

    now = dt.datetime(2032, 5, 1, 0, 0, tzinfo=dt.UTC)
    unit = make_unit()["unit"]
    with app.app_context():
        weekly = ServiceSubscription(
            item_id=catalog["P-CLEAN"],
            unit_id=unit,
            recurrence="weekly",
            first_start=now - dt.timedelta(days=20, hours=-2),  # started before; same weekday each week
            duration_minutes=120,
        )
        monthly = ServiceSubscription(
            item_id=catalog["P-PLANTS"],
            unit_id=unit,
            recurrence="monthly",
            first_start=dt.datetime(2032, 1, 31, 2, 0, tzinfo=dt.UTC),
            duration_minutes=60,
            assignee_id=users["staff"],
        )
        ended = ServiceSubscription(
            item_id=catalog["P-WINDOW"],
            unit_id=unit,
            recurrence="biweekly",
            first_start=now - dt.timedelta(days=60),
            until=now - dt.timedelta(days=1),
        )
        db.session.add_all([weekly, monthly, ended])
        db.session.commit()
        ids = [weekly.id, monthly.id, ended.id]

        def orders():
            return db.session.execute(
                select(ServiceOrder.subscription_id, ServiceOrder.requested_start, ServiceOrder.status)
                .where(ServiceOrder.subscription_id.in_(ids))
                .order_by(ServiceOrder.requested_start)
            ).all()

        first = generate_orders(db.session, now=now, horizon_days=14)
        got = orders()
        second = generate_orders(db.session, now=now, horizon_days=14)
        assert orders() == got
        assert first["created"] == len(got) and second["created"] == 0, (first, second)
        assert got, first
        weekly_starts = [r.requested_start for r in got if r.subscription_id == weekly.id]
        assert len(weekly_starts) == 2 and weekly_starts[1] - weekly_starts[0] == dt.timedelta(days=7)
        assert all(now <= s < now + dt.timedelta(days=14) for s in weekly_starts)
        # monthly on the 31st: the month's last day when shorter (April 30 is before the window)
        assert [r.requested_start for r in got if r.subscription_id == monthly.id] == []
        longer = generate_orders(db.session, now=now, horizon_days=45)
        monthly_rows = [r for r in orders() if r.subscription_id == monthly.id]
        assert [r.requested_start.date() for r in monthly_rows] == [dt.date(2032, 5, 31)]
        assert monthly_rows[0].status == "scheduled"
        assert longer["created"] == len(orders()) - len(got)
        assert not [r for r in orders() if r.subscription_id == ended.id]
        db.session.remove()


def test_periodic_job_runs_from_the_command_line(app):
    runner = app.test_cli_runner()
    listed = runner.invoke(args=["desk", "run-job", "--list"])
    assert "services.generate_periodic_orders" in listed.output
    result = runner.invoke(args=["desk", "run-job", "services.generate_periodic_orders"])
    assert result.exit_code == 0, result.output
    assert "created" in result.output
    assert "services.generate_periodic_orders" in app.config["CELERY_BEAT_SCHEDULE"]


# --- orders from owner-paid repair tickets ----------------------------------------------------
def _ticket(api, unit, responsibility):
    resp = api("Staff").post(
        "/api/v1/ticket/",
        json={"kind": "repair", "description": "厨房水龙头漏水", "unit": unit, "responsibility": responsibility},
    )
    assert resp.status_code == 201, resp.get_data(as_text=True)
    return resp.json["id"]


def test_order_from_an_owner_paid_ticket(api, web, make_unit, catalog):
    ids = make_unit()
    ticket = _ticket(api, ids["unit"], "owner_paid")
    resp = api("Staff").post("/api/v1/service_order/from_ticket", json={"ticket": ticket, "item": catalog["R-TAP"]})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    number = resp.json["number"]
    got = api("Staff").get(f"/api/v1/service_order/{resp.json['id']}").json["result"]
    assert got["ticket"]["number"] if isinstance(got.get("ticket"), dict) else True
    assert got["unit"]["code"] if isinstance(got.get("unit"), dict) else True
    # twice for the same service: refused
    dup = api("Staff").post("/api/v1/service_order/from_ticket", json={"ticket": ticket, "item": catalog["R-TAP"]})
    assert dup.status_code == 422
    # the ticket's page lists its orders
    page = web("Staff").get(f"/ticket/show/{ticket}").get_data(as_text=True)
    assert number in page and "desk-from-ticket" in page


def test_no_order_from_a_ticket_that_is_not_owner_paid(api, make_unit, catalog):
    ticket = _ticket(api, make_unit()["unit"], "common_area")
    resp = api("Staff").post("/api/v1/service_order/from_ticket", json={"ticket": ticket, "item": catalog["R-TAP"]})
    assert resp.status_code == 422 and "ticket" in resp.json["message"]
    missing = api("Staff").post("/api/v1/service_order/from_ticket", json={"ticket": 987654321, "item": 1})
    assert missing.status_code == 422
    assert api("Committee").post("/api/v1/service_order/from_ticket", json={"ticket": ticket}).status_code == 403


# --- the demo catalog ------------------------------------------------------------------------
LISTED = [
    # repairs
    "clear drains",
    "fix taps",
    "valves",
    "mailbox locks",
    "electricity meters",
    "water meters",
    "door locks",
    "appliances",
    "install air conditioners",
    "check air conditioners",
    "doors and windows",
    # periodic
    "cleaning",
    "window washing",
    "indoor plants",
    # errands
    "milk delivery",
    "valet parking",
    "school pick-up",
    "magazine subscriptions",
    "mail pick-up",
    "train",
    "ship",
    "air tickets",
    "paying water, power and gas",
    "tutors",
    "nannies",
    "hourly helpers",
    # car wash and waxing, recreation, medical
    "car wash",
    "waxing",
    "recreation activities",
    "resident doctor",
    "first-aid kits",
]


def test_demo_catalog_covers_every_listed_service(app, catalog):
    import re

    from app.extensions import db
    from app.seed import service_catalog
    from models.services import SERVICE_CATEGORIES

    with app.app_context():
        items = db.session.execute(select(ServiceItem)).scalars().all()
        names = [i.name_en.lower() for i in items]
        for service in LISTED:
            assert any(service in n for n in names), f"no catalog entry for {service!r}"
        demo = [i for i in items if i.code in catalog]
        assert {i.category for i in demo} == set(SERVICE_CATEGORIES)
        for i in demo:
            assert re.search(r"[\u4e00-\u9fff]", i.name) and i.name_en
            i.check()
            assert i.demo_price == (i.pricing != "free")
            assert i.fee_item is not None and i.fee_item.kind == "service"
        assert service_catalog() == 0  # idempotent
        db.session.remove()


def test_demo_prices_are_marked_on_screen(web, catalog):
    page = web("Staff").get("/service_item/list/").get_data(as_text=True)
    assert "示例价格" in page


# --- roles -----------------------------------------------------------------------------------
def test_only_managers_edit_the_catalog(api, catalog):
    body = {"code": "T-ROLE", "category": "errands", "name": "代取快递", "name_en": "Parcel pick-up", "pricing": "free"}
    assert api("Staff").post("/api/v1/service_item/", json=body).status_code == 403
    assert api("Supervisor").post("/api/v1/service_item/", json=body).status_code == 403
    assert api("Committee").post("/api/v1/service_item/", json=body).status_code == 403
    resp = api("Manager").post("/api/v1/service_item/", json=body)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    bad = api("Manager").post("/api/v1/service_item/", json={**body, "code": "T-ROLE2", "pricing": "fixed"})
    assert bad.status_code == 422 and "price" in bad.json["message"]
    assert api("Staff").put(f"/api/v1/service_item/{catalog['R-TAP']}", json={"price": "1"}).status_code == 403
    assert api("Staff").get("/api/v1/service_item/").status_code == 200
    assert api("Committee").get("/api/v1/service_item/").status_code == 200


def test_staff_handle_orders_and_the_committee_only_reads(api, users, order, web):
    o = order("R-TAP")
    assert act(api, o, "schedule", role="Committee", assignee=users["staff"]).status_code == 403
    assert act(api, o, "cancel", role="Committee", reason="x").status_code == 403
    assert api("Committee").get(f"/api/v1/service_order/{o['id']}").status_code == 200
    assert api("Committee").get("/api/v1/service_order/report").status_code == 200
    assert api("Committee").get("/api/v1/service_subscription/").status_code == 200
    assert api("Committee").get("/api/v1/service_subscription/export").status_code == 403
    assert act(api, o, "schedule", role="Staff", assignee=users["staff"]).status_code == 200
    committee = web("Committee")
    page = committee.get(f"/service_order/show/{o['id']}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "desk-start" not in html and "desk-cancel" not in html
    assert committee.post(f"/service_order/start/{o['id']}", data={"version": o["version"]}).status_code in (302, 403)
    assert api("Staff").get(f"/api/v1/service_order/{o['id']}").json["result"]["status"] == "scheduled"


# --- screens and report ----------------------------------------------------------------------
def test_order_page_shows_the_no_tips_notice(web, order):
    from models.services import NO_TIPS

    o = order("R-TAP")
    html = web("Staff").get(f"/service_order/show/{o['id']}").get_data(as_text=True)
    assert NO_TIPS.zh in html and "desk-schedule" in html and "示例价格" in html
    add = web("Staff").get("/service_order/add").get_data(as_text=True)
    assert NO_TIPS.zh in add


def test_report_per_item_month_and_staff(api, web, users, order):
    o = order("C-WAX")
    walk(api, users, o, "rated")
    resp = api("Manager").get("/api/v1/service_order/report?from=2031-01-01&to=2031-12-31")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    fig = resp.json
    wax = [x for x in fig["by_item"] if x["item"] == "汽车打蜡"]
    assert wax and Decimal(wax[0]["revenue"]) >= Decimal("120.00") and wax[0]["satisfaction"] == 5.0
    assert any(s["user_id"] == users["staff"] and s["ratings"] >= 1 for s in fig["by_staff"])
    assert fig["by_month"] and all(len(m["month"]) == 7 for m in fig["by_month"])
    assert api("Manager").get("/api/v1/service_order/report?from=2031-13-01").status_code == 400
    html = web("Committee").get("/service_order/report?from=2031-01-01&to=2031-12-31").get_data(as_text=True)
    assert 'class="desk-chart"' in html and "汽车打蜡" in html and "desk-by-staff" in html
