"""Forms that help (issue 12, section 5), walked over the registry on a database of its own:

- every add form with a period (账期) offers a month picker on the office's current month, and every
  date the product says is usually today (``views.fields.TODAY_DATES``) starts on the office's today;
- the only estate a user may choose is preselected on every add form with an estate field (a user
  of one estate; a company of one estate), and not when there are several;
- a meter reading's fee item is preselected when one item is metered (and asked again per unit);
- the change log reads as words: the resource's label, field labels, local times, Chinese values
  (choices, 是/否, related records by name), no table names, no ``_id``, no Python dicts; English
  in English mode;
- an uploaded file keeps its name: shown on the detail pages and given on download
  (``Content-Disposition`` with RFC 5987 ``filename*``).

A resource registered later is walked without editing this file.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import uuid
from decimal import Decimal
from html.parser import HTMLParser
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from app import roles as R
from tests import conftest as cf
from tests.scene import api_client
from views.registry import REGISTRY

ROLES = ("Manager", "Supervisor", "Staff")
SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture(scope="module")
def app():
    with cf.app_aside("desk_forms_help") as flask_app:
        yield flask_app


@pytest.fixture(scope="module")
def tokens(app):
    return cf.login_tokens(app)


def api(app, tokens, role):
    return api_client(app, tokens[role])


def login(app, username: str):
    client = cf.FreshContextClient(app, app.test_client())
    resp = client.post("/login/", data={"username": username, "password": cf.PASSWORD})
    assert resp.status_code in (302, 303), f"{username}: login failed"
    return client


def office_today() -> dt.date:
    return dt.datetime.now(SHANGHAI).date()


class Fields(HTMLParser):
    """The model form's inputs and selects: name -> attributes (inputs) or selected values."""

    def __init__(self):
        super().__init__()
        self.inputs: dict[str, dict] = {}
        self.selects: dict[str, dict] = {}
        self.selected: dict[str, list[str]] = {}
        self.options: dict[str, list[str]] = {}
        self._select = None
        self._in_form = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form" and a.get("id") == "model_form":
            self._in_form = True
        if not self._in_form:
            return
        if tag == "input" and a.get("name"):
            self.inputs[a["name"]] = a
        elif tag == "select" and a.get("name"):
            self._select = a["name"]
            self.selects[a["name"]] = a
            self.selected[a["name"]] = []
            self.options[a["name"]] = []
        elif tag == "option" and self._select is not None:
            self.options[self._select].append(a.get("value", ""))
            if "selected" in a and a.get("value", "") not in ("", "__None"):  # the empty choice is no value
                self.selected[self._select].append(a.get("value", ""))

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None
        elif tag == "form":
            self._in_form = False


def form_of(client, url: str) -> Fields:
    resp = client.get(url)
    assert resp.status_code == 200, f"{url}: {resp.status_code}"
    parser = Fields()
    parser.feed(resp.get_data(as_text=True))
    return parser


def writer_of(resource: str) -> str:
    for role in ROLES:
        if "write" in R.rights_of(role, resource):
            return role
    return "Admin"


def add_forms() -> list[str]:
    """Every resource with an add form on its screen."""
    return sorted(n for n, r in REGISTRY.items() if r.writable and r.records and r.add_columns)


def _column(resource: str, col: str):
    return REGISTRY[resource].model.__table__.columns.get(col)


# --- periods and dates -----------------------------------------------------------------------------
def test_every_period_on_an_add_form_is_a_month_on_the_current_month(app):
    from views.fields import is_period_column

    walked = []
    month = office_today().strftime("%Y-%m")
    for name in add_forms():
        periods = [c for c in REGISTRY[name].add_columns if (col := _column(name, c)) is not None and is_period_column(col)]
        if not periods:
            continue
        form = form_of(login(app, writer_of(name).lower()), f"/{name}/add")
        for col in periods:
            box = form.inputs.get(col)
            assert box is not None, f"{name}.{col}: no input on the add form"
            assert box.get("type") == "month", f"{name}.{col}: type={box.get('type')}, not a month picker"
            assert box.get("value") == month, f"{name}.{col}: starts on {box.get('value')!r}, not {month}"
            walked.append(f"{name}.{col}")
    # The three the product has today; any added later is walked too.
    assert {"bill.period", "billing_run.period", "meter_reading.period"} <= set(walked), walked


def test_dates_that_are_usually_today_start_on_today_and_others_start_empty(app):
    from sqlalchemy import Date, DateTime

    from views.fields import TODAY_DATES

    today, walked, empty = office_today().isoformat(), [], []
    for name in add_forms():
        res = REGISTRY[name]
        dates = [
            c for c in res.add_columns
            if (col := _column(name, c)) is not None and isinstance(col.type, Date) and not isinstance(col.type, DateTime)
        ]
        if not dates:
            continue
        form = form_of(login(app, writer_of(name).lower()), f"/{name}/add")
        for col in dates:
            box = form.inputs.get(col)
            assert box is not None and box.get("type") == "date", f"{name}.{col}: not a date picker"
            if col in TODAY_DATES or col in res.defaults:
                assert box.get("value") == today, f"{name}.{col}: starts on {box.get('value')!r}, not today"
                walked.append(f"{name}.{col}")
            else:
                assert not box.get("value"), f"{name}.{col}: starts on {box.get('value')!r}"
                empty.append(f"{name}.{col}")
    assert {"fee_standard.effective_from", "meter_reading.read_on"} <= set(walked), walked
    assert "fee_standard.effective_to" in empty


def test_a_month_is_read_as_a_period_and_a_bad_one_is_refused_naming_it(app):
    from wtforms import Form

    from views.fields import MonthField

    class F(Form):
        period = MonthField("账期")

    class Data(dict):
        def getlist(self, key):
            return [self[key]] if key in self else []

    for typed, read in (("2026-03", "2026-03"), ("2026-3", "2026-03"), ("2026/03", "2026-03"), ("2026年3月", "2026-03")):
        form = F(Data(period=typed))
        assert form.validate() and form.period.data == read, typed
    form = F(Data(period="2026-13"))
    assert not form.validate() and "YYYY-MM" in form.period.errors[0]


def test_an_edit_form_shows_the_stored_period_and_date_not_today(app, tokens):
    """The usual answer is for new records: an edit form shows what is stored."""
    ids = _estate_with_unit(app, "EDT")
    item = _metered_item(app, ids["estate"], "water", ["residential"])
    body = {"unit": ids["unit"], "item": item, "period": "2024-02", "read_on": "2024-02-27", "reading": "12.50"}
    resp = api(app, tokens, "Staff").post("/api/v1/meter_reading/", json=body)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    form = form_of(login(app, "staff"), f"/meter_reading/edit/{resp.json['id']}")
    assert form.inputs["period"]["type"] == "month" and form.inputs["period"]["value"] == "2024-02"
    assert form.inputs["read_on"]["value"] == "2024-02-27"


# --- one sensible value ----------------------------------------------------------------------------
def _estate_with_unit(app, tag: str, use: str = "residential") -> dict:
    from models.archives import Building, Estate, Owner, Ownership, Unit

    def make(session):
        code = f"{tag}{uuid.uuid4().hex[:5]}"
        estate = Estate(code=code, name=f"小区{code}")
        unit = Unit(building=Building(estate=estate, code="1", name="1栋"), code=f"1-1-{code}", floor=1,
                    gross_area=Decimal("90.00"), use=use)
        owner = Owner(name=f"业主{code}", phone="13812345678")
        session.add_all([estate, unit, owner])
        session.flush()
        session.add(Ownership(unit_id=unit.id, owner_id=owner.id))
        session.flush()
        return {"estate": estate.id, "unit": unit.id, "owner": owner.id}

    return cf.as_system(app, make)


def _unit_in(app, estate_id: int, use: str) -> int:
    from models.archives import Building, Unit

    def make(session):
        building = session.execute(select(Building).where(Building.estate_id == estate_id)).scalars().first()
        unit = Unit(building=building, code=f"2-{uuid.uuid4().hex[:6]}", floor=2, gross_area=Decimal("50.00"), use=use)
        session.add(unit)
        session.flush()
        return unit.id

    return cf.as_system(app, make)


def _metered_item(app, estate_id: int, kind: str, uses: list[str]) -> int:
    """A fee item with an approved per-quantity standard in force this month in the estate."""
    from models.archives import Estate
    from models.fees import FeeItem, FeeStandard

    def make(session):
        code = f"M{uuid.uuid4().hex[:8]}"
        item = FeeItem(code=code, name=f"{kind}{code}", kind=kind)
        std = FeeStandard(
            item=item, basis="per_quantity", unit_price=Decimal("3.2000"), unit_uses=uses,
            effective_from=office_today() - dt.timedelta(days=40), status="approved",
        )
        std.estates = [session.get(Estate, estate_id)]
        session.add_all([item, std])
        session.flush()
        return item.id

    return cf.as_system(app, make)


def _estate_fields(name: str) -> list[str]:
    from views.lookups import _is_estate_field

    res = REGISTRY[name]
    return [c for c in res.add_columns if _is_estate_field(res, c)]


@pytest.fixture()
def fresh_app():
    """A database with no estate yet (a company starting with one)."""
    with cf.app_aside("desk_one_estate") as flask_app:
        yield flask_app


def test_the_only_estate_is_preselected_on_every_add_form(fresh_app):
    from app.extensions import db
    from app.seed import ensure_user
    from models.archives import Estate

    app = fresh_app
    forms = {n: _estate_fields(n) for n in add_forms()}
    forms = {n: cols for n, cols in forms.items() if cols}
    assert {"billing_run", "building", "fee_standard", "owner", "ticket"} <= set(forms), forms

    with app.app_context():
        assert db.session.execute(select(Estate.id)).first() is None, "this module's database starts with no estate"
        db.session.remove()
    # A company with one estate: its company-level users are given it.
    a = _estate_with_unit(app, "ONE")["estate"]
    for name, cols in forms.items():
        form = form_of(login(app, writer_of(name).lower()), f"/{name}/add")
        for col in cols:
            assert form.selected.get(col) == [str(a)], f"{name}.{col} (company of one estate): {form.selected.get(col)}"

    # Two estates: a company-level user chooses; a user of one estate is given theirs, everywhere.
    b = _estate_with_unit(app, "TWO")["estate"]
    with app.app_context():
        for role in ROLES:
            ensure_user(app.appbuilder.sm, f"{role.lower()}_a", role, role, "A", cf.PASSWORD, estates=[b])
        db.session.remove()
    walked = []
    for name, cols in forms.items():
        role = writer_of(name)
        company = form_of(login(app, role.lower()), f"/{name}/add")
        if role == "Admin":
            continue
        one = form_of(login(app, f"{role.lower()}_a"), f"/{name}/add")
        for col in cols:
            assert not company.selected.get(col), f"{name}.{col}: chosen for a company of two estates"
            assert one.selected.get(col) == [str(b)], f"{name}.{col} ({role} of one estate): {one.selected.get(col)}"
            walked.append(f"{name}.{col}")
    assert len(walked) >= 5, walked


def test_a_meter_readings_item_is_preselected_when_one_is_metered(app):
    ids = _estate_with_unit(app, "MTR")
    estate = ids["estate"]
    from app.extensions import db
    from app.seed import ensure_user

    with app.app_context():
        ensure_user(app.appbuilder.sm, "staff_m", "Staff", "抄表", "员", cf.PASSWORD, estates=[estate])
        db.session.remove()
    client = login(app, "staff_m")
    form = form_of(client, "/meter_reading/add")
    assert form.selects["item"].get("data-desk-prefill") == "/meter_reading/prefill/item"
    assert form.selects["item"].get("data-desk-depends") == "unit"
    assert not form.selected.get("item"), "nothing is metered in this estate yet"

    water = _metered_item(app, estate, "water", ["residential"])
    form = form_of(client, "/meter_reading/add")
    assert form.selected["item"] == [str(water)] and form.selects["item"].get("data-desk-prefilled") == "1"

    # A second metered item, for shops only: the form no longer guesses; a unit tells which.
    power = _metered_item(app, estate, "electricity", ["commercial"])
    form = form_of(client, "/meter_reading/add")
    assert not form.selected.get("item")
    shop = _unit_in(app, estate, "commercial")
    assert client.get(f"/meter_reading/prefill/item?unit={ids['unit']}").json["id"] == water
    assert client.get(f"/meter_reading/prefill/item?unit={shop}").json["id"] == power
    assert client.get("/meter_reading/prefill/item").json == {}  # two in the estate: no answer
    # A unit of an estate the user does not work for is no answer; an unknown field is not there.
    other = _estate_with_unit(app, "OTH")
    _metered_item(app, other["estate"], "water", ["residential"])
    assert client.get(f"/meter_reading/prefill/item?unit={other['unit']}").json == {}
    assert client.get("/meter_reading/prefill/reading").status_code == 404
    # Only those who may add readings ask.
    assert login(app, "committee").get("/meter_reading/prefill/item").status_code == 403


def test_a_required_dropdown_starts_on_choose_unless_there_is_one_record(app):
    """A required relation's dropdown never starts on whichever record comes first (a clerk would
    save it unseen): it starts on 请选择, or on the record when there is only one."""
    from sqlalchemy import inspect

    from views.lookups import PREFILLS, _is_estate_field

    _estate_with_unit(app, "DRP")
    for kind in ("water", "property_service"):  # two fee items: a choice to make
        from models.fees import FeeItem

        cf.as_system(app, lambda s, kind=kind: s.add(FeeItem(code=f"D{uuid.uuid4().hex[:8]}", name=f"项目{kind}", kind=kind)))
    several, single = [], []
    for name in add_forms():
        res = REGISTRY[name]
        mapper = inspect(res.model)
        looked_up = {lk.column for lk in res.lookups}
        cols = [
            c for c in res.add_columns
            if c in mapper.relationships and mapper.relationships[c].direction.name == "MANYTOONE"
            and c not in looked_up and not _is_estate_field(res, c) and (name, c) not in PREFILLS
            and not all(col.nullable for col in mapper.relationships[c].local_columns)
        ]
        if not cols:
            continue
        form = form_of(login(app, writer_of(name).lower()), f"/{name}/add")
        for col in cols:
            options = [o for o in form.options.get(col, []) if o not in ("", "__None")]
            assert "__None" in form.options.get(col, []), f"{name}.{col}: no 请选择 to start on"
            if len(options) > 1:
                assert form.selected[col] == [], f"{name}.{col} starts on {form.selected[col]} of {len(options)}"
                several.append(f"{name}.{col}")
            elif len(options) == 1:
                assert form.selected[col] == options, f"{name}.{col}: the only record is not chosen"
                single.append(f"{name}.{col}")
    assert "fee_standard.item" in several, several
    # Left on 请选择, the form says the field is required (422), and nothing is saved.
    client = login(app, "manager")
    resp = client.post("/fee_standard/add", data={"item": "__None", "basis": "per_unit_month", "unit_price": "1",
                                                  "rounding": "half_up_cent", "unit_uses": ["residential"],
                                                  "effective_from": office_today().isoformat()})
    assert resp.status_code == 422
    # The message sits under the item's dropdown (FAB: the field, its help, then its errors).
    cell = re.search(r'<select[^>]*id="item".*?</td>', resp.get_data(as_text=True), re.S)
    assert cell and "alert-danger" in cell.group(0), "no message under 收费项目"


# --- the change log in words -----------------------------------------------------------------------
def _cells(html: str) -> list[str]:
    """The text of the list's or detail page's table cells."""
    cells = re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", html, re.S)
    return [re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", c)).strip() for c in cells]


def _entry_ids(app, table: str, pk: int, action: str = "update") -> list[int]:
    from app.extensions import db
    from models.base import ChangeLog

    with app.app_context():
        ids = db.session.execute(
            select(ChangeLog.id).where(ChangeLog.table_name == table, ChangeLog.row_id == pk, ChangeLog.action == action)
            .order_by(ChangeLog.id)
        ).scalars().all()
        db.session.remove()
    return ids


def test_the_change_log_reads_as_words(app, tokens):
    from app.security import user_label
    from models.desk import Ticket  # noqa: F401  (the ticket's labels below)

    ids = _estate_with_unit(app, "LOG")
    staff = api(app, tokens, "Staff")
    resp = staff.post(
        "/api/v1/ticket/", json={"kind": "repair", "channel": "phone", "priority": "normal", "unit": ids["unit"],
                                 "description": "厨房水管漏水"},
    )
    assert resp.status_code == 201, resp.get_data(as_text=True)
    pk, version = resp.json["id"], resp.json["version"]
    from flask_appbuilder.security.sqla.models import User

    from app.extensions import db

    with app.app_context():
        handler = db.session.execute(select(User).where(User.username == "staff")).scalar_one()
        handler_id, handler_name = handler.id, user_label(handler)
        db.session.remove()
    visit = "2031-05-06T02:30:00+00:00"  # 10:30 in Shanghai
    resp = staff.put(
        f"/api/v1/ticket/{pk}",
        json={"priority": "urgent", "agreed_visit_at": visit, "assignee": handler_id, "version": version},
    )
    assert resp.status_code == 200, resp.get_data(as_text=True)
    res = REGISTRY["ticket"]
    manager = login(app, "manager")

    entry = _entry_ids(app, "ticket", pk)[-1]
    page = manager.get(f"/change_log/show/{entry}").get_data(as_text=True)
    words = " ".join(_cells(page))
    for expected in (
        str(res.label),  # 住户求助, not "ticket"
        str(res.label_of("priority")),
        f"{res.choices['priority']['normal']} → {res.choices['priority']['urgent']}",
        str(res.label_of("agreed_visit_at")),
        "2031-05-06 10:30",
        handler_name,
    ):
        assert expected in words, f"{expected!r} not on the change log entry: {words[:1500]}"
    for raw in ("_id", "{'", "{\"", "ticket", "urgent", "+00:00", "T02:30"):
        assert raw not in words, f"{raw!r} shown on the change log entry: {words[:1500]}"
    assert f'href="/ticket/show/{pk}"' in page  # the record, one click away

    # The list: the same words, newest first.
    listing = manager.get("/change_log/list/").get_data(as_text=True)
    words = " ".join(_cells(listing))
    assert str(res.label) in words and "2031-05-06 10:30" in words and handler_name in words
    for raw in ("_id", "{'", "'ticket'", " ticket ", "+00:00"):
        assert raw not in words, f"{raw!r} in the change log list: {words[:1500]}"

    # Ordered by any column it offers; never by the stored JSON (a 400, not a database error).
    for col in ("changed_at", "table_name", "row_id", "action"):
        assert manager.get(f"/change_log/list/?_oc_ChangeLogView={col}&_od_ChangeLogView=asc").status_code == 200
    assert manager.get("/change_log/list/?_oc_ChangeLogView=changes&_od_ChangeLogView=asc").status_code == 400
    resp = api(app, tokens, "Manager").get("/api/v1/change_log/?q=(order_column:changes,order_direction:asc)")
    assert resp.status_code == 400

    # English mode: English labels and values.
    manager.get("/lang/en")
    page = manager.get(f"/change_log/show/{entry}").get_data(as_text=True)
    words = " ".join(_cells(page))
    assert res.label.en in words and res.label_of("priority").en in words
    assert f"{res.choices['priority']['normal'].en} → {res.choices['priority']['urgent'].en}" in words
    manager.get("/lang/zh")


def test_a_bills_change_reads_as_words(app, tokens):
    ids = _estate_with_unit(app, "BIL")
    item = _metered_item(app, ids["estate"], "water", ["residential"])
    manager_api = api(app, tokens, "Manager")
    resp = manager_api.post(
        "/api/v1/bill/",
        json={"unit": ids["unit"], "item": item, "period": "2030-01", "source": "手工", "quantity": "2",
              "unit_price": "3.50", "due_date": "2030-02-28"},
    )
    assert resp.status_code == 201, resp.get_data(as_text=True)
    pk = resp.json["id"]
    resp = manager_api.post(f"/api/v1/bill/{pk}/dispute", json={"disputed": True, "note": "读数有误"})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    res = REGISTRY["bill"]
    manager = login(app, "manager")
    page = manager.get(f"/change_log/show/{_entry_ids(app, 'bill', pk)[-1]}").get_data(as_text=True)
    words = " ".join(_cells(page))
    for expected in (str(res.label), str(res.label_of("disputed")), "否 → 是", "读数有误"):
        assert expected in words, f"{expected!r} not on the bill's change: {words[:1500]}"
    for raw in ("_id", "{'", "bill", "False", "True"):
        assert raw not in words, f"{raw!r} on the bill's change: {words[:1500]}"
    # Its creation names the unit and the fee item by name, the amounts as amounts.
    page = manager.get(f"/change_log/show/{_entry_ids(app, 'bill', pk, 'insert')[-1]}").get_data(as_text=True)
    words = " ".join(_cells(page))
    assert str(res.label_of("unit")) in words and str(res.label_of("item")) in words and "7.00" in words
    assert "_id" not in words and "{'" not in words


# --- uploaded names --------------------------------------------------------------------------------
NAME = "装修图纸 v2.pdf"


def _disposition_name(header: str) -> str:
    m = re.search(r"filename\*=UTF-8''([^;]+)", header)
    assert m, f"no RFC 5987 filename* in {header!r}"
    from urllib.parse import unquote

    return unquote(m.group(1))


def test_an_uploaded_file_keeps_its_name(app, tokens, tmp_path, monkeypatch):
    from app.seed import renovation_fee_items

    monkeypatch.setitem(app.config, "INSTANCE_DIR", tmp_path)
    ids = _estate_with_unit(app, "UPL")
    manager_api = api(app, tokens, "Manager")

    # A fee standard's basis document.
    resp = manager_api.post("/api/v1/fee_item/", json={"code": f"F{uuid.uuid4().hex[:8]}", "name": "物业服务费",
                                                     "kind": "property_service"})
    assert resp.status_code == 201
    resp = manager_api.post(
        "/api/v1/fee_standard/",
        json={"item": resp.json["id"], "basis": "per_area_month", "unit_price": "2.5000", "rounding": "half_up_cent",
              "unit_uses": ["residential"], "estates": [ids["estate"]], "effective_from": "2035-01-01"},
    )
    assert resp.status_code == 201
    std = resp.json["id"]
    resp = manager_api.post(f"/api/v1/fee_standard/{std}/declare", data={"document": (io.BytesIO(b"%PDF-1.4 basis"), NAME)},
                            content_type="multipart/form-data")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    manager = login(app, "manager")
    page = manager.get(f"/fee_standard/show/{std}").get_data(as_text=True)
    assert NAME in " ".join(_cells(page))
    assert not re.search(r"fee_standard/[0-9a-f]{32}", page), "a storage path is shown"
    got = manager.get(f"/fee_standard/document/{std}")
    assert got.status_code == 200 and got.data == b"%PDF-1.4 basis"
    header = got.headers["Content-Disposition"]
    assert header.startswith("attachment;") and _disposition_name(header) == NAME
    assert f"filename*=UTF-8''{quote(NAME, safe='')}" in header
    assert re.search(r'filename="[\x20-\x7e]+\.pdf"', header), header  # an ASCII name for old clients
    # The change log names the document, not where it is kept.
    log = manager.get(f"/change_log/show/{_entry_ids(app, 'fee_standard', std)[-1]}").get_data(as_text=True)
    assert NAME in " ".join(_cells(log)) and not re.search(r"[0-9a-f]{32}", " ".join(_cells(log)))

    # Renovation drawings, added through their action, listed and downloaded by name.
    with app.app_context():
        renovation_fee_items()
    today = office_today()
    resp = api(app, tokens, "Staff").post(
        "/api/v1/renovation/",
        json={"unit": ids["unit"], "contractor": "美家装饰", "person_in_charge": "王工", "phone": "13911112222",
              "workers": 3, "scope": ["walls"], "planned_start": today.isoformat(),
              "planned_end": (today + dt.timedelta(days=30)).isoformat(), "working_hours": "08:00-12:00",
              "deposit": "2000.00", "management_fee": "300.00"},
    )
    assert resp.status_code == 201, resp.get_data(as_text=True)
    reno, version = resp.json["id"], resp.json["version"]
    resp = api(app, tokens, "Staff").post(
        f"/api/v1/renovation/{reno}/drawings",
        data={"version": str(version), "drawings": [(io.BytesIO(b"%PDF-1.4 plan"), NAME), (io.BytesIO(b"\x89PNG"), "平面图.png")]},
        content_type="multipart/form-data",
    )
    assert resp.status_code == 200, resp.get_data(as_text=True)
    staff = login(app, "staff")
    page = staff.get(f"/renovation/show/{reno}").get_data(as_text=True)
    cells = _cells(page)
    assert NAME in cells and "平面图.png" in cells, cells
    got = staff.get(f"/renovation/drawing/{reno}/0")
    assert got.data == b"%PDF-1.4 plan" and _disposition_name(got.headers["Content-Disposition"]) == NAME
    assert _disposition_name(staff.get(f"/renovation/drawing/{reno}/1").headers["Content-Disposition"]) == "平面图.png"


def test_a_hostile_or_long_name_is_kept_as_words_never_as_a_path(app, tmp_path, monkeypatch):
    from werkzeug.datastructures import FileStorage

    from views.uploads import display_name, save_uploads, stored_path

    monkeypatch.setitem(app.config, "INSTANCE_DIR", tmp_path)
    long_name = "图" * 200 + ".pdf"
    with app.test_request_context():
        stored = save_uploads(
            [FileStorage(io.BytesIO(b"a"), "../../etc/passwd.pdf"), FileStorage(io.BytesIO(b"b"), long_name),
             FileStorage(io.BytesIO(b"c"), "C:\\Users\\王\\合同\x07.pdf")],
            "f", {".pdf"}, "fee_standard",
        )
        names = [display_name(s) for s in stored]
        assert names[0] == "passwd.pdf" and names[2] == "合同 .pdf"
        assert names[1].endswith(".pdf") and len(names[1].encode()) <= 180
        assert all(stored_path(s).parent == tmp_path / "uploads" / "fee_standard" for s in stored)
        # The names kept beside the store are never served as files.
        assert stored_path(".names/" + stored[0]) is None
