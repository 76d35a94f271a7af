"""Which estates a user works for (issue 11: several estates, one company).

A user is attached to one or more estates (``user_estate`` rows), or to every estate: a row with
no estate, for company-level Managers; Admin always sees every estate. A user with no row sees no
estate at all: access is given, never assumed.

Resources declare once, in the registry, the path from their rows to an estate
(``Resource.estate``, views/scope.py builds the SQL from it); this module answers "which estates"
and builds that SQL for hand-written queries (registers, reports, jobs) too.
"""

from __future__ import annotations

from flask_appbuilder.security.sqla.models import User
from sqlalchemy import ForeignKey, Index, Integer, UniqueConstraint, event, false, inspect, or_, select, update
from sqlalchemy.orm import Mapped, backref, declared_attr, mapped_column, relationship

from models.base import AuditedModel

ADMIN_ROLE = "Admin"


class UserEstate(AuditedModel):
    """Who gave whom which estate, and when, is on record (audit columns, change log)."""

    __tablename__ = "user_estate"

    user_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("ab_user.id", ondelete="CASCADE"), nullable=False, index=True
    )
    # None: every estate of the company.
    estate_id: Mapped[int | None] = mapped_column(ForeignKey("estate.id", ondelete="CASCADE"), index=True)

    # ``User.desk_estates``: a backref, so that it is added when the mappers are configured (all
    # models imported), and the user is loaded with it in one statement (app/security.py).
    user = relationship(
        User,
        foreign_keys=[user_id],
        viewonly=True,
        backref=backref("desk_estates", viewonly=True, lazy="select", foreign_keys=[user_id]),
    )
    estate = relationship("Estate", viewonly=True)

    __table_args__ = (UniqueConstraint("user_id", "estate_id", name="uq_user_estate"),)

    def __str__(self) -> str:
        return f"{self.user_id}: {self.estate_id or '*'}"


class InUnitsEstate:
    """A record about a unit (a resident, an ownership, a renovation, ...) carries its unit's estate
    in a column of its own, indexed with the id.

    Why a copy: every list of it is filtered by the user's estates (views/scope.py). Through the
    unit, PostgreSQL orders the newest rows by walking the id index backwards and looks each unit
    up, and for an estate whose rows are old it walks most of the table (180 ms for one estate of
    20 at 200,000 residents; benchmarks/list_views.py); on ``(estate_id, id)`` it reads one page.

    The copy cannot drift: it is taken from the unit before every flush (``derive_estate``), in
    bulk inserts (models/imports.insert_rows), and a unit moved to another estate takes its
    records along (``Unit.before_update``)."""

    @declared_attr
    def estate_id(cls) -> Mapped[int]:
        return mapped_column(ForeignKey("estate.id"), nullable=False)

    @declared_attr
    def estate(cls):
        # Read-only: the estate is the unit's (derive_estate), never set through this.
        return relationship("Estate", viewonly=True)

    def derive_estate(self, session) -> None:
        from models.archives import Unit

        state = inspect(self)
        moved = state.attrs.unit_id.history.has_changes() or state.attrs.unit.history.has_changes()
        if state.persistent and self.estate_id is not None and not moved:
            return
        unit = state.dict.get("unit")
        # The unit object wins when it was just set (a form, the API): the flush copies its id
        # into unit_id afterwards, as it does here with its estate.
        if unit is not None and (state.attrs.unit.history.added or self.unit_id in (None, unit.id)):
            estate_id = unit.estate_id if unit.estate_id is not None else getattr(unit.estate, "id", None)
        elif self.unit_id is not None:
            with session.no_autoflush:
                estate_id = session.execute(select(Unit.estate_id).where(Unit.id == self.unit_id)).scalar()
        else:
            return
        if estate_id is not None and estate_id != self.estate_id:
            self.estate_id = estate_id


@event.listens_for(InUnitsEstate, "instrument_class", propagate=True)
def _estate_index(mapper, cls) -> None:
    """The scope filter's index, on each table of the mixin as it is mapped."""
    table = mapper.local_table
    Index(f"ix_{table.name}_estate", table.c.estate_id, table.c.id)


def estate_keyed_models() -> list[type]:
    """The models that copy their unit's estate (for bulk writers and moves)."""
    out, todo = [], list(InUnitsEstate.__subclasses__())
    while todo:
        cls = todo.pop()
        if "__table__" in cls.__dict__:
            out.append(cls)
        todo.extend(cls.__subclasses__())
    return out


def follow_unit(session, unit_id: int, estate_id: int) -> None:
    """A unit moved to another estate: its records go with it."""
    for model in estate_keyed_models():
        session.execute(
            update(model.__table__).where(model.__table__.c.unit_id == unit_id).values(estate_id=estate_id)
        )


def with_unit_estates(session, model, rows: list[dict]) -> list[dict]:
    """Bulk rows of an ``InUnitsEstate`` model with ``estate_id`` filled from their units (one
    query); other models' rows unchanged."""
    from models.archives import Unit

    if not (isinstance(model, type) and issubclass(model, InUnitsEstate)):
        return rows
    wanted = {r["unit_id"] for r in rows if r.get("estate_id") is None}
    if not wanted:
        return rows
    estate_of = {}
    ids = sorted(wanted)
    for i in range(0, len(ids), 5000):
        estate_of.update(session.execute(select(Unit.id, Unit.estate_id).where(Unit.id.in_(ids[i : i + 5000]))).all())
    return [r if r.get("estate_id") is not None else {**r, "estate_id": estate_of.get(r["unit_id"])} for r in rows]


def estates_of(user) -> frozenset[int] | None:
    """The ids of the estates ``user`` works for; None for every estate (Admin, company level)."""
    if user is None or not getattr(user, "is_authenticated", False):
        return frozenset()
    names = {r.name for r in getattr(user, "roles", None) or ()}
    if ADMIN_ROLE in names:
        return None
    rows = getattr(user, "desk_estates", None) or ()
    if any(r.estate_id is None for r in rows):
        return None
    return frozenset(r.estate_id for r in rows)


# --- SQL from a path ------------------------------------------------------------------------------
def scope_clause(model, path: str, estates: frozenset[int], optional: bool = False):
    """SQL condition: rows of ``model`` whose estate, reached through ``path`` ("estate_id",
    "unit.estate_id", "renovation.unit.estate_id", "estates" for a to-many relation to Estate,
    "id" on the estate itself), is one of ``estates``. ``optional``: a row with no estate (a
    company-wide one) matches too. Each hop is ``fk IN (SELECT id ...)`` on indexed keys."""
    if "|" in path:  # either way leads to an estate of the user's
        return or_(*[scope_clause(model, p, estates, optional) for p in path.split("|")])
    head, _, rest = path.partition(".")
    attr = getattr(model, head)
    prop = getattr(attr, "property", None)
    mapper = getattr(prop, "mapper", None)
    ids = sorted(estates)
    if mapper is None:  # a column: the estate's id itself
        clause = attr.in_(ids) if ids else false()
        return or_(attr.is_(None), clause) if optional else clause
    target = mapper.class_
    inner = scope_clause(target, rest or "id", estates)
    if prop.uselist:  # to-many: any related row in scope
        clause = attr.any(inner)
        return or_(~attr.any(), clause) if optional else clause
    local = next(iter(prop.local_columns))
    target_pk = inspect(target).primary_key[0]
    clause = getattr(model, local.key).in_(select(target_pk).where(inner))
    return or_(getattr(model, local.key).is_(None), clause) if optional else clause


def estate_ids_of_row(obj, path: str) -> set[int | None]:
    """The estates a row belongs to, walking ``path`` on the objects (for writes: where is this
    record going). An empty set or ``{None}``: it belongs to no estate."""
    if "|" in path:
        found = set()
        for p in path.split("|"):
            found |= estate_ids_of_row(obj, p)
        return found - {None} or found
    nodes = [obj]
    parts = path.split(".")
    for part in parts:
        nxt = []
        for node in nodes:
            value = getattr(node, part, None) if node is not None else None
            if value is None and node is not None and part.endswith("_id"):
                # A relation set as an object (a form, the API) is flushed into its key later.
                related = getattr(node, part[:-3], None)
                value = getattr(related, "id", None)
            if isinstance(value, (list, tuple, set)):
                nxt.extend(value)
            else:
                nxt.append(value)
        nodes = nxt
    out = set()
    for node in nodes:
        if node is None or isinstance(node, int):
            out.add(node)
        else:  # the path ended on an Estate object (a to-many relation)
            out.add(getattr(node, "id", None))
    return out


def estate_condition(column, estate):
    """The condition a report puts on an estate column: one estate (an id), the estates a user
    works for (a set of ids) or every estate (None: no condition)."""
    if estate is None:
        return None
    if isinstance(estate, int):
        return column == estate
    return column.in_(sorted(estate)) if estate else false()
