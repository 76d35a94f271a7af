"""Screens and REST APIs. Importing this package registers every resource."""

from views import archives, audit, desk, fees, payments, renovation, services  # noqa: F401  (registration happens on import)
from views.registry import CATEGORIES, REGISTRY

__all__ = ["CATEGORIES", "REGISTRY"]
