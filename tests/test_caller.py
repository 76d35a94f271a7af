"""Taking a call (issue 12, part 2): the caller card finds the caller by any part of a phone, a
unit code or a name, with their units, open requests and arrears, within the user's estates; the
sub-classes of each class are data a Manager maintains; the request list shows what it is about,
the phone, the unit, the deadline and the handler by name."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest
from sqlalchemy import select

from tests import conftest as cf
from tests.test_payments import new_bill, new_item


@pytest.fixture(scope="module")
def call(app):
    """An owner with two units in one estate, a tenant in one of them, an open request and an
    overdue bill on the first unit; a second estate with a namesake owner; a clerk who works for
    the first estate only."""
    from app.extensions import db
    from app.seed import ensure_user
    from models.archives import Building, Estate, Owner, Ownership, Resident, Unit
    from models.desk import Ticket
    from models.fees import local_today

    tag = uuid.uuid4().hex[:6]
    phone = f"139{uuid.uuid4().int % 10**8:08d}"
    with app.app_context():
        a = Estate(code=f"CA{tag}", name=f"来电甲{tag}")
        b = Estate(code=f"CB{tag}", name=f"来电乙{tag}")
        ba, bb = Building(estate=a, code="7", name="7栋"), Building(estate=b, code="7", name="7栋")
        u1 = Unit(building=ba, code=f"7-1-{tag}1", floor=1, gross_area=Decimal("90"))
        u2 = Unit(building=ba, code=f"7-2-{tag}2", floor=2, gross_area=Decimal("90"))
        u3 = Unit(building=bb, code=f"7-1-{tag}3", floor=1, gross_area=Decimal("90"))
        owner = Owner(name=f"李来电{tag}", phone=phone)
        namesake = Owner(name=f"李来电{tag}", phone=f"137{uuid.uuid4().int % 10**8:08d}")
        db.session.add_all([a, b, ba, bb, u1, u2, u3, owner, namesake])
        db.session.flush()
        db.session.add_all(
            [
                Ownership(unit_id=u1.id, owner_id=owner.id),
                Ownership(unit_id=u2.id, owner_id=owner.id),
                Ownership(unit_id=u3.id, owner_id=namesake.id),
                Resident(unit_id=u2.id, name=f"王租客{tag}", relation="tenant", phone="13600001111"),
            ]
        )
        db.session.flush()
        ticket = Ticket(
            kind="repair", subkind="plumbing", channel="phone", priority="normal", estate_id=a.id, unit_id=u1.id,
            owner_id=owner.id, visitor_name=owner.name, description="厨房水管漏水",
        )
        db.session.add(ticket)
        item = new_item(db.session)
        new_bill(db.session, u1, item, "321.50", local_today() - dt.timedelta(days=40))
        new_bill(db.session, u1, item, "100.00", local_today() + dt.timedelta(days=10))  # not yet due
        db.session.commit()
        ensure_user(app.appbuilder.sm, f"clerk_{tag}", "Staff", "张", "接线", cf.PASSWORD, estates=[a.id])
        ensure_user(app.appbuilder.sm, f"board_{tag}", "Committee", "赵", "委员", cf.PASSWORD, estates=[a.id])
        out = {
            "tag": tag, "phone": phone, "a": a.id, "b": b.id, "u1": u1.id, "u2": u2.id, "u3": u3.id,
            "owner": owner.id, "namesake": namesake.id, "ticket": ticket.number, "clerk": f"clerk_{tag}",
            "board": f"board_{tag}", "code1": u1.code,
        }
        db.session.remove()
    return out


def _client(app, username):
    client = cf.FreshContextClient(app, app.test_client())
    resp = client.post("/login/", data={"username": username, "password": cf.PASSWORD})
    assert resp.status_code in (302, 303)
    return client


def _card(client, **params):
    resp = client.get("/ticket/caller", query_string=params)
    assert resp.status_code == 200, resp.get_data(as_text=True)[:300]
    return resp.json


def test_part_of_a_phone_finds_the_owner_units_open_requests_and_arrears(app, call):
    data = _card(_client(app, call["clerk"]), q=call["phone"][3:9])
    people = [p for p in data["people"] if p["kind"] == "owner"]
    assert [p["id"] for p in people] == [call["owner"]]
    units = {u["id"]: u for u in people[0]["units"]}
    assert set(units) == {call["u1"], call["u2"]}
    assert [t["number"] for t in units[call["u1"]]["tickets"]] == [call["ticket"]]
    assert units[call["u1"]]["tickets"][0]["deadline"]  # the reply deadline it works to now
    # Arrears: what is overdue and unpaid, not the bill that is not due yet.
    assert Decimal(units[call["u1"]]["arrears"]) == Decimal("321.50")
    assert Decimal(units[call["u2"]]["arrears"]) == Decimal("0")
    # The card names them and offers "use" with what fills the form.
    assert call["ticket"] in data["html"] and "321.50" in data["html"]
    assert f'data-unit-id="{call["u1"]}"' in data["html"] and f'data-owner-id="{call["owner"]}"' in data["html"]
    assert f'data-contact-phone="{call["phone"]}"' in data["html"]


def test_a_unit_code_or_a_name_finds_the_caller_and_only_in_the_users_estates(app, call):
    clerk = _client(app, call["clerk"])
    by_code = _card(clerk, q=call["code1"][-4:])
    assert any(u["id"] == call["u1"] for p in by_code["people"] for u in p["units"])
    by_name = _card(clerk, q=f"李来电{call['tag']}")
    ids = {p["id"] for p in by_name["people"] if p["kind"] == "owner"}
    # The namesake in the other estate is not the clerk's to see.
    assert ids == {call["owner"]}
    assert all(u["estate_id"] == call["a"] for p in by_name["people"] for u in p["units"])
    # The tenant is found by name, with the unit they live in and its owner.
    tenant = _card(clerk, q=f"王租客{call['tag']}")["people"]
    assert [(p["kind"], [u["id"] for u in p["units"]]) for p in tenant] == [("resident", [call["u2"]])]
    assert tenant[0]["units"][0]["owner_id"] == call["owner"]
    # A unit of the other estate asked for by id: nothing.
    assert _card(clerk, unit=call["u3"])["people"] == []
    # The Admin (every estate) finds both namesakes.
    admin = _card(_client(app, "admin"), q=f"李来电{call['tag']}")
    assert {p["id"] for p in admin["people"] if p["kind"] == "owner"} == {call["owner"], call["namesake"]}


def test_picking_a_unit_gives_its_owner_contact_and_phone(app, call):
    data = _card(_client(app, call["clerk"]), unit=call["u1"])
    (person,) = data["people"]
    assert (person["kind"], person["id"], person["phone"]) == ("owner", call["owner"], call["phone"])
    assert person["units"][0]["owner_id"] == call["owner"]


def test_the_card_is_for_those_who_take_calls_and_says_why_for_bad_input(app, call):
    # The Committee takes no calls: no card (403 on the screen route, nothing about anybody).
    board = _client(app, call["board"])
    resp = board.get("/ticket/caller", query_string={"q": call["phone"][3:9]})
    assert resp.status_code in (302, 403)
    assert call["phone"] not in resp.get_data(as_text=True)
    clerk = _client(app, call["clerk"])
    resp = clerk.get("/ticket/caller", query_string={"unit": "abc"})
    assert resp.status_code == 400 and "unit" in resp.json["message"]
    assert _card(clerk, q="7")["people"] == []  # one character finds nobody (too broad)


def test_the_request_form_has_the_caller_card_and_the_sub_classes_by_class(app, call):
    page = _client(app, call["clerk"]).get("/ticket/add").get_data(as_text=True)
    assert 'class="panel panel-info desk-caller"' in page and 'id="desk-caller-q"' in page
    assert '"plumbing": "repair"' in page and '"fire": "disaster"' in page


def test_sub_classes_are_data_a_manager_maintains(app, api, call):
    from app.extensions import db
    from models.desk import TicketSubkind

    code = f"roof_{call['tag']}"
    resp = api("Manager").post(
        "/api/v1/ticket_subkind/", json={"kind": "repair", "code": code, "name": "屋面", "name_en": "Roof", "position": 99, "active": True}
    )
    assert resp.status_code == 201, resp.json
    assert api("Staff").post("/api/v1/ticket_subkind/", json={"kind": "repair", "code": "x1", "name": "x"}).status_code == 403
    body = {
        "kind": "repair", "channel": "phone", "priority": "normal", "unit": call["u1"], "description": "屋面渗水",
        "visitor_name": "李先生",
    }
    # The new sub-class is taken at once; one of another class is refused naming the field.
    ok = api("Staff").post("/api/v1/ticket/", json={**body, "subkind": code})
    assert ok.status_code == 201, ok.json
    bad = api("Staff").post("/api/v1/ticket/", json={**body, "subkind": "fire"})
    assert bad.status_code == 422 and "subkind" in bad.json["message"]
    unknown = api("Staff").post("/api/v1/ticket/", json={**body, "subkind": "no_such"})
    assert unknown.status_code in (400, 422) and "subkind" in unknown.json["message"]
    # A security incident must say which; retiring a sub-class stops offering it, old requests keep it.
    sec = api("Staff").post(
        "/api/v1/ticket/", json={**body, "kind": "security", "address": "7栋大堂", "callback_phone": "13800001111"}
    )
    assert sec.status_code == 422 and "subkind" in sec.json["message"]
    with app.app_context():
        row = db.session.execute(select(TicketSubkind).where(TicketSubkind.code == code)).scalar_one()
        version = row.version
        row_id = row.id
        db.session.remove()
    off = api("Manager").put(f"/api/v1/ticket_subkind/{row_id}", json={"active": False, "version": version})
    assert off.status_code == 200, off.json
    again = api("Staff").post("/api/v1/ticket/", json={**body, "subkind": code})
    assert again.status_code == 422 and "subkind" in again.json["message"]
    kept = api("Staff").get(f"/api/v1/ticket/{ok.json['id']}")
    assert kept.json["result"]["subkind"] == code
    # The list shows its name (data, in the user's language).
    listing = _client(app, "admin").get(f"/ticket/show/{ok.json['id']}").get_data(as_text=True)
    assert "屋面" in listing


def test_the_list_shows_subject_phone_unit_deadline_and_handler_by_name(app, call):
    from flask_appbuilder.security.sqla.models import User

    from app.extensions import db
    from models.desk import Ticket

    with app.app_context():
        clerk = db.session.execute(select(User).where(User.username == call["clerk"])).scalar_one()
        t = db.session.execute(select(Ticket).where(Ticket.number == call["ticket"])).scalar_one()
        t.assignee_id = clerk.id
        t.visitor_phone = "13912340000"
        db.session.commit()
        db.session.remove()
    page = _client(app, call["clerk"]).get(
        "/ticket/list/", query_string={"_flt_0_number": call["ticket"]}
    ).get_data(as_text=True)
    for header in ("求助内容", "报事人电话", "房号", "当前时限", "处理人"):
        assert header in page, header
    assert "厨房水管漏水" in page and "13912340000" in page and call["code1"] in page
    assert "张接线" in page and f">{call['clerk']}<" not in page  # the name, not the login
    # Searchable by what it is about.
    found = _client(app, call["clerk"]).get("/ticket/list/", query_string={"_flt_2_description": "水管漏"})
    assert call["ticket"] in found.get_data(as_text=True)
    api_rows = _client(app, call["clerk"]).get(
        "/api/v1/ticket/", query_string={"q": f'(filters:!((col:number,opr:eq,value:\'{call["ticket"]}\')))'}
    )
    assert api_rows.status_code == 200, api_rows.get_data(as_text=True)[:300]
    row = api_rows.json["result"][0]
    assert row["deadline"] and row["subject"] == "厨房水管漏水"


def test_on_every_form_with_a_unit_the_owner_follows_the_unit(app, call):
    """Not only the request form: any resource with a unit and an owner field (a service order, a
    renovation, a resident, a vehicle) fills the owner from the unit's sole current owner."""
    from views.lookups import UNIT_OWNER, prefill_rule
    from views.registry import REGISTRY

    with_owner = [
        name for name, res in REGISTRY.items()
        if res.writable and "owner" in (res.add_columns or ()) and "unit" in (res.add_columns or ())
    ]
    assert {"ticket", "service_order", "renovation", "resident"} <= set(with_owner), with_owner
    for name in with_owner:
        assert prefill_rule(REGISTRY[name], "owner") is not None, name
    clerk = _client(app, call["clerk"])
    for name in with_owner:
        resp = clerk.get(f"/{name}/prefill/owner", query_string={"unit": call["u1"]})
        assert resp.status_code == 200 and resp.json == {"id": call["owner"], "text": f"李来电{call['tag']}"}, (name, resp.json)
        # A unit outside the clerk's estates answers nothing.
        assert clerk.get(f"/{name}/prefill/owner", query_string={"unit": call["u3"]}).json == {}
    form = clerk.get("/service_order/add").get_data(as_text=True)
    assert 'data-desk-prefill="/service_order/prefill/owner"' in form and 'data-desk-depends="unit"' in form
    assert UNIT_OWNER.depends == ("unit",)
