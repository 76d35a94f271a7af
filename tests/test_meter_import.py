"""Excel in for meter readings (抄表记录导入): Chinese headers, dry run by row and field, the
previous reading from the database or from the file, meter replacements, all or nothing."""

from __future__ import annotations

import datetime as dt
import io
import uuid
from decimal import Decimal

import pytest
from openpyxl import Workbook, load_workbook
from sqlalchemy import func, select

HEADERS = ["楼栋", "房号", "收费项目编码", "账期(YYYY-MM)", "抄表日期", "本期读数", "是否换表(是/否)"]
JSON = {"Accept": "application/json"}
URL = "/meter_reading/import/"


def xlsx(rows, headers=HEADERS) -> bytes:
    wb = Workbook(write_only=True)
    ws = wb.create_sheet("抄表")
    ws.append(headers)
    for r in rows:
        ws.append(r)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def post(client, estate_id, data: bytes, dry_run: bool, json=True):
    form = {"estate_id": str(estate_id), "file": (io.BytesIO(data), "readings.xlsx")}
    if dry_run:
        form["dry_run"] = "y"
    return client.post(URL, data=form, content_type="multipart/form-data", headers=JSON if json else {})


@pytest.fixture()
def meter(app, make_unit):
    """An estate with two units (building 1), a metered item (an approved per-quantity standard)
    with a January reading of 100 on the first unit, an item billed by area, an inactive item."""
    from app.extensions import db
    from models.archives import Building, Unit
    from models.base import acting_as, system_user_id
    from models.fees import FeeItem, FeeStandard, MeterReading, next_revision

    ids = make_unit(with_owner=False)
    tag = uuid.uuid4().hex[:8].upper()
    with app.app_context():
        sys_id = system_user_id(db.session)
        with acting_as(sys_id):
            first = db.session.get(Unit, ids["unit"])
            other = Building(estate_id=ids["estate"], code="2")
            second = Unit(building=other, estate_id=ids["estate"], code=f"2-1-{tag}", gross_area=Decimal("70"))
            water = FeeItem(code=f"W{tag}", name=f"水费{tag}", kind="water")
            area = FeeItem(code=f"P{tag}", name=f"物业费{tag}", kind="property_service")
            off = FeeItem(code=f"X{tag}", name=f"停用{tag}", kind="water", active=False)
            db.session.add_all([other, second, water, area, off])
            db.session.flush()
            for item, basis in ((water, "per_quantity"), (area, "per_area_month"), (off, "per_quantity")):
                std = FeeStandard(
                    item_id=item.id,
                    revision=next_revision(db.session, item.id),
                    basis=basis,
                    unit_price=Decimal("4.5"),
                    rounding="half_up_cent",
                    unit_uses=["residential"],
                    effective_from=dt.date(2026, 1, 1),
                    estates=[first.estate],
                    status="draft",
                )
                db.session.add(std)
                db.session.flush()
                std.declare("fee_standard/test.pdf")
                std.approve(sys_id)
            db.session.add(
                MeterReading(
                    unit_id=first.id, item_id=water.id, period="2026-01", read_on=dt.date(2026, 1, 25),
                    reading=Decimal("100"),
                )
            )  # fmt: skip
            db.session.commit()
        out = {
            "estate": ids["estate"],
            "u1": first.code,
            "u1_id": first.id,
            "u2": second.code,
            "u2_id": second.id,
            "water": water.code,
            "water_id": water.id,
            "area": area.code,
            "off": off.code,
        }
        db.session.remove()
    return out


def readings(app, item_code: str) -> dict[tuple[int, str], object]:
    from app.extensions import db
    from models.fees import FeeItem, MeterReading

    with app.app_context():
        rows = db.session.execute(
            select(MeterReading).join(FeeItem, FeeItem.id == MeterReading.item_id).where(FeeItem.code == item_code)
        ).scalars()
        found = {(r.unit_id, r.period): r for r in rows}
        for r in found.values():
            db.session.expunge(r)
        db.session.remove()
    return found


# --- the template ------------------------------------------------------------------------------
def test_template_has_the_chinese_headers(web):
    client = web("Staff")
    resp = client.get(URL + "template.xlsx")
    assert resp.status_code == 200
    assert resp.mimetype.endswith("spreadsheetml.sheet")
    wb = load_workbook(io.BytesIO(resp.data))
    header = [c.value for c in wb.worksheets[0][1]]
    assert header == ["楼栋", "房号", "收费项目编码", "账期", "抄表日期", "本期读数", "是否换表"]
    example = dict(zip(header, [c.value for c in wb.worksheets[0][2]], strict=True))
    assert example["账期"] == "2026-03" and example["是否换表"] == "否"
    assert any("YYYY-MM" in str(r[2]) for r in wb.worksheets[1].iter_rows(values_only=True))
    # the list and the form offer it
    assert URL in client.get("/meter_reading/list/").get_data(as_text=True)
    form = client.get(URL).get_data(as_text=True)
    assert 'name="estate_id"' in form and URL + "template.xlsx" in form


# --- checks ------------------------------------------------------------------------------------
def test_dry_run_lists_every_bad_row_and_writes_nothing(app, web, meter):
    m = meter
    rows = [
        ["1", m["u1"], m["water"], "2026-02", "2026-02-25", 120, "否"],  # 2: good
        ["1", "NO-SUCH", m["water"], "2026-02", "2026-02-25", 1, None],  # 3: unit not in the estate
        ["1", m["u2"], m["water"], "2026-02", "2026-02-25", 1, None],  # 4: u2 is in building 2
        [None, m["u2"], "NOPE", "2026-02", "2026-02-25", 1, None],  # 5: no such item
        [None, m["u2"], m["area"], "2026-02", "2026-02-25", 1, None],  # 6: not metered
        [None, m["u2"], m["off"], "2026-02", "2026-02-25", 1, None],  # 7: inactive item
        [None, m["u2"], m["water"], "2026-13", "2026-02-30", -1, "也许"],  # 8: period, date, reading, flag
        [None, m["u2"], m["water"], "2026-04", "2026-04-25", "12.345", None],  # 9: 3 decimals
        ["1", m["u1"], m["water"], "2026-02", "2026-02-26", 130, None],  # 10: repeats row 2
        ["1", m["u1"], m["water"], "2026-01", "2026-01-25", 100, None],  # 11: already in the database
        ["1", m["u1"], m["water"], "2026-03", "2026-03-25", 110, "否"],  # 12: below row 2 (120)
        [None, None, None, 2026.1, None, "一百", None],  # 13: unit, item, read_on required; period; number
    ]
    resp = post(web("Staff"), m["estate"], xlsx(rows), dry_run=True)
    assert resp.status_code == 422
    body = resp.json
    assert not body["ok"] and body["dry_run"]
    found = {(e["row"], e["field"]) for e in body["errors"]}
    expected = {
        (3, "unit"),
        (4, "building"),
        (5, "item"),
        (6, "item"),
        (7, "item"),
        (8, "period"),
        (8, "read_on"),
        (8, "reading"),
        (8, "is_replacement"),
        (9, "reading"),
        (10, "period"),
        (11, "period"),
        (12, "reading"),
        (13, "unit"),
        (13, "item"),
        (13, "period"),
        (13, "read_on"),
        (13, "reading"),
    }
    assert found == expected, body["errors"]
    texts = [e["text"] for e in body["errors"]]
    assert "第 3 行 房号: 所选小区没有此房号" in texts
    assert any(t.startswith("第 6 行 收费项目编码: 该收费项目不是计量收费") for t in texts)
    assert "第 8 行 本期读数: 读数不能为负数" in texts
    assert "第 9 行 本期读数: 最多 2 位小数" in texts
    assert any(t.startswith("第 10 行 账期: 与第 2 行重复") for t in texts)
    assert "第 11 行 账期: 该房屋该收费项目此账期已有抄表记录" in texts
    assert any(t.startswith("第 12 行 本期读数: 读数低于上期（120.00）（第 2 行）") for t in texts)
    assert set(readings(app, m["water"])) == {(m["u1_id"], "2026-01")}  # nothing written

    # the screen lists the same rows
    page = post(web("Staff"), m["estate"], xlsx(rows), dry_run=True, json=False)
    assert page.status_code == 422
    html = page.get_data(as_text=True)
    assert "第 12 行" in html and "读数低于上期" in html


def test_below_previous_refused_unless_marked_replacement(app, web, meter):
    m = meter
    client = web("Staff")
    below = [["1", m["u1"], m["water"], "2026-02", "2026-02-25", 40, "否"]]
    resp = post(client, m["estate"], xlsx(below), dry_run=True)
    assert resp.status_code == 422
    assert [(e["row"], e["field"]) for e in resp.json["errors"]] == [(2, "reading")]
    assert resp.json["errors"][0]["message"].startswith("读数低于上期（100.00）；如已换表")
    blank = [["1", m["u1"], m["water"], "2026-02", "2026-02-25", 40, None]]  # blank is 否
    assert post(client, m["estate"], xlsx(blank), dry_run=True).status_code == 422

    replaced = [["1", m["u1"], m["water"], "2026-02", "2026-02-25", 40, "是"]]
    dry = post(client, m["estate"], xlsx(replaced), dry_run=True)
    assert dry.status_code == 200, dry.json
    assert dry.json["counts"] == {"meter_reading": 1, "replacement": 1}
    assert len(readings(app, m["water"])) == 1  # the dry run wrote nothing
    resp = post(client, m["estate"], xlsx(replaced), dry_run=False)
    assert resp.status_code == 200, resp.json
    r = readings(app, m["water"])[(m["u1_id"], "2026-02")]
    # as MeterReading.check: the previous reading is kept, the quantity is the new meter's reading
    assert r.is_replacement and r.previous_reading == Decimal("100.00") and r.quantity == Decimal("40.00")


def test_one_bad_row_imports_nothing(app, web, meter):
    m = meter
    rows = [["1", m["u1"], m["water"], f"2027-{i:02d}", f"2027-{i:02d}-20", 200 + i * 10, None] for i in range(1, 13)]
    rows.insert(6, [None, m["u2"], m["water"], "2027-01", "2027-01-20", "十二", None])
    resp = post(web("Staff"), m["estate"], xlsx(rows), dry_run=False)
    assert resp.status_code == 422
    assert [(e["row"], e["field"]) for e in resp.json["errors"]] == [(8, "reading")]
    assert set(readings(app, m["water"])) == {(m["u1_id"], "2026-01")}


# --- a real import -----------------------------------------------------------------------------
def test_good_file_imports_readings_with_previous_and_quantity(app, web, meter):
    from app.extensions import db
    from models.base import ChangeLog
    from tests.test_excel_import import user_id

    m = meter
    rows = [
        # out of period order on purpose: the previous reading is the latest earlier period
        ["1", m["u1"], m["water"], "2026-03", dt.date(2026, 3, 25), 170, "否"],
        ["1", m["u1"], m["water"], dt.date(2026, 2, 1), "2026/02/25", "150.5", None],  # Excel made it a date
        ["2", m["u2"], m["water"], "2026年2月", dt.date(2026, 2, 25), 30, "否"],
        [None, m["u2"], m["water"], "202603", dt.date(2026, 3, 25), 5.25, "是"],
    ]
    resp = post(web("Staff"), m["estate"], xlsx(rows), dry_run=False)
    assert resp.status_code == 200, resp.json
    assert resp.json["ok"] and resp.json["counts"] == {"meter_reading": 4, "replacement": 1}
    got = readings(app, m["water"])
    expect = {
        (m["u1_id"], "2026-02"): (Decimal("100.00"), Decimal("150.50"), Decimal("50.50"), False),
        (m["u1_id"], "2026-03"): (Decimal("150.50"), Decimal("170.00"), Decimal("19.50"), False),
        (m["u2_id"], "2026-02"): (None, Decimal("30.00"), Decimal("30.00"), False),
        (m["u2_id"], "2026-03"): (Decimal("30.00"), Decimal("5.25"), Decimal("5.25"), True),
    }
    for key, (prev, reading, qty, replaced) in expect.items():
        r = got[key]
        assert (r.previous_reading, r.reading, r.quantity, r.is_replacement) == (prev, reading, qty, replaced), key
    assert got[(m["u1_id"], "2026-02")].read_on == dt.date(2026, 2, 25)
    staff = user_id(app, "staff")
    new_ids = [r.id for k, r in got.items() if k in expect]
    assert {got[k].created_by_id for k in expect} == {staff}
    with app.app_context():
        logs = (
            db.session.execute(
                select(ChangeLog).where(ChangeLog.table_name == "meter_reading", ChangeLog.row_id.in_(new_ids))
            )
            .scalars()
            .all()
        )
        assert len(logs) == 4 and {(lg.action, lg.user_id) for lg in logs} == {("insert", staff)}
        db.session.remove()

    # The same file again: every row is already in the database.
    again = post(web("Staff"), m["estate"], xlsx(rows), dry_run=True)
    assert again.status_code == 422
    assert {(e["row"], e["field"]) for e in again.json["errors"]} == {(n, "period") for n in range(2, 6)}
    # A later month reads its previous reading from what was imported.
    later = [["1", m["u1"], m["water"], "2026-04", "2026-04-25", 171, None]]
    assert post(web("Staff"), m["estate"], xlsx(later), dry_run=False).status_code == 200
    assert readings(app, m["water"])[(m["u1_id"], "2026-04")].quantity == Decimal("1.00")
    # A unit of another estate is not found.
    from models.fees import MeterReading

    other = post(web("Staff"), m["estate"] + 100000, xlsx(later), dry_run=True)
    assert other.status_code == 422 and other.json["errors"][0]["field"] == "estate"
    with app.app_context():
        n = db.session.execute(
            select(func.count()).select_from(MeterReading).where(MeterReading.item_id == m["water_id"])
        ).scalar()
        db.session.remove()
    assert n == 6


def test_committee_may_not_import(web, meter):
    client = web("Committee")
    assert client.get(URL).status_code == 403
    assert client.get(URL + "template.xlsx").status_code == 403  # no read right on readings either
    rows = [["1", meter["u1"], meter["water"], "2026-02", "2026-02-25", 120, None]]
    assert post(client, meter["estate"], xlsx(rows), dry_run=True).status_code == 403
