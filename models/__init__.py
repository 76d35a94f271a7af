"""All models, imported here so metadata (and Alembic) sees every table."""

from models.archives import Building, Estate, Owner, Ownership, Resident, Unit, Vehicle
from models.base import AuditedModel, ChangeLog, acting_as, utcnow

__all__ = [
    "AuditedModel",
    "Building",
    "ChangeLog",
    "Estate",
    "Owner",
    "Ownership",
    "Resident",
    "Unit",
    "Vehicle",
    "acting_as",
    "utcnow",
]
