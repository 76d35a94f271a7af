"""Fuzz every operation of the product's REST API (its own OpenAPI spec) as Admin: no input, valid
or not, may produce a 5xx.

Schemathesis 4 generates valid and invalid inputs (bad rison ``q``, unknown order columns,
filters on relations, huge pages, non-JSON bodies, invalid pks) from ``/api/v1/_openapi`` of the
test app, authenticated with the Admin JWT from ``tokens``.

Each (operation, positive/negative) pair is its own pytest item. The operations are listed at
collection time from the spec of a database-less app (the test database only exists once fixtures
run), and ``test_every_spec_operation_is_fuzzed`` checks that list against the served spec.
(``schemathesis.pytest.from_fixture`` would do this, but its lazy loader fails on pytest 9:
``'Function' object has no attribute '_nodeid'``.)
"""

from __future__ import annotations

import re
import uuid
from decimal import Decimal

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from tests import conftest as cf

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")

# FAB's own endpoints, not the product's, are not fuzzed: the security API's login/refresh, the
# menu API and the spec endpoint itself. Everything under /api/v1/<resource>/ is.
FAB_OWN_PATHS = re.compile(r"^/api/(v1/security/|v1/menu/|\{version\}/_openapi)")
MAX_EXAMPLES = 8
HTTP_METHODS = {"get", "post", "put", "patch", "delete"}


def _operations() -> list[tuple[str, str]]:
    """Every operation of the v1 spec, built as ``/api/v1/_openapi`` builds it, on an app with no
    database (the spec does not read one), so that each operation is its own test item."""
    from flask_appbuilder.api import BaseApi
    from flask_appbuilder.api.manager import OpenApi

    from app import create_app

    spec_app = create_app(cf.desk_test_config("sqlite://", SYNC_ROLES_ON_START=False))
    with spec_app.test_request_context():
        spec = OpenApi._create_api_spec("v1")
        for base_api in spec_app.appbuilder.baseviews:
            if isinstance(base_api, BaseApi) and base_api.version == "v1":
                base_api.add_api_spec(spec)
        paths = spec.to_dict()["paths"]
    ops = []
    for path, methods in sorted(paths.items()):
        if FAB_OWN_PATHS.match(path):
            continue
        ops += [(path, method.upper()) for method in sorted(methods) if method in HTTP_METHODS]
    return ops


OPERATIONS = _operations()


# The fuzzer writes, edits and deletes at random as Admin (tickets, policies, notification
# channels...): it gets a database of its own, so nothing it leaves behind reaches other tests.
@pytest.fixture(scope="module")
def app():
    with cf.app_aside("desk_fuzz") as flask_app:
        yield flask_app


@pytest.fixture(scope="module")
def tokens(app):
    return cf.login_tokens(app)


@pytest.fixture(scope="module")
def seeded(app):
    """A few real rows in every table, so generated pks sometimes hit a record."""
    from app.extensions import db
    from models.archives import Building, Estate, Owner, Ownership, Resident, Unit, Vehicle

    with app.app_context():
        for i in range(3):
            tag = uuid.uuid4().hex[:6]
            estate = Estate(code=f"F{tag}", name=f"模糊测试小区{tag}")
            building = Building(estate=estate, code=str(i + 1), name=f"{i + 1}栋")
            unit = Unit(building=building, code=f"{i + 1}-1-{tag}", floor=1, gross_area=Decimal("90.00"))
            owner = Owner(name=f"模糊业主{tag}", kind="company", phone="13812345678")
            db.session.add_all([estate, building, unit, owner])
            db.session.flush()
            db.session.add(Ownership(unit_id=unit.id, owner_id=owner.id))
            db.session.add(Resident(unit_id=unit.id, name=f"住户{tag}", phone="13912345678"))
            db.session.add(Vehicle(unit_id=unit.id, plate=f"粤B{tag[:5].upper()}"))
            db.session.commit()
        db.session.remove()


@pytest.fixture(scope="module")
def api_schema(app, tokens, seeded):
    headers = {"Authorization": f"Bearer {tokens['Admin']}"}
    return schemathesis.openapi.from_wsgi("/api/v1/_openapi", app, headers=headers)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
@pytest.mark.parametrize(("path", "method"), OPERATIONS, ids=[f"{m} {p}" for p, m in OPERATIONS])
def test_no_server_error(api_schema, tokens, path, method, mode):
    operation = api_schema[path][method]
    headers = {"Authorization": f"Bearer {tokens['Admin']}"}

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def run(case):
        case.call_and_validate(headers=headers, checks=[not_a_server_error])

    run()


# Every operation again as each other role: what a role may not do must be refused with a 4xx,
# never a 5xx, however malformed the request (the export endpoint once answered 500 to some
# arguments only for roles without the personal right). Fewer examples per operation: the
# refusals come before most of the work.
ROLE_EXAMPLES = 2


@pytest.mark.parametrize("role", [r for r in cf.ROLES if r != "Admin"])
def test_no_server_error_as_each_role(api_schema, tokens, role):
    headers = {"Authorization": f"Bearer {tokens[role]}"}
    failures = []
    for path, method in OPERATIONS:
        operation = api_schema[path][method]
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=ROLE_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
            def run(case):
                case.call_and_validate(headers=headers, checks=[not_a_server_error])

            try:
                run()
            except Exception as exc:  # collect them all: one run names every operation that fails
                failures.append(f"{method} {path} ({mode.value}): {str(exc).splitlines()[0][:300]}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("role", cf.ROLES)
@pytest.mark.parametrize(
    "q",
    [
        "(order_column:!n)",  # not a string
        "(filters:!((col:!(phone),opr:eq,value:x)))",  # a list as the column
        "(filters:!((col:(a:b),opr:eq,value:x)))",  # an object as the column
        "(filters:(col:name))",  # filters that are not a list
        "(order_column:name,order_direction:sideways)",
    ],
)
def test_export_refuses_malformed_arguments_for_every_role(api, role, q):
    resp = api(role).get(f"/api/v1/owner/export?q={q}")
    assert resp.status_code in (400, 403), (role, q, resp.status_code, resp.get_data(as_text=True)[:300])
    assert resp.is_json and resp.json["message"]


def test_every_spec_operation_is_fuzzed(api_schema):
    in_spec = set()
    for result in api_schema.get_all_operations():
        operation = result.ok()
        if not FAB_OWN_PATHS.match(operation.path):
            in_spec.add((operation.path, operation.method.upper()))
    assert in_spec == set(OPERATIONS)


def test_every_resource_is_fuzzed():
    from views.registry import REGISTRY

    fuzzed = {path for path, _ in OPERATIONS}
    for name, res in REGISTRY.items():
        if res.records:
            assert {f"/api/v1/{name}/", f"/api/v1/{name}/{{pk}}"} <= fuzzed, name
        else:  # a report resource: its routes
            assert any(p.startswith(f"/api/v1/{name}/") for p in fuzzed), name


# --- the 5xx the fuzzer found, pinned as plain regression tests ---------------------------------
def _q(value) -> str:
    import prison

    return prison.dumps(value)


@pytest.mark.parametrize(
    ("url", "status"),
    [
        ("/api/v1/owner/99999999999999999999999", 404),  # pk beyond bigint
        ("/api/v1/owner/?q=1.5e%2B16", 400),  # rison number the parser chokes on (ValueError)
        ("/api/v1/owner/?q=" + _q({"page": -1}), 400),  # negative OFFSET
        ("/api/v1/owner/?q=" + _q({"page": 10**20, "page_size": 10}), 400),  # OFFSET beyond bigint
        ("/api/v1/owner/?q=" + _q({"order_column": "nope"}), 400),
        ("/api/v1/owner/?q=" + _q({"filters": [{"col": "name", "opr": "ct", "value": "a\x00b"}]}), 400),
        ("/api/v1/unit/?q=" + _q({"filters": [{"col": "floor", "opr": "gt", "value": 10**30}]}), 400),
        ("/api/v1/resident/?q=" + _q({"filters": [{"col": "is_current", "opr": "eq", "value": "maybe"}]}), 400),
        ("/api/v1/owner/export?q=" + _q({"filters": [{"col": "name", "opr": "ct", "value": "a\x00"}]}), 400),
    ],
)
def test_bad_read_input_is_4xx(api, url, status):
    resp = api("Admin").get(url)
    assert resp.status_code == status, resp.get_data(as_text=True)[:300]
    assert resp.is_json and resp.json["message"]
    assert "Bad Request:" not in str(resp.json["message"])


def test_bad_write_input_is_422_naming_the_field(api, make_unit):
    admin = api("Admin")
    ids = make_unit()
    cases = [
        ("/api/v1/building/", {"estate": "Unit code", "code": "9", "name": "b"}, "estate"),  # word as id
        ("/api/v1/building/", {"estate": 10**30, "code": "9", "name": "b"}, "estate"),  # id beyond bigint
        ("/api/v1/ownership/", {"unit": {"x": 1}, "owner": ids["owner"]}, "unit"),  # object as id
        ("/api/v1/owner/", {"name": "a\x00", "phone": "13812345678", "kind": "company"}, "name"),
        ("/api/v1/estate/", {"code": "E\x1b1", "name": "控制字符"}, "code"),  # breaks Excel export
        ("/api/v1/unit/", {"building": ids["building"], "code": "x-1", "gross_area": 1e20}, "gross_area"),
        ("/api/v1/building/", {"estate": ids["estate"], "code": "99", "name": "b", "floors": 10**12}, "floors"),
    ]
    for url, body, field in cases:
        resp = admin.post(url, json=body)
        assert resp.status_code == 422, (url, body, resp.get_data(as_text=True)[:300])
        assert field in resp.json["message"], (url, resp.json)


def test_bad_list_arguments_on_screens_are_400(web):
    client = web("Admin")
    for url in (
        "/owner/list/?page_OwnerView=abc",
        "/owner/list/?page_OwnerView=-1",
        "/owner/list/?psize_OwnerView=-3",
        "/owner/list/?_oc_OwnerView=nope&_od_OwnerView=asc",
        "/owner/list/?_flt_0_name=a%00b",
        "/unit/list/?_flt_0_floor=99999999999999999999999",
        "/ownership/lookup/unit?q=a%00",
    ):
        resp = client.get(url)
        assert resp.status_code == 400, url
        assert "Traceback" not in resp.get_data(as_text=True)
    assert client.get("/owner/show/99999999999999999999999").status_code == 404
