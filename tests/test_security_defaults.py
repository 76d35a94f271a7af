"""Security defaults: login rate limits, password complexity, cookie flags, CSRF, error pages.

The shared ``app`` fixture turns rate limiting and CSRF off; the tests that need them build a
second app on the same (already migrated) database with them on, one per test so every test
starts with a fresh limiter.
"""

from __future__ import annotations

import re
import uuid

import pytest

from tests import conftest as cf

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

BAD_LOGIN = {"username": "admin", "password": "not-the-password", "provider": "db"}
WEAK_PASSWORDS = ("123456", "password", "Desk12", "alllowercase-but-long-1")


def _make_app(database_url, **extra):
    from app import create_app

    return create_app(cf.desk_test_config(database_url, SYNC_ROLES_ON_START=False, **extra))


@pytest.fixture()
def secure_app(app, database_url):
    """Rate limiting and CSRF on, as in production."""
    return _make_app(database_url, RATELIMIT_ENABLED=True, AUTH_RATE_LIMITED=True, WTF_CSRF_ENABLED=True)


def _csrf_token(html: str) -> str:
    m = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html) or re.search(
        r'id="csrf_token"[^>]*value="([^"]+)"', html
    )
    assert m, "no csrf_token in the page"
    return m.group(1)


def _login_form(client, username="admin", password=cf.PASSWORD):
    token = _csrf_token(client.get("/login/").get_data(as_text=True))
    return client.post("/login/", data={"username": username, "password": password, "csrf_token": token})


# --- the defaults themselves -------------------------------------------------------------------
def test_config_defaults_are_secure(monkeypatch):
    import importlib

    import config

    for name in ("AUTH_RATE_LIMITED", "RATELIMIT_ENABLED", "PASSWORD_COMPLEXITY", "SESSION_COOKIE_SECURE"):
        monkeypatch.delenv(f"DESK_{name}", raising=False)
    config = importlib.reload(config)
    assert config.AUTH_RATE_LIMITED is True
    assert config.RATELIMIT_ENABLED is True
    assert config.FAB_PASSWORD_COMPLEXITY_ENABLED is True
    assert config.SESSION_COOKIE_SECURE is True
    assert config.SESSION_COOKIE_HTTPONLY is True
    assert config.SESSION_COOKIE_SAMESITE == "Lax"
    assert config.REMEMBER_COOKIE_SECURE is True
    assert config.WTF_CSRF_ENABLED is True
    assert config.DEBUG is False


# --- login rate limiting -------------------------------------------------------------------------
def test_api_login_is_rate_limited(secure_app):
    client = secure_app.test_client()
    codes = [client.post("/api/v1/security/login", json=BAD_LOGIN).status_code for _ in range(10)]
    assert codes == [401] * 10
    resp = client.post("/api/v1/security/login", json=BAD_LOGIN)
    assert resp.status_code == 429
    assert resp.is_json and "message" in resp.json
    # The right password is refused too while the limit holds: guessing gains nothing.
    resp = client.post("/api/v1/security/login", json={**BAD_LOGIN, "password": cf.PASSWORD})
    assert resp.status_code == 429


def test_form_login_is_rate_limited(secure_app):
    client = secure_app.test_client()
    for _ in range(10):
        resp = _login_form(client, password="not-the-password")
        assert resp.status_code in (200, 302), resp.status_code
    resp = _login_form(client, password="not-the-password")
    assert resp.status_code == 429
    body = resp.get_data(as_text=True)
    assert "Traceback" not in body


def test_good_logins_under_the_limit_work(secure_app):
    client = secure_app.test_client()
    resp = client.post("/api/v1/security/login", json={**BAD_LOGIN, "password": cf.PASSWORD})
    assert resp.status_code == 200 and resp.json["access_token"]
    resp = _login_form(client)
    assert resp.status_code == 302


# --- password complexity ------------------------------------------------------------------------
def test_fab_validator_refuses_weak_passwords(app):
    from flask_appbuilder.exceptions import PasswordComplexityValidationError
    from flask_appbuilder.validators import PasswordComplexityValidator
    from wtforms import ValidationError

    class Field:
        def __init__(self, data):
            self.data = data

    with app.app_context():
        assert app.config["FAB_PASSWORD_COMPLEXITY_ENABLED"] is True
        validator = PasswordComplexityValidator()
        for weak in WEAK_PASSWORDS:
            with pytest.raises((ValidationError, PasswordComplexityValidationError)):
                validator(None, Field(weak))
        validator(None, Field(cf.PASSWORD))  # the fixtures' password is strong enough


def test_user_form_refuses_weak_password(app, web):
    client = web("Admin")
    username = f"weak_{uuid.uuid4().hex[:6]}"
    with app.app_context():
        role_id = app.appbuilder.sm.find_role("Staff").id
    form = {
        "first_name": "Weak",
        "last_name": "Password",
        "username": username,
        "email": f"{username}@desk.local",
        "active": "y",
        "roles": str(role_id),
        "password": "123456",
        "conf_password": "123456",
    }
    resp = client.post("/users/add", data=form)
    assert resp.status_code == 200  # the form comes back with the message
    assert "Must have at least two capital letters" in resp.get_data(as_text=True) or "至少" in resp.get_data(
        as_text=True
    )
    with app.app_context():
        assert app.appbuilder.sm.find_user(username=username) is None
    # A strong password is accepted through the same form.
    resp = client.post("/users/add", data={**form, "password": cf.PASSWORD, "conf_password": cf.PASSWORD})
    assert resp.status_code == 302
    with app.app_context():
        assert app.appbuilder.sm.find_user(username=username) is not None


def test_password_reset_refuses_weak_password(app, web):
    from werkzeug.security import check_password_hash

    with app.app_context():
        user = app.appbuilder.sm.find_user(username="staff")
        pk, before = user.id, user.password
    client = web("Admin")
    resp = client.post(f"/resetpassword/form?pk={pk}", data={"password": "abc", "conf_password": "abc"})
    assert resp.status_code == 200
    from app.extensions import db

    with app.app_context():
        user = app.appbuilder.sm.find_user(username="staff")
        assert user.password == before
        assert check_password_hash(user.password, cf.PASSWORD)
        db.session.remove()
    # Own password: the same rule.
    resp = web("Staff").post("/resetmypassword/form", data={"password": "abc", "conf_password": "abc"})
    assert resp.status_code == 200
    with app.app_context():
        assert check_password_hash(app.appbuilder.sm.find_user(username="staff").password, cf.PASSWORD)
        db.session.remove()


# --- session cookie -----------------------------------------------------------------------------
def _session_cookie_header(resp) -> str:
    cookies = [h for h in resp.headers.getlist("Set-Cookie") if h.startswith("session=")]
    assert cookies, resp.headers
    return cookies[-1]


def test_session_cookie_flags_under_default_config(app, database_url):
    cfg = cf.desk_test_config(database_url, SYNC_ROLES_ON_START=False)
    del cfg["SESSION_COOKIE_SECURE"]  # what config.py says, not the test override
    from app import create_app

    default_app = create_app(cfg)
    assert default_app.config["SESSION_COOKIE_SECURE"] is True
    client = default_app.test_client()
    resp = client.post("/login/", data={"username": "admin", "password": cf.PASSWORD})
    assert resp.status_code == 302
    header = _session_cookie_header(resp)
    attrs = {a.strip().split("=")[0].lower(): a.strip() for a in header.split(";")[1:]}
    assert "httponly" in attrs
    assert attrs.get("samesite", "").lower() == "samesite=lax"
    assert "secure" in attrs


def test_session_cookie_flags_on_test_app(web, app):
    client = app.test_client()
    resp = client.post("/login/", data={"username": "admin", "password": cf.PASSWORD})
    header = _session_cookie_header(resp)
    assert "HttpOnly" in header and "SameSite=Lax" in header


# --- CSRF ----------------------------------------------------------------------------------------
def test_form_post_without_csrf_token_is_refused(secure_app):
    client = secure_app.test_client()
    assert _login_form(client).status_code == 302
    name = f"CSRF业主{uuid.uuid4().hex[:6]}"
    form = {"name": name, "kind": "company", "phone": "13812345678"}
    resp = client.post("/owner/add", data=form)
    assert resp.status_code == 400
    assert "Traceback" not in resp.get_data(as_text=True)
    # The token from the form page works.
    token = _csrf_token(client.get("/owner/add").get_data(as_text=True))
    resp = client.post("/owner/add", data={**form, "csrf_token": token})
    assert resp.status_code == 302, resp.get_data(as_text=True)[:2000]
    with secure_app.app_context():
        from app.extensions import db
        from models.archives import Owner

        owner = db.session.query(Owner).filter_by(name=name).one()
        owner_id = owner.id
        db.session.remove()
    # A delete button (no WTForms form behind it) is protected as well.
    resp = client.post(f"/owner/delete/{owner_id}")
    assert resp.status_code == 400
    resp = client.post(f"/owner/delete/{owner_id}", data={"csrf_token": token})
    assert resp.status_code == 302


def test_login_form_without_csrf_token_is_refused(secure_app):
    client = secure_app.test_client()
    resp = client.post("/login/", data={"username": "admin", "password": cf.PASSWORD})
    assert resp.status_code == 400


def test_api_with_jwt_needs_no_csrf_token(secure_app):
    client = secure_app.test_client()
    token = client.post("/api/v1/security/login", json={**BAD_LOGIN, "password": cf.PASSWORD}).json["access_token"]
    resp = client.post(
        "/api/v1/estate/",
        json={"code": f"C{uuid.uuid4().hex[:6]}", "name": "CSRF小区"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert resp.status_code == 201, resp.get_data(as_text=True)


# --- no stack trace, ever -------------------------------------------------------------------------
SECRET_TEXT = "boom-secret-internal-detail"


@pytest.fixture()
def exploding_app(app, database_url, monkeypatch):
    """An app whose data layer fails unexpectedly, plus a route that raises."""
    from views.datamodel import DeskInterface

    def explode(*args, **kwargs):
        raise RuntimeError(SECRET_TEXT)

    monkeypatch.setattr(DeskInterface, "query", explode)
    monkeypatch.setattr(DeskInterface, "get", explode)
    flask_app = _make_app(database_url)

    @flask_app.route("/_test_only/explode")
    def _explode():
        raise ZeroDivisionError(SECRET_TEXT)

    return flask_app


def _assert_clean(resp, status=500):
    body = resp.get_data(as_text=True)
    assert resp.status_code == status, body[:500]
    assert "Traceback" not in body
    assert SECRET_TEXT not in body
    assert "RuntimeError" not in body and "ZeroDivisionError" not in body
    return body


def test_unexpected_error_shows_no_stack_trace(exploding_app, tokens):
    client = exploding_app.test_client()
    body = _assert_clean(client.get("/_test_only/explode"))
    assert "<html" in body.lower()
    headers = {"Authorization": f"Bearer {tokens['Admin']}"}
    for url in ("/api/v1/owner/", "/api/v1/owner/1"):
        resp = client.get(url, headers=headers)
        _assert_clean(resp)
        assert resp.is_json and set(resp.json) == {"message"}
    web = exploding_app.test_client()
    assert web.post("/login/", data={"username": "admin", "password": cf.PASSWORD}).status_code == 302
    for url in ("/owner/list/", "/owner/show/1", "/owner/edit/1"):
        resp = web.get(url)
        body = _assert_clean(resp)
        assert "<html" in body.lower()


# --- API error bodies are JSON ----------------------------------------------------------------------
def _json_error(resp, status):
    assert resp.status_code == status, resp.get_data(as_text=True)[:500]
    assert resp.mimetype == "application/json", resp.get_data(as_text=True)[:500]
    assert "Traceback" not in resp.get_data(as_text=True)
    return resp.json


def test_api_errors_are_json(api, app, make_unit):
    admin = api("Admin")
    _json_error(admin.get("/api/v1/owner/999999999"), 404)
    _json_error(admin.put("/api/v1/owner/999999999", json={"name": "x", "version": 1}), 404)
    _json_error(admin.delete("/api/v1/owner/999999999"), 404)
    _json_error(admin.get("/api/v1/no_such_resource/"), 404)
    _json_error(admin.patch("/api/v1/owner/1", json={}), 405)
    _json_error(admin.get("/api/v1/owner/?q=(((not-rison"), 400)
    _json_error(admin.get("/api/v1/owner/?q=(page:'x')"), 400)
    _json_error(admin.post("/api/v1/owner/", data="not json", content_type="text/plain"), 400)
    client = app.test_client()
    _json_error(client.get("/api/v1/owner/"), 401)
    _json_error(client.get("/api/v1/owner/", headers={"Authorization": "Bearer not-a-token"}), 401)
    _json_error(api("Committee").post("/api/v1/owner/", json={"name": "委员会不能写"}), 403)

    body = _json_error(admin.post("/api/v1/owner/", json={"name": "坏电话", "phone": "12"}), 422)
    assert "phone" in body["message"], body
    body = _json_error(admin.post("/api/v1/owner/", json={"name": "坏类型", "kind": "martian"}), 422)
    assert "kind" in body["message"], body

    ids = make_unit()
    owner = admin.get(f"/api/v1/owner/{ids['owner']}").json
    version = owner["result"]["version"]
    body = _json_error(admin.put(f"/api/v1/owner/{ids['owner']}", json={"note": "no version"}), 422)
    assert "version" in body["message"]
    ok = admin.put(f"/api/v1/owner/{ids['owner']}", json={"note": "first", "version": version})
    assert ok.status_code == 200, ok.get_data(as_text=True)
    body = _json_error(admin.put(f"/api/v1/owner/{ids['owner']}", json={"note": "stale", "version": version}), 409)
    assert body["message"]
