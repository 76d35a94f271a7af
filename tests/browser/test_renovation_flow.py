"""A renovation from the application to the deposit refund, through the screens in a real browser
(tests/browser/conftest.py: live server, Debian's Chromium through Playwright).

Staff applies on the 装修申请 form (the unit picked by typing into the select2 lookup, the scope,
dates, deposit and fee, a drawing uploaded); a Manager approves it and prints the permit (装修许可证);
Staff starts the works and records an inspection with a photo; Staff reports completion; the
Manager accepts the works and refunds the deposit less a recorded deduction. Staff never sees the
approval form. Screenshots go to test-artifacts/renovation-*.png.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest

from tests.browser.test_desk_flow import _select2_choose

pytestmark = pytest.mark.browser

SHOW_PATH = re.compile(r"/renovation/show/(\d+)$")


@pytest.fixture()
def unit_code(app, make_unit) -> tuple[int, str]:
    from app.extensions import db
    from app.seed import renovation_fee_items
    from models.archives import Unit

    ids = make_unit()
    with app.app_context():
        renovation_fee_items()
        code = db.session.get(Unit, ids["unit"]).code
        db.session.remove()
    return ids["unit"], code


def _status(page) -> str:
    """The record's status label in the detail page's 办理 panel."""
    return page.locator(".desk-actions .desk-status").inner_text().strip()


def _submit(page, form_class: str):
    with page.expect_navigation():
        page.locator(f"form.desk-action.{form_class} [type=submit]").click()
    assert page.locator(".alert-danger").count() == 0, page.locator(".alert-danger").all_inner_texts()


def _field(page, label: str) -> str:
    """A value of the detail page's sections, by its label."""
    return page.locator(f"tr:has(th:text-is('{label}')) td").first.inner_text().strip()


def _related_rows(page, name: str):
    """The rows of a related list on the detail page (Related.name: its CSS class desk-<name>)."""
    return page.locator(f".desk-related.desk-{name} tbody tr")


def test_renovation_from_application_to_refund(app, page, new_page, login, live_server, unit_code, artifacts, tmp_path):
    from app.extensions import db
    from models.payments import Refund, record_payment
    from models.renovation import Renovation, renovation_bills

    unit_id, code = unit_code
    today = dt.date.today()
    # --- Staff applies
    login(page, "Staff")
    page.goto("/renovation/add")
    _select2_choose(page, "unit", code, typed=code[:6])
    page.fill("#contractor", "浏览器装饰公司")
    page.fill("#person_in_charge", "赵工")
    page.fill("#phone", "13700001111")
    page.fill("#workers", "5")
    page.locator("#scope").evaluate(
        "(e) => { for (const o of e.options) o.selected = ['walls', 'bathroom'].includes(o.value);"
        " e.dispatchEvent(new Event('change', {bubbles: true})); }"
    )
    page.locator("#planned_start").evaluate("(e, v) => { e.value = v; }", today.isoformat())
    page.locator("#planned_end").evaluate("(e, v) => { e.value = v; }", (today + dt.timedelta(days=15)).isoformat())
    page.fill("#deposit", "3000.00")
    page.fill("#management_fee", "200.00")
    drawing = tmp_path / "平面图.pdf"
    drawing.write_bytes(b"%PDF-1.4 floor plan")
    page.set_input_files("#drawings", str(drawing))
    with page.expect_navigation():
        page.locator("#model_form [type=submit], form [type=submit].btn-primary").first.click()
    with app.app_context():
        r = db.session.query(Renovation).filter(Renovation.unit_id == unit_id).one()
        pk = r.id
        assert r.status == "applied" and r.scope == ["walls", "bathroom"] and len(r.drawings) == 1
        db.session.remove()
    page.goto(f"/renovation/show/{pk}")
    assert _status(page) == "已申请"
    assert page.locator("form.desk-approve").count() == 0  # Managers only
    assert page.locator("form.desk-action.desk-cancel").count() == 1  # Staff may withdraw it
    assert _related_rows(page, "drawings").count() == 1  # the uploaded drawing, a download
    assert page.locator(".desk-related.desk-inspection").count() == 0  # no works yet: no inspections
    page.screenshot(path=str(artifacts / "renovation-1-applied.png"), full_page=True)

    # --- the Manager approves and prints the permit
    manager = new_page()
    login(manager, "Manager")
    manager.goto(f"/renovation/show/{pk}")
    _submit(manager, "desk-approve")
    assert _status(manager) == "已批准"
    assert _field(manager, "许可证号").startswith("ZXXK")
    permit_link = manager.locator("a.desk-link", has_text="打印装修许可证")
    with manager.context.expect_page() as popup:
        permit_link.click()
    permit = popup.value
    permit.wait_for_load_state()
    assert permit.locator("h1.permit-title").inner_text().strip() == "装修许可证"
    permit_no = permit.locator(".permit-no").inner_text().strip()
    assert permit_no.startswith("ZXXK")
    text = permit.locator("body").inner_text()
    for expected in (code, "浏览器装饰公司", "赵工", "13700001111", "墙面", "承重", "签字"):
        assert expected in text, expected
    permit.screenshot(path=str(artifacts / "renovation-2-permit.png"), full_page=True)
    permit.close()

    # the owner pays the deposit at the desk (the payment screens are the fees' own)
    with app.app_context():
        r = db.session.get(Renovation, pk)
        bill = renovation_bills(db.session, r)["deposit"]
        assert bill.amount == Decimal("3000.00")
        record_payment(db.session, r.unit, bill.amount, "cash", bill_ids=[bill.id])
        db.session.commit()
        db.session.remove()

    # --- Staff starts the works and records an inspection with a photo
    page.goto(f"/renovation/show/{pk}")
    _submit(page, "desk-start")
    assert _status(page) == "施工中"
    photo = tmp_path / "现场.jpg"
    photo.write_bytes(b"\xff\xd8\xff fake jpeg")
    page.fill("form.desk-record-inspection [name=findings]", "楼道堆放建筑垃圾")
    page.check("form.desk-record-inspection input[name=violation]")
    page.set_input_files("form.desk-record-inspection input[name=photos]", str(photo))
    _submit(page, "desk-record-inspection")
    assert re.search(SHOW_PATH, page.url), page.url  # back on the renovation's page
    inspections = _related_rows(page, "inspection")
    assert inspections.count() == 1 and "楼道堆放建筑垃圾" in inspections.inner_text()
    assert _related_rows(page, "rectification_order").count() == 1  # the violation's rectification order
    # the inspection's own page offers its photo as a download, and its order
    with page.expect_navigation():
        inspections.locator("a").first.click()
    photo_link = _related_rows(page, "photos").locator("a")
    got = page.request.get(photo_link.get_attribute("href"))
    assert got.status == 200 and got.body() == photo.read_bytes()
    page.screenshot(path=str(artifacts / "renovation-5-inspection.png"), full_page=True)
    # the order is put right and verified on its own page
    with page.expect_navigation():
        _related_rows(page, "rectification_order").locator("a").first.click()
    assert _status(page) == "整改中"
    _submit(page, "desk-rectified")
    assert _status(page) == "已整改"
    _submit(page, "desk-verify")
    assert _status(page) == "已复查"
    page.screenshot(path=str(artifacts / "renovation-6-rectification.png"), full_page=True)

    # an extension: Staff asks on the renovation's page, the Manager decides on the request's page
    page.goto(f"/renovation/show/{pk}")
    later = today + dt.timedelta(days=20)
    page.locator("form.desk-request-extension input[name=new_end]").evaluate(
        "(e, v) => { e.value = v; }", later.isoformat()
    )
    page.fill("form.desk-request-extension input[name=reason]", "瓷砖到货延误")
    _submit(page, "desk-request-extension")
    assert _related_rows(page, "renovation_extension").count() == 1
    assert page.locator("form.desk-approve").count() == 0  # Staff never decides
    manager.goto(f"/renovation/show/{pk}")
    with manager.expect_navigation():
        _related_rows(manager, "renovation_extension").locator("a").first.click()
    assert _status(manager) == "待审批"
    _submit(manager, "desk-approve")
    assert _status(manager) == "已批准"
    manager.screenshot(path=str(artifacts / "renovation-7-extension.png"), full_page=True)
    page.goto(f"/renovation/show/{pk}")
    assert _field(page, "计划完工") == later.isoformat()
    page.fill("form.desk-deduct input[name=amount]", "120.00")
    page.fill("form.desk-deduct input[name=reason]", "电梯轿厢划伤")
    _submit(page, "desk-deduct")
    assert _field(page, "已扣除(元)") == "120.00" and _field(page, "可退押金(元)") == "2880.00"
    _submit(page, "desk-complete")
    assert _status(page) == "已完工待验收"
    page.screenshot(path=str(artifacts / "renovation-3-completed.png"), full_page=True)

    # --- the Manager accepts and refunds
    manager.goto(f"/renovation/show/{pk}")
    manager.select_option("form.desk-accept select[name=passed]", "y")
    _submit(manager, "desk-accept")
    assert _status(manager) == "验收合格"
    assert _field(manager, "可退押金(元)") == "2880.00"
    manager.once("dialog", lambda dialog: dialog.accept())  # the refund asks first
    _submit(manager, "desk-refund")
    assert _status(manager) == "押金已退"
    assert _field(manager, "已退押金(元)") == "2880.00"
    manager.screenshot(path=str(artifacts / "renovation-4-refunded.png"), full_page=True)
    with app.app_context():
        r = db.session.get(Renovation, pk)
        refund = db.session.get(Refund, r.refund_id)
        assert refund.amount == Decimal("2880.00") and refund.unit_id == unit_id
        assert r.unit.status != "renovating"
        db.session.remove()
