"""Excel imports: an ``ImportSpec`` declares an import once (Chinese header, field, parser,
required) and does the work: it reads with openpyxl ``read_only``, checks every row with the
models' own rules (models/validators.py, the choices in models/archives.py) and against the file
and the database, and writes nothing unless every row is good: one transaction of Core ``INSERT``
executemany batches, audit columns and one ``ChangeLog`` row per inserted row filled here. The
screens that serve an import (form, dry run, template) are in views/excel.py.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from openpyxl import Workbook, load_workbook
from openpyxl.styles import Font
from sqlalchemy import any_, bindparam, insert, select
from sqlalchemy import text as text_sql
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import IntegrityError

from app.i18n import T
from models.archives import OWNER_KINDS, UNIT_STATUSES, UNIT_USES, Building, Estate, Owner, Ownership, Unit
from models.base import ChangeLog, _plain, utcnow
from models.fees import FeeItem, FeeStandard, MeterReading
from models.scope import with_unit_estates
from models.validators import check_id_number, check_phone, check_positive_decimal, id_check_digit
from models.xlsx import workbook_bytes

# --- Excel in ---------------------------------------------------------------------------------
XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MAX_IMPORT_ROWS = 50_000
MAX_IMPORT_BYTES = 20 * 1024 * 1024
INSERT_BATCH = 5000
SHOWN_ERRORS = 1000  # the screen lists this many; the JSON answer has them all

MSG_REQUIRED = T("必填", "Required")
MSG_NOT_XLSX = T(
    "不是有效的 .xlsx 文件（请用下载的模板，另存为 Excel 工作簿）",
    "Not a valid .xlsx file (use the template, saved as an Excel workbook)",
)
MSG_NO_FILE = T("请选择要导入的 .xlsx 文件", "Choose the .xlsx file to import")
MSG_TOO_BIG = T("文件过大（最大 20 MB）", "The file is too large (20 MB at most)")
MSG_NO_ROWS = T("文件中没有数据行", "The file has no data rows")
MSG_ESTATE = T("请选择小区", "Choose the estate")
MSG_RACE = T(
    "导入时数据已被他人修改（如同时导入了相同的房号），未写入任何数据，请重新校验后再导入",
    "The data changed while importing (someone imported the same units?); nothing was written, check the file again",
)


def _too_many_rows() -> T:
    return T(
        f"一次最多导入 {MAX_IMPORT_ROWS} 行，请分批导入", f"At most {MAX_IMPORT_ROWS} rows per import; split the file"
    )


# Parsers: each takes a non-blank cell value and returns the value to store or raises ValueError
# with a message a clerk can act on (the same wording as the models' rules where there is one).
def _scalar_text(value) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # Excel stores 1501 as 1501.0
    if isinstance(value, dt.datetime):
        value = value.date()
    return str(value).strip()


def text(max_len: int) -> Callable[[Any], str]:
    def parse(value) -> str:
        s = _scalar_text(value)
        if len(s) > max_len:
            raise ValueError(str(T(f"不能超过 {max_len} 个字符", f"At most {max_len} characters")))
        return s

    return parse


def integer(low: int, high: int) -> Callable[[Any], int]:
    def parse(value) -> int:
        if isinstance(value, bool):
            raise ValueError(str(T("必须是整数", "Must be a whole number")))
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, int):
            n = value
        elif re.fullmatch(r"-?\d+", str(value).strip()):
            n = int(str(value).strip())
        else:
            raise ValueError(str(T("必须是整数", "Must be a whole number")))
        if not low <= n <= high:
            raise ValueError(str(T(f"须在 {low} 到 {high} 之间", f"Must be between {low} and {high}")))
        return n

    return parse


def positive_decimal(places: int, maximum: Decimal) -> Callable[[Any], Decimal]:
    def parse(value) -> Decimal:
        if isinstance(value, str):
            value = value.strip().rstrip("%％㎡").strip()
        d = check_positive_decimal(repr(value) if isinstance(value, float) else value, places)
        if d > maximum:
            raise ValueError(str(T(f"不能大于 {maximum}", f"Cannot be more than {maximum}")))
        return d

    return parse


def choice(choices: dict[str, T]) -> Callable[[Any], str]:
    """Accepts the code (``residential``), the Chinese label (住宅) or the English label."""
    lookup: dict[str, str] = {}
    for code, label in choices.items():
        lookup[code.lower()] = code
        lookup[label.zh] = code
        lookup[label.en.lower()] = code

    def parse(value) -> str:
        code = lookup.get(_scalar_text(value).lower())
        if code is None:
            raise ValueError(
                str(
                    T(
                        "取值无效，可填：" + "、".join(lb.zh for lb in choices.values()),
                        "Invalid value; use one of: " + ", ".join(lb.en for lb in choices.values()),
                    )
                )
            )
        return code

    return parse


DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%Y.%m.%d", "%Y年%m月%d日", "%Y%m%d")


def date(value) -> dt.date:
    msg = str(T("日期格式不正确（如 2019-06-30）", "Invalid date (e.g. 2019-06-30)"))
    if isinstance(value, dt.datetime):
        d = value.date()
    elif isinstance(value, dt.date):
        d = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool) and 1 <= value < 2958466:
        from openpyxl.utils.datetime import from_excel

        d = from_excel(value)
        d = d.date() if isinstance(d, dt.datetime) else d
    else:
        s = _scalar_text(value)
        for fmt in DATE_FORMATS:
            try:
                d = dt.datetime.strptime(s, fmt).date()
                break
            except ValueError:
                continue
        else:
            raise ValueError(msg)
    if not 1900 <= d.year <= 2100:
        raise ValueError(msg)
    return d


def phone(value) -> str:
    return check_phone(_scalar_text(value))


@dataclass(frozen=True)
class ImportColumn:
    """One column of an import: its Chinese header (what the file has), the field it fills, the
    parser (a rule from models/validators.py or a choices dict), whether it is required."""

    header: str
    field: str
    en: str  # the English name, for messages shown in English
    parse: Callable[[Any], Any]
    required: bool = False
    aliases: tuple[str, ...] = ()
    default: Any = None
    example: Any = None
    hint: T | None = None

    @property
    def label(self) -> T:
        return T(self.header, self.en)


@dataclass
class RowError:
    row: int  # the row number in the sheet (the header is row 1); 0 for the file as a whole
    field: str
    column: str
    message: str

    def text(self) -> str:
        if self.row == 0:
            return f"{self.column}: {self.message}" if self.column else self.message
        return str(
            T(f"第 {self.row} 行 {self.column}: {self.message}", f"Row {self.row}, {self.column}: {self.message}")
        )

    def as_dict(self) -> dict:
        return {
            "row": self.row,
            "field": self.field,
            "column": self.column,
            "message": self.message,
            "text": self.text(),
        }


@dataclass
class ImportResult:
    dry_run: bool
    rows: int = 0
    errors: list[RowError] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)  # read / check / write, in seconds

    @property
    def ok(self) -> bool:
        return not self.errors

    def as_dict(self) -> dict:
        return {
            "ok": self.ok,
            "dry_run": self.dry_run,
            "rows": self.rows,
            "errors": [e.as_dict() for e in self.errors],
            "counts": self.counts,
            "seconds": round(self.seconds, 3),
            "phases": {k: round(v, 3) for k, v in self.phases.items()},
        }


def normalise_header(value) -> str:
    """``建筑面积(㎡)*`` -> ``建筑面积``: spaces, required marks and a trailing unit dropped."""
    s = re.sub(r"\s+", "", str(value or ""))
    s = s.replace("*", "").replace("＊", "")
    return re.sub(r"[（(][^）)]*[）)]$", "", s)


class ImportSpec:
    """An Excel import declared once: the columns, then ``check`` (every rule, the file and the
    database) and ``write`` (one transaction). Subclasses implement the last two."""

    name: str = ""
    label: T = T("导入", "Import")
    columns: Sequence[ImportColumn] = ()
    needs_estate: bool = True  # the estate is picked on the import screen

    def column(self, name: str) -> ImportColumn:
        return next(c for c in self.columns if c.field == name)

    def error(self, row: int, field_name: str, message) -> RowError:
        col = self.column(field_name)
        return RowError(row, field_name, str(col.label), str(message))

    # the template
    def template(self) -> bytes:
        wb = Workbook()
        ws = wb.active
        ws.title = str(T("导入数据", "Data"))
        ws.append([c.header for c in self.columns])
        ws.append([c.example for c in self.columns])
        for cell, col in zip(ws[1], self.columns, strict=True):
            cell.font = Font(bold=True, color="C00000" if col.required else "000000")
        for cell, col in zip(ws[2], self.columns, strict=True):
            if isinstance(col.example, dt.date):
                cell.number_format = "yyyy-mm-dd"
            elif isinstance(col.example, str):
                cell.number_format = "@"
        for i, col in enumerate(self.columns):
            ws.column_dimensions[ws.cell(1, i + 1).column_letter].width = max(10, len(col.header) * 2 + 4)
        notes = wb.create_sheet(str(T("填写说明", "Notes")))
        notes.append([str(T("列名", "Column")), str(T("必填", "Required")), str(T("说明", "Notes"))])
        for cell in notes[1]:
            cell.font = Font(bold=True)
        for col in self.columns:
            notes.append([col.header, str(T("是", "yes")) if col.required else "", str(col.hint or "")])
        notes.column_dimensions["A"].width = 14
        notes.column_dimensions["C"].width = 80
        return workbook_bytes(wb)

    # reading
    def read(self, data: bytes) -> tuple[list[tuple[int, dict]], list[RowError]]:
        """Every non-blank row as (row number, {field: parsed value}); cell errors collected."""
        try:
            wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        except Exception:
            return [], [RowError(0, "file", "", str(MSG_NOT_XLSX))]
        try:
            ws = wb.worksheets[0]
            rows_iter = ws.iter_rows(values_only=True)
            header = next(rows_iter, None)
            by_header = {}
            for col in self.columns:
                for name in (col.header, *col.aliases):
                    by_header[name] = col
            positions: list[tuple[int, ImportColumn]] = []
            seen: dict[str, int] = {}
            errors: list[RowError] = []
            for i, value in enumerate(header or ()):
                col = by_header.get(normalise_header(value))
                if col is None:
                    continue  # columns the import does not know are left alone
                if col.field in seen:
                    errors.append(
                        RowError(0, col.field, str(col.label), str(T("列名重复", "The column appears twice")))
                    )
                    continue
                seen[col.field] = i
                positions.append((i, col))
            for col in self.columns:
                if col.required and col.field not in seen:
                    errors.append(
                        RowError(
                            0,
                            col.field,
                            str(col.label),
                            str(T("缺少此列（见模板）", "Missing column (see the template)")),
                        )
                    )
            if errors:
                return [], errors
            missing = [c for c in self.columns if c.field not in seen]
            rows: list[tuple[int, dict]] = []
            for n, values in enumerate(rows_iter, start=2):
                if values is None or all(v is None or (isinstance(v, str) and not v.strip()) for v in values):
                    continue
                if len(rows) >= MAX_IMPORT_ROWS:
                    return [], [RowError(0, "file", "", str(_too_many_rows()))]
                record: dict[str, Any] = {}
                for i, col in positions:
                    value = values[i] if i < len(values) else None
                    if isinstance(value, str):
                        value = value.strip()
                    if value is None or value == "":
                        if col.required:
                            errors.append(RowError(n, col.field, str(col.label), str(MSG_REQUIRED)))
                        record[col.field] = col.default
                        continue
                    try:
                        record[col.field] = col.parse(value)
                    except ValueError as e:
                        errors.append(RowError(n, col.field, str(col.label), str(e)))
                        record[col.field] = _INVALID
                for col in missing:
                    record[col.field] = col.default
                rows.append((n, record))
            return rows, errors
        finally:
            wb.close()

    # the whole run
    def run(self, session, data: bytes, estate_id: int | None, user_id: int, dry_run: bool) -> ImportResult:
        started = time.perf_counter()
        result = ImportResult(dry_run=dry_run)
        rows, errors = self.read(data)
        result.phases["read"] = time.perf_counter() - started
        result.rows = len(rows)
        if not rows and not errors:
            errors = [RowError(0, "file", "", str(MSG_NO_ROWS))]
        try:
            if not errors or all(e.row for e in errors):
                if not dry_run and not errors:
                    self.lock(session, estate_id)
                mark = time.perf_counter()
                plan, more = self.check(session, estate_id, rows)
                errors += more
                result.phases["check"] = time.perf_counter() - mark
                if not errors and not dry_run:
                    mark = time.perf_counter()
                    result.counts = self.write(session, estate_id, plan, user_id)
                    session.commit()
                    result.phases["write"] = time.perf_counter() - mark
                elif not errors:
                    result.counts = self.preview(plan)
            if errors or dry_run:
                session.rollback()
        except IntegrityError:
            session.rollback()
            errors.append(RowError(0, "file", "", str(MSG_RACE)))
            result.counts = {}
        except Exception:
            session.rollback()
            raise
        errors.sort(
            key=lambda e: (e.row, [c.field for c in self.columns].index(e.field) if e.field in self._fields() else -1)
        )
        result.errors = errors
        result.seconds = time.perf_counter() - started
        return result

    def _fields(self) -> set[str]:
        return {c.field for c in self.columns}

    def lock(self, session, estate_id) -> None:
        """Serialise writers of one scope (two imports into one estate at once)."""

    def check(self, session, estate_id, rows) -> tuple[Any, list[RowError]]:
        raise NotImplementedError

    def preview(self, plan) -> dict[str, int]:
        return {}

    def write(self, session, estate_id, plan, user_id: int) -> dict[str, int]:
        raise NotImplementedError


class _Invalid:
    """A cell that failed its parser: its error is reported already; rules skip it."""

    def __repr__(self) -> str:
        return "<invalid>"


_INVALID = _Invalid()


def _stamp(user_id: int) -> dict:
    now = utcnow()
    return {"version": 1, "created_at": now, "changed_at": now, "created_by_id": user_id, "changed_by_id": user_id}


def _new_ids(conn, table, n: int) -> list[int] | None:
    """n ids drawn from the table's sequence in one query (PostgreSQL), so the rows can go in by a
    plain executemany (psycopg pipelines it) instead of multi-row INSERT ... RETURNING statements."""
    if conn.dialect.name != "postgresql":
        return None
    return list(
        conn.execute(
            text_sql("SELECT nextval(pg_get_serial_sequence(:t, 'id')) FROM generate_series(1, :n)"),
            {"t": table.name, "n": n},
        ).scalars()
    )


def insert_rows(session, model, rows: list[dict], user_id: int) -> list[int]:
    """Core INSERT executemany in batches, returning the new ids in row order, and one ChangeLog
    row per inserted row (as the ORM path writes them)."""
    if not rows:
        return []
    rows = with_unit_estates(session, model, rows)  # records about a unit carry its estate
    table = model.__table__
    stamp = _stamp(user_id)
    conn = session.connection()
    ids = _new_ids(conn, table, len(rows))
    if ids is not None:
        for i in range(0, len(rows), INSERT_BATCH):
            batch = [{**stamp, **r, "id": ids[i + k]} for k, r in enumerate(rows[i : i + INSERT_BATCH])]
            conn.execute(insert(table), batch)
    else:
        ids = []
        stmt = insert(table).returning(table.c.id, sort_by_parameter_order=True)
        for i in range(0, len(rows), INSERT_BATCH):
            batch = [{**stamp, **r} for r in rows[i : i + INSERT_BATCH]]
            ids += [r[0] for r in conn.execute(stmt, batch).all()]
    log_rows = [
        {
            "table_name": table.name,
            "row_id": row_id,
            "action": "insert",
            "changed_at": stamp["changed_at"],
            "user_id": user_id,
            "changes": {k: [None, _plain(v)] for k, v in row.items() if v is not None},
        }
        for row_id, row in zip(ids, rows, strict=True)
    ]
    for i in range(0, len(log_rows), INSERT_BATCH):
        conn.execute(insert(ChangeLog.__table__), log_rows[i : i + INSERT_BATCH])
    return ids


def values_in(session, column, values: list):
    """``column IN values`` as one array parameter on PostgreSQL (``= ANY(:values)``): a statement
    with thousands of placeholders costs more to build and parse than the lookup itself."""
    if session.get_bind().dialect.name == "postgresql":
        return [column == any_(bindparam(None, values, type_=ARRAY(column.type)))]
    return [column.in_(chunk) for chunk in _chunks(values)]


def _chunks(seq: list, n: int = 5000):
    for i in range(0, len(seq), n):
        yield seq[i : i + n]


EXAMPLE_ID = "11010519491231002"
EXAMPLE_ID += id_check_digit(EXAMPLE_ID)
UNIT_FIELDS = ("building", "floor", "gross_area", "use", "status", "handover_date")
OWNER_FIELDS = ("owner_name", "owner_kind", "owner_phone", "owner_id_number", "share")


@dataclass
class UnitPlan:
    new_buildings: list[str] = field(default_factory=list)
    buildings: dict[str, int] = field(default_factory=dict)  # code -> id (existing)
    units: list[dict] = field(default_factory=list)
    new_owners: dict[tuple, dict] = field(default_factory=dict)  # key -> owner row
    matched_owners: dict[tuple, int] = field(default_factory=dict)  # key -> existing id
    ownerships: list[tuple[int, tuple, Decimal]] = field(default_factory=list)  # unit index, owner key, share


class UnitOwnerImport(ImportSpec):
    """Units of one estate with their owners: buildings found by code (created when missing),
    owners matched by ID number, or by name and phone without one, so an owner of several units
    is one owner with several ownerships. Several rows of one unit with different owners are its
    co-owners (the unit's columns must agree, the shares add up to at most 100)."""

    name = "unit"
    label = T("房屋及业主", "Units and owners")
    columns = (
        ImportColumn("楼栋", "building", "Building", text(16), True, ("楼栋号", "楼号", "栋号"), example="1",
                     hint=T("楼栋号，如 1；小区里没有的楼栋会自动建立", "Building number, e.g. 1; missing buildings are created")),
        ImportColumn("房号", "code", "Unit code", text(32), True, ("房屋编号", "房间号"), example="1-1-101",
                     hint=T("小区内唯一，如 3-2-1501（楼栋-单元-房号）", "Unique in the estate, e.g. 3-2-1501")),
        ImportColumn("楼层", "floor", "Floor", integer(-20, 300), example=1, hint=T("整数，地下层用负数", "A whole number; basements are negative")),
        ImportColumn("建筑面积", "gross_area", "Gross area", positive_decimal(2, Decimal("99999999")), True,
                     ("面积", "建筑面积㎡"), example=Decimal("89.50"), hint=T("平方米，大于 0，最多两位小数", "Square metres, above 0, 2 decimals at most")),
        ImportColumn("用途", "use", "Use", choice(UNIT_USES), default="residential", example="住宅",
                     hint=T("、".join(v.zh for v in UNIT_USES.values()) + "（不填为住宅）", ", ".join(v.en for v in UNIT_USES.values()))),
        ImportColumn("状态", "status", "Status", choice(UNIT_STATUSES), aliases=("房屋状态",), default="vacant", example="自住",
                     hint=T("、".join(v.zh for v in UNIT_STATUSES.values()) + "（不填为空置）", ", ".join(v.en for v in UNIT_STATUSES.values()))),
        ImportColumn("交房日期", "handover_date", "Handover date", date, example=dt.date(2019, 6, 30),
                     hint=T("如 2019-06-30", "e.g. 2019-06-30")),
        ImportColumn("业主姓名", "owner_name", "Owner", text(64), aliases=("业主", "姓名", "业主名称"), example="张三",
                     hint=T("不填则只导入房屋；同一身份证号（无证件号时同名同电话）视为同一业主", "Blank: the unit only; one ID number (or name and phone) is one owner")),
        ImportColumn("业主类型", "owner_kind", "Owner kind", choice(OWNER_KINDS), default="person", example="个人",
                     hint=T("个人、单位（不填为个人）", "Person or company (default person)")),
        ImportColumn("联系电话", "owner_phone", "Phone", phone, aliases=("业主手机", "业主电话", "手机", "手机号", "电话"),
                     example="13812345678", hint=T("有业主时必填；手机或带区号的固话", "Required with an owner; a mobile or a landline with its area code")),
        ImportColumn("身份证号", "owner_id_number", "ID number", text(18), aliases=("证件号", "证件号码", "身份证号码"),
                     example=EXAMPLE_ID, hint=T("18 位；请把单元格设为文本，以免末几位丢失", "18 characters; format the cells as text")),
        ImportColumn("产权份额", "share", "Share", positive_decimal(2, Decimal("100")), aliases=("份额",), example=Decimal("100"),
                     hint=T("百分比，0 到 100，不填为 100", "Per cent, above 0 and at most 100; default 100")),
    )  # fmt: skip

    def lock(self, session, estate_id) -> None:
        session.execute(select(Estate.id).where(Estate.id == estate_id).with_for_update())

    def check(self, session, estate_id, rows) -> tuple[UnitPlan, list[RowError]]:
        errors: list[RowError] = []
        plan = UnitPlan()
        err = self.error
        # row rules: an owner needs a name and a phone; a person's ID number must be valid
        for n, r in rows:
            has_owner = any(r.get(f) not in (None, _INVALID) for f in ("owner_name", "owner_phone", "owner_id_number"))
            r["_owner"] = has_owner
            if not has_owner:
                continue
            if r["owner_name"] is None:
                errors.append(err(n, "owner_name", MSG_REQUIRED))
            if r["owner_phone"] is None:
                errors.append(err(n, "owner_phone", MSG_REQUIRED))
            if r["owner_id_number"] not in (None, _INVALID) and r["owner_kind"] != "company":
                try:
                    r["owner_id_number"] = check_id_number(r["owner_id_number"])
                except ValueError as e:
                    errors.append(err(n, "owner_id_number", e))
                    r["owner_id_number"] = _INVALID
            elif isinstance(r["owner_id_number"], str):
                r["owner_id_number"] = r["owner_id_number"].upper()
        bad_rows = {e.row for e in errors}

        # the database: buildings, unit codes and owners already there
        plan.buildings = dict(
            session.execute(select(Building.code, Building.id).where(Building.estate_id == estate_id)).all()
        )
        codes = sorted({r["code"] for _, r in rows if isinstance(r.get("code"), str)})
        taken: set[str] = set()
        for cond in values_in(session, Unit.code, codes) if codes else ():
            taken.update(session.execute(select(Unit.code).where(Unit.estate_id == estate_id, cond)).scalars())
        id_numbers = sorted({r["owner_id_number"] for _, r in rows if isinstance(r.get("owner_id_number"), str)})
        by_id: dict[str, tuple[int, str]] = {}
        for cond in values_in(session, Owner.id_number, id_numbers) if id_numbers else ():
            for oid, idn, name in session.execute(select(Owner.id, Owner.id_number, Owner.name).where(cond)):
                by_id[idn] = (oid, name)
        pairs = {
            (r["owner_name"], r["owner_phone"])
            for _, r in rows
            if r["_owner"] and r["owner_id_number"] is None
            and isinstance(r["owner_name"], str) and isinstance(r["owner_phone"], str)
        }  # fmt: skip
        by_pair: dict[tuple[str, str], int] = {}
        # Owners with one of the names (few rows per name), then kept by the exact name and phone.
        names = sorted({n for n, _ in pairs})
        for cond in values_in(session, Owner.name, names) if names else ():
            for oid, name, ph in session.execute(
                select(Owner.id, Owner.name, Owner.phone).where(cond).order_by(Owner.id.desc())
            ):
                if (name, ph) in pairs:
                    by_pair[(name, ph)] = oid  # the oldest owner wins

        # the file against itself and the database
        first_row_of_unit: dict[str, tuple[int, dict]] = {}
        unit_index: dict[str, int] = {}
        owners_of_unit: dict[str, dict[tuple, int]] = {}
        share_of_unit: dict[str, Decimal] = {}
        name_of_id: dict[str, tuple[int, str]] = {}
        new_buildings: dict[str, None] = {}
        for n, r in rows:
            code = r.get("code")
            if not isinstance(code, str):
                continue
            if code in taken:
                errors.append(err(n, "code", T("该小区已有此房号", "This unit code already exists in the estate")))
                continue
            owner_key = None
            if r["_owner"] and isinstance(r["owner_name"], str):
                idn = r["owner_id_number"]
                if isinstance(idn, str):
                    owner_key = ("id", idn)
                    if idn in name_of_id and name_of_id[idn][1] != r["owner_name"]:
                        first = name_of_id[idn][0]
                        errors.append(
                            err(
                                n,
                                "owner_id_number",
                                T(
                                    f"与第 {first} 行身份证号相同但姓名不同",
                                    f"Same ID number as row {first} with another name",
                                ),
                            )
                        )
                        owner_key = None
                    elif idn in by_id and by_id[idn][1] != r["owner_name"]:
                        errors.append(
                            err(
                                n,
                                "owner_id_number",
                                T(
                                    "系统中已有此身份证号的业主，但姓名不同",
                                    "An owner with this ID number but another name exists",
                                ),
                            )
                        )
                        owner_key = None
                    else:
                        name_of_id.setdefault(idn, (n, r["owner_name"]))
                elif idn is None and isinstance(r["owner_phone"], str):
                    owner_key = ("np", r["owner_name"], r["owner_phone"])
            if code in first_row_of_unit:
                first, fr = first_row_of_unit[code]
                same_unit = all(fr.get(f) == r.get(f) for f in UNIT_FIELDS)
                if not (same_unit and r["_owner"] and fr["_owner"]):
                    errors.append(err(n, "code", T(f"与第 {first} 行房号重复", f"Same unit code as row {first}")))
                    continue
                if owner_key is not None and owner_key in owners_of_unit[code]:
                    again = owners_of_unit[code][owner_key]
                    errors.append(
                        err(
                            n,
                            "code",
                            T(
                                f"与第 {again} 行重复（同一房屋同一业主）",
                                f"Repeats row {again} (same unit, same owner)",
                            ),
                        )
                    )
                    continue
            else:
                first_row_of_unit[code] = (n, r)
                owners_of_unit[code] = {}
            share = r["share"]
            if isinstance(share, Decimal) and r["_owner"]:
                total = share_of_unit.get(code, Decimal(0)) + share
                share_of_unit[code] = total
                if total > 100:
                    errors.append(
                        err(
                            n,
                            "share",
                            T(
                                f"该房屋的产权份额合计 {total}，超过 100",
                                f"The unit's shares add up to {total}, above 100",
                            ),
                        )
                    )
            if n in bad_rows or (owner_key is None and r["_owner"]):
                continue
            if any(v is _INVALID for v in r.values()):
                continue
            # a good row: plan it
            if code not in unit_index:
                if r["building"] not in plan.buildings:
                    new_buildings.setdefault(r["building"], None)
                unit_index[code] = len(plan.units)
                plan.units.append(
                    {
                        "estate_id": estate_id,
                        "building": r["building"],
                        "code": code,
                        "floor": r["floor"],
                        "gross_area": r["gross_area"],
                        "use": r["use"],
                        "status": r["status"],
                        "handover_date": r["handover_date"],
                    }
                )
            if owner_key is None:
                continue
            owners_of_unit[code][owner_key] = n
            if owner_key[0] == "id" and owner_key[1] in by_id:
                plan.matched_owners[owner_key] = by_id[owner_key[1]][0]
            elif owner_key[0] == "np" and owner_key[1:] in by_pair:
                plan.matched_owners[owner_key] = by_pair[owner_key[1:]]
            elif owner_key not in plan.new_owners:
                plan.new_owners[owner_key] = {
                    "name": r["owner_name"],
                    "kind": r["owner_kind"],
                    "id_number": r["owner_id_number"],
                    "phone": r["owner_phone"],
                }
            plan.ownerships.append((unit_index[code], owner_key, share if share is not None else Decimal("100")))
        plan.new_buildings = list(new_buildings)
        return plan, errors

    def preview(self, plan: UnitPlan) -> dict[str, int]:
        return {
            "building": len(plan.new_buildings),
            "unit": len(plan.units),
            "owner": len(plan.new_owners),
            "owner_matched": len(plan.matched_owners),
            "ownership": len(plan.ownerships),
        }

    def write(self, session, estate_id, plan: UnitPlan, user_id: int) -> dict[str, int]:
        building_ids = dict(plan.buildings)
        new_ids = insert_rows(
            session, Building, [{"estate_id": estate_id, "code": c} for c in plan.new_buildings], user_id
        )
        building_ids.update(zip(plan.new_buildings, new_ids, strict=True))
        unit_rows = []
        for u in plan.units:
            row = {k: v for k, v in u.items() if k != "building"}
            row["building_id"] = building_ids[u["building"]]
            unit_rows.append(row)
        unit_ids = insert_rows(session, Unit, unit_rows, user_id)
        keys = list(plan.new_owners)
        owner_ids = dict(plan.matched_owners)
        owner_ids.update(
            zip(
                keys,
                # registered in the estate the import is for (models/scope.py reads it)
                insert_rows(session, Owner, [{**plan.new_owners[k], "estate_id": estate_id} for k in keys], user_id),
                strict=True,
            )
        )
        insert_rows(
            session,
            Ownership,
            [{"unit_id": unit_ids[i], "owner_id": owner_ids[k], "share": share} for i, k, share in plan.ownerships],
            user_id,
        )
        return self.preview(plan)


UNIT_IMPORT = UnitOwnerImport()


# --- meter readings ----------------------------------------------------------------------------
CENT = Decimal("0.01")
MAX_READING = Decimal("999999999999.99")  # Numeric(14, 2)
MSG_PERIOD = T("账期格式为 YYYY-MM（如 2026-03）", "The period is YYYY-MM (e.g. 2026-03)")
YES = {"是", "y", "yes", "true", "1", "换表", "已换表", "√"}
NO = {"否", "n", "no", "false", "0", "未换表"}


def period(value) -> str:
    """``2026-03``, ``2026/3``, ``2026.03``, ``2026年3月``, ``202603``, or a date cell (Excel turns a
    typed 2026-03 into the 1st of the month): ``YYYY-MM``. A decimal number (2026.1) is refused: it
    cannot tell January from October."""
    if isinstance(value, (dt.date, dt.datetime)):
        year, month = value.year, value.month
    else:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError(str(MSG_PERIOD))
        s = _scalar_text(value)
        m = re.fullmatch(r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*月?", s) or re.fullmatch(r"(\d{4})(\d{2})", s)
        if m is None:
            raise ValueError(str(MSG_PERIOD))
        year, month = int(m.group(1)), int(m.group(2))
    if not (1900 <= year <= 2100 and 1 <= month <= 12):
        raise ValueError(str(MSG_PERIOD))
    return f"{year:04d}-{month:02d}"


def meter_value(value) -> Decimal:
    """A meter reading: a number, 0 or more, at most 2 decimals (as ``MeterReading.reading``)."""
    if isinstance(value, bool):
        raise ValueError(str(T("必须是数字", "Must be a number")))
    try:
        d = Decimal(repr(value) if isinstance(value, float) else _scalar_text(value))
    except (ArithmeticError, ValueError):
        raise ValueError(str(T("必须是数字", "Must be a number"))) from None
    if not d.is_finite():
        raise ValueError(str(T("必须是数字", "Must be a number")))
    if d < 0:
        raise ValueError(str(T("读数不能为负数", "The reading cannot be negative")))
    if d > MAX_READING:
        raise ValueError(str(T(f"不能大于 {MAX_READING}", f"Cannot be more than {MAX_READING}")))
    if d != d.quantize(CENT):
        raise ValueError(str(T("最多 2 位小数", "At most 2 decimal places")))
    return d.quantize(CENT)


def yes_no(value) -> bool:
    if isinstance(value, bool):
        return value
    s = _scalar_text(value).lower()
    if s in YES:
        return True
    if s in NO:
        return False
    raise ValueError(str(T("请填“是”或“否”", "Use 是 (yes) or 否 (no)")))


@dataclass
class MeterPlan:
    readings: list[dict] = field(default_factory=list)


class MeterReadingImport(ImportSpec):
    """Meter readings of one estate's units: the unit by its code in the estate (the building, if
    given, must be the unit's), the fee item by its code; the item must be metered, i.e. have an
    approved standard billed per quantity (按计量). ``previous_reading`` and ``quantity`` follow
    ``MeterReading.check``: the previous reading is the one of the latest earlier period, in the
    database or in the file; a reading below it is refused unless the meter was replaced, and after
    a replacement the reading is the quantity."""

    name = "meter_reading"
    label = T("抄表记录", "Meter readings")
    columns = (
        ImportColumn("楼栋", "building", "Building", text(16), False, ("楼栋号", "楼号", "栋号"), example="1",
                     hint=T("可不填；填写时须与房屋所在楼栋一致", "Optional; when given it must be the unit's building")),
        ImportColumn("房号", "unit", "Unit code", text(32), True, ("房屋编号", "房间号"), example="1-1-101",
                     hint=T("所选小区内已有的房号，如 3-2-1501", "A unit code of the chosen estate, e.g. 3-2-1501")),
        ImportColumn("收费项目编码", "item", "Fee item code", text(32), True, ("项目编码", "收费项目代码", "收费项目"),
                     example="WATER", hint=T("收费项目的编码；须有已批准的按计量收费标准（水、电、燃气）",
                                              "The fee item's code; it needs an approved per-quantity standard")),
        ImportColumn("账期", "period", "Period", period, True, ("账期YYYY-MM", "月份"), example="2026-03",
                     hint=T("YYYY-MM，如 2026-03；请把单元格设为文本", "YYYY-MM, e.g. 2026-03; format the cells as text")),
        ImportColumn("抄表日期", "read_on", "Read on", date, True, example=dt.date(2026, 3, 25),
                     hint=T("如 2026-03-25", "e.g. 2026-03-25")),
        ImportColumn("本期读数", "reading", "Reading", meter_value, True, ("读数", "表读数"), example=Decimal("1234.50"),
                     hint=T("0 或以上，最多两位小数；低于上期读数须标记换表",
                            "0 or more, 2 decimals at most; below the previous reading only with a meter replacement")),
        ImportColumn("是否换表", "is_replacement", "Meter replaced", yes_no, aliases=("换表",), default=False,
                     example="否", hint=T("是 / 否（不填为否）；换表后本期读数即为用量",
                                          "是 (yes) / 否 (no), default no; after a replacement the reading is the quantity")),
    )  # fmt: skip

    def lock(self, session, estate_id) -> None:
        session.execute(select(Estate.id).where(Estate.id == estate_id).with_for_update())

    def _latest_readings(self, session, keys: list[tuple[int, int, str]]) -> dict[tuple, tuple[str, Decimal]]:
        """(unit, item, period) -> (period, reading) of the database reading of the latest period
        at or before it: the same period is a duplicate, an earlier one is the previous reading."""
        found: dict[tuple, tuple[str, Decimal]] = {}
        if not keys:
            return found
        if session.get_bind().dialect.name == "postgresql":
            stmt = text_sql(
                "SELECT f.unit_id, f.item_id, f.period, m.period, m.reading"
                " FROM unnest(:units, :items, :periods) AS f(unit_id, item_id, period)"
                " CROSS JOIN LATERAL (SELECT r.period, r.reading FROM meter_reading r"
                " WHERE r.unit_id = f.unit_id AND r.item_id = f.item_id AND r.period <= f.period"
                " ORDER BY r.period DESC LIMIT 1) m"
            ).bindparams(
                bindparam("units", type_=ARRAY(MeterReading.__table__.c.unit_id.type)),
                bindparam("items", type_=ARRAY(MeterReading.__table__.c.item_id.type)),
                bindparam("periods", type_=ARRAY(MeterReading.__table__.c.period.type)),
            )
            for chunk in _chunks(keys):
                params = {
                    "units": [k[0] for k in chunk],
                    "items": [k[1] for k in chunk],
                    "periods": [k[2] for k in chunk],
                }
                for uid, iid, p, prev_period, prev_reading in session.execute(stmt, params):
                    found[(uid, iid, p)] = (prev_period, prev_reading)
            return found
        for key in keys:  # other databases (never in production): one lookup per row
            row = session.execute(
                select(MeterReading.period, MeterReading.reading)
                .where(MeterReading.unit_id == key[0], MeterReading.item_id == key[1], MeterReading.period <= key[2])
                .order_by(MeterReading.period.desc())
                .limit(1)
            ).first()
            if row is not None:
                found[key] = (row[0], row[1])
        return found

    def check(self, session, estate_id, rows) -> tuple[MeterPlan, list[RowError]]:
        errors: list[RowError] = []
        err = self.error
        # the database: the estate's units and the fee items named in the file
        codes = sorted({r["unit"] for _, r in rows if isinstance(r.get("unit"), str)})
        units: dict[str, tuple[int, str]] = {}
        for cond in values_in(session, Unit.code, codes) if codes else ():
            for uid, code, bcode in session.execute(
                select(Unit.id, Unit.code, Building.code)
                .join(Building, Building.id == Unit.building_id)
                .where(Unit.estate_id == estate_id, cond)
            ):
                units[code] = (uid, bcode)
        item_codes = sorted({r["item"] for _, r in rows if isinstance(r.get("item"), str)})
        items: dict[str, tuple[int, bool]] = {}
        for cond in values_in(session, FeeItem.code, item_codes) if item_codes else ():
            for iid, code, active in session.execute(select(FeeItem.id, FeeItem.code, FeeItem.active).where(cond)):
                items[code] = (iid, active)
        metered = (
            set(
                session.execute(
                    select(FeeStandard.item_id)
                    .where(
                        FeeStandard.item_id.in_([i for i, _ in items.values()]),
                        FeeStandard.status == "approved",
                        FeeStandard.basis == "per_quantity",
                    )
                    .distinct()
                ).scalars()
            )
            if items
            else set()
        )

        # each row: its unit and item; a unit, item and period once in the file
        keyed: list[tuple[int, dict, tuple[int, int, str]]] = []
        first_of_key: dict[tuple[int, int, str], int] = {}
        for n, r in rows:
            uid = iid = None
            code = r.get("unit")
            if isinstance(code, str):
                if code not in units:
                    errors.append(err(n, "unit", T("所选小区没有此房号", "No such unit code in the chosen estate")))
                else:
                    uid, bcode = units[code]
                    building = r.get("building")
                    if isinstance(building, str) and building != bcode:
                        errors.append(
                            err(
                                n,
                                "building",
                                T(f"房号 {code} 在 {bcode} 栋，不在 {building} 栋",
                                  f"Unit {code} is in building {bcode}, not {building}"),
                            )
                        )  # fmt: skip
                        uid = None
            icode = r.get("item")
            if isinstance(icode, str):
                if icode not in items:
                    errors.append(err(n, "item", T("没有此收费项目编码", "No fee item has this code")))
                elif not items[icode][1]:
                    errors.append(err(n, "item", T("该收费项目已停用", "This fee item is inactive")))
                elif items[icode][0] not in metered:
                    errors.append(
                        err(
                            n,
                            "item",
                            T("该收费项目不是计量收费（没有已批准的按计量收费标准）",
                              "This fee item is not metered (it has no approved per-quantity standard)"),
                        )
                    )  # fmt: skip
                else:
                    iid = items[icode][0]
            p = r.get("period")
            if uid is None or iid is None or not isinstance(p, str):
                continue
            key = (uid, iid, p)
            if key in first_of_key:
                first = first_of_key[key]
                errors.append(
                    err(
                        n,
                        "period",
                        T(f"与第 {first} 行重复（同一房屋、收费项目、账期）",
                          f"Repeats row {first} (same unit, fee item and period)"),
                    )
                )  # fmt: skip
                continue
            first_of_key[key] = n
            keyed.append((n, r, key))

        # the database: readings of the same period (duplicates) and of the latest earlier one
        latest = self._latest_readings(session, [k for _, _, k in keyed])
        by_pair: dict[tuple[int, int], list[tuple[int, dict, str]]] = {}
        for n, r, key in keyed:
            db_prev = latest.get(key)
            if db_prev is not None and db_prev[0] == key[2]:
                errors.append(
                    err(
                        n,
                        "period",
                        T("该房屋该收费项目此账期已有抄表记录",
                          "This unit already has a reading of this fee item for the period"),
                    )
                )  # fmt: skip
                continue
            by_pair.setdefault(key[:2], []).append((n, r, key[2]))

        # the previous reading: the latest earlier period, from the database or the file
        planned: dict[int, dict] = {}
        for (uid, iid), group in by_pair.items():
            group.sort(key=lambda g: g[2])
            file_prev: tuple[int, dict, str] | None = None
            for n, r, p in group:
                db_prev = latest.get((uid, iid, p))
                if file_prev is not None and (db_prev is None or file_prev[2] > db_prev[0]):
                    prev_row: int | None = file_prev[0]
                    prev_reading = file_prev[1]["reading"]
                else:
                    prev_row = None
                    prev_reading = db_prev[1] if db_prev is not None else None
                file_prev = (n, r, p)
                reading, replaced = r["reading"], r["is_replacement"]
                if prev_reading is _INVALID or reading is _INVALID or replaced is _INVALID:
                    continue  # reported already
                if prev_reading is not None and reading < prev_reading and not replaced:
                    where = T(f"（第 {prev_row} 行）", f" (row {prev_row})") if prev_row else T("", "")
                    errors.append(
                        err(
                            n,
                            "reading",
                            T(f"读数低于上期（{prev_reading}）{where.zh}；如已换表请在“是否换表”填“是”",
                              f"Below the previous reading ({prev_reading}){where.en}; put 是 in 是否换表 if the meter was replaced"),
                        )
                    )  # fmt: skip
                    continue
                if any(v is _INVALID for v in r.values()):
                    continue
                base = Decimal(0) if (replaced or prev_reading is None) else Decimal(prev_reading)
                planned[n] = {
                    "unit_id": uid,
                    "item_id": iid,
                    "period": p,
                    "read_on": r["read_on"],
                    "reading": reading,
                    "previous_reading": prev_reading,
                    "is_replacement": bool(replaced),
                    "quantity": reading - base,
                }
        return MeterPlan([planned[n] for n, _ in rows if n in planned]), errors

    def preview(self, plan: MeterPlan) -> dict[str, int]:
        return {
            "meter_reading": len(plan.readings),
            "replacement": sum(1 for r in plan.readings if r["is_replacement"]),
        }

    def write(self, session, estate_id, plan: MeterPlan, user_id: int) -> dict[str, int]:
        insert_rows(session, MeterReading, plan.readings, user_id)
        return self.preview(plan)


METER_READING_IMPORT = MeterReadingImport()
