"""Arrears aging and staged dunning notices (催缴), on the real PostgreSQL."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import select

from .test_payments import new_bill, new_item

D = Decimal


@pytest.fixture()
def units(app, db_session, make_unit):
    """Three units of one estate: A (plain arrears), B (only a disputed bill), C (both)."""
    from models.archives import Building, Unit

    ids = make_unit()
    s = db_session
    a = s.get(Unit, ids["unit"])
    building = s.get(Building, ids["building"])
    b = Unit(building=building, code="1-1-B", gross_area=D("70"))
    c = Unit(building=building, code="1-1-C", gross_area=D("70"))
    s.add_all([b, c])
    s.commit()
    return a, b, c


def test_arrears_buckets(app, db_session, units):
    from models.arrears import arrears_by_unit, arrears_summary
    from models.payments import record_payment

    s = db_session
    a, b, _c = units
    item = new_item(s)
    as_of = dt.date(2026, 6, 30)
    for days, amount in [(5, "1"), (30, "2"), (31, "4"), (90, "8"), (91, "16"), (180, "32"), (181, "64")]:
        new_bill(s, a, item, amount, as_of - dt.timedelta(days=days))
    new_bill(s, a, item, "1000", as_of)  # due today: not yet in arrears
    new_bill(s, a, item, "2000", as_of + dt.timedelta(days=3))  # not due
    paid = new_bill(s, a, item, "500", as_of - dt.timedelta(days=40))
    new_bill(s, b, item, "77", as_of - dt.timedelta(days=100), disputed=True)
    s.commit()
    record_payment(s, a, "500", "cash", bill_ids=[paid.id])
    s.commit()
    rows = {r["unit_id"]: r for r in arrears_by_unit(s, as_of, estate_id=a.estate_id)}
    ra = rows[a.id]
    assert (ra["d0_30"], ra["d31_90"], ra["d91_180"], ra["d181"]) == (D(3), D(12), D(48), D(64))
    assert ra["total"] == D(127) and not ra["flagged"] and ra["days_past_due"] == 181
    rb = rows[b.id]
    assert rb["flagged"] and rb["disputed"] == D(77) and rb["dunnable"] == 0 and rb["d91_180"] == D(77)
    summary = arrears_summary(s, as_of, estate_id=a.estate_id)
    assert len(summary) == 1 and summary[0]["total"] == D(204) and summary[0]["units"] == 2


def test_dunning_stages_idempotent_and_not_for_disputed_only(app, db_session, units):
    from jobs.dunning import run_dunning
    from models.desk import Notification
    from models.payments import DunningNotice, record_payment

    s = db_session
    a, b, c = units
    item = new_item(s)
    due = dt.date(2026, 3, 1)
    bill_a = new_bill(s, a, item, "300.00", due, period="2026-02")
    new_bill(s, a, item, "300.00", due + dt.timedelta(days=31), period="2026-03")
    new_bill(s, b, item, "300.00", due, disputed=True)
    new_bill(s, c, item, "100.00", due - dt.timedelta(days=30), disputed=True)
    new_bill(s, c, item, "200.00", due)
    s.commit()
    estate = a.estate_id

    def notices():
        rows = s.execute(
            select(DunningNotice.unit_id, DunningNotice.stage).where(DunningNotice.estate_id == estate)
        ).all()
        return sorted((r.unit_id, r.stage) for r in rows)

    assert run_dunning(due + dt.timedelta(days=10), estate)["created"] == 0  # before the reminder
    res = run_dunning(due + dt.timedelta(days=20), estate)
    assert res["created"] == 2 and res["by_stage"]["reminder"] == 2
    assert notices() == sorted([(a.id, "reminder"), (c.id, "reminder")])  # none for B (disputed only)
    assert run_dunning(due + dt.timedelta(days=20), estate)["created"] == 0  # rerun adds nothing
    assert run_dunning(due + dt.timedelta(days=25), estate)["created"] == 0  # same stage, same cycle
    assert run_dunning(due + dt.timedelta(days=61), estate)["created"] == 2  # formal
    assert run_dunning(due + dt.timedelta(days=61), estate)["created"] == 0
    notice = s.execute(
        select(DunningNotice).where(DunningNotice.unit_id == a.id, DunningNotice.stage == "formal")
    ).scalar_one()
    assert notice.amount_due == D("600.00") and notice.oldest_period == "2026-02" and notice.cycle_due_date == due
    assert "催缴通知" in notice.letter and "陆佰元整" in notice.letter and "2026-02至2026-03" in notice.letter
    # The staff are told through the channels, once per estate, stage and day.
    told = (
        s.execute(select(Notification).where(Notification.subject_type == "estate", Notification.subject_id == estate))
        .scalars()
        .all()
    )
    assert told and {n.kind for n in told} == {"dunning_reminder", "dunning_formal"}
    # Paying the oldest bill starts a new cycle at the next bill's due date.
    record_payment(s, a, "300.00", "cash", bill_ids=[bill_a.id])
    s.commit()
    assert run_dunning(due + dt.timedelta(days=31 + 14), estate)["created"] == 0
    assert run_dunning(due + dt.timedelta(days=31 + 15), estate)["created"] == 1  # A, new cycle
    made = s.execute(
        select(DunningNotice.stage).where(
            DunningNotice.unit_id == a.id, DunningNotice.cycle_due_date == due + dt.timedelta(days=31)
        )
    ).all()
    assert made == [("reminder",)]
    # 125 days on, C gets its final notice and A's new cycle the formal one.
    res = run_dunning(due + dt.timedelta(days=125), estate)
    assert res["by_stage"] == {"reminder": 0, "formal": 1, "final": 1}
    assert (c.id, "final") in notices()


def test_dunning_letter_page_and_roles(app, db_session, units, web, api):
    from jobs.dunning import run_dunning
    from models.payments import DunningNotice

    s = db_session
    a, _b, _c = units
    item = new_item(s)
    new_bill(s, a, item, "1234.56", dt.date(2026, 1, 1), period="2026-01")
    s.commit()
    run_dunning(dt.date(2026, 6, 1), a.estate_id)
    notice = s.execute(select(DunningNotice).where(DunningNotice.unit_id == a.id)).scalar_one()
    assert notice.stage == "final"
    page = web("Staff").get(f"/dunning_notice/letter/{notice.id}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "最后催缴通知" in html and "壹仟贰佰叁拾肆元伍角陆分" in html
    assert web("Committee").get(f"/dunning_notice/letter/{notice.id}").status_code == 403
    # Staff reads, Supervisor marks delivered; nobody adds one by hand.
    version = notice.version
    assert (
        api("Staff").put(f"/api/v1/dunning_notice/{notice.id}", json={"sent": True, "version": version}).status_code
        == 403
    )
    resp = api("Supervisor").put(f"/api/v1/dunning_notice/{notice.id}", json={"sent": True, "version": version})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    # Notices are issued by the job, never typed in: there is no add route, and no add form.
    assert api("Supervisor").post("/api/v1/dunning_notice/", json={}).status_code == 405
    assert web("Supervisor").get("/dunning_notice/add").status_code == 404
