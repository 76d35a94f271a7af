"""Nothing a role may not see leaks, on any read path of any registered resource (issue 8).

One database is seeded with known secrets: every user's password hash, owners' and residents'
full ID numbers and mobile numbers, a visitor's phone, a renovation contact's phone, a confidential
consultation, a robot webhook's access token, a payment's receipt number and payer, a bill's dispute
note. Then, for every resource in the registry x every role x every GET path the app serves for
that resource (the API's list, show, ``_info``, ``?q=(columns:...)`` and export; the screens'
list, show, export, lookups, print forms, registers and reports: every rule of the URL map under
``/<resource>/`` and ``/api/v1/<resource>/``), the answer (JSON, HTML or the cells of an .xlsx)
must not carry:

- a password hash, ever;
- a full ID number or phone number, where the role lacks the ``personal`` right on the resource;
- the confidential consultation's content, where the role is not one of its readers;
- a record of a resource the role may not read (a payment's receipt, a bill's note, a webhook
  token), through whatever other resource;

and the API's records never name a column whose path crosses into a resource the role may not
read. A resource registered later is walked without editing this file.
"""

from __future__ import annotations

import io
import json
import re

import pytest
from sqlalchemy import select

from app import roles as R
from models.visibility import READER_ROLES
from tests import conftest as cf
from tests.scene import CONSULT_SECRET, api_client
from views.registry import REGISTRY

ROLES = cf.ROLES


@pytest.fixture(scope="module")
def app(scene_app):
    return scene_app


@pytest.fixture(scope="module")
def tokens(scene_tokens):
    return scene_tokens


# --- the walk -----------------------------------------------------------------------------------
def _first_ids(app, resource: str, n: int = 3) -> list[int]:
    from app.extensions import db

    res = REGISTRY[resource]
    with app.app_context():
        return list(db.session.execute(select(res.model.id).order_by(res.model.id).limit(n)).scalars())


def _get_paths(app, resource: str, ids: list[int]) -> list[str]:
    """Every GET URL the app serves for the resource, arguments filled from the seeded rows."""
    res = REGISTRY[resource]
    urls = set()
    pk = ids[0] if ids else 987654321
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods:
            continue
        if not (rule.rule.startswith(f"/{resource}/") or rule.rule.startswith(f"/api/v1/{resource}/")):
            continue
        args = set(rule.arguments)
        if args - {"pk", "column", "n", "unit_id"}:
            continue
        values = {"pk": pk, "n": 0}
        if "unit_id" in args:
            values["unit_id"] = pk
        if "column" in args:
            for lk in res.lookups:
                urls.add(_build(rule.rule, {**values, "column": lk.column}) + "?q=1")
            continue
        urls.add(_build(rule.rule, values))
    for extra in ids[1:]:
        urls.add(f"/api/v1/{resource}/{extra}")
        urls.add(f"/{resource}/show/{extra}")
    if res.records:
        cols = ",".join(c for c in res.list_columns)
        urls.add(f"/api/v1/{resource}/?q=(columns:!({cols}),page_size:100)")
        urls.add(f"/api/v1/{resource}/?q=(page_size:100)")
        urls.add(f"/api/v1/{resource}/_info?q=(add_columns:(page_size:100),edit_columns:(page_size:100))")
    return sorted(urls)


def _build(rule: str, values: dict) -> str:
    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", lambda m: str(values[m.group(1)]), rule)


def _body_text(resp) -> str:
    data = resp.get_data()
    if resp.mimetype and "spreadsheetml" in resp.mimetype:
        from openpyxl import load_workbook

        wb = load_workbook(io.BytesIO(data), read_only=True)
        return "\n".join(
            str(v) for ws in wb.worksheets for row in ws.iter_rows(values_only=True) for v in row if v is not None
        )
    text = data.decode("utf-8", errors="replace")
    return json.dumps(resp.json, ensure_ascii=False) if resp.is_json else text


def _may_read(role: str, resource: str) -> bool:
    return "read" in R.rights_of(role, resource)


def _forbidden(scene, role: str, resource: str) -> list[tuple[str, str]]:
    out = [("password hash", h) for h in scene["hashes"]]
    # FAB translates an empty text with gettext(""): the catalogue's header, never for anyone.
    out.append(("the gettext catalogue header", "Project-Id-Version"))
    if "personal" not in R.rights_of(role, resource):
        out += [("personal data", s) for s in scene["personal"]]
    if role not in READER_ROLES:
        out += [("confidential content", s) for s in scene["confidential"]]
    for other, secrets in scene["records"].items():
        if not _may_read(role, other):
            out += [(f"a {other} record", s) for s in secrets]
    return out


def _crosses_unreadable(resource: str, role: str) -> list[str]:
    """The resource's columns whose path enters records the role may not read."""
    from views.visibility import path_models, resources_by_model

    by_model = resources_by_model()
    bad = []
    for col in REGISTRY[resource].all_columns():
        for model, _ in path_models(REGISTRY[resource].model, col):
            names = by_model.get(model)
            if names and not any(_may_read(role, n) for n in names):
                bad.append(col)
    return bad


def _has_path(record: dict, column: str) -> bool:
    node = record
    for part in column.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


CASES = [(resource, role) for resource in sorted(REGISTRY) for role in ROLES]
WALKED: list[int] = []


@pytest.mark.parametrize(("resource", "role"), CASES)
def test_no_path_shows_what_the_role_may_not_see(app, tokens, scene, web, resource, role):
    api = api_client(app, tokens[role])
    screen = cf.FreshContextClient(app, app.test_client())
    resp = screen.post("/login/", data={"username": role.lower(), "password": cf.PASSWORD})
    assert resp.status_code in (302, 303)
    forbidden = _forbidden(scene, role, resource)
    unreadable = _crosses_unreadable(resource, role)
    paths = _get_paths(app, resource, _first_ids(app, resource))
    for url in paths:
        client = api if url.startswith("/api/") else screen
        resp = client.get(url)
        assert resp.status_code < 500, f"{role} GET {url}: {resp.status_code}"
        if resp.status_code != 200:
            continue
        text = _body_text(resp)
        for what, secret in forbidden:
            assert secret not in text, f"{role} GET {url} shows {what}"
        if url.startswith("/api/") and resp.is_json and unreadable:
            records = resp.json.get("result")
            for record in records if isinstance(records, list) else [records]:
                if isinstance(record, dict):
                    shown = [c for c in unreadable if _has_path(record, c)]
                    assert not shown, f"{role} GET {url} names {shown} (records the role may not read)"
    WALKED.append(len(paths))


def test_the_walk_reached_every_resource_and_the_seed_is_there(app, scene):
    # Rows of most resources exist (so show paths and nested relations were exercised), and the
    # confidential consultation was served in clear to its readers: the assertions above bite.
    empty = [name for name in REGISTRY if not _first_ids(app, name, 1)]
    assert len(empty) <= len(REGISTRY) // 4, f"the seed left too many resources empty: {empty}"
    assert sum(WALKED) > 0
    print(f"\nexposure walk: {len(WALKED)} resource x role cases, {sum(WALKED)} resource x role x path requests")


def test_readers_see_the_confidential_consultation(app, tokens, scene):
    for role in ("Admin", "Manager", "Supervisor"):
        body = api_client(app, tokens[role]).get(f"/api/v1/ticket/{scene['consult']}").json["result"]
        assert body["description"] == CONSULT_SECRET, role
    body = api_client(app, tokens["Staff"]).get(f"/api/v1/ticket/{scene['consult']}").json["result"]
    assert body["description"] != CONSULT_SECRET
    assert body["number"]  # the record itself is not hidden: its existence is in the registers


def test_the_confidential_requests_edit_form_is_not_a_way_round(app, tokens, scene):
    """Staff may edit requests, but not one it may not read: no form (it would show the content),
    no save by the screen or the API."""
    from tests.scene import api_client

    pk = scene["consult"]
    screen = cf.FreshContextClient(app, app.test_client())
    screen.post("/login/", data={"username": "staff", "password": cf.PASSWORD})
    resp = screen.get(f"/ticket/edit/{pk}")
    assert resp.status_code == 302 and CONSULT_SECRET not in resp.get_data(as_text=True)
    page = screen.get(resp.headers["Location"]).get_data(as_text=True)
    assert CONSULT_SECRET not in page and f"/ticket/edit/{pk}" not in page
    assert screen.post(f"/ticket/edit/{pk}", data={"kind": "consultation"}).status_code == 403
    version = api_client(app, tokens["Manager"]).get(f"/api/v1/ticket/{pk}").json["result"]["version"]
    resp = api_client(app, tokens["Staff"]).put(f"/api/v1/ticket/{pk}", json={"description": "x", "version": version})
    assert resp.status_code == 403 and CONSULT_SECRET not in resp.get_data(as_text=True)
    # A reader edits it as any other request.
    manager = cf.FreshContextClient(app, app.test_client())
    manager.post("/login/", data={"username": "manager", "password": cf.PASSWORD})
    assert CONSULT_SECRET in manager.get(f"/ticket/edit/{pk}").get_data(as_text=True)
