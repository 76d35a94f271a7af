"""several estates: which estates each user works for, where each owner was registered

Revision ID: scope0001
Revises: reno0002
Create Date: 2026-11-29 14:30:00

"""
from alembic import op
import sqlalchemy as sa
import models.base  # noqa: F401  (custom column types)


# revision identifiers, used by Alembic.
revision = 'scope0001'
down_revision = 'reno0002'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'user_estate',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('estate_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('created_at', models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column('changed_at', models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column('created_by_id', sa.Integer(), nullable=False),
        sa.Column('changed_by_id', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['created_by_id'], ['ab_user.id']),
        sa.ForeignKeyConstraint(['changed_by_id'], ['ab_user.id']),
        sa.ForeignKeyConstraint(['estate_id'], ['estate.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['user_id'], ['ab_user.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('user_id', 'estate_id', name='uq_user_estate'),
    )
    with op.batch_alter_table('user_estate', schema=None) as batch_op:
        batch_op.create_index('ix_user_estate_user_id', ['user_id'], unique=False)
        batch_op.create_index('ix_user_estate_estate_id', ['estate_id'], unique=False)
    # The estate where each owner was registered: the first estate where they own a unit.
    with op.batch_alter_table('owner', schema=None) as batch_op:
        batch_op.add_column(sa.Column('estate_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True))
        batch_op.create_index('ix_owner_estate_id', ['estate_id'], unique=False)
        batch_op.create_foreign_key('fk_owner_estate_id_estate', 'estate', ['estate_id'], ['id'])
    op.execute(
        "UPDATE owner SET estate_id = (SELECT MIN(unit.estate_id) FROM ownership JOIN unit ON unit.id = ownership.unit_id"
        " WHERE ownership.owner_id = owner.id) WHERE estate_id IS NULL"
    )
    # Everyone who already works here keeps seeing what they saw: every estate. Admins narrow it.
    conn = op.get_bind()
    # (Not the system user: it never signs in; config.SYSTEM_USERNAME is fixed.)
    users = conn.execute(sa.text("SELECT id FROM ab_user WHERE username <> 'system'")).scalars().all()
    if users:
        import datetime as dt

        now = dt.datetime.now(dt.UTC)
        if conn.dialect.name == "sqlite":
            now = now.replace(tzinfo=None)
        conn.execute(
            sa.text(
                "INSERT INTO user_estate (user_id, estate_id, version, created_at, changed_at, created_by_id, changed_by_id)"
                " VALUES (:u, NULL, 1, :now, :now, :u, :u)"
            ),
            [{"u": u, "now": now} for u in users],
        )


def downgrade():
    with op.batch_alter_table('owner', schema=None) as batch_op:
        batch_op.drop_constraint('fk_owner_estate_id_estate', type_='foreignkey')
        batch_op.drop_index('ix_owner_estate_id')
        batch_op.drop_column('estate_id')
    with op.batch_alter_table('user_estate', schema=None) as batch_op:
        batch_op.drop_index('ix_user_estate_estate_id')
        batch_op.drop_index('ix_user_estate_user_id')
    op.drop_table('user_estate')
