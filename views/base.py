"""The generic screen and API every registered resource gets (see views/registry.py).

Behaviour added to FAB's ``ModelView`` / ``ModelRestApi``, once, for every resource:
- permissions folded into ``read`` / ``write`` / ``export`` on the resource name;
- personal data (``__personal__`` on a model) masked for users without the ``personal`` right, in
  lists, detail pages, API answers and exports; filtering on it is refused to them;
- invalid input answered with a 4xx naming the field (forms re-render with 422, the API answers
  422 with ``{"message": {field: [...]}}``); a stale edit answered with 409;
- the API's PUT requires the ``version`` the client read (optimistic locking);
- lists count and page cheaply at scale (views/datamodel.py).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation

import jsonschema
from flask import abort, current_app, flash, g, make_response, redirect, request, url_for
from flask_appbuilder import ModelRestApi, ModelView
from flask_appbuilder.api import merge_response_func, rison, safe
from flask_appbuilder.api.schemas import get_list_schema
from flask_appbuilder.baseviews import expose
from flask_appbuilder.const import (
    API_DESCRIPTION_COLUMNS_RIS_KEY,
    API_LABEL_COLUMNS_RIS_KEY,
    API_LIST_COLUMNS_RIS_KEY,
    API_LIST_TITLE_RIS_KEY,
    API_ORDER_COLUMNS_RIS_KEY,
)
from flask_appbuilder.fieldwidgets import Select2Widget
from flask_appbuilder.security.decorators import has_access, permission_name, protect
from flask_appbuilder.urltools import get_filter_args, get_order_args
from flask_appbuilder.widgets import ShowWidget
from marshmallow import ValidationError, validate
from sqlalchemy import JSON, Boolean, Date, DateTime
from werkzeug.exceptions import HTTPException
from wtforms import HiddenField, SelectField
from wtforms.validators import DataRequired, Optional

from app.i18n import T, current_language
from models.base import DataChoices, UTCDateTime
from models.errors import Conflict, FieldErrors
from views.actions import (
    ActionApiMixin,
    ActionViewMixin,
    api_routes,
    check_declaration,
    permission_names,
    screen_routes,
)
from views.datamodel import MSG_CONFLICT, DeskInterface, parse_int_key
from views.registry import Resource
from views.scope import FilterInScope, OutOfScope, admit, declared, related_in_scope
from views.visibility import (
    FilterReadableRows,
    SafeModel2SchemaConverter,
    filters_touch_confidential,
    hidden_columns,
    mask_value,
    redact_values,
    visible,
)
from views.workbench import MSG_NO_PRESET, FilterPreset, preset_asked, preset_links

# Each screen and API route folds into a right of the matrix (app/roles.py) on the resource's name.
# Workflow actions are not listed here: each declares its right (views/actions.py adds them).
VIEW_PERMISSIONS = {
    # FAB's own routes
    "list": "read",
    "show": "read",
    "add": "write",
    "edit": "write",
    "delete": "write",
    # the product's generic routes (this module, views/excel.py)
    "lookup": "read",
    "prefill": "write",  # an add form's field with one sensible value (views/lookups.py)
    "export": "export",
    "import_xlsx": "write",
    "import_template": "write",  # the template is for those who import
    # pages and files a resource serves beside its records
    "print_form": "read",
    "register": "read",
    "register_xlsx": "export",
    "report": "read",
    "report_xlsx": "export",
    "arrears": "read",
    "receipt": "read",
    "letter": "read",
    "permit": "read",
    "document": "read",
    "drawing": "read",
    "photo": "read",
    "mark_read": "read",
    "caller": "write",  # the caller card is part of taking a call (views/desk.py)
    "open": "read",  # a notification's record (views/desk.py)
}
API_PERMISSIONS = {
    # FAB's own routes
    "get": "read",
    "get_list": "read",
    "info": "read",
    "post": "write",
    "put": "write",
    "delete": "write",
    # the product's routes beside the records
    "export": "export",
    "report": "read",
    "arrears": "read",
    "receipt": "read",
    "balance": "read",
    "mark_read": "read",
    "unread": "read",
    "from_ticket": "write",
}
MSG_PERSONAL_FILTER = T(
    "您的角色无权按个人信息（电话、证件号）筛选", "Your role may not filter by personal data (phone, ID number)"
)
MSG_NO_CHOICE = T("（不选）", "(none)")
MSG_ONE_OF = T("取值无效，可选值：{choices}", "Must be one of: {choices}")
MSG_HIDDEN_FILTER = T("您的角色无权按此项筛选", "Your role may not filter by this column")
MSG_VERSION_REQUIRED = T(
    "缺少版本号：请提交读取记录时得到的 version", "Missing version: send the version you read with the record"
)


def rights(resource_name: str) -> set[str]:
    user = getattr(g, "user", None)
    key = (getattr(user, "id", None), resource_name)
    cache = g.setdefault("desk_rights", {})
    if key not in cache:
        cache[key] = current_app.appbuilder.sm.user_rights(resource_name)
    return cache[key]


def sees_personal(resource_name: str) -> bool:
    return "personal" in rights(resource_name)


_mask_value = mask_value


def _data_choices(head: list, choices) -> Callable[[], list]:
    def read():  # WTForms calls it with no argument when it takes none
        return head + list(choices.items())

    return read


class OneOfData(validate.Validator):
    """marshmallow's ``OneOf`` over choices kept as data: the codes are read when a value is checked."""

    def __init__(self, choices):
        # Not ``choices``: the OpenAPI spec would list them (apispec reads that attribute), and
        # data may change after the spec is built.
        self.data_choices = choices

    def __call__(self, value):
        if value not in self.data_choices:
            raise ValidationError(str(MSG_ONE_OF).format(choices=", ".join(map(str, self.data_choices))))
        return value


def _choice_formatter(choices: dict[str, T]):
    return lambda value: str(choices.get(value, value)) if value is not None else ""


def _personal_formatter(resource_name: str, kind: str, inner=None):
    def fmt(value):
        shown = value if sees_personal(resource_name) else _mask_value(kind, value)
        return inner(shown) if inner else ("" if shown is None else shown)

    return fmt


_LIST_ARGS_VALIDATOR = jsonschema.validators.validator_for(get_list_schema)(get_list_schema)


def _validated_list_args(f):
    @functools.wraps(f)
    def wraps(self, *args, **kwargs):
        try:
            _LIST_ARGS_VALIDATOR.validate(kwargs.get("rison", {}))
        except jsonschema.ValidationError as e:
            return self.response_400(message=f"Not a valid rison schema {str(e).splitlines()[0]}")
        return f(self, *args, **kwargs)

    return wraps


def _with_matrix_extras(base_permissions):
    """The personal-data right and the menu entry live on the resource's name too; declaring them
    here keeps FAB's permission sync from deleting them."""
    return sorted(set(base_permissions or ()) | {"can_personal", "menu_access"})


# --- screens ---------------------------------------------------------------------------------
from views.excel import ImportMixin  # noqa: E402  (import screens; views/excel.py imports this module lazily)


class DeskShowWidget(ShowWidget):
    template = "desk/widgets/show.html"


MSG_CONFIDENTIAL_EDIT = T(
    "保密事项：只有主管、经理、处理人和登记人可以查看和修改",
    "A confidential matter: only supervisors, managers, its handler and the clerk who recorded it may read or change it",
)


def final_refusal(item) -> str | None:
    """Why a record cannot be edited by this user whatever is typed: its model declares it final
    (``__final__``, models/base.py), or it is confidential and the user is not one of its readers
    (an edit form would show what it says)."""
    from models.visibility import may_read_row
    from views.visibility import current_user

    if not may_read_row(item, current_user()):
        return str(MSG_CONFIDENTIAL_EDIT)
    spec = getattr(type(item), "__final__", None)
    if spec is None:
        return None
    current = getattr(item, spec.column, None)
    archived = any(getattr(item, k, None) is not None for k in spec.filled)
    if current in spec.states or archived:
        return str(spec.message(current, archived))
    return None


class DeskModelView(ActionViewMixin, ImportMixin, ModelView):
    resource: Resource
    method_permission_name = VIEW_PERMISSIONS
    list_template = "desk/list.html"
    show_widget = DeskShowWidget
    # FAB's file download (no resource has FAB file columns; uploads are served by their own
    # routes, checked per record) and bulk actions (none are declared) are not served.
    exclude_route_methods = frozenset({"download", "action", "action_post"})

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.base_permissions = _with_matrix_extras(self.base_permissions)
        self.extra_args = {
            "desk_view": type(self).__name__,
            "desk_import": self.resource.importer is not None,
            "desk_presets": lambda: preset_links(self.resource),  # the list's named views, per request
        }

    def _init_forms(self):
        super()._init_forms()
        # An optional relation's empty choice: WTForms shows an option with no text by its value
        # ("__None"); it reads 不选 instead.
        from flask_appbuilder.fields import QuerySelectField
        from wtforms.fields.core import UnboundField

        for form in (self.add_form, self.edit_form, self.search_form):
            for attr in vars(form).values():
                if isinstance(attr, UnboundField) and issubclass(attr.field_class, QuerySelectField):
                    if attr.kwargs.get("allow_blank"):
                        attr.kwargs["blank_text"] = MSG_NO_CHOICE
        from views.lookups import choose_first_on_add

        choose_first_on_add(self.add_form)  # a required relation starts on 请选择, not the first record

    def _forbidden_filter(self) -> T | None:
        """Why the list's filters are refused to this user: a filter on personal data without the
        personal right, or on a relation into records the user may not read."""
        used = self._filter_columns()
        if not sees_personal(self.resource.name) and set(used) & set(self.resource.personal_columns()):
            return MSG_PERSONAL_FILTER
        if set(used) & hidden_columns(self.resource, used):
            return MSG_HIDDEN_FILTER
        return None

    def _check_list_args(self) -> None:
        """FAB reads a list's page, page size and order from the URL unchecked: a word for a page,
        a negative size or an unknown column would be a 500. They are a 400 naming the argument."""
        max_size = current_app.config.get("FAB_API_MAX_PAGE_SIZE", 100)
        for key, value in request.args.items():
            if key.startswith("page_"):
                ok = re.fullmatch(r"\d{1,9}", value) is not None
            elif key.startswith("psize_"):
                ok = re.fullmatch(r"\d{1,9}", value) is not None and 1 <= int(value) <= max_size
            elif key.startswith("_oc_"):
                ok = value in self.order_columns
            elif key.startswith("_od_"):
                ok = value in ("asc", "desc")
            else:
                continue
            if not ok:
                abort(400, description=str(T(f"参数无效：{key}", f"Invalid argument: {key}")))

    @expose("/list/")
    @has_access
    def list(self):
        self._check_list_args()
        refused = self._forbidden_filter()
        if refused is not None:
            flash(str(refused), "danger")
            return make_response(self.render_template("desk/error.html", message=refused), 403)
        return super().list()

    # Forms: invalid input re-renders with 422 and the message next to the field.
    def _render_form(self, template, title, widgets, status):
        return make_response(
            self.render_template(template, title=title, widgets=widgets, related_views=self._related_views),
            status,
        )

    @expose("/add", methods=["GET", "POST"])
    @has_access
    def add(self):
        g.desk_form_status = 200
        try:
            widget = self._add()
        except OutOfScope as e:  # put into an estate the user does not work for
            self.datamodel.session.rollback()
            abort(403, description=str(e))
        if not widget:
            return self.post_add_redirect()
        return self._render_form(self.add_template, self.add_title, widget, g.desk_form_status)

    @expose("/edit/<pk>", methods=["GET", "POST"])
    @has_access
    def edit(self, pk):
        g.desk_form_status = 200
        item = self.datamodel.get(self._deserialize_pk_if_composite(pk), self._base_filters)
        if item is not None and request.method == "POST":
            from models.visibility import may_read_row
            from views.visibility import current_user

            if not may_read_row(item, current_user()):
                abort(403, description=str(MSG_CONFIDENTIAL_EDIT))
        if request.method == "GET":
            refusal = self.edit_refusal(item) if item is not None else None
            if refusal:
                # A record that cannot be edited now shows no form: its page says why.
                flash(refusal, "warning")
                return redirect(url_for(f"{type(self).__name__}.show", pk=pk))
        try:
            widgets = self._edit(self._deserialize_pk_if_composite(pk))
        except OutOfScope as e:
            self.datamodel.session.rollback()
            abort(403, description=str(e))
        if not widgets:
            return self.post_edit_redirect()
        return self._render_form(self.edit_template, self.edit_title, widgets, g.desk_form_status)

    def edit_refusal(self, item) -> str | None:
        """Why ``item`` cannot be edited now, or None: a final state the model declares
        (``__final__``), or the resource's own update rule refusing the record as it stands."""
        final = final_refusal(item)
        if final is not None:
            return final
        session = self.datamodel.session
        try:
            with session.no_autoflush:
                self.pre_update(item)
        except FieldErrors as e:
            return "; ".join(m for msgs in e.errors.values() for m in msgs)
        finally:
            session.expire(item)  # whatever the rule touched is read again from the database
        return None

    def _blank_text_is_null(self, form) -> None:
        """A text box left empty is no value (NULL), as the record had it: WTForms hands over ""
        and an unchanged save would rewrite every empty optional column (a version bump, a
        change-log entry nobody made, a unique index hit by the second empty ID number)."""
        columns = self.resource.model.__table__.columns
        for name, field in form._fields.items():
            column = columns.get(name)
            if column is not None and column.nullable and isinstance(field.data, str) and not field.data.strip():
                field.data = None

    def _attach_errors(self, form, errors: dict[str, list[str]], status: int) -> None:
        g.desk_form_status = status
        for name, messages in errors.items():
            target = form[name] if name in form else None
            if target is None:
                # A rule about a column the form names differently (a relation's key).
                for fname in form._fields:
                    if name.startswith(fname) or fname.startswith(name.removesuffix("_id")):
                        target = form[fname]
                        break
            if target is not None:
                target.errors = list(target.errors) + list(messages)
            else:
                # Named as the form names it (版本, 状态), never by its column (version, status).
                try:
                    what = self.resource.label_of(name)
                except KeyError:
                    what = self.label_columns.get(name)
                zh = current_language() == "zh"
                text = ("；" if zh else "; ").join(map(str, messages))
                flash(f"{what}{'：' if zh else ': '}{text}" if what else text, "danger")

    def _add(self):
        get_filter_args(self._filters, disallow_if_not_in_search=False)
        exclude_cols = self._filters.get_relation_cols()
        form = self.add_form.refresh()
        if request.method == "POST":
            self._fill_form_exclude_cols(exclude_cols, form)
            if form.validate():
                self.process_form(form, True)
                self._blank_text_is_null(form)
                item = self.datamodel.obj()
                try:
                    form.populate_obj(item)
                    self.pre_add(item)
                    admit(self.resource, item)
                    self.datamodel.add(item)
                except FieldErrors as e:
                    self._attach_errors(form, e.errors, 422)
                except Conflict as e:
                    g.desk_form_status = 409
                    flash(str(e), "danger")
                else:
                    self.post_add(item)
                    flash(self.add_row_message, "success")
                    return None
            else:
                g.desk_form_status = 422
        else:
            self.update_redirect()  # as FAB does: after saving, back to the page that opened the form
            from views.lookups import prefill_add_form

            prefill_add_form(self.resource, form)  # a field with one sensible value starts on it
        return self._get_add_widget(form=form, exclude_cols=exclude_cols)

    def _edit(self, pk):
        get_filter_args(self._filters, disallow_if_not_in_search=False)
        exclude_cols = self._filters.get_relation_cols()
        item = self.datamodel.get(pk, self._base_filters)
        if not item:
            abort(404)
        pk = self.datamodel.get_pk_value(item)
        if request.method == "POST":
            # With the record as well: fields compare with what was stored (a time shown to the minute
            # keeps its seconds; views/fields.py).
            form = self.edit_form(formdata=request.form, obj=item)
            self._fill_form_exclude_cols(exclude_cols, form)
            form._id = pk
            read_version = form["version"].data if "version" in form else None
            if form.validate():
                if str(read_version) != str(item.version):
                    # Someone saved since this form was opened: keep the user's input on screen.
                    self._attach_errors(form, {"version": [str(MSG_CONFLICT)]}, 409)
                    flash(str(MSG_CONFLICT), "danger")
                    return self._get_edit_widget(form=form, exclude_cols=exclude_cols)
                self.process_form(form, False)
                self._blank_text_is_null(form)
                version_field = form._fields.pop("version", None)
                try:
                    form.populate_obj(item)
                    self.pre_update(item)
                    admit(self.resource, item)
                    self.datamodel.edit(item)
                except FieldErrors as e:
                    if version_field is not None:
                        form._fields["version"] = version_field
                    self._attach_errors(form, e.errors, 422)
                except Conflict as e:
                    if version_field is not None:
                        form._fields["version"] = version_field
                    self._attach_errors(form, {"version": [str(e)]}, 409)
                    flash(str(e), "danger")
                else:
                    self.post_update(item)
                    flash(self.edit_row_message, "success")
                    return None
            else:
                g.desk_form_status = 422
        else:
            form = self.edit_form.refresh(obj=item)
            self.prefill_form(form, pk)
            self.update_redirect()
        widgets = self._get_edit_widget(form=form, exclude_cols=exclude_cols)
        return widgets

    @expose("/delete/<pk>", methods=["POST"])
    @has_access
    def delete(self, pk):
        pk = self._deserialize_pk_if_composite(pk)
        item = self.datamodel.get(pk, self._base_filters)
        if not item:
            abort(404)
        try:
            self.pre_delete(item)
            self.datamodel.delete(item)
        except (FieldErrors, Conflict) as e:
            flash(str(e), "danger")
        else:
            self.post_delete(item)
            flash(self.delete_row_message, "success")
        self.update_redirect()
        return self.post_delete_redirect()

    # Export: the current list, with its filters and order, as .xlsx.
    @expose("/export.xlsx")
    @has_access
    def export(self):
        from views.excel import export_response

        self._check_list_args()
        if self._forbidden_filter() is not None:
            abort(403)
        get_filter_args(self._filters)
        orders = get_order_args()
        order_column, order_direction = self.base_order or ("", "")
        if orders.get(self.__class__.__name__):
            order_column, order_direction = orders[self.__class__.__name__]
        return export_response(self.resource, self.datamodel, self._filters, order_column, order_direction)

    # What the user may see (views/visibility.py): the columns, per request, never the shared view's.
    def _filter_columns(self) -> list[str]:
        columns = []
        for key in request.args:
            m = re.match(r"^_flt_\d+_(.+)$", key)
            if m:
                columns.append(m.group(1))
        return columns

    def _get_list_widget(
        self, filters, actions=None, order_column="", order_direction="", page=None, page_size=None, widgets=None, **kwargs
    ):
        widgets = widgets or {}
        actions = actions or self.actions
        page_size = page_size or self.page_size
        if not order_column and self.base_order:
            order_column, order_direction = self.base_order
        joined_filters = filters.get_joined_filters(self._base_filters)
        if filters_touch_confidential(self.datamodel.obj, self._filter_columns()):
            joined_filters.add_filter("id", FilterReadableRows, None)
        count, lst = self.datamodel.query(
            joined_filters, order_column, order_direction, page=page, page_size=page_size
        )
        columns = visible(self.resource, self.list_columns)
        pks = [self._serialize_pk_if_composite(pk) for pk in self.datamodel.get_keys(lst)]
        widgets["list"] = self.list_widget(
            label_columns=self.label_columns,
            include_columns=columns,
            value_columns=redact_values(self.datamodel.obj, lst, list(self.datamodel.get_values(lst, columns))),
            order_columns=self.order_columns,
            formatters_columns=self.formatters_columns,
            page=page,
            page_size=page_size,
            count=count,
            pks=pks,
            actions=actions,
            filters=filters,
            modelview_name=self.__class__.__name__,
            **kwargs,
        )
        return widgets

    def _get_show_widget(self, pk, item, widgets=None, actions=None, show_fieldsets=None):
        widgets = widgets or {}
        columns = visible(self.resource, self.show_columns)
        row = dict(zip(columns, self.datamodel.get_values_item(item, columns), strict=True))
        redact_values(self.datamodel.obj, [item], [row])
        from views.detail import record_links, related_lists, sections_as_fieldsets

        fieldsets = sections_as_fieldsets(self.resource, item, set(row)) or show_fieldsets or self.show_fieldsets
        if fieldsets:
            fieldsets = [(title, {**spec, "fields": [c for c in spec["fields"] if c in row]}) for title, spec in fieldsets]
        widgets["show"] = self.show_widget(
            pk=pk,
            desk_editable=bool(self.edit_columns) and self.edit_refusal(item) is None,
            desk_actions=self.offered_actions(item),
            desk_links=self.offered_links(item),
            desk_resource=self.resource.name,
            desk_status=self.resource.choices.get("status", {}).get(getattr(item, "status", None)),
            desk_related=related_lists(self.resource, item),
            desk_record_links=record_links(self.resource, item, [c for c in columns if c != "id"]),
            label_columns=self.label_columns,
            include_columns=columns,
            value_columns=[row[c] for c in columns],
            formatters_columns=self.formatters_columns,
            actions=actions or self.actions,
            fieldsets=fieldsets,
            modelview_name=self.__class__.__name__,
        )
        return widgets

    # Lookup for relation fields picked by typing (large tables).
    @expose("/lookup/<column>")
    @has_access
    def lookup(self, column):
        from views.lookups import lookup_response

        return lookup_response(self.resource, column)

    # The one sensible value of an add form's field, asked again when a field it depends on changes.
    @expose("/prefill/<column>")
    @has_access
    def prefill(self, column):
        from views.lookups import prefill_response

        return prefill_response(self.resource, column)


# --- REST API --------------------------------------------------------------------------------
class DeskModelRestApi(ActionApiMixin, ModelRestApi):
    resource: Resource
    method_permission_name = API_PERMISSIONS
    allow_browser_login = True
    model2schemaconverter = SafeModel2SchemaConverter

    def __init__(self):
        super().__init__()
        self.base_permissions = _with_matrix_extras(self.base_permissions)
        # Every dump of this resource's records goes through views/visibility.py.
        self.model2schemaconverter.resource = self.resource

    @staticmethod
    def _filter_columns(rison_args) -> list[str]:
        filters = (rison_args or {}).get("filters", []) if isinstance(rison_args, dict) else []
        if not isinstance(filters, list):
            return []
        return [f["col"] for f in filters if isinstance(f, dict) and isinstance(f.get("col"), str)]

    def _denied_personal_filter(self, rison_args):
        """A 403 answer when a user filters on personal data without the personal right, or on a
        relation into records they may not read."""
        used = self._filter_columns(rison_args)
        if not sees_personal(self.resource.name) and set(used) & set(self.resource.personal_columns()):
            return self.response(403, message=str(MSG_PERSONAL_FILTER))
        if set(used) & hidden_columns(self.resource, used):
            return self.response(403, message=str(MSG_HIDDEN_FILTER))
        return None

    def _handle_filters_args(self, rison_args):
        filters = super()._handle_filters_args(rison_args)
        if filters_touch_confidential(self.datamodel.obj, self._filter_columns(rison_args)):
            filters.add_filter("id", FilterReadableRows, None)
        return filters

    def pre_get_list(self, data: dict) -> None:
        data["count_estimated"] = bool(g.get("desk_count_estimated", False))

    def set_response_key_mappings(self, response, func, rison_args, **kwargs):
        # FAB's ``@merge_response_func`` keeps the function it was given (FAB's own), so an override
        # here would never run: call each merge function by its name, on this class.
        mappings = getattr(func, "_response_key_func_mappings", {})
        keys = rison_args.get("keys") or list(mappings)
        for key, merge in mappings.items():
            if key in keys:
                getattr(self, merge.__name__)(response, **kwargs)

    # ``_info``: the form metadata (with each relation's first values) is for those who may write;
    # a relation's values only where the user may read the related records.
    def merge_add_field_info(self, response, **kwargs):
        if "write" in rights(self.resource.name):
            super().merge_add_field_info(response, **kwargs)
        else:
            response["add_columns"] = []

    def merge_edit_field_info(self, response, **kwargs):
        if "write" in rights(self.resource.name):
            super().merge_edit_field_info(response, **kwargs)
        else:
            response["edit_columns"] = []

    def _get_list_related_field(self, field, filter_rel_field, page=None, page_size=None):
        from views.visibility import model_readable

        if not model_readable(self.datamodel.get_related_model(field.name)):
            return 0, []
        return super()._get_list_related_field(field, filter_rel_field, page=page, page_size=page_size)

    def _get_field_info(self, field, filter_rel_field, page=None, page_size=None):
        info = super()._get_field_info(field, filter_rel_field, page=page, page_size=page_size)
        # FAB translates an empty description with gettext(""), which is the catalog's header.
        info["description"] = str(self.description_columns.get(field.name, "") or "")
        info["label"] = str(self.label_columns.get(field.name, field.name))
        return info

    # FAB's ``@rison(get_list_schema)`` re-checks the JSON schema itself on every request (44% of a
    # list request under a profiler); the same validation with a validator built once.
    @expose("/", methods=["GET"])
    @protect()
    @safe
    @permission_name("get")
    @rison()
    @_validated_list_args
    @merge_response_func(ModelRestApi.merge_order_columns, API_ORDER_COLUMNS_RIS_KEY)
    @merge_response_func(ModelRestApi.merge_list_label_columns, API_LABEL_COLUMNS_RIS_KEY)
    @merge_response_func(ModelRestApi.merge_description_columns, API_DESCRIPTION_COLUMNS_RIS_KEY)
    @merge_response_func(ModelRestApi.merge_list_columns, API_LIST_COLUMNS_RIS_KEY)
    @merge_response_func(ModelRestApi.merge_list_title, API_LIST_TITLE_RIS_KEY)
    def get_list(self, **kwargs):
        return self.get_list_headless(**kwargs)

    get_list.__doc__ = ModelRestApi.get_list.__doc__

    def get_list_headless(self, **kwargs):
        return (
            self._bad_preset()
            or self._denied_personal_filter(kwargs.get("rison"))
            or super().get_list_headless(**kwargs)
        )

    def _bad_preset(self):
        """A named view the resource does not have: 400 naming ``preset`` (views/workbench.py)."""
        try:
            preset_asked(self.resource)
        except HTTPException:
            return self.response_400(message={"preset": [str(MSG_NO_PRESET)]})
        return None

    @staticmethod
    def _field_errors(errors: dict) -> dict:
        return {k: v for k, v in errors.items()}

    def _numeric_errors(self, payload: dict) -> dict:
        """Money and areas are exact: more decimals than the column keeps is an error, not a
        silent rounding (marshmallow would quantize before any validator sees the value)."""
        errors = {}
        for col in self.resource.model.__table__.columns:
            scale = getattr(col.type, "scale", None)
            if col.key not in payload or scale is None or payload[col.key] is None:
                continue
            try:
                exponent = Decimal(str(payload[col.key])).as_tuple().exponent
            except (InvalidOperation, ValueError):
                continue  # not a number: the schema says so
            if isinstance(exponent, int) and exponent < -scale:
                errors[col.key] = [str(T(f"最多 {scale} 位小数", f"At most {scale} decimal places"))]
        return errors

    def _relation_errors(self, payload: dict) -> dict:
        """A relation is written as the related record's id (a list of ids for a to-many one).
        Anything else (a word, a float, an id the column cannot hold, an object, which marshmallow
        would try to build a new related row from) is a 422 naming the field."""
        errors = {}
        for key, value in payload.items():
            if value is None or not self.datamodel.is_relation(key):
                continue
            pk_cols = self.datamodel.get_related_model(key).__table__.primary_key.columns.values()
            to_many = self.datamodel.is_relation_many_to_many(key) or self.datamodel.is_relation_one_to_many(key)
            values = value if to_many else [value]
            if not (
                isinstance(values, list)
                and len(pk_cols) == 1
                and all(parse_int_key(v, pk_cols[0]) is not None for v in values)
            ):
                msg = T("应为关联记录的编号（整数）", "Must be the id (a whole number) of a related record")
                errors[key] = [str(msg)]
                continue
            # A person is one of the working staff (views/lookups.py), on the API as in the pickers;
            # a record of another estate is refused (403: it cannot be put there).
            from views.lookups import check_choosable

            lk = next((x for x in self.resource.lookups if x.column == key and x.choosable), None)
            own = lk.choosable() if lk is not None else None
            related = self.datamodel.get_related_model(key)
            errors.update(check_choosable(self.datamodel.session, related, key, values, own))
        return errors

    def post_headless(self):
        try:
            return self._post()
        except OutOfScope as e:  # a record of another estate named, or put there
            self.datamodel.session.rollback()
            return self.response(403, message=str(e))

    def put_headless(self, pk):
        try:
            return self._put(pk)
        except OutOfScope as e:
            self.datamodel.session.rollback()
            return self.response(403, message=str(e))

    def _post(self):
        if not request.is_json or not isinstance(request.json, dict):
            return self.response_400(message="Request is not JSON")
        numeric = self._numeric_errors(request.json) or self._relation_errors(request.json)
        if numeric:
            return self.response_422(message=numeric)
        try:
            item = self.add_model_schema.load(request.json)
        except ValidationError as err:
            return self.response_422(message=err.messages)
        try:
            self.pre_add(item)
            admit(self.resource, item)
            self.datamodel.add(item)
        except FieldErrors as e:
            return self.response_422(message=e.errors)
        except Conflict as e:
            return self.response(409, message=str(e))
        self.post_add(item)
        return self.response(
            201,
            result=self.add_model_schema.dump(item, many=False),
            id=self.datamodel.get_pk_value(item),
            version=getattr(item, "version", None),
        )

    def _put(self, pk):
        item = self.datamodel.get(pk, self._base_filters)
        if not request.is_json or not isinstance(request.json, dict):
            return self.response_400(message="Request is not JSON")
        if not item:
            return self.response_404()
        from models.visibility import may_read_row
        from views.visibility import current_user

        if not may_read_row(item, current_user()):
            return self.response(403, message=str(MSG_CONFIDENTIAL_EDIT))
        payload = dict(request.json)
        read_version = payload.pop("version", None)
        numeric = self._numeric_errors(payload) or self._relation_errors(payload)
        if numeric:
            return self.response_422(message=numeric)
        if hasattr(item, "version"):
            if read_version is None:
                return self.response_422(message={"version": [str(MSG_VERSION_REQUIRED)]})
            if str(read_version) != str(item.version):
                return self.response(409, message=str(MSG_CONFLICT), version=item.version)
        try:
            data = self._merge_update_item(item, payload)
            item = self.edit_model_schema.load(data, instance=item)
        except ValidationError as err:
            self.datamodel.session.rollback()
            return self.response_422(message=err.messages)
        try:
            self.pre_update(item)
            admit(self.resource, item)
            self.datamodel.edit(item)
        except FieldErrors as e:
            return self.response_422(message=e.errors)
        except Conflict as e:
            return self.response(409, message=str(e))
        self.post_update(item)
        return self.response(
            200, result=self.edit_model_schema.dump(item, many=False), version=getattr(item, "version", None)
        )

    def delete_headless(self, pk):
        item = self.datamodel.get(pk, self._base_filters)
        if not item:
            return self.response_404()
        try:
            self.pre_delete(item)
            self.datamodel.delete(item)
        except FieldErrors as e:
            return self.response_422(message=e.errors)
        except Conflict as e:
            return self.response(409, message=str(e))
        self.post_delete(item)
        return self.response(200, message="OK")

    @expose("/export", methods=["GET"])
    @protect()
    @rison()
    @permission_name("export")
    @_validated_list_args  # the same arguments as the list, checked the same way (400, never 500)
    def export(self, **kwargs):
        """Export the list, with the same filters and order as the list, as .xlsx.
        ---
        get:
          parameters:
          - in: query
            name: q
            content:
              application/json:
                schema:
                  $ref: '#/components/schemas/get_list_schema'
          responses:
            200:
              description: An .xlsx workbook
            400:
              $ref: '#/components/responses/400'
            401:
              $ref: '#/components/responses/401'
            403:
              $ref: '#/components/responses/403'
        """
        bad = self._bad_preset()
        if bad is not None:
            return bad
        from views.excel import export_response

        args = kwargs.get("rison", {}) or {}
        denied = self._denied_personal_filter(args)
        if denied is not None:
            return denied
        try:
            joined_filters = self._handle_filters_args(args)
        except Exception:
            return self.response_400(message="Invalid filters")
        order_column = args.get("order_column", self.base_order[0] if self.base_order else "")
        order_direction = args.get("order_direction", self.base_order[1] if self.base_order else "")
        if order_column and order_column not in self.order_columns:
            return self.response_400(message=f"order_column: {order_column} cannot be used to order")
        return export_response(self.resource, self.datamodel, joined_filters, order_column, order_direction)


# --- building both from a resource ------------------------------------------------------------
def _form_fields(resource: Resource, datamodel: DeskInterface, for_edit: bool) -> dict:
    from views.fields import (
        LocalDateTimeField,
        add_default,
        date_field,
        is_period_column,
        month_field,
        optional_boolean,
    )
    from views.lookups import lookup_field

    fields = {}
    form_columns = set(resource.edit_columns) | set(resource.add_columns or ())
    table = resource.model.__table__
    for col in form_columns:
        column = table.columns.get(col)
        if column is None or col in resource.choices:
            continue
        if isinstance(column.type, Boolean):
            default = column.default.arg if column.default is not None and column.default.is_scalar else False
            # Labels and hints stay lazy (T): the form classes are built once, read in each page's language.
            fields[col] = optional_boolean(resource.label_of(col), default)
        elif isinstance(column.type, Date) and not isinstance(column.type, DateTime):
            fields[col] = date_field(
                resource.label_of(col), not column.nullable, resource.descriptions.get(col, ""),
                default=None if for_edit else add_default(resource, col, column),
            )
        elif is_period_column(column):  # 账期: a month picker, the office's month on an add form
            fields[col] = month_field(
                resource.label_of(col), not column.nullable, resource.descriptions.get(col, ""),
                default=None if for_edit else add_default(resource, col, column),
            )
        elif isinstance(column.type, UTCDateTime):
            fields[col] = LocalDateTimeField(
                resource.label_of(col),
                validators=[Optional()] if column.nullable else [DataRequired()],
                description=resource.descriptions.get(col, ""),
            )
    for col, choices in resource.choices.items():
        column = table.columns.get(col)
        required = column is not None and not column.nullable
        # A required choice with a model default starts on it; one without (a ticket's class)
        # starts empty, so nobody files an emergency by leaving the form as it came.
        default = column.default.arg if column is not None and column.default is not None and column.default.is_scalar else None
        head = [] if required and default is not None else [("", "")]
        fields[col] = SelectField(
            resource.label_of(col),
            widget=Select2Widget(),
            # Choices kept as data (models.desk.DataChoices) are read when the form is built.
            choices=_data_choices(head, choices)
            if isinstance(choices, DataChoices)
            else head + [(k, v) for k, v in choices.items()],
            validators=[DataRequired()] if required else [Optional()],
            default=default,
            filters=[lambda v: v or None],  # an empty choice is NULL, not ""
        )
    for lk in resource.lookups:
        fields[lk.column] = lookup_field(resource, lk, datamodel)
    if for_edit and hasattr(resource.model, "version"):
        fields["version"] = HiddenField()
    return fields


def build_view(resource: Resource) -> type[DeskModelView]:
    from views.lookups import person_lookups

    person_lookups(resource)
    datamodel = DeskInterface(resource.model)
    # A list of accounts names the login beside the name columns: there it stays the login.
    datamodel.login_columns = frozenset(
        c for c in resource.all_columns() if c.endswith(".username") and c[: -len("username")] + "first_name" in resource.all_columns()
    )
    labels = {c: resource.label_of(c) for c in resource.all_columns()}
    personal = resource.personal_columns()
    from views.fields import show_value

    # Every shown column reads well: no "None", 是/否, times in the office's zone.
    formatters = {col: show_value for col in [*resource.list_columns, *resource.show_columns]}
    for col, choices in resource.choices.items():
        formatters[col] = _choice_formatter(choices)
    for col, kind in personal.items():
        formatters[col] = _personal_formatter(resource.name, kind, formatters.get(col))
    edit_columns = list(resource.edit_columns)
    if hasattr(resource.model, "version"):
        edit_columns.append("version")
    check_declaration(resource)
    attrs = dict(
        resource=resource,
        datamodel=datamodel,
        method_permission_name={**VIEW_PERMISSIONS, **permission_names(resource)},
        route_base=f"/{resource.name}",
        class_permission_name=resource.name,
        list_title=resource.label,
        show_title=resource.label,
        add_title=resource.label,
        edit_title=resource.label,
        list_columns=list(resource.list_columns),
        show_columns=list(resource.show_columns),
        add_columns=list(resource.add_columns),
        edit_columns=edit_columns,
        search_columns=list(resource.search_columns),
        label_columns=labels,
        description_columns=dict(resource.descriptions),
        formatters_columns=formatters,
        base_order=resource.order,
        page_size=resource.page_size,
        add_form_extra_fields=_form_fields(resource, datamodel, for_edit=False),
        edit_form_extra_fields=_form_fields(resource, datamodel, for_edit=True),
    )
    if resource.fieldsets:
        sets = [(title, {"fields": list(cols), "expanded": expanded}) for title, cols, expanded in resource.fieldsets]
        attrs["add_fieldsets"] = sets
        # FAB builds the edit form from the fieldsets' columns only: the hidden version must be in
        # one of them, or every save compares nothing with the stored version (409 always).
        edit_sets = [(title, {**spec, "fields": list(spec["fields"])}) for title, spec in sets]
        if hasattr(resource.model, "version"):
            edit_sets[-1][1]["fields"].append("version")
        attrs["edit_fieldsets"] = edit_sets
    # Every list, detail, edit, delete, export, action and lookup of the resource: only the
    # estates the user works for (views/scope.py); the same for the forms' dropdowns.
    attrs["base_filters"] = [
        *[list(f) for f in resource.base_filters],
        ["id", FilterInScope, resource],
        ["id", FilterPreset, resource],  # ?preset=<name>: a named view of the list (views/workbench.py)
    ]
    attrs["add_form_query_rel_fields"] = attrs["edit_form_query_rel_fields"] = related_in_scope(resource)
    attrs["search_form_query_rel_fields"] = related_in_scope(resource, list(resource.search_columns))
    # The screen's list is ordered by what the API may order by (one rule, ``orderable``): a
    # computed value (a ticket's current deadline) has no column, and a related record's column
    # (ticket.number on a callback) is not joined under the estate filter.
    attrs["order_columns"] = orderable(resource)
    if resource.show_template:
        attrs["show_template"] = resource.show_template
    if not resource.writable:
        attrs["base_permissions"] = ["can_read", "can_export"]
    attrs.update(screen_routes(resource))
    if not resource.records:
        attrs["include_route_methods"] = _mixin_routes(resource.view_mixins) | {a.name for a in resource.actions}
    # A record nobody adds (or edits) by hand has no such form: FAB would build one from every
    # column of the model.
    attrs["exclude_route_methods"] = DeskModelView.exclude_route_methods | _absent_forms(resource, "add", "edit")
    return type(f"{resource.class_stem}View", (*resource.view_mixins, DeskModelView), attrs)


def orderable(resource: Resource) -> list[str]:
    """The columns a list (screen and API) may be ordered by: those declared, else the list's own
    stored columns and the id."""
    if resource.order_columns is not None:
        return list(resource.order_columns)
    table = resource.model.__table__.columns
    plain = [
        c for c in resource.list_columns
        if c in table and not isinstance(table[c].type, JSON)  # PostgreSQL cannot order by json
    ]
    return [*dict.fromkeys([*plain, "id"])]


def _absent_forms(resource: Resource, add_route: str, edit_route: str, delete_route: str = "delete") -> set[str]:
    absent = set() if resource.deletable else {delete_route}
    if not resource.writable or not resource.add_columns:
        absent.add(add_route)
    if not resource.writable or not resource.edit_columns:
        absent.add(edit_route)
    return absent


def _mixin_routes(mixins) -> set[str]:
    """The exposed routes the mixins declare (FAB's ``expose`` marks them with ``_urls``)."""
    return {name for mixin in mixins for name, fn in vars(mixin).items() if hasattr(fn, "_urls")}


def build_api(resource: Resource) -> type[DeskModelRestApi]:
    from views.visibility import check_resource_columns

    check_resource_columns(resource)
    declared(resource)  # every resource says where its estate is (views/scope.py)
    datamodel = DeskInterface(resource.model)
    labels = {c: resource.label_of(c) for c in [*resource.all_columns(), "id", "version"]}
    list_columns = ["id", *[c for c in resource.list_columns if c != "id"]]
    if hasattr(resource.model, "version") and "version" not in list_columns:
        list_columns.append("version")
    show_columns = ["id", *[c for c in resource.show_columns if c != "id"]]
    if hasattr(resource.model, "version") and "version" not in show_columns:
        show_columns.append("version")
    # The message is resolved per request (T is lazy): Chinese by default, English on request.
    validators = {
        col: OneOfData(choices) if isinstance(choices, DataChoices) else validate.OneOf(list(choices), error=MSG_ONE_OF)
        for col, choices in resource.choices.items()
    }
    attrs = dict(
        resource=resource,
        datamodel=datamodel,
        method_permission_name={**API_PERMISSIONS, **permission_names(resource)},
        resource_name=resource.name,
        class_permission_name=resource.name,
        list_title=resource.label,
        show_title=resource.label,
        add_title=resource.label,
        edit_title=resource.label,
        openapi_spec_tag=resource.name,
        list_columns=list_columns,
        show_columns=show_columns,
        add_columns=list(resource.add_columns),
        edit_columns=list(resource.edit_columns),
        search_columns=list(resource.search_columns),
        order_columns=orderable(resource),
        label_columns=labels,
        description_columns=dict(resource.descriptions),
        base_order=resource.order,
        page_size=resource.page_size,
        validators_columns=validators,
        list_select_columns=None,
    )
    # Every list, detail, edit, delete, export, action and lookup of the resource: only the
    # estates the user works for (views/scope.py); the same for the related values of ``_info``.
    attrs["base_filters"] = [
        *[list(f) for f in resource.base_filters],
        ["id", FilterInScope, resource],
        ["id", FilterPreset, resource],  # ?preset=<name>: a named view of the list (views/workbench.py)
    ]
    attrs["add_query_rel_fields"] = attrs["edit_query_rel_fields"] = related_in_scope(resource)
    if not resource.writable:
        attrs["base_permissions"] = ["can_read", "can_export"]
    attrs.update(api_routes(resource))
    if not resource.records:
        attrs["include_route_methods"] = _mixin_routes(resource.api_mixins) | {a.name for a in resource.actions}
    attrs["exclude_route_methods"] = _absent_forms(resource, "post", "put")
    return type(f"{resource.class_stem}Api", (*resource.api_mixins, DeskModelRestApi), attrs)
