"""Who is calling (taking a call, DESIGN.md item 3): what the clerk types (any part of a phone
number, a unit code or a name) finds the owners and residents it may be, their units, each unit's
open requests and arrears, in a handful of statements limited to the user's estates. The caller
card beside the request form shows it; picking a unit fills the owner, the contact and the phone.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from models.archives import Estate, Owner, Ownership, Resident, Unit
from models.arrears import UNPAID, outstanding_expr
from models.desk import OPEN_STATUSES, Ticket
from models.scope import estate_condition

MAX_PEOPLE = 8
MAX_TICKETS_PER_UNIT = 5


def _like(column, term: str):
    return column.contains(term, autoescape=True)


def _in_estates(column, estates):
    cond = estate_condition(column, estates)
    return cond if cond is not None else True


def _current_ownership(today: dt.date):
    return and_(
        or_(Ownership.since.is_(None), Ownership.since <= today),
        or_(Ownership.until.is_(None), Ownership.until >= today),
    )


def find_callers(
    session: Session,
    term: str = "",
    *,
    unit_id: int | None = None,
    estates=None,
    today: dt.date,
    with_arrears: bool = True,
    limit: int = MAX_PEOPLE,
) -> list[dict]:
    """The people ``term`` may be (or the people of ``unit_id``), each with their units in the
    given estates (None: all). A person is ``{"kind": "owner"|"resident"|"unit", "id", "name",
    "phone", "units": [...]}``; a unit is ``{"id", "code", "estate_id", "estate", "owner_id",
    "owner", "tickets": [...], "arrears"}`` (arrears: the overdue amount still owed, None when not
    asked for)."""
    term = (term or "").strip()
    people: list[dict] = []
    unit_ids: set[int] = set()
    current = _current_ownership(today)

    if unit_id is not None:
        unit_rows = session.execute(
            select(Unit.id).where(Unit.id == unit_id, _in_estates(Unit.estate_id, estates))
        ).scalars().all()
        unit_ids.update(unit_rows)
        by_code_units = list(unit_rows)
    elif len(term) < 2:
        return []
    else:
        # Owners by name or phone, with their current units in the estates.
        owner_rows = session.execute(
            select(Owner.id, Owner.name, Owner.phone, Ownership.unit_id)
            .join(Ownership, and_(Ownership.owner_id == Owner.id, current))
            .join(Unit, Unit.id == Ownership.unit_id)
            .where(
                or_(_like(Owner.name, term), _like(Owner.phone, term), _like(Owner.phone2, term)),
                _in_estates(Unit.estate_id, estates),
            )
            .order_by(Owner.name, Owner.id, Unit.code)
            .limit(limit * 4)
        ).all()
        seen: dict[tuple, dict] = {}
        for r in owner_rows:
            key = ("owner", r.id)
            if key not in seen:
                if len(seen) >= limit:
                    continue
                seen[key] = {"kind": "owner", "id": r.id, "name": r.name, "phone": r.phone, "unit_ids": []}
            seen[key]["unit_ids"].append(r.unit_id)
            unit_ids.add(r.unit_id)
        # Residents (who actually live there, tenants included) by name or phone.
        resident_rows = session.execute(
            select(Resident.id, Resident.name, Resident.phone, Resident.unit_id)
            .join(Unit, Unit.id == Resident.unit_id)
            .where(
                Resident.is_current.is_(True),
                or_(_like(Resident.name, term), _like(Resident.phone, term)),
                _in_estates(Unit.estate_id, estates),
            )
            .order_by(Resident.name, Resident.id)
            .limit(limit)
        ).all()
        for r in resident_rows:
            # The same person as an owner already found (same name and phone): one card.
            twin = next(
                (p for p in seen.values() if p["kind"] == "owner" and p["name"] == r.name and p["phone"] == r.phone),
                None,
            )
            if twin is not None:
                if r.unit_id not in twin["unit_ids"]:
                    twin["unit_ids"].append(r.unit_id)
            else:
                seen[("resident", r.id)] = {
                    "kind": "resident", "id": r.id, "name": r.name, "phone": r.phone, "unit_ids": [r.unit_id],
                }
            unit_ids.add(r.unit_id)
        people = list(seen.values())[: limit * 2]
        # Units by code ("1501" finds 3-2-1501): the unit's owners are the callers it may be.
        by_code_units = session.execute(
            select(Unit.id)
            .where(_like(Unit.code, term), _in_estates(Unit.estate_id, estates))
            .order_by(Unit.code, Unit.id)
            .limit(limit)
        ).scalars().all()
        unit_ids.update(by_code_units)

    if not unit_ids:
        return people and [{**p, "units": []} for p in people]

    ids = sorted(unit_ids)
    units = {
        r.id: {"id": r.id, "code": r.code, "estate_id": r.estate_id, "estate": r.estate}
        for r in session.execute(
            select(Unit.id, Unit.code, Unit.estate_id, Estate.name.label("estate"))
            .join(Estate, Estate.id == Unit.estate_id)
            .where(Unit.id.in_(ids))
        ).all()
    }
    # Each unit's current owners, the largest share first (the one a request is filed against).
    owners_of: dict[int, list] = {}
    for r in session.execute(
        select(Ownership.unit_id, Owner.id, Owner.name, Owner.phone)
        .join(Owner, Owner.id == Ownership.owner_id)
        .where(Ownership.unit_id.in_(ids), current)
        .order_by(Ownership.unit_id, Ownership.share.desc(), Ownership.id)
    ).all():
        owners_of.setdefault(r.unit_id, []).append(r)
    for uid, u in units.items():
        first = (owners_of.get(uid) or [None])[0]
        u["owner_id"], u["owner"] = (first.id, first.name) if first else (None, None)
        u["tickets"], u["arrears"] = [], None
    # Open requests per unit, newest first.
    ranked = (
        select(
            Ticket.id, Ticket.number, Ticket.kind, Ticket.status, Ticket.unit_id, Ticket.received_at,
            Ticket.reply_due_at, Ticket.resolve_due_at, Ticket.replied_at,
            func.row_number().over(partition_by=Ticket.unit_id, order_by=Ticket.id.desc()).label("n"),
        )
        .where(Ticket.unit_id.in_(ids), Ticket.status.in_(OPEN_STATUSES), Ticket.archived_at.is_(None))
        .subquery()
    )
    for r in session.execute(select(ranked).where(ranked.c.n <= MAX_TICKETS_PER_UNIT).order_by(ranked.c.id.desc())):
        units[r.unit_id]["tickets"].append(
            {
                "id": r.id, "number": r.number, "kind": r.kind, "status": r.status,
                "deadline": r.reply_due_at if r.replied_at is None else r.resolve_due_at,
            }
        )
    if with_arrears:
        from models.fees import Bill

        for u in units.values():
            u["arrears"] = Decimal("0.00")
        for uid, owed in session.execute(
            select(Bill.unit_id, func.sum(outstanding_expr()))
            .where(Bill.unit_id.in_(ids), Bill.status.in_(UNPAID), Bill.due_date < today)
            .group_by(Bill.unit_id)
        ).all():
            units[uid]["arrears"] = Decimal(owed or 0)

    # A unit found by its code (or asked for): its owners are the callers it may be.
    for uid in by_code_units:
        if uid not in units:
            continue
        found = [p for p in people if uid in p["unit_ids"]]
        if found:
            continue
        for o in owners_of.get(uid, [])[:2]:
            existing = next((p for p in people if p["kind"] == "owner" and p["id"] == o.id), None)
            if existing is None:
                people.append({"kind": "owner", "id": o.id, "name": o.name, "phone": o.phone, "unit_ids": [uid]})
            elif uid not in existing["unit_ids"]:
                existing["unit_ids"].append(uid)
        if not owners_of.get(uid):
            people.append({"kind": "unit", "id": None, "name": None, "phone": None, "unit_ids": [uid]})
    return [
        {**{k: v for k, v in p.items() if k != "unit_ids"}, "units": [units[u] for u in p["unit_ids"] if u in units]}
        for p in people
    ]
