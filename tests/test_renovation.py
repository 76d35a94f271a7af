"""Renovations (DESIGN.md item 8): the application, the state machine, the money, Manager-only
approval, extensions, violations and their escalation, the jobs, complaints and the role matrix."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from models.base import utcnow


@pytest.fixture()
def fee_items(app):
    from app.seed import renovation_fee_items

    with app.app_context():
        renovation_fee_items()


def _today():
    from models.renovation import local_today

    return local_today()


def application(unit_id: int, **extra) -> dict:
    today = _today()
    body = {
        "unit": unit_id,
        "contractor": "美家装饰工程有限公司",
        "person_in_charge": "王工",
        "phone": "13911112222",
        "workers": 4,
        "scope": ["walls", "floors", "bathroom"],
        "planned_start": today.isoformat(),
        "planned_end": (today + dt.timedelta(days=30)).isoformat(),
        "working_hours": "08:00-12:00,14:00-18:00",
        "deposit": "2000.00",
        "management_fee": "300.00",
    }
    body.update(extra)
    return body


@pytest.fixture()
def new_renovation(api, make_unit, fee_items):
    """``new_renovation()``: a fresh application (by Staff) on a new unit; returns its JSON."""

    def make(**extra):
        ids = make_unit()
        resp = api("Staff").post("/api/v1/renovation/", json=application(ids["unit"], **extra))
        assert resp.status_code == 201, resp.get_data(as_text=True)
        return {"id": resp.json["id"], "version": resp.json["version"], "unit": ids["unit"]}

    return make


def act(api, role, pk, action, version, **body):
    return api(role).post(f"/api/v1/renovation/{pk}/{action}", json={"version": version, **body})


def ok(resp):
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.json


def get(app, model, pk):
    from app.extensions import db

    with app.app_context():
        row = db.session.get(model, pk)
        db.session.expunge_all()
        return row


def pay_deposit(app, renovation_id: int):
    from app.extensions import db
    from models.payments import record_payment
    from models.renovation import Renovation, renovation_bills

    with app.app_context():
        r = db.session.get(Renovation, renovation_id)
        bill = renovation_bills(db.session, r)["deposit"]
        payment = record_payment(db.session, r.unit, bill.amount, "cash", bill_ids=[bill.id])
        db.session.commit()
        pid = payment.id
        db.session.remove()
        return pid


def to_accepted(api, app, pk, version, *, pay=True):
    v = ok(act(api, "Manager", pk, "approve", version))["version"]
    if pay:
        pay_deposit(app, pk)
    v = ok(act(api, "Staff", pk, "start", v))["version"]
    v = ok(act(api, "Staff", pk, "complete", v))["version"]
    return ok(act(api, "Manager", pk, "accept", v, passed=True))["version"]


# --- the application ---------------------------------------------------------------------------
def test_load_bearing_change_is_refused_naming_the_field(api, make_unit, fee_items):
    ids = make_unit()
    resp = api("Staff").post("/api/v1/renovation/", json=application(ids["unit"], load_bearing_change=True))
    assert resp.status_code == 422
    assert "load_bearing_change" in resp.json["message"]
    assert "承重" in resp.json["message"]["load_bearing_change"][0] or "load-bearing" in str(resp.json)


def test_scope_must_be_known_words(api, make_unit, fee_items):
    ids = make_unit()
    resp = api("Staff").post("/api/v1/renovation/", json=application(ids["unit"], scope=["demolish_everything"]))
    assert resp.status_code == 422 and "scope" in resp.json["message"]


def test_screen_application_with_drawings_upload(app, web, make_unit, fee_items, tmp_path, monkeypatch):
    from models.renovation import Renovation

    monkeypatch.setitem(app.config, "INSTANCE_DIR", tmp_path)
    ids = make_unit()
    today = _today()
    data = {
        "unit": str(ids["unit"]),
        "contractor": "安居装修队",
        "person_in_charge": "李工",
        "phone": "13922223333",
        "workers": "3",
        "scope": ["walls", "kitchen"],
        "planned_start": today.isoformat(),
        "planned_end": (today + dt.timedelta(days=20)).isoformat(),
        "working_hours": "08:00-12:00",
        "deposit": "1000.00",
        "management_fee": "100.00",
        "drawings": [(io.BytesIO(b"%PDF-1.4 plan"), "../../etc/plan.pdf"), (io.BytesIO(b"\x89PNG img"), "x.png")],
    }
    client = web("Staff")
    resp = client.post("/renovation/add", data=data, content_type="multipart/form-data")
    assert resp.status_code in (302, 303), resp.get_data(as_text=True)[:2000]
    from app.extensions import db

    with app.app_context():
        r = db.session.execute(select(Renovation).where(Renovation.unit_id == ids["unit"])).scalar_one()
        assert r.status == "applied" and r.scope == ["walls", "kitchen"] and r.number.startswith("ZX")
        assert len(r.drawings) == 2
        assert all(name.startswith("renovation/") and ".." not in name for name in r.drawings)
        assert r.owner_id == ids["owner"]  # the unit's owner by default
        pk = r.id
        db.session.remove()
    assert (tmp_path / "uploads" / get(app, Renovation, pk).drawings[0]).read_bytes() == b"%PDF-1.4 plan"
    got = client.get(f"/renovation/drawing/{pk}/0")
    assert got.status_code == 200 and got.data == b"%PDF-1.4 plan"
    assert client.get(f"/renovation/drawing/{pk}/5").status_code == 404
    # A disallowed file type is a 422 on the form, naming the field.
    data["drawings"] = [(io.BytesIO(b"MZ"), "virus.exe")]
    data["unit"] = str(make_unit()["unit"])
    resp = client.post("/renovation/add", data=data, content_type="multipart/form-data")
    assert resp.status_code == 422


def test_the_api_does_not_take_drawing_names(api, make_unit, fee_items):
    ids = make_unit()
    resp = api("Staff").post("/api/v1/renovation/", json=application(ids["unit"], drawings=["../../secret"]))
    assert resp.status_code == 422 and "drawings" in resp.json["message"]


# --- the state machine -------------------------------------------------------------------------
def test_every_illegal_move_is_refused_with_a_reason(api, app, new_renovation):
    r = new_renovation()
    pk, v = r["id"], r["version"]
    illegal_from = {
        "applied": ["start", "complete", "refund"],
        "approved": ["approve", "complete", "refund"],
        "active": ["approve", "start", "cancel", "refund"],
        "completed": ["approve", "start", "complete", "cancel", "refund"],
        "accepted": ["approve", "start", "complete", "cancel"],
        "refunded": ["approve", "start", "complete", "cancel", "refund"],
    }

    def refuse_all(status, version):
        for action in illegal_from[status]:
            resp = act(api, "Manager", pk, action, version, reason="x", passed=True)
            assert resp.status_code == 422, (status, action, resp.get_data(as_text=True))
            msg = " ".join(m for msgs in resp.json["message"].values() for m in msgs)
            assert msg, (status, action)
        # acceptance is only for completed works
        if status != "completed":
            resp = act(api, "Manager", pk, "accept", version, passed=True)
            assert resp.status_code == 422, (status, "accept")

    refuse_all("applied", v)
    # a move needs the version read; a stale one is a conflict
    assert act(api, "Manager", pk, "approve", None).status_code == 422
    assert act(api, "Manager", pk, "approve", v + 7).status_code == 409
    v = ok(act(api, "Manager", pk, "approve", v))["version"]
    refuse_all("approved", v)
    pay_deposit(app, pk)
    v = ok(act(api, "Staff", pk, "start", v))["version"]
    refuse_all("active", v)
    v = ok(act(api, "Staff", pk, "complete", v))["version"]
    refuse_all("completed", v)
    v = ok(act(api, "Manager", pk, "accept", v, passed=True))["version"]
    refuse_all("accepted", v)
    v = ok(act(api, "Manager", pk, "refund", v))["version"]
    refuse_all("refunded", v)
    # a rejected application ends there
    r2 = new_renovation()
    assert act(api, "Manager", r2["id"], "reject", r2["version"]).status_code == 422  # a reason is required
    res = ok(act(api, "Manager", r2["id"], "reject", r2["version"], reason="图纸不全"))
    assert res["status"] == "rejected"
    assert act(api, "Manager", r2["id"], "approve", res["version"]).status_code == 422


def test_failed_acceptance_goes_back_to_completed_after_rectification(api, app, new_renovation):
    from models.renovation import RectificationOrder

    r = new_renovation()
    pk = r["id"]
    v = ok(act(api, "Manager", pk, "approve", r["version"]))["version"]
    v = ok(act(api, "Staff", pk, "start", v))["version"]
    v = ok(act(api, "Staff", pk, "complete", v))["version"]
    assert act(api, "Staff", pk, "accept", v, passed=False).status_code == 422  # failing needs a note
    v = ok(act(api, "Staff", pk, "accept", v, passed=False, note="卫生间闭水试验渗漏"))["version"]
    from app.extensions import db

    with app.app_context():
        order = db.session.execute(
            select(RectificationOrder).where(RectificationOrder.renovation_id == pk)
        ).scalar_one()
        oid, ov = order.id, order.version
        db.session.remove()
    resp = act(api, "Staff", pk, "complete", v)
    assert resp.status_code == 422 and "整改" in str(resp.json)
    ov = ok(api("Staff").post(f"/api/v1/rectification_order/{oid}/rectified", json={"version": ov}))["version"]
    v = ok(act(api, "Staff", pk, "complete", v))["version"]
    # passing needs the rectification verified
    assert act(api, "Manager", pk, "accept", v, passed=True).status_code == 422
    ok(api("Staff").post(f"/api/v1/rectification_order/{oid}/verify", json={"version": ov}))
    assert ok(act(api, "Manager", pk, "accept", v, passed=True))["status"] == "accepted"


def test_unit_status_is_renovating_while_active_and_then_restored(api, app, new_renovation):
    from app.extensions import db
    from models.archives import Unit

    r = new_renovation()
    with app.app_context():
        db.session.get(Unit, r["unit"]).status = "rented"
        db.session.commit()
        db.session.remove()
    v = ok(act(api, "Manager", r["id"], "approve", r["version"]))["version"]
    v = ok(act(api, "Staff", r["id"], "start", v))["version"]
    assert get(app, Unit, r["unit"]).status == "renovating"
    v = ok(act(api, "Staff", r["id"], "complete", v))["version"]
    ok(act(api, "Manager", r["id"], "accept", v, passed=True))
    assert get(app, Unit, r["unit"]).status == "rented"


# --- money -------------------------------------------------------------------------------------
def _bills(app, pk):
    from app.extensions import db
    from models.fees import Bill

    with app.app_context():
        rows = db.session.execute(select(Bill).where(Bill.source.startswith(f"renovation:{pk}:"))).scalars().all()
        out = {b.source: (Decimal(b.amount), b.status) for b in rows}
        db.session.remove()
        return out


def test_deposit_and_fee_are_billed_once_even_when_approval_is_retried(api, app, new_renovation):
    from app.extensions import db
    from models.renovation import Renovation, post_charges

    r = new_renovation()
    pk = r["id"]
    res = ok(act(api, "Manager", pk, "approve", r["version"]))
    assert res["permit_no"].startswith("ZXXK")
    expected = {
        f"renovation:{pk}:deposit": (Decimal("2000.00"), "open"),
        f"renovation:{pk}:fee": (Decimal("300.00"), "open"),
    }
    assert _bills(app, pk) == expected
    # the same request again (a retry with the version it had read) and a retry with the new one
    assert act(api, "Manager", pk, "approve", r["version"]).status_code == 409
    assert act(api, "Manager", pk, "approve", res["version"]).status_code == 422
    with app.app_context():  # posting again (e.g. a retried job) finds the lines by source
        post_charges(db.session, db.session.get(Renovation, pk))
        db.session.commit()
        db.session.remove()
    assert _bills(app, pk) == expected


def test_refund_is_deposit_less_deductions_and_only_once(api, app, new_renovation):
    from app.extensions import db
    from models.payments import Refund
    from models.renovation import Renovation

    r = new_renovation()
    pk = r["id"]
    v = ok(act(api, "Manager", pk, "approve", r["version"]))["version"]
    payment_id = pay_deposit(app, pk)
    v = ok(act(api, "Staff", pk, "start", v))["version"]
    for amount, reason in (("150.50", "损坏电梯轿厢"), ("49.50", "楼道垃圾清运")):
        resp = api("Staff").post(
            "/api/v1/deposit_deduction/", json={"renovation": pk, "amount": amount, "reason": reason}
        )
        assert resp.status_code == 201, resp.get_data(as_text=True)
    bad = api("Staff").post("/api/v1/deposit_deduction/", json={"renovation": pk, "amount": "-5", "reason": "x"})
    assert bad.status_code == 422
    v = get(app, Renovation, pk).version
    v = ok(act(api, "Staff", pk, "complete", v))["version"]
    v = ok(act(api, "Manager", pk, "accept", v, passed=True))["version"]
    res = ok(act(api, "Manager", pk, "refund", v, method="bank_transfer"))
    assert res["status"] == "refunded" and res["deposit_refunded"] == "1800.00"
    with app.app_context():
        refunds = db.session.execute(select(Refund).where(Refund.id == res["refund_id"])).scalars().all()
        assert len(refunds) == 1
        assert refunds[0].amount == Decimal("1800.00") and refunds[0].payment_id == payment_id
        assert refunds[0].unit_id == r["unit"]
        db.session.remove()
    again = act(api, "Manager", pk, "refund", res["version"])
    assert again.status_code == 422 and "押金" in str(again.json)
    with app.app_context():
        n = db.session.execute(select(func.count()).select_from(Refund).where(Refund.unit_id == r["unit"])).scalar()
        assert n == 1
        db.session.remove()
    # The refunded deposit payment cannot then be voided: the money would go back twice.
    resp = api("Manager").post(f"/api/v1/payment/{payment_id}/void", json={"reason": "误收", "version": 1})
    if resp.status_code == 409:  # the version moved: read it and try again
        version = api("Manager").get(f"/api/v1/payment/{payment_id}").json["result"]["version"]
        resp = api("Manager").post(f"/api/v1/payment/{payment_id}/void", json={"reason": "误收", "version": version})
    assert resp.status_code == 422 and "退款" in str(resp.json), resp.get_data(as_text=True)
    with app.app_context():
        from models.payments import Payment

        assert db.session.get(Payment, payment_id).status == "valid"
        db.session.remove()


def test_refund_is_never_negative(api, app, new_renovation):
    from app.extensions import db
    from models.payments import Refund
    from models.renovation import Renovation, refund_deposit

    r = new_renovation(deposit="100.00")
    pk = r["id"]
    v = ok(act(api, "Manager", pk, "approve", r["version"]))["version"]
    pay_deposit(app, pk)
    v = ok(act(api, "Staff", pk, "start", v))["version"]
    api("Staff").post(
        "/api/v1/deposit_deduction/", json={"renovation": pk, "amount": "250.00", "reason": "损坏大堂地砖"}
    )
    v = get(app, Renovation, pk).version
    v = ok(act(api, "Staff", pk, "complete", v))["version"]
    v = ok(act(api, "Manager", pk, "accept", v, passed=True))["version"]
    res = ok(act(api, "Manager", pk, "refund", v))
    assert res["deposit_refunded"] == "0.00" and res["refund_id"] is None
    with app.app_context():
        assert (
            db.session.execute(select(func.count()).select_from(Refund).where(Refund.unit_id == r["unit"])).scalar()
            == 0
        )
        from models.errors import FieldErrors

        with pytest.raises(FieldErrors):
            refund_deposit(db.session, db.session.get(Renovation, pk))
        db.session.rollback()
        db.session.remove()


def test_refund_needs_the_deposit_paid(api, app, new_renovation):
    r = new_renovation()
    v = to_accepted(api, app, r["id"], r["version"], pay=False)
    resp = act(api, "Manager", r["id"], "refund", v)
    assert resp.status_code == 422 and "缴" in str(resp.json)


def test_cancel_after_approval_voids_unpaid_charges(api, app, new_renovation):
    r = new_renovation()
    v = ok(act(api, "Manager", r["id"], "approve", r["version"]))["version"]
    assert act(api, "Staff", r["id"], "cancel", v).status_code == 422  # a reason is required
    ok(act(api, "Staff", r["id"], "cancel", v, reason="业主放弃装修"))
    assert {status for _, status in _bills(app, r["id"]).values()} == {"void"}


# --- Manager-only approval ---------------------------------------------------------------------
def test_only_managers_approve_or_reject(api, web, app, new_renovation):
    from models.renovation import Renovation

    r = new_renovation()
    for role in ("Staff", "Supervisor", "Committee"):
        assert act(api, role, r["id"], "approve", r["version"]).status_code == 403, role
        assert act(api, role, r["id"], "reject", r["version"], reason="x").status_code == 403, role
        assert (
            web(role).post(f"/renovation/approve_renovation/{r['id']}", data={"version": r["version"]}).status_code
            == 403
        )
    staff_page = web("Staff").get(f"/renovation/show/{r['id']}").get_data(as_text=True)
    assert "desk-action desk-approve" not in staff_page and "desk-action desk-start" not in staff_page
    assert "desk-action desk-cancel" in staff_page  # Staff may cancel an application
    manager = web("Manager")
    assert "desk-action desk-approve" in manager.get(f"/renovation/show/{r['id']}").get_data(as_text=True)
    resp = manager.post(f"/renovation/approve_renovation/{r['id']}", data={"version": r["version"]})
    assert resp.status_code in (302, 303)
    assert get(app, Renovation, r["id"]).status == "approved"


# --- extensions ---------------------------------------------------------------------------------
def test_extension_moves_the_end_only_when_a_manager_approves(api, app, new_renovation):
    from models.renovation import Renovation

    r = new_renovation()
    v = ok(act(api, "Manager", r["id"], "approve", r["version"]))["version"]
    ok(act(api, "Staff", r["id"], "start", v))
    end = get(app, Renovation, r["id"]).planned_end
    later = (end + dt.timedelta(days=10)).isoformat()
    bad = api("Staff").post(
        "/api/v1/renovation_extension/", json={"renovation": r["id"], "new_end": end.isoformat(), "reason": "x"}
    )
    assert bad.status_code == 422 and "new_end" in bad.json["message"]
    resp = api("Staff").post(
        "/api/v1/renovation_extension/", json={"renovation": r["id"], "new_end": later, "reason": "材料延误"}
    )
    assert resp.status_code == 201, resp.get_data(as_text=True)
    ext, ev = resp.json["id"], resp.json["version"]
    assert get(app, Renovation, r["id"]).planned_end == end  # requested only
    dup = api("Staff").post(
        "/api/v1/renovation_extension/", json={"renovation": r["id"], "new_end": later, "reason": "再次"}
    )
    assert dup.status_code == 422
    assert api("Staff").post(f"/api/v1/renovation_extension/{ext}/approve", json={"version": ev}).status_code == 403
    assert (
        api("Supervisor").post(f"/api/v1/renovation_extension/{ext}/approve", json={"version": ev}).status_code == 403
    )
    rej = ok(
        api("Manager").post(f"/api/v1/renovation_extension/{ext}/reject", json={"version": ev, "note": "工期过长"})
    )
    assert rej["status"] == "rejected" and get(app, Renovation, r["id"]).planned_end == end
    resp = api("Staff").post(
        "/api/v1/renovation_extension/", json={"renovation": r["id"], "new_end": later, "reason": "材料延误"}
    )
    ext2 = resp.json
    res = ok(
        api("Manager").post(f"/api/v1/renovation_extension/{ext2['id']}/approve", json={"version": ext2["version"]})
    )
    assert res["status"] == "approved" and res["planned_end"] == later
    assert get(app, Renovation, r["id"]).planned_end.isoformat() == later
    again = api("Manager").post(f"/api/v1/renovation_extension/{ext2['id']}/approve", json={"version": res["version"]})
    assert again.status_code == 422


# --- inspections, violations, escalation ------------------------------------------------------
def _notifications(app, subject_type, subject_id, kind=None):
    from app.extensions import db
    from models.desk import Notification

    with app.app_context():
        stmt = select(Notification).where(
            Notification.subject_type == subject_type, Notification.subject_id == subject_id
        )
        if kind:
            stmt = stmt.where(Notification.kind == kind)
        rows = db.session.execute(stmt).scalars().all()
        out = [(n.kind, n.recipient, n.channel) for n in rows]
        db.session.remove()
        return sorted(out)


def test_violation_opens_a_rectification_order_that_escalates_once(api, app, new_renovation):
    from app.extensions import db
    from jobs.renovation import rectification_sweep
    from models.renovation import RectificationOrder

    r = new_renovation()
    v = ok(act(api, "Manager", r["id"], "approve", r["version"]))["version"]
    ok(act(api, "Staff", r["id"], "start", v))
    # before the works: an inspection of a non-active renovation is refused (another one)
    other = new_renovation()
    refused = api("Staff").post("/api/v1/inspection/", json={"renovation": other["id"], "findings": "未开工"})
    assert refused.status_code == 422
    ok_resp = api("Staff").post("/api/v1/inspection/", json={"renovation": r["id"], "findings": "正常施工"})
    assert ok_resp.status_code == 201, ok_resp.get_data(as_text=True)
    before = utcnow()
    resp = api("Staff").post(
        "/api/v1/inspection/",
        json={"renovation": r["id"], "findings": "中午 12:30 电锤施工，噪声扰民", "violation": True},
    )
    assert resp.status_code == 201, resp.get_data(as_text=True)
    with app.app_context():
        orders = (
            db.session.execute(select(RectificationOrder).where(RectificationOrder.renovation_id == r["id"]))
            .scalars()
            .all()
        )
        assert len(orders) == 1
        order = orders[0]
        assert order.inspection_id == resp.json["id"] and order.status == "open"
        days = app.config["RECTIFICATION_DAYS"]
        assert before + dt.timedelta(days=days) - dt.timedelta(minutes=1) <= order.deadline
        assert order.deadline <= utcnow() + dt.timedelta(days=days)
        oid, deadline = order.id, order.deadline
        db.session.remove()
    # not late yet: nothing
    with app.app_context():
        rectification_sweep(now=deadline - dt.timedelta(minutes=1))
    assert _notifications(app, "rectification", oid) == []
    late = deadline + dt.timedelta(minutes=1)
    with app.app_context():
        rectification_sweep(now=late)
        rectification_sweep(now=late)  # a rerun claims nothing new
    first = _notifications(app, "rectification", oid)
    assert first and {k for k, _, _ in first} == {"rect_level1"}
    assert len(first) == len(set(first))
    with app.app_context():
        rectification_sweep(now=late + dt.timedelta(hours=1))
    assert _notifications(app, "rectification", oid) == first  # once per step
    later = deadline + dt.timedelta(hours=app.config["RECTIFICATION_SECOND_LEVEL_HOURS"], minutes=1)
    with app.app_context():
        rectification_sweep(now=later)
        rectification_sweep(now=later + dt.timedelta(days=5))
    kinds = [k for k, _, _ in _notifications(app, "rectification", oid)]
    assert "rect_level2" in kinds
    o = get(app, RectificationOrder, oid)
    assert o.steps_done == 2 and o.next_due_at is None


def test_rectified_in_time_never_escalates(api, app, new_renovation):
    from app.extensions import db
    from jobs.renovation import rectification_sweep
    from models.renovation import RectificationOrder

    r = new_renovation()
    v = ok(act(api, "Manager", r["id"], "approve", r["version"]))["version"]
    ok(act(api, "Staff", r["id"], "start", v))
    api("Staff").post(
        "/api/v1/inspection/", json={"renovation": r["id"], "findings": "垃圾堆放楼道", "violation": True}
    )
    with app.app_context():
        o = db.session.execute(
            select(RectificationOrder).where(RectificationOrder.renovation_id == r["id"])
        ).scalar_one()
        oid, ov, deadline = o.id, o.version, o.deadline
        db.session.remove()
    ok(api("Staff").post(f"/api/v1/rectification_order/{oid}/rectified", json={"version": ov}))
    with app.app_context():
        rectification_sweep(now=deadline + dt.timedelta(days=3))
    assert _notifications(app, "rectification", oid) == []


# --- jobs ---------------------------------------------------------------------------------------
def test_inspection_reminders_and_overdue_alerts_are_idempotent(api, app, new_renovation):
    from jobs.renovation import inspection_reminders, overdue_alerts
    from models.renovation import Renovation

    r = new_renovation()
    v = ok(act(api, "Manager", r["id"], "approve", r["version"]))["version"]
    ok(act(api, "Staff", r["id"], "start", v))
    reno = get(app, Renovation, r["id"])
    days = app.config["RENOVATION_INSPECTION_DAYS"]
    assert reno.next_inspection_on == _today() + dt.timedelta(days=days)
    with app.app_context():
        inspection_reminders(now=utcnow())  # not due yet
    assert _notifications(app, "renovation", r["id"], "reno_inspection") == []
    # 10:00 in Shanghai on the due day: the hour after is the same office day whatever the
    # wall clock says now (at 23:30 there, "now + days" and an hour later were two days).
    from zoneinfo import ZoneInfo

    local_due = dt.datetime.combine(_today() + dt.timedelta(days=days), dt.time(10, 0), ZoneInfo("Asia/Shanghai"))
    due = local_due.astimezone(dt.UTC)
    with app.app_context():
        inspection_reminders(now=due)
        inspection_reminders(now=due + dt.timedelta(hours=1))
    first = _notifications(app, "renovation", r["id"], "reno_inspection")
    assert first and all(ch in ("inbox", "email", "webhook") for _, _, ch in first)
    with app.app_context():  # the next day, still not inspected: one more reminder round
        inspection_reminders(now=due + dt.timedelta(days=1))
    assert len(_notifications(app, "renovation", r["id"], "reno_inspection")) == 2 * len(first)
    # an inspection moves the next one on
    api("Staff").post("/api/v1/inspection/", json={"renovation": r["id"], "findings": "正常"})
    assert get(app, Renovation, r["id"]).next_inspection_on == _today() + dt.timedelta(days=days)

    late = dt.datetime.combine(reno.planned_end + dt.timedelta(days=2), dt.time(4, 0), tzinfo=dt.UTC)
    with app.app_context():
        overdue_alerts(now=late)
        overdue_alerts(now=late + dt.timedelta(hours=2))
    alerts = _notifications(app, "renovation", r["id"], "reno_overdue")
    assert alerts and all(rcpt.startswith(("user:", "route:")) for _, rcpt, _ in alerts)
    assert get(app, Renovation, r["id"]).overdue_alerted_on == reno.planned_end + dt.timedelta(days=2)
    with app.app_context():
        overdue_alerts(now=late + dt.timedelta(days=1))  # once a day
    assert len(_notifications(app, "renovation", r["id"], "reno_overdue")) == 2 * len(alerts)


def test_jobs_are_registered_for_beat(app):
    from jobs import TASK_MODULES, periodic_jobs

    assert "jobs.renovation" in TASK_MODULES
    tasks = set(periodic_jobs(app).values())
    assert {
        "jobs.renovation.inspection_reminders",
        "jobs.renovation.overdue_alerts",
        "jobs.renovation.rectification_sweep",
    } <= tasks
    assert "jobs.renovation.rectification_sweep" in app.extensions["celery"].tasks


# --- complaints, permit, report, roles --------------------------------------------------------
def test_a_linked_complaint_shows_on_the_renovation_page(api, app, web, new_renovation):
    from app.extensions import db
    from models.desk import Ticket

    r = new_renovation()
    resp = api("Staff").post(
        "/api/v1/ticket/",
        json={
            "kind": "complaint",
            "description": "楼上装修周日早上七点电钻",
            "unit": r["unit"],
            "complaint_about": "renovation",
        },
    )
    assert resp.status_code == 201, resp.get_data(as_text=True)
    tid = resp.json["id"]
    with app.app_context():
        number = db.session.get(Ticket, tid).number
        db.session.remove()
    linked = api("Staff").post(f"/api/v1/renovation/{r['id']}/link_complaint", json={"ticket": number})
    assert linked.status_code == 200, linked.get_data(as_text=True)
    assert get(app, Ticket, tid).renovation_id == r["id"]
    page = web("Staff").get(f"/renovation/show/{r['id']}").get_data(as_text=True)
    assert number in page and "楼上装修周日早上七点电钻" in page
    # only complaints link
    other = api("Staff").post(
        "/api/v1/ticket/",
        json={"kind": "consultation", "description": "问路", "consult_mode": "oral", "unit": r["unit"]},
    )
    assert other.status_code == 201, other.get_data(as_text=True)
    bad = api("Staff").post(f"/api/v1/renovation/{r['id']}/link_complaint", json={"ticket": other.json["id"]})
    assert bad.status_code == 422


def test_printable_permit(api, web, new_renovation):
    r = new_renovation()
    client = web("Staff")
    assert client.get(f"/renovation/permit/{r['id']}").status_code == 409  # not approved yet
    res = ok(act(api, "Manager", r["id"], "approve", r["version"]))
    page = client.get(f"/renovation/permit/{r['id']}").get_data(as_text=True)
    for text in (
        "装修许可证",
        res["permit_no"],
        "美家装饰工程有限公司",
        "王工",
        "13911112222",
        "墙面",
        "08:00-12:00,14:00-18:00",
        "承重",
        "噪声",
        "垃圾",
        "签字",
        "size: A4",
    ):
        assert text in page, text
    # without the personal right the phone is masked
    committee = web("Committee").get(f"/renovation/permit/{r['id']}").get_data(as_text=True)
    assert "13911112222" not in committee and "装修许可证" in committee


def test_report_lists_active_overdue_and_violations(api, app, web, new_renovation):
    r = new_renovation()
    v = ok(act(api, "Manager", r["id"], "approve", r["version"]))["version"]
    ok(act(api, "Staff", r["id"], "start", v))
    api("Staff").post("/api/v1/inspection/", json={"renovation": r["id"], "findings": "私拆管道", "violation": True})
    counts = ok(api("Committee").get("/api/v1/renovation/report"))
    assert counts["active"] >= 1 and counts["open_violations"] >= 1 and "overdue" in counts
    page = web("Manager").get("/renovation/report")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "装修管理报表" in text and "私拆管道" not in text
    from models.renovation import Renovation

    assert get(app, Renovation, r["id"]).number in text


def test_committee_reads_only(api, web, new_renovation):
    r = new_renovation()
    committee = api("Committee")
    assert committee.get(f"/api/v1/renovation/{r['id']}").status_code == 200
    assert committee.get("/api/v1/inspection/").status_code == 200
    assert committee.get("/api/v1/renovation/export").status_code == 200
    assert committee.get("/api/v1/inspection/export").status_code == 403
    assert committee.post("/api/v1/renovation/", json={}).status_code == 403
    for action in ("approve", "start", "cancel", "link_complaint"):
        assert act(api, "Committee", r["id"], action, r["version"]).status_code == 403, action
    assert committee.post("/api/v1/inspection/", json={"renovation": r["id"], "findings": "x"}).status_code == 403
    assert committee.post("/api/v1/deposit_deduction/", json={}).status_code == 403
    page = web("Committee").get(f"/renovation/show/{r['id']}").get_data(as_text=True)
    for form in ("approve", "cancel", "link-complaint", "request-extension", "add-drawings"):
        assert f"desk-action desk-{form}" not in page
    assert "desk-action " not in page  # the Committee reads, and is offered nothing to do
    # the phone is personal data: masked for the Committee
    body = committee.get(f"/api/v1/renovation/{r['id']}").json["result"]
    assert body["phone"] != "13911112222"


# --- the renovation page's own forms: inspections, extensions, deductions, drawings ---------------
def test_inspection_extension_deduction_and_drawings_from_the_renovation_page(
    api, app, web, new_renovation, tmp_path, monkeypatch
):
    """What the renovation's page posts (its actions, screen and API): an inspection with photos
    and a violation (a rectification order), an extension request, a deduction, more drawings;
    each screen form comes back to the renovation's page, and each refusal names its field."""
    from app.extensions import db
    from models.renovation import (
        DepositDeduction,
        RectificationOrder,
        Renovation,
        RenovationExtension,
        RenovationInspection,
    )

    monkeypatch.setitem(app.config, "INSTANCE_DIR", tmp_path)
    r = new_renovation()
    pk = r["id"]
    client = web("Staff")
    # Not offered before the works start: the screen says why, the API names the state.
    assert act(api, "Staff", pk, "record_inspection", r["version"], findings="x").status_code == 422
    v = ok(act(api, "Manager", pk, "approve", r["version"]))["version"]
    v = ok(act(api, "Staff", pk, "start", v))["version"]
    page = client.get(f"/renovation/show/{pk}").get_data(as_text=True)
    for form in ("record-inspection", "request-extension", "deduct", "link-complaint", "add-drawings", "complete"):
        assert f"desk-action desk-{form}" in page, form
    assert "desk-action desk-accept" not in page and "desk-action desk-start" not in page

    resp = client.post(
        f"/renovation/record_inspection/{pk}",
        data={
            "findings": "中午施工噪声扰民",
            "violation": "y",
            "photos": [(io.BytesIO(b"\xff\xd8\xff jpeg"), "现场.jpg")],
        },
        content_type="multipart/form-data",
    )
    assert resp.status_code in (302, 303) and resp.headers["Location"].endswith(f"/renovation/show/{pk}")
    with app.app_context():
        insp = db.session.execute(
            select(RenovationInspection).where(RenovationInspection.renovation_id == pk)
        ).scalar_one()
        assert insp.violation and len(insp.photos) == 1 and insp.inspector.username == "staff"
        iid = insp.id
        order = db.session.execute(select(RectificationOrder).where(RectificationOrder.inspection_id == iid)).scalar_one()
        assert order.status == "open"
        db.session.remove()
    got = client.get(f"/inspection/photo/{iid}/0")
    assert got.status_code == 200 and got.data == b"\xff\xd8\xff jpeg"
    assert client.get(f"/inspection/photo/{iid}/1").status_code == 404
    inspection_page = client.get(f"/inspection/show/{iid}").get_data(as_text=True)
    assert f"/inspection/photo/{iid}/0" in inspection_page  # the photo is a download on its page
    # A photo of the wrong type: 422 naming the field, nothing recorded.
    bad = api("Staff").post(
        f"/api/v1/renovation/{pk}/record_inspection",
        data={"findings": "再查", "photos": [(io.BytesIO(b"MZ"), "x.exe")]},
        content_type="multipart/form-data",
    )
    assert bad.status_code == 422 and "photos" in bad.json["message"]
    plain = api("Staff").post(f"/api/v1/renovation/{pk}/record_inspection", json={"findings": "正常"})
    assert plain.status_code == 200 and plain.json["inspection"] != iid

    end = get(app, Renovation, pk).planned_end
    later = (end + dt.timedelta(days=7)).isoformat()
    resp = client.post(f"/renovation/request_extension/{pk}", data={"new_end": end.isoformat(), "reason": "x"})
    assert resp.status_code in (302, 303)  # refused (not after the planned end): flashed, nothing made
    resp = client.post(f"/renovation/request_extension/{pk}", data={"new_end": later, "reason": "材料延误"})
    assert resp.status_code in (302, 303)
    with app.app_context():
        exts = db.session.execute(select(RenovationExtension).where(RenovationExtension.renovation_id == pk)).scalars()
        assert [(e.new_end.isoformat(), e.status) for e in exts] == [(later, "requested")]
        db.session.remove()
    dup = api("Staff").post(f"/api/v1/renovation/{pk}/request_extension", json={"new_end": later, "reason": "再次"})
    assert dup.status_code == 422 and "new_end" in dup.json["message"]

    assert client.post(f"/renovation/deduct/{pk}", data={"amount": "80.50", "reason": "划伤电梯"}).status_code in (
        302,
        303,
    )
    for amount in ("0", "-1", "1.234", "abc"):
        resp = api("Staff").post(f"/api/v1/renovation/{pk}/deduct", json={"amount": amount, "reason": "x"})
        assert resp.status_code == 422 and "amount" in resp.json["message"], amount
    with app.app_context():
        rows = db.session.execute(select(DepositDeduction).where(DepositDeduction.renovation_id == pk)).scalars()
        assert [(d.amount, d.reason) for d in rows] == [(Decimal("80.50"), "划伤电梯")]
        db.session.remove()

    v = get(app, Renovation, pk).version
    resp = api("Staff").post(
        f"/api/v1/renovation/{pk}/drawings",
        data={"version": str(v), "drawings": [(io.BytesIO(b"%PDF-1.4 more"), "more.pdf")]},
        content_type="multipart/form-data",
    )
    assert resp.status_code == 200 and resp.json["drawings"] == 1, resp.get_data(as_text=True)
    assert client.get(f"/renovation/drawing/{pk}/0").data == b"%PDF-1.4 more"
    page = client.get(f"/renovation/show/{pk}").get_data(as_text=True)
    for text in ("中午施工噪声扰民", "材料延误", "80.50", "划伤电梯", f"/renovation/drawing/{pk}/0"):
        assert text in page, text
