"""The change history (every write to a business table), read-only, for Managers; which estates
each person works for, for Admin.

The history is stored as written (models/base.py: table, row, ``{column: [old, new]}`` in UTC and
codes); its screens read it as people do: the resource's label for the table, the field labels
of the registry, times in the office's zone, choice codes by their labels, 是/否, related records
by their names, uploaded files by the names they were uploaded under, the person by name, and
the record as a link. The API and the export keep the stored form (for machines)."""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict

from markupsafe import Markup, escape

from app.i18n import T
from app.security import user_label
from models.base import ChangeLog
from models.scope import UserEstate
from views.registry import COMMON_LABELS, REGISTRY, Lookup, Resource, register
from views.scope import COMPANY_ONLY

# Tables no screen serves, and columns no screen shows, still read in words in the history.
TABLE_LABELS = {
    "payment_allocation": T("收款冲抵", "Payment allocations"),
    "receipt_counter": T("收据编号", "Receipt numbering"),
}
FIELD_LABELS = {
    "estate_id": T("小区", "Estate"),
    "run_id": T("计费批次", "Billing run"),
    "renovation_id": T("关联装修", "Renovation"),
    "sla_basis": T("时限依据", "Deadline basis"),
    "second_level_minutes": T("二级升级(超时后分钟)", "Second level after (min)"),
    "warn_minutes": T("提前预警(分钟)", "Warn before (min)"),
    "reply_steps_done": T("答复时限已提醒次数", "Reply reminders sent"),
    "resolve_steps_done": T("解决时限已提醒次数", "Resolution reminders sent"),
    "steps_done": T("已提醒次数", "Reminders sent"),
    "next_due_at": T("下一时限", "Next deadline"),
    "supersedes_id": T("取代版本", "Supersedes"),
    "receipt_year": T("收据年份", "Receipt year"),
    "receipt_seq": T("收据序号", "Receipt sequence"),
    "payment_id": T("收款", "Payment"),
    "bill_id": T("账单", "Bill"),
    "amount": T("金额", "Amount"),
    "reversed_at": T("冲回时间", "Reversed at"),
    "year": T("年份", "Year"),
    "last_number": T("最后编号", "Last number"),
    "inspection_id": T("巡查记录", "Inspection"),
    "refund.kind": T("退款类型", "Refund kind"),
    "decided_by_id": T("审批人", "Decided by"),
    "refund_id": T("退款", "Refund"),
    "overdue_alerted_on": T("逾期提醒日期", "Overdue alert sent on"),
    "unit_status_before": T("装修前房屋状态", "Unit status before"),
    "resident_id": T("住户", "Resident"),
    "subscription_id": T("定期服务", "Subscription"),
    "archived_at": T("归档时间", "Archived at"),
}
# Values a screen shows through a formatter of its own, not ``Resource.choices``.
VALUE_LABELS_LAZY = (
    "models.archives:UNIT_USES:unit_uses",
    "models.renovation:RENOVATION_SCOPES:scope",
    "models.archives:UNIT_STATUSES:unit_status_before",
)
REFUND_KINDS = {"prepaid": T("预存款退款", "Prepaid refund"), "deposit": T("押金退款", "Deposit refund")}
EMPTY = T("（空）", "(empty)")
SEP = T("：", ": ")
DELETED = T("（已删除）", "(deleted)")

# --- reading a history entry ---------------------------------------------------------------------
def resources_of_table(table_name: str) -> list[Resource]:
    """The resources serving a table, the one named like it first (a ticket before its archive)."""
    found = [r for r in REGISTRY.values() if getattr(r.model, "__tablename__", None) == table_name]
    return sorted(found, key=lambda r: (r.name != table_name, not r.records))


def table_label(table_name: str) -> str:
    found = resources_of_table(table_name)
    if found:
        return str(found[0].label)
    return str(TABLE_LABELS.get(table_name, table_name))


def _model_of_table(table_name: str):
    from models.base import Model

    for mapper in Model.registry.mappers:
        if getattr(mapper.class_, "__tablename__", None) == table_name:
            return mapper.class_
    return None


def _relation_of(model, key: str):
    """The many-to-one relation whose foreign key is ``key`` (``unit_id`` -> ``unit``)."""
    from sqlalchemy import inspect

    for rel in inspect(model).relationships:
        if rel.direction.name == "MANYTOONE" and [c.key for c in rel.local_columns] == [key]:
            return rel
    return None


def field_label(table_name: str, key: str) -> str:
    """A column of a history entry as the screens call it: the resource's label for the column or
    its relation, then the history's own words for columns no screen shows."""
    model = _model_of_table(table_name)
    rel = _relation_of(model, key) if model is not None else None
    names = [key] + ([rel.key] if rel is not None else [])
    for res in resources_of_table(table_name):
        labels = {**COMMON_LABELS, **res.labels}
        for name in names:
            if name in labels:
                return str(labels[name])
        if rel is not None:  # "unit.code" when only the dotted column is labelled
            dotted = next((c for c in labels if c.startswith(rel.key + ".")), None)
            if dotted is not None:
                return str(labels[dotted])
    for name in (f"{table_name}.{key}", key):
        if name in FIELD_LABELS:
            return str(FIELD_LABELS[name])
    if key in COMMON_LABELS:
        return str(COMMON_LABELS[key])
    return key


def _value_labels(table_name: str, key: str) -> dict | None:
    import importlib

    for res in resources_of_table(table_name):
        if key in res.choices:
            return res.choices[key]
    for spec in VALUE_LABELS_LAZY:
        module, name, column = spec.split(":")
        if column == key:
            return getattr(importlib.import_module(module), name)
    if (table_name, key) == ("refund", "kind"):
        return REFUND_KINDS
    return None


def _sla_basis(value, session) -> str:
    """A request's deadline sources ("reply=rule:...;resolve=policy:3") as the detail page says them."""
    from models.desk import Ticket

    probe = Ticket()
    probe.sla_basis = value
    parts = []
    for which, label in (("reply", T("答复", "Reply")), ("resolve", T("解决", "Resolution"))):
        text = probe._basis(session, which)
        if text is not None:
            parts.append(f"{label}：{text}")
    return "；".join(parts) or str(value)


def _user_estate_name(row) -> str:
    estate = row.estate.name if row.estate is not None else str(T("全部小区", "every estate"))
    return f"{user_label(row.user)} · {estate}" if row.user is not None else estate


# How a record is named where its own ``__str__`` is for programmers.
RECORD_NAMES = {UserEstate: _user_estate_name}


# Values some columns hold in a form of their own: (table, column) -> function(value, session).
VALUE_WORDS = {("ticket", "sla_basis"): _sla_basis}


class _Reader:
    """Reads a page of history entries: related records' names loaded once per table."""

    def __init__(self, session):
        from views.base import sees_personal

        self.session = session
        self.sees_personal = sees_personal
        self.wanted: dict[type, set[int]] = defaultdict(set)
        self.names: dict[type, dict[int, str]] = {}

    # -- first pass: what related records are named
    def want(self, table_name: str, changes) -> None:
        model = _model_of_table(table_name)
        if model is None or not isinstance(changes, dict):
            return
        for key, pair in changes.items():
            rel = _relation_of(model, key)
            if rel is None or not isinstance(pair, (list, tuple)):
                continue
            for v in pair:
                if isinstance(v, int) and not isinstance(v, bool):
                    self.wanted[rel.mapper.class_].add(v)

    def want_rows(self, table_name: str, row_id) -> None:
        model = _model_of_table(table_name)
        if model is not None and isinstance(row_id, int):
            self.wanted[model].add(row_id)

    def load(self) -> None:
        from flask_appbuilder.security.sqla.models import User
        from sqlalchemy import select

        for model, ids in self.wanted.items():
            rows = self.session.execute(select(model).where(model.id.in_(sorted(ids)))).scalars().all()
            label = user_label if issubclass(model, User) else RECORD_NAMES.get(model, str)
            self.names[model] = {r.id: label(r) for r in rows}

    def name_of(self, model, pk) -> str | None:
        return self.names.get(model, {}).get(pk)

    # -- second pass: the words
    def value(self, table_name: str, key: str, value) -> str:
        from views.fields import office_zone
        from views.uploads import display_name, is_stored_name

        if value is None or value == "" or value == []:
            return str(EMPTY)
        model = _model_of_table(table_name)
        column = model.__table__.columns.get(key) if model is not None else None
        if isinstance(value, bool):
            return str(T("是", "Yes")) if value else str(T("否", "No"))
        rel = _relation_of(model, key) if model is not None else None
        if rel is not None and isinstance(value, int):
            name = self.name_of(rel.mapper.class_, value)
            return name if name is not None else f"#{value} {DELETED}"
        personal = getattr(model, "__personal__", {}).get(key) if model is not None else None
        if personal:
            found = resources_of_table(table_name)
            if not found or not self.sees_personal(found[0].name):
                from views.visibility import mask_value

                value = mask_value(personal, value)
        words = VALUE_WORDS.get((table_name, key))
        if words is not None:
            try:
                return words(value, self.session)
            except Exception:  # a history entry is shown whatever it holds
                return str(value)
        labels = _value_labels(table_name, key)
        if isinstance(value, list):
            return "、".join(self.value(table_name, key, v) if not isinstance(v, (list, dict)) else _json(v) for v in value)
        if isinstance(value, dict):
            return _json(value)
        if labels is not None and str(value) in labels:
            return str(labels[str(value)])
        if is_stored_name(value):
            return display_name(value, str(value).rsplit("/", 1)[-1])
        if isinstance(value, str) and column is not None and _is_datetime(column):
            try:
                moment = dt.datetime.fromisoformat(value)
            except ValueError:
                return value
            moment = moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
            return moment.astimezone(office_zone()).strftime("%Y-%m-%d %H:%M")
        return str(value)

    def changes_html(self, table_name: str, action: str, changes) -> Markup:
        if not isinstance(changes, dict) or not changes:
            return Markup("")
        items = []
        for key, pair in changes.items():
            old, new = (pair + [None, None])[:2] if isinstance(pair, list) else (None, pair)
            label = escape(field_label(table_name, key))
            if action == "insert":
                text = escape(self.value(table_name, key, new))
            elif action == "delete":
                text = escape(self.value(table_name, key, old))
            else:
                text = Markup("{} → {}").format(self.value(table_name, key, old), self.value(table_name, key, new))
            items.append(Markup('<li><span class="desk-change-field">{}</span>{}{}</li>').format(label, SEP, text))
        return Markup('<ul class="list-unstyled desk-changes">{}</ul>').format(Markup("").join(items))

    def record_html(self, table_name: str, row_id, action: str) -> Markup:
        from flask import url_for

        model = _model_of_table(table_name)
        name = self.name_of(model, row_id) if model is not None else None
        text = f"#{row_id} {name}".strip() if name is not None else f"#{row_id} {DELETED}"
        found = [r for r in resources_of_table(table_name) if r.records]
        if name is None or not found:
            return Markup("{}").format(text)
        url = url_for(f"{found[0].class_stem}View.show", pk=row_id)
        return Markup('<a href="{}">{}</a>').format(url, text)


def _is_datetime(column) -> bool:
    from sqlalchemy import DateTime

    from models.base import UTCDateTime

    return isinstance(column.type, (UTCDateTime, DateTime))


def _json(value) -> str:
    """A structured value in words (``键：值；...``), never a Python dict."""
    if isinstance(value, dict):
        return "；".join(f"{k}：{_json(v)}" for k, v in value.items())
    if isinstance(value, list):
        return "、".join(_json(v) for v in value)
    return "" if value is None else (json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value)


def readable(rows: list[dict]) -> None:
    """Rewrite history rows (dicts of the screen's columns) in place to read as words."""
    from flask import current_app
    from flask_appbuilder.security.sqla.models import User
    from sqlalchemy import select

    session = current_app.appbuilder.session
    reader = _Reader(session)
    for row in rows:
        reader.want(row.get("table_name"), row.get("changes"))
        if "row_id" in row:
            reader.want_rows(row.get("table_name"), row.get("row_id"))
    reader.load()
    logins = {row["user.username"] for row in rows if row.get("user.username")}
    people = {}
    if logins:
        people = {
            u.username: user_label(u) for u in session.execute(select(User).where(User.username.in_(logins))).scalars()
        }
    for row in rows:
        table, action = row.get("table_name"), row.get("action")
        if "changes" in row:
            row["changes"] = reader.changes_html(table, action, row.get("changes"))
        if "row_id" in row:
            row["row_id"] = reader.record_html(table, row.get("row_id"), action)
        if row.get("user.username"):
            row["user.username"] = people.get(row["user.username"], row["user.username"])
        if "table_name" in row:
            row["table_name"] = table_label(table)


ORDER_COLUMNS = ["changed_at", "table_name", "row_id", "action", "id"]  # never the JSON of changes


class ChangeLogViewMixin:
    """The history's list and detail page, in words (the stored entry is untouched)."""

    order_columns = ORDER_COLUMNS

    def _get_list_widget(self, *args, **kwargs):
        widgets = super()._get_list_widget(*args, **kwargs)
        readable(widgets["list"].template_args["value_columns"])
        return widgets

    def _get_show_widget(self, pk, item, *args, **kwargs):
        widgets = super()._get_show_widget(pk, item, *args, **kwargs)
        args = widgets["show"].template_args
        row = dict(zip(args["include_columns"], args["value_columns"], strict=True))
        # The words need the stored table and action, shown or not.
        row.setdefault("table_name", item.table_name)
        row.setdefault("action", item.action)
        readable([row])
        args["value_columns"] = [row[c] for c in args["include_columns"]]
        return widgets


register(
    Resource(
        name="change_log",
        model=ChangeLog,
        label=T("变更记录", "Change history"),
        category="audit",
        estate=COMPANY_ONLY,
        icon="fa-history",
        list_columns=["changed_at", "table_name", "row_id", "action", "user.username", "changes"],
        search_columns=["table_name", "row_id", "action", "changed_at"],
        order_columns=ORDER_COLUMNS,
        order=("id", "desc"),
        writable=False,
        view_mixins=(ChangeLogViewMixin,),
        choices={
            "action": {
                "insert": T("新增", "Insert"),
                "update": T("修改", "Update"),
                "delete": T("删除", "Delete"),
            }
        },
        labels={
            "changed_at": T("时间", "When"),
            "table_name": T("对象", "Record type"),
            "row_id": T("记录", "Record"),
            "action": T("操作", "Action"),
            "user.username": T("操作人", "By"),
            "changes": T("变更内容（原值 → 新值）", "Changes (old → new)"),
        },
        descriptions={"table_name": T("按数据表名筛选，如 ticket、bill", "Filter by table name, e.g. ticket, bill")},
    )
)


def _assignable_people():
    """Any active person may be given estates (the Committee too: it reads one estate), never the
    system user, who acts for the company."""
    from flask import current_app
    from flask_appbuilder.security.sqla.models import User

    return User.active.is_(True) & (User.username != current_app.config.get("SYSTEM_USERNAME", "system"))


# Which estates each person works for (issue 11; views/scope.py): Admin's to give.
register(
    Resource(
        name="user_estate",
        model=UserEstate,
        label=T("人员负责小区", "Staff estates"),
        category="audit",
        estate=COMPANY_ONLY,
        icon="fa-sitemap",
        list_columns=["user.username", "user.first_name", "user.last_name", "estate.name"],
        edit_columns=["user", "estate"],
        search_columns=["estate"],
        order=("id", "desc"),
        labels={
            "user": T("人员", "Person"),
            "user.username": T("登录名", "Login"),
            "user.first_name": T("姓", "Family name"),
            "user.last_name": T("名", "Given name"),
            "estate": T("负责小区", "Estate"),
            "estate.name": T("负责小区（空：全部小区）", "Estate (empty: every estate)"),
        },
        descriptions={
            "estate": T(
                "不选：公司层面，负责全部小区（公司经理）；一人可负责多个小区，每个小区一行",
                "None: company level, every estate (company managers); one row per estate",
            )
        },
        lookups=[Lookup("user", search=("username", "first_name", "last_name"), label=user_label, choosable=_assignable_people)],
    )
)
