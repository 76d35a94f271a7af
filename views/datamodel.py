"""FAB's data interface with two changes that keep lists fast at scale and errors clear.

Lists: FAB runs an exact ``COUNT`` over the whole filtered set and pages with ``OFFSET`` over full
rows. Here the count is exact up to ``LIST_EXACT_COUNT_LIMIT`` rows and, beyond it, PostgreSQL's
estimate (``pg_class.reltuples``) for an unfiltered list, in the same statement; deep pages find
their ids with an index-only ``OFFSET`` first and load just those rows (a deferred join).

Writes: database and domain errors become ``FieldErrors`` (which field, what is wrong) or
``Conflict`` (someone saved first), never a stack trace or a generic message.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from flask import current_app, g
from flask_appbuilder.models.sqla.interface import SQLAInterface
from sqlalchemy import BigInteger, Boolean, Float, Integer, Numeric, SmallInteger, cast, column, func, select, table
from sqlalchemy.exc import DataError, IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import joinedload, selectinload
from sqlalchemy.orm.exc import StaleDataError
from werkzeug.exceptions import BadRequest

from app.i18n import T
from models.errors import Conflict, DomainError, FieldErrors

MSG_CONFLICT = T(
    "该记录已被他人修改，请刷新后再编辑（您的修改未保存）",
    "Someone else changed this record; reload it and edit again (your changes were not saved)",
)
MSG_UNIQUE = T("该值已存在，不能重复", "This value already exists")
MSG_REFERENCED = T("该记录仍被其他记录引用，不能删除", "Other records still refer to this one; it cannot be deleted")
MSG_INVALID = T("数据不符合规则", "The data breaks a rule")
MSG_TOO_LARGE = T("数值超出范围", "The number is out of range")
MSG_NUL = T("不能包含空字符（\\x00）", "Must not contain a NUL character (\\x00)")
MSG_CONTROL = T("不能包含控制字符", "Must not contain control characters")
# C0 control characters other than tab and line breaks: PostgreSQL refuses NUL, Excel the rest.
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")

MSG_REQUIRED = T("必填", "Required")
MSG_RELATED_MISSING = T("所选记录不存在", "The chosen record does not exist")
MSG_BUSY = T("该记录正被他人处理，请稍后重试（您的修改未保存）", "Someone else is working on this record; try again (your changes were not saved)")


def _constraint_columns(name: str) -> list[str]:
    """The columns of the unique constraint, index or check constraint called ``name``."""
    from flask_appbuilder import Model

    for tbl in Model.metadata.tables.values():
        for item in [*tbl.constraints, *tbl.indexes]:
            if item.name == name:
                cols = [c.name for c in getattr(item, "columns", ())]
                if cols:
                    return cols
                # A check constraint names no columns: the ones its expression reads.
                return [c.name for c in tbl.columns if re.search(rf"\b{re.escape(c.name)}\b", str(item.sqltext))]
    return []


def _field_name(model, column: str) -> str:
    """The field a form or the API calls a column: a foreign key is its relation (``ticket``)."""
    if model is not None:
        from sqlalchemy import inspect as sa_inspect

        for rel in sa_inspect(model).relationships:
            if rel.direction.name == "MANYTOONE" and any(c.key == column for c in rel.local_columns):
                return rel.key
    return column


def _field_from_integrity_error(exc: IntegrityError, model=None) -> tuple[str, T]:
    """Which field a refused write is about, on PostgreSQL (the driver's diagnostics) and SQLite
    (its message): never a guess from the text of another database's message."""
    orig = exc.orig
    text_ = str(orig)
    sqlstate = getattr(orig, "sqlstate", None)
    diag = getattr(orig, "diag", None)
    if sqlstate:  # PostgreSQL
        constraint = getattr(diag, "constraint_name", None) or ""
        if sqlstate == "23502":  # not null
            return _field_name(model, diag.column_name or "id"), MSG_REQUIRED
        if sqlstate == "23503":  # foreign key
            detail = getattr(diag, "message_detail", None) or ""
            if "is still referenced" in detail:
                return "id", MSG_REFERENCED
            m = re.search(r"Key \(([a-z_]+)\)", detail)
            return _field_name(model, m.group(1) if m else "id"), MSG_RELATED_MISSING
        # "Key (estate_id, code)=(1, 3-2-1501) already exists.": the columns, whatever the
        # constraint is called (a column's own unique flag gets PostgreSQL's name, not ours).
        detail = getattr(diag, "message_detail", None) or ""
        m = re.search(r"Key \(([^)]*)\)=", detail)
        cols = [c.strip() for c in m.group(1).split(",")] if m else _constraint_columns(constraint)
        named = [c for c in cols if c != "estate_id"] or cols or ["id"]
        return _field_name(model, named[-1]), MSG_UNIQUE if sqlstate == "23505" else MSG_INVALID
    # SQLite: "NOT NULL constraint failed: callback.ticket_id", "UNIQUE constraint failed:
    # unit.estate_id, unit.code", "CHECK constraint failed: ck_bill_amount", "FOREIGN KEY ...".
    if "FOREIGN KEY" in text_:
        return "id", MSG_REFERENCED
    m = re.search(r"CHECK constraint failed: (\w+)", text_)
    if m:
        cols = _constraint_columns(m.group(1)) or ["id"]
        return _field_name(model, cols[-1]), MSG_INVALID
    cols = re.findall(r"\w+\.(\w+)", text_) or ["id"]
    if "NOT NULL" in text_:
        return _field_name(model, cols[-1]), MSG_REQUIRED
    # A unique key within an estate is about its other column (the code, not the estate).
    cols = [c for c in cols if c != "estate_id"] or cols
    return _field_name(model, cols[-1]), MSG_UNIQUE if "UNIQUE" in text_ else MSG_INVALID


class BadInput(BadRequest):
    """400 whose text is just the message (FAB's API answers ``str(exc)``)."""

    def __str__(self) -> str:
        return str(self.description)


MSG_BAD_FILTER = T("筛选值无效：{col}", "Invalid filter value for {col}")
MSG_BAD_PAGE = T("页码无效：应为 0 到 {max} 之间的整数", "Invalid page: a whole number from 0 to {max}")
MAX_OFFSET = 2**31  # rows; far beyond any list, well inside PostgreSQL's bigint OFFSET


def int_column_range(col) -> tuple[int, int] | None:
    """The values an integer column can hold, or None for other types."""
    if isinstance(col.type, BigInteger):
        bits = 64
    elif isinstance(col.type, SmallInteger):
        bits = 16
    elif isinstance(col.type, Integer):
        bits = 32
    else:
        return None
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


def parse_int_key(value, col) -> int | None:
    """``value`` as a key of the integer column ``col``, or None when it cannot be one (a word,
    a float, a number the column cannot hold): such a key matches no row."""
    bounds = int_column_range(col)
    if bounds is None or isinstance(value, bool):
        return None
    if isinstance(value, str) and re.fullmatch(r"-?\d{1,20}", value.strip()):
        value = int(value)
    if not isinstance(value, int) or not bounds[0] <= value <= bounds[1]:
        return None
    return value


def _narrows(flt, value) -> bool:
    """Whether a filter leaves out rows: the estate scope of a company-level user does not, nor a
    list asked for with no named view."""
    from views.scope import FilterInScope, clause_for
    from views.workbench import FilterPreset, preset_asked

    if isinstance(flt, FilterPreset):
        return preset_asked(value) is not None
    return not (isinstance(flt, FilterInScope) and clause_for(value) is None)


class DeskInterface(SQLAInterface):
    # Offsets below this are served by the plain query; above it by the deferred join.
    DEFERRED_JOIN_OFFSET = 200

    # --- one row by key --------------------------------------------------------------------
    def get(self, id, filters=None, select_columns=None, outer_default_load: bool = False):
        """A key the primary key column cannot hold (``/unit/abc``, ``/unit/10**30``) is no row:
        404, not a database error."""
        pk_col = self.obj.__table__.primary_key.columns.values()
        if len(pk_col) == 1 and int_column_range(pk_col[0]) is not None:
            id = parse_int_key(id, pk_col[0])
            if id is None:
                return None
        return super().get(id, filters, select_columns, outer_default_load)

    # --- what a screen shows of a row -------------------------------------------------------
    # Columns that show a person's login on purpose (an account list beside the name columns).
    login_columns: frozenset[str] = frozenset()

    def _get_attr_value(self, item, col):
        """A person is shown by name, not by login: ``assignee.username`` on a screen reads 张三
        (the login only when no name is recorded, or where the list shows logins on purpose)."""
        if col not in self.login_columns:
            from app.security import person_at

            name = person_at(item, col)
            if name is not None:
                return name
        return super()._get_attr_value(item, col)

    def get_related_interface(self, col_name: str):
        # FAB builds a new interface (a walk over the mapper) for every option of a relation's
        # dropdown, hundreds per page; one per relation is enough (it holds no per-request state).
        cache = self.__dict__.setdefault("_desk_related", {})
        if col_name not in cache:
            cache[col_name] = super().get_related_interface(col_name)
        return cache[col_name]

    # --- counting ------------------------------------------------------------------------
    def query_count(self, query, filters=None, select_columns=None) -> int:
        limit = current_app.config.get("LIST_EXACT_COUNT_LIMIT", 10000)
        inner = self._apply_inner_all(query, filters, select_columns=None, aliases_mapping={})
        pk = self.get_pk()
        capped = inner.with_entities(pk).limit(limit + 1).subquery()
        count_expr = select(func.count()).select_from(capped).scalar_subquery()
        unfiltered = not (filters and any(_narrows(f, v) for f, v in zip(filters.filters, filters.values, strict=False)))
        if unfiltered and self.session.get_bind().dialect.name == "postgresql":
            pg_class = table("pg_class", column("reltuples"), column("oid"))
            estimate = (
                select(cast(pg_class.c.reltuples, BigInteger))
                .where(pg_class.c.oid == func.to_regclass(self.obj.__table__.name))
                .scalar_subquery()
            )
            exact, estimated = self.session.execute(select(count_expr, estimate)).one()
        else:
            exact, estimated = self.session.execute(select(count_expr)).scalar(), None
        if exact <= limit:
            g.desk_count_estimated = False
            return exact
        g.desk_count_estimated = True
        return max(int(estimated or 0), exact)

    # --- filter values -------------------------------------------------------------------
    def _filter_value_ok(self, col_name: str, value) -> bool:
        if value is None or callable(value):
            return True  # base filters may filter by a function's result
        if isinstance(value, str) and "\x00" in value:
            return False
        if not isinstance(value, (str, int, float)):
            return True
        if self.is_relation(col_name):
            pk_cols = self.get_related_model(col_name).__table__.primary_key.columns.values()
            return len(pk_cols) != 1 or parse_int_key(value, pk_cols[0]) is not None
        col = self.obj.__table__.columns.get(col_name)
        if col is None:
            return True
        if int_column_range(col) is not None:
            return parse_int_key(value, col) is not None
        if isinstance(col.type, Boolean):
            return value in (True, False, 0, 1) or str(value).lower() in {"y", "n", "true", "false", "0", "1", ""}
        return True

    def _check_filter_values(self, filters) -> None:
        """A filter value its column cannot hold (a word or 10**30 for a number, a NUL character,
        a word for a relation's id) is a 400 naming the column, not a database error."""
        if not filters:
            return
        for flt, value in filters.get_filters_values():
            col_name = getattr(flt, "column_name", "") or ""
            for v in value if isinstance(value, (list, tuple)) else [value]:
                if not self._filter_value_ok(col_name, v):
                    raise BadInput(str(MSG_BAD_FILTER).format(col=col_name))

    # --- paging --------------------------------------------------------------------------
    def query(
        self,
        filters=None,
        order_column: str = "",
        order_direction: str = "",
        page=None,
        page_size=None,
        select_columns=None,
        outer_default_load: bool = False,
    ):
        if page is not None and (
            isinstance(page, bool) or not isinstance(page, int) or page < 0 or page * (page_size or 1) > MAX_OFFSET
        ):
            # The API's rison ``page`` and the screens' ``page_<View>`` argument alike.
            raise BadInput(str(MSG_BAD_PAGE).format(max=MAX_OFFSET // (page_size or 1)))
        self._check_filter_values(filters)
        base = self.session.query(self.obj)
        if not select_columns and page_size:
            base = self._eager_list_relations(base)
        offset = (page or 0) * (page_size or 0)
        if page_size and offset >= self.DEFERRED_JOIN_OFFSET:
            pk = self.get_pk()
            ids = self._apply_inner_all(
                self.session.query(pk),
                filters,
                order_column,
                order_direction,
                page,
                page_size,
                None,
                aliases_mapping={},
            ).subquery()
            narrowed = base.filter(pk.in_(select(ids.c[0])))
            query = self.apply_all(
                narrowed,
                None,
                order_column,
                order_direction,
                None,
                page_size,
                select_columns,
                outer_default_load,
            )
        else:
            query = self.apply_all(
                base,
                filters,
                order_column,
                order_direction,
                page,
                page_size,
                select_columns,
                outer_default_load,
            )
        rows = query.all()
        result = []
        for item in rows:
            if hasattr(item, self.obj.__name__):
                result.append(getattr(item, self.obj.__name__))
            else:
                result = rows
                break
        if page_size:
            count = self.query_count(self.session.query(self.obj), filters, select_columns)
        else:
            # Not paged (a relation's dropdown): the rows are the count, no COUNT statement.
            count = len(result)
        return count, result

    def _list_relations(self) -> tuple[list[str], list[str]]:
        """Relations shown in the registered list columns of this model (``building.code``):
        (many-to-one, to-many). Screens page without ``select_columns``; without eager loading
        every row would load its relation with a statement of its own."""
        cached = self.__dict__.get("_desk_list_relations")
        if cached is not None:
            return cached
        from views.registry import REGISTRY

        to_one, to_many = [], []
        for resource in REGISTRY.values():
            if resource.model is not self.obj:
                continue
            for col in resource.list_columns:
                if "." not in col:
                    continue
                root = col.split(".", 1)[0]
                if root in to_one or root in to_many or not self.is_relation(root):
                    continue
                if self.is_relation_many_to_one(root) or self.is_relation_one_to_one(root):
                    to_one.append(root)
                else:
                    to_many.append(root)
        self._desk_list_relations = (to_one, to_many)
        return self._desk_list_relations

    def _eager_list_relations(self, query):
        to_one, to_many = self._list_relations()
        for rel in to_one:
            query = query.options(joinedload(getattr(self.obj, rel)))
        for rel in to_many:
            # One statement for the whole page (the "+1 for a many-to-many column").
            query = query.options(selectinload(getattr(self.obj, rel)))
        return query

    # --- writes --------------------------------------------------------------------------
    def _commit(self, action, item=None) -> None:
        try:
            action()
            self.session.commit()
        except DomainError:
            self.session.rollback()
            raise
        except StaleDataError:
            self.session.rollback()
            raise Conflict(str(MSG_CONFLICT)) from None
        except IntegrityError as exc:
            self.session.rollback()
            field, msg = _field_from_integrity_error(exc, type(item) if item is not None else self.obj)
            raise FieldErrors({field: [str(msg)]}) from None
        except OperationalError as exc:
            self.session.rollback()
            # A deadlock, a serialization failure or a lock that could not be had: someone else's
            # write won; this one is refused whole, and may simply be tried again.
            if getattr(exc.orig, "sqlstate", None) in ("40P01", "40001", "55P03"):
                raise Conflict(str(MSG_BUSY)) from None
            raise
        except DataError:
            # A value the column cannot hold that no validator caught: the input is wrong, not
            # the server. Name the field while the item still holds the value.
            errors = self._value_errors(item) if item is not None else {}
            self.session.rollback()
            raise FieldErrors(errors or {"id": [str(MSG_INVALID)]}) from None
        except SQLAlchemyError:
            self.session.rollback()
            raise

    @staticmethod
    def _value_errors(item) -> dict[str, list[str]]:
        """The fields holding values no column of their type can hold (the database refuses them
        without naming the column): NUL in text, integers beyond the column's range, numbers
        with more whole digits than a NUMERIC(p, s) keeps."""
        errors = {}
        for col in item.__table__.columns:
            value = getattr(item, col.key, None)
            if value is None or isinstance(value, bool):
                continue
            if isinstance(value, str) and _CONTROL_CHARS.search(value):
                errors[col.key] = [str(MSG_NUL if "\x00" in value else MSG_CONTROL)]
            elif isinstance(value, int) and int_column_range(col) is not None:
                low, high = int_column_range(col)
                if not low <= value <= high:
                    errors[col.key] = [str(MSG_TOO_LARGE)]
            elif (
                isinstance(value, (int, float, Decimal))
                and isinstance(col.type, Numeric)
                and not isinstance(col.type, Float)
            ):
                precision, scale = col.type.precision, col.type.scale or 0
                try:
                    too_large = precision is not None and abs(Decimal(str(value))) >= Decimal(10) ** (precision - scale)
                except InvalidOperation:
                    too_large = True  # inf / nan
                if too_large:
                    errors[col.key] = [str(MSG_TOO_LARGE)]
        return errors

    @staticmethod
    def _check_text(item) -> None:
        """Text with control characters (a pasted escape code) cannot be exported to Excel and,
        for NUL, not stored: refuse it naming the field."""
        errors = {
            col.key: [str(MSG_NUL if "\x00" in value else MSG_CONTROL)]
            for col in item.__table__.columns
            if isinstance(value := getattr(item, col.key, None), str) and _CONTROL_CHARS.search(value)
        }
        if errors:
            raise FieldErrors(errors)

    def add(self, item, commit: bool = True) -> None:
        if not commit:
            self.session.add(item)
            return

        def _add():
            self._check_text(item)
            self.session.add(item)

        self._commit(_add, item)

    def edit(self, item, commit: bool = True) -> None:
        if not commit:
            self.session.merge(item)
            return

        def _edit():
            self._check_text(item)
            self.session.merge(item)

        self._commit(_edit, item)

    def delete(self, item, commit: bool = True) -> None:
        if not commit:
            self.session.delete(item)
            return
        self._commit(lambda: self.session.delete(item))

    def delete_all(self, items) -> None:
        def _delete():
            for item in items:
                self.session.delete(item)

        self._commit(_delete)
