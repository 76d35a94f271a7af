"""Domain errors: raised by models, turned into 4xx answers by views."""

from __future__ import annotations


class DomainError(Exception):
    """Base of the errors a user can cause and correct."""


class FieldErrors(DomainError):
    """One or more fields are invalid. ``errors`` maps a field name to its messages."""

    def __init__(self, errors: dict[str, list[str] | str]):
        self.errors = {k: [str(m) for m in (v if isinstance(v, list) else [v])] for k, v in errors.items()}
        super().__init__("; ".join(f"{k}: {', '.join(v)}" for k, v in self.errors.items()))


class Conflict(DomainError):
    """Someone else changed the record since it was read (optimistic locking)."""

    def __init__(self, message: str, current_version: int | None = None):
        self.current_version = current_version
        super().__init__(message)
