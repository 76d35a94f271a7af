"""Working-day arithmetic with mainland China's holiday calendar and its make-up working days
(调休). A Manager edits the calendar (``Holiday`` rows); deadlines in working days skip weekends
and holidays but count make-up Saturdays and Sundays. Times are computed in Asia/Shanghai."""

from __future__ import annotations

import datetime as dt
import logging
from zoneinfo import ZoneInfo

from sqlalchemy import Date, Index, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from app.i18n import T
from models.base import AuditedModel
from models.errors import FieldErrors

log = logging.getLogger(__name__)
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

    def __init__(
        self,
        holidays: set[dt.date] | None = None,
        workdays: set[dt.date] | None = None,
        years: set[int] | None = None,
    ):
        self.holidays = holidays or set()
        self.workdays = workdays or set()
        # The years the table holds a calendar for; None: do not check.
        self.years = years if years is not None else None
        self._warned: set[int] = set()

    @classmethod
    def load(cls, session: Session) -> WorkCalendar:
        rows = session.execute(select(Holiday.day, Holiday.kind)).all()
        return cls(
            {d for d, k in rows if k == "holiday"},
            {d for d, k in rows if k == "workday"},
            {d.year for d, _ in rows},
        )

    def is_working_day(self, day: dt.date) -> bool:
        if self.years is not None and day.year not in self.years and day.year not in self._warned:
            # Weekends only for a year nobody loaded: say so where operators look.
            self._warned.add(day.year)
            log.warning(
                "holiday table has no %s calendar: working days count weekends only; run `flask desk holidays --year %s`",
                day.year,
                day.year,
            )
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


# --- the official calendar -------------------------------------------------------------------
# Mainland China's public holidays and make-up working days come from the ``chinese-calendar``
# package, which follows the State Council's yearly notice (published around November for the
# next year). Nothing here is typed by hand: a new year needs a new release of the package.


class CalendarYearUnknown(LookupError):
    """The installed chinese-calendar does not know this year (not yet published, or too old)."""

    def __init__(self, year: int, known: range | None):
        self.year = year
        self.known = known
        if known:
            text = T(
                f"已安装的 chinese-calendar 没有 {year} 年的节假日安排（只有 {known.start}–{known.stop - 1} 年）："
                f"国务院公布后请升级该软件包（pip install -U chinese-calendar），或由经理在「节假日与调休」中手工录入",
                f"The installed chinese-calendar has no holidays for {year} (only {known.start}-{known.stop - 1}): "
                f"upgrade it once the State Council has published them (pip install -U chinese-calendar), or have a "
                f"Manager enter them under Holidays and make-up days",
            )
        else:
            text = T("未安装 chinese-calendar 软件包", "The chinese-calendar package is not installed")
        self.message = text
        super().__init__(str(text))


def known_years() -> range | None:
    """The years the installed chinese-calendar has the State Council's calendar for."""
    try:
        from chinese_calendar import constants
    except ImportError:  # pragma: no cover - a declared dependency
        return None
    # The package's own bounds (``is_workday`` refuses dates outside them).
    years = {d.year for d in constants.holidays}
    return range(min(years), max(years) + 1) if years else None


def official_days(year: int) -> list[dict]:
    """The year's holidays and make-up working days, as Holiday rows (day, kind, name)."""
    known = known_years()
    if not known or year not in known:
        raise CalendarYearUnknown(year, known)
    from chinese_calendar import constants

    def chinese(english: str) -> str:
        try:
            return constants.Holiday(english).chinese
        except ValueError:  # a name the enum does not list: keep the package's own
            return english

    rows = [
        {"day": d, "kind": "holiday", "name": chinese(n)[:32]} for d, n in constants.holidays.items() if d.year == year
    ]
    rows += [
        {"day": d, "kind": "workday", "name": (chinese(n) + "调休")[:32]}
        for d, n in constants.workdays.items()
        if d.year == year
    ]
    return sorted(rows, key=lambda r: r["day"])


def load_official_year(session: Session, year: int) -> dict[str, int]:
    """Add the year's official days the table does not have yet; a day that is there (perhaps as a
    Manager corrected it) is kept as it is. Returns counts: added, kept (same as the source),
    differing (kept, but not what the source says). Raises ``CalendarYearUnknown``."""
    rows = official_days(year)
    have = {
        r.day: r
        for r in session.execute(
            select(Holiday).where(Holiday.day >= dt.date(year, 1, 1), Holiday.day <= dt.date(year, 12, 31))
        ).scalars()
    }
    counts = {"added": 0, "kept": 0, "differing": 0}
    for row in rows:
        existing = have.get(row["day"])
        if existing is None:
            session.add(Holiday(**row))
            counts["added"] += 1
        elif existing.kind == row["kind"]:
            counts["kept"] += 1
        else:
            counts["differing"] += 1
    session.flush()
    return counts
