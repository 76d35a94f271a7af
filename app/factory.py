"""The application factory (FAB's ``examples/crud_rest_api`` shape, one AppBuilder per app)."""

from __future__ import annotations

import logging
from pathlib import Path

import prison
from flask import Flask, jsonify, render_template, request
from flask_appbuilder import AppBuilder, IndexView, expose
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import inspect
from werkzeug.exceptions import HTTPException

from app.extensions import db, migrate
from app.i18n import T

log = logging.getLogger(__name__)


class DeskIndexView(IndexView):
    index_template = "desk/index.html"

    @expose("/")
    def index(self):
        return self.render_template(self.index_template, appbuilder=self.appbuilder)


def create_app(config_overrides: dict | None = None) -> Flask:
    app = Flask(__name__, static_folder="static", template_folder="templates")
    app.config.from_object("config")
    if config_overrides:
        app.config.update(config_overrides)
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///"):
        Path(app.config["SQLALCHEMY_DATABASE_URI"].removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    # FAB writes permissions as views are added; ours are synced from the role matrix instead,
    # once the tables exist (see ``sync_roles``), so start-up works on an empty database too.
    app.config["FAB_UPDATE_PERMS"] = False
    app.config.setdefault("FAB_BASE_TEMPLATE", "desk/base.html")
    app.config["FAB_ROLES"] = {}

    db.init_app(app)
    # Every form POST (screens, logout, delete buttons) checks a CSRF token; FAB's templates and
    # ours render ``csrf_token()``, and FAB exempts its REST APIs (JWT) when this is set up before
    # they are added.
    CSRFProtect(app)
    migrate.init_app(
        app,
        db,
        directory=str(Path(__file__).resolve().parent.parent / "migrations"),
        render_as_batch=True,
        compare_type=True,
    )
    app.jinja_env.globals["_desk"] = T
    app.jinja_env.filters["desk_local"] = _local_time

    with app.app_context():
        import models  # noqa: F401  (every table on the metadata before FAB starts)
        import views  # noqa: F401  (registers the resources)
        from app.security import DeskSecurityManager
        from views.base import build_api, build_view
        from views.registry import CATEGORIES, REGISTRY

        appbuilder = AppBuilder(
            security_manager_class=DeskSecurityManager,
            indexview=DeskIndexView,
            base_template=app.config["FAB_BASE_TEMPLATE"],
        )
        appbuilder.init_app(app, db.session)
        _limit_api_login(app, appbuilder)
        _jwt_errors_as_401(appbuilder.sm.jwt_manager)
        for resource in REGISTRY.values():
            cat_label, cat_icon = CATEGORIES[resource.category]
            appbuilder.add_view(
                build_view(resource),
                resource.name,
                icon=resource.icon,
                label=resource.label,
                category=resource.category,
                category_label=cat_label,
                category_icon=cat_icon,
            )
            appbuilder.add_api(build_api(resource))
        _register_error_handlers(app)
        from app.cli import register_cli

        register_cli(app)
        from jobs import celery_init_app

        celery_init_app(app)
        if app.config.get("SYNC_ROLES_ON_START", True) and _schema_ready():
            sync_roles(appbuilder)
    return app


def _limit_api_login(app: Flask, appbuilder) -> None:
    """FAB rate-limits only the /login/ form: give the API login the same limit."""
    sm = appbuilder.sm
    blueprint = app.blueprints.get(sm.security_api.__name__)
    if sm.is_auth_limited and blueprint is not None:
        sm.limiter.limit(sm.auth_rate_limit, methods=["POST"])(blueprint)


def _jwt_errors_as_401(jwt_manager) -> None:
    """A malformed, forged or expired token is 401 with the API's ``message`` body (the JWT
    library answers 422 ``{"msg": ...}`` for a token it cannot decode)."""
    sorry = T("登录凭证无效或已过期，请重新登录", "The token is invalid or has expired; log in again")

    @jwt_manager.invalid_token_loader
    def _invalid(reason: str):
        return jsonify(message=str(sorry)), 401

    @jwt_manager.expired_token_loader
    def _expired(jwt_header, jwt_payload):
        return jsonify(message=str(sorry)), 401


def _local_time(value) -> str:
    """UTC in the database, Asia/Shanghai (DISPLAY_TIMEZONE) on screen."""
    from zoneinfo import ZoneInfo

    from flask import current_app

    if value is None:
        return ""
    return value.astimezone(ZoneInfo(current_app.config["DISPLAY_TIMEZONE"])).strftime("%Y-%m-%d %H:%M")


def _schema_ready() -> bool:
    try:
        names = set(inspect(db.engine).get_table_names())
    except Exception:  # the database is not reachable yet: the commands will say so
        return False
    return {"ab_user", "ab_role", "unit"} <= names


def sync_roles(appbuilder) -> dict[str, int]:
    """Create FAB's permissions for every view and make each role match the matrix."""
    lock = None
    if db.engine.dialect.name == "postgresql":
        # Web processes, workers and beat start together: one of them syncs at a time.
        lock = db.session.connection().exec_driver_sql("SELECT pg_advisory_xact_lock(424242)")
    from app import roles as R
    from views.registry import CATEGORIES

    sm = appbuilder.sm
    for role in (R.ADMIN_ROLE, R.PUBLIC_ROLE, R.SYSTEM_ROLE, *R.ROLES):
        if sm.find_role(role) is None:
            sm.add_role(role)
    appbuilder.add_permissions(update_perms=True)
    for name in CATEGORIES:
        sm.add_permissions_menu(name)
    counts = appbuilder.sm.sync_roles()
    del lock
    return counts


def _register_error_handlers(app: Flask) -> None:
    """No stack trace ever reaches a user; the API answers JSON."""

    def wants_json() -> bool:
        return request.path.startswith("/api/")

    @app.before_request
    def no_nul_in_query():
        # PostgreSQL text cannot hold NUL: a NUL in a filter, search or lookup term would be a
        # database error. It is never meaningful in this product's URLs.
        if any("\x00" in k or "\x00" in v for k, v in request.args.items(multi=True)):
            msg = T("参数不能包含空字符（\\x00）", "Arguments must not contain a NUL character (\\x00)")
            if wants_json():
                return jsonify(message=str(msg)), 400
            return render_template("desk/http_error.html", code=400, message=msg), 400
        return None

    @app.before_request
    def rison_parses():
        # FAB's ``@rison`` catches only the parser's own exception; a few malformed values
        # (``q=1.5e+16``) make the parser raise ValueError and the API answer 500.
        value = request.args.get("q") if wants_json() else None
        if not value:
            return None
        try:
            prison.loads(value)
        except prison.decoder.ParserException:
            return None  # FAB answers 400 itself, or reads the value as JSON
        except (ValueError, TypeError, IndexError, KeyError, RecursionError):
            return jsonify(message="Not a valid rison/json argument"), 400
        return None

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if exc.code and exc.code < 400:
            return exc
        if wants_json():
            if exc.response is not None and exc.response.mimetype == "application/json":
                return exc.response
            return jsonify(message=exc.description or exc.name), exc.code
        return render_template("desk/http_error.html", code=exc.code, message=exc.description), exc.code

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        try:
            db.session.rollback()
        except Exception:
            pass
        msg = T("服务器内部错误，已记录，请稍后重试", "Internal error; it has been logged, please try again")
        if wants_json():
            return jsonify(message=str(msg)), 500
        return render_template("desk/http_error.html", code=500, message=msg), 500
