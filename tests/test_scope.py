"""Several estates, one company (issue 11): a user of estate A never reads, changes or learns the
existence of a record of estate B, on any path, for every resource of the registry.

Two estates are seeded with rows of every area (tests/scene.py ``seed_estate``), and one user
per role works for estate A only. For every resource x role x path:

- the API list and its count, the screen list, the export: exactly A's rows (the rows a
  company-level user sees, less B's);
- B's records: 404 on the API and the screen (show, edit, delete, every workflow action), never
  403, so their existence is not told;
- a write that puts a record into B (a relation to B's unit, building, renovation, estate...): 403;
- lookups and the forms' dropdowns offer A's records only;
- registers and reports count A only, and asking for B's figures is a 404.

A resource registered later is walked without editing this file.
"""

from __future__ import annotations

import io

import pytest
from openpyxl import load_workbook
from sqlalchemy import inspect, select

from app import roles as R
from models.scope import scope_clause
from tests import conftest as cf
from tests.scene import api_client, two_estates
from views.actions import RIGHT_WORDS
from views.registry import REGISTRY
from views.scope import COMPANY, COMPANY_ONLY

SCOPED_ROLES = ("Manager", "Supervisor", "Staff", "Committee")


@pytest.fixture(scope="module")
def app():
    with cf.app_aside("desk_scope") as flask_app:
        yield flask_app


@pytest.fixture(scope="module")
def estates(app):
    """Estates A and B with rows of every area; users of every role working for A only."""
    return two_estates(app, ("SCA", "SCB"), SCOPED_ROLES)


def _ids_in(app, resource: str, estate_id: int) -> set[int]:
    """The ids of the resource's rows that belong to ``estate_id`` (by its declared path)."""
    from app.extensions import db

    res = REGISTRY[resource]
    if res.estate in (COMPANY, COMPANY_ONLY):
        return set()
    with app.app_context():
        clause = scope_clause(res.model, res.estate, frozenset({estate_id}))
        ids = set(db.session.execute(select(res.model.id).where(clause)).scalars())
        db.session.remove()
    return ids


def _list_ids(client, resource: str) -> tuple[set[int], int]:
    resp = client.get(f"/api/v1/{resource}/?q=(page_size:100,columns:!(id))")
    assert resp.status_code == 200, resp.get_data(as_text=True)[:300]
    return {r["id"] for r in resp.json["result"]}, resp.json["count"]


def _screen(app, role: str):
    client = cf.FreshContextClient(app, app.test_client())
    resp = client.post("/login/", data={"username": f"{role.lower()}_a", "password": cf.PASSWORD})
    assert resp.status_code in (302, 303)
    return client


CASES = [(resource, role) for resource in sorted(REGISTRY) for role in SCOPED_ROLES]
WALKED: list[int] = []


@pytest.mark.parametrize(("resource", "role"), CASES)
def test_a_user_of_estate_a_never_meets_estate_b(app, estates, resource, role):
    res = REGISTRY[resource]
    rights = R.rights_of(role, resource)
    api = api_client(app, estates["tokens"][role])
    admin = api_client(app, estates["admin"])
    walked = 0
    if "read" not in rights or not res.records:
        assert api.get(f"/api/v1/{resource}/").status_code in (403, 404, 405)
        WALKED.append(1)
        return
    a_ids, b_ids = _ids_in(app, resource, estates["A"]), _ids_in(app, resource, estates["B"])
    everyone, _ = _list_ids(admin, resource)
    mine, count = _list_ids(api, resource)
    if res.estate == COMPANY:
        # The company's own rows are everyone's (a per-user list, such as the inbox, excepted).
        assert res.base_filters or mine == everyone, f"{role} {resource}: the company's rows are everyone's"
    elif res.estate == COMPANY_ONLY:
        assert mine == set() and count == 0, f"{role} {resource}: company-only rows shown to an estate user"
    else:
        assert b_ids or res.estate_optional, f"{resource}: estate B has no row to hide"
        assert mine == everyone - b_ids and not mine & b_ids, f"{role} {resource}: the list is not A's"
        assert count == len(mine), f"{role} {resource}: the count says {count}, the list has {len(mine)}"
        assert mine <= a_ids | (everyone - a_ids - b_ids), resource
    walked += 2
    screen = _screen(app, role)
    page = screen.get(f"/{resource}/list/?psize_{res.class_stem}View=100").get_data(as_text=True)
    for pk in b_ids:
        # B's records are not there: 404 on every path, never a 403 that would tell they exist.
        assert f"/{resource}/show/{pk}\"" not in page, f"{role} {resource}: B's row {pk} on the list"
        assert api.get(f"/api/v1/{resource}/{pk}").status_code == 404, f"{role} GET {resource}/{pk}"
        assert screen.get(f"/{resource}/show/{pk}").status_code == 404, f"{role} show {resource}/{pk}"
        walked += 3
        if "write" in rights and res.writable:
            if res.edit_columns:
                assert api.put(f"/api/v1/{resource}/{pk}", json={"version": 1}).status_code == 404
                assert screen.get(f"/{resource}/edit/{pk}").status_code == 404
                walked += 2
            if res.deletable:
                assert api.delete(f"/api/v1/{resource}/{pk}").status_code == 404
                walked += 1
        for action in res.actions:
            # With the action's right: not there (404); without it: not allowed (403), as anywhere.
            expected = 404 if RIGHT_WORDS[action.right] in rights else 403
            resp = api.post(f"/api/v1/{resource}/{pk}/{action.api_path}", json={"version": 1})
            assert resp.status_code == expected, f"{role} {resource}.{action.name} on B: {resp.status_code}"
            walked += 1
    if "export" in rights:
        resp = api.get(f"/api/v1/{resource}/export")
        assert resp.status_code == 200
        rows = list(load_workbook(io.BytesIO(resp.get_data()), read_only=True).worksheets[0].iter_rows()) [1:]
        assert len(rows) == len(mine), f"{role} {resource}: the export has {len(rows)} rows, the list {len(mine)}"
        walked += 1
    WALKED.append(walked)


def _b_parents(app, estates, resource: str) -> dict[str, int]:
    """For each relation the resource's add form takes: a record of estate B it could point at."""
    out = {}
    res = REGISTRY[resource]
    mapper = inspect(res.model)
    for col in res.add_columns or ():
        rel = mapper.relationships.get(col)
        if rel is None:
            continue
        target = next((r for r in REGISTRY.values() if r.model is rel.mapper.class_ and r.records), None)
        if target is None or target.estate in (None, COMPANY, COMPANY_ONLY):
            continue
        ids = _ids_in(app, target.name, estates["B"])
        if ids:
            out[col] = min(ids)
    return out


WRITERS = [(n, role) for n, res in sorted(REGISTRY.items()) if res.writable for role in ("Manager", "Supervisor", "Staff")]


@pytest.mark.parametrize(("resource", "role"), WRITERS)
def test_nothing_is_put_into_estate_b(app, estates, resource, role):
    if "write" not in R.rights_of(role, resource) or not REGISTRY[resource].add_columns:
        return
    api = api_client(app, estates["tokens"][role])
    for col, pk in _b_parents(app, estates, resource).items():
        value = [pk] if inspect(REGISTRY[resource].model).relationships[col].uselist else pk
        resp = api.post(f"/api/v1/{resource}/", json={col: value})
        assert resp.status_code == 403, f"{role} POST {resource} with {col} of estate B: {resp.status_code}"
        WALKED.append(1)


def test_lookups_offer_estate_a_only(app, estates):
    screen = _screen(app, "Staff")
    b_units = _ids_in(app, "unit", estates["B"])
    b_owners = _ids_in(app, "owner", estates["B"])
    for resource, column, hidden in (("resident", "unit", b_units), ("ticket", "unit", b_units), ("ticket", "owner", b_owners)):
        got = {r["id"] for r in screen.get(f"/{resource}/lookup/{column}?q=").json["results"]}
        assert got and not got & hidden, (resource, column)
    form = screen.get("/ticket/add").get_data(as_text=True)
    assert f'value="{estates["B"]}"' not in form.split('id="estate"', 1)[1].split("</select>", 1)[0]


def test_an_import_into_estate_b_is_refused_and_writes_nothing(app, estates):
    """A unit import names its estate: estate B is not offered to a user of A, and a file sent
    for it anyway is refused naming the estate, with nothing written."""
    from sqlalchemy import func

    from app.extensions import db
    from models.archives import Unit
    from tests.test_excel_import import post, row, xlsx

    def units_of_b():
        with app.app_context():
            n = db.session.execute(select(func.count()).select_from(Unit).where(Unit.estate_id == estates["B"])).scalar()
            db.session.remove()
        return n

    screen = _screen(app, "Staff")
    form = screen.get("/unit/import/").get_data(as_text=True)
    assert f'value="{estates["A"]}"' in form and f'value="{estates["B"]}"' not in form
    before = units_of_b()
    resp = post(screen, estates["B"], xlsx([row(building="1", code="1-1-SCOPE")]), dry_run=False)
    assert resp.status_code == 422 and [e["field"] for e in resp.json["errors"]] == ["estate"], resp.get_data(as_text=True)[:300]
    assert units_of_b() == before


def test_registers_and_reports_count_estate_a_only(app, estates):
    import datetime as dt

    api = api_client(app, estates["tokens"]["Manager"])
    admin = api_client(app, estates["admin"])
    from models.fees import local_today

    today = local_today().isoformat()  # the office's day: reports and registers count local dates
    mine = api.get(f"/api/v1/ticket/report?from={today}&to={today}").json
    both = admin.get(f"/api/v1/ticket/report?from={today}&to={today}").json
    only_a = admin.get(f"/api/v1/ticket/report?from={today}&to={today}&estate={estates['A']}").json
    assert mine["total"] == only_a["total"] < both["total"], (mine["total"], only_a["total"], both["total"])
    assert api.get(f"/api/v1/ticket/report?estate={estates['B']}").status_code == 404
    screen = _screen(app, "Manager")
    assert screen.get(f"/ticket/register?register=help&estate={estates['B']}").status_code == 404
    register = screen.get(f"/ticket/register?register=help&from={today}&to={today}").get_data(as_text=True)
    from app.extensions import db
    from models.desk import Ticket

    with app.app_context():
        numbers = dict(db.session.execute(select(Ticket.number, Ticket.estate_id)).all())
        db.session.remove()
    assert any(n in register for n, e in numbers.items() if e == estates["A"])
    assert not any(n in register for n, e in numbers.items() if e == estates["B"])
    this_year = f"from={dt.date.today().year - 1}-01"
    fees = api.get(f"/api/v1/collection_report/report?{this_year}").json
    everyone = admin.get(f"/api/v1/collection_report/report?{this_year}").json
    assert {r["key"] for r in everyone["collection"]["by_estate"]} >= {estates["A"], estates["B"]}
    assert {r["key"] for r in fees["collection"]["by_estate"]} == {estates["A"]}
    assert {r["estate_id"] for r in fees["aging"]} <= {estates["A"]}
    assert {r["estate_id"] for r in everyone["aging"]} >= {estates["B"]}
    assert api.get(f"/api/v1/collection_report/report?estate={estates['B']}").status_code == 404


def test_records_about_a_unit_carry_its_units_estate(app, estates):
    """The copy of the unit's estate the scope filter reads (models/scope.InUnitsEstate) agrees
    with the unit on every row the product wrote, for every such model, current and future."""
    from sqlalchemy import func

    from app.extensions import db
    from models.archives import Unit
    from models.scope import estate_keyed_models

    models = estate_keyed_models()
    assert {m.__tablename__ for m in models} >= {"resident", "ownership", "renovation", "service_order"}
    with app.app_context():
        for model in models:
            rows, wrong = db.session.execute(
                select(func.count(), func.count().filter(model.estate_id != Unit.estate_id)).join(
                    Unit, Unit.id == model.unit_id
                )
            ).one()
            assert wrong == 0, f"{model.__tablename__}: {wrong} of {rows} rows disagree with their unit's estate"
        db.session.remove()


@pytest.mark.parametrize("role", ["Supervisor", "Staff"])
def test_moving_a_record_to_a_unit_of_estate_b_is_refused(app, estates, role):
    """An edit that points a record of A at B's unit is checked against where it goes: 403, and
    the record stays where it was, for every writable resource about a unit."""
    from app.extensions import db
    from models.scope import InUnitsEstate

    api = api_client(app, estates["tokens"][role])
    b_unit = min(_ids_in(app, "unit", estates["B"]))
    tried = 0
    for name, res in sorted(REGISTRY.items()):
        if not (isinstance(res.model, type) and issubclass(res.model, InUnitsEstate)):
            continue
        if "write" not in R.rights_of(role, name) or "unit" not in (res.edit_columns or ()):
            continue
        for pk in sorted(_ids_in(app, name, estates["A"]))[:1]:
            got = api.get(f"/api/v1/{name}/{pk}")
            assert got.status_code == 200, (name, got.status_code)
            resp = api.put(f"/api/v1/{name}/{pk}", json={"unit": b_unit, "version": got.json.get("version")})
            assert resp.status_code == 403, f"{role} moved {name} {pk} to estate B: {resp.status_code}"
            with app.app_context():
                row = db.session.get(res.model, pk)
                assert (row.estate_id, row.unit_id) != (estates["B"], b_unit)
                db.session.remove()
            tried += 1
    assert tried >= 2, tried


def test_a_unit_moved_to_another_estate_takes_its_records_along(app, estates):
    """A unit whose building is corrected to one of another estate carries its residents,
    ownerships, vehicles... with it (models/scope.follow_unit), so nobody keeps seeing them."""
    from decimal import Decimal

    from flask_appbuilder.security.sqla.models import User

    from app.extensions import db
    from models.archives import Building, Owner, Ownership, Resident, Unit, Vehicle
    from models.base import acting_as

    with app.app_context():
        admin_id = db.session.execute(select(User.id).where(User.username == "admin")).scalar_one()
        a_building = db.session.execute(select(Building).where(Building.estate_id == estates["A"])).scalars().first()
        b_building = db.session.execute(select(Building).where(Building.estate_id == estates["B"])).scalars().first()
        with acting_as(admin_id):
            unit = Unit(building=a_building, code="9-9-909", floor=9, gross_area=Decimal("90"))
            owner = Owner(name="迁移业主", phone="13900009909")
            db.session.add_all([unit, owner])
            db.session.flush()
            records = [
                Ownership(unit=unit, owner=owner),
                Resident(unit_id=unit.id, owner=owner, name="迁移住户", phone="13900009908"),
                Vehicle(plate="粤B9M909", unit=unit, owner=owner),
            ]
            db.session.add_all(records)
            db.session.commit()
            assert {r.estate_id for r in records} == {estates["A"]}
            unit.building = b_building
            db.session.commit()
            for r in records:
                db.session.refresh(r)
            assert {r.estate_id for r in records} == {estates["B"]}
            # and back, then gone, so the other tests see the scene as seeded
            unit.building = a_building
            db.session.commit()
            for r in records:
                db.session.refresh(r)
            assert {r.estate_id for r in records} == {estates["A"]}
            for r in records:
                db.session.delete(r)
            db.session.delete(unit)
            db.session.delete(owner)
            db.session.commit()
        db.session.remove()


def test_the_walk_walked(estates):
    assert sum(WALKED) > 500
    print(f"\nscope walk: {len(CASES)} resource x role cases, {sum(WALKED)} checks")


def test_the_demo_has_two_estates_and_a_login_per_role_for_each(tmp_path):
    """The quick start's data (SQLite, as it runs): two estates; staff_a sees 翠湖花园's units
    only, staff_b 锦绣华庭's, the company-level Manager both."""
    from flask_migrate import upgrade

    from app import create_app
    from app.factory import sync_roles
    from app.seed import demo_data

    cfg = cf.desk_test_config(f"sqlite:///{tmp_path / 'demo.db'}", SYNC_ROLES_ON_START=False)
    demo = create_app(cfg)
    with demo.app_context():
        upgrade()
        sync_roles(demo.appbuilder)
        logins = demo_data(demo.appbuilder.sm)
    users = {u: (pw, who) for u, pw, who in logins}
    roles = ("manager", "supervisor", "staff", "committee")
    assert {f"{r}_{s}" for r in roles for s in "ab"} | {"admin", "manager"} == set(users)
    assert "翠湖花园" in users["staff_a"][1] and "锦绣华庭" in users["staff_b"][1] and "全部" in users["manager"][1]
    client = demo.test_client()

    def unit_estates(username):
        token = client.post(
            "/api/v1/security/login", json={"username": username, "password": users[username][0], "provider": "db"}
        ).json["access_token"]
        got = client.get("/api/v1/unit/?q=(page_size:100,columns:!(id))", headers={"Authorization": f"Bearer {token}"}).json
        with demo.app_context():
            from app.extensions import db
            from models.archives import Estate, Unit

            ids = [r["id"] for r in got["result"]]
            names = set(db.session.execute(select(Estate.name).join(Unit, Unit.estate_id == Estate.id).where(Unit.id.in_(ids))).scalars())
            db.session.remove()
        return names, got["count"]

    a, a_count = unit_estates("staff_a")
    b, b_count = unit_estates("staff_b")
    both, total = unit_estates("manager")
    assert a == {"翠湖花园"} and b == {"锦绣华庭"} and both == {"翠湖花园", "锦绣华庭"}
    assert a_count + b_count == total == 500


def test_escalations_and_alerts_go_to_the_estates_people_only(app, estates):
    """A late request of estate A is escalated to A's supervisors and managers (and the company's),
    never to B's; the same for the staff told of dunning notices and inspections."""
    from app.extensions import db
    from app.seed import ensure_user
    from models.base import utcnow
    from models.desk import recipients, users_with_role

    with app.app_context():
        sm = app.appbuilder.sm
        for role in ("Supervisor", "Manager", "Staff"):
            ensure_user(sm, f"{role.lower()}_b", role, role, "B", cf.PASSWORD, estates=[estates["B"]])
        people = recipients(db.session, 2, estates["A"], utcnow())
        told = {u.username for users in people.values() for u in users}
        staff_a = {u.username for u in users_with_role(db.session, "Staff", estates["A"])}
        db.session.remove()
    assert {"supervisor_a", "manager_a"} <= told and {"supervisor_b", "manager_b"}.isdisjoint(told), told
    assert "supervisor" in told and "manager" in told  # the company-level ones are told too
    assert "staff_a" in staff_a and "staff_b" not in staff_a
