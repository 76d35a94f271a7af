"""Reports on the help requests (DESIGN.md item 12) for a date range of local dates: requests
per class and per day, reply and resolve compliance per class, callback satisfaction. The figures
come from models/registers.py (``report_figures``); here they are drawn (bar charts as inline SVG:
no chart library, nothing fetched from outside; FAB's chart views load Google's library and are
never used) and served.

Screen: ``/ticket/report`` (read). API: ``GET /api/v1/ticket/report?from=...&to=...`` (read).
"""

from __future__ import annotations

from flask import request
from flask_appbuilder.baseviews import expose
from flask_appbuilder.security.decorators import has_access, permission_name, protect
from markupsafe import Markup, escape

from app.i18n import T
from models.desk import TICKET_KINDS
from models.registers import SCORES, RangeError, estate_name, parse_range, range_args, report_figures
from views.registers import bad_request
from views.scope import scoped_range


# --- a bar chart, drawn here -----------------------------------------------------------------
def bar_chart_svg(
    items: list[tuple[str, float]],
    *,
    title: str = "",
    width: int = 760,
    height: int = 240,
    horizontal: bool = False,
    color: str = "#3c78b4",
) -> Markup:
    """An inline ``<svg>`` bar chart (rects and text only) of ``(label, value)`` pairs."""
    e = escape
    n = max(len(items), 1)
    top = max((v for _, v in items), default=0) or 1
    parts = [
        f'<svg class="desk-chart" role="img" aria-label="{e(title)}" width="{width}" '
        f'viewBox="0 0 {width} {{h}}" style="max-width:100%;height:auto" font-size="11">'
    ]
    if title:
        parts.append(f"<title>{e(title)}</title>")
    if horizontal:
        row = 22
        label_w, value_w = 130, 50
        h = row * n + 10
        span = width - label_w - value_w
        for i, (label, value) in enumerate(items):
            y = 5 + i * row
            w = span * value / top
            parts.append(
                f'<text x="{label_w - 6}" y="{y + 15}" text-anchor="end">{e(label)}</text>'
                f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row - 6}" fill="{color}">'
                f"<title>{e(label)}: {e(value)}</title></rect>"
                f'<text x="{label_w + w + 4:.1f}" y="{y + 15}">{e(value)}</text>'
            )
    else:
        h = height
        left, bottom, top_pad = 36, 34, 16
        plot_w, plot_h = width - left - 8, h - bottom - top_pad
        slot = plot_w / n
        bar = max(1.0, min(48.0, slot * 0.7))
        every = -(-n // max(1, int(plot_w // 46)))  # a label every so many bars, so they never overlap
        base_y = top_pad + plot_h
        parts.append(f'<line x1="{left}" y1="{base_y}" x2="{width - 8}" y2="{base_y}" stroke="#333"/>')
        parts.append(f'<text x="{left - 4}" y="{top_pad + 4}" text-anchor="end">{e(top)}</text>')
        parts.append(f'<line x1="{left}" y1="{top_pad}" x2="{width - 8}" y2="{top_pad}" stroke="#ddd"/>')
        parts.append(f'<text x="{left - 4}" y="{base_y}" text-anchor="end">0</text>')
        for i, (label, value) in enumerate(items):
            x = left + i * slot + (slot - bar) / 2
            bh = plot_h * value / top
            parts.append(
                f'<rect x="{x:.1f}" y="{base_y - bh:.1f}" width="{bar:.1f}" height="{bh:.1f}" fill="{color}">'
                f"<title>{e(label)}: {e(value)}</title></rect>"
            )
            if value and bar >= 14:
                parts.append(
                    f'<text x="{x + bar / 2:.1f}" y="{base_y - bh - 3:.1f}" text-anchor="middle">{e(value)}</text>'
                )
            if i % every == 0:
                parts.append(f'<text x="{x + bar / 2:.1f}" y="{base_y + 14}" text-anchor="middle">{e(label)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts).replace("{h}", str(h), 1))


def report_charts(fig: dict) -> dict[str, Markup]:
    days = fig["by_day"]
    short = len({d["date"][:4] for d in days}) == 1
    return {
        "by_kind": bar_chart_svg(
            [(k["label"], k["count"]) for k in fig["by_kind"]],
            title=str(T("各类求助数量", "Requests per class")),
            horizontal=True,
        ),
        "by_day": bar_chart_svg(
            [(d["date"][5:] if short else d["date"], d["count"]) for d in days],
            title=str(T("每日求助数量", "Requests per day")),
        ),
        "satisfaction": bar_chart_svg(
            [(str(T(f"{s} 分", f"{s}")), fig["satisfaction"]["distribution"][str(s)]) for s in SCORES],
            title=str(T("回访满意度分布", "Callback satisfaction")),
            width=360,
            height=200,
            color="#4a9a5a",
        ),
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
