"""Every default in one place; each one can be overridden from the environment.

The pattern is Superset's: this module holds the defaults, ``DESK_<NAME>`` environment variables
override them (see ``README.md`` for the list), and ``create_app(config_overrides=...)`` overrides
both for tests. Nothing else in the product reads ``os.environ``.
"""

from __future__ import annotations

import os
from pathlib import Path

from celery.schedules import crontab as _crontab

BASE_DIR = Path(__file__).resolve().parent
INSTANCE_DIR = Path(os.environ.get("DESK_INSTANCE_DIR", BASE_DIR / "instance"))


def env(name: str, default):
    """Read ``DESK_<name>`` and coerce it to the type of ``default``."""
    raw = os.environ.get(f"DESK_{name}")
    if raw is None:
        return default
    if isinstance(default, bool):
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    if isinstance(default, int):
        return int(raw)
    return raw


# --- core -----------------------------------------------------------------------------------
APP_NAME = env("APP_NAME", "物业服务台")
# Signs sessions and API tokens. No default: start-up refuses to run without one (app/factory.py),
# except with a key file in the instance directory, which the quick start writes once.
SECRET_KEY = env("SECRET_KEY", "")
SECRET_KEY_FILE = env("SECRET_KEY_FILE", str(INSTANCE_DIR / "secret_key"))
# Embedded default: a SQLite file, so the product runs with nothing installed.
SQLALCHEMY_DATABASE_URI = env("DATABASE_URL", f"sqlite:///{INSTANCE_DIR / 'desk.db'}")
SQLALCHEMY_TRACK_MODIFICATIONS = False
SQLALCHEMY_ENGINE_OPTIONS: dict = {"pool_pre_ping": True}
# Schema comes from migrations (`flask db upgrade`); FAB must not create tables behind them.
FAB_CREATE_DB = False
FAB_UPDATE_PERMS = True
FAB_API_SWAGGER_UI = True
FAB_API_MAX_PAGE_SIZE = 100
DEBUG = False
PROPAGATE_EXCEPTIONS = False

# --- language and time ----------------------------------------------------------------------
BABEL_DEFAULT_LOCALE = env("LANGUAGE", "zh")
# Our catalogue (app/translations/<lang>/LC_MESSAGES/messages.po, for FAB's and WTForms' strings),
# relative to the app package. FAB puts its own catalogue first and Flask-Babel merges them in
# order, so an entry of ours overrides FAB's; app.i18n.use_catalogues compiles the .po at start-up.
BABEL_TRANSLATION_DIRECTORIES = "translations"
LANGUAGES = {
    "zh": {"flag": "cn", "name": "简体中文"},
    "en": {"flag": "gb", "name": "English"},
}
# Stored in UTC, shown in this zone.
DISPLAY_TIMEZONE = env("TIMEZONE", "Asia/Shanghai")

# --- authentication and security defaults --------------------------------------------------
AUTH_TYPE = 1  # AUTH_DB
AUTH_ROLE_ADMIN = "Admin"
AUTH_ROLE_PUBLIC = "Public"
AUTH_USER_REGISTRATION = False
AUTH_RATE_LIMITED = env("AUTH_RATE_LIMITED", True)
AUTH_RATE_LIMIT = env("AUTH_RATE_LIMIT", "10 per 20 second")
RATELIMIT_ENABLED = env("RATELIMIT_ENABLED", True)
# Shared limiter storage when Redis is configured, so several web processes count together.
RATELIMIT_STORAGE_URI = env("RATELIMIT_STORAGE_URI", "memory://")
FAB_PASSWORD_COMPLEXITY_ENABLED = env("PASSWORD_COMPLEXITY", True)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
# Browsers treat http://localhost as secure, so the quick start still works with this on.
SESSION_COOKIE_SECURE = env("SESSION_COOKIE_SECURE", True)
REMEMBER_COOKIE_SECURE = SESSION_COOKIE_SECURE
REMEMBER_COOKIE_HTTPONLY = True
WTF_CSRF_ENABLED = True
WTF_CSRF_TIME_LIMIT = None
JWT_ACCESS_TOKEN_EXPIRES = env("JWT_ACCESS_TOKEN_SECONDS", 8 * 3600)
# A screen sign-in lasts at most this long (sessions are kept on the server: signing out, a
# password change or disabling the user ends them at once).
LOGIN_SESSION_HOURS = env("LOGIN_SESSION_HOURS", 16)
# Security headers (Flask-Talisman): no framing, no outside host, no MIME sniffing, no referrer to
# other sites. Scripts come from the product or carry the page's nonce (FAB's templates and ours
# render ``nonce="{{ baselib.get_nonce() }}"``); inline style attributes are allowed.
CONTENT_SECURITY_POLICY = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": ["'self'", "'unsafe-inline'"],
    "img-src": ["'self'", "data:"],
    "font-src": ["'self'", "data:"],
    "connect-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'self'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}
# Behind a TLS-terminating proxy, set to true to redirect http to https and send HSTS.
FORCE_HTTPS = env("FORCE_HTTPS", False)
# The login name jobs write as (created_by / changed_by of rows that no person wrote).
SYSTEM_USERNAME = "system"

# --- mail (notifications) -------------------------------------------------------------------
MAIL_SERVER = env("MAIL_SERVER", "localhost")
MAIL_PORT = env("MAIL_PORT", 25)
MAIL_USE_TLS = env("MAIL_USE_TLS", False)
MAIL_USERNAME = env("MAIL_USERNAME", "")
MAIL_PASSWORD = env("MAIL_PASSWORD", "")
MAIL_DEFAULT_SENDER = env("MAIL_DEFAULT_SENDER", "desk@localhost")

# --- background jobs ------------------------------------------------------------------------
# Embedded default: Kombu's SQLAlchemy transport over SQLite; Redis when DESK_BROKER_URL is set.
CELERY_BROKER_URL = env("BROKER_URL", f"sqla+sqlite:///{INSTANCE_DIR / 'broker.db'}")
CELERY_RESULT_BACKEND = env("RESULT_BACKEND", f"db+sqlite:///{INSTANCE_DIR / 'results.db'}")
CELERY_TASK_ALWAYS_EAGER = env("CELERY_EAGER", False)
# Periodic jobs: name -> task and schedule in seconds. `flask desk run-job NAME` runs one now.
ESCALATION_SWEEP_SECONDS = env("ESCALATION_SWEEP_SECONDS", 30)
CELERY_BEAT_SCHEDULE = {
    "residents.close_moved_out": {
        "task": "jobs.archives.close_moved_out_residents",
        "schedule": 3600.0,
    },
    # At most every 60 s (DESIGN: a late reply is escalated within a minute of its deadline).
    "desk.escalation_sweep": {
        "task": "jobs.escalation.sweep",
        "schedule": float(ESCALATION_SWEEP_SECONDS),
    },
    "desk.redeliver_notifications": {
        "task": "jobs.notify.redeliver",
        "schedule": 60.0,
    },
    # Records retention (DESIGN.md item 13). Both act only when there is something due (the
    # archive job only for years before the current local year), so running often is harmless
    # and a missed 1 January is caught up within hours.
    "desk.archive_closed_tickets": {
        "task": "jobs.retention.archive_closed_tickets",
        "schedule": 4 * 3600.0,
    },
    "desk.purge_archived_tickets": {
        "task": "jobs.retention.purge_archived_tickets",
        "schedule": 6 * 3600.0,
    },
    # Monthly billing (DESIGN.md item 7): daily at 17:00 UTC = 01:00 Beijing time, billing the
    # current local month for every estate without a completed run; so the 1st bills the month and
    # a missed 1st is caught up the next day. Idempotent (one line per unit, item and period).
    "fees.monthly_billing": {
        "task": "jobs.billing.monthly",
        "schedule": _crontab(minute=0, hour=17),
    },
    # Late fees and dunning (DESIGN.md item 7): daily after billing, 02:00 and 02:30 Beijing time.
    # Both are idempotent (the same value / one notice per unit, stage and cycle).
    "fees.late_fees": {
        "task": "jobs.late_fees.daily",
        "schedule": _crontab(minute=0, hour=18),
    },
    "fees.dunning": {
        "task": "jobs.dunning.daily",
        "schedule": _crontab(minute=30, hour=18),
    },
    # Periodic paid services (DESIGN.md item 9): daily at 16:30 UTC = 00:30 Beijing time, the
    # orders of every active subscription for the next SERVICE_ORDER_HORIZON_DAYS days.
    # Idempotent (one order per subscription and start).
    "services.generate_periodic_orders": {
        "task": "jobs.services.generate_periodic_orders",
        "schedule": _crontab(minute=30, hour=16),
    },
    # Renovations (DESIGN.md item 8): inspection reminders and overdue alerts hourly (each is
    # claimed once per renovation and day), late rectification orders escalated like tickets.
    "renovation.inspection_reminders": {
        "task": "jobs.renovation.inspection_reminders",
        "schedule": 3600.0,
    },
    "renovation.overdue_alerts": {
        "task": "jobs.renovation.overdue_alerts",
        "schedule": 3600.0,
    },
    "renovation.rectification_sweep": {
        "task": "jobs.renovation.rectification_sweep",
        "schedule": 300.0,
    },
}

# --- records retention ----------------------------------------------------------------------
# Archived tickets are kept this many years, then exported to a restorable file and deleted.
RETENTION_KEEP_YEARS = env("RETENTION_KEEP_YEARS", 2)
# Where the export files go (gzip JSON Lines; `flask desk restore-tickets FILE` brings one back).
# With workers on several machines this must be a shared, backed-up directory.
RETENTION_EXPORT_DIR = env("RETENTION_EXPORT_DIR", str(INSTANCE_DIR / "retention"))
# Tickets per export file and per transaction.
RETENTION_BATCH = env("RETENTION_BATCH", 1000)

# --- service desk ---------------------------------------------------------------------------
CALLBACK_DELAY_MINUTES = env("CALLBACK_DELAY_MINUTES", 24 * 60)
CALLBACK_MAX_TRIES = env("CALLBACK_MAX_TRIES", 3)
CALLBACK_UNSATISFIED_AT_MOST = env("CALLBACK_UNSATISFIED_AT_MOST", 2)
CALLBACK_SECOND_LEVEL_MINUTES = env("CALLBACK_SECOND_LEVEL_MINUTES", 240)
NOTIFY_LEASE_SECONDS = env("NOTIFY_LEASE_SECONDS", 120)
NOTIFY_REDELIVER_AFTER_SECONDS = env("NOTIFY_REDELIVER_AFTER_SECONDS", 60)
NOTIFY_MAX_ATTEMPTS = env("NOTIFY_MAX_ATTEMPTS", 20)
WEBHOOK_TIMEOUT_SECONDS = env("WEBHOOK_TIMEOUT_SECONDS", 5)
# Group-robot webhooks go to these hosts only (comma-separated): WeCom and DingTalk. ``host`` means
# https on port 443 only; ``host:port`` (or ``host:*``) allows that port, http or https.
WEBHOOK_ALLOWED_HOSTS = env("WEBHOOK_ALLOWED_HOSTS", "qyapi.weixin.qq.com,oapi.dingtalk.com")
# Periodic paid services: how many days ahead the daily job creates their orders.
SERVICE_ORDER_HORIZON_DAYS = env("SERVICE_ORDER_HORIZON_DAYS", 14)
# The workbench's month figures (compliance, collection rate, arrears) are computed at most this
# often per estate set and process (a company-wide month is a sum over every bill line of it);
# its tiles are always counted live. 0 computes them on every home page.
WORKBENCH_FIGURES_SECONDS = env("WORKBENCH_FIGURES_SECONDS", 60)

# --- renovations (装修管理) ----------------------------------------------------------------------
# Active renovations are inspected every this many days (a reminder to Staff and Supervisors).
RENOVATION_INSPECTION_DAYS = env("RENOVATION_INSPECTION_DAYS", 3)
# Days a violation has to be put right; a late rectification goes to the supervisor, then after
# RECTIFICATION_SECOND_LEVEL_HOURS more to the manager.
RECTIFICATION_DAYS = env("RECTIFICATION_DAYS", 3)
RECTIFICATION_SECOND_LEVEL_HOURS = env("RECTIFICATION_SECOND_LEVEL_HOURS", 24)
# Fee item codes (kind 'renovation') the deposit and the management fee are billed under.
RENOVATION_DEPOSIT_ITEM = env("RENOVATION_DEPOSIT_ITEM", "RENO-DEPOSIT")
RENOVATION_FEE_ITEM = env("RENOVATION_FEE_ITEM", "RENO-FEE")

# --- dunning (催缴) ----------------------------------------------------------------------------
# Days past the oldest unpaid (undisputed) due date after which a unit gets a reminder, a formal
# notice and a final notice; one notice per unit, stage and cycle (that oldest due date).
DUNNING_REMINDER_DAYS = env("DUNNING_REMINDER_DAYS", 15)
DUNNING_FORMAL_DAYS = env("DUNNING_FORMAL_DAYS", 60)
DUNNING_FINAL_DAYS = env("DUNNING_FINAL_DAYS", 120)
# The property company's name and phone printed on dunning letters and receipts.
FEES_COMPANY_NAME = env("FEES_COMPANY_NAME", "物业服务中心")
FEES_COMPANY_PHONE = env("FEES_COMPANY_PHONE", "")

# --- lists and imports ----------------------------------------------------------------------
# Lists count exactly up to this many rows, and estimate beyond it (see views/datamodel.py).
LIST_EXACT_COUNT_LIMIT = env("LIST_EXACT_COUNT_LIMIT", 10000)
IMPORT_MAX_ROWS = env("IMPORT_MAX_ROWS", 50000)
