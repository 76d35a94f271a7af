"""Excel in (units with their owners, Chinese headers) and Excel out (filters, masking), on the
real PostgreSQL database."""

from __future__ import annotations

import datetime as dt
import io
import random
import time
import uuid
from decimal import Decimal

import pytest
from openpyxl import Workbook, load_workbook
from sqlalchemy import func, select

HEADERS = [
    "楼栋",
    "房号",
    "楼层",
    "建筑面积",
    "用途",
    "状态",
    "交房日期",
    "业主姓名",
    "业主手机",
    "身份证号",
    "产权份额",
]
JSON = {"Accept": "application/json"}
_id_base = random.Random().randrange(20_000_000, 150_000_000)


def id_numbers(n: int) -> list[str]:
    """n valid ID numbers that no other test uses."""
    global _id_base
    from app.seed import unique_id_number

    start, _id_base = _id_base, _id_base + n
    return [unique_id_number(start + i) for i in range(n)]


def xlsx(rows, headers=HEADERS) -> bytes:
    wb = Workbook(write_only=True)
    ws = wb.create_sheet("导入")
    ws.append(headers)
    for row in rows:
        ws.append(row)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def row(building="1", code=None, floor=1, area=88.5, use="住宅", status="自住", handover="2019-06-30",
        name="王伟", phone="13800138000", id_number=None, share=None):  # fmt: skip
    return [building, code or f"1-1-{uuid.uuid4().hex[:6]}", floor, area, use, status, handover, name, phone,
            id_number, share]  # fmt: skip


@pytest.fixture()
def estate(app):
    """A fresh estate with one building ("1") and one unit ("EXIST-1")."""
    from app.extensions import db
    from models.archives import Building, Estate, Unit

    tag = uuid.uuid4().hex[:6]
    with app.app_context():
        e = Estate(code=f"IMP{tag}", name=f"导入测试{tag}")
        b = Building(estate=e, code="1")
        db.session.add_all([e, b, Unit(building=b, code="EXIST-1", gross_area=Decimal("90"))])
        db.session.commit()
        ids = {"id": e.id, "building": b.id}
        db.session.remove()
    return ids


def post(client, estate_id, data: bytes, dry_run: bool, json=True):
    form = {"estate_id": str(estate_id), "file": (io.BytesIO(data), "units.xlsx")}
    if dry_run:
        form["dry_run"] = "y"
    return client.post("/unit/import/", data=form, content_type="multipart/form-data", headers=JSON if json else {})


def count(app, model, *where) -> int:
    from app.extensions import db

    with app.app_context():
        n = db.session.execute(select(func.count()).select_from(model).where(*where)).scalar()
        db.session.remove()
        return n


def user_id(app, username: str) -> int:
    from flask_appbuilder.security.sqla.models import User

    from app.extensions import db

    with app.app_context():
        uid = db.session.execute(select(User.id).where(User.username == username)).scalar()
        db.session.remove()
        return uid


# --- the template ------------------------------------------------------------------------------
def test_template_has_the_chinese_headers_and_an_example(web, estate):
    # The template is for those who import (the write right); the Committee never imports.
    assert web("Committee").get("/unit/import/template.xlsx").status_code == 403
    resp = web("Staff").get("/unit/import/template.xlsx")
    assert resp.status_code == 200
    assert resp.mimetype.endswith("spreadsheetml.sheet")
    ws = load_workbook(io.BytesIO(resp.data)).worksheets[0]
    header = [c.value for c in ws[1]]
    for name in (
        "楼栋",
        "房号",
        "楼层",
        "建筑面积",
        "用途",
        "状态",
        "交房日期",
        "业主姓名",
        "联系电话",
        "身份证号",
        "产权份额",
    ):
        assert name in header
    example = dict(zip(header, [c.value for c in ws[2]], strict=True))
    assert example["房号"] and example["用途"] == "住宅"
    # The template as downloaded passes the dry run.
    body = post(web("Staff"), estate["id"], resp.data, dry_run=True).json
    assert body["ok"], body["errors"]
    assert body["counts"]["unit"] == 1


def test_list_and_form_offer_the_import(web):
    page = web("Staff").get("/unit/list/").get_data(as_text=True)
    assert "/unit/import/" in page
    form = web("Staff").get("/unit/import/")
    assert form.status_code == 200
    text = form.get_data(as_text=True)
    assert 'name="estate_id"' in text and 'name="file"' in text and 'name="dry_run"' in text
    assert "/unit/import/template.xlsx" in text
    assert "/unit/import/" not in web("Committee").get("/unit/list/").get_data(as_text=True)


# --- checks ------------------------------------------------------------------------------------
def test_dry_run_lists_every_bad_row_and_writes_nothing(app, web, estate):
    from models.archives import Unit

    ids = id_numbers(3)
    rows = [
        row(code="A-101", id_number=ids[0]),  # 2: good
        row(code="A-102", area=-5),  # 3: area
        row(code="A-103", use="别墅"),  # 4: use
        row(code="A-104", phone="12345"),  # 5: phone
        row(code="A-105", id_number="110101199003071235"),  # 6: ID check digit
        row(code="A-101", area=120),  # 7: same unit as row 2, other data
        row(code="EXIST-1"),  # 8: already in the estate
        ["1", None, 1, 88.5, "住宅", "自住", "2019-06-30", "李娜", None, None, None],  # 9: code, phone
        row(code="A-109", handover="2019-13-45", status="拆迁"),  # 10: date, status
        row(code="A-110", name="张伟", id_number=ids[0]),  # 11: same ID as row 2, other name
        row(code="A-111", share=150),  # 12: share
    ]
    resp = post(web("Staff"), estate["id"], xlsx(rows), dry_run=True)
    assert resp.status_code == 422
    body = resp.json
    assert not body["ok"] and body["dry_run"]
    found = {(e["row"], e["field"]) for e in body["errors"]}
    expected = {
        (3, "gross_area"),
        (4, "use"),
        (5, "owner_phone"),
        (6, "owner_id_number"),
        (7, "code"),
        (8, "code"),
        (9, "code"),
        (9, "owner_phone"),
        (10, "handover_date"),
        (10, "status"),
        (11, "owner_id_number"),
        (12, "share"),
    }
    assert expected <= found, body["errors"]
    assert not any(e["row"] == 2 for e in body["errors"])
    texts = [e["text"] for e in body["errors"]]
    assert "第 3 行 建筑面积: 必须大于 0" in texts
    assert any(t.startswith("第 7 行 房号: 与第 2 行房号重复") for t in texts)
    assert "第 8 行 房号: 该小区已有此房号" in texts
    assert count(app, Unit, Unit.estate_id == estate["id"]) == 1  # only EXIST-1

    # The screen shows the same list, in English too.
    page = post(web("Staff"), estate["id"], xlsx(rows), dry_run=True, json=False)
    assert page.status_code == 422
    html = page.get_data(as_text=True)
    assert "第 3 行" in html and "必须大于 0" in html
    en = (
        web("Staff")
        .post(
            "/unit/import/?_l_=en",
            data={"estate_id": str(estate["id"]), "dry_run": "y", "file": (io.BytesIO(xlsx(rows)), "u.xlsx")},
            content_type="multipart/form-data",
            headers=JSON,
        )
        .json
    )
    assert "Row 3, Gross area: Must be greater than 0" in [e["text"] for e in en["errors"]]


def test_bad_files_are_refused(web, estate):
    client = web("Staff")
    body = post(client, estate["id"], b"not a workbook", dry_run=True).json
    assert body["errors"][0]["row"] == 0
    resp = post(client, estate["id"], xlsx([["1", "X-1"]], headers=["楼栋", "房号"]), dry_run=True)
    assert resp.status_code == 422
    assert {e["field"] for e in resp.json["errors"]} == {"gross_area"}  # a required column is missing
    assert post(client, estate["id"], xlsx([]), dry_run=True).status_code == 422
    assert post(client, "", xlsx([row()]), dry_run=True).status_code == 422  # no estate chosen


def test_one_bad_row_imports_nothing(app, web, estate):
    from models.archives import Building, Owner, Unit

    ids = id_numbers(20)
    rows = [row(building="9", code=f"9-1-{i:03d}", id_number=ids[i]) for i in range(20)]
    rows.insert(13, row(building="9", code="9-1-BAD", area="大约九十"))
    resp = post(web("Staff"), estate["id"], xlsx(rows), dry_run=False)
    assert resp.status_code == 422
    assert [(e["row"], e["field"]) for e in resp.json["errors"]] == [(15, "gross_area")]
    assert count(app, Unit, Unit.estate_id == estate["id"]) == 1
    assert count(app, Building, Building.estate_id == estate["id"]) == 1  # building 9 not created
    assert count(app, Owner, Owner.id_number.in_(ids)) == 0


# --- a real import -----------------------------------------------------------------------------
def test_good_file_imports_units_buildings_owners_and_ownerships(app, web, estate):
    from app.extensions import db
    from models.archives import Building, Owner, Ownership, Unit
    from models.base import ChangeLog

    a, b, c, existing = id_numbers(4)
    with app.app_context():  # an owner the office already knows
        db.session.add(Owner(name="赵敏", phone="13900000001", id_number=existing))
        db.session.commit()
        db.session.remove()
    rows = [
        row(building="1", code="1-1-201", name="陈静", phone="13811112222", id_number=a),
        row(building="2", code="2-1-101", name="陈静", phone="13811112222", id_number=a, handover=dt.date(2020, 1, 2)),
        row(building="2", code="2-1-102", name="刘洋", phone="13633334444", use="commercial", status="出租"),
        row(building="3", code="3-1-101", name="刘洋", phone="136 3333 4444", area="66.6", floor="1"),
        row(building="3", code="3-1-102", name="黄磊", phone="13755556666", id_number=b, share=50),
        row(building="3", code="3-1-102", name="黄丽", phone="0755-26881234", id_number=c, share="50%"),
        row(building="3", code="3-1-103", name="赵敏", phone="13900000001", id_number=existing),
        row(building=3, code="3-1-104", name=None, phone=None, status="待售", handover=None),
    ]
    resp = post(web("Staff"), estate["id"], xlsx(rows), dry_run=False)
    assert resp.status_code == 200, resp.json
    body = resp.json
    assert body["ok"] and not body["dry_run"]
    assert body["counts"] == {"building": 2, "unit": 7, "owner": 4, "owner_matched": 1, "ownership": 7}
    staff = user_id(app, "staff")
    with app.app_context():
        s = db.session
        units = {u.code: u for u in s.execute(select(Unit).where(Unit.estate_id == estate["id"])).scalars()}
        assert set(units) == {"EXIST-1", "1-1-201", "2-1-101", "2-1-102", "3-1-101", "3-1-102", "3-1-103", "3-1-104"}
        assert units["1-1-201"].building_id == estate["building"]  # existing building reused
        codes = set(s.execute(select(Building.code).where(Building.estate_id == estate["id"])).scalars())
        assert codes == {"1", "2", "3"}
        assert units["2-1-102"].use == "commercial" and units["2-1-102"].status == "rented"
        assert units["2-1-101"].handover_date == dt.date(2020, 1, 2)
        assert units["3-1-101"].gross_area == Decimal("66.60") and units["3-1-101"].floor == 1
        assert units["3-1-104"].status == "unsold" and units["3-1-104"].owners == []
        # one owner, two units: by ID number, and by name and phone without one
        chen = s.execute(select(Owner).where(Owner.id_number == a)).scalars().one()
        assert sorted(u.code for u in chen.units) == ["1-1-201", "2-1-101"]
        liu = s.execute(select(Owner).where(Owner.name == "刘洋", Owner.phone == "13633334444")).scalars().all()
        assert len(liu) == 1 and sorted(u.code for u in liu[0].units) == ["2-1-102", "3-1-101"]
        # co-owners and an owner matched in the database
        shares = sorted(o.share for o in units["3-1-102"].ownerships)
        assert shares == [Decimal("50"), Decimal("50")]
        assert [o.name for o in units["3-1-103"].owners] == ["赵敏"]
        assert count(app, Owner, Owner.id_number == existing) == 1
        # audit columns and the change log name the person who imported
        new_unit_ids = [u.id for code, u in units.items() if code != "EXIST-1"]
        assert {u.created_by_id for code, u in units.items() if code != "EXIST-1"} == {staff}
        assert {u.changed_by_id for code, u in units.items() if code != "EXIST-1"} == {staff}
        logs = (
            s.execute(select(ChangeLog).where(ChangeLog.table_name == "unit", ChangeLog.row_id.in_(new_unit_ids)))
            .scalars()
            .all()
        )
        assert len(logs) == 7 and {(lg.action, lg.user_id) for lg in logs} == {("insert", staff)}
        assert next(lg for lg in logs if lg.row_id == units["3-1-101"].id).changes["gross_area"] == [None, "66.6"]
        own_ids = [o.id for u in units.values() for o in u.ownerships]
        assert count(app, ChangeLog, ChangeLog.table_name == "ownership", ChangeLog.row_id.in_(own_ids)) == 7
        db.session.remove()
    assert count(app, Ownership, Ownership.unit_id.in_(new_unit_ids)) == 7

    # Importing the same file again: every unit is now a duplicate of the database.
    again = post(web("Staff"), estate["id"], xlsx(rows), dry_run=False)
    assert again.status_code == 422
    assert {e["row"] for e in again.json["errors"]} == set(range(2, 10))


def test_committee_may_not_import(web, estate):
    client = web("Committee")
    assert client.get("/unit/import/").status_code == 403
    assert post(client, estate["id"], xlsx([row()]), dry_run=True).status_code == 403


def test_ten_thousand_rows_import_in_seconds(app, web, estate):
    from models.archives import Owner, Ownership, Unit

    n = 10_000
    ids = id_numbers(n)
    rng = random.Random(3)
    rows = []
    for i in range(n):
        b, rest = divmod(i, 240)
        owner = i - 1 if i % 12 == 11 else i  # every 12th owner owns two units; building 1 exists
        rows.append(
            [str(b + 1), f"{b + 1}-{rest // 120 + 1}-{rest % 120:03d}", rest % 30 + 1,
             round(rng.uniform(45, 180), 2), "住宅", rng.choice(["自住", "出租", "空置"]), dt.date(2019, 6, 30),
             f"业主{owner}", f"13{owner:09d}", ids[owner], None]
        )  # fmt: skip
    data = xlsx(rows)
    client = web("Staff")
    t0 = time.perf_counter()
    dry = post(client, estate["id"], data, dry_run=True)
    t_dry = time.perf_counter() - t0
    assert dry.status_code == 200, dry.json["errors"][:5]
    t0 = time.perf_counter()
    resp = post(client, estate["id"], data, dry_run=False)
    t_real = time.perf_counter() - t0
    assert resp.status_code == 200, resp.json["errors"][:5]
    owners = n - n // 12
    assert resp.json["counts"] == {"building": 41, "unit": n, "owner": owners, "owner_matched": 0, "ownership": n}
    print(f"\n10,000-row import ({len(data) / 1024:.0f} KiB): dry run {t_dry:.2f} s, import {t_real:.2f} s "
          f"(server-side {resp.json['seconds']:.2f} s: {resp.json['phases']})")  # fmt: skip
    assert t_real < 60
    assert count(app, Unit, Unit.estate_id == estate["id"]) == n + 1
    assert (
        count(app, Owner, Owner.id_number.in_(ids[:5000])) + count(app, Owner, Owner.id_number.in_(ids[5000:]))
        == owners
    )
    assert count(app, Ownership, Ownership.unit_id.in_(select(Unit.id).where(Unit.estate_id == estate["id"]))) == n


# --- Excel out ---------------------------------------------------------------------------------
def _sheet(resp) -> list[dict]:
    assert resp.status_code == 200, resp.get_data(as_text=True)[:300]
    ws = load_workbook(io.BytesIO(resp.data), read_only=True).worksheets[0]
    rows = list(ws.iter_rows(values_only=True))
    return [dict(zip(rows[0], [*r, *[None] * len(rows[0])], strict=False)) for r in rows[1:]]


def test_owner_export_masks_phones_for_committee(app, web, make_unit):
    from app.extensions import db
    from models.archives import Owner

    tag = uuid.uuid4().hex[:6]
    make_unit(phone="13812345678")
    ids = make_unit(phone="13812345678")
    with app.app_context():
        owner = db.session.get(Owner, ids["owner"])
        owner.name = f"导出{tag}"
        db.session.commit()
        db.session.remove()
    url = f"/owner/export.xlsx?_flt_0_name=导出{tag}"
    committee = _sheet(web("Committee").get(url))
    assert len(committee) == 1  # the filter narrows the export
    assert committee[0]["联系电话"] == "138****5678"
    staff = _sheet(web("Staff").get(url))
    assert staff[0]["联系电话"] == "13812345678"
    everything = _sheet(web("Committee").get("/owner/export.xlsx"))
    assert len(everything) >= 2
    assert all(r["联系电话"] is None or "****" in r["联系电话"] for r in everything)


def test_unit_export_follows_the_list_filter(app, web, make_unit):
    from app.extensions import db
    from models.archives import Unit

    first, _ = make_unit(), make_unit()
    with app.app_context():
        code = db.session.get(Unit, first["unit"]).code
        db.session.remove()
    rows = _sheet(web("Committee").get(f"/unit/export.xlsx?_flt_0_code={code}"))
    assert [r["房号"] for r in rows] == [code]
    assert len(_sheet(web("Committee").get("/unit/export.xlsx"))) >= 2
