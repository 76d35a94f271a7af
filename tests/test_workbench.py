"""The workbench (工作台) and the named views of lists (issue 12, part 1).

- every tile a role is shown counts exactly the rows of the list its link opens, inside the
  user's estates (two estates of data; the users work for estate A);
- every preset of every model (models/workbench.PRESETS, walked: a preset added later is
  covered) selects what its condition says, on the API, the screen and the export; an unknown
  one is 400 naming ``preset``;
- the home page keeps its statement budget; the clock is passed in, never mocked.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest
from sqlalchemy import event, select, update

from models.workbench import PRESETS, duty_gaps, moment
from tests import conftest as cf
from tests.scene import api_client, two_estates
from views.registry import REGISTRY

ROLES = ("Manager", "Supervisor", "Staff", "Committee")
NOW = dt.datetime(2026, 11, 29, 3, 30, tzinfo=dt.UTC)  # 11:30 in Shanghai


@pytest.fixture(scope="module")
def app():
    with cf.app_aside("desk_workbench") as flask_app:
        yield flask_app


@pytest.fixture(scope="module")
def office(app):
    """Estates A and B, users of every role for A, and requests in every state a tile counts:
    mine, overdue, escalated to level 1 and 2, unassigned, in both estates."""
    from flask_appbuilder.security.sqla.models import User

    from app.extensions import db
    from models.desk import Ticket

    office = two_estates(app, ("WBA", "WBB"), ROLES)
    with app.app_context():
        staff_a = db.session.execute(select(User.id).where(User.username == "staff_a")).scalar_one()
        past = dt.datetime.now(dt.UTC) - dt.timedelta(hours=3)
        for estate in (office["A"], office["B"]):
            ids = (
                db.session.execute(
                    select(Ticket.id).where(Ticket.estate_id == estate, Ticket.status.in_(("new", "in_progress")))
                )
                .scalars()
                .all()
            )
            assert len(ids) >= 2, f"the scene has too few open requests in estate {estate}"
            # (core updates: the deadlines and steps a sweep would have reached by now)
            db.session.execute(
                update(Ticket)
                .where(Ticket.id == ids[0])
                .values(reply_due_at=past, replied_at=None, next_due_at=past, escalation_level=2, assignee_id=staff_a)
            )
            db.session.execute(update(Ticket).where(Ticket.id == ids[1]).values(escalation_level=1, assignee_id=None))
        db.session.commit()
        db.session.remove()
    return office


def _screen(app, username: str):
    client = cf.FreshContextClient(app, app.test_client())
    resp = client.post("/login/", data={"username": username, "password": cf.PASSWORD})
    assert resp.status_code in (302, 303)
    return client


TILE = re.compile(r'<a class="desk-tile[^"]*" href="([^"]+)".*?desk-tile-count"[^>]*>(\d+)<', re.S)


def _tiles(page: str) -> list[tuple[str, int]]:
    return [(href.replace("&amp;", "&"), int(n)) for href, n in TILE.findall(page)]


@pytest.mark.parametrize("role", ROLES)
def test_every_tile_counts_what_its_list_shows(app, office, role):
    screen = _screen(app, f"{role.lower()}_a")
    page = screen.get("/").get_data(as_text=True)
    assert "工作台" in page
    tiles = _tiles(page)
    if role == "Committee":
        assert tiles == [] and "本月服务台" in page and "本月收费" in page  # figures, nothing personal
        return
    assert tiles, page[:2000]
    api = api_client(app, office["tokens"][role])
    for href, count in tiles:
        m = re.fullmatch(r"/(\w+)/list/\?preset=(\w+)", href)
        assert m, href
        resource, preset = m.groups()
        listed = api.get(f"/api/v1/{resource}/?preset={preset}&q=(page_size:100,columns:!(id))")
        assert listed.status_code == 200, listed.get_data(as_text=True)[:300]
        assert listed.json["count"] == count, f"{role}: tile {href} says {count}, its list holds {listed.json['count']}"
        shown = screen.get(href).get_data(as_text=True)
        assert re.search(rf"记录数目:\s*</strong>\s*{count}\b|记录数目:\s*{count}\b", re.sub(r"<[^>]+>", "", shown)), (
            href
        )
        assert 'class="btn btn-sm btn-primary active"' in shown  # the named view is marked on the list


@pytest.mark.parametrize("role", ("Admin", *ROLES))
def test_every_link_on_the_workbench_opens(app, office, role):
    """No link on a role's home page leads to a refusal or an error (a Committee member is not
    offered the arrears by household, which it may not read)."""
    screen = _screen(app, "admin" if role == "Admin" else f"{role.lower()}_a")
    page = screen.get("/").get_data(as_text=True)
    body = page.split('class="desk-workbench"', 1)[1]
    links = sorted(set(h.replace("&amp;", "&") for h in re.findall(r'href="(/[^"]*)"', body)))
    assert links, role
    for href in links:
        resp = screen.get(href)
        assert resp.status_code == 200, f"{role}: {href} answers {resp.status_code}"
    if role == "Committee":
        assert "/collection_report/arrears" not in body


def test_tiles_count_estate_a_only(app, office):
    """The overdue, escalated and unassigned requests of estate B are not in A's counts."""
    from app.extensions import db
    from models.desk import Ticket
    from models.workbench import presets_of

    m = moment(0)
    with app.app_context():
        expected = {}
        for name in ("overdue", "escalated", "level2", "unassigned"):
            where = presets_of(Ticket)[name].where(m)
            a = db.session.execute(select(Ticket.id).where(where, Ticket.estate_id == office["A"])).scalars().all()
            b = db.session.execute(select(Ticket.id).where(where, Ticket.estate_id == office["B"])).scalars().all()
            assert a and b, name  # both estates have some: the count must choose
            expected[name] = len(a)
        db.session.remove()
    tiles = dict((href, n) for href, n in _tiles(_screen(app, "supervisor_a").get("/").get_data(as_text=True)))
    for name in ("overdue", "escalated", "unassigned"):
        assert tiles[f"/ticket/list/?preset={name}"] == expected[name], name
    tiles = dict(_tiles(_screen(app, "manager_a").get("/").get_data(as_text=True)))
    assert tiles["/ticket/list/?preset=level2"] == expected["level2"]


def test_staff_sees_their_requests_overdue_first(app, office):
    page = _screen(app, "staff_a").get("/").get_data(as_text=True)
    section = page.split("desk-panel-my-tickets", 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr class=\"([^\"]*)\">", section)
    assert rows and rows[0] == "danger", rows  # the overdue one first, marked
    assert "超时" in section


PRESET_CASES = [(model, p.name) for model, presets in PRESETS.items() for p in presets]


def _resource_of(model):
    return next(r for r in REGISTRY.values() if r.model is model and r.records and r.name != "ticket_archive")


@pytest.mark.parametrize(("model", "name"), PRESET_CASES, ids=[f"{m.__tablename__}.{n}" for m, n in PRESET_CASES])
def test_every_preset_selects_what_it_says_on_every_path(app, office, model, name):
    """As Admin (every row): the API list, the screen list and the export with ``?preset=`` hold
    exactly the rows its condition selects (and the resource's own base filter)."""
    from flask_appbuilder.security.sqla.models import User

    from app.extensions import db
    from models.workbench import presets_of

    res = _resource_of(model)
    with app.app_context():
        admin = db.session.execute(select(User.id).where(User.username == "admin")).scalar_one()
        where = presets_of(model)[name].where(moment(admin))
        q = select(model.id).where(where)
        if name == "unread" or res.name == "notification":
            q = q.where(model.user_id == admin)
        if hasattr(model, "archived_at") and res.name == "ticket":
            q = q.where(model.archived_at.is_(None))
        expected = set(db.session.execute(q).scalars())
        db.session.remove()
    api = api_client(app, office["admin"])
    got = api.get(f"/api/v1/{res.name}/?preset={name}&q=(page_size:100,columns:!(id))")
    assert got.status_code == 200, got.get_data(as_text=True)[:300]
    assert {r["id"] for r in got.json["result"]} == expected and got.json["count"] == len(expected)
    export = api.get(f"/api/v1/{res.name}/export?preset={name}")
    assert export.status_code == 200
    import io

    from openpyxl import load_workbook

    rows = list(load_workbook(io.BytesIO(export.data)).active.iter_rows(values_only=True))
    assert len(rows) - 1 == len(expected), (res.name, name, len(rows) - 1, len(expected))


def test_an_unknown_preset_is_a_clear_error(app, office):
    api = api_client(app, office["admin"])
    for url in ("/api/v1/ticket/?preset=nope", "/api/v1/ticket/export?preset=nope", "/api/v1/unit/?preset=mine"):
        resp = api.get(url)
        assert resp.status_code == 400 and "preset" in resp.json["message"], (url, resp.get_data(as_text=True)[:200])
    screen = _screen(app, "admin")
    resp = screen.get("/ticket/list/?preset=nope")
    assert resp.status_code == 400 and "没有这个视图：nope" in resp.get_data(as_text=True)


@pytest.mark.parametrize("role", ("Admin", *ROLES))
def test_the_home_page_keeps_its_statement_budget(app, office, role):
    from app.extensions import db

    screen = _screen(app, "admin" if role == "Admin" else f"{role.lower()}_a")
    screen.get("/")  # warm: the first request of a client loads what every later one reuses
    seen = []

    def count(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        resp = screen.get("/")
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert resp.status_code == 200
    assert len(seen) <= 10, f"{role}: {len(seen)} statements:\n" + "\n---\n".join(s[:200] for s in seen)


def test_the_day_is_the_offices_and_gaps_are_found():
    from types import SimpleNamespace

    m = moment(1, NOW)
    assert m.today == dt.date(2026, 11, 29) and m.period == "2026-11"
    assert m.day_start == dt.datetime(2026, 11, 28, 16, 0, tzinfo=dt.UTC)  # 00:00 in Shanghai
    assert m.month_start == dt.datetime(2026, 10, 31, 16, 0, tzinfo=dt.UTC)
    late = moment(1, dt.datetime(2026, 11, 30, 17, 0, tzinfo=dt.UTC))  # 01:00 on 1 December there
    assert late.today == dt.date(2026, 12, 1) and late.period == "2026-12"

    def shift(h1, h2):
        return SimpleNamespace(
            starts_at=m.day_start + dt.timedelta(hours=h1), ends_at=m.day_start + dt.timedelta(hours=h2)
        )

    assert duty_gaps([shift(0, 8), shift(8, 24)], m) == []
    assert duty_gaps([shift(-2, 8), shift(10, 30)], m) == [
        (m.day_start + dt.timedelta(hours=8), m.day_start + dt.timedelta(hours=10))
    ]
    assert duty_gaps([], m) == [(m.day_start, m.day_end)]
    assert duty_gaps([shift(0, 12)], m) == [(m.day_start + dt.timedelta(hours=12), m.day_end)]


def test_time_left_reads_as_the_clerk_says_it(app):
    from views.workbench import time_left

    with app.test_request_context("/"):
        assert time_left(NOW + dt.timedelta(minutes=35), NOW) == "剩余 35分"
        assert time_left(NOW - dt.timedelta(hours=2, minutes=5), NOW) == "超时 2小时5分"
        assert time_left(NOW - dt.timedelta(days=2, hours=3), NOW) == "超时 2天3小时"
        assert time_left(None, NOW) == ""


def test_the_figures_agree_with_the_reports_and_tiles_are_live(app, office):
    """The month's desk figures are the desk report's, the fee figures the fee report's, for the
    user's estates; a new request shows on the tiles at once."""
    from app.extensions import db
    from models.registers import Range, report_figures
    from models.reports import collection_figures

    screen = _screen(app, "manager_a")
    app.config["WORKBENCH_FIGURES_SECONDS"] = 0
    try:
        page = screen.get("/").get_data(as_text=True)
    finally:
        app.config["WORKBENCH_FIGURES_SECONDS"] = 60
    m = moment(0)
    with app.app_context():
        first = m.month_start.astimezone(dt.timezone(dt.timedelta(hours=8))).date()
        rng = Range(first=first, last=m.today, start=m.month_start, end=m.day_end, estate_id=office["A"])
        desk = report_figures(db.session, rng)
        fees = collection_figures(db.session, m.period, m.period, office["A"])
        db.session.remove()
    figures = page.split("desk-panel-desk-figures", 1)[1].split("desk-panel-money-figures", 1)[0]
    assert f'<div class="desk-figure">{desk["total"]}</div>' in figures
    rate = desk["compliance_all"]["reply"]["rate"]
    assert f'<div class="desk-figure">{"%.1f%%" % (rate * 100) if rate is not None else "—"}</div>' in figures
    money = page.split("desk-panel-money-figures", 1)[1]
    expected = "%.1f%%" % (fees["rate"] * 100) if fees["rate"] is not None else "—"
    assert f'<div class="desk-figure">{expected}</div>' in money

    before = dict(_tiles(screen.get("/").get_data(as_text=True)))["/ticket/list/?preset=today"]
    staff = api_client(app, office["tokens"]["Staff"])
    with app.app_context():
        from models.archives import Unit

        unit = db.session.execute(select(Unit.id).where(Unit.estate_id == office["A"])).scalars().first()
        db.session.remove()
    made = staff.post("/api/v1/ticket/", json={"kind": "other", "unit": unit, "description": "工作台实时计数"})
    assert made.status_code == 201, made.get_data(as_text=True)[:300]
    after = dict(_tiles(screen.get("/").get_data(as_text=True)))["/ticket/list/?preset=today"]
    assert after == before + 1
