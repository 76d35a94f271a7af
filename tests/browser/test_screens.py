"""The screens in a real browser: Debian's Chromium through Playwright, against the app served
over HTTP (tests/browser/conftest.py).

Covers: every role signs in and reads the units list in Chinese; Staff adds an owner through the
generated form (and an invalid phone is refused on the form); Committee sees no write control
anywhere it can reach and only masked phones; no asset comes from outside the product; the
language switch.
"""

from __future__ import annotations

import re
import uuid
from urllib.parse import urlsplit

import pytest

from tests.conftest import ROLES

pytestmark = pytest.mark.browser

MSG_PHONE_ZH = "电话号码格式不正确"
# Links and controls that write: FAB renders add as a link to /<resource>/add, edit as
# /<resource>/edit/<pk>, delete as a ``btn-delete-...`` link with a trash icon (posting to
# /<resource>/delete/<pk>); ours adds the Excel import.
WRITE_HREF = re.compile(r"/(add|edit|delete|import)(/|\?|$)|/import[_.]")
DELETE_CONTROLS = "[id^='btn-delete-'], .fa-trash, form[action*='/delete'], .action_check, .desk-import"


def _new_tag() -> str:
    return uuid.uuid4().hex[:6].upper()


@pytest.fixture()
def archive(app, make_unit):
    """An estate, building, unit, owner (phone 13812345678), ownership, resident and vehicle;
    returns the codes and names the screens show."""
    from app.extensions import db
    from models.archives import Owner, Resident, Unit, Vehicle

    ids = make_unit(phone="13812345678")
    tag = _new_tag()
    with app.app_context():
        unit = db.session.get(Unit, ids["unit"])
        owner = db.session.get(Owner, ids["owner"])
        db.session.add(
            Resident(unit_id=unit.id, owner_id=owner.id, name=f"住户{tag}", relation="family", phone="13912345678")
        )
        db.session.add(Vehicle(plate=f"粤B{tag[:5]}", unit_id=unit.id, owner_id=owner.id, brand="比亚迪"))
        db.session.commit()
        data = {**ids, "unit_code": unit.code, "owner_name": owner.name, "resident_name": f"住户{tag}"}
        db.session.remove()
    return data


def _owner_count(app, name: str) -> int:
    from sqlalchemy import func, select

    from app.extensions import db
    from models.archives import Owner

    with app.app_context():
        n = db.session.scalar(select(func.count()).select_from(Owner).where(Owner.name == name))
        db.session.remove()
        return n


def _goto_ok(page, url: str):
    resp = page.goto(url)
    assert resp is not None and resp.status == 200, f"{url}: HTTP {resp and resp.status}"
    return resp


def _column_headers(page) -> list[str]:
    return [t.strip() for t in page.locator("table thead th").all_inner_texts()]


# 1 ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("role", ROLES)
def test_every_role_reads_the_units_list_in_chinese(page, login, archive, role):
    login(page, role)
    _goto_ok(page, "/unit/list/")
    assert page.locator(".panel-title", has_text="房屋").count() >= 1, page.content()[:2000]
    headers = _column_headers(page)
    for label in ("房号", "楼栋", "建筑面积(㎡)", "用途", "状态"):
        assert label in headers, f"{role}: {label!r} not among the column headers {headers}"
    assert page.get_by_text("业主档案").first.is_visible(), f"{role}: menu category 业主档案 not shown"

    _goto_ok(page, f"/unit/list/?_flt_0_code={archive['unit_code']}")
    row = page.locator("table tbody tr", has_text=archive["unit_code"])
    assert row.count() == 1, f"{role}: unit {archive['unit_code']} not listed"
    assert "住宅" in row.inner_text() and "空置" in row.inner_text(), row.inner_text()


# 2 ------------------------------------------------------------------------------------------
def _open_add_form_from_list(page, resource: str) -> None:
    _goto_ok(page, f"/{resource}/list/")
    # The list's add button: FAB renders it as a link to /<resource>/add.
    with page.expect_navigation():
        page.locator(f"a[href^='/{resource}/add']").first.click()
    assert urlsplit(page.url).path == f"/{resource}/add", page.url


def test_staff_adds_an_owner_through_the_form(app, page, login):
    name = f"浏览器业主{_new_tag()}"
    login(page, "Staff")
    _open_add_form_from_list(page, "owner")
    assert page.locator("label[for=phone]", has_text="联系电话").count() == 1
    assert page.locator("#kind option").all_inner_texts() == ["个人", "单位"]
    page.fill("#name", name)
    page.select_option("#kind", "company")
    page.fill("#phone", "139 0000 1111")  # spaces are normalised away
    page.fill("#email", "owner@example.cn")
    page.fill("#address", "深圳市南山区科技园 1 号")
    with page.expect_navigation() as nav:
        page.locator("#model_form [type=submit]").click()
    assert nav.value.status == 200, f"add answered {nav.value.status}"
    assert page.locator(".alert-success").count() >= 1, "no confirmation shown after saving"

    _goto_ok(page, f"/owner/list/?_flt_0_name={name}")
    row = page.locator("table tbody tr", has_text=name)
    assert row.count() == 1, f"new owner {name} not in the list"
    text = row.inner_text()
    assert "单位" in text, text
    assert "13900001111" in text, f"Staff has the personal right and should see the full phone: {text}"
    assert _owner_count(app, name) == 1


def test_saving_an_added_owner_returns_to_the_list(page, login):
    login(page, "Staff")
    _open_add_form_from_list(page, "owner")
    page.fill("#name", f"回列表业主{_new_tag()}")
    page.fill("#phone", "13900002222")
    with page.expect_navigation():
        page.locator("#model_form [type=submit]").click()
    assert urlsplit(page.url).path == "/owner/list/", f"not back on the list after saving: {page.url}"


def test_invalid_phone_is_refused_on_the_form(app, page, login):
    name = f"错号业主{_new_tag()}"
    login(page, "Staff")
    _open_add_form_from_list(page, "owner")
    page.fill("#name", name)
    page.fill("#phone", "12345")
    with page.expect_navigation() as nav:
        page.locator("#model_form [type=submit]").click()
    assert nav.value.status == 422, f"an invalid form should re-render with 422, got {nav.value.status}"
    assert "/owner/add" in page.url
    # The message sits in the phone field's own cell, next to the input.
    cell = page.locator("td", has=page.locator("#phone"))
    assert MSG_PHONE_ZH in cell.inner_text(), f"no phone error next to the field: {cell.inner_text()!r}"
    assert page.input_value("#phone") == "12345", "the form should keep what the user typed"
    assert page.input_value("#name") == name
    assert _owner_count(app, name) == 0, "an owner was created from an invalid form"


# 3 ------------------------------------------------------------------------------------------
def _write_controls(page) -> list[str]:
    hrefs = page.eval_on_selector_all("a[href]", "els => els.map(e => e.getAttribute('href'))")
    actions = page.eval_on_selector_all("form[action]", "els => els.map(e => e.getAttribute('action'))")
    found = [f"link {h}" for h in hrefs if WRITE_HREF.search(urlsplit(h).path or "")]
    found += [f"form action {a}" for a in actions if a and WRITE_HREF.search(urlsplit(a).path or "")]
    for el in page.locator(DELETE_CONTROLS).all():
        found.append("control " + (el.evaluate("e => e.outerHTML")[:160]))
    return found


def _menu_links(page, live_server) -> list[str]:
    hrefs = page.eval_on_selector_all(".navbar a[href]", "els => els.map(e => e.href)")
    links = []
    for href in hrefs:
        parts = urlsplit(href)
        if parts.netloc != live_server.host or parts.path in ("", "/") or href.endswith("#"):
            continue
        if parts.path.startswith(("/logout", "/lang/")):
            continue
        if parts.path not in links:
            links.append(parts.path)
    return links


def test_write_controls_are_recognised(new_page, login, archive):
    """The detector used below does find Staff's add, edit and delete controls (so its silence
    for Committee means something)."""
    page = new_page()
    login(page, "Staff")
    _goto_ok(page, f"/owner/list/?_flt_0_name={archive['owner_name']}")
    found = " ".join(_write_controls(page))
    for control in ("/owner/add", "/owner/edit/", "btn-delete-"):
        assert control in found, f"{control} not detected on Staff's owner list: {found}"


def test_committee_sees_no_write_control(page, login, live_server, archive, artifacts):
    login(page, "Committee")
    _goto_ok(page, "/")
    menu = _menu_links(page, live_server)
    lists = [m for m in menu if m.endswith("/list/")]
    assert {"/estate/list/", "/unit/list/", "/owner/list/", "/resident/list/", "/vehicle/list/"} <= set(lists), menu
    assert "/change_log/list/" not in menu, "Committee must not see the change history"

    offenders: dict[str, list[str]] = {}
    shows: list[str] = []
    for url in ["/", *menu]:
        _goto_ok(page, url)
        if found := _write_controls(page):
            offenders[url] = found
        if url in lists:
            show = page.locator("table tbody a[href*='/show/']").first
            if show.count():
                shows.append(show.get_attribute("href"))
    # The archive fixture fills these; other lists are checked as far as they have rows.
    seeded = {"estate", "building", "unit", "owner", "ownership", "resident", "vehicle"}
    missing = seeded - {s.split("/")[1] for s in shows}
    assert not missing, f"no detail page to open for {sorted(missing)} (no rows listed?)"
    for url in shows:
        _goto_ok(page, url)
        if found := _write_controls(page):
            offenders[url] = found
    assert not offenders, "write controls shown to Committee:\n" + "\n".join(
        f"{url}: {found}" for url, found in offenders.items()
    )

    # Personal data masked, in the list and on the detail page.
    _goto_ok(page, f"/owner/list/?_flt_0_name={archive['owner_name']}")
    row = page.locator("table tbody tr", has_text=archive["owner_name"])
    assert row.count() == 1
    assert "138****5678" in row.inner_text(), row.inner_text()
    assert "13812345678" not in page.content(), "the full phone number reached Committee's owner list"
    page.screenshot(path=str(artifacts / "committee-owners.png"), full_page=True)
    _goto_ok(page, f"/owner/show/{archive['owner']}")
    assert "138****5678" in page.content()
    assert "13812345678" not in page.content(), "the full phone number reached Committee's owner detail"


# 4 ------------------------------------------------------------------------------------------
def test_no_asset_is_loaded_from_outside(page, login, live_server, archive):
    requested: list[tuple[str, str]] = []
    page.on("request", lambda req: requested.append((page.url, req.url)))

    def visit(url):
        resp = page.goto(url, wait_until="networkidle")
        assert resp is not None and resp.status == 200, f"{url}: HTTP {resp and resp.status}"

    visit("/login/")
    login(page, "Staff")
    for url in ("/", "/unit/list/", "/owner/list/", "/owner/add", "/resident/add", f"/unit/show/{archive['unit']}"):
        visit(url)
    # The English screens too (FAB's language menu and flags).
    visit("/lang/en")
    visit("/unit/list/")

    assert len(requested) > 20, f"too few requests recorded: {requested}"
    outside = sorted(
        {
            f"{req} (from {origin})"
            for origin, req in requested
            if urlsplit(req).scheme not in ("data", "blob") and urlsplit(req).netloc != live_server.host
        }
    )
    assert not outside, "assets loaded from outside the product:\n" + "\n".join(outside)


# 5 ------------------------------------------------------------------------------------------
def _switch_language(page, code: str) -> None:
    link = page.locator(f".navbar a[href='/lang/{code}']")
    assert link.count() == 1, f"no /lang/{code} entry in the navbar language menu"
    menu = page.locator(".navbar li.dropdown", has=page.locator(f"a[href='/lang/{code}']"))
    menu.locator("a.dropdown-toggle").click()  # open the language menu, then pick the language
    with page.expect_navigation():
        link.click()


def test_language_switch(new_page, login, archive):
    # An English-speaking browser still gets the product's default language, Simplified Chinese.
    page = new_page(locale="en-US")
    login(page, "Staff")
    _goto_ok(page, "/unit/list/")
    assert "房号" in _column_headers(page)

    _switch_language(page, "en")
    _goto_ok(page, "/unit/list/")
    headers = _column_headers(page)
    assert "Unit code" in headers and "房号" not in headers, headers
    assert page.locator(".panel-title", has_text="Units").count() >= 1
    assert page.get_by_text("Archives").first.is_visible()
    assert page.locator(".navbar a[href='/lang/zh']").count() == 1

    _switch_language(page, "zh")
    _goto_ok(page, "/unit/list/")
    headers = _column_headers(page)
    assert "房号" in headers and "Unit code" not in headers, headers
