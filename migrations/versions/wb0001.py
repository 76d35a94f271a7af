"""workbench: a month's billed and collected sums from an index

Revision ID: wb0001
Revises: scope0002
Create Date: 2026-11-29 16:00:00

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = 'wb0001'
down_revision = 'scope0002'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('bill', schema=None) as batch_op:
        batch_op.create_index(
            'ix_bill_period_money',
            ['period', 'estate_id'],
            unique=False,
            postgresql_include=['status', 'amount', 'late_fee', 'late_fee_waived', 'paid_amount'],
        )


def downgrade():
    with op.batch_alter_table('bill', schema=None) as batch_op:
        batch_op.drop_index('ix_bill_period_money')
