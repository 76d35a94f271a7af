"""Archive housekeeping jobs."""

from __future__ import annotations

import datetime as dt

from celery import shared_task
from sqlalchemy import select

from app.extensions import db
from models.archives import Resident


@shared_task(name="jobs.archives.close_moved_out_residents")
def close_moved_out_residents(today: str | None = None) -> int:
    """Residents whose move-out date has come are no longer current. Idempotent: a rerun finds
    nothing left to change. Goes through the ORM so each change is audited."""
    day = dt.date.fromisoformat(today) if today else dt.date.today()
    # ``Resident.check()`` (run on every flush) judges by the real clock and would put a resident
    # whose move-out is still ahead back to current: a date after today can close nobody.
    day = min(day, dt.date.today())
    residents = (
        db.session.execute(select(Resident).where(Resident.is_current.is_(True), Resident.move_out <= day).limit(5000))
        .scalars()
        .all()
    )
    for r in residents:
        r.is_current = False
    db.session.commit()
    return len(residents)
