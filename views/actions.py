"""Workflow actions, declared once on a resource (``views.registry.Action``), built here.

For each declared action of a resource this module makes:

- the API endpoint ``POST /api/v1/<resource>/<pk>/<action>`` (JSON, or multipart for uploads) with
  its OpenAPI description;
- the screen route ``POST /<resource>/<action>/<pk>`` (CSRF by CSRFProtect, like every form);
- the permission (the action's right, ``write`` or ``approve``, through ``method_permission_name``);
- the button and small form on the detail page, offered only when ``when(record)`` holds and the
  user has the right;

and runs every one the same way: the record (404 if the user may not see it), the version (409 if
someone changed it since it was read), the state (422 naming it if the action is not offered
now), the inputs (422 naming the field), the model method that does the work, one commit. The
change log records what changed (models/base.py).
"""

from __future__ import annotations

import datetime as dt
import functools
import inspect
import re
from decimal import Decimal, InvalidOperation

from flask import abort, flash, g, redirect, request, url_for
from flask_appbuilder.baseviews import expose
from flask_appbuilder.security.decorators import has_access, protect
from sqlalchemy.exc import OperationalError

from app.i18n import T
from models.errors import Conflict, FieldErrors
from views.datamodel import _CONTROL_CHARS, MSG_BUSY, MSG_CONFLICT, MSG_CONTROL, MSG_NUL
from views.registry import Action, Input, Resource

MSG_DONE = T("已办理", "Done")
MSG_VERSION = T("缺少版本号：请提交读取记录时得到的 version", "Missing version: send the version you read with the record")
MSG_REQUIRED = T("必填", "Required")
MSG_CHOICE = T("取值无效", "Invalid value")
MSG_DATE = T("日期格式为 YYYY-MM-DD", "A date is YYYY-MM-DD")
MSG_DATETIME = T("时间格式为 YYYY-MM-DD HH:MM", "A time is YYYY-MM-DD HH:MM")
MSG_NUMBER = T("应为数字", "Must be a number")
MSG_WHOLE = T("应为整数", "Must be a whole number")
MSG_NEGATIVE = T("不能为负数", "Must not be negative")
MSG_TOO_LONG = T("内容过长（最多 {n} 字）", "Too long (at most {n} characters)")
MSG_FLOAT = T("数值请以字符串或整数给出（浮点数不精确）", "Give the number as a string or an integer (a float is not exact)")
YES_WORDS = ("1", "y", "yes", "on", "true", "pass", "是")
NO_WORDS = ("0", "n", "no", "off", "false", "fail", "否")
RIGHT_WORDS = {"write": "write", "approve": "approve", "w": "write", "a": "approve"}


def _err(field: str, msg) -> FieldErrors:
    return FieldErrors({field: [str(msg)]})


def state_refusal(resource: Resource, action: Action, obj) -> FieldErrors:
    """The answer to an action that is not offered in the record's current state."""
    status = getattr(obj, "status", None)
    label = resource.choices.get("status", {}).get(status, status)
    zh, en = getattr(label, "zh", str(label)), getattr(label, "en", str(label))
    zh, en = f"当前状态为「{zh}」，不能{action.label.zh}", f"The record is '{en}': '{action.label.en}' is not possible now"
    table = getattr(action.when, "transitions", None)  # a ``moves_to``: say what may follow instead
    if table is not None:
        labels = resource.choices.get(action.when.column, {})
        allowed = table.get(getattr(obj, action.when.column, None), ())
        nxt = [labels.get(s, s) for s in [*labels, *sorted(set(allowed) - set(labels))] if s in allowed]
        zh += "；可转为：" + ("、".join(getattr(x, "zh", str(x)) for x in nxt) or "无")
        en += "; allowed next: " + (", ".join(getattr(x, "en", str(x)) for x in nxt) or "none")
    return FieldErrors({"status": [str(T(zh, en))]})


# --- inputs ---------------------------------------------------------------------------------------
def choices_of(inp: Input, obj) -> dict:
    return inp.choices(obj) if callable(inp.choices) else dict(inp.choices or {})


def _text(inp: Input, raw) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, (str, int, float, Decimal)) or isinstance(raw, bool):
        raise _err(inp.name, MSG_CHOICE)
    text = str(raw).strip()
    if _CONTROL_CHARS.search(text):  # PostgreSQL cannot store NUL; Excel exports refuse the rest
        raise _err(inp.name, MSG_NUL if "\x00" in text else MSG_CONTROL)
    if len(text) > inp.max_length:
        raise _err(inp.name, str(MSG_TOO_LONG).format(n=inp.max_length))
    return text or None


def _parse_one(inp: Input, raw, obj, resource_name: str, files):
    from views.fields import office_zone

    if inp.kind in ("file", "files"):
        from views.uploads import save_uploads

        stored = save_uploads(files.getlist(inp.name) if files else [], inp.name, inp.accept, resource_name)
        if inp.required and not stored:
            raise _err(inp.name, MSG_REQUIRED)
        return stored if inp.kind == "files" else (stored[0] if stored else None)
    if inp.kind == "bool":
        if isinstance(raw, bool):
            return raw
        word = str(raw or "").strip().lower()
        if inp.required:
            # Must be said, yes or no: a required yes/no is a choice on the screen, never a box
            # whose forgetting would mean "no".
            if word in YES_WORDS:
                return True
            if word in NO_WORDS:
                return False
            raise _err(inp.name, MSG_REQUIRED if not word else MSG_CHOICE)
        return word in YES_WORDS
    if inp.kind == "decimal" and isinstance(raw, float):  # a binary float is not an exact amount
        raise _err(inp.name, MSG_FLOAT)
    text = raw if isinstance(raw, (int, float, Decimal)) and not isinstance(raw, bool) else _text(inp, raw)
    if text is None:
        if inp.required:
            raise _err(inp.name, MSG_REQUIRED)
        return None
    if inp.kind in ("text", "textarea"):
        return text
    if inp.kind == "choice":
        if str(text) not in choices_of(inp, obj):
            raise _err(inp.name, MSG_CHOICE)
        return str(text)
    if inp.kind == "date":
        try:
            return dt.date.fromisoformat(str(text))
        except ValueError:
            raise _err(inp.name, MSG_DATE) from None
    if inp.kind == "datetime":
        try:
            value = dt.datetime.fromisoformat(str(text).replace(" ", "T"))
            # A time typed on a screen is the office's local time; the API may send an offset.
            return (value if value.tzinfo else value.replace(tzinfo=office_zone())).astimezone(dt.UTC)
        except (ValueError, OverflowError):  # OverflowError: year 1 or 9999 moved past the calendar
            raise _err(inp.name, MSG_DATETIME) from None
    if inp.kind == "decimal":
        try:
            value = Decimal(str(text))
        except InvalidOperation:
            raise _err(inp.name, MSG_NUMBER) from None
        if not value.is_finite():
            raise _err(inp.name, MSG_NUMBER)
        if value < 0:
            raise _err(inp.name, MSG_NEGATIVE)
        exponent = value.as_tuple().exponent
        if isinstance(exponent, int) and exponent < -inp.places:
            raise _err(inp.name, T(f"最多 {inp.places} 位小数", f"At most {inp.places} decimal places"))
        return value
    if inp.kind in ("int", "person"):
        if isinstance(text, float) or not re.fullmatch(r"-?\d{1,12}", str(text).strip()):
            raise _err(inp.name, MSG_WHOLE)
        value = int(str(text).strip())
        if inp.kind == "person":
            from flask_appbuilder.security.sqla.models import User

            from app.extensions import db
            from views.lookups import MSG_NOT_WORKING, is_choosable

            if not is_choosable(db.session, User, value):
                raise _err(inp.name, MSG_NOT_WORKING)
        return value
    raise ValueError(f"unknown input kind {inp.kind!r}")  # a declaration error, found at start-up


def parse_inputs(resource: Resource, action: Action, obj, source: dict, files) -> dict:
    """Every input, typed; all the errors at once (422 naming each field)."""
    values, errors = {}, {}
    for inp in action.inputs:
        if inp.kind in ("file", "files"):
            continue  # stored only once everything else is good
        try:
            values[inp.name] = _parse_one(inp, source.get(inp.name), obj, resource.name, files)
        except FieldErrors as e:
            errors.update(e.errors)
    if errors:
        raise FieldErrors(errors)
    for inp in action.inputs:
        if inp.kind in ("file", "files"):
            values[inp.name] = _parse_one(inp, None, obj, resource.name, files)
    return values


# --- doing it -------------------------------------------------------------------------------------
def _callable(action: Action, obj):
    if isinstance(action.method, str):
        return getattr(obj, action.method)
    return functools.partial(action.method, obj)


def perform(datamodel, resource: Resource, action: Action, obj, source: dict, files, version):
    """Version, state, inputs, the model's method, one commit. Returns what the method returned."""
    session = datamodel.session
    try:
        if action.needs_version and version in (None, ""):
            raise _err("version", MSG_VERSION)
        # A version sent is always checked: a stale one is a conflict, never a silent overwrite.
        if version not in (None, "") and str(version) != str(getattr(obj, "version", version)):
            raise Conflict(str(MSG_CONFLICT), current_version=obj.version)
        if action.when is not None and not action.when(obj):
            raise state_refusal(resource, action, obj)
        data = parse_inputs(resource, action, obj, source, files)
        fn = _callable(action, obj)
        params = inspect.signature(fn).parameters
        if "session" in params:
            data["session"] = session
        if "user" in params:
            data["user"] = g.user
        returned = []
        # The datamodel's commit: a lost race (stale version, key taken) is a 409 or a 422 naming
        # the field, a value no column can hold a 422, never a 500.
        datamodel._commit(lambda: returned.append(fn(**data)), obj)
        return returned[0]
    except (FieldErrors, Conflict):
        session.rollback()
        raise
    except OperationalError as exc:
        session.rollback()
        if getattr(exc.orig, "sqlstate", None) in ("40P01", "40001", "55P03"):
            raise Conflict(str(MSG_BUSY)) from None
        raise


def check_declaration(resource: Resource) -> None:
    """Start-up refuses an action whose method does not take its inputs, or an unknown right."""
    for action in resource.actions:
        if action.right not in RIGHT_WORDS:
            raise ValueError(f"{resource.name}.{action.name}: unknown right {action.right!r}")
        fn = getattr(resource.model, action.method, None) if isinstance(action.method, str) else action.method
        if fn is None:
            raise ValueError(f"{resource.name}.{action.name}: {resource.model.__name__} has no {action.method!r}")
        params = inspect.signature(fn).parameters
        takes_any = any(p.kind == inspect.Parameter.VAR_KEYWORD for p in params.values())
        for inp in action.inputs:
            if inp.name not in params and not takes_any:
                raise ValueError(f"{resource.name}.{action.name}: {fn.__qualname__} does not take {inp.name!r}")


def permission_names(resource: Resource) -> dict[str, str]:
    return {a.name: RIGHT_WORDS[a.right] for a in resource.actions}


# --- the screen -----------------------------------------------------------------------------------
def _messages(e: FieldErrors) -> str:
    return "; ".join(m for msgs in e.errors.values() for m in msgs)


def _screen_route(action: Action):
    def route(self, pk):
        return self.run_action(pk, action)

    route.__name__ = action.name
    return expose(f"/{action.screen_path}/<int:pk>", methods=["POST"])(has_access(route))


class ActionViewMixin:
    """What a screen does with a declared action; mixed into every generated screen."""

    def run_action(self, pk, action: Action):
        from models.visibility import may_read_row
        from views.visibility import current_user

        obj = self.datamodel.get(pk, self._base_filters)
        if obj is None:
            abort(404)
        if not may_read_row(obj, current_user()):
            abort(403)
        target = url_for(f"{type(self).__name__}.show", pk=pk)
        try:
            returned = perform(
                self.datamodel, self.resource, action, obj, request.form, request.files, request.form.get("version")
            )
        except FieldErrors as e:
            flash(_messages(e), "danger")
        except Conflict as e:
            flash(str(e), "danger")
        else:
            flash(str(MSG_DONE), "success")
            for notice in action.notices(returned) if action.notices else ():
                flash(str(notice), "warning")
            if action.creates and returned is not None:
                from views.registry import REGISTRY

                view = REGISTRY[action.creates].class_stem + "View"
                target = url_for(f"{view}.show", pk=returned.id)
        return redirect(target)

    def offered_links(self, obj) -> list[dict]:
        """The detail page's links (print forms, downloads) this user may follow for this record."""
        out = []
        for link in self.resource.links:
            if link.when is not None and not link.when(obj):
                continue
            if not self.appbuilder.sm.has_access(
                "can_" + self.method_permission_name.get(link.route, link.route), self.class_permission_name
            ):
                continue
            out.append({"link": link, "url": url_for(f"{type(self).__name__}.{link.route}", pk=obj.id)})
        return out

    def offered_actions(self, obj) -> list[dict]:
        """The detail page's actions for this user and this record: right held, ``when`` true, and
        the record one the user may read (``run_action`` refuses the others: 403)."""
        from models.visibility import may_read_row
        from views.base import rights
        from views.visibility import current_user

        held = rights(self.resource.name)
        offered = []
        if not may_read_row(obj, current_user()):
            return offered
        for action in self.resource.actions:
            if RIGHT_WORDS[action.right] not in held or (action.when is not None and not action.when(obj)):
                continue
            offered.append(
                {
                    "action": action,
                    "url": url_for(f"{type(self).__name__}.{action.name}", pk=obj.id),
                    "inputs": [(inp, inp.offer(obj) if inp.offer else choices_of(inp, obj)) for inp in action.inputs],
                    "multipart": any(i.kind in ("file", "files") for i in action.inputs),
                    "version": getattr(obj, "version", None),
                }
            )
        return offered


# --- the API --------------------------------------------------------------------------------------
_KIND_SCHEMA = {
    "text": {"type": "string"},
    "textarea": {"type": "string"},
    "date": {"type": "string", "format": "date"},
    "datetime": {"type": "string", "format": "date-time"},
    "decimal": {"type": "string", "description": "a decimal number, e.g. 12.50"},
    "int": {"type": "integer"},
    "person": {"type": "integer", "description": "the id of an active member of the staff"},
    "bool": {"type": "boolean"},
    "choice": {"type": "string"},
    "file": {"type": "string", "format": "binary"},
    "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
}


def _openapi(resource: Resource, action: Action) -> str:
    """The endpoint's docstring: FAB builds the spec from the YAML after ``---``."""
    import json

    props = {}
    for inp in action.inputs:
        schema = dict(_KIND_SCHEMA[inp.kind])
        if inp.kind == "choice" and isinstance(inp.choices, dict):
            schema["enum"] = list(inp.choices)
        schema["description"] = str(inp.label.en)
        props[inp.name] = schema
    props["version"] = {"type": "integer", "description": "the version read with the record (a stale one: 409)"}
    required = [i.name for i in action.inputs if i.required and i.kind not in ("file", "files")]
    if action.needs_version:
        required.append("version")
    media = "multipart/form-data" if any(i.kind in ("file", "files") for i in action.inputs) else "application/json"
    body = {"type": "object", "properties": props}
    if required:
        body["required"] = required
    summary = (action.description or action.label).en
    ok = "201" if action.creates else "200"
    spec = {
        "post": {
            "summary": summary,
            "parameters": [{"in": "path", "name": "pk", "required": True, "schema": {"type": "integer"}}],
            "requestBody": {"content": {media: {"schema": body}}},
            "responses": {
                ok: {"description": f"{action.label.en}: done"},
                "400": {"$ref": "#/components/responses/400"},
                "401": {"$ref": "#/components/responses/401"},
                "403": {"$ref": "#/components/responses/403"},
                "404": {"$ref": "#/components/responses/404"},
                "409": {"description": "Someone changed the record since it was read"},
                "422": {"$ref": "#/components/responses/422"},
            },
        }
    }
    return f"{summary}\n---\n{json.dumps(spec)}"


def _api_route(resource: Resource, action: Action):
    def route(self, pk):
        return self.run_action(pk, action)

    route.__name__ = action.name
    route.__doc__ = _openapi(resource, action)
    return expose(f"/<int:pk>/{action.api_path}", methods=["POST"])(protect()(route))


class ActionApiMixin:
    """What the API does with a declared action; mixed into every generated API."""

    def run_action(self, pk, action: Action):
        from models.visibility import may_read_row
        from views.visibility import current_user

        obj = self.datamodel.get(pk, self._base_filters)
        if obj is None:
            return self.response_404()
        if not may_read_row(obj, current_user()):
            return self.response(403, message="Forbidden")
        if request.files or request.form:
            body = request.form.to_dict()
        else:
            body = request.get_json(silent=True)
            if body is None and not request.data:
                body = {}
            if not isinstance(body, dict):
                return self.response_400(message="Request is not JSON")
        try:
            returned = perform(self.datamodel, self.resource, action, obj, body, request.files, body.get("version"))
        except FieldErrors as e:
            return self.response_422(message=e.errors)
        except Conflict as e:
            return self.response(409, message=str(e), version=getattr(e, "current_version", None))
        record = returned if (action.creates and returned is not None) else obj
        answer = {"id": record.id, "version": getattr(record, "version", None)}
        if hasattr(record, "status"):
            answer["status"] = record.status
        if action.result is not None:
            answer.update(action.result(obj, returned))
        return self.response(201 if action.creates else 200, **answer)


# --- building ----------------------------------------------------------------------------------
def screen_routes(resource: Resource) -> dict:
    return {a.name: _screen_route(a) for a in resource.actions}


def api_routes(resource: Resource) -> dict:
    return {a.name: _api_route(resource, a) for a in resource.actions}
