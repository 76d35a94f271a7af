"""service desk: received time, SLA defaults as rows, holiday calendar

Revision ID: desk0002
Revises: sec0001
Create Date: 2026-11-29 11:00:00

- ``ticket.received_at`` (when the office received the request; deadlines and registers run from
  it; existing rows: their recording time), ``ticket.received_late_reason`` and
  ``ticket.sla_basis`` (where the deadlines come from: a policy, a procedure rule);
- ``sla_policy.replaces_rule`` (the procedure rule a policy replaces outright) and one "any
  priority" policy per class at most (a unique index: NULL priorities are distinct otherwise);
- the data an install starts with: one response policy per class that has none for "any
  priority" (the values the product applied to it as hidden constants before), and mainland China's holidays and make-up working days from the
  ``chinese-calendar`` package for last year up to the last year it knows. Rows that are there
  already (a Manager's) are kept. Written as the system user, created here when missing (start-up
  creates it the same way: inactive, no usable password, role ``System``).

Written by hand for PostgreSQL and SQLite.
"""
import datetime as dt
import logging
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from alembic import op

import models.base  # noqa: F401  (custom column types)

# revision identifiers, used by Alembic.
revision = 'desk0002'
down_revision = 'sec0001'
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")

TICKET_KINDS = ("emergency_medical", "repair", "complaint", "consultation", "security", "disaster", "other")
# The values the product applied as constants until this revision (models/desk.py SEED_POLICY).
SEED_POLICY = {"reply_minutes": 5, "resolve_minutes": 24 * 60, "second_level_minutes": 30, "warn_minutes": 2}


def _config(name: str, default):
    try:
        from flask import current_app

        return current_app.config.get(name, default)
    except RuntimeError:  # outside an app (offline SQL)
        return default


def _audit_columns():
    return [
        sa.column("version", sa.Integer),
        sa.column("created_at", models.base.UTCDateTime()),
        sa.column("changed_at", models.base.UTCDateTime()),
        sa.column("created_by_id", sa.Integer),
        sa.column("changed_by_id", sa.Integer),
    ]


def _system_user_id(bind) -> int:
    name = _config("SYSTEM_USERNAME", "system")
    uid = bind.execute(sa.text("SELECT id FROM ab_user WHERE username = :n"), {"n": name}).scalar()
    if uid is not None:
        return uid
    role = sa.table("ab_role", sa.column("id", sa.Integer), sa.column("name", sa.String))
    role_id = bind.execute(sa.select(role.c.id).where(role.c.name == "System")).scalar()
    if role_id is None:
        role_id = bind.execute(sa.insert(role).values(name="System").returning(role.c.id)).scalar_one()
    user = sa.table(
        "ab_user",
        sa.column("id", sa.Integer),
        sa.column("first_name", sa.String),
        sa.column("last_name", sa.String),
        sa.column("username", sa.String),
        sa.column("password", sa.String),
        sa.column("active", sa.Boolean),
        sa.column("email", sa.String),
        sa.column("login_count", sa.Integer),
        sa.column("fail_login_count", sa.Integer),
        sa.column("created_on", sa.DateTime),
        sa.column("changed_on", sa.DateTime),
    )
    now = dt.datetime.now()  # FAB's own columns are naive local times
    uid = bind.execute(
        sa.insert(user)
        .values(
            first_name="系统",
            last_name="任务",
            username=name,
            password="!",  # no hash matches it: the system user never logs in
            active=False,
            email=f"{name}@localhost",
            login_count=0,
            fail_login_count=0,
            created_on=now,
            changed_on=now,
        )
        .returning(user.c.id)
    ).scalar_one()
    user_role = sa.table("ab_user_role", sa.column("user_id", sa.Integer), sa.column("role_id", sa.Integer))
    bind.execute(sa.insert(user_role).values(user_id=uid, role_id=role_id))
    return uid


def _stamp(uid: int) -> dict:
    now = dt.datetime.now(dt.UTC)
    return {"version": 1, "created_at": now, "changed_at": now, "created_by_id": uid, "changed_by_id": uid}


def _seed_policies(bind, uid: int) -> None:
    # Until now a class without an "any priority" row got these values unseen: make them rows,
    # for those classes only (the rows a Manager wrote are kept as they are).
    have = set(bind.execute(sa.text("SELECT kind FROM sla_policy WHERE priority IS NULL")).scalars())
    missing = [k for k in TICKET_KINDS if k not in have]
    if not missing:
        return
    policy = sa.table(
        "sla_policy",
        sa.column("kind", sa.String),
        sa.column("priority", sa.String),
        sa.column("reply_minutes", sa.Integer),
        sa.column("resolve_minutes", sa.Integer),
        sa.column("resolve_working_days", sa.Integer),
        sa.column("second_level_minutes", sa.Integer),
        sa.column("warn_minutes", sa.Integer),
        sa.column("active", sa.Boolean),
        sa.column("replaces_rule", sa.String),
        *_audit_columns(),
    )
    bind.execute(
        sa.insert(policy),
        [
            {
                **_stamp(uid),
                "kind": kind,
                "priority": None,
                "resolve_working_days": None,
                "active": True,
                "replaces_rule": None,
                **SEED_POLICY,
            }
            for kind in missing
        ],
    )


def _seed_holidays(bind, uid: int) -> None:
    from models.calendar import known_years, official_days

    known = known_years()
    this_year = dt.datetime.now(ZoneInfo(_config("DISPLAY_TIMEZONE", "Asia/Shanghai"))).year
    if not known or this_year not in known:
        last = f"{known.start}-{known.stop - 1}" if known else "none"
        log.warning(
            "chinese-calendar knows no holidays for %s (it knows %s): upgrade it and run "
            "`flask desk holidays --year %s`, or enter the year under 节假日与调休",
            this_year,
            last,
            this_year,
        )
    if not known:
        return
    holiday = sa.table(
        "holiday", sa.column("day", sa.Date), sa.column("kind", sa.String), sa.column("name", sa.String), *_audit_columns()
    )
    have = set(bind.execute(sa.select(holiday.c.day)).scalars())
    rows = []
    for year in range(max(known.start, this_year - 1), known.stop):
        rows += [{**_stamp(uid), **r} for r in official_days(year) if r["day"] not in have]
    if rows:
        bind.execute(sa.insert(holiday), rows)
    log.info("holiday calendar: %s days loaded", len(rows))


def upgrade():
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.add_column(sa.Column('received_at', models.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('received_late_reason', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('sla_basis', sa.String(length=120), nullable=True))
    op.execute("UPDATE ticket SET received_at = reported_at WHERE received_at IS NULL")
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.create_index('ix_ticket_received_at', ['received_at'], unique=False)

    with op.batch_alter_table('sla_policy', schema=None) as batch_op:
        batch_op.add_column(sa.Column('replaces_rule', sa.String(length=32), nullable=True))
    bind = op.get_bind()
    dupes = bind.execute(
        sa.text("SELECT kind FROM sla_policy WHERE priority IS NULL GROUP BY kind HAVING COUNT(*) > 1")
    ).scalars().all()
    if dupes:
        raise RuntimeError(
            f"sla_policy has several 'any priority' rows for {', '.join(dupes)}: keep one per class "
            "(give the others a priority or delete them), then upgrade again"
        )
    op.create_index(
        'uq_sla_policy_kind_any_priority',
        'sla_policy',
        ['kind'],
        unique=True,
        postgresql_where=sa.text('priority IS NULL'),
        sqlite_where=sa.text('priority IS NULL'),
    )

    uid = _system_user_id(bind)
    _seed_policies(bind, uid)
    _seed_holidays(bind, uid)


def downgrade():
    # The seeded rows stay: they are ordinary data a Manager may have changed since.
    op.drop_index('uq_sla_policy_kind_any_priority', table_name='sla_policy')
    with op.batch_alter_table('sla_policy', schema=None) as batch_op:
        batch_op.drop_column('replaces_rule')
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.drop_index('ix_ticket_received_at')
        batch_op.drop_column('sla_basis')
        batch_op.drop_column('received_late_reason')
        batch_op.drop_column('received_at')
