"""The registry: a model's admin metadata, declared once.

A ``Resource`` names the model, its REST resource name (DESIGN.md), its menu place, its column
lists and Chinese/English labels, its choices and its lookups. ``app.create_app`` turns every
registered resource into a screen (``ModelView``), a REST API (``ModelRestApi`` at
``/api/v1/<name>/``) and the permissions ``can_read`` / ``can_write`` / ``can_export`` /
``can_personal`` on ``<name>``, which the role matrix (``app/roles.py``) hands out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.i18n import T

# Menu categories: key (the menu permission name) -> (label, icon).
CATEGORIES: dict[str, tuple[T, str]] = {
    "archives": (T("业主档案", "Archives"), "fa-building"),
    "desk": (T("服务台", "Service desk"), "fa-life-ring"),
    "desk_settings": (T("服务设置", "Desk settings"), "fa-sliders"),
    "audit": (T("审计", "Audit"), "fa-history"),
    "fees": (T("收费管理", "Fees"), "fa-yen"),
    "services": (T("便民服务", "Services"), "fa-handshake-o"),
    "renovation": (T("装修管理", "Renovations"), "fa-paint-brush"),
    "reports": (T("报表", "Reports"), "fa-bar-chart"),
}

# Labels every resource shares.
COMMON_LABELS: dict[str, T] = {
    "id": T("编号", "ID"),
    "version": T("版本", "Version"),
    "created_at": T("创建时间", "Created at"),
    "changed_at": T("修改时间", "Changed at"),
    "created_by": T("创建人", "Created by"),
    "changed_by": T("修改人", "Changed by"),
    "created_by.username": T("创建人", "Created by"),
    "changed_by.username": T("修改人", "Changed by"),
    "note": T("备注", "Note"),
    "name": T("名称", "Name"),
    "code": T("编码", "Code"),
    "estate": T("小区", "Estate"),
    "estate.name": T("小区", "Estate"),
}


@dataclass
class Lookup:
    """A relation picked by typing (AJAX) instead of a dropdown of the whole table."""

    column: str  # relationship name on the model, e.g. "unit"
    search: Sequence[str]  # columns of the related model matched by the typed text
    label: Callable[[Any], str] = str
    # Which records may be chosen (a function giving an SQL condition), when not the default of
    # views/lookups.py (the user's estates; for a person, the working staff).
    choosable: Callable[[], Any] | None = None


@dataclass
class Input:
    """One input of a workflow action, declared once for the API, the screen form and the spec."""

    name: str
    label: T
    # text, textarea, date, datetime, decimal, int, bool, choice, person, file, files
    kind: str = "text"
    required: bool = False
    # choice: {value: label}, or a function of the record (the states that may follow this one)
    choices: dict[str, T] | Callable[[Any], dict[str, T]] | None = None
    places: int = 2  # decimal: at most this many decimals (never rounded)
    accept: Sequence[str] = ()  # file(s): the extensions allowed, e.g. (".pdf", ".jpg")
    max_length: int = 2000
    placeholder: T | None = None
    # choice: what the form offers now, when it is fewer than what is taken (a ticket's status takes
    # any status, and the model says why a move is refused; the form offers the ones that may follow)
    offer: Callable[[Any], dict[str, T]] | None = None


@dataclass
class Action:
    """A step in a record's life, declared once: the model method that does the work (the rule
    stays in ``models/``), the right it needs, its inputs, when it is offered. ``views/actions.py``
    builds from it the API endpoint ``POST /api/v1/<resource>/<pk>/<name>`` (with its OpenAPI
    description), the screen route, the permission, the button and form on the detail page, the
    version check (409), the error answers (422 naming the field) and the commit."""

    name: str
    label: T
    # A method of the record, called with the inputs as keywords (and ``session`` / ``user`` when it
    # takes them), or a function called the same way with the record first.
    method: str | Callable
    right: str = "write"  # the matrix right it needs: "write" or "approve"
    inputs: Sequence[Input] = ()
    # When the action is offered; a record it does not hold for is refused (422 naming its state).
    when: Callable[[Any], bool] | None = None
    # The version read with the record must be sent (a version sent is always checked).
    needs_version: bool = True
    confirm: T | None = None  # asked before the form is sent
    style: str = "default"  # the button: primary, success, warning, danger, default
    description: T | None = None  # one line for the OpenAPI description
    screen_route: str | None = None  # defaults to the name: /<resource>/<name>/<pk>
    api_route: str | None = None  # defaults to the name: /api/v1/<resource>/<pk>/<name>
    # The method returns a new record (a revision, an order): 201, and the screen goes to it.
    creates: str | None = None  # the resource of the record it creates
    # Extra fields of the API's answer, from (record, what the method returned).
    result: Callable[[Any, Any], dict] | None = None
    # Extra lines shown after success (warnings), from what the method returned.
    notices: Callable[[Any], list] | None = None

    @property
    def screen_path(self) -> str:
        return self.screen_route or self.name

    @property
    def api_path(self) -> str:
        return self.api_route or self.name


@dataclass
class Link:
    """A button on the detail page to one of the screen's own GET routes (a print form, a
    download), shown when ``when(record)`` holds and the user may use the route."""

    label: T
    route: str  # the view method's name; it takes the record's ``pk``
    when: Callable[[Any], bool] | None = None
    new_tab: bool = False
    style: str = "default"  # the button: primary, success, default (a day's main task stands out)


@dataclass
class MenuEntry:
    """A page a resource serves beside its list (a report, a register), with its own menu entry:
    shown to the roles that read the resource (and hold ``needs``, a (resource, right) pair, when
    the page reads another resource too)."""

    key: str  # the menu entry's name is "<resource>.<key>"
    label: T
    path: str  # below the resource's screen: "report", "register?register=repair"
    icon: str = "fa-file-text-o"
    category: str = "reports"
    needs: tuple[str, str] | None = None

    def menu_name(self, resource_name: str) -> str:
        return f"{resource_name}.{self.key}"


@dataclass
class Section:
    """A part of the detail page: a title and its columns, shown when ``when(record)`` holds."""

    title: T
    columns: Sequence[str]
    when: Callable[[Any], bool] | None = None


@dataclass
class Related:
    """A list on the detail page: the rows of another resource that point at this record (through
    ``via``, the foreign key column on them), or rows a function gives (``rows(record)`` ->
    dicts), with their columns."""

    label: T
    resource: str | None = None
    via: str | None = None
    columns: Sequence[str] = ()
    rows: Callable[[Any], list[dict]] | None = None
    labels: dict[str, T] = field(default_factory=dict)  # for ``rows``' keys
    limit: int = 50
    when: Callable[[Any], bool] | None = None  # shown only when it applies to the record
    name: str | None = None  # the block's CSS class is desk-<name>


def moves_to(transitions: dict, target: str, column: str = "status") -> Callable[[Any], bool]:
    """``when`` for an action that moves a record to ``target``: the model's transition table is
    the single source of what may follow what. (It keeps the table, so that a refusal can say
    what may follow instead: ``views.actions.state_refusal``.)"""

    def when(obj) -> bool:
        return target in transitions.get(getattr(obj, column), ())

    when.transitions, when.target, when.column = transitions, target, column
    return when


@dataclass
class Resource:
    name: str  # REST resource and permission name, fixed in DESIGN.md
    model: type
    label: T
    category: str
    list_columns: Sequence[str]
    edit_columns: Sequence[str] = ()
    add_columns: Sequence[str] | None = None  # defaults to edit_columns
    show_columns: Sequence[str] | None = None  # defaults to list + edit + audit
    search_columns: Sequence[str] = ()
    labels: dict[str, T] = field(default_factory=dict)
    descriptions: dict[str, T] = field(default_factory=dict)
    choices: dict[str, dict[str, T]] = field(default_factory=dict)
    lookups: Sequence[Lookup] = ()
    order: tuple[str, str] = ("id", "desc")
    writable: bool = True
    icon: str = "fa-table"
    importer: Any = None  # an Excel import spec (views/excel.py), if the list can be imported
    page_size: int = 25
    # Extra behaviour (routes, hooks) mixed into the generated screen / API, ahead of the base.
    view_mixins: Sequence[type] = ()
    api_mixins: Sequence[type] = ()
    # FAB base filters applied to every list, detail and write (e.g. "only my notifications").
    base_filters: Sequence[Any] = ()
    show_template: str | None = None
    # Form sections: [(title, [columns], expanded)], for long forms (a ticket's class-specific parts).
    fieldsets: Sequence[tuple[T, Sequence[str], bool]] = ()
    # Which columns a list may be ordered by (API); defaults to the plain list columns.
    order_columns: Sequence[str] | None = None
    # False for a report resource: only the mixins' routes are served, never its rows one by one
    # (the fee reports read bills, which the Committee may not read; it reads the figures).
    records: bool = True
    # The route the menu opens (``list``, or a mixin's route such as ``report``).
    menu_route: str = "list"
    # False for records that are never deleted (financial records, applications, orders: they are
    # voided or cancelled with a reason): no delete route, no delete button.
    deletable: bool = True
    # The path from a row to its estate (views/scope.py): "estate_id", "unit.estate_id", ...
    # ("a|b": either), or COMPANY / COMPANY_ONLY for what belongs to no estate. Required.
    estate: str | None = None
    # A row with no estate there is the company's, seen in every estate (a shift for all estates).
    estate_optional: bool = False
    # Workflow actions (``Action``), the detail page's sections (``Section``: the show page's
    # fieldsets, each shown when it applies) and related lists (``Related``).
    actions: Sequence[Action] = ()
    links: Sequence[Link] = ()
    sections: Sequence[Section] = ()
    related: Sequence[Related] = ()
    # Pages beside the list (reports, registers) that have a menu entry of their own.
    menus: Sequence[MenuEntry] = ()
    # What an add form starts on, per column: a value or a function of none (views/fields.py gives
    # periods the office's month and TODAY_DATES the office's today without a declaration).
    defaults: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if self.category not in CATEGORIES:
            raise ValueError(f"{self.name}: unknown menu category {self.category!r}")
        for entry in self.menus:
            if entry.category not in CATEGORIES:
                raise ValueError(f"{self.name}.{entry.key}: unknown menu category {entry.category!r}")
        if self.add_columns is None:
            self.add_columns = list(self.edit_columns)
        if self.records and self.estate == "estate_id" and hasattr(self.model, "estate"):
            # A company-level user reads several estates' rows side by side: every list says whose
            # each row is, and can be narrowed to one (the filter offers the user's estates only).
            if not any(c.startswith("estate") for c in self.list_columns):
                self.list_columns = ["estate.name", *self.list_columns]
            if "estate" not in self.search_columns:
                self.search_columns = [*self.search_columns, "estate"]
        if self.show_columns is None:
            shown = [c for s in self.sections for c in s.columns] or [*self.list_columns, *self.edit_columns]
            cols = list(dict.fromkeys(shown))
            if hasattr(self.model, "created_at"):
                cols += [
                    c
                    for c in ("created_at", "created_by.username", "changed_at", "changed_by.username")
                    if c not in cols
                ]
            self.show_columns = cols

    @property
    def class_stem(self) -> str:
        """Generated classes are named after the resource (``ticket_archive`` ->
        ``TicketArchiveView``): FAB keys blueprints, endpoints and list state by class name, and
        two resources may share a model."""
        return "".join(part.title() for part in self.name.split("_"))

    def label_of(self, column: str) -> T:
        if column in self.labels:
            return self.labels[column]
        if column in COMMON_LABELS:
            return COMMON_LABELS[column]
        raise KeyError(f"{self.name}: no label for column {column!r}")

    def all_columns(self) -> list[str]:
        return list(
            dict.fromkeys(
                [
                    *self.list_columns,
                    *self.edit_columns,
                    *self.add_columns,
                    *self.show_columns,
                    *self.search_columns,
                    *[c for s in self.sections for c in s.columns],
                ]
            )
        )

    def action(self, name: str) -> Action:
        return next(a for a in self.actions if a.name == name)

    def personal_columns(self) -> dict[str, str]:
        """column -> kind ('phone' / 'id') for every shown column that holds personal data."""
        result = {}
        for col in self.all_columns():
            model = self.model
            parts = col.split(".")
            for rel in parts[:-1]:
                prop = getattr(model, rel).property
                model = prop.mapper.class_
            kind = getattr(model, "__personal__", {}).get(parts[-1])
            if kind:
                result[col] = kind
        return result


REGISTRY: dict[str, Resource] = {}


def register(resource: Resource) -> Resource:
    if resource.name in REGISTRY and REGISTRY[resource.name].model is not resource.model:
        raise ValueError(f"resource {resource.name!r} is registered twice")
    REGISTRY[resource.name] = resource
    if resource.records and "__record_label__" not in vars(resource.model):
        # A record without a name of its own reads as "催缴通知 2", not its class (models/base.py).
        resource.model.__record_label__ = resource.label
    return resource


def menu_categories_for(name: str) -> list[str]:
    return [REGISTRY[name].category]


def menu_entries_for(name: str, rights_of) -> list[tuple[str, str]]:
    """The (entry name, category) of a resource's own pages a role reaches from the menu;
    ``rights_of(resource)`` gives the role's rights."""
    res = REGISTRY[name]
    out = []
    if "read" not in rights_of(name):
        return out
    for entry in res.menus:
        if entry.needs is not None and entry.needs[1] not in rights_of(entry.needs[0]):
            continue
        out.append((entry.menu_name(name), entry.category))
    return out
