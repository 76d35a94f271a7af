"""What a user may see of a record, decided once for every path that shows records.

Every registered resource goes through these rules, on the API (list, show, ``_info``, write
answers), the screens (list, detail), exports and lookups, so a resource added later is safe
without anyone remembering to make it so:

- **A relation is never serialized whole.** FAB nests every column of a related model when a
  column names a bare relation (``owner``, ``user``): an owner's ID number, a user's password hash.
  Here a bare relation is its id and a display label (``{"id": 7, "label": "张三"}``); anything
  more must be named as a dotted column (``owner.name``), and those are checked below.
- **The user model is never read beyond its name.** A column path into ``ab_user`` may only name
  ``SAFE_USER_COLUMNS``; anything else refuses to start.
- **Relations into what the user may not read are hidden.** A column whose path crosses into a
  model served by resources the user can read none of (a bill's id on a service order, for the
  Committee, who may not read bills) is left out, as is a filter on it.
- **Personal columns are masked at every depth** for users without the ``personal`` right
  (``mask_payload`` walks nested objects and lists).
- **Confidential rows** (a model's ``__confidential__``, models/visibility.py) keep their
  confidential columns from users who are not among its readers.
"""

from __future__ import annotations

from flask import g, has_request_context
from flask_appbuilder.api.convert import Model2SchemaConverter
from flask_appbuilder.models.filters import BaseFilter
from flask_appbuilder.security.sqla.models import User
from marshmallow import fields, post_dump

from app.i18n import T
from models.validators import mask_id_number, mask_phone
from models.visibility import confidential_of, may_read_row, readable_rows_clause

SAFE_USER_COLUMNS = frozenset({"id", "username", "first_name", "last_name"})
MASKS = {"phone": mask_phone, "id": mask_id_number}
REDACTED = T("（保密内容）", "(confidential)")


# --- relations as id and label ------------------------------------------------------------------
def relation_label(obj) -> str:
    return "" if obj is None else str(obj)


class RelationLabel(fields.Field):
    """A relation dumped as ``{"id", "label"}`` (a list of them for a to-many relation)."""

    def __init__(self, many: bool, **kwargs):
        super().__init__(dump_only=True, **kwargs)
        self.many = many

    def _serialize(self, value, attr, obj, **kwargs):
        if value is None:
            return [] if self.many else None
        if self.many:
            return [{"id": v.id, "label": relation_label(v)} for v in value]
        return {"id": value.id, "label": relation_label(value)}


class SafeModel2SchemaConverter(Model2SchemaConverter):
    """FAB's converter, except that a bare relation in a dump schema is its id and label, and every
    schema of the resource's own model passes its dumps through ``apply_visibility``: whatever
    endpoint dumps a record (get, list, a write's answer, a workflow action), the user gets only
    what they may see."""

    resource = None  # set by the API (views/base.py)

    def _column2field(self, datamodel, column, nested=True, parent_schema_name=None):
        # A model property that gives a time (a ticket's current deadline) is dumped as one.
        attr = getattr(datamodel.obj, column.name, None)
        if isinstance(attr, property) and "datetime" in str(attr.fget.__annotations__.get("return", "")):
            return fields.DateTime(dump_only=True)
        return super()._column2field(datamodel, column, nested=nested, parent_schema_name=parent_schema_name)

    def _column2relation(self, datamodel, column, nested=False, parent_schema_name=None):
        if nested and not column.children:
            many = datamodel.is_relation_many_to_many(column.name) or datamodel.is_relation_one_to_many(column.name)
            return RelationLabel(many=many)
        return super()._column2relation(datamodel, column, nested=nested, parent_schema_name=parent_schema_name)

    def _meta_schema_factory(self, columns, model, class_mixin, parent_schema_name=None):
        resource = self.resource
        if resource is not None and model is resource.model:

            class Guarded(class_mixin):
                @post_dump(pass_original=True)
                def _desk_visibility(self, data, original, **kwargs):
                    return apply_visibility(resource, original, data)

            class_mixin = Guarded
        return super()._meta_schema_factory(columns, model, class_mixin, parent_schema_name=parent_schema_name)


def apply_visibility(resource, obj, data: dict) -> dict:
    """A dumped record as the current user may see it (in place)."""
    if not has_request_context() or not isinstance(data, dict):
        return data
    from views.base import sees_personal

    for col in hidden_columns(resource, resource.all_columns()):
        drop_path(data, col)
    redact_payload(resource.model, obj, data, list(data))
    if not sees_personal(resource.name):
        mask_payload(data, resource.personal_columns())
    return data


# --- which models a column path crosses --------------------------------------------------------
def path_models(model, column: str) -> list[tuple[type, str]]:
    """(related model, attribute read on it) for every relation hop of ``column``. A bare
    relation ``owner`` is one hop whose attribute is its label (``""``)."""
    hops = []
    parts = column.split(".")
    current = model
    for i, part in enumerate(parts):
        attr = getattr(current, part, None)
        prop = getattr(attr, "property", None)
        mapper = getattr(prop, "mapper", None)
        if mapper is None:
            break
        current = mapper.class_
        hops.append((current, parts[i + 1] if i + 1 < len(parts) else ""))
    return hops


def check_resource_columns(resource) -> None:
    """Refuse at start-up a resource that would show more of a user than a name."""
    for col in resource.all_columns():
        for model, attr in path_models(resource.model, col):
            if issubclass(model, User) and attr and attr not in SAFE_USER_COLUMNS:
                raise ValueError(
                    f"{resource.name}: column {col!r} reads {attr!r} of a user; only {sorted(SAFE_USER_COLUMNS)} may be shown"
                )


def resources_by_model() -> dict[type, list[str]]:
    """model -> the resources that serve its records (a report resource serves none)."""
    from views.registry import REGISTRY

    result: dict[type, list[str]] = {}
    for name, res in REGISTRY.items():
        if res.records:
            result.setdefault(res.model, []).append(name)
    return result


def model_readable(model) -> bool:
    """May the current user read records of ``model``? Models no resource serves (users, timeline
    rows) are readable through the columns a resource names; the rules above bound them."""
    from views.base import rights

    names = resources_by_model().get(model)
    if not names:
        return True
    return any("read" in rights(name) for name in names)


def hidden_columns(resource, columns) -> frozenset[str]:
    """The columns of ``resource`` the current user may not see (per request)."""
    cache = g.setdefault("desk_hidden_columns", {})
    key = (resource.name, tuple(columns))
    if key not in cache:
        hidden = set()
        for col in columns:
            if any(not model_readable(model) for model, _ in path_models(resource.model, col)):
                hidden.add(col)
        cache[key] = frozenset(hidden)
    return cache[key]


def visible(resource, columns) -> list[str]:
    hidden = hidden_columns(resource, columns)
    return [c for c in columns if c not in hidden]


def drop_path(payload: dict, column: str) -> None:
    """Remove a (dotted) column from a dumped record, and the nested object it leaves empty."""
    parts = column.split(".")
    node = payload
    trail = []
    for part in parts[:-1]:
        child = node.get(part) if isinstance(node, dict) else None
        if not isinstance(child, dict):
            node.pop(part, None) if isinstance(node, dict) else None
            return
        trail.append((node, part))
        node = child
    if isinstance(node, dict):
        node.pop(parts[-1], None)
    for parent, part in reversed(trail):
        if parent.get(part) == {}:
            parent.pop(part)


# --- personal data at every depth ---------------------------------------------------------------
def mask_value(kind: str, value):
    return MASKS[kind](value) if isinstance(value, str) else value


def mask_payload(payload: dict, personal: dict[str, str]) -> dict:
    """Mask personal columns (possibly dotted, through nested objects and lists), in place."""
    for col, kind in personal.items():
        parts = col.split(".")
        nodes = [payload]
        for rel in parts[:-1]:
            nxt = []
            for node in nodes:
                child = node.get(rel) if isinstance(node, dict) else None
                if isinstance(child, list):
                    nxt.extend(child)
                elif isinstance(child, dict):
                    nxt.append(child)
            nodes = nxt
        for node in nodes:
            if isinstance(node, dict) and parts[-1] in node:
                node[parts[-1]] = mask_value(kind, node[parts[-1]])
    return payload


# --- confidential rows --------------------------------------------------------------------------
def current_user():
    user = getattr(g, "user", None)
    return user if user is not None and getattr(user, "is_authenticated", False) else None


def redact_payload(model, obj, payload: dict, columns) -> None:
    """Replace the confidential columns of a dumped record the user may not read."""
    rule = confidential_of(model)
    if rule is None or obj is None or may_read_row(obj, current_user()):
        return
    for col in columns:
        if col in rule.columns and col in payload and payload[col] not in (None, ""):
            payload[col] = str(REDACTED)


def redact_values(model, items, values: list[dict]) -> list[dict]:
    """The same for a screen's value rows (``datamodel.get_values``), row by row."""
    rule = confidential_of(model)
    if rule is None:
        return values
    user = current_user()
    for item, row in zip(items, values, strict=False):
        if not may_read_row(item, user):
            for col in rule.columns:
                if row.get(col) not in (None, ""):
                    row[col] = str(REDACTED)
    return values


class FilterReadableRows(BaseFilter):
    """Added to a list whose filters touch confidential columns: rows the user may not read do
    not match, so a search cannot tell what a confidential record says."""

    name = "readable"
    arg_name = "desk_readable"

    def apply(self, query, value):
        clause = readable_rows_clause(self.model, current_user())
        return query if clause is None else query.filter(clause)


def filters_touch_confidential(model, filter_columns) -> bool:
    rule = confidential_of(model)
    return rule is not None and any(c in rule.columns for c in filter_columns)
