"""The application factory (FAB's ``examples/crud_rest_api`` shape, one AppBuilder per app)."""

from __future__ import annotations

import logging
import secrets
from pathlib import Path

import prison
from flask import Flask, has_request_context, jsonify, make_response, redirect, render_template, request, url_for
from flask_appbuilder import AppBuilder, IndexView, expose
from flask_talisman import Talisman
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import inspect
from werkzeug.exceptions import HTTPException

from app.extensions import db, migrate
from app.i18n import T
from app.i18n import current_language as _current_language

log = logging.getLogger(__name__)


class _SignInWithoutNext(logging.Filter):
    """FAB's login form checks an absent ``?next=`` as if it were a target and warns "Invalid
    redirect detected" on every sign-in; the warning is kept for a real unsafe target."""

    def filter(self, record: logging.LogRecord) -> bool:
        if has_request_context() and record.getMessage().startswith("Invalid redirect detected"):
            return bool(request.args.get("next"))
        return True


logging.getLogger("flask_appbuilder.utils.base").addFilter(_SignInWithoutNext())


class DeskIndexView(IndexView):
    """The home page: the signed-in user's workbench (views/workbench.py); the banner before."""

    index_template = "desk/index.html"

    @expose("/")
    def index(self):
        from flask import g

        if getattr(g, "user", None) is not None and g.user.is_authenticated:
            from views.workbench import STATUS_WORDS, time_left, workbench

            return self.render_template(
                "desk/workbench.html", wb=workbench(db.session), time_left=time_left, words=STATUS_WORDS
            )
        return self.render_template(self.index_template, appbuilder=self.appbuilder)


def create_app(config_overrides: dict | None = None) -> Flask:
    app = Flask(__name__, static_folder="static", template_folder="templates")
    app.config.from_object("config")
    if config_overrides:
        app.config.update(config_overrides)
    _require_secret_key(app)
    # Our zh catalogue (FAB's and WTForms' strings FAB's own misses), compiled from its .po.
    from app.i18n import use_catalogues

    use_catalogues(app)
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
    # they are added. The APIs also accept the session cookie, so a write carried by the cookie
    # alone must bring the token too (``_api_writes_by_cookie_need_csrf``).
    csrf = CSRFProtect(app)
    _api_writes_by_cookie_need_csrf(app, csrf)
    Talisman(
        app,
        force_https=app.config.get("FORCE_HTTPS", False),
        strict_transport_security=app.config.get("FORCE_HTTPS", False),
        session_cookie_secure=app.config.get("SESSION_COOKIE_SECURE", True),
        session_cookie_http_only=True,
        frame_options="DENY",
        referrer_policy="strict-origin-when-cross-origin",
        content_security_policy=app.config["CONTENT_SECURITY_POLICY"],
        content_security_policy_nonce_in=["script-src"],
    )
    migrate.init_app(
        app,
        db,
        directory=str(Path(__file__).resolve().parent.parent / "migrations"),
        render_as_batch=True,
        compare_type=True,
    )
    app.jinja_env.globals["_desk"] = T
    app.jinja_env.globals["desk_lang"] = _current_language
    from app.security import working_people

    app.jinja_env.globals["desk_people"] = working_people
    app.jinja_env.filters["desk_local"] = _local_time
    app.jinja_env.filters["desk_person"] = _person_name

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
            view = build_view(resource)
            appbuilder.add_view(
                view,
                resource.name,
                href=f"{view.__name__}.{resource.menu_route}",
                icon=resource.icon,
                label=resource.label,
                category=resource.category,
                category_label=cat_label,
                category_icon=cat_icon,
            )
            appbuilder.add_api(build_api(resource))
            for entry in resource.menus:
                entry_label, entry_icon = CATEGORIES[entry.category]
                appbuilder.add_link(
                    entry.menu_name(resource.name),
                    href=f"/{resource.name}/{entry.path}",
                    icon=entry.icon,
                    label=entry.label,
                    category=entry.category,
                    category_label=entry_label,
                    category_icon=entry_icon,
                )
        _register_error_handlers(app)
        # Browsers ask for /favicon.ico on their own; the pages name the same icon.
        app.add_url_rule(
            "/favicon.ico", "favicon", lambda: redirect(url_for("static", filename="desk/favicon.svg"), code=301)
        )
        from app.cli import register_cli

        register_cli(app)
        from jobs import celery_init_app

        celery_init_app(app)
        if app.config.get("SYNC_ROLES_ON_START", True) and _schema_ready():
            sync_roles(appbuilder)
    return app


# Keys that were ever published (this product's old fallback, FAB's example): never sign with them.
KNOWN_SECRET_KEYS = frozenset(
    {
        "change-me-in-production-this-is-only-for-the-embedded-demo",
        "\2\1thisismyscretkey\1\2\\e\\y\\y\\h",  # FAB's documented example
    }
)
MIN_SECRET_KEY_LENGTH = 32


def _require_secret_key(app: Flask) -> None:
    """Sessions and API tokens are signed with SECRET_KEY: whoever knows it can sign in as anyone.
    It comes from DESK_SECRET_KEY or the instance's key file (the quick start writes one, once);
    a missing, short or published key stops start-up. Tests without one get a random key."""
    key = app.config.get("SECRET_KEY") or ""
    key_file = Path(app.config.get("SECRET_KEY_FILE") or "")
    if not key and key_file.name and key_file.is_file():
        key = key_file.read_text(encoding="utf-8").strip()
    if not key and app.config.get("TESTING"):
        key = secrets.token_urlsafe(48)
    if not key:
        raise RuntimeError(
            "DESK_SECRET_KEY is not set. Set it to a long random value (e.g. the output of "
            "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`), or put one in "
            f"{key_file} (the quick start does this once)."
        )
    if key in KNOWN_SECRET_KEYS or len(key) < MIN_SECRET_KEY_LENGTH:
        raise RuntimeError(
            f"DESK_SECRET_KEY is a published default or shorter than {MIN_SECRET_KEY_LENGTH} characters: "
            "set a long random value of your own."
        )
    app.config["SECRET_KEY"] = key


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


def _api_writes_by_cookie_need_csrf(app: Flask, csrf: CSRFProtect) -> None:
    """FAB's REST APIs accept the browser's session cookie and are exempt from CSRFProtect: a
    cross-site form posted with the cookie would reach them. A state-changing API request that
    carries no ``Authorization`` header (which no cross-site form can set) and a signed-in
    session must bring the CSRF token (``X-CSRFToken``), as the screens' forms do."""
    from flask import session

    @app.before_request
    def _csrf_for_cookie_api_writes():
        if request.method in SAFE_METHODS or not request.path.startswith("/api/"):
            return None
        if request.headers.get("Authorization") or "_user_id" not in session:
            return None
        if not app.config.get("WTF_CSRF_ENABLED", True):
            return None
        csrf.protect()
        return None


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


def _person_name(user) -> str:
    """A person on a printed form: the name (姓名), the login only when no name is recorded."""
    from app.security import person_name

    return person_name(user)


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


# What an error page says when the error brings no words of its own (werkzeug's are English).
HTTP_ERRORS = {
    400: (T("请求有误", "Bad request"), T("请求的参数有误，请返回后重试。", "The request's arguments are wrong; go back and try again.")),
    401: (T("请先登录", "Please sign in"), T("请登录后再打开此页面。", "Sign in, then open this page again.")),
    403: (T("没有权限", "Forbidden"), T("您的角色不能进行此操作。", "Your role may not do this.")),
    404: (T("页面不存在", "Not found"), T("您要找的页面或记录不存在，或不在您负责的范围内。", "The page or record does not exist, or is not yours to see.")),
    405: (T("不支持此操作", "Method not allowed"), T("此页面不支持这种操作。", "This page does not take this kind of request.")),
    409: (T("记录已被修改", "Conflict"), T("该记录已被他人修改，请刷新后重试。", "Someone changed the record; reload and try again.")),
    413: (T("文件太大", "Too large"), T("上传的文件超过了允许的大小。", "The upload is larger than allowed.")),
    429: (T("操作过于频繁", "Too many requests"), T("请稍后再试。", "Please try again later.")),
    500: (T("服务器内部错误", "Internal error"), T("服务器内部错误，已记录，请稍后重试。", "Internal error; it has been logged, please try again.")),
}


def error_page(code: int, message=None, stock_message=None) -> str:
    """An error page with the menu bar, in the user's language, and a way back: werkzeug's own
    English description is replaced by ours, a message of the product's own is kept."""
    title, default = HTTP_ERRORS.get(code, HTTP_ERRORS[500 if code >= 500 else 400])
    if not message or message == stock_message:
        message = default
    back = request.referrer if request.referrer and request.referrer.startswith(request.host_url) else None
    context = {"code": code, "title": title, "message": message, "back": back}
    try:
        from flask import current_app

        ab = current_app.appbuilder
        return render_template("desk/http_error.html", appbuilder=ab, base_template=ab.base_template, **context)
    except Exception:  # the menu needs the database; an error page must not fail with it
        log.exception("error page with the menu failed; plain page instead")
        return render_template("desk/http_error_plain.html", **context)


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
            return error_page(400, msg), 400
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
            resp = jsonify(message=exc.description or exc.name)
        else:
            resp = make_response(error_page(exc.code, exc.description, type(exc).description))
        resp.status_code = exc.code
        # The exception's own headers (``Allow`` on a 405, ``Retry-After`` on a 429, ...) stay.
        for name, value in exc.get_headers():
            if name.lower() != "content-type":
                resp.headers[name] = value
        return resp

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
        return error_page(500, msg), 500
