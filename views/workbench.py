"""The workbench (工作台): each role's home page, and the named views of lists it links to.

The tiles are data (``TILES``): a resource and one of its model's presets (models/workbench.py).
A tile is shown only to a user who may read its resource; its count is that preset's rows inside
the user's estates, counted with the other presets of the same table in one statement; its link
is the resource's list with ``?preset=<name>``, which shows exactly those rows (``FilterPreset``,
on the screen, the API and the export alike).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from flask import abort, current_app, g, has_request_context, request, url_for
from flask_appbuilder.models.filters import BaseFilter
from sqlalchemy import true

from app.i18n import T
from models.desk import STATUSES, TICKET_KINDS
from models.workbench import (
    desk_month_figures,
    duty_gaps,
    duty_today,
    moment,
    money_figures,
    my_open_tickets,
    preset_counts,
    presets_of,
)
from views.registry import REGISTRY
from views.scope import clause_for, user_estates

MSG_NO_PRESET = T("没有这个视图", "No such view")
# The coded values the workbench shows, as words.
STATUS_WORDS = {"kind": TICKET_KINDS, "status": STATUSES}


def time_left(due, now) -> str:
    """剩余 1小时5分 / 超时 2天3小时: how long until a deadline, or how long past it."""
    if due is None:
        return ""
    seconds = int((due - now).total_seconds())
    past, seconds = seconds < 0, abs(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    zh = (f"{days}天" if days else "") + (f"{hours}小时" if hours else "") + ("" if days else f"{minutes}分")
    en = (f"{days}d " if days else "") + (f"{hours}h " if hours else "") + ("" if days else f"{minutes}m")
    return str(T(f"超时 {zh}", f"{en.strip()} overdue") if past else T(f"剩余 {zh}", f"{en.strip()} left"))


# --- named views of a list ------------------------------------------------------------------------
def preset_asked(resource):
    """The preset a list request names (``?preset=``), None for none; 400 naming ``preset`` for
    one the resource does not have."""
    if not has_request_context():
        return None
    name = request.args.get("preset")
    if not name:
        return None
    preset = presets_of(resource.model).get(name)
    if preset is None:
        abort(400, description=f"{MSG_NO_PRESET}：{name}")  # the API names the field (views/base.py)
    return preset


class FilterPreset(BaseFilter):
    """The named view a list was asked for (its value is the resource)."""

    name = "preset"
    arg_name = "desk_preset"

    def apply(self, query, value):
        preset = preset_asked(value)
        if preset is None:
            return query
        return query.filter(preset.where(moment(g.user.id)))


def preset_links(resource) -> list[dict]:
    """The list's own buttons: all rows, then each named view, the one asked for marked."""
    presets = presets_of(resource.model)
    if not presets:
        return []
    asked = request.args.get("preset")
    base = url_for(f"{resource.class_stem}View.list")
    links = [{"label": T("全部", "All"), "url": base, "active": not asked}]
    links += [{"label": p.label, "url": f"{base}?preset={n}", "active": asked == n} for n, p in presets.items()]
    return links


# --- the workbench -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Tile:
    resource: str
    preset: str
    tone: str = "info"  # "danger" / "warning": shown in that colour when there is anything


STAFF = (
    Tile("ticket", "mine"),
    Tile("ticket", "overdue", "danger"),
    Tile("callback", "due_today", "warning"),
    Tile("service_order", "today"),
    Tile("renovation", "inspection_due", "warning"),
    Tile("notification", "unread", "warning"),
)
SUPERVISOR = (
    Tile("ticket", "escalated", "danger"),
    Tile("ticket", "reply_soon", "warning"),
    Tile("ticket", "overdue", "danger"),
    Tile("ticket", "unassigned", "warning"),
    Tile("rectification_order", "overdue", "danger"),
    Tile("notification", "unread", "warning"),
)
MANAGER = (
    Tile("ticket", "today"),
    Tile("ticket", "month"),
    Tile("ticket", "level2", "danger"),
    Tile("fee_standard", "awaiting_approval", "warning"),
    Tile("renovation", "awaiting_approval", "warning"),
    Tile("notification", "unread", "warning"),
)
TILES: dict[str, tuple[Tile, ...]] = {
    "Staff": STAFF,
    "Supervisor": SUPERVISOR,
    "Manager": MANAGER,
    "Admin": MANAGER,
    "Committee": (),
}
# What else each role's page holds: my requests by deadline, today's duty roster, the month's figures.
PANELS: dict[str, tuple[str, ...]] = {
    "Staff": ("my_tickets",),
    "Supervisor": ("duty",),
    "Manager": ("desk_figures", "money_figures"),
    "Admin": ("desk_figures", "money_figures"),
    "Committee": ("desk_figures", "money_figures"),
}


def _in_scope(resource: str):
    """The user's estates as a condition on the resource's rows (all rows: ``true()``)."""
    clause = clause_for(REGISTRY[resource])
    return true() if clause is None else clause


def _may_read(resource: str) -> bool:
    return bool(current_app.appbuilder.sm.has_access("can_read", resource))


_FIGURES: dict[tuple, tuple[float, dict]] = {}


def figures(kind: str, compute, m, estates) -> dict:
    """A month figure panel, kept ``WORKBENCH_FIGURES_SECONDS`` per database, estate set and day
    (a company's month is a sum over all its bill lines; tiles stay live), with when it was made."""
    ttl = float(current_app.config.get("WORKBENCH_FIGURES_SECONDS", 60))
    key = (current_app.config["SQLALCHEMY_DATABASE_URI"], kind, estates, m.today)
    hit = _FIGURES.get(key)
    if ttl > 0 and hit is not None and time.monotonic() - hit[0] < ttl:
        return hit[1]
    value = {**compute(), "as_of": m.now}
    if len(_FIGURES) > 1000:
        _FIGURES.clear()
    _FIGURES[key] = (time.monotonic(), value)
    return value


def workbench(session) -> dict:
    """Everything the signed-in user's home page shows, in few statements (one per table)."""
    roles = [r.name for r in g.user.roles]
    m = moment(g.user.id)
    tiles = list(dict.fromkeys(t for role in roles for t in TILES.get(role, ())))
    tiles = [t for t in tiles if _may_read(t.resource)]
    panels = list(dict.fromkeys(p for role in roles for p in PANELS.get(role, ())))
    counts: dict[tuple[str, str], int] = {}
    by_table: dict[str, list[Tile]] = {}
    for t in tiles:
        by_table.setdefault(t.resource, []).append(t)
    for name, group in by_table.items():
        got = preset_counts(session, REGISTRY[name].model, [t.preset for t in group], m, _in_scope(name))
        counts.update({(name, p): n for p, n in got.items()})
    out = {
        "moment": m,
        "tiles": [
            {
                "label": presets_of(REGISTRY[t.resource].model)[t.preset].label,
                "what": REGISTRY[t.resource].label,
                "count": counts[(t.resource, t.preset)],
                "tone": t.tone if counts[(t.resource, t.preset)] else "default",
                "url": url_for(f"{REGISTRY[t.resource].class_stem}View.list", preset=t.preset),
            }
            for t in tiles
        ],
        "panels": [],
    }
    estates = user_estates()
    for panel in panels:
        if panel == "my_tickets" and _may_read("ticket"):
            rows = my_open_tickets(session, m, _in_scope("ticket"))
            out["panels"].append({"kind": panel, "rows": rows, "now": m.now})
        elif panel == "duty" and _may_read("duty_shift"):
            shifts = duty_today(session, m, _in_scope("duty_shift"))
            out["panels"].append({"kind": panel, "rows": shifts, "gaps": duty_gaps(shifts, m)})
        elif panel == "desk_figures" and _may_read("ticket"):
            fig = figures(panel, lambda: desk_month_figures(session, m, estates), m, estates)
            out["panels"].append({"kind": panel, "fig": fig})
        elif panel == "money_figures" and _may_read("collection_report"):
            fig = figures(panel, lambda: money_figures(session, m, estates), m, estates)
            # arrears by household are owners' financial data: for those who read bills
            out["panels"].append({"kind": panel, "fig": fig, "arrears_link": _may_read("bill")})
    return out
