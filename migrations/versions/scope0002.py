"""several estates: records about a unit carry its estate; the scope filter's indexes

Revision ID: scope0002
Revises: scope0001
Create Date: 2026-11-29 15:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'scope0002'
down_revision = 'scope0001'
branch_labels = None
depends_on = None

# models/scope.InUnitsEstate: a copy of the unit's estate, so that a list filtered by the user's
# estates reads one range of (estate_id, id) instead of walking the table through the units.
UNIT_TABLES = (
    'ownership', 'resident', 'vehicle', 'meter_reading', 'refund', 'renovation',
    'service_subscription', 'service_order',
)
# Tables that already had their estate: only the index the newest-first list needs.
ESTATE_TABLES = ('ticket', 'bill', 'payment', 'dunning_notice')

ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade():
    for table in UNIT_TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('estate_id', ID, nullable=True))
        op.execute(
            f"UPDATE {table} SET estate_id = (SELECT unit.estate_id FROM unit WHERE unit.id = {table}.unit_id)"
        )
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column('estate_id', existing_type=ID, nullable=False)
            batch_op.create_foreign_key(f'fk_{table}_estate_id_estate', 'estate', ['estate_id'], ['id'])
            batch_op.create_index(f'ix_{table}_estate', ['estate_id', 'id'], unique=False)
    for table in ESTATE_TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(f'ix_{table}_estate', ['estate_id', 'id'], unique=False)


def downgrade():
    for table in ESTATE_TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(f'ix_{table}_estate')
    for table in UNIT_TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(f'ix_{table}_estate')
            batch_op.drop_constraint(f'fk_{table}_estate_id_estate', type_='foreignkey')
            batch_op.drop_column('estate_id')
