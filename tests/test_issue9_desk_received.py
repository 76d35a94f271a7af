"""Issue 9, items 8 and 9: a request's received time, and every emergency's place and phone.

- A request is dated when the office received it (a letter by post, a call noted during an
  outage): now by default, never in the future, with a reason when more than an hour back; the
  deadlines and the registers run from it, on every path (API, screen, ORM).
- Every emergency class (medical, security, disaster) is refused without a place to send people
  and a phone, on every path."""

from __future__ import annotations

import datetime as dt
import re
import uuid

import pytest

from models.desk import EMERGENCY_KINDS, SUBKINDS_OF

SHANGHAI = dt.timezone(dt.timedelta(hours=8))


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _post(api, ids, **extra):
    body = {"kind": "other", "channel": "phone", "unit": ids["unit"], "description": "借梯子", **extra}
    return api("Staff").post("/api/v1/ticket/", json=body)


def _get(api, pk) -> dict:
    return api("Staff").get(f"/api/v1/ticket/{pk}").json["result"]


def _t(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value)


# --- received time ---------------------------------------------------------------------------
def test_received_defaults_to_now_and_deadlines_run_from_it(api, make_unit):
    ids = make_unit()
    before = _now()
    resp = _post(api, ids)
    assert resp.status_code == 201, resp.json
    t = _get(api, resp.json["id"])
    assert before - dt.timedelta(seconds=1) <= _t(t["received_at"]) <= _now()
    assert _t(t["received_at"]) == _t(t["reported_at"])
    assert _t(t["reply_due_at"]) == _t(t["received_at"]) + dt.timedelta(minutes=5)


def test_a_call_noted_later_is_dated_when_it_came_in(api, make_unit):
    ids = make_unit()
    came = (_now() - dt.timedelta(minutes=40)).replace(microsecond=0)
    resp = _post(api, ids, received_at=came.isoformat())
    assert resp.status_code == 201, resp.json
    t = _get(api, resp.json["id"])
    assert _t(t["received_at"]) == came
    assert _t(t["reply_due_at"]) == came + dt.timedelta(minutes=5)
    assert _t(t["resolve_due_at"]) == came + dt.timedelta(minutes=1440)
    assert _t(t["reported_at"]) > came + dt.timedelta(minutes=39)  # recorded now


def test_the_future_is_refused_naming_the_field(api, make_unit):
    resp = _post(api, make_unit(), received_at=(_now() + dt.timedelta(minutes=10)).isoformat())
    assert resp.status_code == 422 and "received_at" in resp.json["message"], resp.json


def test_more_than_an_hour_back_needs_the_reason(api, make_unit):
    ids = make_unit()
    came = (_now() - dt.timedelta(hours=3)).replace(microsecond=0)
    resp = _post(api, ids, received_at=came.isoformat())
    assert resp.status_code == 422 and "received_late_reason" in resp.json["message"], resp.json
    resp = _post(api, ids, received_at=came.isoformat(), received_late_reason="停电，事后补登")
    assert resp.status_code == 201, resp.json
    t = _get(api, resp.json["id"])
    assert _t(t["reply_due_at"]) == came + dt.timedelta(minutes=5)
    # Corrected later: the deadlines follow.
    earlier = came - dt.timedelta(minutes=30)
    resp = api("Staff").put(
        f"/api/v1/ticket/{t['id']}", json={"received_at": earlier.isoformat(), "version": t["version"]}
    )
    assert resp.status_code == 200, resp.json
    assert _t(_get(api, t["id"])["reply_due_at"]) == earlier + dt.timedelta(minutes=5)


def test_every_path_checks_the_received_time(app, make_unit):
    """A job or an import writes through the ORM: the same rules."""
    from app.extensions import db
    from models.base import acting_as, system_user_id
    from models.desk import Ticket
    from models.errors import FieldErrors

    ids = make_unit()
    with app.app_context():
        with acting_as(system_user_id(db.session)):
            for received, field in ((_now() + dt.timedelta(hours=1), "received_at"), (_now() - dt.timedelta(days=2), "received_late_reason")):
                db.session.add(
                    Ticket(kind="other", channel="phone", unit_id=ids["unit"], description="导入", received_at=received)
                )
                with pytest.raises(FieldErrors) as err:
                    db.session.flush()
                assert field in err.value.errors
                db.session.rollback()
        db.session.remove()


def test_the_form_starts_at_now_and_says_what_is_missing(app, web, make_unit):
    ids = make_unit()
    client = web("Staff")
    page = client.get("/ticket/add").get_data(as_text=True)
    m = re.search(r'id="received_at" name="received_at" value="([^"]+)"', page)
    assert m, "the received time is on the form"
    shown = dt.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M").replace(tzinfo=SHANGHAI)
    assert abs(shown - _now()) < dt.timedelta(minutes=2)
    long_ago = (_now() - dt.timedelta(hours=5)).astimezone(SHANGHAI).strftime("%Y-%m-%dT%H:%M")
    form = {
        "kind": "other",
        "channel": "phone",
        "priority": "normal",
        "unit": str(ids["unit"]),
        "description": "信件：咨询停车",
        "received_at": long_ago,
    }
    resp = client.post("/ticket/add", data=form)
    assert resp.status_code == 422
    assert "补登原因" in resp.get_data(as_text=True)
    resp = client.post("/ticket/add", data={**form, "received_late_reason": "信件邮寄"})
    assert resp.status_code in (302, 303), resp.get_data(as_text=True)[:500]


def test_registers_date_a_request_when_it_was_received(app, api, web, make_unit):
    """Received yesterday (local), recorded today: yesterday's register, marked as entered late."""
    ids = make_unit()
    today = _now().astimezone(SHANGHAI).date()
    came = dt.datetime.combine(today - dt.timedelta(days=1), dt.time(9, 30), tzinfo=SHANGHAI)
    text = f"来信 {uuid.uuid4().hex[:6]}"
    resp = _post(api, ids, description=text, received_at=came.isoformat(), received_late_reason="信件邮寄")
    assert resp.status_code == 201, resp.json
    number = _get(api, resp.json["id"])["number"]
    with app.app_context():
        from app.extensions import db
        from models.desk import Ticket

        estate = db.session.get(Ticket, resp.json["id"]).estate_id
        db.session.remove()
    day = came.date().isoformat()
    page = web("Staff").get(f"/ticket/register?register=help&from={day}&to={day}&estate={estate}").get_data(as_text=True)
    assert f'data-number="{number}"' in page
    assert f"{day} 09:30" in page and "补登" in page
    page = web("Staff").get(
        f"/ticket/register?register=help&from={today.isoformat()}&to={today.isoformat()}&estate={estate}"
    ).get_data(as_text=True)
    assert f'data-number="{number}"' not in page


# --- emergencies -----------------------------------------------------------------------------
def _emergency(kind: str, ids, **extra) -> dict:
    body = {"kind": kind, "channel": "phone", "priority": "urgent", "unit": ids["unit"], "description": "紧急情况"}
    if SUBKINDS_OF.get(kind):
        body["subkind"] = sorted(SUBKINDS_OF[kind])[0]
    return {**body, **extra}


@pytest.mark.parametrize("kind", EMERGENCY_KINDS)
def test_every_emergency_needs_a_place_and_a_phone(api, make_unit, kind):
    ids = make_unit()
    resp = api("Staff").post("/api/v1/ticket/", json=_emergency(kind, ids))
    assert resp.status_code == 422, resp.json
    assert {"address", "callback_phone"} <= set(resp.json["message"]), resp.json
    resp = api("Staff").post("/api/v1/ticket/", json=_emergency(kind, ids, address="   ", callback_phone="13812345678"))
    assert resp.status_code == 422 and "address" in resp.json["message"], resp.json
    resp = api("Staff").post(
        "/api/v1/ticket/", json=_emergency(kind, ids, address="2栋地下车库B区", callback_phone="13812345678")
    )
    assert resp.status_code == 201, resp.json


@pytest.mark.parametrize("kind", EMERGENCY_KINDS)
def test_every_emergency_is_refused_without_a_place_on_the_orm_path_too(app, make_unit, kind):
    from app.extensions import db
    from models.base import acting_as, system_user_id
    from models.desk import Ticket
    from models.errors import FieldErrors

    ids = make_unit()
    body = _emergency(kind, ids)
    body["unit_id"] = body.pop("unit")
    with app.app_context():
        with acting_as(system_user_id(db.session)):
            db.session.add(Ticket(**body))
            with pytest.raises(FieldErrors) as err:
                db.session.flush()
            assert {"address", "callback_phone"} <= set(err.value.errors)
            db.session.rollback()
        db.session.remove()


def test_the_screen_refuses_a_fire_without_a_place(web, make_unit):
    ids = make_unit()
    resp = web("Staff").post(
        "/ticket/add",
        data={
            "kind": "disaster",
            "subkind": "fire",
            "channel": "phone",
            "priority": "urgent",
            "unit": str(ids["unit"]),
            "description": "楼道起火",
            "received_at": _now().astimezone(SHANGHAI).strftime("%Y-%m-%dT%H:%M"),
        },
    )
    assert resp.status_code == 422
    page = resp.get_data(as_text=True)
    assert "灾害必须先登记地点" in page and "灾害必须先登记联系电话" in page
