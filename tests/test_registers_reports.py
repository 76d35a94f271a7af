"""The three registers (printable and .xlsx), the one-ticket form and the reports (DESIGN.md items
3 and 12), on a controlled set of requests recorded in March 2031 in an estate of their own."""

from __future__ import annotations

import datetime as dt
import io
import re
import uuid
from decimal import Decimal

import pytest
from openpyxl import load_workbook
from sqlalchemy import select, update

from tests.conftest import PASSWORD

SHANGHAI = dt.timezone(dt.timedelta(hours=8))
RANGE = "from=2031-03-05&to=2031-03-06"
R1_PHONE = "13900001111"
SECRET = "咨询房屋产权纠纷的私密问题"


def _local(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2031, 3, day, hour, minute, tzinfo=SHANGHAI).astimezone(dt.UTC)


class Client:
    """An API client for one role, usable from a module-scoped fixture."""

    def __init__(self, app, token):
        self.app = app
        self.client = app.test_client()
        self.headers = {"Authorization": f"Bearer {token}"}

    def call(self, method, url, **kw):
        with self.app.app_context():
            return getattr(self.client, method)(url, headers=self.headers, **kw)


@pytest.fixture(scope="module")
def scene(app, tokens):
    """Seven requests in one estate: six recorded on 5-6 March 2031 (local), one just before."""
    from app.extensions import db
    from models.archives import Building, Estate, Owner, Ownership, Unit
    from models.desk import Callback, Ticket

    staff = Client(app, tokens["Staff"])
    tag = uuid.uuid4().hex[:6]
    with app.app_context():
        estate = Estate(code=f"RR{tag}", name=f"报表小区{tag}")
        building = Building(estate=estate, code="1", name="1栋")
        u1 = Unit(building=building, code=f"1-1-{tag}", floor=1, gross_area=Decimal("88.50"))
        u2 = Unit(building=building, code=f"1-2-{tag}", floor=2, gross_area=Decimal("90.00"))
        owner = Owner(name=f"王业主{tag}", phone="13812345678")
        db.session.add_all([estate, building, u1, u2, owner])
        db.session.flush()
        db.session.add(Ownership(unit_id=u1.id, owner_id=owner.id))
        db.session.commit()
        ids = {"estate": estate.id, "u1": u1.id, "u2": u2.id, "owner": owner.id}
        staff_user_id = app.appbuilder.sm.find_user(username="staff").id
        db.session.remove()

    def create(**body):
        body = {"channel": "phone", "priority": "normal", **body}
        resp = staff.call("post", "/api/v1/ticket/", json=body)
        assert resp.status_code == 201, resp.json
        return resp.json["id"]

    def version(pk):
        return staff.call("get", f"/api/v1/ticket/{pk}").json["result"]["version"]

    def move(pk, to):
        resp = staff.call("post", f"/api/v1/ticket/{pk}/transition", json={"to": to, "version": version(pk)})
        assert resp.status_code == 200, resp.json

    def callback_outcome(pk, satisfaction):
        with app.app_context():
            cb_id = db.session.execute(
                select(Callback.id).where(Callback.ticket_id == pk, Callback.status == "pending")
            ).scalar_one()
            db.session.remove()
        resp = staff.call(
            "post", f"/api/v1/callback/{cb_id}/outcome", json={"reached": True, "satisfaction": satisfaction}
        )
        assert resp.status_code == 200, resp.json
        return resp.json

    t = {}
    t["r1"] = create(
        kind="repair",
        unit=ids["u1"],
        owner=ids["owner"],
        callback_phone=R1_PHONE,
        description="厨房水管漏水",
        agreed_visit_at="2031-03-05T14:00:00+08:00",
    )
    move(t["r1"], "acknowledged")
    resp = staff.call(
        "put",
        f"/api/v1/ticket/{t['r1']}",
        json={"responsibility": "owner_paid", "cost": "50.00", "assignee": staff_user_id, "version": version(t["r1"])},
    )
    assert resp.status_code == 200, resp.json
    move(t["r1"], "resolved")
    assert callback_outcome(t["r1"], 5)["ticket_status"] == "closed"

    t["r2"] = create(kind="repair", unit=ids["u2"], description="卫生间灯不亮")
    t["c1"] = create(kind="complaint", unit=ids["u1"], complaint_about="neighbour", description="楼上装修噪音")
    move(t["c1"], "resolved")
    assert callback_outcome(t["c1"], 2)["ticket_status"] == "reopened"
    t["c2"] = create(kind="complaint", unit=ids["u2"], complaint_about="staff", description="保安态度差")
    move(t["c2"], "resolved")
    assert callback_outcome(t["c2"], 4)["ticket_status"] == "closed"
    t["q1"] = create(
        kind="consultation",
        consult_mode="oral",
        confidential=True,
        unit=ids["u1"],
        visitor_name="李女士",
        visitor_phone="13700002222",
        description=SECRET,
    )
    move(t["q1"], "acknowledged")
    t["o1"] = create(kind="other", unit=ids["u2"], description="借用梯子")
    t["out"] = create(kind="repair", unit=ids["u1"], description="阳台漏水（范围外）")

    when = {
        "r1": _local(5, 9, 15),
        "r2": _local(5, 10, 0),
        "c1": _local(5, 11, 30),
        "c2": _local(5, 16, 45),
        "o1": _local(5, 0, 10),  # 4 March 16:10 UTC: the local date counts
        "q1": _local(6, 10, 0),
        "out": _local(4, 23, 30),  # 4 March local: outside the range
    }
    past = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    with app.app_context():
        for key, at in when.items():
            # Received and recorded at the same moment: the registers run on the time received.
            db.session.execute(update(Ticket).where(Ticket.id == t[key]).values(reported_at=at, received_at=at))
        # r2 is still new and both its deadlines have passed: late on both counts.
        db.session.execute(update(Ticket).where(Ticket.id == t["r2"]).values(reply_due_at=past, resolve_due_at=past))
        numbers = dict(db.session.execute(select(Ticket.id, Ticket.number).where(Ticket.id.in_(t.values()))).all())
        db.session.commit()
        db.session.remove()
    return {"ids": ids, "t": t, "numbers": {k: numbers[v] for k, v in t.items()}}


def _page(client, url, status=200):
    resp = client.get(url)
    assert resp.status_code == status, resp.get_data(as_text=True)[:800]
    return resp.get_data(as_text=True)


def _numbers_in(page: str) -> list[str]:
    return re.findall(r'data-number="([^"]+)"', page)


def _url(scene, path, **extra):
    args = f"{RANGE}&estate={scene['ids']['estate']}"
    for k, v in extra.items():
        args += f"&{k}={v}"
    return f"{path}?{args}"


# --- registers -------------------------------------------------------------------------------
def test_help_register_lists_every_request_of_the_range(web, scene):
    n = scene["numbers"]
    page = _page(web("Staff"), _url(scene, "/ticket/register", register="help"))
    for heading in ("住户求助登记表", "序号", "日期时间", "房号", "报事人", "电话", "内容", "处理人", "结果"):
        assert heading in page
    assert "@page { size: A4 landscape; margin: 12mm }" in page
    # in the order recorded; the one of 4 March (local) is left out, the one at 00:10 on 5 March is in
    assert _numbers_in(page) == [n["o1"], n["r1"], n["r2"], n["c1"], n["c2"], n["q1"]]
    assert n["out"] not in page
    assert "2031-03-05 00:10" in page and "2031-03-06 10:00" in page


def test_repair_register_has_visit_time_responsibility_and_cost(web, scene):
    n = scene["numbers"]
    page = _page(web("Staff"), _url(scene, "/ticket/register", register="repair"))
    for heading in ("住户报修登记表", "约定上门时间", "维修责任", "费用(元)", "回访结果"):
        assert heading in page
    assert _numbers_in(page) == [n["r1"], n["r2"]]
    assert "2031-03-05 14:00" in page  # the agreed visit, local time
    assert "业主自费" in page and "50.00" in page
    assert "StaffTester" in page  # the assignee
    assert "满意度 5 分" in page


def test_complaint_register_has_the_object_and_the_callback(web, scene):
    n = scene["numbers"]
    page = _page(web("Staff"), _url(scene, "/ticket/register", register="complaint"))
    for heading in ("投诉受理登记表", "投诉对象", "投诉内容", "回访结果", "满意度"):
        assert heading in page
    assert _numbers_in(page) == [n["c1"], n["c2"]]
    assert "邻里" in page and "员工" in page
    assert "满意度 2 分" in page and "满意度 4 分" in page
    assert "重新打开" in page  # c1's state after the unsatisfied callback


def test_a_later_range_leaves_the_requests_out(web, scene):
    page = _page(
        web("Staff"), f"/ticket/register?register=help&from=2031-03-07&to=2031-03-08&estate={scene['ids']['estate']}"
    )
    assert _numbers_in(page) == []
    assert "本期无登记" in page


def test_committee_sees_masked_phones_and_no_confidential_text(web, scene):
    staff = _page(web("Staff"), _url(scene, "/ticket/register", register="help"))
    assert R1_PHONE in staff and SECRET in staff and "13700002222" in staff
    committee = _page(web("Committee"), _url(scene, "/ticket/register", register="help"))
    assert R1_PHONE not in committee and "139****1111" in committee
    assert "13700002222" not in committee and "137****2222" in committee
    assert SECRET not in committee and "（保密）" in committee
    assert "13812345678" not in committee


def test_register_xlsx_has_the_header_and_the_rows(web, scene):
    n = scene["numbers"]
    resp = web("Staff").get(_url(scene, "/ticket/register.xlsx", register="repair"))
    assert resp.status_code == 200
    assert resp.mimetype == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    ws = load_workbook(io.BytesIO(resp.data)).active
    rows = list(ws.iter_rows(values_only=True))
    header = rows[0]
    assert header[:3] == ("序号", "编号", "日期时间") and "约定上门时间" in header and "维修责任" in header
    assert [r[1] for r in rows[1:]] == [n["r1"], n["r2"]]
    assert rows[1][header.index("日期时间")] == dt.datetime(2031, 3, 5, 9, 15)
    assert rows[1][header.index("电话")] == R1_PHONE
    assert rows[1][header.index("维修责任")] == "业主自费"

    resp = web("Committee").get(_url(scene, "/ticket/register.xlsx", register="help"))
    assert resp.status_code == 200
    rows = list(load_workbook(io.BytesIO(resp.data)).active.iter_rows(values_only=True))
    assert len(rows) == 7
    flat = [str(v) for r in rows for v in r if v is not None]
    assert R1_PHONE not in flat and "139****1111" in flat
    assert SECRET not in flat and "（保密）" in flat


@pytest.mark.parametrize(
    "query, field",
    [
        ("from=2031-02-30", "from"),
        ("from=yesterday", "from"),
        ("from=2031-03-05&to=05/03/2031", "to"),
        ("from=2031-03-06&to=2031-03-05", "to"),
        ("from=2030-01-01&to=2031-12-31", "to"),
        ("register=lost", "register"),
        ("estate=abc", "estate"),
        ("from=0001-01-01&to=0001-01-02", "from"),
        ("from=9999-12-30&to=9999-12-31", "from"),
    ],
)
def test_bad_arguments_are_400_naming_the_field(web, api, query, field):
    resp = web("Staff").get(f"/ticket/register?{query}")
    assert resp.status_code == 400
    assert f"（{field}）" in resp.get_data(as_text=True)
    if field != "register":
        resp = api("Staff").get(f"/api/v1/ticket/report?{query}")
        assert resp.status_code == 400
        assert field in resp.json["message"]


# --- the form of one ticket ------------------------------------------------------------------
def test_print_form_has_the_fields_and_the_timeline(web, scene, app):
    from app.extensions import db
    from models.desk import Ticket

    pk = scene["t"]["r1"]
    staff = web("Staff")
    show = _page(staff, f"/ticket/show/{pk}")
    assert f"/ticket/print/{pk}" in show and "打印登记表" in show
    page = _page(staff, f"/ticket/print/{pk}")
    assert "住户报修登记表" in page and scene["numbers"]["r1"] in page
    for text in ("约定上门时间", "2031-03-05 14:00", "业主自费", "50.00", "厨房水管漏水", R1_PHONE, "满意度 5 分"):
        assert text in page
    with app.app_context():
        events = db.session.get(Ticket, pk).events
        count = len(events)
        db.session.remove()
    assert page.count('class="form-event"') == count >= 5
    for label in ("登记", "状态变更", "回访", "已解决", "已关闭"):
        assert label in page
    assert "@page { size: A4; margin: 12mm }" in page


def test_print_form_keeps_confidential_matters_from_the_committee(web, scene):
    pk = scene["t"]["q1"]
    assert SECRET in _page(web("Staff"), f"/ticket/print/{pk}")
    page = _page(web("Committee"), f"/ticket/print/{pk}")
    assert SECRET not in page and "（保密）" in page
    assert "13700002222" not in page and "137****2222" in page
    assert _page(web("Staff"), "/ticket/print/999999999", status=404)


# --- reports ---------------------------------------------------------------------------------
def test_report_json_figures(api, scene):
    resp = api("Committee").get(_url(scene, "/api/v1/ticket/report"))
    assert resp.status_code == 200, resp.json
    fig = resp.json
    assert fig["from"] == "2031-03-05" and fig["to"] == "2031-03-06" and fig["estate"] == scene["ids"]["estate"]
    assert fig["total"] == 6
    counts = {k["kind"]: k["count"] for k in fig["by_kind"]}
    assert counts == {
        "emergency_medical": 0,
        "repair": 2,
        "complaint": 2,
        "consultation": 1,
        "security": 0,
        "disaster": 0,
        "other": 1,
    }
    days = {d["date"]: d for d in fig["by_day"]}
    assert list(days) == ["2031-03-05", "2031-03-06"]
    assert days["2031-03-05"]["count"] == 5 and days["2031-03-06"]["count"] == 1
    assert days["2031-03-05"]["by_kind"]["repair"] == 2 and days["2031-03-06"]["by_kind"]["consultation"] == 1

    comp = {c["kind"]: c for c in fig["compliance"]}
    # repair: r1 in time, r2 open past both deadlines
    assert comp["repair"]["reply"] == {"met": 1, "missed": 1, "pending": 0, "rate": 0.5}
    assert comp["repair"]["resolve"] == {"met": 1, "missed": 1, "pending": 0, "rate": 0.5}
    # complaint: both replied in time; c2 resolved, c1 reopened (a new resolve deadline, not yet due)
    assert comp["complaint"]["reply"] == {"met": 2, "missed": 0, "pending": 0, "rate": 1.0}
    assert comp["complaint"]["resolve"] == {"met": 1, "missed": 0, "pending": 1, "rate": 1.0}
    assert comp["consultation"]["reply"] == {"met": 1, "missed": 0, "pending": 0, "rate": 1.0}
    assert comp["consultation"]["resolve"] == {"met": 0, "missed": 0, "pending": 1, "rate": None}
    assert comp["other"]["reply"] == {"met": 0, "missed": 0, "pending": 1, "rate": None}
    assert comp["security"]["total"] == 0 and comp["security"]["reply"]["rate"] is None
    assert fig["compliance_all"]["reply"] == {"met": 4, "missed": 1, "pending": 1, "rate": 0.8}
    assert fig["compliance_all"]["resolve"] == {"met": 2, "missed": 1, "pending": 3, "rate": 0.6667}

    sat = fig["satisfaction"]
    assert sat["count"] == 3 and sat["average"] == pytest.approx(3.67)
    assert sat["distribution"] == {"1": 0, "2": 1, "3": 0, "4": 1, "5": 1}
    by_kind = {s["kind"]: s for s in sat["by_kind"]}
    assert by_kind["repair"]["average"] == 5.0 and by_kind["repair"]["distribution"]["5"] == 1
    assert by_kind["complaint"]["average"] == 3.0 and by_kind["complaint"]["count"] == 2
    assert by_kind["other"]["count"] == 0 and by_kind["other"]["average"] is None


def test_report_json_without_the_estate_counts_at_least_these(api, scene):
    fig = api("Staff").get(f"/api/v1/ticket/report?{RANGE}").json
    assert fig["total"] >= 6 and fig["estate"] is None


def test_report_page_declares_its_charts_and_loads_nothing_from_outside(web, scene):
    page = _page(web("Committee"), _url(scene, "/ticket/report"))
    assert "服务台统计报表" in page
    assert page.count('class="desk-chart"') == 4 and "/static/desk/vendor/echarts/echarts.min.js" in page
    assert "http://" not in page and "https://" not in page
    assert "google" not in page.lower() and "gstatic" not in page
    assert "80.0%" in page  # reply compliance over all classes
    assert "3.67" in page


def test_the_openapi_spec_lists_the_report_route(api):
    spec = api("Admin").get("/api/v1/_openapi").json
    assert "get" in spec["paths"]["/api/v1/ticket/report"]


# --- who may see them ------------------------------------------------------------------------
def test_committee_reads_registers_and_reports(web, api, scene):
    committee = web("Committee")
    for url in (
        _url(scene, "/ticket/register", register="help"),
        _url(scene, "/ticket/register.xlsx", register="complaint"),
        _url(scene, "/ticket/report"),
        f"/ticket/print/{scene['t']['r1']}",
    ):
        assert committee.get(url).status_code == 200, url
    assert api("Committee").get(_url(scene, "/api/v1/ticket/report")).status_code == 200


def test_without_the_read_right_it_is_refused(app, scene):
    from app.extensions import db
    from app.seed import ensure_user

    with app.app_context():
        ensure_user(app.appbuilder.sm, "noread_reports", "Public", "No", "Read", PASSWORD)
        db.session.remove()
    client = app.test_client()
    with app.app_context():
        assert client.get(_url(scene, "/api/v1/ticket/report")).status_code == 401
        resp = client.post("/login/", data={"username": "noread_reports", "password": PASSWORD})
        assert resp.status_code in (302, 303)
    for url in (
        _url(scene, "/ticket/register", register="help"),
        _url(scene, "/ticket/register.xlsx", register="help"),
        _url(scene, "/ticket/report"),
        f"/ticket/print/{scene['t']['r1']}",
    ):
        with app.app_context():
            assert client.get(url).status_code == 403, url
    with app.app_context():
        token = client.post(
            "/api/v1/security/login", json={"username": "noread_reports", "password": PASSWORD, "provider": "db"}
        ).json["access_token"]
        resp = client.get(_url(scene, "/api/v1/ticket/report"), headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 403
