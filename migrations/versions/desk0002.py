"""service desk: received time, SLA defaults as rows, holiday calendar

Revision ID: desk0002
Revises: sec0001
Create Date: 2026-11-29 11:00:00

"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401
import models.base  # noqa: F401  (custom column types)


# revision identifiers, used by Alembic.
revision = 'desk0002'
down_revision = 'sec0001'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
