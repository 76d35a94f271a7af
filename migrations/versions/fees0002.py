"""fees: payment terms, billing explanations

Revision ID: fees0002
Revises: desk0002
Create Date: 2026-11-29 11:00:00

"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401
import models.base  # noqa: F401  (custom column types)


# revision identifiers, used by Alembic.
revision = 'fees0002'
down_revision = 'desk0002'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
