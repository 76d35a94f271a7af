"""A day at the desk, seen as each person sees it (issue 12, part 7): each journey starts on the
home page (the workbench) after signing in, and is done by clicking and typing only. Each counts
its clicks (printed: the closing note quotes them), checks that the Chinese pages it passes carry
no English words, and saves full-page screenshots under tests/browser/shots/journey-*.png.

- Staff takes a repair call for a known caller (found by part of the phone on the caller card)
  and assigns it;
- a Supervisor handles an escalation from the notification bell;
- Staff records a callback from the workbench's "callbacks due today";
- the Committee reads the month's figures and opens a report from the workbench.
(The fee, paid-service and renovation journeys: tests/browser/test_journeys_office.py; taking
money: tests/browser/test_collect.py.)
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from decimal import Decimal
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from tests.browser.journey import Clicks, english_in_context, english_in_text, select2_choose, shot

pytestmark = pytest.mark.browser


def _menu(page, clicks: Clicks, category: str, entry: str) -> None:
    clicks.click(page.locator(f"a.dropdown-toggle:has-text('{category}')").first)
    with page.expect_navigation():
        clicks.click(page.locator("ul.dropdown-menu:visible >> a", has_text=re.compile(rf"^\s*{re.escape(entry)}\s*$")).first)


# The test users' names (data typed by people, not the product's wording).
PEOPLE = {f"{role}Tester" for role in ("Admin", "Manager", "Supervisor", "Staff", "Committee")}


def _no_english(page, where: str, only_row: str | None = None) -> None:
    """No English word on the page; with ``only_row``, list rows other than the one holding that
    text are left out (other tests' records are data, not the product's wording)."""
    if only_row is None:
        words = english_in_context(page, PEOPLE)
    else:
        text = page.locator("body").inner_text()
        for row in page.locator("table tbody tr").all_inner_texts():
            if only_row not in row:
                text = text.replace(row, "")
        words = english_in_text(text, PEOPLE)
    assert not words, f"{where}: English words on a Chinese page: {words}"


def _show_fields(page) -> dict[str, str]:
    rows = page.eval_on_selector_all(
        "table tr",
        """rows => rows.filter(r => r.querySelector('th') && r.querySelector('td') && !r.closest('.desk-timeline'))
                       .map(r => [r.querySelector('th').innerText.trim(), r.querySelector('td').innerText.trim()])""",
    )
    out: dict[str, str] = {}
    for label, value in rows:
        out.setdefault(label, value)
    return out


@pytest.fixture()
def caller(app):
    """A known caller: an owner with a unit, in an estate of their own."""
    from app.extensions import db
    from models.archives import Building, Estate, Owner, Ownership, Unit

    tag = uuid.uuid4().hex[:6]
    phone = f"158{uuid.uuid4().int % 10**8:08d}"
    with app.app_context():
        estate = Estate(code=f"J{tag}", name=f"旅程小区{tag}")
        building = Building(estate=estate, code="3", name="3栋")
        unit = Unit(building=building, code=f"3-2-{tag}", floor=2, gross_area=Decimal("96.5"))
        owner = Owner(name=f"陈业主{tag[:3]}", phone=phone)
        db.session.add_all([estate, building, unit, owner])
        db.session.flush()
        db.session.add(Ownership(unit_id=unit.id, owner_id=owner.id))
        db.session.commit()
        out = {"estate": estate.id, "unit": unit.id, "code": unit.code, "owner": owner.name, "phone": phone}
        db.session.remove()
    return out


def test_staff_takes_a_repair_call_for_a_known_caller_and_assigns_it(page, login, caller):
    login(page, "Staff")
    clicks = Clicks("call")
    shot(page, "journey-call-1-workbench")
    _menu(page, clicks, "服务台", "住户求助")
    with page.expect_navigation():
        clicks.click(page.locator("a[href^='/ticket/add']").first)
    _no_english(page, "the request form")
    # The caller rings: the clerk types the middle of the number they see on the phone.
    page.locator("#desk-caller-q").type(caller["phone"][3:8], delay=40)
    use = page.locator(".desk-caller-use", has_text="选用").first
    use.wait_for(state="visible")
    card = page.locator(".desk-caller-results").inner_text()
    assert caller["owner"] in card and caller["code"] in card and "无欠费" in card, card
    shot(page, "journey-call-2-caller-card")
    clicks.click(use)
    # Picking the unit filled estate, unit, owner, caller and phone.
    assert caller["code"] in page.locator("#select2-unit-container").inner_text()
    assert caller["owner"] in page.locator("#select2-owner-container").inner_text()
    assert page.locator("#visitor_name").input_value() == caller["owner"]
    assert page.locator("#visitor_phone").input_value() == caller["phone"]
    select2_choose(page, "kind", "报修", clicks=clicks)
    # A repair's sub-classes only (data: 给排水, 电气, ...), never a disaster's.
    clicks.click(page.locator("#subkind + .select2-container .select2-selection").first)
    offered = page.locator(".select2-container--open .select2-results__option").all_inner_texts()
    assert "给排水" in offered and "火灾" not in offered, offered
    clicks.click(page.locator(".select2-container--open .select2-results__option", has_text="给排水").first)
    page.fill("#description", "卫生间下水管漏水，楼下天花渗水")
    select2_choose(page, "assignee", "StaffTester (staff)", typed="staff", clicks=clicks)
    shot(page, "journey-call-3-filled")
    with page.expect_navigation() as nav:
        clicks.click(page.locator("#model_form [type=submit]").first)
    assert nav.value.status == 200
    assert page.locator(".alert-success").count() >= 1, page.locator(".alert").all_inner_texts()
    # The list shows it: what it is about, the phone, the unit, the deadline, the handler by name.
    row = page.locator("table tbody tr", has_text=caller["code"])
    assert row.count() == 1, "the new request is not on the list"
    text = row.inner_text()
    assert "卫生间下水管漏水" in text and caller["phone"] in text and "StaffTester" in text, text
    _no_english(page, "the request list", only_row=caller["code"])
    shot(page, "journey-call-4-list")
    with page.expect_navigation():
        clicks.click(row.locator("a[href*='/ticket/show/']").first)
    fields = _show_fields(page)
    assert fields.get("细类") == "给排水" and fields.get("业主") == caller["owner"], fields
    assert fields.get("处理人") == "StaffTester", fields
    shot(page, "journey-call-5-detail")
    clicks.report()
    assert clicks.count <= 14


@pytest.fixture()
def escalated(app, caller):
    """A request that reached the Supervisor (level 1) and the bell's notification about it."""
    from flask_appbuilder.security.sqla.models import User

    from app.extensions import db
    from models.desk import Notification, Ticket

    with app.app_context():
        ticket = Ticket(
            kind="complaint", channel="phone", priority="normal", estate_id=caller["estate"], unit_id=caller["unit"],
            visitor_name=caller["owner"], description="楼上装修噪音，中午也不停",
        )
        db.session.add(ticket)
        db.session.flush()
        ticket.escalation_level = 1
        sup = db.session.execute(select(User.id).where(User.username == "supervisor")).scalar_one()
        db.session.add(
            Notification(
                user_id=sup, recipient=f"user:{sup}", channel="inbox", kind="reply_level1", subject_type="ticket",
                subject_id=ticket.id, deadline_at=dt.datetime.now(dt.UTC), state="sent",
                title=f"求助单 {ticket.number} 超过答复时限，已升级到主管",
            )
        )
        db.session.commit()
        out = {"number": ticket.number, "id": ticket.id}
        db.session.remove()
    return out


def test_a_supervisor_handles_an_escalation_from_the_notification(page, login, escalated):
    login(page, "Supervisor")
    clicks = Clicks("escalation")
    bell = page.locator("#desk-bell a")
    bell.wait_for(state="visible")
    assert page.locator("#desk-bell .desk-unread").inner_text().strip() not in ("", "0")
    shot(page, "journey-escalation-1-workbench")
    with page.expect_navigation():
        clicks.click(bell)
    row = page.locator("table tbody tr", has_text=escalated["number"])
    assert row.count() == 1
    _no_english(page, "the notifications", only_row=escalated["number"])
    shot(page, "journey-escalation-2-unread")
    with page.expect_navigation():
        clicks.click(row.locator("a[href*='/notification/show/']").first)
    shot(page, "journey-escalation-3-notification")
    with page.expect_navigation():
        clicks.click(page.locator("a", has_text="打开相关记录").first)
    assert urlsplit(page.url).path == f"/ticket/show/{escalated['id']}", page.url
    # The bell counts it read; the detail page has the bell too.
    page.locator("#desk-bell a").wait_for(state="visible")
    form = page.locator("form.desk-transition")
    form.locator("select[name=to]").select_option(label="已答复")
    form.locator("input[name=reason]").fill("已致电住户说明，已约装修户调整施工时间")
    with page.expect_navigation():
        clicks.click(form.locator("[type=submit]"))
    assert _show_fields(page).get("状态") == "已答复"
    _no_english(page, "the request after the reply")
    shot(page, "journey-escalation-4-replied")
    clicks.report()
    assert clicks.count <= 6


@pytest.fixture()
def callback_due(app, caller):
    """A repair resolved yesterday whose callback is due today."""
    from app.extensions import db
    from models.desk import Callback, Ticket

    with app.app_context():
        ticket = Ticket(
            kind="repair", channel="phone", priority="normal", estate_id=caller["estate"], unit_id=caller["unit"],
            visitor_name=caller["owner"], description="楼道灯不亮", responsibility="common_area",
        )
        db.session.add(ticket)
        db.session.commit()
        ticket.transition(db.session, to="acknowledged", reason="已答复")
        db.session.commit()
        ticket.transition(db.session, to="resolved", reason="已更换灯管")
        db.session.commit()
        cb = db.session.execute(select(Callback).where(Callback.ticket_id == ticket.id)).scalar_one()
        cb.due_at = dt.datetime.now(dt.UTC)
        db.session.commit()
        out = {"number": ticket.number}
        db.session.remove()
    return out


def test_staff_records_a_callback_from_the_workbench(page, login, callback_due):
    login(page, "Staff")
    clicks = Clicks("callback")
    tile = page.locator("a.desk-tile", has_text="今日待回访")
    assert tile.count() == 1, page.locator(".desk-tile").all_inner_texts()
    with page.expect_navigation():
        clicks.click(tile)
    row = page.locator("table tbody tr", has_text=callback_due["number"])
    assert row.count() == 1
    shot(page, "journey-callback-1-due-today")
    with page.expect_navigation():
        clicks.click(row.locator("a[href*='/callback/show/']").first)
    form = page.locator("form.desk-action.desk-outcome")
    form.locator("select[name=reached]").select_option(label="是")
    form.locator("select[name=satisfaction]").select_option("5")
    form.locator("input[name=comment]").fill("灯已修好，住户满意")
    _no_english(page, "the callback")
    shot(page, "journey-callback-2-filled")
    with page.expect_navigation():
        clicks.click(form.locator("[type=submit]"))
    assert page.locator(".alert-success").count() >= 1, page.locator(".alert").all_inner_texts()
    shot(page, "journey-callback-3-recorded")
    clicks.report()
    assert clicks.count <= 4


def test_the_committee_reads_the_months_figures(page, login, caller):
    login(page, "Committee")
    clicks = Clicks("committee")
    figures = page.locator(".desk-panel-desk-figures").first
    figures.wait_for(state="visible")
    body = page.locator("body").inner_text()
    assert "本月" in body, body[:500]
    _no_english(page, "the Committee's workbench")
    shot(page, "journey-committee-1-workbench")
    _menu(page, clicks, "报表", "求助统计报表")
    assert urlsplit(page.url).path == "/ticket/report"
    _no_english(page, "the help desk report")
    shot(page, "journey-committee-2-report")
    _menu(page, clicks, "报表", "收费报表")
    assert urlsplit(page.url).path == "/collection_report/report"
    shot(page, "journey-committee-3-fee-report")
    clicks.report()
    assert clicks.count <= 4


def test_picking_the_unit_fills_the_owner_on_a_service_order(page, login, caller):
    """The owner follows the unit on every form with both (views/lookups.py prefill_rule)."""
    login(page, "Staff")
    clicks = Clicks("service-order-owner")
    _menu(page, clicks, "便民服务", "服务单")
    with page.expect_navigation():
        clicks.click(page.locator("a[href^='/service_order/add']").first)
    select2_choose(page, "unit", caller["code"], typed=caller["code"], clicks=clicks)
    page.wait_for_function(
        "name => (document.querySelector('#select2-owner-container') || {}).innerText?.includes(name)", arg=caller["owner"]
    )
    shot(page, "journey-service-order-owner")
    assert clicks.count == 5
