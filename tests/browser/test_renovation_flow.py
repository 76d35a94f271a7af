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
    return page.locator(".desk-reno-status").get_attribute("data-status")


def _submit(page, form_class: str):
    with page.expect_navigation():
        page.locator(f"form.{form_class} [type=submit]").click()
    assert page.locator(".alert-danger").count() == 0, page.locator(".alert-danger").all_inner_texts()


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
    assert _status(page) == "applied"
    assert page.locator("form.desk-reno-approve").count() == 0  # Managers only
    page.screenshot(path=str(artifacts / "renovation-1-applied.png"), full_page=True)

    # --- the Manager approves and prints the permit
    manager = new_page()
    login(manager, "Manager")
    manager.goto(f"/renovation/show/{pk}")
    _submit(manager, "desk-reno-approve")
    assert _status(manager) == "approved"
    permit_link = manager.locator("a.desk-permit-link")
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
    _submit(page, "desk-reno-start")
    assert _status(page) == "active"
    photo = tmp_path / "现场.jpg"
    photo.write_bytes(b"\xff\xd8\xff fake jpeg")
    page.fill("form.desk-reno-inspect input[name=findings]", "施工规范，垃圾已袋装")
    page.set_input_files("form.desk-reno-inspect input[name=photos]", str(photo))
    _submit(page, "desk-reno-inspect")
    assert page.locator("tr.desk-reno-inspection").count() == 1
    assert "施工规范" in page.locator("tr.desk-reno-inspection").inner_text()
    page.fill("form.desk-reno-deduct input[name=amount]", "120.00")
    page.fill("form.desk-reno-deduct input[name=reason]", "电梯轿厢划伤")
    _submit(page, "desk-reno-deduct")
    _submit(page, "desk-reno-complete")
    assert _status(page) == "completed"
    page.screenshot(path=str(artifacts / "renovation-3-completed.png"), full_page=True)

    # --- the Manager accepts and refunds
    manager.goto(f"/renovation/show/{pk}")
    manager.select_option("form.desk-reno-accept select[name=result]", "pass")
    _submit(manager, "desk-reno-accept")
    assert _status(manager) == "accepted"
    assert manager.locator(".desk-reno-refundable").inner_text().strip() == "2880.00"
    _submit(manager, "desk-reno-refund")
    assert _status(manager) == "refunded"
    assert manager.locator(".desk-reno-refunded").inner_text().strip() == "2880.00"
    manager.screenshot(path=str(artifacts / "renovation-4-refunded.png"), full_page=True)
    with app.app_context():
        r = db.session.get(Renovation, pk)
        refund = db.session.get(Refund, r.refund_id)
        assert refund.amount == Decimal("2880.00") and refund.unit_id == unit_id
        assert r.unit.status != "renovating"
        db.session.remove()
