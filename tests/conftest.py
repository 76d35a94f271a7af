"""Test fixtures on the real services: a fresh PostgreSQL database per run, built by the
migrations (``flask db upgrade``), one user per role, API tokens and logged-in browsers' clients.

Environment: ``DESK_TEST_PG`` (server URL without database, default
``postgresql+psycopg://postgres@127.0.0.1:5432``) and ``DESK_TEST_REDIS`` (default
``redis://127.0.0.1:6379/15``).
"""

from __future__ import annotations

import contextlib
import os
import uuid

import psycopg
import pytest

# The shared scene (tests/scene.py): its fixtures are available to every test module.
pytest_plugins = ["tests.scene"]

PG_SERVER = os.environ.get("DESK_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")
REDIS_URL = os.environ.get("DESK_TEST_REDIS", "redis://127.0.0.1:6379/15")
PASSWORD = "Desk-Test-Pass-12"
ROLES = ("Admin", "Manager", "Supervisor", "Staff", "Committee")


def _plain_dsn(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def create_database(prefix: str = "desk_test") -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(_plain_dsn(PG_SERVER) + "/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{PG_SERVER}/{name}"


def drop_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(_plain_dsn(PG_SERVER) + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def desk_test_config(database_url: str, **extra) -> dict:
    cfg = {
        "SQLALCHEMY_DATABASE_URI": database_url,
        "TESTING": True,
        "SECRET_KEY": "test-secret-key-that-is-long-enough-for-hs256",
        "WTF_CSRF_ENABLED": False,
        "SESSION_COOKIE_SECURE": False,
        "RATELIMIT_ENABLED": False,
        "AUTH_RATE_LIMITED": False,
        "CELERY_BROKER_URL": REDIS_URL,
        "CELERY_RESULT_BACKEND": REDIS_URL,
        # Test robots listen on loopback only; nothing is ever posted anywhere else.
        "WEBHOOK_ALLOWED_HOSTS": "127.0.0.1:*,localhost:*",
    }
    cfg.update(extra)
    return cfg


def as_system(flask_app, fn):
    """Run ``fn(session)`` in an app context as the system user (as a job does), commit, return."""
    from app.extensions import db
    from models.base import acting_as, system_user_id

    with flask_app.app_context():
        with acting_as(system_user_id(db.session)):
            try:
                out = fn(db.session)
                db.session.commit()
                return out
            finally:
                db.session.remove()


def migrate_and_sync(app) -> None:
    from flask_migrate import upgrade

    from app.factory import sync_roles

    with app.app_context():
        upgrade()
        sync_roles(app.appbuilder)


@pytest.fixture(scope="session")
def database_url():
    url = create_database()
    yield url
    drop_database(url)


def build_app(database_url: str):
    """An app on ``database_url``, migrated, with one user per role."""
    from app import create_app

    flask_app = create_app(desk_test_config(database_url))
    migrate_and_sync(flask_app)
    with flask_app.app_context():
        from app.seed import ensure_user

        for role in ROLES:
            ensure_user(flask_app.appbuilder.sm, role.lower(), role, role, "Tester", PASSWORD)
    return flask_app


@contextlib.contextmanager
def app_aside(prefix: str):
    """An app on a database of its own (named ``prefix_...``), for a module whose rows must not
    reach other tests' lists; Celery's current app is handed back afterwards (building an app
    makes its Celery the current one)."""
    from celery import _state

    url = create_database(prefix)
    previous = _state.get_current_app()
    try:
        flask_app = build_app(url)
        previous.set_current()
        yield flask_app
    finally:
        previous.set_default()
        previous.set_current()
        drop_database(url)


def login_tokens(flask_app) -> dict[str, str]:
    """role -> JWT access token."""
    client = flask_app.test_client()
    result = {}
    for role in ROLES:
        resp = client.post(
            "/api/v1/security/login",
            json={"username": role.lower(), "password": PASSWORD, "provider": "db"},
        )
        assert resp.status_code == 200, resp.get_data(as_text=True)
        result[role] = resp.json["access_token"]
    return result


@pytest.fixture(scope="session")
def app(database_url):
    return build_app(database_url)


@pytest.fixture()
def db_session(app):
    from app.extensions import db

    with app.app_context():
        yield db.session
        db.session.remove()


@pytest.fixture(scope="session")
def tokens(app):
    """role -> JWT access token."""
    return login_tokens(app)


@pytest.fixture()
def api(app, tokens):
    """``api(role).get(url)`` etc., authenticated as that role."""

    class RoleClient:
        def __init__(self, role):
            self.client = app.test_client()
            self.headers = {"Authorization": f"Bearer {tokens[role]}"}

        def __getattr__(self, method):
            fn = getattr(self.client, method)

            def call(url, **kw):
                with app.app_context():  # a fresh ``g`` per request, as in production
                    return fn(url, headers={**self.headers, **kw.pop("headers", {})}, **kw)

            return call

    return RoleClient


class FreshContextClient:
    """A test client whose every request gets its own app context (and so its own ``g``), even
    when the test holds an app context of its own, as in production."""

    def __init__(self, app, client):
        self._app = app
        self._client = client

    def __getattr__(self, name):
        attr = getattr(self._client, name)
        if name not in {"get", "post", "put", "delete", "patch", "open"}:
            return attr

        def call(*args, **kw):
            with self._app.app_context():
                return attr(*args, **kw)

        return call


@pytest.fixture()
def web(app):
    """``web(role)``: a test client logged in to the screens as that role."""

    def login(role):
        client = FreshContextClient(app, app.test_client())
        resp = client.post("/login/", data={"username": role.lower(), "password": PASSWORD})
        assert resp.status_code in (302, 303), resp.get_data(as_text=True)[:500]
        return client

    return login


@pytest.fixture()
def make_unit(app):
    """Create an estate/building/unit (and optionally an owner) through the ORM; returns ids."""
    from decimal import Decimal

    from app.extensions import db
    from models.archives import Building, Estate, Owner, Ownership, Unit

    def factory(with_owner: bool = True, phone: str = "13812345678"):
        tag = uuid.uuid4().hex[:6]
        with app.app_context():
            estate = Estate(code=f"T{tag}", name=f"测试小区{tag}")
            building = Building(estate=estate, code="1", name="1栋")
            unit = Unit(building=building, code=f"1-1-{tag}", floor=1, gross_area=Decimal("88.50"))
            db.session.add_all([estate, building, unit])
            ids = {}
            if with_owner:
                owner = Owner(name=f"业主{tag}", phone=phone)
                db.session.add(owner)
                db.session.flush()
                db.session.add(Ownership(unit_id=unit.id, owner_id=owner.id))
                ids["owner"] = owner.id
            db.session.commit()
            ids.update(estate=estate.id, building=building.id, unit=unit.id)
            db.session.remove()
            return ids

    return factory


@pytest.fixture(autouse=True)
def _tasks_go_through_this_tests_app(request):
    """Building an app (a second one, a SQLite one, a fuzzing one) makes its Celery the process's
    current one, and tasks a test sends through a shared task go to that app's broker. Before
    each test that uses ``app``, that app's Celery (the tests' Redis) is the default again."""
    if "app" in request.fixturenames:
        celery = request.getfixturevalue("app").extensions["celery"]
        celery.set_default()
        celery.set_current()  # Celery's "current app" is the last one built, per thread
