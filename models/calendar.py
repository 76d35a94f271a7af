"""Working-day arithmetic with mainland China's holiday calendar and its make-up working days
(调休). A Manager edits the calendar (``Holiday`` rows); deadlines in working days skip weekends
and holidays but count make-up Saturdays and Sundays. Times are computed in Asia/Shanghai."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from sqlalchemy import Date, Index, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from app.i18n import T
from models.base import AuditedModel
from models.errors import FieldErrors

SHANGHAI = ZoneInfo("Asia/Shanghai")
DAY_KINDS = {"holiday": T("法定节假日", "Public holiday"), "workday": T("调休上班", "Make-up working day")}


class Holiday(AuditedModel):
    __tablename__ = "holiday"

    day: Mapped[dt.date] = mapped_column(Date, nullable=False, unique=True)
    kind: Mapped[str] = mapped_column(String(16), nullable=False, default="holiday")
    name: Mapped[str] = mapped_column(String(32), nullable=False)

    __table_args__ = (Index("ix_holiday_day_kind", "day", "kind"),)

    def check(self) -> None:
        if self.kind not in DAY_KINDS:
            raise FieldErrors({"kind": [str(T("类型无效", "Invalid kind"))]})

    def __str__(self) -> str:
        return f"{self.day} {self.name}"


class WorkCalendar:
    """A snapshot of the holiday table, for many deadline computations in a row."""

    def __init__(self, holidays: set[dt.date] | None = None, workdays: set[dt.date] | None = None):
        self.holidays = holidays or set()
        self.workdays = workdays or set()

    @classmethod
    def load(cls, session: Session) -> WorkCalendar:
        rows = session.execute(select(Holiday.day, Holiday.kind)).all()
        return cls({d for d, k in rows if k == "holiday"}, {d for d, k in rows if k == "workday"})

    def is_working_day(self, day: dt.date) -> bool:
        if day in self.workdays:
            return True
        if day in self.holidays:
            return False
        return day.weekday() < 5

    def add_working_days(self, start: dt.datetime, days: int) -> dt.datetime:
        """``days`` working days after ``start``, at the same local time of day. A request that
        arrives on a day off counts from the next working day's start (09:00)."""
        local = start.astimezone(SHANGHAI)
        day = local.date()
        clock = local.timetz()
        if not self.is_working_day(day):
            while not self.is_working_day(day):
                day += dt.timedelta(days=1)
            clock = dt.time(9, 0, tzinfo=SHANGHAI)
        counted = 0
        while counted < days:
            day += dt.timedelta(days=1)
            if self.is_working_day(day):
                counted += 1
        return dt.datetime.combine(day, clock.replace(tzinfo=None), tzinfo=SHANGHAI).astimezone(dt.UTC)


# The 2026 calendar as published by the State Council (国务院办公厅, 2025-11): holidays and
# make-up working days. Loaded into the Holiday table by the demo data and editable by Managers.
CHINA_2026 = {
    "holiday": {
        "元旦": ["2026-01-01", "2026-01-02", "2026-01-03"],
        "春节": [f"2026-02-{d:02d}" for d in range(15, 24)],
        "清明节": ["2026-04-04", "2026-04-05", "2026-04-06"],
        "劳动节": ["2026-05-01", "2026-05-02", "2026-05-03", "2026-05-04", "2026-05-05"],
        "端午节": ["2026-06-19", "2026-06-20", "2026-06-21"],
        "中秋节": ["2026-09-25", "2026-09-26", "2026-09-27"],
        "国庆节": [f"2026-10-{d:02d}" for d in range(1, 8)],
    },
    "workday": {
        "元旦调休": ["2026-01-04"],
        "春节调休": ["2026-02-14", "2026-02-28"],
        "劳动节调休": ["2026-05-09"],
        "国庆节调休": ["2026-09-20", "2026-10-10"],
    },
}


def calendar_rows(calendar: dict = CHINA_2026) -> list[dict]:
    rows = []
    for kind, groups in calendar.items():
        for name, days in groups.items():
            rows += [{"day": dt.date.fromisoformat(d), "kind": kind, "name": name} for d in days]
    return rows
