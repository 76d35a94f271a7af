"""Issues 8 and 9 in a real browser, reached by clicking from the home page:

- a clerk opens a help request from the menu, clicks 编辑 on its detail page, picks the handler by
  typing in the edit page's picker (which offers the working staff only, in Chinese), sets the repair
  responsibility and saves: the save succeeds (no 409), the detail page shows the handler;
- a supervisor records a confidential consultation; a clerk who is not its handler sees the request
  but reads （保密内容）, and is offered no edit button;
- no page of the walk breaks the content security policy (no inline script without the page's
  nonce, no outside asset).

Screenshots go to test-artifacts/security-*.png.
"""

from __future__ import annotations

import re
import uuid

import pytest

from tests.browser.test_desk_flow import _save, _sections, _select2_choose, _select2_open, _show_fields, _timeline

pytestmark = pytest.mark.browser


def _watch(page) -> list[str]:
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    return problems


def _menu(page, category: str, item: str) -> None:
    page.locator("ul.nav a.dropdown-toggle", has_text=category).first.click()
    with page.expect_navigation():
        page.locator("ul.dropdown-menu:visible a", has_text=item).first.click()


@pytest.fixture()
def repair_ticket(api, make_unit) -> int:
    ids = make_unit()
    resp = api("Staff").post(
        "/api/v1/ticket/",
        json={"kind": "repair", "channel": "phone", "unit": ids["unit"], "description": f"阳台漏水 {uuid.uuid4().hex[:6]}"},
    )
    assert resp.status_code == 201, resp.get_data(as_text=True)
    return resp.json["id"]


def test_a_clerk_assigns_the_handler_on_the_edit_page(page, login, repair_ticket, artifacts):
    problems = _watch(page)
    login(page, "Staff")
    _menu(page, "服务台", "住户求助")
    with page.expect_navigation():
        page.locator(f"a[href$='/ticket/show/{repair_ticket}']").first.click()
    with page.expect_navigation():
        page.locator("a.desk-edit").click()
    assert re.search(rf"/ticket/edit/{repair_ticket}$", page.url)
    # The handler picker on the edit page works: typed search, working staff only, in Chinese.
    dropdown = _select2_open(page, "assignee")
    dropdown.locator(".select2-search__field").type("zzzz-nobody", delay=20)
    dropdown.locator(".select2-results__option", has_text="没有找到匹配项").wait_for(state="visible")
    page.keyboard.press("Escape")
    dropdown = _select2_open(page, "assignee")
    dropdown.locator(".select2-search__field").type("e", delay=20)
    # (the results arrive by AJAX: wait for them, not for select2's "正在搜索…" line)
    dropdown.locator(".select2-results__option:not(.loading-results)", has_text="(staff)").first.wait_for(state="visible")
    offered = " ".join(dropdown.locator(".select2-results__option").all_inner_texts())
    assert "(staff)" in offered and "(committee)" not in offered and "(admin)" not in offered and "(system)" not in offered
    page.keyboard.press("Escape")
    _select2_choose(page, "assignee", "StaffTester (staff)", typed="staff")
    _select2_choose(page, "responsibility", "公共部位（物业负责）")
    page.screenshot(path=str(artifacts / "security-ticket-edit.png"), full_page=True)
    resp = _save(page)
    assert resp.status == 200 and "/ticket/edit/" not in page.url, page.content()[:800]
    assert "已被他人修改" not in page.content() and "记录已更新" in page.content()
    # Back where the form was opened from: the request's detail page.
    assert page.url.endswith(f"/ticket/show/{repair_ticket}"), page.url
    fields = _show_fields(page)
    # The handler by name (the login only in the account list).
    assert fields["处理人"] == "StaffTester" and fields["维修责任"] == "公共部位（物业负责）"
    assert not problems, problems


def test_a_clerk_reads_no_confidential_consultation(new_page, login, artifacts):
    secret = f"咨询离婚后房产过户 {uuid.uuid4().hex[:6]}"
    supervisor = new_page()
    problems = _watch(supervisor)
    login(supervisor, "Supervisor")
    _menu(supervisor, "服务台", "住户求助")
    with supervisor.expect_navigation():
        supervisor.locator("a[href*='/ticket/add']").first.click()
    _select2_choose(supervisor, "kind", "咨询")
    supervisor.fill("#visitor_name", "王女士")
    supervisor.fill("#description", secret)
    supervisor.check("#confidential")
    resp = _save(supervisor)
    assert resp.status == 200 and "记录已添加" in supervisor.content()
    # The supervisor reads it: the consultation's section, the content, the status form.
    with supervisor.expect_navigation():
        supervisor.locator("table a[href*='/ticket/show/']").first.click()
    assert _sections(supervisor) == ["登记", "咨询", "时间与时限"], _sections(supervisor)
    fields = _show_fields(supervisor)
    assert fields["求助内容"] == secret and fields["保密"] == "是" and fields["咨询方式"] == ""
    assert supervisor.locator("form.desk-transition").count() == 1
    assert [r[3] for r in _timeline(supervisor)] == [secret]
    supervisor.screenshot(path=str(artifacts / "desk-consultation-show.png"), full_page=True)

    staff = new_page()
    problems += _watch(staff)
    login(staff, "Staff")
    _menu(staff, "服务台", "住户求助")
    with staff.expect_navigation():
        staff.locator("table a[href*='/ticket/show/']").first.click()
    fields = _show_fields(staff)
    assert fields["类别"] == "咨询" and fields["保密"] == "是"
    assert fields["求助内容"] == "（保密内容）"
    assert secret not in staff.content()
    assert [r[3] for r in _timeline(staff)] == ["（保密）"]
    # Not one of its readers: no edit, and no action the API would refuse (403).
    assert staff.locator("a.desk-edit").count() == 0 and staff.locator("form.desk-action").count() == 0
    staff.screenshot(path=str(artifacts / "security-confidential-staff.png"), full_page=True)
    assert not problems, problems
