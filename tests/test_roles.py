"""The role matrix (app/roles.py) is what the product does: every registered resource x every
role x every REST method and screen action, over HTTP. A resource registered later is covered
without touching this file."""

from __future__ import annotations

import pytest

from app import roles as R
from views.registry import REGISTRY

from .conftest import ROLES

CASES = [(resource, role) for resource in sorted(REGISTRY) for role in ROLES]


def allowed(role: str, resource: str, right: str) -> bool:
    if right == "write" and not REGISTRY[resource].writable:
        return False
    return right in R.rights_of(role, resource)


def expect(resp, ok: bool, ok_codes: tuple[int, ...], what: str):
    if ok:
        assert resp.status_code in ok_codes, f"{what}: expected {ok_codes}, got {resp.status_code}"
    else:
        assert resp.status_code == 403, f"{what}: expected 403, got {resp.status_code}"


@pytest.fixture(scope="module")
def some_ids(app):
    """One existing row id per resource (or a missing id where the table is empty)."""
    from decimal import Decimal

    from sqlalchemy import select

    from app.extensions import db
    from models.archives import Building, Estate, Owner, Ownership, Resident, Unit, Vehicle

    with app.app_context():
        estate = Estate(code="ROLES1", name="权限小区")
        building = Building(estate=estate, code="9")
        unit = Unit(building=building, code="9-1-101", gross_area=Decimal("90"))
        owner = Owner(name="权限业主", phone="13900001111", id_number="110101199003071276")
        db.session.add_all([estate, building, unit, owner])
        db.session.flush()
        db.session.add_all(
            [
                Ownership(unit_id=unit.id, owner_id=owner.id),
                Resident(unit_id=unit.id, owner_id=owner.id, name="权限住户", phone="13900002222"),
                Vehicle(plate="粤B12R45", unit_id=unit.id),
            ]
        )
        db.session.commit()
        ids = {}
        for name, res in REGISTRY.items():
            ids[name] = db.session.execute(select(res.model.id).limit(1)).scalar() or 987654321
        db.session.remove()
        return ids


@pytest.mark.parametrize(("resource", "role"), CASES)
def test_rest_api_obeys_matrix(api, some_ids, resource, role):
    client = api(role)
    base = f"/api/v1/{resource}"
    pk = some_ids[resource]
    if not REGISTRY[resource].records:
        # A report resource serves its figures only: no row of its model, to anyone.
        for resp, what in (
            (client.get(f"{base}/"), "list"),
            (client.get(f"{base}/{pk}"), "show"),
            (client.get(f"{base}/_info"), "_info"),
            (client.get(f"{base}/export"), "export"),
            (client.post(f"{base}/", json={}), "post"),
            (client.put(f"{base}/{pk}", json={}), "put"),
            (client.delete(f"{base}/{pk}"), "delete"),
        ):
            assert resp.status_code in (404, 405), f"{role} {what} {base}: {resp.status_code}"
        return
    read = allowed(role, resource, "read")
    write = allowed(role, resource, "write")
    export = allowed(role, resource, "export")
    expect(client.get(f"{base}/"), read, (200,), f"{role} GET {base}/")
    # pk-based routes: 404 where the table has no row yet still proves the permission passed.
    expect(client.get(f"{base}/{pk}"), read, (200, 404), f"{role} GET {base}/{pk}")
    expect(client.get(f"{base}/_info"), read, (200,), f"{role} GET {base}/_info")
    # Writes carry invalid bodies: an allowed write is refused by validation, so nothing changes.
    res = REGISTRY[resource]
    # A record nobody adds or edits by hand has no such route (405), for anyone.
    if res.add_columns:
        expect(client.post(f"{base}/", json={}), write, (400, 422), f"{role} POST {base}/")
    else:
        assert client.post(f"{base}/", json={}).status_code == 405, f"{role} POST {base}/"
    if res.edit_columns:
        expect(client.put(f"{base}/{pk}", json={}), write, (400, 404, 422), f"{role} PUT {base}/{pk}")
    else:
        assert client.put(f"{base}/{pk}", json={}).status_code in (404, 405), f"{role} PUT {base}/{pk}"
    if res.deletable:
        expect(client.delete(f"{base}/987654321"), write, (404,), f"{role} DELETE {base}/987654321")
    else:  # never deleted: no such route, for anyone
        assert client.delete(f"{base}/{pk}").status_code == 405, f"{role} DELETE {base}/{pk}"
    expect(client.get(f"{base}/export"), export, (200,), f"{role} GET {base}/export")


@pytest.mark.parametrize(("resource", "role"), CASES)
def test_screens_obey_matrix(web, some_ids, resource, role):
    client = web(role)
    pk = some_ids[resource]
    read = allowed(role, resource, "read")
    write = allowed(role, resource, "write")
    export = allowed(role, resource, "export")
    res = REGISTRY[resource]
    if not res.records:
        for url in (f"/{resource}/list/", f"/{resource}/show/{pk}", f"/{resource}/add", f"/{resource}/export.xlsx"):
            assert client.get(url).status_code == 404, f"{role} {url}"
        expect(client.get(f"/{resource}/{res.menu_route}"), read, (200,), f"{role} {resource} {res.menu_route}")
        return
    expect(client.get(f"/{resource}/list/"), read, (200,), f"{role} list {resource}")
    expect(client.get(f"/{resource}/show/{pk}"), read, (200, 404), f"{role} show {resource}")
    if res.add_columns and res.writable:
        expect(client.get(f"/{resource}/add"), write, (200,), f"{role} add form {resource}")
    else:
        assert client.get(f"/{resource}/add").status_code == 404, f"{role} add form {resource}"
    if res.edit_columns and res.writable:
        # 302: the record cannot be edited now (closed, started...): its page says why.
        resp = client.get(f"/{resource}/edit/{pk}")
        expect(resp, write, (200, 302, 404), f"{role} edit form {resource}")
        if resp.status_code == 302:
            assert f"/{resource}/show/" in resp.headers["Location"]
    else:
        assert client.get(f"/{resource}/edit/{pk}").status_code == 404, f"{role} edit form {resource}"
    if res.deletable:
        expect(client.post(f"/{resource}/delete/987654321"), write, (404,), f"{role} delete {resource}")
    else:
        assert client.post(f"/{resource}/delete/{pk}").status_code == 404, f"{role} delete {resource}"
    expect(client.get(f"/{resource}/export.xlsx"), export, (200,), f"{role} export {resource}")
    if not write:
        # No control that leads to a write is offered on the list.
        page = client.get(f"/{resource}/list/").get_data(as_text=True) if read else ""
        assert f"/{resource}/add" not in page
        assert f"/{resource}/edit/" not in page
        assert f"/{resource}/delete/" not in page


@pytest.mark.parametrize("role", [r for r in ROLES if r != "Admin"])
def test_only_admin_reaches_security_screens(web, role):
    client = web(role)
    for url in ("/users/list/", "/roles/list/", "/users/add"):
        assert client.get(url).status_code == 403, f"{role} {url}"


def test_admin_reaches_security_screens(web):
    assert web("Admin").get("/users/list/").status_code == 200


def test_every_resource_has_a_matrix_row_and_a_fixed_name():
    assert set(REGISTRY) <= set(R.MATRIX)
    # The resource names DESIGN.md fixes for the archives.
    assert {"estate", "building", "unit", "owner", "resident"} <= set(REGISTRY)


def test_committee_never_writes_anything():
    for resource in REGISTRY:
        assert "write" not in R.rights_of("Committee", resource)
        assert "personal" not in R.rights_of("Committee", resource)


def test_sync_roles_writes_the_matrix_to_the_tables(app):
    from app.factory import sync_roles

    with app.app_context():
        sm = app.appbuilder.sm
        sync_roles(app.appbuilder)
        staff = sm.find_role("Staff")
        pairs = {(p.permission.name, p.view_menu.name) for p in staff.permissions}
        assert ("can_write", "unit") in pairs
        assert ("can_read", "change_log") not in pairs
        committee = {(p.permission.name, p.view_menu.name) for p in sm.find_role("Committee").permissions}
        assert not any(perm == "can_write" for perm, _ in committee)
        # A permission added by hand to a matrix role is taken away by the next sync.
        pvm = sm.find_permission_view_menu("can_write", "estate")
        staff.permissions.append(pvm)
        sm.session.commit()
        sync_roles(app.appbuilder)
        staff = sm.find_role("Staff")
        assert ("can_write", "estate") not in {(p.permission.name, p.view_menu.name) for p in staff.permissions}


def test_info_gives_form_metadata_only_to_those_who_may_write(app, api):
    """``_info`` (the forms' columns with each relation's first values) for a role that may not
    write is empty; the registry is walked, so a resource added later is covered."""
    from app import roles as R
    from views.registry import REGISTRY

    checked = 0
    for name, res in REGISTRY.items():
        if not res.records:
            continue
        for role in ("Manager", "Supervisor", "Staff", "Committee"):
            rights = R.rights_of(role, name)
            if "read" not in rights:
                continue
            resp = api(role).get(f"/api/v1/{name}/_info")
            assert resp.status_code == 200, (name, role, resp.status_code)
            if "write" not in rights:
                assert resp.json["add_columns"] == [] and resp.json["edit_columns"] == [], (name, role)
                checked += 1
            elif res.writable and res.add_columns:
                assert resp.json["add_columns"], (name, role)
    assert checked > 20
