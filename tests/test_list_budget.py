"""Lists stay within their SQL budget whatever the page, page size, filter or role, and the cheap
paths (capped count, deferred join for deep pages) answer exactly what FAB's plain queries would.

Budget per list request: user load + count + page (+ one for a to-many column) <= 4 statements,
for the API and for the screen (menu included), for company-level users and for one who works for
a single estate (the estate filter rides in the same statements). Not about time: see
benchmarks/list_views.py.
"""

from __future__ import annotations

import contextlib
from urllib.parse import quote

import pytest
from sqlalchemy import event, func, select

BUDGET = 4
UNITS = 1200
PER_ESTATE = 600  # two estates: the scoped user sees one of them
SCOPED = "lb_staff"  # a Staff member of the first estate only
UNIT_FILTER_API = "!((col:status,opr:eq,value:vacant))"
RESIDENT_FILTER_API = "!((col:name,opr:sw,value:" + quote("王") + "))"
UNIT_FILTER_SCREEN = "_flt_3_status=vacant"
RESIDENT_FILTER_SCREEN = "_flt_0_name=" + quote("王")


@pytest.fixture(scope="module")
def dataset(app):
    from app.extensions import db
    from app.seed import generate

    with app.app_context():
        counts = generate(units=UNITS, estate_prefix="LB", per_estate=PER_ESTATE)
        db.session.remove()
    return counts


@pytest.fixture(scope="module")
def lb_estates(app, dataset):
    """The ids of the dataset's two estates, oldest first."""
    from app.extensions import db
    from models.archives import Estate

    with app.app_context():
        ids = (
            db.session.execute(select(Estate.id).where(Estate.code.like("LB%")).order_by(Estate.id.desc()).limit(2))
            .scalars()
            .all()
        )
        db.session.remove()
    return sorted(ids)


@pytest.fixture(scope="module")
def scoped_user(app, lb_estates):
    from app.extensions import db
    from app.seed import ensure_user
    from tests.conftest import PASSWORD

    with app.app_context():
        ensure_user(app.appbuilder.sm, SCOPED, "Staff", "LB", "Staff", PASSWORD, estates=[lb_estates[0]])
        db.session.remove()
    resp = app.test_client().post(
        "/api/v1/security/login", json={"username": SCOPED, "password": PASSWORD, "provider": "db"}
    )
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.json["access_token"]


@pytest.fixture()
def as_role(app, api, web, scoped_user):
    """``as_role(role, kind)``: an API ("api") or screen ("web") client for a role, or for the
    scoped Staff member when role is SCOPED."""
    from tests.conftest import PASSWORD, FreshContextClient

    class ScopedApi:
        def __init__(self):
            self.client = app.test_client()

        def get(self, url, **kw):
            with app.app_context():
                return self.client.get(url, headers={"Authorization": f"Bearer {scoped_user}"}, **kw)

    def make(role, kind):
        if role != SCOPED:
            return api(role) if kind == "api" else web(role)
        if kind == "api":
            return ScopedApi()
        client = FreshContextClient(app, app.test_client())
        resp = client.post("/login/", data={"username": SCOPED, "password": PASSWORD})
        assert resp.status_code in (302, 303)
        return client

    return make


@contextlib.contextmanager
def count_statements(app):
    from app.extensions import db

    with app.app_context():
        engine = db.engine
    seen: list[str] = []

    def on_execute(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)


def api_list(resource: str, page: int, size: int, filters: str | None = None, extra: str = "") -> str:
    q = f"(page:{page},page_size:{size}"
    if filters:
        q += f",filters:{filters}"
    q += extra + ")"
    return f"/api/v1/{resource}/?q={q}"


def deep_page(size: int) -> int:
    # Far enough to take the deferred join (DeskInterface.DEFERRED_JOIN_OFFSET), within the data.
    from views.datamodel import DeskInterface

    return DeskInterface.DEFERRED_JOIN_OFFSET // size + 1


def _explain(seen: list[str]) -> str:
    return "\n".join(" ".join(s.split())[:200] for s in seen)


# --- the statement budget ----------------------------------------------------------------------
@pytest.mark.parametrize("role", ["Admin", "Committee", SCOPED])
@pytest.mark.parametrize("resource,api_filter", [("unit", UNIT_FILTER_API), ("resident", RESIDENT_FILTER_API)])
@pytest.mark.parametrize("size", [10, 100])
@pytest.mark.parametrize("filtered", [False, True], ids=["all", "filtered"])
@pytest.mark.parametrize("deep", [False, True], ids=["first", "deep"])
def test_api_list_statement_budget(app, as_role, dataset, role, resource, api_filter, size, filtered, deep):
    client = as_role(role, "api")
    page = deep_page(size) if deep else 0
    url = api_list(resource, page, size, api_filter if filtered else None)
    client.get(url)  # warm: nothing cached may hide a statement, but the first request may add one
    with count_statements(app) as seen:
        resp = client.get(url)
    assert resp.status_code == 200, resp.get_data(as_text=True)[:300]
    if not filtered:
        assert len(resp.json["result"]) == size
    assert len(seen) <= BUDGET, f"{len(seen)} statements for {url}:\n{_explain(seen)}"


@pytest.mark.parametrize("role", ["Admin", "Committee", SCOPED])
@pytest.mark.parametrize(
    "resource,view,screen_filter",
    [("unit", "UnitView", UNIT_FILTER_SCREEN), ("resident", "ResidentView", RESIDENT_FILTER_SCREEN)],
)
@pytest.mark.parametrize("size", [10, 100])
@pytest.mark.parametrize("filtered", [False, True], ids=["all", "filtered"])
@pytest.mark.parametrize("deep", [False, True], ids=["first", "deep"])
def test_screen_list_statement_budget(app, as_role, dataset, role, resource, view, screen_filter, size, filtered, deep):
    client = as_role(role, "web")
    page = deep_page(size) if deep else 0
    url = f"/{resource}/list/?page_{view}={page}&psize_{view}={size}"
    if filtered:
        url += "&" + screen_filter
    client.get(url)
    with count_statements(app) as seen:
        resp = client.get(url)
    assert resp.status_code == 200, resp.get_data(as_text=True)[:300]
    assert len(seen) <= BUDGET, f"{len(seen)} statements for {url}:\n{_explain(seen)}"


def test_screen_shows_related_column_without_extra_statements(app, web, dataset):
    """The residents screen shows ``unit.code``: loaded with the page, not once per row."""
    from app.extensions import db
    from models.archives import Resident, Unit

    with app.app_context():
        codes = db.session.execute(
            select(Unit.code).join(Resident, Resident.unit_id == Unit.id).order_by(Resident.id.desc()).limit(10)
        ).scalars()
        codes = set(codes)
        db.session.remove()
    client = web("Admin")
    with count_statements(app) as seen:
        page = client.get("/resident/list/?psize_ResidentView=10").get_data(as_text=True)
    assert len(seen) <= BUDGET, _explain(seen)
    for code in codes:
        assert code in page


# --- the deferred join answers what a plain OFFSET would -----------------------------------------
def _plain_ids(app, model, order, page, size, where=None):
    from app.extensions import db

    with app.app_context():
        stmt = select(model.id)
        if where is not None:
            stmt = stmt.where(where)
        ids = db.session.execute(stmt.order_by(*order).offset(page * size).limit(size)).scalars().all()
        db.session.remove()
    return list(ids)


@pytest.mark.parametrize("size", [10, 25, 100])
def test_deep_pages_match_plain_offset(app, api, dataset, size):
    from models.archives import Resident, Unit

    client = api("Admin")
    for page in (deep_page(size), deep_page(size) + 1, 5 * deep_page(size) // 2):
        resp = client.get(api_list("unit", page, size))
        expected = _plain_ids(app, Unit, (Unit.code.asc(), Unit.id.asc()), page, size)
        assert resp.json["ids"] == expected, f"units page {page}/{size}"
        resp = client.get(api_list("resident", page, size))
        expected = _plain_ids(app, Resident, (Resident.id.desc(),), page, size)
        assert resp.json["ids"] == expected, f"residents page {page}/{size}"
        resp = client.get(api_list("unit", page // 3, size, UNIT_FILTER_API))
        expected = _plain_ids(app, Unit, (Unit.code.asc(), Unit.id.asc()), page // 3, size, Unit.status == "vacant")
        assert resp.json["ids"] == expected, f"vacant units page {page // 3}/{size}"
        # Another order, on a column with many equal values (the id breaks ties).
        resp = client.get(api_list("unit", page, size, extra=",order_column:floor,order_direction:desc"))
        expected = _plain_ids(app, Unit, (Unit.floor.desc(), Unit.id.desc()), page, size)
        assert resp.json["ids"] == expected, f"units by floor page {page}/{size}"


def test_deferred_join_matches_stock_interface(app, dataset):
    """DeskInterface.query against FAB's own SQLAInterface.query, row for row."""
    from flask_appbuilder.models.sqla.interface import SQLAInterface

    from app.extensions import db
    from models.archives import Resident, Unit
    from views.datamodel import DeskInterface

    with app.test_request_context():
        for model, order in ((Unit, ("code", "asc")), (Unit, ("floor", "desc")), (Resident, ("move_in", "asc"))):
            ours, stock = DeskInterface(model, db.session), SQLAInterface(model, db.session)
            for page in (0, 3, deep_page(20), 2 * deep_page(20)):
                _, ours_rows = ours.query(None, *order, page=page, page_size=20)
                _, stock_rows = stock.query(None, *order, page=page, page_size=20)
                assert [r.id for r in ours_rows] == [r.id for r in stock_rows], (model.__name__, order, page)
        db.session.remove()


# --- counts: exact below the limit, flagged estimates above it ------------------------------------
def _exact(app, model, where=None):
    from app.extensions import db

    with app.app_context():
        stmt = select(func.count()).select_from(model)
        if where is not None:
            stmt = stmt.where(where)
        n = db.session.execute(stmt).scalar()
        db.session.remove()
    return n


def test_count_is_exact_below_the_limit(app, api, dataset, monkeypatch):
    from models.archives import Resident, Unit

    monkeypatch.setitem(app.config, "LIST_EXACT_COUNT_LIMIT", 1_000_000)
    client = api("Admin")
    resp = client.get(api_list("unit", 0, 10))
    assert resp.json["count"] == _exact(app, Unit)
    assert resp.json["count_estimated"] is False
    resp = client.get(api_list("unit", 0, 10, UNIT_FILTER_API))
    assert resp.json["count"] == _exact(app, Unit, Unit.status == "vacant")
    assert resp.json["count_estimated"] is False
    resp = client.get(api_list("resident", 0, 10, RESIDENT_FILTER_API))
    assert resp.json["count"] == _exact(app, Resident, Resident.name.like("王%"))
    assert resp.json["count_estimated"] is False


def test_count_is_flagged_estimated_above_the_limit(app, api, dataset, monkeypatch):
    from models.archives import Unit

    limit = 50
    monkeypatch.setitem(app.config, "LIST_EXACT_COUNT_LIMIT", limit)
    client = api("Admin")
    resp = client.get(api_list("unit", 0, 10))
    assert resp.status_code == 200
    assert resp.json["count_estimated"] is True
    # PostgreSQL's estimate (the generator ran ANALYZE): close to the real number, never below
    # what was seen.
    exact = _exact(app, Unit)
    assert limit < resp.json["count"]
    assert abs(resp.json["count"] - exact) <= 0.2 * exact
    resp = client.get(api_list("unit", 0, 10, UNIT_FILTER_API))
    assert resp.json["count_estimated"] is True
    assert resp.json["count"] > limit
    # A list below the limit is still exact under the same setting.
    monkeypatch.setitem(app.config, "LIST_EXACT_COUNT_LIMIT", exact + 10)
    resp = client.get(api_list("unit", 0, 10))
    assert resp.json["count"] == exact
    assert resp.json["count_estimated"] is False


def test_scoped_pages_match_plain_offset(app, as_role, lb_estates):
    """The scoped user's pages (first, deep, filtered) are exactly estate A's rows in order, and
    the count is A's alone: the deferred join and the capped count keep the estate filter."""
    from models.archives import Building, Resident, Unit

    in_a_units = Unit.building_id.in_(select(Building.id).where(Building.estate_id == lb_estates[0]))
    in_a_residents = Resident.unit_id.in_(select(Unit.id).where(in_a_units))
    client = as_role(SCOPED, "api")
    for size in (10, 100):
        for page in (0, deep_page(size), deep_page(size) + 1):
            resp = client.get(api_list("unit", page, size))
            assert resp.json["ids"] == _plain_ids(app, Unit, (Unit.code.asc(), Unit.id.asc()), page, size, in_a_units)
            resp = client.get(api_list("resident", page, size))
            assert resp.json["ids"] == _plain_ids(app, Resident, (Resident.id.desc(),), page, size, in_a_residents)
    resp = client.get(api_list("unit", 0, 10))
    assert resp.json["count"] == PER_ESTATE == _exact(app, Unit, in_a_units)
    resp = client.get(api_list("unit", 0, 10, UNIT_FILTER_API))
    assert resp.json["count"] == _exact(app, Unit, in_a_units & (Unit.status == "vacant"))
