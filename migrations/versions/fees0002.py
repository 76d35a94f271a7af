"""fees: payment terms, billing explanations

Revision ID: fees0002
Revises: desk0002
Create Date: 2026-11-29 11:00:00

- ``fee_item.payment_term_days``: a bill is never due before its issue date plus this (15 days);
- ``bill.issued_on``: the local date a line was issued (existing lines: their creation date);
- ``billing_run.prepaid_applied`` and ``billing_run.explanation``: the prepaid money a run used,
  and why a run billed nothing.

Written by hand for PostgreSQL and SQLite (batch mode recreates SQLite tables where it must).
"""
import datetime as dt
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from alembic import op

import models.base  # noqa: F401  (custom column types)

# revision identifiers, used by Alembic.
revision = 'fees0002'
down_revision = 'desk0002'
branch_labels = None
depends_on = None


def _zone() -> str:
    try:
        from flask import current_app

        return current_app.config.get("DISPLAY_TIMEZONE", "Asia/Shanghai")
    except RuntimeError:  # outside an app (offline SQL)
        return "Asia/Shanghai"


def _backfill_issued_on(bind) -> None:
    zone = _zone()
    if bind.dialect.name == "postgresql":
        bind.execute(
            sa.text("UPDATE bill SET issued_on = CAST((created_at AT TIME ZONE :zone) AS date) WHERE issued_on IS NULL"),
            {"zone": zone},
        )
        return
    # SQLite has no time zones: the local date of each stored UTC time, in Python.
    tz = ZoneInfo(zone)
    rows = bind.execute(sa.text("SELECT id, created_at FROM bill WHERE issued_on IS NULL")).all()
    for bill_id, created in rows:
        when = created if isinstance(created, dt.datetime) else dt.datetime.fromisoformat(str(created))
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        bind.execute(
            sa.text("UPDATE bill SET issued_on = :d WHERE id = :i"),
            {"d": when.astimezone(tz).date().isoformat(), "i": bill_id},
        )


def upgrade():
    with op.batch_alter_table('fee_item') as batch:
        batch.add_column(sa.Column('payment_term_days', sa.Integer(), nullable=False, server_default='15'))
        batch.create_check_constraint('ck_fee_item_payment_term', 'payment_term_days >= 0')

    op.add_column('bill', sa.Column('issued_on', sa.Date(), nullable=True))
    _backfill_issued_on(op.get_bind())
    with op.batch_alter_table('bill') as batch:
        batch.alter_column('issued_on', existing_type=sa.Date(), nullable=False)

    with op.batch_alter_table('billing_run') as batch:
        batch.add_column(
            sa.Column('prepaid_applied', sa.Numeric(precision=14, scale=2), nullable=False, server_default='0')
        )
        batch.add_column(sa.Column('explanation', sa.Text(), nullable=True))


def downgrade():
    with op.batch_alter_table('billing_run') as batch:
        batch.drop_column('explanation')
        batch.drop_column('prepaid_applied')
    with op.batch_alter_table('bill') as batch:
        batch.drop_column('issued_on')
    with op.batch_alter_table('fee_item') as batch:
        batch.drop_constraint('ck_fee_item_payment_term', type_='check')
        batch.drop_column('payment_term_days')
