"""What the help-request procedure prints and counts (DESIGN.md items 3 and 12): the three registers,
the one-ticket form's fields and timeline, and the reports' figures. Queries and rows only; the
screens and the API that show them are views/registers.py and views/reports.py.

- 住户求助登记表 (``help``): every request;
- 住户报修登记表 (``repair``): repairs, with the agreed visit time, responsibility and cost;
- 投诉受理登记表 (``complaint``): complaints, with what they are about and the callback result.

A register or a report covers the requests received (``received_at``; the recording time for rows
without it) between two local (Asia/Shanghai) dates, both included (``from`` / ``to``,
YYYY-MM-DD), optionally of one ``estate``. Phones are masked for viewers without the personal
right, and a confidential matter reads "（保密）" for viewers who are not its readers
(models/visibility.py): every function that makes rows is told who reads them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from flask import current_app
from flask_appbuilder.security.sqla.models import User
from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, Side
from openpyxl.utils import get_column_letter
from sqlalchemy import Date, cast, func, literal_column, select
from sqlalchemy.orm import aliased

from app.i18n import T
from models.archives import Estate, Owner, Resident, Unit
from models.base import utcnow
from models.desk import (
    CALLBACK_STATUSES,
    COMPLAINT_ABOUT,
    EVENT_KINDS,
    LATE_ENTRY,
    MEDICAL_PATHS,
    OPEN_STATUSES,
    RESPONSIBILITIES,
    STATUSES,
    TICKET_CODED,
    TICKET_KINDS,
    TICKET_LABELS,
    TICKET_PARTS,
    TICKET_SUBKINDS,
    Callback,
    Ticket,
)
from models.scope import estate_condition
from models.validators import mask_phone
from models.visibility import may_read_row
from models.xlsx import workbook_bytes

CONFIDENTIAL = T("（保密）", "(confidential)")
# Timeline entries that carry what a confidential request says.
CONFIDENTIAL_EVENT_KINDS = ("created", "reply", "note")
MAX_DAYS = 366
MIN_DATE, MAX_DATE = dt.date(1970, 1, 1), dt.date(2999, 12, 31)
SCORES = (1, 2, 3, 4, 5)


# --- the date range --------------------------------------------------------------------------
class RangeError(ValueError):
    """A bad query argument: ``field`` names it, ``message`` says what is wrong."""

    def __init__(self, field: str, message: T):
        super().__init__(str(message))
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Range:
    first: dt.date  # local dates, both included
    last: dt.date
    start: dt.datetime  # UTC, start included
    end: dt.datetime  # UTC, end excluded
    estate_id: int | None = None
    # The estates the viewer works for (None: every estate); views set it (views/scope.py).
    estates: frozenset | None = None

    @property
    def days(self) -> list[dt.date]:
        return [self.first + dt.timedelta(days=i) for i in range((self.last - self.first).days + 1)]


def display_tz() -> ZoneInfo:
    return ZoneInfo(current_app.config.get("DISPLAY_TIMEZONE", "Asia/Shanghai"))


def _parse_date(args, field: str, default: dt.date, label: T) -> dt.date:
    raw = (args.get(field) or "").strip()
    if not raw:
        return default
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise RangeError(
            field,
            T(
                f"{label.zh}（{field}）无效：应为 YYYY-MM-DD 格式的日期，如 2031-03-05",
                f"Invalid {label.en.lower()} ({field}): give a date as YYYY-MM-DD, e.g. 2031-03-05",
            ),
        ) from None


def parse_range(args) -> Range:
    """``from`` / ``to`` (local dates, default: this month up to today) and ``estate``."""
    tz = display_tz()
    today = dt.datetime.now(tz).date()
    first = _parse_date(args, "from", today.replace(day=1), T("开始日期", "Start date"))
    last = _parse_date(args, "to", max(today, first), T("结束日期", "End date"))
    if last < first:
        raise RangeError(
            "to", T("结束日期（to）不能早于开始日期（from）", "The end date (to) is before the start date (from)")
        )
    if (last - first).days + 1 > MAX_DAYS:
        raise RangeError(
            "to",
            T(
                f"结束日期（to）与开始日期相隔最多 {MAX_DAYS} 天",
                f"The end date (to) is at most {MAX_DAYS} days after the start date",
            ),
        )
    estate_id = None
    raw = (args.get("estate") or "").strip()
    if raw:
        if not raw.isdigit() or len(raw) > 18:
            raise RangeError("estate", T("小区（estate）应为小区编号（整数）", "The estate (estate) is an estate id"))
        estate_id = int(raw)
    for field, day in (("from", first), ("to", last)):
        if not MIN_DATE <= day <= MAX_DATE:
            raise RangeError(
                field,
                T(
                    f"日期（{field}）应在 {MIN_DATE} 至 {MAX_DATE} 之间",
                    f"The date ({field}) is between {MIN_DATE} and {MAX_DATE}",
                ),
            )
    start = dt.datetime.combine(first, dt.time(0), tzinfo=tz).astimezone(dt.UTC)
    end = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(0), tzinfo=tz).astimezone(dt.UTC)
    return Range(first, last, start, end, estate_id)


def range_args(rng: Range) -> dict:
    """The query arguments that give this range again (for links)."""
    args = {"from": rng.first.isoformat(), "to": rng.last.isoformat()}
    if rng.estate_id is not None:
        args["estate"] = str(rng.estate_id)
    return args


def in_range(rng: Range) -> list:
    """The WHERE conditions of a range on tickets: when they were received."""
    conds = [Ticket.received_between(rng.start, rng.end)]
    if rng.estate_id is not None:
        conds.append(Ticket.estate_id == rng.estate_id)
    if rng.estates is not None:
        conds.append(estate_condition(Ticket.estate_id, rng.estates))
    return conds


def estate_name(session, rng: Range) -> str | None:
    if rng.estate_id is None:
        return None
    return session.execute(select(Estate.name).where(Estate.id == rng.estate_id)).scalar()


# --- the registers ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Column:
    key: str
    label: T
    width: int  # share of the printed width (per mille-ish weights) and the xlsx column width


C = Column
REGISTERS: dict[str, dict] = {
    "help": {
        "title": T("住户求助登记表", "Help request register"),
        "kinds": None,
        "columns": [
            C("seq", T("序号", "No."), 5),
            C("number", T("编号", "Number"), 14),
            C("reported_at", T("日期时间", "Date and time"), 12),
            C("kind", T("类别", "Class"), 8),
            C("unit", T("房号", "Unit"), 9),
            C("reporter", T("报事人", "Reported by"), 8),
            C("phone", T("电话", "Phone"), 11),
            C("description", T("内容", "Request"), 26),
            C("assignee", T("处理人", "Handled by"), 8),
            C("replied_at", T("答复时间", "Replied at"), 12),
            C("result", T("结果", "Result"), 18),
        ],
    },
    "repair": {
        "title": T("住户报修登记表", "Repair register"),
        "kinds": ("repair",),
        "columns": [
            C("seq", T("序号", "No."), 5),
            C("number", T("编号", "Number"), 14),
            C("reported_at", T("日期时间", "Date and time"), 12),
            C("unit", T("房号", "Unit"), 9),
            C("reporter", T("报事人", "Reported by"), 8),
            C("phone", T("电话", "Phone"), 11),
            C("description", T("报修内容", "Repair needed"), 22),
            C("agreed_visit_at", T("约定上门时间", "Agreed visit time"), 12),
            C("responsibility", T("维修责任", "Responsibility"), 10),
            C("assignee", T("处理人", "Handled by"), 8),
            C("resolved_at", T("完成时间", "Done at"), 12),
            C("cost", T("费用(元)", "Cost (CNY)"), 7),
            C("result", T("结果", "Result"), 12),
            C("callback", T("回访结果", "Callback"), 12),
        ],
    },
    "complaint": {
        "title": T("投诉受理登记表", "Complaint register"),
        "kinds": ("complaint",),
        "columns": [
            C("seq", T("序号", "No."), 5),
            C("number", T("编号", "Number"), 14),
            C("reported_at", T("日期时间", "Date and time"), 12),
            C("unit", T("房号", "Unit"), 9),
            C("reporter", T("投诉人", "Complainant"), 8),
            C("phone", T("电话", "Phone"), 11),
            C("complaint_about", T("投诉对象", "About"), 8),
            C("description", T("投诉内容", "Complaint"), 24),
            C("assignee", T("处理人", "Handled by"), 8),
            C("result", T("处理结果", "Result"), 16),
            C("callback", T("回访结果", "Callback"), 14),
            C("satisfaction", T("满意度", "Satisfaction"), 6),
        ],
    },
}
MSG_REGISTER = T(
    "登记表（register）应为 help（求助）、repair（报修）或 complaint（投诉）",
    "The register (register) is help, repair or complaint",
)


def parse_register(args) -> str:
    name = (args.get("register") or "help").strip()
    if name not in REGISTERS:
        raise RangeError("register", MSG_REGISTER)
    return name


def _local(value: dt.datetime | None, tz) -> str:
    return value.astimezone(tz).strftime("%Y-%m-%d %H:%M") if value else ""


def _label(vocab: dict, value) -> str:
    if value is None or value == "":
        return ""
    return str(vocab.get(value, value))


def callback_text(cb: dict | None) -> str:
    if not cb:
        return ""
    text = _label(CALLBACK_STATUSES, cb["status"])
    if cb["satisfaction"] is not None:
        text += str(T(f"，满意度 {cb['satisfaction']} 分", f", satisfaction {cb['satisfaction']}/5"))
    if cb["comment"]:
        text += f"{T('：', ': ')}{cb['comment']}"
    return text


def latest_callbacks(session, ticket_ids_stmt) -> dict[int, dict]:
    """Each ticket's latest callback (a reopened case may have had several), with who made it."""
    caller = aliased(User)
    rows = session.execute(
        select(
            Callback.ticket_id,
            Callback.status,
            Callback.satisfaction,
            Callback.comment,
            Callback.done_at,
            caller.username.label("caller_username"),
            caller.first_name.label("caller_first"),
            caller.last_name.label("caller_last"),
        )
        .outerjoin(caller, Callback.assignee_id == caller.id)
        .where(Callback.ticket_id.in_(ticket_ids_stmt))
        .order_by(Callback.ticket_id, Callback.id)
    ).all()
    return {r.ticket_id: r._asdict() for r in rows}


def person(username: str | None, first: str | None, last: str | None) -> str:
    """A user as the registers name them: the name, else the login name."""
    if not username:
        return ""
    return f"{first or ''}{last or ''}".strip() or username


def received_text(t: Ticket, tz) -> str:
    """When received; with the recording time too when it was entered late."""
    text = _local(t.received, tz)
    if t.received_at is not None and t.reported_at is not None and t.reported_at - t.received_at > LATE_ENTRY:
        text += str(T(f"（{_local(t.reported_at, tz)} 补登）", f" (entered {_local(t.reported_at, tz)})"))
    return text


def ticket_line(t: Ticket, extra: dict, *, personal: bool, reader, tz, cb: dict | None) -> dict:
    """One register line, as ``reader`` (a user) may see it."""
    hidden = not may_read_row(t, reader)
    phone = t.callback_phone or t.visitor_phone or extra.get("resident_phone") or extra.get("owner_phone")
    kind = _label(TICKET_KINDS, t.kind)
    if t.subkind:
        kind += f"（{_label(TICKET_SUBKINDS, t.subkind)}）"
    result = [_label(STATUSES, t.status)]
    if t.medical_path:
        result.append(_label(MEDICAL_PATHS, t.medical_path))
    if t.reply:
        result.append(str(CONFIDENTIAL) if hidden else t.reply)
    if t.cancel_reason:
        result.append(t.cancel_reason)
    assignee = person(extra.get("assignee_username"), extra.get("assignee_first"), extra.get("assignee_last"))
    return {
        "id": t.id,
        "number": t.number,
        "reported_at": received_text(t, tz),
        "reported_at_dt": t.received,
        "kind": kind,
        "estate": extra.get("estate_name") or "",
        "unit": extra.get("unit_code") or (t.address or ""),
        "reporter": t.visitor_name or extra.get("resident_name") or extra.get("owner_name") or "",
        "phone": (phone if personal else mask_phone(phone)) or "",
        "description": str(CONFIDENTIAL) if hidden else t.description,
        "confidential": bool(t.confidential),
        "assignee": assignee,
        "replied_at": _local(t.replied_at, tz),
        "resolved_at": _local(t.resolved_at, tz),
        "agreed_visit_at": _local(t.agreed_visit_at, tz),
        "responsibility": _label(RESPONSIBILITIES, t.responsibility),
        "cost": t.cost,
        "complaint_about": _label(COMPLAINT_ABOUT, t.complaint_about),
        "status": _label(STATUSES, t.status),
        "result": "；".join(x for x in result if x),
        "callback": callback_text(cb),
        "satisfaction": cb["satisfaction"] if cb and cb["satisfaction"] is not None else "",
    }


def register_lines(session, name: str, rng: Range, *, personal: bool, reader) -> list[dict]:
    """The lines of a register, in the order they were received: one query with its joins, and
    one for the callbacks."""
    tz = display_tz()
    spec = REGISTERS[name]
    conds = in_range(rng)
    if spec["kinds"]:
        conds.append(Ticket.kind.in_(spec["kinds"]))
    assignee = aliased(User)
    stmt = (
        select(
            Ticket,
            Unit.code.label("unit_code"),
            Estate.name.label("estate_name"),
            Owner.name.label("owner_name"),
            Owner.phone.label("owner_phone"),
            Resident.name.label("resident_name"),
            Resident.phone.label("resident_phone"),
            assignee.username.label("assignee_username"),
            assignee.first_name.label("assignee_first"),
            assignee.last_name.label("assignee_last"),
        )
        .outerjoin(Unit, Ticket.unit_id == Unit.id)
        .outerjoin(Estate, Ticket.estate_id == Estate.id)
        .outerjoin(Owner, Ticket.owner_id == Owner.id)
        .outerjoin(Resident, Ticket.resident_id == Resident.id)
        .outerjoin(assignee, Ticket.assignee_id == assignee.id)
        .where(*conds)
        .order_by(Ticket.received, Ticket.id)
    )
    callbacks = latest_callbacks(session, select(Ticket.id).where(*conds))
    lines = []
    for n, row in enumerate(session.execute(stmt), start=1):
        t = row[0]
        line = ticket_line(t, row._asdict(), personal=personal, reader=reader, tz=tz, cb=callbacks.get(t.id))
        line["seq"] = n
        lines.append(line)
    return lines


def register_xlsx_bytes(name: str, rng: Range, lines: list[dict], estate: str | None) -> bytes:
    """The register as an A4 landscape workbook (user text written as text, never a formula)."""
    spec = REGISTERS[name]
    tz = display_tz()
    wb = Workbook()
    ws = wb.active
    ws.title = str(spec["title"])[:31]
    columns = spec["columns"]
    ws.append([str(c.label) for c in columns])
    thin = Side(style="thin", color="000000")
    for cell in ws[1]:
        cell.font = Font(bold=True)
        cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
        cell.border = Border(top=thin, bottom=thin, left=thin, right=thin)
    for line in lines:
        row = []
        for c in columns:
            value = line.get(c.key)
            if c.key == "reported_at":
                value = line["reported_at_dt"].astimezone(tz).replace(tzinfo=None)
            row.append(value if value != "" else None)
        ws.append(row)
    for i, c in enumerate(columns, start=1):
        ws.column_dimensions[get_column_letter(i)].width = max(6, c.width * 1.3)
        if c.key == "reported_at":
            for (cell,) in ws.iter_rows(min_row=2, min_col=i, max_col=i):
                cell.number_format = "yyyy-mm-dd hh:mm"
    for row in ws.iter_rows(min_row=2):
        for cell in row:
            cell.alignment = Alignment(vertical="top", wrap_text=True)
            cell.border = Border(top=thin, bottom=thin, left=thin, right=thin)
    ws.freeze_panes = "A2"
    ws.print_title_rows = "1:1"
    ws.page_setup.orientation = "landscape"
    ws.page_setup.paperSize = ws.PAPERSIZE_A4
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    heading = f"{spec['title']}  {rng.first:%Y-%m-%d} — {rng.last:%Y-%m-%d}"
    if estate:
        heading = f"{estate}  {heading}"
    ws.oddHeader.center.text = heading
    ws.oddFooter.center.text = str(T("第 &P 页，共 &N 页", "Page &P of &N"))
    return workbook_bytes(wb)


# --- the form of one ticket ------------------------------------------------------------------
FORM_TITLES = {
    "repair": REGISTERS["repair"]["title"],
    "complaint": REGISTERS["complaint"]["title"],
}


def form_title(t: Ticket) -> T:
    return FORM_TITLES.get(t.kind, REGISTERS["help"]["title"])


def coded_label(column: str, value) -> str:
    """The label of a coded value of a ticket, as the screens show it (TICKET_CODED)."""
    return _label(TICKET_CODED[column], value)


def form_fields(t: Ticket, *, personal: bool, reader, tz, cb: dict | None, session=None) -> list[tuple[T, str]]:
    """(label, value) of every field of the form, masked as ``reader`` needs. Every coded column
    prints its label through ``coded_label``: the same vocabulary as the screens."""
    L = TICKET_LABELS
    hidden = not may_read_row(t, reader)

    def phone(v):
        return (v if personal else mask_phone(v)) or ""

    def coded(column):
        return coded_label(column, getattr(t, column))

    kind = coded("kind") + (f"（{coded('subkind')}）" if t.subkind else "")
    rows: list[tuple[T, str]] = [
        (L["number"], t.number),
        (L["status"], coded("status")),
        (L["kind"], kind),
        (L["priority"], coded("priority")),
        (L["channel"], coded("channel")),
        (L["escalation_level"], coded("escalation_level")),
        (L["estate"], t.estate.name if t.estate else ""),
        (L["unit"], t.unit.code if t.unit else ""),
        (L["owner"], t.owner.name if t.owner else ""),
        (L["resident"], t.resident.name if t.resident else ""),
        (L["visitor_name"], t.visitor_name or ""),
        (L["visitor_phone"], phone(t.visitor_phone)),
        (L["callback_phone"], phone(t.callback_phone)),
        (L["address"], t.address or ""),
        (L["assignee"], person(t.assignee.username, t.assignee.first_name, t.assignee.last_name) if t.assignee else ""),
        (L["received_at"], _local(t.received, tz)),
        (L["reported_at"], _local(t.reported_at, tz)),
        (L["reply_due_at"], _local(t.reply_due_at, tz)),
        (L["replied_at"], _local(t.replied_at, tz)),
        (L["resolve_due_at"], _local(t.resolve_due_at, tz)),
        (L["resolved_at"], _local(t.resolved_at, tz)),
        (L["closed_at"], _local(t.closed_at, tz)),
    ]
    if t.received_late_reason:
        rows.append((L["received_late_reason"], t.received_late_reason))
    if session is not None:
        rows += [(label, str(text)) for label, text in t.deadline_basis(session)]
    values = {
        "agreed_visit_at": _local(t.agreed_visit_at, tz),
        "responsibility": coded("responsibility"),
        "cost": "" if t.cost is None else f"{t.cost:.2f}",
        "medical_path": coded("medical_path"),
        "dispatched": t.dispatched or "",
        "consult_mode": coded("consult_mode"),
        "confidential": str(T("是", "Yes")) if t.confidential else str(T("否", "No")),
        "reply": str(CONFIDENTIAL) if (hidden and t.reply) else (t.reply or ""),
        "complaint_about": coded("complaint_about"),
    }
    # Class-specific parts: each field for its class, and for any ticket where it holds something.
    for kind_, (_title, fields) in TICKET_PARTS.items():
        for f in fields:
            if t.kind == kind_ or (values[f] and f != "confidential"):
                rows.append((L[f], values[f]))
    if t.cancel_reason:
        rows.append((L["cancel_reason"], t.cancel_reason))
    if cb:
        rows.append((T("回访结果", "Callback"), callback_text(cb)))
        rows.append(
            (T("回访人", "Called back by"), person(cb.get("caller_username"), cb.get("caller_first"), cb.get("caller_last")))
        )
    return rows


TIMELINE_LABELS = {
    "at": T("时间", "When"),
    "kind": T("事项", "What"),
    "change": T("状态", "Status"),
    "body": T("内容", "Detail"),
    "by": T("经办人", "By"),
}


def timeline(t: Ticket, *, reader, tz) -> list[dict]:
    """The ticket's timeline (TIMELINE_LABELS' keys) as ``reader`` may read it: what a
    confidential request says stays hidden from those who are not its readers."""
    hidden = not may_read_row(t, reader)
    out = []
    for e in t.events:
        body = e.body or ""
        if hidden and e.kind in CONFIDENTIAL_EVENT_KINDS and body:
            body = str(CONFIDENTIAL)
        change = ""
        if e.to_status:
            change = f"{_label(STATUSES, e.from_status)} → {_label(STATUSES, e.to_status)}".lstrip()
        out.append(
            {
                "at": _local(e.at, tz),
                "kind": _label(EVENT_KINDS, e.kind),
                "change": change,
                "body": body,
                "by": e.user.username if e.user else str(T("系统", "System")),
            }
        )
    return out


# --- the reports' figures --------------------------------------------------------------------
def _local_day(session):
    """The local (display time zone) date a request was received, as SQL, for GROUP BY."""
    tz = display_tz()
    if session.get_bind().dialect.name == "postgresql":
        name = str(tz.key).replace("'", "''")
        # A literal, not a bound parameter: the same text in SELECT and GROUP BY.
        return cast(func.timezone(literal_column(f"'{name}'"), Ticket.received), Date)
    # SQLite keeps naive UTC text; the zone's offset now (Asia/Shanghai has no daylight saving).
    minutes = int(dt.datetime.now(tz).utcoffset().total_seconds() // 60)
    return func.date(Ticket.received, literal_column(f"'{minutes:+d} minutes'"))


def _rate(met: int, missed: int) -> float | None:
    if met + missed == 0:
        return None
    return float((Decimal(met) / Decimal(met + missed)).quantize(Decimal("0.0001"), ROUND_HALF_UP))


def _average(dist: dict[int, int]) -> float | None:
    n = sum(dist.values())
    if not n:
        return None
    total = sum(score * count for score, count in dist.items())
    return float((Decimal(total) / Decimal(n)).quantize(Decimal("0.01"), ROUND_HALF_UP))


def _as_date(value) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))


def compliance_conditions(now: dt.datetime) -> tuple:
    """Reply met, reply missed, resolve met, resolve missed: *met* in time, *missed* late or still
    open past the deadline (the desk report and the workbench count the same way)."""
    open_ = Ticket.status.in_(OPEN_STATUSES)
    reply_met = (Ticket.replied_at.is_not(None)) & (Ticket.replied_at <= Ticket.reply_due_at)
    reply_missed = ((Ticket.replied_at.is_not(None)) & (Ticket.replied_at > Ticket.reply_due_at)) | (
        Ticket.replied_at.is_(None) & open_ & (Ticket.reply_due_at < now)
    )
    resolve_met = (Ticket.resolved_at.is_not(None)) & (Ticket.resolved_at <= Ticket.resolve_due_at)
    resolve_missed = ((Ticket.resolved_at.is_not(None)) & (Ticket.resolved_at > Ticket.resolve_due_at)) | (
        Ticket.resolved_at.is_(None) & open_ & (Ticket.resolve_due_at < now)
    )
    return reply_met, reply_missed, resolve_met, resolve_missed


def report_figures(session, rng: Range, now: dt.datetime | None = None) -> dict:
    """Requests per class and day; reply and resolve compliance per class (*met* in time,
    *missed* late or open past the deadline, *pending* otherwise; the rate is met / (met +
    missed)); callback satisfaction 1-5, overall and per class. Each from one GROUP BY."""
    now = now or utcnow()
    where = in_range(rng)
    kinds = list(TICKET_KINDS)

    # per class and day
    day = _local_day(session).label("day")
    per_day_kind = session.execute(
        select(day, Ticket.kind, func.count().label("n")).where(*where).group_by(day, Ticket.kind)
    ).all()
    by_kind_count = dict.fromkeys(kinds, 0)
    by_day: dict[dt.date, dict[str, int]] = {d: {} for d in rng.days}
    for d, kind, n in per_day_kind:
        by_kind_count[kind] = by_kind_count.get(kind, 0) + n
        by_day.setdefault(_as_date(d), {})[kind] = n

    # compliance
    reply_met, reply_missed, resolve_met, resolve_missed = compliance_conditions(now)
    compliance_rows = session.execute(
        select(
            Ticket.kind,
            func.count().label("total"),
            func.count().filter(reply_met).label("reply_met"),
            func.count().filter(reply_missed).label("reply_missed"),
            func.count().filter(resolve_met).label("resolve_met"),
            func.count().filter(resolve_missed).label("resolve_missed"),
        )
        .where(*where)
        .group_by(Ticket.kind)
    ).all()
    comp = {r.kind: r for r in compliance_rows}

    def block(total, met, missed):
        return {"met": met, "missed": missed, "pending": total - met - missed, "rate": _rate(met, missed)}

    compliance = []
    sums = dict.fromkeys(("total", "reply_met", "reply_missed", "resolve_met", "resolve_missed"), 0)
    for kind in kinds:
        r = comp.get(kind)
        vals = {k: (getattr(r, k) if r is not None else 0) for k in sums}
        for k in sums:
            sums[k] += vals[k]
        compliance.append(
            {
                "kind": kind,
                "label": str(TICKET_KINDS[kind]),
                "total": vals["total"],
                "reply": block(vals["total"], vals["reply_met"], vals["reply_missed"]),
                "resolve": block(vals["total"], vals["resolve_met"], vals["resolve_missed"]),
            }
        )
    compliance_all = {
        "total": sums["total"],
        "reply": block(sums["total"], sums["reply_met"], sums["reply_missed"]),
        "resolve": block(sums["total"], sums["resolve_met"], sums["resolve_missed"]),
    }

    # callback satisfaction
    sat_rows = session.execute(
        select(Ticket.kind, Callback.satisfaction, func.count().label("n"))
        .join(Ticket, Callback.ticket_id == Ticket.id)
        .where(*where, Callback.satisfaction.is_not(None))
        .group_by(Ticket.kind, Callback.satisfaction)
    ).all()
    dist_of: dict[str, dict[int, int]] = {k: dict.fromkeys(SCORES, 0) for k in kinds}
    overall = dict.fromkeys(SCORES, 0)
    for kind, score, n in sat_rows:
        dist_of.setdefault(kind, dict.fromkeys(SCORES, 0))[int(score)] += n
        overall[int(score)] += n

    def sat(dist):
        return {
            "count": sum(dist.values()),
            "average": _average(dist),
            "distribution": {str(s): dist[s] for s in SCORES},
        }

    return {
        "from": rng.first.isoformat(),
        "to": rng.last.isoformat(),
        "estate": rng.estate_id,
        "total": sum(by_kind_count.values()),
        "by_kind": [{"kind": k, "label": str(TICKET_KINDS[k]), "count": by_kind_count.get(k, 0)} for k in kinds],
        "by_day": [
            {
                "date": d.isoformat(),
                "count": sum(by_day[d].values()),
                "by_kind": {k: by_day[d].get(k, 0) for k in kinds},
            }
            for d in sorted(by_day)
        ],
        "compliance": compliance,
        "compliance_all": compliance_all,
        "satisfaction": {
            **sat(overall),
            "by_kind": [{"kind": k, "label": str(TICKET_KINDS[k]), **sat(dist_of[k])} for k in kinds],
        },
    }
