"""A paid service in a real browser, as Staff: an owner-paid repair ticket becomes a service
order, which is scheduled, started, done, charged to the unit's bill and rated, all through the
screens; the order page shows the no-tips notice and the ticket page lists the order."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

pytestmark = pytest.mark.browser


@pytest.fixture()
def owner_paid_ticket(app, make_unit):
    from app.extensions import db
    from app.seed import service_catalog
    from models.desk import Ticket

    ids = make_unit()
    with app.app_context():
        service_catalog()
        ticket = Ticket(
            kind="repair",
            description="厨房水龙头漏水，业主自费维修",
            unit_id=ids["unit"],
            owner_id=ids["owner"],
            responsibility="owner_paid",
        )
        db.session.add(ticket)
        db.session.commit()
        data = {"id": ticket.id, "number": ticket.number, "unit": ids["unit"]}
        db.session.remove()
    return data


def _order(app, pk: int):
    from app.extensions import db
    from models.services import ServiceOrder

    with app.app_context():
        order = db.session.get(ServiceOrder, pk)
        result = (order.status, order.amount, order.bill_id, order.satisfaction, order.number)
        db.session.remove()
    return result


def test_staff_take_an_order_from_request_to_rating(app, page, login, owner_paid_ticket, artifacts):
    from models.services import NO_TIPS

    login(page, "Staff")
    try:
        # the owner-paid repair hands its work to a paid service order
        page.goto(f"/ticket/show/{owner_paid_ticket['id']}")
        form = page.locator("form.desk-from-ticket")
        form.locator("select[name=item]").select_option(label="维修水龙头")
        with page.expect_navigation():
            form.locator("button[type=submit]").click()
        assert "/service_order/show/" in page.url
        assert NO_TIPS.zh in page.locator("tr", has=page.locator("th", has_text="员工守则")).inner_text()
        assert "示例价格" in page.locator("tr", has=page.locator("th", has_text="计价")).inner_text()
        pk = int(page.url.rstrip("/").rsplit("/", 1)[1].split("?")[0])
        number = _order(app, pk)[4]
        assert number in page.content() and _order(app, pk)[0] == "requested"
        page.screenshot(path=str(artifacts / "service-order-1-requested.png"), full_page=True)

        # schedule: the assignee and the slot
        start = (dt.datetime.now() + dt.timedelta(days=400)).replace(hour=9, minute=0, second=0, microsecond=0)
        sched = page.locator("form.desk-schedule")
        sched.locator("select[name=assignee]").select_option(label="StaffTester (staff)")
        sched.locator("input[name=requested_start]").fill(start.strftime("%Y-%m-%dT%H:%M"))
        sched.locator("input[name=requested_end]").fill((start + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"))
        with page.expect_navigation():
            sched.locator("button[type=submit]").click()
        assert page.locator(".desk-actions .desk-status").inner_text().strip() == "已排期"

        with page.expect_navigation():
            page.locator("form.desk-start button[type=submit]").click()
        assert page.locator(".desk-actions .desk-status").inner_text().strip() == "服务中"

        done = page.locator("form.desk-done")
        done.locator("input[name=quantity]").fill("1")
        done.locator("input[name=materials_amount]").fill("12.50")
        done.locator("input[name=materials_note]").fill("陶瓷阀芯")
        with page.expect_navigation():
            done.locator("button[type=submit]").click()
        assert page.locator(".desk-actions .desk-status").inner_text().strip() == "已完成"
        assert page.locator("tr", has=page.locator("th", has_text="收费金额")).inner_text().split()[-1] == "42.50"
        page.screenshot(path=str(artifacts / "service-order-2-done.png"), full_page=True)

        charge = page.locator("form.desk-charge")
        charge.locator("select[name=charge_mode]").select_option("bill")
        with page.expect_navigation():
            charge.locator("button[type=submit]").click()
        assert page.locator(".desk-actions .desk-status").inner_text().strip() == "已收费"

        rate = page.locator("form.desk-rate")
        rate.locator("select[name=satisfaction]").select_option("5")
        rate.locator("input[name=comment]").fill("师傅准时，干净利落")
        with page.expect_navigation():
            rate.locator("button[type=submit]").click()
        assert page.locator(".desk-actions .desk-status").inner_text().strip() == "已评价"
        assert page.locator("form.desk-rate").count() == 0 and page.locator("form.desk-cancel").count() == 0
        page.screenshot(path=str(artifacts / "service-order-3-rated.png"), full_page=True)

        status, amount, bill_id, satisfaction, _ = _order(app, pk)
        assert (status, amount, satisfaction) == ("rated", Decimal("42.50"), 5) and bill_id

        # the ticket lists its order
        page.goto(f"/ticket/show/{owner_paid_ticket['id']}")
        assert number in page.locator(".desk-service-orders").inner_text()
    except Exception:
        page.screenshot(path=str(artifacts / "service_flow_failure.png"), full_page=True)
        raise
