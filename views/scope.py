"""Several estates, one company (issue 11): every user reads and writes only the estates they work
for, on every path, by one mechanism.

Each resource declares once, in the registry, the path from its rows to their estate
(``Resource.estate``: ``"estate_id"``, ``"ticket.estate_id"``, ``"renovation.estate_id"``,
``"estates"`` for a to-many relation), or that it belongs to none: ``COMPANY`` (the company's own
settings and catalogs: everyone reads them, only company-level users change them) or
``COMPANY_ONLY`` (only company-level users see them at all: the change log, the users' estates).
Start-up refuses a resource that says neither.

From that declaration this module gives the base filter every list, detail, edit, delete, export,
action and lookup of the resource goes through (a row of another estate is simply not there: 404,
never 403, so its existence is not told), and the check of every write (a record created in or
moved to an estate outside the user's: 403). Hand-written queries (registers, reports, jobs) use
``models.scope.scope_clause`` with ``user_estates()``.
"""

from __future__ import annotations

from flask import abort, g, has_request_context
from flask_appbuilder.models.filters import BaseFilter

from app.i18n import T
from models.scope import estate_ids_of_row, estates_of, scope_clause

COMPANY = "company"
COMPANY_ONLY = "company-only"
MSG_OUT_OF_SCOPE = T(
    "该记录不属于您负责的小区，不能在此创建或改到此处",
    "This record is not of an estate you work for: it cannot be created or moved there",
)
MSG_COMPANY_ONLY = T("只有公司层面的用户可以修改此项", "Only company-level users change this")


class OutOfScope(Exception):
    """A write refused because it would put a record where the user does not work: 403. (Not a
    werkzeug 403: FAB's API wraps its handlers in a catch-all that would make it a 500.)"""


def user_estates() -> frozenset[int] | None:
    """The estates the current user works for (None: every estate), once per request."""
    if not has_request_context():
        return None  # jobs and commands act for the company
    if "desk_estates" not in g:
        g.desk_estates = estates_of(getattr(g, "user", None))
    return g.desk_estates


def clause_for(resource):
    """SQL condition for the resource's rows the current user may see; None for all of them."""
    estates = user_estates()
    if estates is None or resource.estate == COMPANY:
        return None
    if resource.estate == COMPANY_ONLY:
        from sqlalchemy import false

        return false()
    return scope_clause(resource.model, resource.estate, estates, optional=resource.estate_optional)


class FilterInScope(BaseFilter):
    """The base filter of every scoped resource (its value is the resource)."""

    name = "in scope"
    arg_name = "desk_scope"

    def apply(self, query, value):
        clause = clause_for(value)
        return query if clause is None else query.filter(clause)


def scoped_estate(requested: int | None):
    """What a report covers: the estate asked for, if the user works for it (another estate is
    not there: 404), else the estates they work for (a set; None: every estate)."""
    estates = user_estates()
    if estates is None:
        return requested
    if requested is None:
        return estates
    if requested not in estates:
        abort(404)
    return requested


def scoped_range(rng):
    """A register's or report's range (models/registers.py) kept to the user's estates."""
    from dataclasses import replace

    estate_id = scoped_estate(rng.estate_id) if rng.estate_id is not None else None
    return replace(rng, estate_id=estate_id, estates=user_estates())


def resource_of_model(model):
    """The resource that serves a model's records (the first registered with records)."""
    from views.registry import REGISTRY

    return next((r for r in REGISTRY.values() if r.model is model and r.records), None)


def related_in_scope(resource, columns=None) -> dict:
    """FAB's filters for the forms' relation dropdowns: each offers only the related records of
    the estates the user works for."""
    from sqlalchemy import inspect

    out = {}
    mapper = inspect(resource.model)
    for col in columns if columns is not None else {*resource.edit_columns, *(resource.add_columns or ())}:
        rel = mapper.relationships.get(col)
        target = resource_of_model(rel.mapper.class_) if rel is not None else None
        if target is not None and target.estate not in (None, COMPANY):
            out[col] = [["id", FilterInScope, target]]
    return out


def people_in_scope_clause():
    """SQL condition on users: people who work in one of the current user's estates, or for the
    whole company (a picker offers them; a write may name them)."""
    from flask_appbuilder.security.sqla.models import User
    from sqlalchemy import or_, true

    from models.scope import UserEstate

    estates = user_estates()
    if estates is None:
        return true()
    return User.desk_estates.any(or_(UserEstate.estate_id.is_(None), UserEstate.estate_id.in_(sorted(estates))))


def check_write(resource, obj) -> None:
    """A record the user creates or changes must be of an estate they work for (403)."""
    estates = user_estates()
    if estates is None:
        return
    if resource.estate in (COMPANY, COMPANY_ONLY):
        raise OutOfScope(str(MSG_COMPANY_ONLY))
    ids = estate_ids_of_row(obj, resource.estate)
    if resource.estate_optional:
        ids.discard(None)
    if not ids or None in ids or not ids <= estates:
        raise OutOfScope(str(MSG_OUT_OF_SCOPE))


def admit(resource, obj) -> None:
    """Before a record the user made or changed is written: an estate left empty is the user's
    own when they work for one estate only; then it must be one of theirs (403)."""
    estates = user_estates()
    if estates is None:
        return
    from app.extensions import db

    # A record about a unit takes the estate of the unit it is about now (models/scope.InUnitsEstate),
    # so a move to another estate's unit is checked against where it goes, not where it was.
    if hasattr(obj, "derive_estate"):
        obj.derive_estate(db.session)
    path = resource.estate or ""
    if path == "estate_id" and getattr(obj, "estate_id", None) is None and getattr(obj, "estate", None) is None:
        unit = getattr(obj, "unit", None)
        if unit is not None:  # the estate of the unit it is about (the model would derive it so)
            obj.estate_id = unit.estate_id
        elif len(estates) == 1 and not resource.estate_optional:
            obj.estate_id = next(iter(estates))
    check_write(resource, obj)


def declared(resource) -> None:
    """Start-up refuses a resource that declares no estate path, and one whose path does not
    lead to an estate."""
    if not resource.estate:
        raise ValueError(
            f"{resource.name}: declare estate= (the path to its estate, e.g. 'unit.estate_id') "
            f"or estate=COMPANY / COMPANY_ONLY (views/scope.py)"
        )
    if resource.estate in (COMPANY, COMPANY_ONLY):
        return
    for path in resource.estate.split("|"):
        _check_path(resource, path)


def _check_path(resource, path: str) -> None:
    from models.archives import Estate

    model = resource.model
    parts = path.split(".")
    for i, part in enumerate(parts):
        attr = getattr(model, part, None)
        if attr is None:
            raise ValueError(f"{resource.name}: estate path {path!r}: no {part!r} on {model.__name__}")
        mapper = getattr(getattr(attr, "property", None), "mapper", None)
        if mapper is None:
            if i != len(parts) - 1:
                raise ValueError(f"{resource.name}: estate path {path!r} goes on past a column")
            ok = model is Estate and part == "id" or part == "estate_id"
            if not ok:
                raise ValueError(f"{resource.name}: estate path {path!r} must end on an estate id")
            return
        model = mapper.class_
    if model is not Estate:
        raise ValueError(f"{resource.name}: estate path {path!r} does not lead to an estate")
