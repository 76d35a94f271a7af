"""A fee from the approved standard to the printed receipt, the way the office works it in a real
browser (tests/browser/conftest.py: live server, Debian's Chromium through Playwright).

The Manager adds a fee item (收费项目) and drafts a standard for it (收费标准: per m² of gross area
per month, a 4-decimal unit price, the test estate, residential units, effective from the first of
this month); declares it with a basis document (a small PDF the test writes) and approves it
(已批准). Staff, looking at the declared standard, is offered no approval and is answered 403 on
the approve route. The Manager bills this month for the estate on the 计费批次 form: the form
commits the run row and queues the job on Redis; no worker runs in this test, so the job is
routed to a queue of the test's own (checked to hold the message, then deleted) and the test
runs ``run_billing`` in-process with the run's id, as the worker would. Staff finds the unit's
bill line with the exact amount (gross area x price, half up to the cent, computed here with
Decimal), records a cash payment of it for the unit, opens the receipt (number, payer, unit,
amount in figures and in capitals) and sees the bill 已缴清.

Screenshots go to test-artifacts/fee-flow-*.png.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from decimal import ROUND_HALF_UP, Decimal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest

from tests.browser.test_desk_flow import _flash, _form_errors, _goto_ok, _save, _select2_choose, _show_fields

pytestmark = pytest.mark.browser

PRICE = Decimal("2.3456")  # 元/㎡·月, four decimals
# 88.50 m² (tests/conftest.py make_unit) x 2.3456 = 207.5856 -> 207.59 half up (207.58 cut down).
EXPECTED_WORDS = "贰佰零柒元伍角玖分"


def _tag() -> str:
    return uuid.uuid4().hex[:6].upper()


def _office_today() -> dt.date:
    """Today in the office's zone (billing's current period is the Asia/Shanghai month)."""
    return dt.datetime.now(ZoneInfo("Asia/Shanghai")).date()


@pytest.fixture()
def estate(app, make_unit) -> dict:
    from app.extensions import db
    from models.archives import Estate, Owner, Unit

    ids = make_unit()
    with app.app_context():
        unit = db.session.get(Unit, ids["unit"])
        est = db.session.get(Estate, ids["estate"])
        owner = db.session.get(Owner, ids["owner"])
        data = {
            **ids,
            "unit_code": unit.code,
            "gross_area": Decimal(unit.gross_area),
            "estate_code": est.code,
            "estate_name": est.name,
            "owner_name": owner.name,
        }
        db.session.remove()
    return data


# --- helpers ---------------------------------------------------------------------------------
def _select2_many(page, field: str, label: str, typed: str | None = None) -> None:
    """Add ``label`` to a multi-select select2 box (its search box sits in the box itself)."""
    container = page.locator(f"#{field} + .select2-container")
    container.locator(".select2-selection").click()
    dropdown = page.locator(".select2-container--open .select2-dropdown")
    dropdown.wait_for(state="visible")
    if typed is not None:
        container.locator(".select2-search__field").type(typed, delay=30)
    option = dropdown.locator(".select2-results__option", has_text=re.compile(rf"^\s*{re.escape(label)}\s*$"))
    option.first.wait_for(state="visible")
    option.first.click()
    chosen = container.locator(".select2-selection__choice").all_inner_texts()
    assert any(label in c for c in chosen), f"{field}: chose {label!r}, the box holds {chosen}"
    page.keyboard.press("Escape")


def _saved(page, what: str) -> None:
    resp = _save(page)
    assert resp.status == 200, f"saving {what} answered {resp.status}: {_form_errors(page)} {_flash(page)}"
    assert page.locator(".alert-success").count() >= 1, f"{what}: no confirmation: {_form_errors(page)} {_flash(page)}"


def _open_row(page, list_url: str, text: str, show: str):
    """Open the one row of a list that holds ``text``; returns (the record's id, the row)."""
    _goto_ok(page, list_url)
    row = page.locator("table tbody tr", has_text=text)
    assert row.count() == 1, f"{list_url}: {row.count()} rows hold {text!r}"
    with page.expect_navigation():
        row.locator(f"a[href*='/{show}/show/']").first.click()
    match = re.match(rf"^/{show}/show/(\d+)$", urlsplit(page.url).path)
    assert match, f"not on a {show} detail page: {page.url}"
    return int(match.group(1)), row


def _workflow_step(page, form_class: str, note: str | None = None, document=None) -> None:
    form = page.locator(f"form.{form_class}")
    assert form.count() == 1, f"no {form_class} form on the page"
    if document is not None:
        form.locator("input[type=file][name=document]").set_input_files(str(document))
    if note is not None:
        form.locator("input[name=note]").fill(note)
    with page.expect_navigation() as nav:
        form.locator("[type=submit]").click()
    assert nav.value.status == 200
    assert page.locator(".alert-danger").count() == 0, _flash(page)
    assert page.locator(".alert-success").count() >= 1, _flash(page)


def _workflow_status(page) -> str:
    return page.locator(".desk-actions .desk-status").inner_text().strip()


def _related(page, label: str) -> list[list[str]]:
    """The rows of the detail page's related list titled ``label`` (cells as shown)."""
    block = page.locator(".desk-related", has=page.locator(".panel-heading strong", has_text=label))
    assert block.count() == 1, f"no related list {label!r}"
    return [[c.strip() for c in r.locator("td").all_inner_texts()][:-1] for r in block.locator("tbody tr").all()]


def _content(page) -> str:
    """The detail page's own text: its fields, its actions panel and its related lists."""
    return "\n".join(page.locator(".panel, .well").all_inner_texts())


TESTERS = {f"{role}Tester" for role in ("Admin", "Manager", "Supervisor", "Staff", "Committee")}


def _has_latin_word(text: str) -> list[str]:
    """Latin words on a Chinese page, other than the test users' names (data, not wording)."""
    return [w for w in re.findall(r"(?<![A-Za-z0-9])[A-Za-z]{3,}(?![A-Za-z0-9])", text) if w not in {"manager", "supervisor", "staff", "system", *TESTERS}]


# --- the flow --------------------------------------------------------------------------------
def test_fee_from_standard_to_receipt(app, page, new_page, login, estate, artifacts, tmp_path):
    import redis

    from app.extensions import db
    from jobs.billing import run_billing
    from models.base import acting_as, system_user_id
    from models.fees import Bill, BillingRun, FeeStandard
    from tests.conftest import REDIS_URL
    from tests.workers import new_queue, routed_to

    tag = _tag()
    item_name = f"物业服务费{tag}"
    today = _office_today()
    first = today.replace(day=1)
    period = f"{today:%Y-%m}"
    expected = (estate["gross_area"] * PRICE).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    assert expected == Decimal("207.59"), expected  # EXPECTED_WORDS is written for this amount

    # --- Manager: the fee item --------------------------------------------------------------
    manager = page
    login(manager, "Manager")
    _goto_ok(manager, "/fee_item/add")
    manager.fill("#code", f"PF{tag}")
    manager.fill("#name", item_name)
    _select2_choose(manager, "kind", "物业服务费")
    _saved(manager, "the fee item")

    # --- Manager: the standard, drafted --------------------------------------------------------
    _goto_ok(manager, "/fee_standard/add")
    _select2_choose(manager, "item", item_name)
    _select2_choose(manager, "basis", "按建筑面积每月（元/㎡·月）")
    manager.fill("#unit_price", str(PRICE))
    assert manager.locator("#select2-rounding-container").inner_text().strip().endswith("四舍五入到分")
    uses = manager.locator("#unit_uses + .select2-container .select2-selection__choice").all_inner_texts()
    assert [u.strip("×\n ") for u in uses] == ["住宅"], f"the form should offer 住宅 by default: {uses}"
    _select2_many(manager, "estates", estate["estate_name"], typed=estate["estate_name"][-6:])
    manager.fill("#effective_from", first.isoformat())  # the browser's own date input (views/fields.py)
    manager.keyboard.press("Tab")
    assert manager.input_value("#effective_from") == first.isoformat()
    manager.screenshot(path=str(artifacts / "fee-flow-1-standard-form.png"), full_page=True)
    _saved(manager, "the fee standard")

    std_id, _ = _open_row(manager, "/fee_standard/list/", item_name, "fee_standard")
    fields = _show_fields(manager)
    assert fields.get("收费项目") == item_name, fields
    assert fields.get("状态") == "草稿", fields
    assert fields.get("版本号") == "1", fields
    assert fields.get("单价") == str(PRICE), f"the 4-decimal price reads {fields.get('单价')!r}"
    assert fields.get("适用房屋用途") == "住宅", fields
    with app.app_context():
        std = db.session.get(FeeStandard, std_id)
        assert [e.id for e in std.estates] == [estate["estate"]] and std.unit_uses == ["residential"]
        assert std.unit_price == PRICE and std.rounding == "half_up_cent" and std.basis == "per_area_month"
        db.session.remove()
    assert fields.get("生效日期") == first.isoformat(), fields
    assert _workflow_status(manager) == "草稿"

    # --- Manager: declared with its basis document ------------------------------------------
    basis = tmp_path / "物业服务收费标准批复.pdf"
    basis.write_bytes(b"%PDF-1.4\n% fee approval basis " + tag.encode() + b"\n%%EOF\n")
    _workflow_step(manager, "desk-declare", document=basis)
    assert re.match(rf"^/fee_standard/show/{std_id}$", urlsplit(manager.url).path), manager.url
    assert _show_fields(manager).get("状态") == "已申报"
    assert _workflow_status(manager) == "已申报"
    download = manager.locator(".desk-actions a[href*='/fee_standard/document/']")
    assert download.count() == 1, "no link to the basis document"
    doc = manager.request.get(download.get_attribute("href"))
    assert doc.status == 200 and doc.body() == basis.read_bytes(), f"document download: {doc.status}"

    # --- Staff: no approval for the declared standard ---------------------------------------
    staff = new_page()
    login(staff, "Staff")
    _goto_ok(staff, f"/fee_standard/show/{std_id}")
    assert _show_fields(staff).get("状态") == "已申报"
    assert staff.locator("form.desk-approve").count() == 0, "Staff is offered the approval form"
    assert staff.locator("button", has_text="批准").count() == 0, "Staff sees an approve button"
    assert staff.locator("form.desk-reject, form.desk-declare").count() == 0
    staff.screenshot(path=str(artifacts / "fee-flow-2-standard-declared-staff.png"), full_page=True)
    with app.app_context():
        version = db.session.get(FeeStandard, std_id).version
        db.session.remove()
    denied = staff.request.post(f"/fee_standard/approve/{std_id}", form={"version": str(version)}, max_redirects=0)
    assert denied.status == 403, f"Staff on the approve route: HTTP {denied.status}"
    with app.app_context():
        assert db.session.get(FeeStandard, std_id).status == "declared"
        db.session.remove()

    # --- Manager: approved ------------------------------------------------------------------
    manager.reload()
    _workflow_step(manager, "desk-approve", note="经业委会同意，按物价局备案价执行")
    fields = _show_fields(manager)
    assert fields.get("状态") == "已批准", fields
    assert _workflow_status(manager) == "已批准"
    assert fields.get("批准人") == "ManagerTester", fields  # the person's name, not the login
    assert fields.get("审批意见") == "经业委会同意，按物价局备案价执行", fields
    assert manager.locator("form.desk-approve").count() == 0
    manager.screenshot(path=str(artifacts / "fee-flow-3-standard-approved.png"), full_page=True)

    # --- Manager: this month billed on the 计费批次 form ---------------------------------------
    queue = new_queue()
    with routed_to(queue):
        _goto_ok(manager, "/billing_run/add")
        _select2_choose(manager, "estate", estate["estate_name"])
        manager.fill("#period", period)
        _saved(manager, "the billing run")
    broker = redis.Redis.from_url(REDIS_URL)
    try:
        assert broker.llen(queue) == 1, "the billing job was not queued"
    finally:
        broker.delete(*(broker.keys(f"{queue}*") or [queue]))
    run_id, _ = _open_row(manager, "/billing_run/list/", estate["estate_name"], "billing_run")
    fields = _show_fields(manager)
    assert fields.get("状态") == "进行中", f"without a worker the run stays running: {fields}"
    with app.app_context():
        run = db.session.get(BillingRun, run_id)
        assert (run.estate_id, run.period, run.started_by, run.status) == (
            estate["estate"],
            period,
            "manager",
            "running",
        )
        db.session.remove()
    # No worker here: do the worker's part in-process, on the run row the form committed.
    with app.app_context():
        with acting_as(system_user_id(db.session)):
            result = run_billing(estate["estate"], period, "manager", run_id=run_id)
        db.session.remove()
    assert result["status"] == "done" and result["lines_created"] == 1, result
    manager.reload()
    fields = _show_fields(manager)
    assert fields.get("状态") == "完成", fields
    assert fields.get("本次新增行数") == "1", fields
    assert Decimal(fields.get("本次新增金额", "0").replace(",", "")) == expected, fields
    manager.screenshot(path=str(artifacts / "fee-flow-3b-billing-run-done.png"), full_page=True)

    # --- Staff: the bill line ---------------------------------------------------------------
    bill_id, _ = _open_row(staff, "/bill/list/", estate["unit_code"], "bill")
    fields = _show_fields(staff)
    assert fields.get("账期") == period, fields
    assert fields.get("收费项目") == item_name, fields
    assert fields.get("房号") == estate["unit_code"], fields
    assert fields.get("业主") == estate["owner_name"], fields
    assert Decimal(fields.get("数量", "0")) == estate["gross_area"], fields
    assert Decimal(fields.get("单价", "0")) == PRICE, fields
    assert fields.get("应收金额") == str(expected), f"bill amount {fields.get('应收金额')!r}, expected {expected}"
    assert fields.get("状态") == "未缴", fields
    with app.app_context():
        bill = db.session.get(Bill, bill_id)
        assert bill.amount == expected and bill.unit_id == estate["unit"] and bill.run_id == run_id
        db.session.remove()

    # --- Staff: the cash payment ------------------------------------------------------------
    _goto_ok(staff, "/payment/add")
    _select2_choose(staff, "unit", estate["unit_code"], typed=estate["unit_code"])
    staff.fill("#amount", str(expected))
    _select2_choose(staff, "method", "现金")
    staff.fill("#payer_name", estate["owner_name"])
    _saved(staff, "the payment")
    receipt_no = f"{estate['estate_code']}-{today.year}-000001"
    pay_id, _ = _open_row(staff, "/payment/list/", receipt_no, "payment")
    fields = _show_fields(staff)
    assert fields.get("收据号") == receipt_no, fields
    assert fields.get("金额") == str(expected), fields
    assert fields.get("付款方式") == "现金", fields
    assert fields.get("状态") == "有效", fields
    assert fields.get("该房屋预存余额") == "0.00", fields
    assert _workflow_status(staff) == "有效"
    settled = _related(staff, "冲抵账单")
    assert [r[:3] for r in settled] == [[period, item_name, str(expected)]], settled
    assert staff.locator("form.desk-void").count() == 1, "Staff may void a valid payment"
    staff.screenshot(path=str(artifacts / "fee-flow-4a-payment.png"), full_page=True)

    # --- Staff: the receipt -----------------------------------------------------------------
    link = staff.locator(".desk-actions a.desk-link[href*='/payment/receipt/']")
    assert link.count() == 1, "no 打印收据 link on the payment"
    with staff.context.expect_page() as popup:
        link.click()
    receipt = popup.value
    receipt.wait_for_load_state()
    assert urlsplit(receipt.url).path == f"/payment/receipt/{pay_id}", receipt.url
    assert receipt.locator("h1").inner_text().strip() == "收款收据"
    assert receipt.locator(".receipt-no").inner_text().strip() == receipt_no
    head = {
        th.strip(): td.strip()
        for th, td in receipt.eval_on_selector_all(
            "table.fields tr",
            "rows => rows.flatMap(r => { const c = [...r.children]; const out = [];"
            " for (let i = 0; i + 1 < c.length; i += 2) out.push([c[i].innerText, c[i + 1].innerText]); return out; })",
        )
    }
    assert head.get("交款人") == estate["owner_name"], head
    assert head.get("房屋") == f"{estate['estate_name']} {estate['unit_code']}", head
    assert head.get("付款方式") == "现金", head
    lines = [
        [c.strip() for c in r.locator("td").all_inner_texts()] for r in receipt.locator("table.lines tbody tr").all()
    ]
    assert lines == [["1", item_name, period, f"{expected:,.2f}"]], lines
    assert receipt.locator(".words").inner_text().strip() == EXPECTED_WORDS
    assert receipt.locator("table.lines tfoot th.num").inner_text().strip() == f"¥{expected:,.2f}"
    assert f"收款日期：{today:%Y年%m月%d日}" in receipt.locator(".meta").inner_text()
    receipt.screenshot(path=str(artifacts / "fee-flow-4-receipt.png"), full_page=True)
    receipt.emulate_media(media="print")
    assert not receipt.locator(".toolbar").is_visible(), "the toolbar would be printed"
    receipt.screenshot(path=str(artifacts / "fee-flow-5-receipt-print.png"), full_page=True)
    receipt.close()

    # --- the bill is paid -------------------------------------------------------------------
    _goto_ok(staff, f"/bill/show/{bill_id}")
    fields = _show_fields(staff)
    assert fields.get("状态") == "已缴清", fields
    assert fields.get("已收金额") == str(expected), fields
    assert fields.get("欠缴金额") == "0.00", fields
    assert _workflow_status(staff) == "已缴清"
    assert [r[0] for r in _related(staff, "收款记录")] == [receipt_no]
    assert staff.locator("form.desk-action").count() == 0, "Staff is offered a Manager's bill action"
    staff.screenshot(path=str(artifacts / "fee-flow-6-bill-paid.png"), full_page=True)
    _goto_ok(staff, "/bill/list/")
    row = staff.locator("table tbody tr", has_text=estate["unit_code"])
    assert "已缴清" in row.inner_text(), row.inner_text()


# --- the standard's page names its estates ------------------------------------------------------
def test_the_standard_page_names_its_estates(app, page, login, estate):
    from app.extensions import db
    from models.archives import Estate
    from models.fees import FeeItem, FeeStandard

    tag = _tag()
    with app.app_context():
        item = FeeItem(code=f"PX{tag}", name=f"电梯费{tag}", kind="elevator")
        std = FeeStandard(
            item=item,
            basis="per_unit_month",
            unit_price=Decimal("30.0000"),
            unit_uses=["residential"],
            effective_from=_office_today().replace(day=1),
            estates=[db.session.get(Estate, estate["estate"])],
        )
        db.session.add_all([item, std])
        db.session.commit()
        std_id = std.id
        db.session.remove()
    login(page, "Manager")
    _goto_ok(page, f"/fee_standard/show/{std_id}")
    shown = _show_fields(page).get("适用小区", "")
    assert shown == estate["estate_name"], f"适用小区 reads {shown!r}"


# --- arrears: the notice delivered, the late fee waived, the bill disputed ------------------------
def test_notice_waiver_and_dispute_on_the_pages(app, page, new_page, login, estate, artifacts):
    """An overdue bill with a late fee gets its dunning notice (the job, run in-process). The
    Supervisor opens the notice (its arrears listed, its letter printable) and marks it delivered
    on the page; Staff is offered no such form. The Manager waives part of the late fee and marks
    the bill disputed on the bill's page; what is owed follows. No Latin word on these pages."""
    from sqlalchemy import select

    from app.extensions import db
    from jobs.dunning import run_dunning
    from models.base import acting_as, system_user_id
    from models.fees import Bill, FeeItem
    from models.payments import DunningNotice

    tag = _tag()
    today = _office_today()
    issued = today - dt.timedelta(days=100)
    with app.app_context():
        with acting_as(system_user_id(db.session)):
            item = FeeItem(code=f"PL{tag}", name=f"停车费{tag}", kind="parking")
            db.session.add(item)
            db.session.flush()
            bill = Bill(
                estate_id=estate["estate"],
                unit_id=estate["unit"],
                owner_id=estate["owner"],
                item_id=item.id,
                period=f"{issued:%Y-%m}",
                source=f"停车-{tag}",
                quantity=Decimal(1),
                unit_price=Decimal("500.00"),
                amount=Decimal("500.00"),
                late_fee=Decimal("12.50"),
                issued_on=issued,
                due_date=issued + dt.timedelta(days=20),
            )
            db.session.add(bill)
            db.session.commit()
            bill_id = bill.id
            run_dunning(today, estate_id=estate["estate"])
        notice_id = db.session.execute(
            select(DunningNotice.id).where(DunningNotice.unit_id == estate["unit"])
        ).scalar_one()
        db.session.remove()

    # --- Supervisor: the notice, its letter, delivered ----------------------------------------
    supervisor = page
    login(supervisor, "Supervisor")
    _goto_ok(supervisor, f"/dunning_notice/show/{notice_id}")
    fields = _show_fields(supervisor)
    assert fields.get("房号") == estate["unit_code"] and fields.get("已送达") == "否", fields
    assert [r[:2] for r in _related(supervisor, "欠费明细")] == [[f"{issued:%Y-%m}", f"停车费{tag}"]]
    letter = supervisor.locator(".desk-actions a.desk-link[href*='/dunning_notice/letter/']")
    assert letter.count() == 1 and letter.get_attribute("target") == "_blank"
    printed = supervisor.request.get(letter.get_attribute("href"))
    assert printed.status == 200 and "催缴" in printed.text() and "伍佰" in printed.text(), printed.status
    _workflow_step(supervisor, "desk-mark-sent")
    assert _show_fields(supervisor).get("已送达") == "是"
    assert supervisor.locator("form.desk-mark-sent").count() == 0, "a delivered notice is offered delivery again"
    assert not _has_latin_word(_content(supervisor))
    supervisor.screenshot(path=str(artifacts / "fee-flow-7-dunning-notice.png"), full_page=True)
    staff = new_page()
    login(staff, "Staff")
    _goto_ok(staff, f"/dunning_notice/show/{notice_id}")
    assert staff.locator("form.desk-action").count() == 0, "Staff is offered a supervisor's step"

    # --- Manager: part of the late fee waived, then the bill disputed ---------------------------
    manager = new_page()
    login(manager, "Manager")
    _goto_ok(manager, f"/bill/show/{bill_id}")
    fields = _show_fields(manager)
    assert (fields.get("滞纳金"), fields.get("欠缴金额")) == ("12.50", "512.50"), fields
    waive = manager.locator("form.desk-waive")
    waive.locator("input[name=amount]").fill("2.50")
    waive.locator("[name=reason]").fill("疫情期间减免")
    with manager.expect_navigation():
        waive.locator("[type=submit]").click()
    assert manager.locator(".alert-danger").count() == 0, _flash(manager)
    fields = _show_fields(manager)
    assert (fields.get("减免滞纳金"), fields.get("欠缴金额"), fields.get("减免原因")) == ("2.50", "510.00", "疫情期间减免")
    dispute = manager.locator("form.desk-dispute")
    dispute.locator("select[name=disputed]").select_option(label="是")
    dispute.locator("[name=note]").fill("业主称车位已于上月退租")
    with manager.expect_navigation():
        dispute.locator("[type=submit]").click()
    assert manager.locator(".alert-danger").count() == 0, _flash(manager)
    fields = _show_fields(manager)
    assert (fields.get("有争议"), fields.get("争议说明")) == ("是", "业主称车位已于上月退租"), fields
    assert not _has_latin_word(_content(manager))
    manager.screenshot(path=str(artifacts / "fee-flow-8-bill-waived-disputed.png"), full_page=True)
    with app.app_context():
        bill = db.session.get(Bill, bill_id)
        assert bill.disputed and bill.late_fee_waived == Decimal("2.50") and bill.outstanding == Decimal("510.00")
        db.session.remove()
