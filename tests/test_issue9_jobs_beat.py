"""Issue 9, item 2: every periodic job runs as beat runs it, on PostgreSQL and on SQLite, on a
database with data in it, and does its work.

The jobs are taken from ``CELERY_BEAT_SCHEDULE`` itself: a job added to the schedule without a
seeder here fails ``test_every_beat_job_has_a_seeder``. Each job is called exactly as beat calls it
(the entry's ``args`` and ``kwargs``, none today, so every optional argument is None: the case the
late-fee job failed on), through the app's Celery task, in-process (``flask desk run-job`` does the
same). Each test seeds its own rows relative to the real clock and checks those rows changed as
the job promises. The apps run on databases of their own (a fresh PostgreSQL database and a SQLite
file, both built by the migrations), so jobs that act on every due row touch no other test's rows.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal

import pytest
import redis
from sqlalchemy import func, select, update

import config
from tests.conftest import REDIS_URL, build_app, create_database, drop_database, login_tokens

pytestmark = pytest.mark.services

D = Decimal
SCHEDULE = config.CELERY_BEAT_SCHEDULE
QUEUE = f"desk-test-issue9-{uuid.uuid4().hex[:8]}"  # deliveries the jobs queue land here, unconsumed


# --- the two apps ----------------------------------------------------------------------------
def _own_queue(flask_app):
    celery = flask_app.extensions["celery"]
    celery.conf.task_default_queue = QUEUE
    for name in ("queues", "default_queue", "router"):
        celery.amqp.__dict__.pop(name, None)
    return flask_app


@pytest.fixture(scope="module")
def pg_app(tmp_path_factory):
    url = create_database("desk_issue9")
    flask_app = _own_queue(build_app(url))
    flask_app.config["RETENTION_EXPORT_DIR"] = str(tmp_path_factory.mktemp("pg-retention"))
    yield flask_app
    with flask_app.app_context():
        from app.extensions import db

        db.session.remove()
        db.engine.dispose()
    drop_database(url)


@pytest.fixture(scope="module")
def sqlite_app(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sqlite")
    flask_app = _own_queue(build_app(f"sqlite:///{folder / 'desk.db'}"))
    flask_app.config["RETENTION_EXPORT_DIR"] = str(folder / "retention")
    yield flask_app


@pytest.fixture(scope="module", autouse=True)
def _drop_queue():
    yield
    redis.Redis.from_url(REDIS_URL).delete(QUEUE)


@pytest.fixture(params=["postgresql", "sqlite"])
def job_app(request):
    flask_app = request.getfixturevalue("pg_app" if request.param == "postgresql" else "sqlite_app")
    with flask_app.app_context():
        from app.extensions import db

        assert db.engine.dialect.name == request.param
    return flask_app


class Ctx:
    """Seeding helpers on one app: ORM writes as the system user, API calls as a role."""

    def __init__(self, flask_app):
        self.app = flask_app
        self._tokens = None

    def session(self):
        from app.extensions import db

        return db.session

    def run_orm(self, fn):
        from app.extensions import db
        from models.base import acting_as, system_user_id

        with self.app.app_context():
            with acting_as(system_user_id(db.session)):
                try:
                    result = fn(db.session)
                    db.session.commit()
                    return result
                finally:
                    db.session.remove()

    def api(self, method: str, role: str, url: str, **kw):
        if self._tokens is None:
            self._tokens = login_tokens(self.app)
        with self.app.app_context():
            client = self.app.test_client()
            return getattr(client, method)(url, headers={"Authorization": f"Bearer {self._tokens[role]}"}, **kw)

    def now(self) -> dt.datetime:
        from models.base import utcnow

        return utcnow()

    def today(self) -> dt.date:
        from models.fees import local_today

        with self.app.app_context():
            return local_today()


def new_unit(s, *, owner: bool = True, area: str = "88.50"):
    from models.archives import Building, Estate, Owner, Ownership, Unit

    tag = uuid.uuid4().hex[:8]
    estate = Estate(code=f"J{tag}", name=f"任务小区{tag}")
    building = Building(estate=estate, code="1")
    unit = Unit(building=building, code=f"1-1-{tag[:4]}", gross_area=D(area), handover_date=dt.date(2020, 1, 1))
    s.add_all([estate, building, unit])
    s.flush()
    if owner:
        person = Owner(name=f"业主{tag[:4]}", phone="13800138000")
        s.add(person)
        s.flush()
        s.add(Ownership(unit_id=unit.id, owner_id=person.id, since=dt.date(2020, 1, 1)))
    s.flush()
    return unit


def new_item(s, **kw):
    from models.fees import FeeItem

    item = FeeItem(code=f"J{uuid.uuid4().hex[:10]}", name="物业服务费", kind="property_service", **kw)
    s.add(item)
    s.flush()
    return item


def new_ticket(s, unit_id, at: dt.datetime, end: str | None = None, **extra):
    from models.desk import Ticket

    extra.setdefault("kind", "consultation")
    t = Ticket(channel="phone", priority="normal", unit_id=unit_id, description="任务测试", reported_at=at, **extra)
    s.add(t)
    s.flush()
    if end == "closed":
        t.transition(s, "resolved", now=at + dt.timedelta(hours=1))
        t.transition(s, "closed", now=at + dt.timedelta(hours=2))
    s.flush()
    return t


# --- one seeder and one check per job --------------------------------------------------------
def seed_residents(ctx):
    from models.archives import Resident

    def go(s):
        unit = new_unit(s)
        r = Resident(unit_id=unit.id, name="将搬走", move_in=dt.date(2020, 1, 1), move_out=ctx.today() + dt.timedelta(days=9))
        s.add(r)
        s.flush()
        assert r.is_current
        # Time passes: the move-out date comes (a Core write, as the calendar would).
        s.execute(update(Resident).where(Resident.id == r.id).values(move_out=ctx.today() - dt.timedelta(days=1)))
        return r.id

    return ctx.run_orm(go)


def check_residents(ctx, rid, result):
    from models.archives import Resident

    assert result >= 1
    assert ctx.run_orm(lambda s: s.get(Resident, rid).is_current) is False


def seed_late_ticket(ctx):
    def go(s):
        unit = new_unit(s)
        return new_ticket(s, unit.id, ctx.now() - dt.timedelta(days=3)).id

    return ctx.run_orm(go)


def check_late_ticket(ctx, tid, result):
    from models.desk import Ticket, TicketEvent

    assert result["tickets"] >= 1

    def go(s):
        t = s.get(Ticket, tid)
        kinds = s.execute(select(TicketEvent.kind).where(TicketEvent.ticket_id == tid)).scalars().all()
        return t.reply_steps_done, t.escalation_level, kinds

    steps, level, kinds = ctx.run_orm(go)
    assert steps >= 1 and level >= 1 and "escalation" in kinds


def seed_failed_notification(ctx):
    from models.desk import Notification

    def go(s):
        unit = new_unit(s)
        t = new_ticket(s, unit.id, ctx.now())
        n = Notification(
            recipient=f"inbox:{uuid.uuid4().hex[:6]}",
            channel="inbox",
            kind="reply_warn",
            subject_type="ticket",
            subject_id=t.id,
            deadline_at=ctx.now(),
            title="重发测试",
            state="failed",
            attempts=1,
        )
        s.add(n)
        s.flush()
        return n.id

    return ctx.run_orm(go)


def check_failed_notification(ctx, nid, result):
    assert result >= 1
    queued = redis.Redis.from_url(REDIS_URL).lrange(QUEUE, 0, -1)
    args = [json.loads(m)["headers"].get("argsrepr") for m in queued]
    assert f"[{nid}]" in args, "the failed notification was not queued again"


def seed_last_year_ticket(ctx):
    def go(s):
        unit = new_unit(s)
        return new_ticket(s, unit.id, ctx.now() - dt.timedelta(days=400), end="closed").id

    return ctx.run_orm(go)


def check_archived(ctx, tid, result):
    from models.desk import Ticket

    assert result >= 1
    assert ctx.run_orm(lambda s: s.get(Ticket, tid).archived_at) is not None


def seed_old_archived_ticket_with_order(ctx):
    """A closed repair archived three years ago with a paid-service order made from it (the
    order's foreign key to the ticket stopped every purge, issue 9 item 20)."""
    from app.seed import service_catalog
    from models.desk import Ticket
    from models.services import ServiceItem, ServiceOrder

    def go(s):
        service_catalog()
        unit = new_unit(s)
        t = new_ticket(s, unit.id, ctx.now() - dt.timedelta(days=5 * 365), kind="repair", responsibility="owner_paid")
        item = s.execute(select(ServiceItem).order_by(ServiceItem.id).limit(1)).scalar_one()
        start = ctx.now() - dt.timedelta(days=5 * 365)
        order = ServiceOrder(item_id=item.id, unit_id=unit.id, ticket_id=t.id, requested_start=start,
                             requested_end=start + dt.timedelta(hours=1))  # fmt: skip
        s.add(order)
        s.flush()
        at = ctx.now() - dt.timedelta(days=5 * 365 - 1)
        t.transition(s, "resolved", now=at)
        t.transition(s, "closed", now=at + dt.timedelta(hours=1))
        s.flush()
        s.execute(update(Ticket).where(Ticket.id == t.id).values(archived_at=ctx.now() - dt.timedelta(days=3 * 365)))
        return t.id, order.id

    return ctx.run_orm(go)


def check_purged(ctx, seeded, result):
    from models.desk import Ticket
    from models.services import ServiceOrder

    tid, oid = seeded
    assert result["tickets"] >= 1 and result["files"] and not result.get("failed")

    def go(s):
        order = s.get(ServiceOrder, oid)
        return s.get(Ticket, tid), order is not None and order.ticket_id

    ticket, link = ctx.run_orm(go)
    assert ticket is None
    assert link is None  # the order is kept, detached from the purged ticket


def seed_standard(ctx):
    from models.archives import Estate
    from models.base import system_user_id
    from models.fees import FeeStandard

    def go(s):
        unit = new_unit(s, area="100.00")
        item = new_item(s)
        std = FeeStandard(item_id=item.id, revision=1, basis="per_area_month", unit_price=D("2.5000"),
                          rounding="half_up_cent", unit_uses=["residential"], effective_from=dt.date(2020, 1, 1),
                          estates=[s.get(Estate, unit.estate_id)], status="draft")  # fmt: skip
        s.add(std)
        s.flush()
        std.declare("fee_standard/test.pdf")
        std.approve(system_user_id(s))
        return unit.estate_id, unit.id, item.id

    return ctx.run_orm(go)


def check_billed(ctx, seeded, result):
    from jobs.billing import current_period
    from models.fees import Bill, BillingRun

    estate_id, unit_id, item_id = seeded
    assert result["estates"] >= 1 and result["lines_created"] >= 1

    def go(s):
        period = current_period()
        run = s.execute(select(BillingRun).where(BillingRun.estate_id == estate_id)).scalar_one()
        bill = s.execute(select(Bill).where(Bill.unit_id == unit_id)).scalar_one()
        return period, run.status, run.lines_created, (bill.period, bill.item_id, bill.amount), bill.issued_on, bill.due_date

    period, status, lines, line, issued_on, due = ctx.run_orm(go)
    assert (status, lines) == ("done", 1)
    assert line == (period, item_id, D("250.00"))
    assert due >= issued_on + dt.timedelta(days=15)


def seed_overdue_bill(ctx):
    from models.fees import Bill

    def go(s):
        unit = new_unit(s)
        item = new_item(s, grace_days=5, late_daily_rate=D("0.0005"), late_cap_rate=D("0.5"))
        due = ctx.today() - dt.timedelta(days=45)
        bill = Bill(estate_id=unit.estate_id, unit_id=unit.id, item_id=item.id, period=f"{due:%Y-%m}", source="t",
                    quantity=D(1), unit_price=D("333.33"), amount=D("333.33"), issued_on=due - dt.timedelta(days=15),
                    due_date=due)  # fmt: skip
        s.add(bill)
        s.flush()
        return bill.id

    return ctx.run_orm(go)


def check_late_fee(ctx, bill_id, result):
    from models.fees import Bill

    assert result["changed"] >= 1
    fee = ctx.run_orm(lambda s: s.get(Bill, bill_id).late_fee)
    # 333.33 x 0.0005 x (45 - 5) days = 6.6666 -> 6.67, computed here by hand
    assert fee == D("6.67")


def seed_dunnable(ctx):
    from models.fees import Bill

    def go(s):
        unit = new_unit(s)
        item = new_item(s)
        due = ctx.today() - dt.timedelta(days=70)
        s.add(Bill(estate_id=unit.estate_id, unit_id=unit.id, item_id=item.id, period=f"{due:%Y-%m}", source="t",
                   quantity=D(1), unit_price=D("120.00"), amount=D("120.00"), issued_on=due - dt.timedelta(days=15),
                   due_date=due))  # fmt: skip
        return unit.id

    return ctx.run_orm(go)


def check_notice(ctx, unit_id, result):
    from models.payments import DunningNotice

    assert result["created"] >= 1
    notices = ctx.run_orm(
        lambda s: [
            (n.stage, n.amount_due, bool(n.letter))
            for n in s.execute(select(DunningNotice).where(DunningNotice.unit_id == unit_id)).scalars()
        ]
    )
    assert notices == [("formal", D("120.00"), True)]  # 70 days: past 60, not yet 120


def seed_subscription(ctx):
    from app.seed import service_catalog
    from models.services import ServiceItem, ServiceSubscription

    def go(s):
        service_catalog()
        unit = new_unit(s)
        item = s.execute(select(ServiceItem).order_by(ServiceItem.id).limit(1)).scalar_one()
        sub = ServiceSubscription(item_id=item.id, unit_id=unit.id, recurrence="weekly",
                                  first_start=ctx.now() + dt.timedelta(days=1), duration_minutes=60)  # fmt: skip
        s.add(sub)
        s.flush()
        return sub.id

    return ctx.run_orm(go)


def check_orders(ctx, sub_id, result):
    from models.services import ServiceOrder

    assert result["created"] >= 2
    n = ctx.run_orm(
        lambda s: s.execute(select(func.count()).where(ServiceOrder.subscription_id == sub_id)).scalar()
    )
    assert n == 2  # days 1 and 8 of the 14-day horizon


def _active_renovation(ctx) -> int:
    """A renovation taken to 'active' through the API (applied, approved, deposit paid, started)."""
    from app.seed import renovation_fee_items
    from models.payments import record_payment
    from models.renovation import Renovation, renovation_bills

    ctx.run_orm(lambda s: renovation_fee_items())
    unit_id = ctx.run_orm(lambda s: new_unit(s).id)
    today = ctx.today()
    body = {
        "unit": unit_id, "contractor": "美家装饰", "person_in_charge": "王工", "phone": "13911112222",
        "workers": 2, "scope": ["walls"], "planned_start": today.isoformat(),
        "planned_end": (today + dt.timedelta(days=30)).isoformat(), "working_hours": "08:00-12:00",
        "deposit": "2000.00", "management_fee": "300.00",
    }  # fmt: skip
    resp = ctx.api("post", "Staff", "/api/v1/renovation/", json=body)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    pk, version = resp.json["id"], resp.json["version"]
    resp = ctx.api("post", "Manager", f"/api/v1/renovation/{pk}/approve", json={"version": version})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    version = resp.json["version"]

    def pay(s):
        r = s.get(Renovation, pk)
        bill = renovation_bills(s, r)["deposit"]
        record_payment(s, r.unit, bill.amount, "cash", bill_ids=[bill.id])

    ctx.run_orm(pay)
    resp = ctx.api("post", "Staff", f"/api/v1/renovation/{pk}/start", json={"version": version})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return pk


def _notified(ctx, subject_type, subject_id, kind) -> int:
    from models.desk import Notification

    return ctx.run_orm(
        lambda s: s.execute(
            select(func.count()).where(
                Notification.subject_type == subject_type,
                Notification.subject_id == subject_id,
                Notification.kind == kind,
            )
        ).scalar()
    )


def seed_inspection_due(ctx):
    from models.renovation import Renovation

    pk = _active_renovation(ctx)
    ctx.run_orm(
        lambda s: s.execute(update(Renovation).where(Renovation.id == pk).values(next_inspection_on=ctx.today()))
    )
    return pk


def check_inspection_reminder(ctx, pk, result):
    assert result >= 1
    assert _notified(ctx, "renovation", pk, "reno_inspection") >= 1


def seed_overdue_renovation(ctx):
    from models.renovation import Renovation

    pk = _active_renovation(ctx)
    yesterday = ctx.today() - dt.timedelta(days=1)
    ctx.run_orm(
        lambda s: s.execute(
            update(Renovation).where(Renovation.id == pk).values(planned_start=yesterday, planned_end=yesterday)
        )
    )
    return pk


def check_overdue_alert(ctx, pk, result):
    from models.renovation import Renovation

    assert ctx.run_orm(lambda s: s.get(Renovation, pk).overdue_alerted_on) == ctx.today()


def seed_late_rectification(ctx):
    from models.renovation import RectificationOrder

    pk = _active_renovation(ctx)

    def go(s):
        late = ctx.now() - dt.timedelta(hours=2)
        order = RectificationOrder(renovation_id=pk, description="未按规定时间施工", deadline=late)
        s.add(order)
        s.flush()
        return order.id

    return ctx.run_orm(go)


def check_rectification(ctx, oid, result):
    from models.renovation import RectificationOrder

    assert result >= 1
    assert ctx.run_orm(lambda s: s.get(RectificationOrder, oid).steps_done) == 1
    assert _notified(ctx, "rectification", oid, "rect_level1") >= 1


JOBS = {
    "residents.close_moved_out": (seed_residents, check_residents),
    "desk.escalation_sweep": (seed_late_ticket, check_late_ticket),
    "desk.redeliver_notifications": (seed_failed_notification, check_failed_notification),
    "desk.archive_closed_tickets": (seed_last_year_ticket, check_archived),
    "desk.purge_archived_tickets": (seed_old_archived_ticket_with_order, check_purged),
    "fees.monthly_billing": (seed_standard, check_billed),
    "fees.late_fees": (seed_overdue_bill, check_late_fee),
    "fees.dunning": (seed_dunnable, check_notice),
    "services.generate_periodic_orders": (seed_subscription, check_orders),
    "renovation.inspection_reminders": (seed_inspection_due, check_inspection_reminder),
    "renovation.overdue_alerts": (seed_overdue_renovation, check_overdue_alert),
    "renovation.rectification_sweep": (seed_late_rectification, check_rectification),
}


def test_every_beat_job_has_a_seeder():
    missing = sorted(set(SCHEDULE) - set(JOBS))
    assert not missing, f"add a seeder and a check for these periodic jobs: {missing}"
    assert not set(JOBS) - set(SCHEDULE), "a seeder for a job beat no longer runs"


@pytest.mark.parametrize("name", sorted(SCHEDULE))
def test_beat_job_runs_as_beat_runs_it_and_does_its_work(job_app, name):
    if name not in JOBS:
        pytest.fail(f"no seeder for periodic job {name!r}")
    entry = job_app.config["CELERY_BEAT_SCHEDULE"][name]
    assert entry == SCHEDULE[name]
    seed, check = JOBS[name]
    ctx = Ctx(job_app)
    seeded = seed(ctx)
    task = job_app.extensions["celery"].tasks[entry["task"]]
    # Exactly what beat sends: the entry's args and kwargs (none: every optional argument None).
    result = task.apply(args=entry.get("args", ()), kwargs=entry.get("kwargs", {}))
    assert not result.failed(), f"{name} failed: {result.result!r}\n{result.traceback}"
    check(ctx, seeded, result.result)


def test_run_job_late_fees_exits_0_on_postgresql(pg_app):
    """The reported command, on PostgreSQL, with a bill for it to work on."""
    ctx = Ctx(pg_app)
    bill_id = seed_overdue_bill(ctx)
    out = pg_app.test_cli_runner().invoke(args=["desk", "run-job", "fees.late_fees"])
    assert out.exit_code == 0, out.output
    assert "fees.late_fees:" in out.output
    check_late_fee(ctx, bill_id, {"changed": 1})
