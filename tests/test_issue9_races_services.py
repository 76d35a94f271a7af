"""Issue 9, item 5 (paid services): an order that depends on a parent row's state (the ticket it
is made from, the subscription that generates it) and a charged order's money. Real PostgreSQL,
real threads, each request through its own Flask test client (JWT) or its own session, several
rounds."""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from models.errors import FieldErrors
from tests.test_issue9_races_renovation import post, race
from tests.test_services import _ticket, act, walk

ROUNDS = 10


@pytest.fixture(scope="module")
def items(app):
    from app.extensions import db
    from app.seed import service_catalog
    from models.services import ServiceItem

    with app.app_context():
        service_catalog()
        rows = db.session.execute(select(ServiceItem.code, ServiceItem.id)).all()
        db.session.remove()
    return dict(rows)


def test_orders_from_one_ticket_at_once_make_one_order(api, app, make_unit, items):
    """Four requests at once to make an order for the same service from one owner-paid repair
    ticket: one order, three 422 naming the ticket."""
    from app.extensions import db
    from models.services import ServiceOrder

    failures = []
    for n in range(ROUNDS):
        ticket = _ticket(api, make_unit()["unit"], "owner_paid")
        body = {"ticket": ticket, "item": items["R-TAP"]}
        results = race([post(api, "Staff", "/api/v1/service_order/from_ticket", body) for _ in range(4)])
        assert not [x for x in results if isinstance(x, Exception)], results
        codes = sorted(code for code, _ in results)
        for code, resp in results:
            assert code in (201, 422), (n, code, resp)
            if code == 422:
                assert "ticket" in resp["message"], resp
        with app.app_context():
            live = db.session.execute(
                select(func.count())
                .select_from(ServiceOrder)
                .where(ServiceOrder.ticket_id == ticket, ServiceOrder.status != "cancelled")
            ).scalar()
            db.session.remove()
        if live != 1 or codes != [201, 422, 422, 422]:
            failures.append((n, live, codes))
    assert not failures, f"{len(failures)}/{ROUNDS} rounds: {failures}"


def test_a_stopped_subscription_gets_no_new_orders(api, app, make_unit, items):
    """The periodic job reads an active subscription; before it writes the orders, a clerk stops
    the subscription (PUT, committed). The job's orders must then be refused: no order appears
    after its subscription was stopped. The interleaving is forced (the job's thread waits at
    its flush, before any hook, until the clerk's request has committed), so every round runs the
    race the other way round from a lucky schedule."""
    from app.extensions import db
    from jobs.services import generate_orders
    from models.services import ServiceOrder, ServiceSubscription

    rounds = 5
    failures = []
    for n in range(rounds):
        now = dt.datetime(2034, 1, 2, 0, 0, tzinfo=dt.UTC) + dt.timedelta(days=40 * n)
        with app.app_context():
            sub = ServiceSubscription(
                item_id=items["P-CLEAN"],
                unit_id=make_unit()["unit"],
                recurrence="weekly",
                first_start=now + dt.timedelta(days=1, hours=2),
                duration_minutes=120,
            )
            from models.base import acting_as, system_user_id

            with acting_as(system_user_id(db.session)):
                db.session.add(sub)
                db.session.commit()
            sub_id, version = sub.id, sub.version
            db.session.remove()

        at_flush, stopped = threading.Event(), threading.Event()
        job_thread: list[int] = []

        def pause(
            session, flush_context, instances, sub_id=sub_id, at_flush=at_flush, stopped=stopped, job_thread=job_thread
        ):
            if threading.get_ident() not in job_thread or at_flush.is_set():
                return
            if any(isinstance(o, ServiceOrder) and o.subscription_id == sub_id for o in session.new):
                at_flush.set()
                stopped.wait(timeout=30)

        totals: dict = {}

        def job(now=now, totals=totals, job_thread=job_thread):
            job_thread.append(threading.get_ident())
            with app.app_context():
                try:
                    totals.update(generate_orders(db.session, now=now, horizon_days=14))
                finally:
                    db.session.remove()

        event.listen(Session, "before_flush", pause, insert=True)
        try:
            t = threading.Thread(target=job)
            t.start()
            assert at_flush.wait(timeout=30), "the job never wrote this subscription's orders"
            resp = api("Staff").put(
                f"/api/v1/service_subscription/{sub_id}", json={"active": False, "version": version}
            )
            stopped.set()
            t.join(timeout=60)
            assert not t.is_alive(), "the job hung"
        finally:
            event.remove(Session, "before_flush", pause)
        assert resp.status_code == 200, resp.get_data(as_text=True)
        with app.app_context():
            made = db.session.execute(
                select(func.count()).select_from(ServiceOrder).where(ServiceOrder.subscription_id == sub_id)
            ).scalar()
            db.session.remove()
        if made:
            failures.append((n, made, totals))
        else:
            assert totals["failed"] >= 1, totals  # refused, and counted so
    assert not failures, f"{len(failures)}/{rounds} rounds: orders made after the subscription stopped: {failures}"


def test_a_charged_orders_money_never_changes(api, app, make_unit, items):
    """Charged, the order's amount and charge are on the unit's bill: no path changes them (the
    generic edit refuses the status; straight through the ORM, the model refuses)."""
    from flask_appbuilder.security.sqla.models import User

    from app.extensions import db
    from models.base import acting_as, system_user_id
    from models.services import ServiceOrder

    with app.app_context():
        staff = db.session.execute(select(User.id).where(User.username == "staff")).scalar()
        db.session.remove()
    start = dt.datetime(2035, 3, 1, 1, 0, tzinfo=dt.UTC)
    resp = api("Staff").post(
        "/api/v1/service_order/",
        json={
            "item": items["R-TAP"],
            "unit": make_unit()["unit"],
            "requested_start": start.isoformat(),
            "requested_end": (start + dt.timedelta(hours=1)).isoformat(),
        },
    )
    assert resp.status_code == 201, resp.get_data(as_text=True)
    o = {"id": resp.json["id"], "version": resp.json["version"], "start": start.isoformat(), "end": None}
    o["end"] = (start + dt.timedelta(hours=1)).isoformat()
    walk(api, {"staff": staff}, o, "charged")
    with app.app_context(), acting_as(system_user_id(db.session)):
        row = db.session.get(ServiceOrder, o["id"])
        charged = row.amount
        row.amount = Decimal(charged) + 1
        with pytest.raises(FieldErrors) as e:
            db.session.flush()
        assert "amount" in e.value.errors
        db.session.rollback()
        row = db.session.get(ServiceOrder, o["id"])
        row.satisfaction, row.status = 4, "rated"  # what may still change: the rating
        db.session.commit()
        assert db.session.get(ServiceOrder, o["id"]).amount == charged
        o["version"] = db.session.get(ServiceOrder, o["id"]).version
        db.session.remove()
    assert act(api, o, "rate", satisfaction=5).status_code == 422  # rated already
