"""Reports on the help requests (DESIGN.md item 12) for a date range of local dates: requests
per class and per day, reply and resolve compliance per class, callback satisfaction. The figures
come from models/registers.py (``report_figures``); here they are declared as charts (``chart``:
the same figures as the tables, drawn in the browser by the product's own copy of Apache ECharts
through ``static/desk/charts.js``; nothing is fetched from another host, and FAB's chart views,
which load Google's library, are never used) and served.

Screen: ``/ticket/report`` (read). API: ``GET /api/v1/ticket/report?from=...&to=...`` (read).
"""

from __future__ import annotations

import json
from decimal import Decimal

from flask import request
from flask_appbuilder.baseviews import expose
from flask_appbuilder.security.decorators import has_access, permission_name, protect
from markupsafe import Markup

from app.i18n import T
from models.desk import TICKET_KINDS
from models.registers import SCORES, RangeError, estate_name, parse_range, range_args, report_figures
from views.registers import bad_request
from views.scope import scoped_range


# --- charts: declared here, drawn in the browser by ECharts ---------------------------------
def _number(value):
    """A figure as a JSON number (money is Decimal or an exact string in the figures); None
    stays None (no bar: nothing to measure, e.g. a rate with nothing billed)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    return float(Decimal(str(value)))


def chart(
    categories: list,
    series: list[tuple[object, list]],
    *,
    title: object,
    unit: object = "",
    decimals: int = 0,
    horizontal: bool = False,
    stack: bool = False,
    axis_max: float | None = None,
    details: list[list[str]] | None = None,
    total: object = None,
    kind: str = "bar",
) -> Markup:
    """One chart as a declarative element that ``desk/charts.js`` draws with the product's own
    copy of ECharts (``static/desk/vendor/echarts``): ``<div class="desk-chart" data-chart=...>``.

    ``series``: ``(name, values)`` pairs, one value per category, from the same figures the table
    under the chart shows. The value axis starts at 0 (lower only for a negative figure); ``axis_max`` (100 for rates in percent, 5 for
    scores) is its top unless a value is higher, so a 0.4% rate is a sliver, not a full bar; without
    it the axis is scaled to the data. ``unit`` follows every value shown (axis, labels, tooltip);
    ``details``: more lines per category for the tooltip; ``total``: the label of a stacked
    chart's sum in the tooltip. Every text is the server's, in the user's language.
    """
    spec = {
        "type": kind,
        "title": str(title),
        "categories": [str(c) for c in categories],
        "series": [{"name": str(name), "data": [_number(v) for v in values]} for name, values in series],
        "unit": str(unit),
        "decimals": decimals,
        "horizontal": horizontal,
        "stack": stack,
        "max": axis_max,
        "empty": str(T("无数据", "No data")),
    }
    if details:
        spec["details"] = [[str(line) for line in lines] for lines in details]
    if total is not None:
        spec["total"] = str(total)
    rows = len(spec["categories"])
    legend = 32 if len(series) > 1 else 0
    height = max(160, 56 + 30 * rows) + legend if horizontal else 300 + legend
    return Markup(
        '<div class="desk-chart" role="img" aria-label="{title}" style="height:{height}px" '
        'data-chart="{data}"></div>'
    ).format(title=spec["title"], height=height, data=json.dumps(spec, ensure_ascii=False, separators=(",", ":")))


def percent(rate) -> float | None:
    """A rate (0..1, as the figures keep it) in percent for a chart; None stays None."""
    return None if rate is None else round(float(rate) * 100, 2)


def report_charts(fig: dict) -> dict[str, Markup]:
    days = fig["by_day"]
    short = len({d["date"][:4] for d in days}) == 1
    kinds = fig["by_kind"]
    return {
        "by_kind": chart(
            [k["label"] for k in kinds],
            [(T("求助数量", "Requests"), [k["count"] for k in kinds])],
            title=T("各类求助数量", "Requests per class"),
            unit=T("件", ""),
            horizontal=True,
        ),
        "compliance": chart(
            [c["label"] for c in fig["compliance"]],
            [
                (T("答复达标率", "Reply in time"), [percent(c["reply"]["rate"]) for c in fig["compliance"]]),
                (T("解决达标率", "Resolved in time"), [percent(c["resolve"]["rate"]) for c in fig["compliance"]]),
            ],
            title=T("响应时限达标率（%）", "Response-time compliance (%)"),
            unit="%",
            decimals=1,
            axis_max=100,
        ),
        "by_day": chart(
            [d["date"][5:] if short else d["date"] for d in days],
            [(k["label"], [d["by_kind"][k["kind"]] for d in days]) for k in kinds],
            title=T("每日求助数量", "Requests per day"),
            unit=T("件", ""),
            stack=True,
            total=T("合计", "Total"),
        ),
        "satisfaction": chart(
            [T(f"{s} 分", f"{s}") for s in SCORES],
            [(T("回访数", "Callbacks"), [fig["satisfaction"]["distribution"][str(s)] for s in SCORES])],
            title=T("回访满意度分布", "Callback satisfaction"),
            unit=T("次", ""),
        ),
    }


def arrears_aging(session, args: dict) -> dict:
    """The arrears page's aging summary per estate (the fee report's, as of the same date) and
    its chart: ``aging`` and ``charts`` for the template."""
    from models.arrears import arrears_summary
    from models.reports import aging_series

    aging = arrears_summary(session, args["as_of"], estate_id=args["estate"])
    return {"aging": aging, "charts": {"aging": chart(**aging_series(aging))}}


RENOVATION_COUNTS = (
    ("active", T("施工中", "Active")),
    ("overdue", T("超期未验收", "Overdue")),
    ("violations", T("有未关闭违规", "Open violations")),
    ("late_rectifications", T("整改超期", "Late rectifications")),
)


def renovation_counts(lists: dict) -> list[tuple[str, T, int]]:
    """The renovations report's four counts: (key, label, count), in the table's order."""
    return [(key, label, v if isinstance(v := lists[key], int) else len(v)) for key, label in RENOVATION_COUNTS]


def renovation_charts(lists: dict) -> dict[str, Markup]:
    counts = renovation_counts(lists)
    return {
        "counts": chart(
            [label for _key, label, _n in counts],
            [(T("数量", "Count"), [n for _key, _label, n in counts])],
            title=T("装修管理概况", "Renovations at a glance"),
            unit=T("项", ""),
            horizontal=True,
        ),
        "rows": counts,
    }


# --- the screen and the API ------------------------------------------------------------------
class TicketReportViewMixin:
    @expose("/report")
    @has_access
    def report(self):
        try:
            rng = scoped_range(parse_range(request.args))
        except RangeError as err:
            bad_request(err)
        session = self.datamodel.session
        fig = report_figures(session, rng)
        return self.render_template(
            "desk/report.html",
            fig=fig,
            charts=report_charts(fig),
            rng=rng,
            range_args=range_args(rng),
            estate=estate_name(session, rng),
            kinds=TICKET_KINDS,
        )


class TicketReportApiMixin:
    @expose("/report", methods=["GET"])
    @protect()
    @permission_name("report")
    def report(self):
        """Request volumes, reply/resolve compliance and callback satisfaction for a date range.
        ---
        get:
          parameters:
          - in: query
            name: from
            schema:
              type: string
              format: date
            description: First local date (YYYY-MM-DD), included; default the month's first day
          - in: query
            name: to
            schema:
              type: string
              format: date
            description: Last local date (YYYY-MM-DD), included; default today
          - in: query
            name: estate
            schema:
              type: integer
            description: Only this estate's requests
          responses:
            200:
              description: The figures
              content:
                application/json:
                  schema:
                    type: object
            400:
              description: A bad argument, named in the message
            401:
              $ref: '#/components/responses/401'
            403:
              $ref: '#/components/responses/403'
        """
        try:
            rng = scoped_range(parse_range(request.args))
        except RangeError as err:
            return self.response_400(message={err.field: [str(err.message)]})
        return self.response(200, **report_figures(self.datamodel.session, rng))
