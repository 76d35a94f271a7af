"""Issue 9, item 5 (renovations): a child row (deduction, extension, inspection, rectification
order) that changes or depends on its renovation's money or state must serialise with the moves
of the renovation (refund, acceptance). Real PostgreSQL, real threads, each request through its
own Flask test client with a JWT token, several rounds: a race lost once in ten rounds fails."""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from models.base import utcnow
from tests.test_renovation import act, application, get, ok, pay_deposit, to_accepted

ROUNDS = 10


@pytest.fixture()
def new_renovation(app, api, make_unit):
    """``new_renovation()``: a fresh application (by Staff) on a new unit; returns its JSON."""
    from app.seed import renovation_fee_items

    with app.app_context():
        renovation_fee_items()

    def make(**extra):
        ids = make_unit()
        resp = api("Staff").post("/api/v1/renovation/", json=application(ids["unit"], **extra))
        assert resp.status_code == 201, resp.get_data(as_text=True)
        return {"id": resp.json["id"], "version": resp.json["version"], "unit": ids["unit"]}

    return make


def race(calls):
    """Run the callables at once (a barrier releases them together); their results or errors."""
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def run(i, fn):
        try:
            barrier.wait(timeout=30)
            results[i] = fn()
        except Exception as e:  # reported by the caller's assertions
            results[i] = e

    threads = [threading.Thread(target=run, args=(i, fn)) for i, fn in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a request hung (a deadlock?)"
    return results


def post(api, role, url, body):
    """A call for ``race``: the request through a fresh client of its own (own session)."""

    def call():
        resp = api(role).post(url, json=body)
        return resp.status_code, resp.get_json(silent=True)

    return call


def _money_of(app, pk):
    from app.extensions import db
    from models.payments import Refund
    from models.renovation import DepositDeduction, Renovation

    with app.app_context():
        r = db.session.get(Renovation, pk)
        deducted = db.session.execute(
            select(func.coalesce(func.sum(DepositDeduction.amount), 0)).where(DepositDeduction.renovation_id == pk)
        ).scalar()
        refunds = db.session.execute(
            select(Refund.amount).where(Refund.id == r.refund_id) if r.refund_id else select(Refund.amount).where(False)
        ).scalars()
        out = (r.status, r.deposit, r.deposit_refunded, Decimal(deducted), list(refunds))
        db.session.remove()
        return out


def test_deductions_never_slip_in_after_the_refund(api, app, new_renovation):
    """The reported race: six deductions against two refunds. One refund wins; every deduction
    the refund did not count is refused (422 on ``status``): deposit = refunded + deducted."""
    failures = []
    for n in range(ROUNDS):
        r = new_renovation()
        pk = r["id"]
        v = to_accepted(api, app, pk, r["version"])
        calls = [
            post(
                api, "Staff", "/api/v1/deposit_deduction/", {"renovation": pk, "amount": "10.00", "reason": f"损坏{i}"}
            )
            for i in range(6)
        ] + [post(api, "Manager", f"/api/v1/renovation/{pk}/refund", {"version": v}) for _ in range(2)]
        results = race(calls)
        deductions, refunds = results[:6], results[6:]
        assert not [x for x in results if isinstance(x, Exception)], results
        refund_codes = sorted(code for code, _ in refunds)
        assert refund_codes in ([200, 409], [200, 422]), (n, refunds)
        for code, body in deductions:
            assert code in (201, 422), (n, code, body)
            if code == 422:
                assert "status" in body["message"], body  # says why: the deposit is refunded
        status, deposit, refunded, deducted, refund_rows = _money_of(app, pk)
        accepted = sum(Decimal("10.00") for code, _ in deductions if code == 201)
        assert status == "refunded" and deducted == accepted
        if refunded + deducted != deposit:
            failures.append((n, str(refunded), str(deducted)))
        assert refund_rows == [refunded]
    assert not failures, f"{len(failures)}/{ROUNDS} rounds: deductions recorded after the refund: {failures}"


def test_deduction_after_refund_is_refused_on_every_path(api, app, web, new_renovation):
    """Whatever the path (API, screen, the model's workflow function), a deduction on a refunded
    renovation is refused, and a recorded deduction cannot be changed or removed afterwards."""
    from app.extensions import db
    from models.errors import FieldErrors
    from models.renovation import DepositDeduction, Renovation, record_deduction

    r = new_renovation()
    pk = r["id"]
    v = to_accepted(api, app, pk, r["version"])
    made = api("Staff").post("/api/v1/deposit_deduction/", json={"renovation": pk, "amount": "5.00", "reason": "x"})
    assert made.status_code == 201
    ok(act(api, "Manager", pk, "refund", get(app, Renovation, pk).version))
    assert v  # the accepted version was read before the deduction
    resp = api("Staff").post("/api/v1/deposit_deduction/", json={"renovation": pk, "amount": "5.00", "reason": "y"})
    assert resp.status_code == 422 and "status" in resp.json["message"]
    screen = web("Staff").post(f"/renovation/deduct/{pk}", data={"amount": "5.00", "reason": "z"})
    assert screen.status_code in (302, 303)  # back to the renovation, with the refusal flashed
    resp = api("Staff").post(f"/api/v1/renovation/{pk}/deduct", json={"amount": "5.00", "reason": "v"})
    assert resp.status_code == 422 and "status" in resp.json["message"]
    with app.app_context():
        import pytest

        with pytest.raises(FieldErrors) as e:
            record_deduction(db.session, db.session.get(Renovation, pk), "5.00", "w")
        assert "status" in e.value.errors
        db.session.rollback()
        # Straight through the ORM (a script, a job): the model's hooks refuse it too.
        row = db.session.get(DepositDeduction, made.json["id"])
        row.amount = Decimal("1.00")
        with pytest.raises(FieldErrors):
            db.session.flush()
        db.session.rollback()
        row = db.session.get(DepositDeduction, made.json["id"])
        db.session.delete(row)
        with pytest.raises(FieldErrors):
            db.session.flush()
        db.session.rollback()
        n = db.session.execute(
            select(func.count()).select_from(DepositDeduction).where(DepositDeduction.renovation_id == pk)
        ).scalar()
        db.session.remove()
    assert n == 1
    status, deposit, refunded, deducted, _ = _money_of(app, pk)
    assert refunded + deducted == deposit


def test_concurrent_extension_requests_leave_one_pending(api, app, new_renovation):
    """Two requests for an extension at once: one is recorded, the other is told one is already
    waiting (422 on ``new_end``); never two pending requests."""
    from app.extensions import db
    from models.renovation import Renovation, RenovationExtension

    failures = []
    for n in range(ROUNDS):
        r = new_renovation()
        pk = r["id"]
        v = ok(act(api, "Manager", pk, "approve", r["version"]))["version"]
        ok(act(api, "Staff", pk, "start", v))
        later = (get(app, Renovation, pk).planned_end + dt.timedelta(days=7)).isoformat()
        results = race(
            [
                post(
                    api,
                    "Staff",
                    "/api/v1/renovation_extension/",
                    {"renovation": pk, "new_end": later, "reason": f"r{i}"},
                )
                for i in range(4)
            ]
        )
        codes = sorted(code for code, _ in results)
        with app.app_context():
            pending = db.session.execute(
                select(func.count())
                .select_from(RenovationExtension)
                .where(RenovationExtension.renovation_id == pk, RenovationExtension.status == "requested")
            ).scalar()
            db.session.remove()
        if pending != 1 or codes != [201, 422, 422, 422]:
            failures.append((n, pending, codes))
    assert not failures, f"{len(failures)}/{ROUNDS} rounds: {failures}"


def test_violation_never_opens_an_order_on_accepted_works(api, app, new_renovation):
    """An inspection with a violation (which opens a rectification order) against the passing
    acceptance: either the order came first and the acceptance is refused, or the acceptance came
    first and the inspection is refused. Never accepted works with an open rectification order."""
    from app.extensions import db
    from models.renovation import RectificationOrder, Renovation

    failures = []
    for n in range(ROUNDS):
        r = new_renovation()
        pk = r["id"]
        v = ok(act(api, "Manager", pk, "approve", r["version"]))["version"]
        pay_deposit(app, pk)
        v = ok(act(api, "Staff", pk, "start", v))["version"]
        v = ok(act(api, "Staff", pk, "complete", v))["version"]
        deadline = (utcnow() + dt.timedelta(days=3)).isoformat()
        results = race(
            [
                post(
                    api,
                    "Staff",
                    "/api/v1/inspection/",
                    {"renovation": pk, "findings": "楼道堆放建材", "violation": True},
                ),
                post(
                    api,
                    "Staff",
                    "/api/v1/rectification_order/",
                    {"renovation": pk, "description": "清理楼道", "deadline": deadline},
                ),
                post(api, "Manager", f"/api/v1/renovation/{pk}/accept", {"version": v, "passed": True}),
            ]
        )
        assert not [x for x in results if isinstance(x, Exception)], results
        for code, body in results:
            assert code in (200, 201, 422), (n, code, body)
        with app.app_context():
            status = db.session.get(Renovation, pk).status
            open_orders = db.session.execute(
                select(func.count())
                .select_from(RectificationOrder)
                .where(RectificationOrder.renovation_id == pk, RectificationOrder.status.in_(("open", "done")))
            ).scalar()
            db.session.remove()
        if status == "accepted" and open_orders:
            failures.append((n, open_orders, [c for c, _ in results]))
    assert not failures, f"{len(failures)}/{ROUNDS} rounds: accepted with open rectification orders: {failures}"


def test_inspection_and_its_rectification_order_are_one_write(api, app, new_renovation):
    """Through the generic API an inspection moves the next inspection date on (bookkeeping: the
    renovation's version stays, so a move decided on it still works), and an inspection with a
    violation and its rectification order are saved together, in one transaction."""
    from app.extensions import db
    from models.renovation import RectificationOrder, Renovation, local_today

    r = new_renovation()
    pk = r["id"]
    v = ok(act(api, "Manager", pk, "approve", r["version"]))["version"]
    v = ok(act(api, "Staff", pk, "start", v))["version"]
    with app.app_context():
        db.session.get(Renovation, pk).next_inspection_on = local_today()
        db.session.commit()
        v = db.session.get(Renovation, pk).version
        db.session.remove()
    plain = api("Staff").post("/api/v1/inspection/", json={"renovation": pk, "findings": "正常"})
    assert plain.status_code == 201, plain.get_data(as_text=True)
    days = app.config["RENOVATION_INSPECTION_DAYS"]
    assert get(app, Renovation, pk).next_inspection_on == local_today() + dt.timedelta(days=days)
    v = ok(act(api, "Staff", pk, "complete", v))["version"]
    resp = api("Staff").post("/api/v1/inspection/", json={"renovation": pk, "findings": "噪声", "violation": True})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    with app.app_context():
        orders = db.session.execute(select(RectificationOrder).where(RectificationOrder.renovation_id == pk)).scalars()
        assert [(o.inspection_id, o.status) for o in orders] == [(resp.json["id"], "open")]
        db.session.remove()
    # the open order stops the acceptance
    refused = act(api, "Manager", pk, "accept", v, passed=True)
    assert refused.status_code == 422 and "status" in refused.json["message"]


def test_two_approvals_on_one_unit_leave_one_live_renovation(api, app, make_unit, new_renovation):
    """Two applications for the same unit approved at once: a unit has one live renovation, so
    one approval wins and the other is told which renovation is under way (422 on ``unit``);
    only the winner's deposit and fee are billed."""
    from app.extensions import db
    from models.fees import Bill
    from models.renovation import LIVE_STATUSES, Renovation

    failures = []
    for n in range(ROUNDS):
        first = new_renovation()
        unit = first["unit"]
        resp = api("Staff").post("/api/v1/renovation/", json=application(unit, contractor="第二家装修公司"))
        assert resp.status_code == 201, resp.get_data(as_text=True)
        second = {"id": resp.json["id"], "version": resp.json["version"]}
        results = race(
            [
                post(api, "Manager", f"/api/v1/renovation/{r['id']}/approve", {"version": r["version"]})
                for r in (first, second)
            ]
        )
        codes = sorted(code for code, _ in results)
        for code, body in results:
            assert code in (200, 422), (n, code, body)
            if code == 422:
                assert "unit" in body["message"], body
        with app.app_context():
            live = db.session.execute(
                select(func.count())
                .select_from(Renovation)
                .where(Renovation.unit_id == unit, Renovation.status.in_(LIVE_STATUSES))
            ).scalar()
            billed = db.session.execute(
                select(func.count())
                .select_from(Bill)
                .where(Bill.unit_id == unit, Bill.source.startswith("renovation:"))
            ).scalar()
            db.session.remove()
        if live != 1 or codes != [200, 422] or billed != 2:
            failures.append((n, live, codes, billed))
    assert not failures, f"{len(failures)}/{ROUNDS} rounds: {failures}"


def test_deductions_against_the_refund_on_sqlite(tmp_path):
    """The embedded quick start (SQLite, no row locks): ``lock_row`` takes SQLite's one write lock
    instead, so the same race ends the same way: deposit = refunded + deducted, every round."""
    from app.extensions import db
    from app.seed import renovation_fee_items
    from models.archives import Building, Estate, Unit
    from tests.conftest import build_app, login_tokens

    sqlite_app = build_app(f"sqlite:///{tmp_path / 'desk.db'}")
    tokens = login_tokens(sqlite_app)
    with sqlite_app.app_context():
        renovation_fee_items()

    def sqlite_api(role):
        client = sqlite_app.test_client()

        class Client:
            def post(self, url, json):
                with sqlite_app.app_context():
                    return client.post(url, json=json, headers={"Authorization": f"Bearer {tokens[role]}"})

        return Client()

    failures = []
    rounds = 5
    for n in range(rounds):
        with sqlite_app.app_context():
            estate = Estate(code=f"S{n}", name=f"嵌入小区{n}")
            unit = Unit(building=Building(estate=estate, code="1"), code=f"1-1-{n}", floor=1, gross_area=Decimal("80"))
            from models.base import acting_as, system_user_id

            with acting_as(system_user_id(db.session)):
                db.session.add_all([estate, unit])
                db.session.commit()
            unit_id = unit.id
            db.session.remove()
        resp = sqlite_api("Staff").post("/api/v1/renovation/", json=application(unit_id))
        assert resp.status_code == 201, resp.get_data(as_text=True)
        pk = resp.json["id"]
        v = to_accepted(sqlite_api, sqlite_app, pk, resp.json["version"])
        calls = [
            post(
                sqlite_api, "Staff", "/api/v1/deposit_deduction/", {"renovation": pk, "amount": "10.00", "reason": "x"}
            )
            for _ in range(6)
        ] + [post(sqlite_api, "Manager", f"/api/v1/renovation/{pk}/refund", {"version": v}) for _ in range(2)]
        results = race(calls)
        assert not [x for x in results if isinstance(x, Exception)], results
        assert sorted(code for code, _ in results[6:]) in ([200, 409], [200, 422]), results[6:]
        status, deposit, refunded, deducted, _ = _money_of(sqlite_app, pk)
        assert status == "refunded"
        assert deducted == sum(Decimal("10.00") for code, _ in results[:6] if code == 201)
        if refunded + deducted != deposit:
            failures.append((n, str(refunded), str(deducted)))
    assert not failures, f"{len(failures)}/{rounds} rounds: {failures}"
