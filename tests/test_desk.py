"""Service desk workflow: tickets, deadlines, escalation with an injected clock, callbacks."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

UTC = dt.UTC


def _ticket(api, ids, **extra):
    body = {
        "kind": "repair",
        "channel": "phone",
        "priority": "normal",
        "unit": ids["unit"],
        "description": "厨房水管漏水",
    }
    body.update(extra)
    resp = api("Staff").post("/api/v1/ticket/", json=body)
    assert resp.status_code == 201, resp.json
    return resp.json["id"]


def _get(api, pk):
    return api("Staff").get(f"/api/v1/ticket/{pk}").json["result"]


def _move(api, pk, to, role="Staff", **extra):
    version = api(role).get(f"/api/v1/ticket/{pk}").json["result"]["version"]
    return api(role).post(f"/api/v1/ticket/{pk}/transition", json={"to": to, "version": version, **extra})


def test_new_ticket_gets_number_deadlines_and_a_timeline(api, make_unit, app):
    ids = make_unit()
    pk = _ticket(api, ids)
    t = _get(api, pk)
    assert t["number"].startswith("QZ") and t["status"] == "new"
    reported = dt.datetime.fromisoformat(t["reported_at"])
    assert dt.datetime.fromisoformat(t["reply_due_at"]) - reported == dt.timedelta(minutes=5)
    with app.app_context():
        from app.extensions import db
        from models.desk import Ticket

        ticket = db.session.get(Ticket, pk)
        assert [e.kind for e in ticket.events] == ["created"]
        assert ticket.next_due_at == ticket.reply_due_at - dt.timedelta(minutes=2)  # the warning first
        db.session.remove()


def test_illegal_transition_is_refused_with_the_reason(api, make_unit):
    pk = _ticket(api, make_unit())
    resp = _move(api, pk, "closed")
    assert resp.status_code == 422
    assert "不能从" in resp.json["message"]["status"][0]
    resp = _move(api, pk, "cancelled")
    assert resp.status_code == 422 and "cancel_reason" in resp.json["message"]
    # a repair cannot be resolved before its responsibility is decided
    resp = _move(api, pk, "resolved")
    assert resp.status_code == 422 and "responsibility" in resp.json["message"]


def test_stale_transition_is_a_conflict(api, make_unit):
    pk = _ticket(api, make_unit())
    resp = api("Staff").post(f"/api/v1/ticket/{pk}/transition", json={"to": "acknowledged", "version": 99})
    assert resp.status_code == 409


def test_emergency_needs_address_and_phone_first(api, make_unit):
    ids = make_unit()
    resp = api("Staff").post(
        "/api/v1/ticket/",
        json={
            "kind": "emergency_medical",
            "channel": "phone",
            "priority": "urgent",
            "unit": ids["unit"],
            "description": "老人晕倒",
        },
    )
    assert resp.status_code == 422
    assert {"address", "callback_phone"} <= set(resp.json["message"])


def test_security_incident_needs_its_subclass(api, make_unit):
    ids = make_unit()
    resp = api("Staff").post(
        "/api/v1/ticket/",
        json={"kind": "security", "channel": "phone", "unit": ids["unit"], "description": "车库有人打架"},
    )
    assert resp.status_code == 422 and "subkind" in resp.json["message"]
    resp = api("Staff").post(
        "/api/v1/ticket/",
        json={"kind": "security", "subkind": "typhoon", "channel": "phone", "unit": ids["unit"], "description": "x"},
    )
    assert resp.status_code == 422 and "subkind" in resp.json["message"]


def test_resolve_creates_callback_and_unsatisfied_reopens(api, make_unit, app):
    pk = _ticket(api, make_unit())
    assert _move(api, pk, "acknowledged").status_code == 200
    version = _get(api, pk)["version"]
    assert (
        api("Staff").put(f"/api/v1/ticket/{pk}", json={"responsibility": "common_area", "version": version}).status_code
        == 200
    )
    assert _move(api, pk, "resolved").status_code == 200
    assert _get(api, pk)["status"] == "callback"
    cbs = api("Staff").get("/api/v1/callback/?q=(order_column:id,order_direction:desc,page_size:5)").json["result"]
    cb = next(c for c in cbs if c["ticket"]["number"] == _get(api, pk)["number"])
    resp = api("Staff").post(
        f"/api/v1/callback/{cb['id']}/outcome", json={"reached": True, "satisfaction": 1, "comment": "还在漏"}
    )
    assert resp.status_code == 200, resp.json
    assert resp.json["ticket_status"] == "reopened"
    # a finished callback cannot be recorded again
    again = api("Staff").post(f"/api/v1/callback/{cb['id']}/outcome", json={"reached": True, "satisfaction": 5})
    assert again.status_code == 422


def test_unreachable_after_configured_tries_closes(api, make_unit, app):
    pk = _ticket(api, make_unit(), kind="complaint", complaint_about="neighbour")
    assert _move(api, pk, "resolved").status_code == 200
    cbs = api("Staff").get("/api/v1/callback/?q=(order_column:id,order_direction:desc,page_size:5)").json["result"]
    cb = next(c for c in cbs if c["ticket"]["number"] == _get(api, pk)["number"])
    for _ in range(app.config["CALLBACK_MAX_TRIES"]):
        resp = api("Staff").post(f"/api/v1/callback/{cb['id']}/outcome", json={"reached": False})
        assert resp.status_code == 200
    assert resp.json["status"] == "unreachable"
    assert _get(api, pk)["status"] == "closed"


def test_sweep_escalates_late_reply_to_supervisor_then_manager(api, make_unit, app):
    from jobs.escalation import sweep
    from models.desk import Notification, Ticket

    pk = _ticket(api, make_unit())
    with app.app_context():
        from app.extensions import db

        t = db.session.get(Ticket, pk)
        reply_due = t.reply_due_at
        db.session.remove()
        # nothing of this ticket is due yet (other tests' tickets may be: only ours is checked)
        sweep(now=reply_due - dt.timedelta(minutes=3))
        t = db.session.get(Ticket, pk)
        assert (t.reply_steps_done, t.escalation_level) == (0, 0)
        assert not db.session.execute(select(Notification.id).where(Notification.subject_id == pk)).first()
        db.session.remove()
        sweep(now=reply_due + dt.timedelta(seconds=1))
        t = db.session.get(Ticket, pk)
        assert t.reply_steps_done == 2  # warned, then escalated to level 1
        assert t.escalation_level == 1
        rows = (
            db.session.execute(
                select(Notification).where(Notification.subject_id == pk, Notification.subject_type == "ticket")
            )
            .scalars()
            .all()
        )
        kinds = {(n.kind, n.user.username) for n in rows}
        assert ("reply_level1", "supervisor") in kinds
        assert not any(user == "manager" for _, user in kinds)
        db.session.remove()
        sweep(now=reply_due + dt.timedelta(minutes=31))
        t = db.session.get(Ticket, pk)
        assert t.escalation_level == 2
        rows = (
            db.session.execute(
                select(Notification).where(Notification.subject_id == pk, Notification.kind == "reply_level2")
            )
            .scalars()
            .all()
        )
        assert {n.user.username for n in rows} >= {"manager"}
        # rerun: nothing new
        before = db.session.execute(select(Notification.id).where(Notification.subject_id == pk)).all()
        sweep(now=reply_due + dt.timedelta(minutes=32))
        after = db.session.execute(select(Notification.id).where(Notification.subject_id == pk)).all()
        assert len(before) == len(after)
        kinds = [e.kind for e in t.events]
        assert kinds.count("escalation") == 2 and kinds.count("warning") == 1
        db.session.remove()


def test_major_emergency_notifies_at_once(api, make_unit, app):
    ids = make_unit()
    resp = api("Staff").post(
        "/api/v1/ticket/",
        json={
            "kind": "emergency_medical",
            "channel": "phone",
            "priority": "major",
            "unit": ids["unit"],
            "address": "1栋1单元101",
            "callback_phone": "13812345678",
            "medical_path": "ambulance",
            "description": "业主心脏病发作",
        },
    )
    assert resp.status_code == 201, resp.json
    pk = resp.json["id"]
    with app.app_context():
        from app.extensions import db
        from models.desk import Notification

        rows = (
            db.session.execute(
                select(Notification).where(Notification.subject_id == pk, Notification.kind == "major_incident")
            )
            .scalars()
            .all()
        )
        assert {"supervisor", "manager"} <= {n.user.username for n in rows if n.user}
        db.session.remove()


@pytest.mark.parametrize(
    ("reported", "expected"),
    [
        # Thursday 2026-09-24 10:00 local; 25-27 Mid-Autumn holiday; Mon 28, Tue 29 working
        ("2026-09-24T10:00:00+08:00", "2026-09-29T10:00:00+08:00"),
        # Friday 2026-09-18; Sat 19 off, Sun 20 is a make-up working day, Mon 21
        ("2026-09-18T15:30:00+08:00", "2026-09-21T15:30:00+08:00"),
        # on a holiday: from the next working day (Thu 8) at 09:00; Sat 10 is a make-up day
        ("2026-10-03T20:00:00+08:00", "2026-10-10T09:00:00+08:00"),
    ],
)
def test_written_consultation_honours_holidays_and_makeup_days(reported, expected):
    from models.calendar import WorkCalendar, official_days

    rows = official_days(2026)  # chinese-calendar, from the State Council's notice
    cal = WorkCalendar(
        {r["day"] for r in rows if r["kind"] == "holiday"}, {r["day"] for r in rows if r["kind"] == "workday"}
    )
    got = cal.add_working_days(dt.datetime.fromisoformat(reported), 2)
    assert got == dt.datetime.fromisoformat(expected)


def test_policy_change_recomputes_open_tickets(api, make_unit, app):
    pk = _ticket(api, make_unit(), kind="other", priority="urgent", description="借梯子")
    body = {
        "kind": "other",
        "priority": "urgent",
        "reply_minutes": 15,
        "resolve_minutes": 120,
        "second_level_minutes": 30,
        "warn_minutes": 5,
        "active": True,
    }
    # Longer than the procedure's 5 minutes: only by naming the rule it replaces.
    resp = api("Manager").post("/api/v1/sla_policy/", json=body)
    assert resp.status_code == 422 and "reply_minutes" in resp.json["message"], resp.json
    resp = api("Manager").post("/api/v1/sla_policy/", json={**body, "replaces_rule": "reply_five_minutes"})
    assert resp.status_code == 201, resp.json
    try:
        t = _get(api, pk)
        assert dt.datetime.fromisoformat(t["reply_due_at"]) - dt.datetime.fromisoformat(
            t["received_at"]
        ) == dt.timedelta(minutes=15)
        assert api("Staff").post("/api/v1/sla_policy/", json={"kind": "other", "reply_minutes": 1}).status_code == 403
    finally:
        assert api("Manager").delete(f"/api/v1/sla_policy/{resp.json['id']}").status_code == 200
    # Without its own policy the class's row applies again.
    t = _get(api, pk)
    assert dt.datetime.fromisoformat(t["reply_due_at"]) - dt.datetime.fromisoformat(t["received_at"]) == dt.timedelta(
        minutes=5
    )
