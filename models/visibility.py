"""Row-level confidentiality: who may read a confidential record's content.

DESIGN.md item 4: "confidential matters stay confidential". A model declares
``__confidential__ = Confidential(flag=..., columns=...)``; its confidential columns are then shown
only to the reader roles and to the people the record names (the handler, the clerk who recorded
it). Screens, the API, exports, registers and print forms all ask ``may_read_row``; list searches
over those columns add ``readable_rows_clause``.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import false, or_

# Who answers for confidential matters: the supervisor the clerk asks, the office manager.
READER_ROLES = frozenset({"Admin", "Manager", "Supervisor"})


@dataclass(frozen=True)
class Confidential:
    flag: str  # the boolean column that marks a row confidential
    columns: tuple[str, ...]  # what only the readers see
    # Users named by these columns read the row too (the handler, the clerk who recorded it).
    reader_columns: tuple[str, ...] = ("assignee_id", "created_by_id")
    reader_roles: frozenset[str] = READER_ROLES


def confidential_of(model) -> Confidential | None:
    return getattr(model, "__confidential__", None)


def role_names(user) -> set[str]:
    if user is None:
        return set()
    names = {r.name for r in getattr(user, "roles", None) or ()}
    for group in getattr(user, "groups", None) or ():
        names |= {r.name for r in getattr(group, "roles", None) or ()}
    return names


def may_read_row(obj, user) -> bool:
    rule = confidential_of(type(obj))
    if rule is None or not getattr(obj, rule.flag, False):
        return True
    if user is None:
        return False
    if role_names(user) & rule.reader_roles:
        return True
    return any(getattr(obj, col, None) == user.id for col in rule.reader_columns)


def readable_rows_clause(model, user):
    """SQL condition: the rows of ``model`` whose confidential columns ``user`` may read (None when
    the user reads them all)."""
    rule = confidential_of(model)
    if rule is None:
        return None
    if user is not None and role_names(user) & rule.reader_roles:
        return None
    flag = getattr(model, rule.flag)
    terms = [flag.is_(None), flag == false()]
    if user is not None:
        terms += [getattr(model, col) == user.id for col in rule.reader_columns]
    return or_(*terms)
