"""A repair from the phone call to its callback, as a clerk (Staff) works it in a real browser
(tests/browser/conftest.py: live server, Debian's Chromium through Playwright).

Covers: recording a repair on the 住户求助 form (class 报修, channel 电话, the unit picked by typing
its code into the select2 lookup, the repair section's responsibility and agreed visit time); the
ticket's detail page with its timeline; the status form (已答复, then 已解决, which schedules a
callback and moves the ticket to 待回访); recording the callback (satisfied: 已关闭, unsatisfied:
重新打开); the emergency form refusing a save without address and phone.

Screenshots go to test-artifacts/desk-*.png.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from urllib.parse import urlsplit

import pytest

pytestmark = pytest.mark.browser

SHOW_PATH = re.compile(r"^/ticket/show/(\d+)$")


def _tag() -> str:
    return uuid.uuid4().hex[:6].upper()


def _goto_ok(page, url: str):
    resp = page.goto(url)
    assert resp is not None and resp.status == 200, f"{url}: HTTP {resp and resp.status}"
    return resp


@pytest.fixture()
def unit_code(app, make_unit) -> str:
    from app.extensions import db
    from models.archives import Unit

    ids = make_unit()
    with app.app_context():
        code = db.session.get(Unit, ids["unit"]).code
        db.session.remove()
    return code


# --- form helpers ----------------------------------------------------------------------------
def _select2_open(page, field: str):
    """Click the select2 box that stands in for ``<select id=field>``; returns the open dropdown."""
    page.locator(f"#{field} + .select2-container .select2-selection").click()
    dropdown = page.locator(".select2-container--open .select2-dropdown")
    dropdown.wait_for(state="visible")
    return dropdown


def _select2_choose(page, field: str, label: str, typed: str | None = None) -> None:
    """Choose ``label`` in a select2 box, typing ``typed`` into its search box first (AJAX
    lookups fetch their results as you type)."""
    dropdown = _select2_open(page, field)
    if typed is not None:
        dropdown.locator(".select2-search__field").type(typed, delay=30)
    option = dropdown.locator(".select2-results__option", has_text=re.compile(rf"^\s*{re.escape(label)}\s*$"))
    option.first.wait_for(state="visible")
    option.first.click()
    shown = page.locator(f"#select2-{field}-container").inner_text()
    assert label in shown, f"{field}: chose {label!r} but the box shows {shown!r}"


def _field_cell(page, field: str):
    """The form cell holding a field (its input and its messages)."""
    return page.locator("#model_form td", has=page.locator(f"#{field}"))


def _show_fields(page) -> dict[str, str]:
    """Label -> value of the detail table (the first table on the show page)."""
    rows = page.eval_on_selector_all(
        "table tr",
        """rows => rows.filter(r => r.querySelector('th') && r.querySelector('td') && !r.closest('.desk-timeline'))
                       .map(r => [r.querySelector('th').innerText.trim(), r.querySelector('td').innerText.trim()])""",
    )
    fields: dict[str, str] = {}
    for label, value in rows:
        fields.setdefault(label, value)
    return fields


def _sections(page) -> list[str]:
    """The titles of the detail page's sections, in order."""
    return [t.strip() for t in page.locator(".panel-title a.accordion-toggle").all_inner_texts()]


def _timeline(page) -> list[list[str]]:
    """The timeline rows: [when, what, status, detail, by]."""
    return [
        [c.strip() for c in row.locator("td").all_inner_texts()]
        for row in page.locator(".desk-timeline tbody tr").all()
    ]


def _flash(page) -> str:
    return " ".join(page.locator(".alert").all_inner_texts())


def _form_errors(page) -> dict[str, str]:
    """Field id -> the messages shown in its cell, for the fields that have any."""
    return page.eval_on_selector_all(
        "#model_form td .help-block",
        """els => Object.fromEntries(els
              .map(e => [(e.closest('td').querySelector('[id]') || {}).id, e.innerText.trim()])
              .filter(([id, text]) => id && text))""",
    )


def _save(page):
    """Click 保存 on the ticket form and return the response it navigates to."""
    invalid = page.eval_on_selector_all("#model_form :invalid", "els => els.map(e => e.id || e.name)")
    assert not invalid, f"the browser will not submit the form, these controls are invalid: {invalid}"
    with page.expect_navigation() as nav:
        page.locator("#model_form [type=submit]").click()
    return nav.value


# --- steps -----------------------------------------------------------------------------------
def _record_repair(
    page, artifacts, unit_code: str, description: str, shot: str | None, visit_time: bool = False
) -> tuple[int, str]:
    """Record a phone repair for the unit through 住户求助's add form, find it on the list and open
    it; returns (ticket id, ticket number). ``visit_time``: fill 约定上门时间 too (see
    test_a_repair_saves_with_an_agreed_visit_time)."""
    _goto_ok(page, "/ticket/list/")
    with page.expect_navigation():
        page.locator("a[href^='/ticket/add']").first.click()
    assert urlsplit(page.url).path == "/ticket/add", page.url

    _select2_choose(page, "kind", "报修")
    # The class-specific sections: only 报修's is offered now.
    repair = page.locator("#model_form .panel", has=page.locator("#responsibility"))
    assert repair.is_visible(), "the 报修 section is not shown for a repair"
    assert not page.locator("#model_form .panel", has=page.locator("#medical_path")).is_visible(), (
        "the 急救 section is still shown for a repair"
    )
    _select2_choose(page, "channel", "电话")
    # The unit: type part of its code into the lookup and pick the match.
    _select2_choose(page, "unit", unit_code, typed=unit_code)
    page.fill("#description", description)
    if page.locator("#responsibility").count():
        _select2_choose(page, "responsibility", "公共部位（物业负责）")
    visit_at = None
    if visit_time and page.locator("#agreed_visit_at").count():
        visit_at = (dt.datetime.now() + dt.timedelta(days=1)).replace(hour=10, minute=30, second=0, microsecond=0)
        # The browser's own datetime-local picker (views/fields.py), filled as a clerk would.
        page.fill("#agreed_visit_at", visit_at.strftime("%Y-%m-%dT%H:%M"))
    if shot:
        page.screenshot(path=str(artifacts / f"{shot}-1-add-filled.png"), full_page=True)

    resp = _save(page)
    assert resp.status == 200, f"saving the ticket answered {resp.status}: {_form_errors(page)} {_flash(page)}"
    assert page.locator(".alert-success").count() >= 1, f"no confirmation after saving: {page.content()[:1500]}"

    # The new ticket on the list: the row with our unit's code.
    _goto_ok(page, "/ticket/list/")
    row = page.locator("table tbody tr", has_text=unit_code)
    assert row.count() == 1, f"the new ticket for {unit_code} is not on the list"
    cells = row.inner_text()
    assert "报修" in cells and "新建" in cells, cells
    if shot:
        page.screenshot(path=str(artifacts / f"{shot}-2-list.png"), full_page=True)
    with page.expect_navigation():
        row.locator("a[href*='/ticket/show/']").first.click()
    match = SHOW_PATH.match(urlsplit(page.url).path)
    assert match, f"not on a ticket's detail page: {page.url}"

    fields = _show_fields(page)
    assert fields.get("类别") == "报修", fields
    assert fields.get("渠道") == "电话", fields
    assert fields.get("状态") == "新建", fields
    assert fields.get("房号") == unit_code, fields
    assert fields.get("维修责任") == "公共部位（物业负责）", fields
    if visit_at is not None:
        assert visit_at.strftime("%Y-%m-%d %H:%M") in fields.get("约定上门时间", ""), (
            f"the agreed visit time typed was {visit_at:%Y-%m-%d %H:%M}, the page shows {fields.get('约定上门时间')!r}"
        )
    timeline = _timeline(page)
    assert len(timeline) == 1 and timeline[0][1] == "登记", timeline
    assert description in timeline[0][3], timeline
    assert timeline[0][4] == "staff", timeline
    number = fields.get("编号", "")
    assert number, fields
    # The repair's own section, none of the other classes'; the status and the print form by the actions.
    assert _sections(page) == ["登记", "报修", "时间与时限"], _sections(page)
    assert page.locator(".desk-actions .desk-status").inner_text().strip() == "新建"
    assert page.locator("a.desk-link").inner_text().strip() == "打印登记表"
    if shot:
        page.screenshot(path=str(artifacts / f"{shot}-3-show-new.png"), full_page=True)
    return int(match.group(1)), number


def _change_status(page, label: str, note: str | None = None) -> None:
    form = page.locator("form.desk-transition")
    assert form.count() == 1, "no status form on the ticket's page"
    offered = form.locator("select[name=to] option:not([value=''])").all_inner_texts()
    assert label in offered, f"{label} not offered by the status form: {offered}"
    form.locator("select[name=to]").select_option(label=label)
    if note:
        form.locator("input[name=reason]").fill(note)
    with page.expect_navigation() as nav:
        form.locator("[type=submit]").click()
    assert nav.value.status == 200
    assert SHOW_PATH.match(urlsplit(page.url).path), f"not back on the ticket after the change: {page.url}"
    assert page.locator(".alert-success").count() >= 1, f"changing to {label}: {_flash(page)}"


def _acknowledge_and_resolve(page, artifacts, shot: str | None) -> None:
    _change_status(page, "已答复", "已电话答复住户，明早上门")
    assert _show_fields(page).get("状态") == "已答复"
    timeline = _timeline(page)
    assert len(timeline) == 2 and timeline[1][1] == "状态变更", timeline
    assert timeline[1][2] == "新建 → 已答复", timeline

    _change_status(page, "已解决", "已更换楼道灯")
    fields = _show_fields(page)
    assert fields.get("状态") == "待回访", fields
    assert fields.get("解决时间"), f"no resolve time shown: {fields}"
    timeline = _timeline(page)
    statuses = [t[2] for t in timeline]
    assert statuses == ["→ 新建", "新建 → 已答复", "已答复 → 已解决", "已解决 → 待回访"], timeline
    # Only what may follow 待回访 is offered.
    offered = page.locator("form.desk-transition select[name=to] option:not([value=''])").all_inner_texts()
    assert sorted(offered) == sorted(["已关闭", "重新打开"]), offered
    if shot:
        page.screenshot(path=str(artifacts / f"{shot}-4-show-callback.png"), full_page=True)


def _record_callback(page, artifacts, number: str, satisfaction: int, comment: str, shot: str | None) -> None:
    _goto_ok(page, "/callback/list/")
    row = page.locator("table tbody tr", has_text=number)
    assert row.count() == 1, f"no callback listed for {number}"
    assert "待回访" in row.inner_text(), row.inner_text()
    if shot:
        page.screenshot(path=str(artifacts / f"{shot}-5-callbacks.png"), full_page=True)
    with page.expect_navigation():
        row.locator("a[href*='/callback/show/']").first.click()
    assert re.match(r"^/callback/show/\d+$", urlsplit(page.url).path), page.url
    assert _show_fields(page).get("求助单") == number

    form = page.locator("form.desk-action.desk-outcome")
    assert form.count() == 1, "no outcome form on the callback's page"
    # Reached or not must be said (是/否), never taken as it came.
    assert form.locator("select[name=reached]").input_value() == ""
    form.locator("select[name=reached]").select_option(label="是")
    form.locator("select[name=satisfaction]").select_option(str(satisfaction))
    form.locator("input[name=comment]").fill(comment)
    if shot:
        page.screenshot(path=str(artifacts / f"{shot}-6-callback-filled.png"), full_page=True)
    with page.expect_navigation() as nav:
        form.locator("[type=submit]").click()
    assert nav.value.status == 200
    assert page.locator(".alert-success").count() >= 1, _flash(page)
    fields = _show_fields(page)
    assert fields.get("状态") == "已回访", fields
    assert fields.get("满意度(1-5)") == str(satisfaction), fields
    assert fields.get("回访意见") == comment, fields
    if shot:
        page.screenshot(path=str(artifacts / f"{shot}-7-callback-done.png"), full_page=True)


# 1 ------------------------------------------------------------------------------------------
def test_repair_from_the_call_to_a_satisfied_callback(page, login, unit_code, artifacts):
    description = f"楼道灯不亮，请派人维修（{_tag()}）"
    login(page, "Staff")
    ticket_id, number = _record_repair(page, artifacts, unit_code, description, shot="desk-flow")
    _acknowledge_and_resolve(page, artifacts, shot="desk-flow")

    comment = "住户表示满意，师傅准时上门"
    _record_callback(page, artifacts, number, 5, comment, shot="desk-flow")

    _goto_ok(page, f"/ticket/show/{ticket_id}")
    fields = _show_fields(page)
    assert fields.get("状态") == "已关闭", fields
    assert fields.get("关闭时间"), f"no close time shown: {fields}"
    timeline = _timeline(page)
    callback_lines = [t for t in timeline if t[1] == "回访"]
    assert len(callback_lines) == 1 and comment in callback_lines[0][3], timeline
    assert timeline[-1][2] == "待回访 → 已关闭", timeline
    assert len(timeline) == 6, timeline
    # Closed: read-only, nothing to change; its callback is listed; the print form opens.
    assert _sections(page)[0] == "只读" and "重新打开" in fields.get("说明", ""), fields
    assert page.locator("a.desk-edit").count() == 0
    offered = page.locator("form.desk-transition select[name=to] option:not([value=''])").all_inner_texts()
    assert offered == ["重新打开"], offered
    assert comment in page.locator(".desk-callbacks").inner_text()
    page.screenshot(path=str(artifacts / "desk-flow-8-show-closed.png"), full_page=True)
    with page.expect_navigation():
        page.locator("a.desk-link").click()
    assert urlsplit(page.url).path == f"/ticket/print/{ticket_id}" and number in page.locator(".form-number").inner_text()


# 2 ------------------------------------------------------------------------------------------
def test_an_unsatisfied_callback_reopens_the_repair(page, login, unit_code, artifacts):
    description = f"厨房水管漏水（{_tag()}）"
    login(page, "Staff")
    ticket_id, number = _record_repair(page, artifacts, unit_code, description, shot=None)
    _acknowledge_and_resolve(page, artifacts, shot=None)

    comment = "住户不满意：水管仍在滴水"
    _record_callback(page, artifacts, number, 1, comment, shot=None)

    _goto_ok(page, f"/ticket/show/{ticket_id}")
    fields = _show_fields(page)
    assert fields.get("状态") == "重新打开", fields
    # Empty fields read "None" on the detail page (see the report); either way, no times.
    assert fields.get("解决时间") in ("", "None") and fields.get("关闭时间") in ("", "None"), fields
    timeline = _timeline(page)
    assert [t for t in timeline if t[1] == "回访" and comment in t[3]], timeline
    assert timeline[-1][2] == "待回访 → 重新打开", timeline
    # The reopened case can be worked on again.
    offered = page.locator("form.desk-transition select[name=to] option:not([value=''])").all_inner_texts()
    assert "处理中" in offered and "已解决" in offered, offered
    page.screenshot(path=str(artifacts / "desk-reopen-show.png"), full_page=True)


# 3 ------------------------------------------------------------------------------------------
def test_the_emergency_form_wants_address_and_phone_first(app, page, login, unit_code, artifacts):
    description = f"老人在家中晕倒（{_tag()}）"
    login(page, "Staff")
    _goto_ok(page, "/ticket/add")
    _select2_choose(page, "kind", "急救病人")
    assert page.locator("#model_form .panel", has=page.locator("#medical_path")).is_visible()
    assert not page.locator("#model_form .panel", has=page.locator("#responsibility")).is_visible()
    _select2_choose(page, "unit", unit_code, typed=unit_code)
    page.fill("#description", description)
    resp = _save(page)
    assert resp.status == 422, f"an emergency without address and phone should be refused, got {resp.status}"
    assert urlsplit(page.url).path == "/ticket/add", page.url
    address = _field_cell(page, "address").inner_text()
    phone = _field_cell(page, "callback_phone").inner_text()
    assert "急救必须先登记地址" in address, f"no address message next to the field: {address!r}"
    assert "急救必须先登记联系电话" in phone, f"no phone message next to the field: {phone!r}"
    # What was typed is kept, and the emergency section is still the one shown.
    assert page.input_value("#description") == description
    assert page.locator("#select2-kind-container").inner_text().strip().endswith("急救病人")
    assert page.locator("#model_form .panel", has=page.locator("#medical_path")).is_visible()
    page.screenshot(path=str(artifacts / "desk-emergency-refused.png"), full_page=True)

    from sqlalchemy import func, select

    from app.extensions import db
    from models.desk import Ticket

    with app.app_context():
        n = db.session.scalar(select(func.count()).select_from(Ticket).where(Ticket.description == description))
        db.session.remove()
    assert n == 0, "a ticket was saved from the refused emergency form"

    # With address and phone the same form saves.
    page.fill("#address", "3栋 2 单元 1201")
    page.fill("#callback_phone", "13800138000")
    resp = _save(page)
    assert resp.status == 200, f"{resp.status}: {_form_errors(page)} {_flash(page)}"
    assert page.locator(".alert-success").count() >= 1, _flash(page)

    # Its page: the emergency's section and its address and phone, not the repair's.
    with app.app_context():
        pk = db.session.scalar(select(Ticket.id).where(Ticket.description == description))
        db.session.remove()
    _goto_ok(page, f"/ticket/show/{pk}")
    assert _sections(page) == ["登记", "急救", "时间与时限"], _sections(page)
    fields = _show_fields(page)
    assert fields["类别"] == "急救病人" and fields["地址/地点"] == "3栋 2 单元 1201", fields
    assert fields["急救处置"] == "" and "答复时限依据" in fields, fields
    offered = page.locator("form.desk-transition select[name=to] option:not([value=''])").all_inner_texts()
    assert offered == ["已答复", "处理中", "已解决", "已取消"], offered
    assert page.locator("form.desk-from-ticket").count() == 0 and page.locator(".desk-service-orders").count() == 0
    page.screenshot(path=str(artifacts / "desk-emergency-show.png"), full_page=True)


# 4 ------------------------------------------------------------------------------------------
def test_a_ticket_saves_without_ticking_confidential(page, login, unit_code):
    login(page, "Staff")
    _goto_ok(page, "/ticket/add")
    _select2_choose(page, "kind", "报修")
    _select2_choose(page, "unit", unit_code, typed=unit_code)
    page.fill("#description", f"门禁失灵（{_tag()}）")
    resp = _save(page)
    assert resp.status == 200, f"{resp.status}: {_form_errors(page)}"


# 5 ------------------------------------------------------------------------------------------
def test_the_agreed_visit_time_typed_survives_leaving_the_field(page, login):
    """The field is the browser's datetime-local input: what is set stays set after Tab."""
    login(page, "Staff")
    _goto_ok(page, "/ticket/add")
    _select2_choose(page, "kind", "报修")
    assert page.get_attribute("#agreed_visit_at", "type") == "datetime-local"
    page.fill("#agreed_visit_at", "2030-12-01T10:30")
    page.keyboard.press("Tab")
    assert page.input_value("#agreed_visit_at") == "2030-12-01T10:30"


# 6 ------------------------------------------------------------------------------------------
def test_a_repair_saves_with_an_agreed_visit_time(page, login, unit_code, artifacts):
    login(page, "Staff")
    _record_repair(page, artifacts, unit_code, f"约好上门修门锁（{_tag()}）", shot=None, visit_time=True)
