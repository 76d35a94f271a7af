"""Issue 9, item 5 (payments side): money writers of one unit at the same time, for real, on
PostgreSQL: payments (automatic and to chosen bills), voids, refunds, late-fee waivers, disputes,
one-off charges, prepaid use and the late-fee job, from several threads over several rounds. No
interleaving may leave the amounts inconsistent, deadlock, or fail on a stale read.

Afterwards, for every unit: each bill's paid amount is the sum of its live allocations and within
what it owes, its status follows from its amounts, a waiver never exceeds the late fee, no void
payment keeps an allocation, no payment is allocated beyond its amount, and
valid payments = live allocations + prepaid refunds + prepaid balance >= 0."""

from __future__ import annotations

import datetime as dt
import random
import threading
import uuid
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from tests.test_issue9_jobs_beat import pg_app  # noqa: F401

pytestmark = pytest.mark.services

D = Decimal
THREADS = 6
ROUNDS = 3
OPS_PER_ROUND = 12


def _seed(flask_app):
    from app.extensions import db
    from models.archives import Building, Estate, Unit
    from models.base import acting_as, system_user_id
    from models.fees import Bill, FeeItem

    with flask_app.app_context():
        s = db.session
        with acting_as(system_user_id(s)):
            tag = uuid.uuid4().hex[:6]
            estate = Estate(code=f"R{tag}", name=f"并发小区{tag}")
            building = Building(estate=estate, code="1")
            units = [Unit(building=building, code=f"1-{i}", gross_area=D("80")) for i in range(2)]
            item = FeeItem(code=f"R{tag}", name="物业服务费", kind="property_service", grace_days=0,
                           late_daily_rate=D("0.001"), late_cap_rate=D("0.5"))  # fmt: skip
            s.add_all([estate, building, item, *units])
            s.flush()
            for unit in units:
                for month in range(1, 7):
                    due = dt.date(2025, month, 16)
                    s.add(Bill(estate_id=estate.id, unit_id=unit.id, item_id=item.id, period=f"2025-{month:02d}",
                               source="", quantity=D(1), unit_price=D("150.37"), amount=D("150.37"),
                               issued_on=due - dt.timedelta(days=15), due_date=due))  # fmt: skip
            s.commit()
            ids = estate.id, [u.id for u in units], item.id
        db.session.remove()
    return ids


def _operation(s, rng, estate_id, unit_ids, item_id, day):
    from jobs.late_fees import compute_late_fees
    from models.archives import Unit
    from models.fees import Bill, FeeItem, lock_bill, post_one_off_charge, set_disputed, waive_late_fee
    from models.payments import Payment, apply_prepaid_balances, record_payment, refund, void_payment

    unit_id = rng.choice(unit_ids)
    op = rng.choice(["pay", "pay", "pay_chosen", "void", "refund", "waive", "dispute", "charge", "prepaid", "late"])
    amount = D(rng.randrange(1, 40000)) / 100
    if op == "pay":
        record_payment(s, unit_id, str(amount), "cash")
    elif op == "pay_chosen":
        open_ids = (
            s.execute(select(Bill.id).where(Bill.unit_id == unit_id, Bill.status.in_(("open", "partial"))))
            .scalars()
            .all()
        )
        if open_ids:
            record_payment(s, unit_id, str(amount), "wechat", bill_ids=[rng.choice(open_ids)])
    elif op == "void":
        valid = s.execute(select(Payment).where(Payment.unit_id == unit_id, Payment.status == "valid")).scalars().all()
        if valid:
            void_payment(rng.choice(valid), "并发测试作废")
    elif op == "refund":
        refund(s, unit_id, str(D(rng.randrange(1, 3000)) / 100), "并发测试退款")
    elif op in ("waive", "dispute"):
        bills = s.execute(select(Bill).where(Bill.unit_id == unit_id)).scalars().all()
        bill = rng.choice(bills)
        lock_bill(s, bill)
        if op == "waive":
            left = D(bill.late_fee) - D(bill.late_fee_waived)
            if left > 0:
                waive_late_fee(bill, str(min(left, D("1.00"))), "并发测试减免")
        else:
            set_disputed(bill, not bill.disputed, "并发测试争议")
    elif op == "charge":
        unit = s.get(Unit, unit_id)
        post_one_off_charge(
            s, unit=unit, item=s.get(FeeItem, item_id), amount=amount, source=f"race:{uuid.uuid4().hex[:8]}"
        )
    elif op == "prepaid":
        apply_prepaid_balances(s, estate_id=estate_id)
    else:
        compute_late_fees(day, estate_id)
    s.commit()


def _check(flask_app, unit_ids):
    from app.extensions import db
    from models.fees import Bill
    from models.payments import Payment, PaymentAllocation, Refund, prepaid_balance

    with flask_app.app_context():
        s = db.session
        for unit_id in unit_ids:
            live = dict(
                s.execute(
                    select(PaymentAllocation.bill_id, func.sum(PaymentAllocation.amount))
                    .join(Payment, Payment.id == PaymentAllocation.payment_id)
                    .where(Payment.unit_id == unit_id, PaymentAllocation.reversed_at.is_(None))
                    .group_by(PaymentAllocation.bill_id)
                ).all()
            )
            bills = s.execute(select(Bill).where(Bill.unit_id == unit_id)).scalars().all()
            for b in bills:
                assert b.paid_amount == D(live.get(b.id, 0)), (b.id, b.paid_amount, live.get(b.id))
                assert 0 <= b.paid_amount <= b.amount + b.late_fee
                assert 0 <= b.late_fee_waived <= b.late_fee
                want = "paid" if b.outstanding <= 0 else "partial" if b.paid_amount > 0 else "open"
                assert b.status == want, (b.id, b.status, want, b.outstanding)
            for p in s.execute(select(Payment).where(Payment.unit_id == unit_id)).scalars():
                used = sum((a.amount for a in p.allocations if a.reversed_at is None), D(0))
                assert used <= p.amount
                if p.status == "void":
                    assert used == 0
            valid = s.execute(
                select(func.coalesce(func.sum(Payment.amount), 0)).where(
                    Payment.unit_id == unit_id, Payment.status == "valid"
                )
            ).scalar()
            refunds = s.execute(
                select(func.coalesce(func.sum(Refund.amount), 0)).where(
                    Refund.unit_id == unit_id, Refund.kind == "prepaid"
                )
            ).scalar()
            balance = prepaid_balance(s, unit_id)
            assert balance >= 0
            assert D(valid) == sum(live.values(), D(0)) + D(refunds) + balance
        db.session.remove()


def test_concurrent_money_writers_leave_every_amount_consistent(pg_app):  # noqa: F811
    from app.extensions import db
    from models.base import acting_as, system_user_id
    from models.errors import Conflict, FieldErrors

    estate_id, unit_ids, item_id = _seed(pg_app)
    done = {"ops": 0, "refused": 0}
    for rnd in range(ROUNDS):
        barrier = threading.Barrier(THREADS)
        errors: list[str] = []
        day = dt.date(2025, 9, 1) + dt.timedelta(days=30 * rnd)

        def worker(seed, day=day, barrier=barrier, errors=errors):
            rng = random.Random(seed)
            with pg_app.app_context():
                s = db.session
                with acting_as(system_user_id(s)):
                    barrier.wait()
                    for _ in range(OPS_PER_ROUND):
                        try:
                            _operation(s, rng, estate_id, unit_ids, item_id, day)
                            done["ops"] += 1
                        except (FieldErrors, Conflict):
                            s.rollback()  # a refusal (more than the balance, already void): fine
                            done["refused"] += 1
                        except Exception as e:  # a deadlock, a stale read: the defect
                            s.rollback()
                            errors.append(f"{type(e).__name__}: {e}"[:400])
                db.session.remove()

        threads = [threading.Thread(target=worker, args=(rnd * 100 + i,)) for i in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(180)
        assert not any(t.is_alive() for t in threads), "a writer hung"
        assert not errors, errors
        _check(pg_app, unit_ids)
    assert done["ops"] > THREADS * ROUNDS * OPS_PER_ROUND // 2
