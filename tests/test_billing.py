"""Monthly billing (jobs/billing.py) on PostgreSQL: the SQL path gives exactly ``line_amount()``'s
amounts, reruns and concurrent runs bill nothing twice, a worker killed with SIGKILL halfway
leaves nothing and a rerun completes, only approved standards bill, a bill keeps the standard
version it was made with."""

from __future__ import annotations

import datetime as dt
import random
import threading
import time
import uuid
from decimal import Decimal

import pytest
from sqlalchemy import func, select, text

from tests.conftest import REDIS_URL

pytestmark = pytest.mark.services


# --- helpers ---------------------------------------------------------------------------------
def make_estate(db, n_units: int = 0, *, rng: random.Random | None = None, areas=None, handovers=None, statuses=None):
    from models.archives import Building, Estate, Owner, Ownership, Unit

    tag = uuid.uuid4().hex[:8]
    estate = Estate(code=f"B{tag}", name=f"计费小区{tag}")
    building = Building(estate=estate, code="1")
    db.session.add_all([estate, building])
    db.session.flush()
    unit_ids = []
    for i in range(n_units):
        unit = Unit(
            building=building,
            code=f"1-{i + 1}",
            gross_area=areas[i] if areas else Decimal("88.50"),
            status=statuses[i] if statuses else "occupied",
            handover_date=handovers[i] if handovers else dt.date(2020, 1, 1),
        )
        owner = Owner(name=f"业主{i}", phone="13800138000")
        db.session.add_all([unit, owner])
        db.session.flush()
        db.session.add(Ownership(unit_id=unit.id, owner_id=owner.id, since=dt.date(2020, 1, 1)))
        unit_ids.append(unit.id)
    db.session.commit()
    return estate.id, unit_ids


def make_item(db, kind: str = "property_service", due_days: int = 15):
    from models.fees import FeeItem

    item = FeeItem(code=f"I{uuid.uuid4().hex[:10]}", name=f"费用{uuid.uuid4().hex[:4]}", kind=kind, due_days=due_days)
    db.session.add(item)
    db.session.commit()
    return item.id


def make_standard(
    db,
    item_id,
    estate_ids,
    *,
    basis="per_area_month",
    price="2.5000",
    rounding="half_up_cent",
    start=dt.date(2030, 1, 1),
    end=None,
    status="approved",
    unsold=True,
    uses=("residential",),
):
    from models.archives import Estate
    from models.fees import FeeStandard, next_revision

    std = FeeStandard(
        item_id=item_id,
        revision=next_revision(db.session, item_id),
        basis=basis,
        unit_price=Decimal(price),
        rounding=rounding,
        unit_uses=list(uses),
        effective_from=start,
        effective_to=end,
        estates=[db.session.get(Estate, e) for e in estate_ids],
        bill_unsold_to_developer=unsold,
        status="draft",
    )
    db.session.add(std)
    db.session.flush()
    if status in ("declared", "approved", "retired"):
        std.declare("fee_standard/test.pdf")
    if status in ("approved", "retired"):
        std.approve(system_id(db))
    if status == "retired":
        std.retire()
    db.session.commit()
    return std.id


def system_id(db):
    from models.base import system_user_id

    return system_user_id(db.session)


def bills_of(db, estate_id, period):
    from models.fees import Bill

    return (
        db.session.execute(
            select(Bill).where(Bill.estate_id == estate_id, Bill.period == period).order_by(Bill.unit_id, Bill.item_id)
        )
        .scalars()
        .all()
    )


# --- the SQL path equals line_amount() -------------------------------------------------------
@pytest.mark.parametrize("seed", [1, 2])
def test_sql_amounts_equal_line_amount(app, seed):
    """A few hundred random units (areas with 2 decimals, handovers before, inside and after the
    month, some unsold), standards with random 4-decimal prices, every rounding rule and basis:
    the lines billed in SQL are exactly those ``line_amount()`` gives."""
    from app.extensions import db
    from jobs.billing import applicable_standards, bill_lines_python, run_billing
    from models.fees import ROUNDINGS, MeterReading, month_bounds

    rng = random.Random(seed)
    period = f"2031-{rng.choice([2, 3, 4, 11, 12]):02d}"
    first, nxt = month_bounds(period)
    n = 300
    areas = [Decimal(rng.randrange(100, 30000)) / 100 for _ in range(n)]
    handovers = []
    for _ in range(n):
        r = rng.random()
        if r < 0.5:
            handovers.append(first - dt.timedelta(days=rng.randrange(1, 900)))
        elif r < 0.85:
            handovers.append(first + dt.timedelta(days=rng.randrange(0, (nxt - first).days)))
        elif r < 0.92:
            handovers.append(None)
        else:
            handovers.append(nxt + dt.timedelta(days=rng.randrange(0, 60)))
    statuses = [rng.choice(["occupied", "occupied", "rented", "vacant", "unsold"]) for _ in range(n)]
    with app.app_context():
        estate_id, unit_ids = make_estate(db, n, areas=areas, handovers=handovers, statuses=statuses)
        for rounding in ROUNDINGS:
            for basis in ("per_area_month", "per_unit_month"):
                price = Decimal(rng.randrange(1, 2_000_000)) / 10000
                make_standard(
                    db,
                    make_item(db),
                    [estate_id],
                    basis=basis,
                    price=str(price),
                    rounding=rounding,
                    start=first,
                    unsold=rng.random() < 0.5,
                )
        metered = make_item(db, kind="water")
        make_standard(db, metered, [estate_id], basis="per_quantity", price="4.1234", rounding="up_cent", start=first)
        read = [u for u in unit_ids if rng.random() < 0.7]
        for u in read:
            db.session.add(
                MeterReading(
                    unit_id=u,
                    item_id=metered,
                    period=period,
                    read_on=first,
                    reading=Decimal(rng.randrange(0, 100000)) / 100,
                )
            )
        db.session.commit()

        expected = {}
        for std in applicable_standards(db.session, estate_id, period):
            for line in bill_lines_python(db.session, std, estate_id, period):
                expected[(line["unit_id"], line["item_id"])] = line
        db.session.rollback()
        result = run_billing(estate_id, period, "test")
        got = bills_of(db, estate_id, period)
        assert result["lines_created"] == len(expected) == len(got)
        assert Decimal(result["amount_created"]) == sum(line["amount"] for line in expected.values())
        for bill in got:
            line = expected[(bill.unit_id, bill.item_id)]
            assert bill.amount == line["amount"], (bill.unit_id, bill.item_id)
            assert bill.quantity == line["quantity"]
            assert bill.billed_days == line["billed_days"]
            assert bill.owner_id == line["owner_id"]
            assert bill.billed_to_developer == line["billed_to_developer"]
            assert bill.due_date == first + dt.timedelta(days=15)
            assert bill.standard_id == line["standard_id"]
        # Units handed over after the period are not billed; prorated lines exist.
        late = {u for u, h in zip(unit_ids, handovers, strict=True) if h is not None and h >= nxt}
        assert not {b.unit_id for b in got} & late
        assert any(b.billed_days for b in got)
        # A metered standard bills only units with a reading.
        assert {b.unit_id for b in got if b.item_id == metered} <= set(read)
        db.session.remove()


def test_rounding_in_sql_matches_round_money_at_the_boundaries(app):
    """Half a cent, just below and just above it, for every rule, straight through the SQL."""
    from app.extensions import db
    from jobs.billing import SQL_ROUNDING
    from models.fees import ROUNDINGS, round_money

    values = ["0.005", "0.004999", "0.015", "1.0050", "2.4999", "2.5", "3.45", "7.000001", "0", "12.3449", "99.995"]
    with app.app_context():
        for rule in ROUNDINGS:
            for v in values:
                sql = "SELECT CAST(" + SQL_ROUNDING[rule].format(x="CAST(:x AS numeric)") + " AS numeric(14,2))"
                got = db.session.execute(text(sql), {"x": Decimal(v)}).scalar()
                assert got == round_money(Decimal(v), rule), (rule, v)
        db.session.remove()


# --- idempotency and concurrency -------------------------------------------------------------
def test_rerun_bills_nothing_new(app):
    from app.extensions import db
    from jobs.billing import run_billing
    from models.fees import BillingRun

    with app.app_context():
        estate_id, units = make_estate(db, 25)
        make_standard(db, make_item(db), [estate_id], start=dt.date(2031, 1, 1))
        make_standard(db, make_item(db, "garbage"), [estate_id], basis="per_unit_month", price="15")
        first = run_billing(estate_id, "2031-05", "test")
        again = run_billing(estate_id, "2031-05", "test")
        assert first["lines_created"] == 50
        assert again["lines_created"] == 0 and again["lines_total"] == 50
        assert again["amount_total"] == first["amount_total"]
        assert len(bills_of(db, estate_id, "2031-05")) == 50
        runs = db.session.execute(select(BillingRun.status).where(BillingRun.estate_id == estate_id)).scalars().all()
        assert runs == ["done", "done"]
        db.session.remove()


def test_two_concurrent_runs_bill_each_line_once(app):
    from app.extensions import db
    from jobs.billing import run_billing
    from models.fees import BillingRun

    with app.app_context():
        estate_id, units = make_estate(db, 200)
        make_standard(db, make_item(db), [estate_id], start=dt.date(2031, 1, 1))
        make_standard(db, make_item(db, "garbage"), [estate_id], basis="per_unit_month", price="15")
        db.session.remove()

    barrier = threading.Barrier(2)
    results, errors = [], []

    def worker():
        try:
            with app.app_context():
                barrier.wait()
                results.append(run_billing(estate_id, "2031-06", "thread"))
                db.session.remove()
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert sorted(r["lines_created"] for r in results) == [0, 400]
    with app.app_context():
        got = bills_of(db, estate_id, "2031-06")
        assert len(got) == 400
        assert len({(b.unit_id, b.item_id) for b in got}) == 400
        statuses = db.session.execute(select(BillingRun.status).where(BillingRun.estate_id == estate_id)).scalars()
        assert sorted(statuses) == ["done", "done"]
        db.session.remove()


# --- what bills ------------------------------------------------------------------------------
def test_only_approved_standards_bill(app):
    from app.extensions import db
    from jobs.billing import run_billing

    with app.app_context():
        estate_id, units = make_estate(db, 5)
        approved = make_item(db)
        make_standard(db, approved, [estate_id])
        for status in ("draft", "declared", "retired"):
            make_standard(db, make_item(db), [estate_id], status=status)
        rejected = make_item(db)
        std = make_standard(db, rejected, [estate_id], status="declared")
        from models.fees import FeeStandard

        db.session.get(FeeStandard, std).reject("价格过高")
        db.session.commit()
        # An approved standard of another estate, use, or a later period does not bill here either.
        other_estate, _ = make_estate(db, 1)
        make_standard(db, make_item(db), [other_estate])
        make_standard(db, make_item(db), [estate_id], uses=("commercial",))
        make_standard(db, make_item(db), [estate_id], start=dt.date(2031, 8, 1))
        make_standard(db, make_item(db), [estate_id], end=dt.date(2031, 6, 30))
        result = run_billing(estate_id, "2031-07", "test")
        assert result["lines_created"] == 5
        assert {b.item_id for b in bills_of(db, estate_id, "2031-07")} == {approved}
        db.session.remove()


def test_unsold_units_and_current_owner(app):
    from app.extensions import db
    from jobs.billing import run_billing
    from models.archives import Owner, Ownership

    with app.app_context():
        estate_id, units = make_estate(db, 3, statuses=["unsold", "occupied", "occupied"])
        to_dev = make_item(db)
        skip = make_item(db, "garbage")
        make_standard(db, to_dev, [estate_id], unsold=True)
        make_standard(db, skip, [estate_id], basis="per_unit_month", price="10", unsold=False)
        # Unit 2 was sold on: the old ownership ended before the period, the new one is current;
        # unit 3 has two current owners, the larger share is billed.
        old = db.session.execute(select(Ownership).where(Ownership.unit_id == units[1])).scalar_one()
        old.until = dt.date(2031, 8, 31)
        new_owner = Owner(name="新业主", phone="13900139000")
        second = Owner(name="大份额", phone="13900139001")
        db.session.add_all([new_owner, second])
        db.session.flush()
        third = db.session.execute(select(Ownership).where(Ownership.unit_id == units[2])).scalar_one()
        third.share = Decimal("40")
        db.session.add_all(
            [
                Ownership(unit_id=units[1], owner_id=new_owner.id, since=dt.date(2031, 9, 1)),
                Ownership(unit_id=units[2], owner_id=second.id, share=Decimal("60"), since=dt.date(2025, 1, 1)),
            ]
        )
        db.session.commit()
        run_billing(estate_id, "2031-09", "test")
        got = {(b.unit_id, b.item_id): b for b in bills_of(db, estate_id, "2031-09")}
        assert got[(units[0], to_dev)].owner_id is None and got[(units[0], to_dev)].billed_to_developer
        assert (units[0], skip) not in got
        assert got[(units[1], to_dev)].owner_id == new_owner.id
        assert got[(units[2], skip)].owner_id == second.id
        assert len(got) == 5
        db.session.remove()


def test_bill_keeps_the_standard_version_it_used(app):
    from app.extensions import db
    from jobs.billing import run_billing
    from models.fees import Bill, FeeStandard

    with app.app_context():
        estate_id, units = make_estate(db, 4)
        item = make_item(db)
        v1 = make_standard(db, item, [estate_id], price="2.0000", start=dt.date(2031, 1, 1))
        run_billing(estate_id, "2031-10", "test")
        old = db.session.get(FeeStandard, v1)
        rev = old.new_revision()
        rev.unit_price = Decimal("3.0000")
        rev.effective_from = dt.date(2031, 11, 1)
        db.session.add(rev)
        db.session.flush()
        rev.declare("fee_standard/v2.pdf")
        rev.approve(system_id(db))
        db.session.commit()
        assert old.status == "approved" and old.effective_to == dt.date(2031, 10, 31)
        assert rev.revision == 2 and rev.supersedes_id == v1
        run_billing(estate_id, "2031-10", "test")  # a rerun of October changes nothing
        run_billing(estate_id, "2031-11", "test")
        oct_bills = bills_of(db, estate_id, "2031-10")
        nov_bills = bills_of(db, estate_id, "2031-11")
        assert {b.standard_id for b in oct_bills} == {v1}
        assert {b.amount for b in oct_bills} == {Decimal("177.00")}
        assert {b.standard_id for b in nov_bills} == {rev.id}
        assert {b.amount for b in nov_bills} == {Decimal("265.50")}
        assert db.session.execute(select(func.count()).select_from(Bill).where(Bill.standard_id == v1)).scalar() == 4
        db.session.remove()


def test_first_month_prorated_in_sql(app):
    from app.extensions import db
    from jobs.billing import run_billing

    with app.app_context():
        estate_id, units = make_estate(
            db,
            3,
            areas=[Decimal("100.00"), Decimal("100.00"), Decimal("100.00")],
            handovers=[dt.date(2031, 2, 10), dt.date(2031, 2, 1), dt.date(2031, 3, 1)],
        )
        make_standard(db, make_item(db), [estate_id], price="1.9000")
        run_billing(estate_id, "2031-02", "test")
        got = {b.unit_id: b for b in bills_of(db, estate_id, "2031-02")}
        # 190.00 x 19/28 = 128.928571... -> 128.93; from the 1st: the whole month; March: not yet.
        assert got[units[0]].amount == Decimal("128.93") and got[units[0]].billed_days == 19
        assert got[units[1]].amount == Decimal("190.00") and got[units[1]].billed_days is None
        assert units[2] not in got
        db.session.remove()


# --- a run row committed by the screen, an interrupted run ----------------------------------
def test_rerun_completes_or_supersedes_an_interrupted_run(app):
    from app.extensions import db
    from jobs.billing import run_billing
    from models.fees import BillingRun

    with app.app_context():
        estate_id, units = make_estate(db, 3)
        make_standard(db, make_item(db), [estate_id])
        stale = BillingRun(estate_id=estate_id, period="2031-12", started_by="manager", status="running")
        queued = BillingRun(estate_id=estate_id, period="2031-12", started_by="manager", status="running")
        db.session.add_all([stale, queued])
        db.session.commit()
        result = run_billing(estate_id, "2031-12", "manager", run_id=queued.id)
        assert result["run_id"] == queued.id and result["status"] == "done" and result["lines_created"] == 3
        db.session.expire_all()
        assert db.session.get(BillingRun, stale.id).status == "failed"
        assert "superseded" in db.session.get(BillingRun, stale.id).error
        # A redelivered task for a run already done returns its summary and bills nothing.
        assert run_billing(estate_id, "2031-12", "manager", run_id=queued.id)["lines_created"] == 3
        assert len(bills_of(db, estate_id, "2031-12")) == 3
        db.session.remove()


# --- a real worker killed with SIGKILL halfway -----------------------------------------------
def test_sigkill_halfway_leaves_nothing_and_a_rerun_completes(app, database_url, tmp_path):
    """20k generated units, two items. The test holds an uncommitted bill line of the second item
    for the last unit, so the job inserts all the first item's lines and then waits on that row:
    halfway, deterministically. The worker is killed with SIGKILL there; nothing is committed,
    the run row the screen committed is still 'running'. A rerun (a fresh worker) completes that
    run: one line per unit and item, the run done, no run left 'running'."""
    from app.extensions import db
    from app.seed import generate
    from models.archives import Estate, Unit
    from models.base import acting_as
    from models.fees import Bill, BillingRun
    from tests.workers import celery_worker, new_queue

    period = "2032-01"
    with app.app_context():
        with acting_as(system_id(db)):
            generate(20000, residents_per_unit=0, estate_prefix=f"K{uuid.uuid4().hex[:6]}")
        estate_id = db.session.execute(select(func.max(Estate.id))).scalar()
        n_units = db.session.execute(select(func.count()).select_from(Unit).where(Unit.estate_id == estate_id)).scalar()
        assert n_units == 20000
        item1 = make_item(db)
        item2 = make_item(db, "garbage")
        make_standard(db, item1, [estate_id], start=dt.date(2030, 1, 1))
        make_standard(db, item2, [estate_id], basis="per_unit_month", price="12.0000", start=dt.date(2030, 1, 1))
        run = BillingRun(estate_id=estate_id, period=period, started_by="manager", status="running")
        db.session.add(run)
        db.session.commit()
        run_id = run.id
        last_unit = db.session.execute(select(func.max(Unit.id)).where(Unit.estate_id == estate_id)).scalar()
        expected = (
            20000
            + db.session.execute(select(func.count()).select_from(Unit).where(Unit.estate_id == estate_id)).scalar()
        )  # both standards bill unsold units to the developer
        db.session.remove()

    celery = app.extensions["celery"]
    with app.app_context():
        engine = db.engine
    blocker = engine.connect()
    tx = blocker.begin()
    uid = blocker.execute(text("SELECT id FROM ab_user WHERE username = 'system'")).scalar()
    blocker.execute(
        text(
            "INSERT INTO bill (estate_id, unit_id, item_id, period, source, quantity, unit_price, amount, paid_amount,"
            " late_fee, late_fee_waived, issued_on, due_date, status, disputed, billed_to_developer, version, created_at,"
            " changed_at, created_by_id, changed_by_id) VALUES (:e, :u, :i, :p, '', 1, 12, 12, 0, 0, 0, :d, :d, 'open',"
            " false, false, 1, now(), now(), :uid, :uid)"
        ),
        {"e": estate_id, "u": last_unit, "i": item2, "p": period, "d": dt.date(2032, 1, 16), "uid": uid},
    )
    try:
        queue = new_queue()
        with celery_worker(tmp_path, database_url, REDIS_URL, queue) as worker:
            celery.send_task("jobs.billing.run", args=[estate_id, period, "manager", run_id], queue=queue)
            deadline = time.monotonic() + 120
            waiting = False
            while time.monotonic() < deadline and not waiting:
                with engine.connect() as probe:
                    waiting = bool(
                        probe.execute(
                            text(
                                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                                " AND wait_event_type = 'Lock' AND query LIKE '%INSERT INTO bill%'"
                            )
                        ).scalar()
                    )
                time.sleep(0.05)
            assert waiting, worker.log()
            worker.kill()
            assert not worker.alive()
    finally:
        tx.rollback()  # the orphaned backend finishes its statement, finds its client gone, aborts
        blocker.close()

    with app.app_context():
        assert (
            db.session.execute(select(func.count()).select_from(Bill).where(Bill.estate_id == estate_id)).scalar() == 0
        )
        assert db.session.get(BillingRun, run_id).status == "running"
        db.session.remove()

    queue = new_queue()
    with celery_worker(tmp_path, database_url, REDIS_URL, queue) as worker:
        result = celery.send_task("jobs.billing.run", args=[estate_id, period, "manager", run_id], queue=queue)
        summary = result.get(timeout=180)
    assert summary["status"] == "done" and summary["run_id"] == run_id
    assert summary["lines_created"] == expected == summary["lines_total"]
    with app.app_context():
        counts = db.session.execute(
            select(Bill.unit_id, Bill.item_id, func.count())
            .where(Bill.estate_id == estate_id, Bill.period == period)
            .group_by(Bill.unit_id, Bill.item_id)
        ).all()
        assert len(counts) == expected and all(c == 1 for _, _, c in counts)
        runs = db.session.execute(
            select(BillingRun.status).where(BillingRun.estate_id == estate_id, BillingRun.period == period)
        ).scalars()
        assert list(runs) == ["done"]
        db.session.remove()


# --- the periodic job ------------------------------------------------------------------------
def test_run_job_bills_the_current_month(app):
    from app.extensions import db
    from jobs.billing import current_period
    from models.fees import BillingRun

    with app.app_context():
        estate_id, units = make_estate(db, 2)
        make_standard(db, make_item(db), [estate_id], start=dt.date(2020, 1, 1))
        period = current_period()
        db.session.remove()
    runner = app.test_cli_runner()
    result = runner.invoke(args=["desk", "run-job", "fees.monthly_billing"])
    assert result.exit_code == 0, result.output
    assert "fees.monthly_billing" in result.output
    with app.app_context():
        runs = (
            db.session.execute(select(BillingRun).where(BillingRun.estate_id == estate_id, BillingRun.period == period))
            .scalars()
            .all()
        )
        assert [(r.status, r.started_by, r.lines_created) for r in runs] == [("done", "beat", 2)]
        db.session.remove()
    # Run again the same day: the estate has a completed run, nothing new.
    assert runner.invoke(args=["desk", "run-job", "fees.monthly_billing"]).exit_code == 0
    with app.app_context():
        n = db.session.execute(
            select(func.count()).select_from(BillingRun).where(BillingRun.estate_id == estate_id)
        ).scalar()
        assert n == 1
        db.session.remove()
