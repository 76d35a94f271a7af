"""Taking money, seen as the clerk sees it (issue 12 §4 and §7), in Debian's Chromium: Staff, on
the home page after signing in, opens 业主档案 → 房屋, finds a unit that owes three months, clicks
收款, sees the three bills ticked oldest first and their total, saves, and has the receipt in
front of them, ready to print. Every click goes through ``Clicks`` (the count is printed: the
closing note quotes it); every page passed is checked for English words and saved as a full-page
screenshot at tests/browser/shots/collect-*.png. Also: the total follows the ticks and the amount
paid in advance as they change; a voided receipt carries a big 作废 mark.
"""

from __future__ import annotations

import re
from decimal import Decimal
from urllib.parse import urlsplit

import pytest

from tests.browser.conftest import sign_in
from tests.browser.journey import Clicks, english_in_context, shot
from tests.test_collect import three_months

pytestmark = pytest.mark.browser


def _path(page) -> str:
    return urlsplit(page.url).path


class Journey:
    def __init__(self, page, name: str):
        self.page, self.name = page, name
        self.clicks = Clicks(name)
        self.steps = 0
        self.english: dict[str, list[str]] = {}

    def click(self, locator, navigates: bool = True):
        locator.first.wait_for(state="visible")
        if navigates:
            with self.page.expect_navigation():
                self.clicks.click(locator.first)
            self.page.wait_for_load_state()
        else:
            self.clicks.click(locator.first)

    def step(self, what: str) -> None:
        self.steps += 1
        shot(self.page, f"collect-{self.steps}-{what}")
        found = english_in_context(self.page)
        if found:
            self.english[f"{self.steps}-{what}"] = found


def _form_rows(page) -> list[dict]:
    out = []
    for row in page.locator("tr.desk-collect-bill").all():
        cells = [c.strip() for c in row.locator("td").all_inner_texts()]
        out.append({"ticked": row.locator("input[name=bill]").is_checked(), "period": cells[1], "due": cells[7]})
    return out


def test_staff_collects_three_months_and_prints_the_receipt(app, page, make_unit):
    u = three_months(app, make_unit)
    sign_in(page, "staff")
    j = Journey(page, "collect")
    page.wait_for_selector(".desk-workbench")
    j.step("home")

    # 业主档案 → 房屋
    nav = page.locator(".navbar")
    j.click(nav.locator("a.dropdown-toggle", has_text="业主档案"), navigates=False)
    j.click(nav.locator(".dropdown-menu a", has_text=re.compile(r"^\s*房屋\s*$")))
    assert _path(page) == "/unit/list/"
    j.step("units")

    # Find the unit by its code: the list's search (搜索 → 添加过滤条件 → 房号, type, 搜索).
    j.click(page.locator("a[href='#accordion1'], .panel-heading a", has_text="搜索"), navigates=False)
    j.click(page.locator("#filter_form button.dropdown-toggle"), navigates=False)
    j.click(page.locator("#filter_form .dropdown-menu a.filter[name=code]"), navigates=False)
    page.locator("#filter_form input.filter_val").first.fill(u["unit_code"])
    j.click(page.locator("#filter_form button[type=submit]"))
    row = page.locator("table tbody tr", has_text=u["unit_code"])
    assert row.count() == 1, page.url
    j.step("unit-found")
    j.click(row.locator("a[href*='/unit/show/']"))
    assert _path(page) == f"/unit/show/{u['unit']}"
    j.step("unit")

    # 收款: the three months ticked, oldest first, and their total.
    j.click(page.locator(".desk-actions a.desk-link", has_text="收款"))
    assert _path(page) == f"/unit/collect/{u['unit']}"
    rows = _form_rows(page)
    assert [r["period"] for r in rows] == u["periods"], rows
    assert all(r["ticked"] for r in rows) and [r["due"] for r in rows] == ["100.00"] * 3
    assert page.locator(".desk-collect-total").inner_text().strip() == "¥300.00"
    assert page.locator(".desk-collect-count").inner_text().strip() == "3"
    assert page.locator("input[name=method][value=cash]").is_checked()
    j.step("form")

    # Save: the receipt opens, ready to print.
    j.click(page.locator("button.desk-collect-save"))
    assert re.fullmatch(r"/payment/receipt/\d+", _path(page)), page.url
    assert page.locator("h1").inner_text().strip() == "收款收据"
    assert page.locator(".toolbar .saved").inner_text().strip() == "收款已保存"
    assert page.locator("[data-desk-print]").is_visible()
    lines = [[c.strip() for c in r.locator("td").all_inner_texts()] for r in page.locator("table.lines tbody tr").all()]
    assert [ln[2] for ln in lines] == u["periods"] and [ln[3] for ln in lines] == ["100.00"] * 3, lines
    assert page.locator(".words").inner_text().strip() == "叁佰元整"
    assert "收款人：StaffTester" in page.locator(".signatures").inner_text()
    assert page.locator(".void-mark").count() == 0
    j.step("receipt")

    j.clicks.report()
    assert j.clicks.count == 9, j.clicks.count
    assert not j.english, "English words on the Chinese pages:\n" + "\n".join(f"  {s}: {w}" for s, w in j.english.items())
    for bill in u["bills"]:
        from tests.test_collect import bill_state

        assert bill_state(app, bill) == ("paid", Decimal("100.00"))


def test_the_total_follows_the_ticks_and_the_amount_in_advance(app, page, make_unit):
    u = three_months(app, make_unit, extra=True)
    sign_in(page, "staff")
    page.goto(f"/bill/show/{u['bills'][1]}")
    with page.expect_navigation():
        page.locator(".desk-actions a.desk-link", has_text="收款").click()
    assert _path(page) == f"/unit/collect/{u['unit']}"
    total = page.locator(".desk-collect-total")
    assert [r["ticked"] for r in _form_rows(page)] == [False, False, True, False]  # only the bill it came from
    assert total.inner_text().strip() == "¥82.50"
    page.locator(".desk-collect-all").check()
    assert total.inner_text().strip() == "¥342.50"  # 60 (disputed) + 100 + 82.50 + 100
    page.locator(f"#bill-{u['disputed']}").uncheck()
    page.fill("#extra", "1000.5")
    assert total.inner_text().strip() == "¥1,283.00"
    assert page.locator(".desk-collect-bills-total").inner_text().strip() == "282.50"
    shot(page, "collect-live-total")
    assert not english_in_context(page)
    page.fill("#extra", "abc")
    assert total.inner_text().strip() == "—"
    # Sent anyway: refused naming the field, the ticks and the text kept.
    with page.expect_navigation() as nav:
        page.locator("button.desk-collect-save").click()
    assert nav.value.status == 422
    assert "预存金额：金额无效" in page.locator(".desk-form-errors").inner_text()
    assert [r["ticked"] for r in _form_rows(page)] == [False, True, True, True]
    assert page.locator("#extra").input_value() == "abc"
    shot(page, "collect-refused")
    assert not english_in_context(page)


def test_a_voided_receipt_is_marked(app, page, make_unit, api):
    u = three_months(app, make_unit)
    staff = api("Staff")
    paid = staff.post(f"/api/v1/payment/collect/{u['unit']}", json={"bills": u["bills"], "method": "wechat"})
    assert paid.status_code == 201, paid.json
    pid = paid.json["id"]
    voided = staff.post(f"/api/v1/payment/{pid}/void", json={"reason": "重复收款", "version": paid.json["version"]})
    assert voided.status_code == 200, voided.json
    sign_in(page, "staff")
    page.goto(f"/payment/receipt/{pid}")
    mark = page.locator(".void-mark")
    assert mark.inner_text().strip() == "作废" and mark.is_visible()
    box = mark.bounding_box()
    assert box and box["width"] > 150 and box["height"] > 60, box  # big enough to see across the receipt
    assert "作废原因：重复收款" in page.locator(".void-note").last.inner_text()
    shot(page, "collect-void-receipt")
    assert not english_in_context(page)
    page.goto(f"/payment/show/{pid}")
    assert page.locator(".desk-actions .desk-status").inner_text().strip() == "已作废"
    shot(page, "collect-void-payment")
