"""Chinese everywhere, in the browser (issue 12, section 6).

At 1366 x 768, the usual office screen, the top bar holds on one row for Admin, a Manager and a
Staff member of one estate, in Chinese and in English (switched with the language menu). What
scripts write once the page has loaded speaks the page's language too: select2's dropdowns ("No
results found" in Chinese), and no English word in the text a person sees on the ticket form.
Screenshots: tests/browser/shots/zh-*.png and en-*.png.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.browser.conftest import sign_in
from tests.conftest import PASSWORD
from tests.test_chinese_everywhere import ALLOWED, CJK, english_words

SHOTS = Path(__file__).resolve().parent / "shots"
WIDTH, HEIGHT = 1366, 768
USERS = ("admin", "manager_a", "staff_a")


@pytest.fixture(scope="module")
def office(app):
    """An estate, with a Manager and a Staff member who work for it only (manager_a, staff_a),
    named as people are: the name is on the top bar."""
    from flask_appbuilder.security.sqla.models import User

    from app.extensions import db
    from app.seed import ensure_user
    from models.archives import Building, Estate, Unit
    from models.base import acting_as

    tag = uuid.uuid4().hex[:4].upper()
    with app.app_context():
        admin = db.session.execute(select(User.id).where(User.username == "admin")).scalar_one()
        with acting_as(admin):
            estate = Estate(code=f"ZH{tag}", name=f"翠湖花园{tag}")
            db.session.add(
                Unit(building=Building(estate=estate, code="1", name="1栋"), code="1-1-101", floor=1, gross_area=Decimal("89.00"))
            )
            db.session.commit()
        for username, role, first, last in (("manager_a", "Manager", "王", "建国"), ("staff_a", "Staff", "李", "晓梅")):
            ensure_user(app.appbuilder.sm, username, role, first, last, PASSWORD, estates=[estate.id])
        db.session.commit()
        db.session.remove()
    return tag


@pytest.fixture()
def wide_page(new_page):
    page = new_page()
    page.set_viewport_size({"width": WIDTH, "height": HEIGHT})
    return page


def top_bar(page) -> dict:
    """The top bar's height and the rows its items sit on."""
    return page.evaluate(
        """() => {
          const bar = document.querySelector('header.top .navbar');
          const items = [...bar.querySelectorAll('.navbar-collapse > ul.nav > li')].filter(li => li.offsetParent);
          const tops = [...new Set(items.map(li => Math.round(li.getBoundingClientRect().top)))];
          const brand = bar.querySelector('.navbar-brand');
          return {height: bar.getBoundingClientRect().height, rows: tops.length, items: items.length,
                  brandTop: Math.round(brand.getBoundingClientRect().top),
                  text: items.map(li => li.innerText.trim()).join(' | ')};
        }"""
    )


def switch_language(page, lang: str) -> None:
    page.goto(f"/lang/{lang}")
    page.goto("/")


@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize("username", USERS)
def test_the_top_bar_holds_on_one_row_at_1366(wide_page, office, username, lang):
    page = wide_page
    sign_in(page, username)
    switch_language(page, lang)
    assert page.locator("meta[name=desk-lang]").get_attribute("content") == lang
    page.wait_for_load_state("networkidle")
    bar = top_bar(page)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{lang}-topbar-{username}.png"), clip={"x": 0, "y": 0, "width": WIDTH, "height": 160})
    page.screenshot(path=str(SHOTS / f"{lang}-home-{username}.png"), full_page=True)
    print(f"\n{lang} {username}: top bar {bar['height']:.0f}px, {bar['items']} items on {bar['rows']} row(s): {bar['text']}")
    assert bar["items"] >= 3, bar
    assert bar["rows"] == 1, f"{username} ({lang}): the top bar wraps onto {bar['rows']} rows: {bar['text']}"
    assert bar["height"] <= 52, f"{username} ({lang}): the top bar is {bar['height']}px high (one row is 50px)"
    switch_language(page, "zh")


def test_select2_and_the_ticket_form_speak_chinese(wide_page, office):
    """What scripts write after the page has loaded: select2's "no results" and the page as a
    person sees it (innerText, dropdowns drawn) on the ticket form hold no English word."""
    page = wide_page
    sign_in(page, "staff_a")
    page.goto("/ticket/add")
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(SHOTS / "zh-ticket-add.png"), full_page=True)
    words = english_words(page.inner_text("body"), ALLOWED)
    assert not words, words
    # A relation picked by typing (the unit, from the server) and a plain choice (the class):
    # nothing matches, and select2 says so in Chinese.
    for box in ("select#unit", "select#kind"):
        page.locator(box).locator("xpath=following-sibling::span[contains(@class,'select2')][1]").click()
        page.locator(".select2-container--open .select2-search__field").fill("没有这样的房屋zzz")
        message = page.locator(".select2-container--open .select2-results__message")
        message.wait_for()
        page.wait_for_function(
            "() => !document.querySelector('.select2-container--open .select2-results__message').innerText.includes('搜索')"
        )
        page.screenshot(path=str(SHOTS / f"zh-select2-{box[7:]}.png"), full_page=False)
        assert message.inner_text() == "没有找到匹配项", (box, message.inner_text())
        page.keyboard.press("Escape")


def test_the_delete_question_is_chinese(wide_page, office):
    """FAB's delete button asks in its own dialog: the question and both buttons in Chinese."""
    page = wide_page
    sign_in(page, "admin")
    page.goto("/building/list/")
    delete = page.locator("a[id^=btn-delete-]").first
    delete.click()
    dialog = page.locator("#modal-confirm")
    dialog.wait_for(state="visible")
    page.screenshot(path=str(SHOTS / "zh-delete-question.png"), full_page=False)
    assert dialog.locator(".modal-body").inner_text().strip() == "确定要删除这条记录吗？"
    assert dialog.locator("button[data-dismiss=modal]").inner_text().strip() == "取消"
    assert dialog.locator("#modal-confirm-ok").inner_text().strip() == "确定"
    dialog.locator("button[data-dismiss=modal]").click()


def test_the_ticket_form_in_english_as_the_browser_draws_it(wide_page, office):
    """In English, after the page's scripts have run (sections shown per class, the caller card,
    select2): labels, section titles, hints, placeholders and select2's own texts hold no Chinese."""
    page = wide_page
    sign_in(page, "staff_a")
    switch_language(page, "en")
    page.goto("/ticket/add")
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(SHOTS / "en-ticket-add.png"), full_page=True)
    texts = page.evaluate(
        """() => [...document.querySelectorAll(
             'form label, .panel-title, .panel-heading, .help-block, .select2-selection__placeholder, [placeholder]')]
           .filter(e => e.offsetParent)
           .map(e => (e.getAttribute('placeholder') || e.innerText || '').trim()).filter(Boolean)"""
    )
    assert len(texts) > 15, texts
    chinese = [t for t in texts if CJK.search(t)]
    assert not chinese, chinese
    page.locator("select#unit").locator("xpath=following-sibling::span[contains(@class,'select2')][1]").click()
    page.locator(".select2-container--open .select2-search__field").fill("zzzz-no-such-unit")
    page.wait_for_function(
        "() => (document.querySelector('.select2-container--open .select2-results__message') || {}).innerText === 'No results found'"
    )
    page.keyboard.press("Escape")
    switch_language(page, "zh")


def test_error_pages_keep_the_top_bar_and_a_way_back(wide_page, office):
    page = wide_page
    sign_in(page, "staff_a")
    page.goto("/owner/list/")
    with page.expect_navigation():  # followed from a page of the site (a link would do the same): a referrer
        page.evaluate("location.href = '/no-such-page/'")
    page.screenshot(path=str(SHOTS / "zh-404.png"), full_page=True)
    assert page.locator("header.top .navbar").is_visible()
    assert page.locator(".desk-http-error").inner_text().startswith("404 · 页面不存在")
    with page.expect_navigation():
        page.locator(".desk-http-error a", has_text="返回上一页").click()
    assert page.url.endswith("/owner/list/")
    page.goto("/notification_route/add")  # Staff may not configure the robots
    page.screenshot(path=str(SHOTS / "zh-403.png"), full_page=True)
    assert page.locator(".desk-http-error").inner_text().startswith("403 · 没有权限")
    with page.expect_navigation():
        page.locator(".desk-http-error a", has_text="返回首页").click()
    assert page.locator(".desk-workbench").count() == 1
