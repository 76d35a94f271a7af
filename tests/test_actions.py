"""Every declared workflow action of every resource (views/registry.py ``Action``), walked on the
shared scene (tests/scene.py) through the generated API and screens:

- each role, with and without the action's right: 403 without it; with it, a stale version is 409
  (before anything is looked at, so nothing changes);
- an action not offered in the record's state: 422 naming ``status``;
- bad input (a word for a date, a number or a choice; a person outside the staff): 422 naming the
  field, nothing changed;
- the detail page offers the action's form exactly when the API would accept it: the role has the
  right, may read the record (a confidential request: its readers only) and the record is in a
  state the action is offered in.

A resource or an action added later is walked without editing this file.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app import roles as R
from tests import conftest as cf
from tests.scene import api_client
from views.actions import RIGHT_WORDS
from views.registry import REGISTRY

ACTIONS = [(name, a.name) for name, res in sorted(REGISTRY.items()) for a in res.actions]
ROLES = cf.ROLES
BAD_VALUES = {"date": "not-a-date", "datetime": "yesterday-ish", "decimal": "12.3.4", "int": "three", "choice": "nonsense"}


@pytest.fixture(scope="module")
def app(scene_app, scene):
    return scene_app


def _allowed(role: str, resource: str, action) -> bool:
    return RIGHT_WORDS[action.right] in R.rights_of(role, resource)


def _readable(app, role: str, resource: str, pk: int) -> bool:
    """May the role's test user read the record (models/visibility.py)? The API refuses the others."""
    from flask_appbuilder.security.sqla.models import User

    from app.extensions import db
    from models.visibility import may_read_row

    with app.app_context():
        user = db.session.execute(select(User).where(User.username == role.lower())).scalar_one()
        readable = may_read_row(db.session.get(REGISTRY[resource].model, pk), user)
        db.session.remove()
    return readable


def _rows(app, resource: str, n: int = 30) -> list:
    """(id, version, offered?) of some of the resource's rows, as its screen serves them."""
    from app.extensions import db

    res = REGISTRY[resource]
    with app.app_context():
        objs = db.session.execute(select(res.model).order_by(res.model.id.desc()).limit(n)).scalars().all()
        out = [(o.id, o.version, {a.name: (a.when is None or a.when(o)) for a in res.actions}) for o in objs]
        db.session.remove()
    return out


def test_the_walk_has_actions_to_walk():
    assert len(ACTIONS) >= 5, ACTIONS


@pytest.mark.parametrize(("resource", "name"), ACTIONS)
def test_rights_and_stale_versions(app, scene_tokens, resource, name):
    action = REGISTRY[resource].action(name)
    rows = _rows(app, resource)
    assert rows, f"{resource}: the scene has no row to act on"
    pk, version, _ = rows[0]
    for role in ROLES:
        resp = api_client(app, scene_tokens[role]).post(
            f"/api/v1/{resource}/{pk}/{action.api_path}", json={"version": version - 1}
        )
        if _allowed(role, resource, action):
            assert resp.status_code == 409, f"{role} {resource}.{name}: {resp.status_code} {resp.get_data(as_text=True)[:200]}"
        else:
            assert resp.status_code == 403, f"{role} {resource}.{name}: {resp.status_code}"
    assert _rows(app, resource)[0][:2] == (pk, version), "a refused action changed the record"


@pytest.mark.parametrize(("resource", "name"), ACTIONS)
def test_state_and_input_refusals(app, scene_tokens, resource, name):
    res = REGISTRY[resource]
    action = res.action(name)
    role = next(r for r in ("Staff", "Supervisor", "Manager", "Admin") if _allowed(r, resource, action))
    api = api_client(app, scene_tokens[role])
    rows = _rows(app, resource)
    not_offered = [(pk, v) for pk, v, offered in rows if not offered[name]]
    offered = [(pk, v) for pk, v, ok in rows if ok[name]]
    walked = 0
    if not_offered:
        pk, version = not_offered[0]
        resp = api.post(f"/api/v1/{resource}/{pk}/{action.api_path}", json={"version": version})
        assert resp.status_code == 422 and "status" in resp.json["message"], (resource, name, resp.json)
        walked += 1
    bad = [i for i in action.inputs if i.kind in BAD_VALUES or i.kind == "person"]
    if offered and bad:
        pk, version = offered[0]
        for inp in bad:
            value = 987654321 if inp.kind == "person" else BAD_VALUES[inp.kind]
            resp = api.post(f"/api/v1/{resource}/{pk}/{action.api_path}", json={"version": version, inp.name: value})
            assert resp.status_code == 422 and inp.name in resp.json["message"], (resource, name, inp.name, resp.json)
            walked += 1
        assert [r[:2] for r in _rows(app, resource) if r[0] == pk] == [(pk, version)], "a refused action changed it"
    # Every action has at least one of the two refusals to show, or the scene lacks a state.
    assert walked or not (not_offered or bad), (resource, name)


@pytest.mark.parametrize(("resource", "name"), ACTIONS)
def test_the_page_offers_the_action_exactly_when_the_api_would_take_it(app, resource, name):
    action = REGISTRY[resource].action(name)
    rows = _rows(app, resource, 5)
    form = f"desk-{name.replace('_', '-')}"
    for role in ROLES:
        if "read" not in R.rights_of(role, resource) and role != "Admin":
            continue
        client = cf.FreshContextClient(app, app.test_client())
        client.post("/login/", data={"username": role.lower(), "password": cf.PASSWORD})
        for pk, _version, offered in rows:
            page = client.get(f"/{resource}/show/{pk}").get_data(as_text=True)
            expected = _allowed(role, resource, action) and offered[name] and _readable(app, role, resource, pk)
            shown = f"desk-action {form}" in page
            assert shown == expected, f"{role} {resource}/{pk} {name}: shown={shown}, the API would accept={expected}"
