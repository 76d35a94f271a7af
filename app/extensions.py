"""Extensions shared by every app the factory makes (each app binds them in ``init_app``)."""

from __future__ import annotations

from flask_appbuilder import Model
from flask_appbuilder.models.sqla.base import SQLA
from flask_migrate import Migrate

# FAB's declarative base and Flask-SQLAlchemy must share one metadata, or Alembic sees no tables.
db = SQLA(metadata=Model.metadata)
migrate = Migrate()
