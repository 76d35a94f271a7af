"""service desk: request sub-classes as data

Revision ID: desk0003
Revises: wb0001
Create Date: 2026-12-07 12:00:00

``ticket_subkind``: the sub-classes (细类) of each request class, maintained by a Manager, loaded
with the defaults of models/desk.py (repairs by trade, complaints, the procedure's security and
disaster lists). Written as the system user (desk0002 made it).
"""
import datetime as dt

import sqlalchemy as sa
from alembic import op

import models.base  # noqa: F401  (custom column types)

# revision identifiers, used by Alembic.
revision = 'desk0003'
down_revision = 'wb0001'
branch_labels = None
depends_on = None


def _config(name: str, default):
    try:
        from flask import current_app

        return current_app.config.get(name, default)
    except RuntimeError:  # outside an app (offline SQL)
        return default


def upgrade():
    from models.desk import DEFAULT_SUBKINDS

    op.create_table(
        'ticket_subkind',
        sa.Column('kind', sa.String(length=24), nullable=False),
        sa.Column('code', sa.String(length=24), nullable=False),
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('name_en', sa.String(length=64), nullable=True),
        sa.Column('position', sa.Integer(), nullable=False),
        sa.Column('active', sa.Boolean(), nullable=False),
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('created_at', models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column('changed_at', models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column('created_by_id', sa.Integer(), nullable=False),
        sa.Column('changed_by_id', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['changed_by_id'], ['ab_user.id']),
        sa.ForeignKeyConstraint(['created_by_id'], ['ab_user.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('code'),
    )
    op.create_index('ix_ticket_subkind_kind', 'ticket_subkind', ['kind', 'position'], unique=False)
    bind = op.get_bind()
    uid = bind.execute(sa.text("SELECT id FROM ab_user WHERE username = :n"), {"n": _config("SYSTEM_USERNAME", "system")}).scalar()
    now = dt.datetime.now(dt.UTC)
    stamp = {"version": 1, "created_at": now, "changed_at": now, "created_by_id": uid, "changed_by_id": uid}
    table = sa.table(
        'ticket_subkind',
        sa.column('kind', sa.String),
        sa.column('code', sa.String),
        sa.column('name', sa.String),
        sa.column('name_en', sa.String),
        sa.column('position', sa.Integer),
        sa.column('active', sa.Boolean),
        sa.column("version", sa.Integer),
        sa.column("created_at", models.base.UTCDateTime()),
        sa.column("changed_at", models.base.UTCDateTime()),
        sa.column("created_by_id", sa.Integer),
        sa.column("changed_by_id", sa.Integer),
    )
    bind.execute(
        sa.insert(table),
        [
            {**stamp, "kind": kind, "code": code, "name": zh, "name_en": en, "position": n, "active": True}
            for n, (kind, code, zh, en) in enumerate(DEFAULT_SUBKINDS)
        ],
    )


def downgrade():
    op.drop_index('ix_ticket_subkind_kind', table_name='ticket_subkind')
    op.drop_table('ticket_subkind')
