"""Forms that help, in Chromium (issue 12, section 5), clicked from the menus, never typed as URLs:

- a Manager of one estate opens 收费管理 → 收费标准 → 新增: the estate is already chosen, 生效日期 is
  the office's today, 截止日期 is empty; saves it; declares it with a basis document named
  "装修图纸 v2.pdf", sees that name on the standard and downloads it under that name;
- on 计费批次 and 抄表记录 the period is a month picker on the current month (抄表日期 today); the
  reading's fee item starts on 请选择 (two items are metered here) and becomes the unit's one
  metered item when the unit is picked;
- the company's Manager opens 审计 → 变更记录 and reads the entries in words (收费标准, 生效日期,
  住宅, the document's name, local times; no table names, no ``_id``, no dicts), opens one, and
  reads it again in English.

Full-page screenshots: tests/browser/shots/forms-*.png.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.browser.conftest import sign_in
from tests.browser.test_desk_flow import _flash, _form_errors, _save, _select2_choose, _show_fields
from tests.browser.test_screens import _switch_language
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser

SHOTS = Path(__file__).resolve().parent / "shots"
DOCUMENT = "装修图纸 v2.pdf"


def _today() -> dt.date:
    return dt.datetime.now(ZoneInfo("Asia/Shanghai")).date()


def _shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"forms-{name}.png"), full_page=True)


def _menu(page, category: str, item: str) -> None:
    page.locator("ul.nav a.dropdown-toggle", has_text=category).first.click()
    with page.expect_navigation():
        page.locator("ul.dropdown-menu:visible a", has_text=item).first.click()


def _add_from_list(page, resource: str) -> None:
    with page.expect_navigation():
        page.locator(f"a[href^='/{resource}/add']").first.click()
    assert page.url.split("?")[0].endswith(f"/{resource}/add"), page.url


def _watch(page) -> list[str]:
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    return problems


@pytest.fixture()
def one_estate(app, make_unit) -> dict:
    """An estate with a unit, a fee item, and a Manager who works for that estate only."""
    from app.extensions import db
    from app.seed import ensure_user
    from models.archives import Estate, Unit
    from models.base import acting_as, system_user_id
    from models.fees import FeeItem, FeeStandard

    tag = uuid.uuid4().hex[:6]
    ids = make_unit()
    with app.app_context():
        with acting_as(system_user_id(db.session)):
            item = FeeItem(code=f"FH{tag}", name=f"物业服务费{tag}", kind="property_service")
            estate = db.session.get(Estate, ids["estate"])
            # Two metered items in the estate, water for homes, power for shops: the reading form
            # cannot guess the item until a unit is chosen.
            metered = {}
            for kind, label, uses in (("water", "水费", ["residential"]), ("electricity", "电费", ["commercial"])):
                it = FeeItem(code=f"FM{kind[:2]}{tag}", name=f"{label}{tag}", kind=kind)
                std = FeeStandard(item=it, basis="per_quantity", unit_price=2, unit_uses=uses, status="approved",
                                  effective_from=_today() - dt.timedelta(days=60))
                std.estates = [estate]
                db.session.add_all([it, std])
                metered[kind] = it
            db.session.add(item)
            db.session.commit()
        ensure_user(app.appbuilder.sm, f"manager_a{tag}", "Manager", "经理", "甲", PASSWORD, estates=[ids["estate"]])
        data = {
            **ids, "estate_name": estate.name, "item": item.id, "item_name": item.name, "manager_a": f"manager_a{tag}",
            "unit_code": db.session.get(Unit, ids["unit"]).code, "water": metered["water"].id,
            "water_name": metered["water"].name,
        }
        db.session.remove()
    return data


def test_forms_start_on_the_usual_answer_and_the_change_log_reads_as_words(
    app, page, new_page, one_estate, tmp_path, monkeypatch
):
    from app.extensions import db
    from models.fees import FeeStandard

    monkeypatch.setitem(app.config, "INSTANCE_DIR", tmp_path)  # uploads go to the test's own folder
    today, month = _today(), f"{_today():%Y-%m}"
    problems = _watch(page)

    # --- a Manager of one estate: a fee standard ------------------------------------------------
    sign_in(page, one_estate["manager_a"])
    _menu(page, "收费管理", "收费标准")
    _add_from_list(page, "fee_standard")
    assert page.input_value("#effective_from") == today.isoformat(), "生效日期 should start on today"
    assert page.get_attribute("#effective_from", "type") == "date"
    assert page.input_value("#effective_to") == "", "截止日期 starts empty"
    chosen = page.locator("#estates + .select2-container .select2-selection__choice").all_inner_texts()
    assert [c.strip("×\n ") for c in chosen] == [one_estate["estate_name"]], f"the only estate is chosen: {chosen}"
    _shot(page, "fee-standard-add")

    _select2_choose(page, "item", one_estate["item_name"])
    _select2_choose(page, "basis", "按户每月（元/户·月）")
    page.fill("#unit_price", "45.5000")
    resp = _save(page)
    assert resp.status == 200 and page.locator(".alert-success").count() >= 1, f"{_form_errors(page)} {_flash(page)}"
    with app.app_context():
        std = db.session.query(FeeStandard).filter_by(item_id=one_estate["item"]).one()
        assert [e.id for e in std.estates] == [one_estate["estate"]] and std.effective_from == today
        std_id = std.id
        db.session.remove()

    # Its page, declared with a basis document: the document is named as it was uploaded.
    row = page.locator("table tbody tr", has_text=one_estate["item_name"])
    with page.expect_navigation():
        row.locator("a[href*='/fee_standard/show/']").first.click()
    document = tmp_path / DOCUMENT
    document.write_bytes(b"%PDF-1.4\n% drawings\n%%EOF\n")
    form = page.locator("form.desk-declare")
    form.locator("input[type=file][name=document]").set_input_files(str(document))
    with page.expect_navigation():
        form.locator("[type=submit]").click()
    assert page.locator(".alert-success").count() >= 1, _flash(page)
    fields = _show_fields(page)
    assert fields.get("依据文件") == DOCUMENT, fields
    assert fields.get("生效日期") == today.isoformat(), fields
    assert not re.search(r"[0-9a-f]{32}", page.content()), "a storage name is shown"
    with page.expect_download() as download:
        page.locator("a.desk-link", has_text="下载依据文件").click()
    assert download.value.suggested_filename == DOCUMENT
    _shot(page, "fee-standard-saved")

    # --- periods are months on the current one ----------------------------------------------------
    _menu(page, "收费管理", "计费批次")
    _add_from_list(page, "billing_run")
    assert page.get_attribute("#period", "type") == "month" and page.input_value("#period") == month
    assert one_estate["estate_name"] in page.locator("#select2-estate-container").inner_text()
    _shot(page, "billing-run-add")
    _menu(page, "收费管理", "抄表记录")
    _add_from_list(page, "meter_reading")
    assert page.get_attribute("#period", "type") == "month" and page.input_value("#period") == month
    assert page.input_value("#read_on") == today.isoformat()
    assert page.input_value("#item") == "__None", "two items are metered here: the form must not guess"
    assert page.locator("#select2-item-container").inner_text().strip().endswith("请选择")
    _select2_choose(page, "unit", one_estate["unit_code"], typed=one_estate["unit_code"][-6:])
    page.wait_for_function("() => document.querySelector('#item').value !== '__None'")
    assert page.input_value("#item") == str(one_estate["water"]), "a home's metered item is its water"
    assert one_estate["water_name"] in page.locator("#select2-item-container").inner_text()
    _shot(page, "meter-reading-add")
    assert not problems, problems

    # --- the company's Manager: the change log, in words ----------------------------------------
    manager = new_page()
    problems = _watch(manager)
    sign_in(manager, "Manager")
    _menu(manager, "审计", "变更记录")
    rows = manager.locator("table tbody tr", has_text=one_estate["item_name"])
    rows.first.wait_for()
    words = "\n".join(rows.all_inner_texts())
    for expected in ("收费标准", "新增", "修改", "生效日期", today.isoformat(), "住宅", "草稿 → 已申报", DOCUMENT):
        assert expected in words, f"{expected!r} not in the change log rows:\n{words}"
    for raw in ("fee_standard", "_id", "{'", "+00:00", "residential", "per_unit_month"):
        assert raw not in words, f"{raw!r} in the change log rows:\n{words}"
    assert re.search(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}", words), "times read as local date and minute"
    _shot(manager, "change-log")

    declared = manager.locator("table tbody tr", has_text="草稿 → 已申报").first
    with manager.expect_navigation():
        declared.locator("a[href*='/change_log/show/']").first.click()
    fields = _show_fields(manager)
    assert fields.get("对象") == "收费标准", fields
    assert one_estate["item_name"] in fields.get("记录", ""), fields
    assert DOCUMENT in fields.get("变更内容（原值 → 新值）", ""), fields
    _shot(manager, "change-log-entry")
    with manager.expect_navigation():
        manager.locator(f"a[href='/fee_standard/show/{std_id}']").first.click()  # the record, one click away
    assert _show_fields(manager).get("依据文件") == DOCUMENT

    # English mode: the same entry in English.
    manager.go_back()
    _switch_language(manager, "en")
    _menu(manager, "Audit", "Change history")
    row = manager.locator("table tbody tr", has_text="Draft → Declared for approval").first
    words = row.inner_text()
    assert "Fee standards" in words and "Basis document" in words and DOCUMENT in words, words
    _shot(manager, "change-log-en")
    _switch_language(manager, "zh")
    assert not problems, problems

    # A Manager of one estate: the change log belongs to company-level users (views/scope.py).
    _menu(page, "审计", "变更记录")
    assert page.locator("table tbody tr", has_text=one_estate["item_name"]).count() == 0
    _shot(page, "change-log-one-estate")
