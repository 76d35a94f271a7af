"""A shared scene: one database, seeded once per test session with rows of (nearly) every
registered resource and with known secrets, for the tests that walk the whole registry
(``test_exposure.py``: nothing leaks; ``test_forms.py``: every form saves as it should).

It lives in a database of its own: its secrets and its rows must not reach other tests' lists.
Test modules use it by binding ``app`` / ``tokens`` to ``scene_app`` / ``scene_tokens``.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import select

from tests import conftest as cf

OWNER_ID = "110101199003074514"
OWNER_PHONE = "13812345678"
RESIDENT_ID = "440305198807150031"
RESIDENT_PHONE = "13923456781"
VISITOR_PHONE = "13634567812"
CONTACT_PHONE = "13745678123"
CONSULT_SECRET = "离婚财产分割咨询-绝密-7Q"
REPLY_SECRET = "答复内容-绝密-7Q"
WEBHOOK_TOKEN = "wh-token-9f8e7d6c5b4a"
PAYER_SECRET = "付款人甲乙丙-7Q"
DISPUTE_SECRET = "争议说明-绝密-7Q"


@pytest.fixture(scope="session")
def scene_app():
    with cf.app_aside("desk_scene") as flask_app:
        yield flask_app


@pytest.fixture(scope="session")
def scene_tokens(scene_app):
    return cf.login_tokens(scene_app)


def api_client(app, token):
    """A client sending the token, each request in an app context of its own (as in production)."""

    class C:
        def __getattr__(self, method):
            def call(url, **kw):
                with app.app_context():
                    return getattr(app.test_client(), method)(url, headers={"Authorization": f"Bearer {token}"}, **kw)

            return call

    return C()


def _ok(resp, code=(200, 201)):
    assert resp.status_code in code, resp.get_data(as_text=True)[:800]
    return resp.json


@pytest.fixture(scope="session")
def scene(scene_app, scene_tokens):
    """Seed one or more rows of every area, with the secrets above; returns what to look for."""
    return seed_estate(scene_app, scene_tokens, "EXPO", 1)


def _personal(n: int) -> dict:
    """The personal data of the n-th seeded estate: estate 1 carries the secrets above, the others
    numbers of their own (ID numbers are unique)."""
    from models.validators import id_check_digit

    if n == 1:
        return {"owner_id": OWNER_ID, "owner_phone": OWNER_PHONE, "resident_id": RESIDENT_ID,
                "resident_phone": RESIDENT_PHONE, "visitor_phone": VISITOR_PHONE, "contact_phone": CONTACT_PHONE}
    base_owner, base_resident = f"11010119900307{n:03d}", f"44030519880715{n + 100:03d}"  # area, birth, sequence
    return {
        "owner_id": base_owner + id_check_digit(base_owner),
        "resident_id": base_resident + id_check_digit(base_resident),
        "owner_phone": f"138{n:04d}5678",
        "resident_phone": f"139{n:04d}5678",
        "visitor_phone": f"136{n:04d}5678",
        "contact_phone": f"137{n:04d}5678",
    }


def seed_estate(app, tokens, tag: str, n: int) -> dict:
    """One estate (code ``tag``) with rows of every area in the states the walks need, written
    through the API as the product writes them. The first one (n=1) also gets the company-wide
    rows (a robot route, inbox messages) and the secrets the exposure walk looks for."""
    from flask_appbuilder.security.sqla.models import User

    from app.extensions import db
    from app.seed import renovation_fee_items, service_catalog
    from models.archives import Building, Estate, Owner, Ownership, Resident, Unit, Vehicle
    from models.base import acting_as
    from models.desk import DutyShift, Notification, NotificationRoute
    from models.fees import Bill, FeeItem
    from models.payments import record_payment, refund
    from models.services import ServiceItem

    who = _personal(n)
    admin = api_client(app, tokens["Admin"])
    manager = api_client(app, tokens["Manager"])
    staff = api_client(app, tokens["Staff"])
    with app.app_context():
        users = dict(db.session.execute(select(User.username, User.id)).all())
        with acting_as(users["admin"]):
            estate = Estate(code=tag, name=f"保密小区{n}", phone="0755-26880000")
            building = Building(estate=estate, code="1", name="1栋")
            unit = Unit(building=building, code="1-1-101", floor=1, gross_area=Decimal("88.50"))
            owner = Owner(name=f"保密业主{n}", phone=who["owner_phone"], id_number=who["owner_id"])
            db.session.add_all([estate, building, unit, owner])
            db.session.flush()
            db.session.add_all(
                [
                    Ownership(unit_id=unit.id, owner_id=owner.id),
                    Resident(
                        unit_id=unit.id, owner_id=owner.id, name=f"保密住户{n}", phone=who["resident_phone"], id_number=who["resident_id"]
                    ),
                    Vehicle(plate=f"粤B7Q00{n}", unit_id=unit.id, owner_id=owner.id),
                    DutyShift(
                        user_id=users["staff"],
                        estate_id=estate.id,
                        starts_at=dt.datetime(2031, 1, 1, tzinfo=dt.UTC),
                        ends_at=dt.datetime(2031, 1, 1, 8, tzinfo=dt.UTC),
                        post="前台",
                    ),
                ]
                + (
                    [
                        NotificationRoute(
                            role="Supervisor",
                            channel="webhook",
                            target=f"http://127.0.0.1:9/cgi-bin/webhook/send?key={WEBHOOK_TOKEN}",
                            active=True,
                        )
                    ]
                    if n == 1
                    else []
                )
            )
            db.session.commit()
            ids = {"estate": estate.id, "unit": unit.id, "owner": owner.id}
            for username in ("admin", "manager", "supervisor", "staff", "committee") if n == 1 else ():
                db.session.add(
                    Notification(
                        user_id=users[username],
                        recipient=username,
                        kind="warn",
                        subject_type="estate",
                        subject_id=estate.id,
                        deadline_at=dt.datetime(2031, 1, 1, tzinfo=dt.UTC),
                        title="通知",
                        body="正文",
                    )
                )
            db.session.commit()
            renovation_fee_items()
            service_catalog()

    # Help requests: a confidential written consultation handled by the supervisor, a repair.
    consult = _ok(
        admin.post(
            "/api/v1/ticket/",
            json={
                "kind": "consultation",
                "channel": "phone",
                "priority": "normal",
                "unit": ids["unit"],
                "owner": ids["owner"],
                "visitor_name": "来电人",
                "visitor_phone": who["visitor_phone"],
                "consult_mode": "oral",
                "description": CONSULT_SECRET,
                "reply": REPLY_SECRET,
                "confidential": True,
                "assignee": users["supervisor"],
            },
        )
    )
    repair = _ok(
        staff.post(
            "/api/v1/ticket/",
            json={
                "kind": "repair",
                "channel": "phone",
                "priority": "normal",
                "unit": ids["unit"],
                "visitor_phone": who["visitor_phone"],
                "description": "厨房水管漏水",
                "responsibility": "common_area",
            },
        )
    )
    for to in ("acknowledged", "in_progress", "resolved"):
        version = staff.get(f"/api/v1/ticket/{repair['id']}").json["result"]["version"]
        staff.post(f"/api/v1/ticket/{repair['id']}/transition", json={"to": to, "version": version})
    # The desk's other states, for the walk of its actions (test_actions.py): a complaint whose
    # callback is finished (closed), a cancelled request, and last (the newest request, still open)
    # a repair its owner pays for, from which a paid service order may be made.
    complaint = _ok(staff.post("/api/v1/ticket/", json={"kind": "complaint", "complaint_about": "neighbour", "unit": ids["unit"], "description": "楼上噪音"}))
    _ok(staff.post(f"/api/v1/ticket/{complaint['id']}/transition", json={"to": "resolved", "version": complaint["version"]}))
    with app.app_context():
        from models.desk import Callback

        callback = db.session.execute(select(Callback.id).where(Callback.ticket_id == complaint["id"])).scalar_one()
        db.session.remove()
    _ok(staff.post(f"/api/v1/callback/{callback}/outcome", json={"reached": True, "satisfaction": 5}))
    withdrawn = _ok(staff.post("/api/v1/ticket/", json={"kind": "other", "unit": ids["unit"], "description": "借用梯子"}))
    _ok(staff.post(f"/api/v1/ticket/{withdrawn['id']}/transition", json={"to": "cancelled", "reason": "住户撤回", "version": withdrawn["version"]}))
    _ok(staff.post("/api/v1/ticket/", json={"kind": "repair", "unit": ids["unit"], "description": "更换水龙头", "responsibility": "owner_paid"}))

    # Money: a bill with a dispute note, a payment with a payer, a refund.
    with app.app_context():
        with acting_as(users["admin"]):
            item = FeeItem(code=f"{tag}-PF", name=f"物业服务费{n}", kind="property_service")
            db.session.add(item)
            db.session.flush()
            today = dt.date.today()
            bill = Bill(
                estate_id=ids["estate"],
                unit_id=ids["unit"],
                item_id=item.id,
                period=f"{today:%Y-%m}",
                source=f"{tag}:1",
                quantity=Decimal(1),
                unit_price=Decimal("300.00"),
                amount=Decimal("300.00"),
                issued_on=today,
                due_date=today + dt.timedelta(days=30),
                disputed=True,
                dispute_note=DISPUTE_SECRET,
            )
            db.session.add(bill)
            db.session.flush()
            unit_row = db.session.get(Unit, ids["unit"])
            payment = record_payment(db.session, unit_row, Decimal("500.00"), "cash", payer_name=PAYER_SECRET)
            db.session.flush()
            refund(db.session, unit_row, Decimal("10.00"), "退多收", method="cash")
            db.session.commit()
            receipt_no = payment.receipt_no
            item_id = item.id
            tap = db.session.execute(select(ServiceItem.id).where(ServiceItem.code == "R-TAP")).scalar()

    # A paid service order charged to the unit's bill, a periodic subscription.
    start = dt.datetime(2031, 5, 1, 2, tzinfo=dt.UTC) + dt.timedelta(days=30 * (n - 1))  # no double booking
    order = _ok(
        staff.post(
            "/api/v1/service_order/",
            json={
                "item": tap,
                "unit": ids["unit"],
                "requested_start": start.isoformat(),
                "requested_end": (start + dt.timedelta(hours=2)).isoformat(),
            },
        )
    )
    version = order["version"]
    for action, body in (
        ("schedule", {"assignee": users["staff"]}),
        ("start", {}),
        ("done", {"quantity": "1", "materials_amount": "12.34"}),
        ("charge", {"charge_mode": "bill"}),
    ):
        resp = staff.post(f"/api/v1/service_order/{order['id']}/{action}", json={"version": version, **body})
        version = _ok(resp).get("version", version)
    # Orders still requested and in progress, for the walk of their actions (test_actions.py).
    for days, steps in ((1, ()), (2, (("schedule", {"assignee": users["staff"]}), ("start", {})))):
        begin = start + dt.timedelta(days=days)
        body = {"item": tap, "unit": ids["unit"], "requested_start": begin.isoformat()}
        made = _ok(staff.post("/api/v1/service_order/", json={**body, "requested_end": (begin + dt.timedelta(hours=1)).isoformat()}))
        version = made["version"]
        for action, extra in steps:
            resp = staff.post(f"/api/v1/service_order/{made['id']}/{action}", json={"version": version, **extra})
            version = _ok(resp)["version"]
    _ok(
        staff.post(
            "/api/v1/service_subscription/",
            json={
                "item": tap,
                "unit": ids["unit"],
                "recurrence": "weekly",
                "first_start": start.isoformat(),
                "duration_minutes": 60,
                "assignee": users["staff"],
            },
        )
    )

    # A renovation with its contact's phone, an inspection with a violation, an extension, a deduction.
    from tests.test_renovation import application, pay_deposit

    reno = _ok(staff.post("/api/v1/renovation/", json=application(ids["unit"], phone=who["contact_phone"])))
    version = _ok(manager.post(f"/api/v1/renovation/{reno['id']}/approve", json={"version": reno["version"]}))["version"]
    pay_deposit(app, reno["id"])
    _ok(staff.post(f"/api/v1/renovation/{reno['id']}/start", json={"version": version}))
    _ok(
        staff.post(
            "/api/v1/inspection/", json={"renovation": reno["id"], "findings": "拆改承重墙", "violation": True}
        )
    )
    _ok(
        staff.post(
            "/api/v1/renovation_extension/",
            json={"renovation": reno["id"], "new_end": (dt.date.today() + dt.timedelta(days=60)).isoformat(), "reason": "工期延误"},
        )
    )
    _ok(staff.post("/api/v1/deposit_deduction/", json={"renovation": reno["id"], "amount": "50.00", "reason": "损坏公共设施"}))

    # Fees: a draft standard, a meter reading, a billing run, an overdue bill and its dunning notice.
    _ok(
        manager.post(
            "/api/v1/fee_standard/",
            json={
                "item": item_id,
                "basis": "per_area_month",
                "unit_price": "2.5000",
                "rounding": "half_up_cent",
                "unit_uses": ["residential"],
                "estates": [ids["estate"]],
                "effective_from": "2033-01-01",
            },
        )
    )
    with app.app_context():
        with acting_as(users["admin"]):
            water = FeeItem(code=f"{tag}-W", name=f"水费{n}", kind="water")
            db.session.add(water)
            db.session.commit()
            water_id = water.id
    _ok(
        staff.post(
            "/api/v1/meter_reading/",
            json={"unit": ids["unit"], "item": water_id, "period": "2033-01", "read_on": "2033-01-25", "reading": "12.5"},
        )
    )
    _ok(manager.post("/api/v1/billing_run/", json={"estate": ids["estate"], "period": "2033-01"}))
    with app.app_context():
        from jobs.dunning import run_dunning

        with acting_as(users["admin"]):
            due = dt.date.today() - dt.timedelta(days=40)
            db.session.add(
                Bill(
                    estate_id=ids["estate"],
                    unit_id=ids["unit"],
                    item_id=item_id,
                    period=f"{due:%Y-%m}",
                    source=f"{tag}:overdue",
                    quantity=Decimal(1),
                    unit_price=Decimal("900.00"),
                    amount=Decimal("900.00"),
                    issued_on=due - dt.timedelta(days=20),
                    due_date=due,
                )
            )
            db.session.commit()
        run_dunning(dt.date.today(), estate_id=ids["estate"])
    # Money in the other states its actions know (test_actions.py): a late fee left to waive, a
    # voided payment, a delivered notice.
    with app.app_context():
        from models.payments import DunningNotice, void_payment

        with acting_as(users["admin"]):
            day = dt.date.today() - dt.timedelta(days=60)
            where = {"estate_id": ids["estate"], "unit_id": ids["unit"]}
            money = {"quantity": Decimal(1), "unit_price": Decimal("80.00"), "amount": Decimal("80.00")}
            late = {"period": f"{day:%Y-%m}", "source": f"{tag}:late", "late_fee": Decimal("8.00"), **money}
            db.session.add(Bill(**where, **late, item_id=item_id, issued_on=day, due_date=day + dt.timedelta(days=20)))
            voided = record_payment(db.session, db.session.get(Unit, ids["unit"]), Decimal("1.00"), "cash", [])
            void_payment(voided, "录入错误")
            cycle = {"cycle_due_date": dt.date(2030, 1, 1), "oldest_period": "2029-12", "amount_due": Decimal("1.00")}
            db.session.add(DunningNotice(**where, **cycle, stage="reminder", issued_on=day, sent=True))
            db.session.commit()

    with app.app_context():
        hashes = [h for h in db.session.execute(select(User.password)).scalars() if h and len(h) > 20]
    return {
        "hashes": hashes,
        "personal": list(who.values()),
        "confidential": [CONSULT_SECRET, REPLY_SECRET],
        # Strings that only a reader of that resource may ever see.
        "records": {
            "payment": [receipt_no, PAYER_SECRET],
            "bill": [DISPUTE_SECRET],
            "notification_route": [WEBHOOK_TOKEN],
        },
        "consult": consult["id"],
        "estate": ids["estate"],
        "unit": ids["unit"],
        "renovation": reno["id"],
    }


def two_estates(app, tags: tuple[str, str], roles=("Manager", "Supervisor", "Staff", "Committee")) -> dict:
    """Estates A and B with rows of every area (``seed_estate``), and a user of each role who
    works for A only (``<role>_a``); their API tokens, the Admin's, and B's ids."""
    from app.extensions import db
    from app.seed import ensure_user

    tokens = cf.login_tokens(app)
    a = seed_estate(app, tokens, tags[0], 1)
    b = seed_estate(app, tokens, tags[1], 2)
    with app.app_context():
        for role in roles:
            ensure_user(app.appbuilder.sm, f"{role.lower()}_a", role, role, "A", cf.PASSWORD, estates=[a["estate"]])
        db.session.remove()
    client = app.test_client()
    scoped = {}
    for role in roles:
        resp = client.post(
            "/api/v1/security/login", json={"username": f"{role.lower()}_a", "password": cf.PASSWORD, "provider": "db"}
        )
        scoped[role] = resp.json["access_token"]
    return {"A": a["estate"], "B": b["estate"], "tokens": scoped, "admin": tokens["Admin"], "b": b}

