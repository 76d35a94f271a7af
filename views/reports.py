"""Reports on the help requests (DESIGN.md item 12), for a date range of local dates:

- requests per class and per day (a table and a bar chart drawn here as inline SVG: no chart
  library, nothing fetched from outside; FAB's chart views load Google's library and are never
  used);
- reply and resolve compliance per class: the share of requests replied by ``reply_due_at`` and
  resolved by ``resolve_due_at``. A request counts as *met* when it was replied (resolved) in time,
  *missed* when it was late or is still open past its deadline, and *pending* otherwise (still
  open, deadline not yet reached; or cancelled without a reply). The rate is met / (met + missed);
- callback satisfaction: average and distribution 1-5, overall and per class (callbacks of the
  requests recorded in the range).

The range is when the requests were received (``Ticket.received``) between ``from`` and ``to`` (both included, local
dates), optionally one ``estate``. Every figure comes from one GROUP BY query.

Screen: ``/ticket/report`` (read). API: ``GET /api/v1/ticket/report?from=...&to=...`` (read).
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal

from flask import request
from flask_appbuilder.baseviews import expose
from flask_appbuilder.security.decorators import has_access, permission_name, protect
from markupsafe import Markup, escape
from sqlalchemy import Date, cast, func, literal_column, select

from app.i18n import T
from models.base import utcnow
from models.desk import OPEN_STATUSES, TICKET_KINDS, Callback, Ticket
from views.registers import Range, RangeError, bad_request, display_tz, estate_name, in_range, parse_range, range_args

SCORES = (1, 2, 3, 4, 5)


# --- the figures -----------------------------------------------------------------------------
def _local_day(session):
    """The local (display time zone) date a request was received, as SQL, for GROUP BY."""
    tz = display_tz()
    if session.get_bind().dialect.name == "postgresql":
        name = str(tz.key).replace("'", "''")
        # A literal, not a bound parameter: the same text in SELECT and GROUP BY.
        return cast(func.timezone(literal_column(f"'{name}'"), Ticket.received), Date)
    # SQLite keeps naive UTC text; the zone's offset now (Asia/Shanghai has no daylight saving).
    minutes = int(dt.datetime.now(tz).utcoffset().total_seconds() // 60)
    return func.date(Ticket.received, literal_column(f"'{minutes:+d} minutes'"))


def _rate(met: int, missed: int) -> float | None:
    if met + missed == 0:
        return None
    return float((Decimal(met) / Decimal(met + missed)).quantize(Decimal("0.0001"), ROUND_HALF_UP))


def _average(dist: dict[int, int]) -> float | None:
    n = sum(dist.values())
    if not n:
        return None
    total = sum(score * count for score, count in dist.items())
    return float((Decimal(total) / Decimal(n)).quantize(Decimal("0.01"), ROUND_HALF_UP))


def _as_date(value) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))


def report_figures(session, rng: Range, now: dt.datetime | None = None) -> dict:
    now = now or utcnow()
    where = in_range(rng)
    kinds = list(TICKET_KINDS)

    # per class and day
    day = _local_day(session).label("day")
    per_day_kind = session.execute(
        select(day, Ticket.kind, func.count().label("n")).where(*where).group_by(day, Ticket.kind)
    ).all()
    by_kind_count = dict.fromkeys(kinds, 0)
    by_day: dict[dt.date, dict[str, int]] = {d: {} for d in rng.days}
    for d, kind, n in per_day_kind:
        by_kind_count[kind] = by_kind_count.get(kind, 0) + n
        by_day.setdefault(_as_date(d), {})[kind] = n

    # compliance
    open_ = Ticket.status.in_(OPEN_STATUSES)
    reply_met = (Ticket.replied_at.is_not(None)) & (Ticket.replied_at <= Ticket.reply_due_at)
    reply_missed = ((Ticket.replied_at.is_not(None)) & (Ticket.replied_at > Ticket.reply_due_at)) | (
        Ticket.replied_at.is_(None) & open_ & (Ticket.reply_due_at < now)
    )
    resolve_met = (Ticket.resolved_at.is_not(None)) & (Ticket.resolved_at <= Ticket.resolve_due_at)
    resolve_missed = ((Ticket.resolved_at.is_not(None)) & (Ticket.resolved_at > Ticket.resolve_due_at)) | (
        Ticket.resolved_at.is_(None) & open_ & (Ticket.resolve_due_at < now)
    )
    compliance_rows = session.execute(
        select(
            Ticket.kind,
            func.count().label("total"),
            func.count().filter(reply_met).label("reply_met"),
            func.count().filter(reply_missed).label("reply_missed"),
            func.count().filter(resolve_met).label("resolve_met"),
            func.count().filter(resolve_missed).label("resolve_missed"),
        )
        .where(*where)
        .group_by(Ticket.kind)
    ).all()
    comp = {r.kind: r for r in compliance_rows}

    def block(total, met, missed):
        return {"met": met, "missed": missed, "pending": total - met - missed, "rate": _rate(met, missed)}

    compliance = []
    sums = dict.fromkeys(("total", "reply_met", "reply_missed", "resolve_met", "resolve_missed"), 0)
    for kind in kinds:
        r = comp.get(kind)
        vals = {k: (getattr(r, k) if r is not None else 0) for k in sums}
        for k in sums:
            sums[k] += vals[k]
        compliance.append(
            {
                "kind": kind,
                "label": str(TICKET_KINDS[kind]),
                "total": vals["total"],
                "reply": block(vals["total"], vals["reply_met"], vals["reply_missed"]),
                "resolve": block(vals["total"], vals["resolve_met"], vals["resolve_missed"]),
            }
        )
    compliance_all = {
        "total": sums["total"],
        "reply": block(sums["total"], sums["reply_met"], sums["reply_missed"]),
        "resolve": block(sums["total"], sums["resolve_met"], sums["resolve_missed"]),
    }

    # callback satisfaction
    sat_rows = session.execute(
        select(Ticket.kind, Callback.satisfaction, func.count().label("n"))
        .join(Ticket, Callback.ticket_id == Ticket.id)
        .where(*where, Callback.satisfaction.is_not(None))
        .group_by(Ticket.kind, Callback.satisfaction)
    ).all()
    dist_of: dict[str, dict[int, int]] = {k: dict.fromkeys(SCORES, 0) for k in kinds}
    overall = dict.fromkeys(SCORES, 0)
    for kind, score, n in sat_rows:
        dist_of.setdefault(kind, dict.fromkeys(SCORES, 0))[int(score)] += n
        overall[int(score)] += n

    def sat(dist):
        return {
            "count": sum(dist.values()),
            "average": _average(dist),
            "distribution": {str(s): dist[s] for s in SCORES},
        }

    return {
        "from": rng.first.isoformat(),
        "to": rng.last.isoformat(),
        "estate": rng.estate_id,
        "total": sum(by_kind_count.values()),
        "by_kind": [{"kind": k, "label": str(TICKET_KINDS[k]), "count": by_kind_count.get(k, 0)} for k in kinds],
        "by_day": [
            {
                "date": d.isoformat(),
                "count": sum(by_day[d].values()),
                "by_kind": {k: by_day[d].get(k, 0) for k in kinds},
            }
            for d in sorted(by_day)
        ],
        "compliance": compliance,
        "compliance_all": compliance_all,
        "satisfaction": {
            **sat(overall),
            "by_kind": [{"kind": k, "label": str(TICKET_KINDS[k]), **sat(dist_of[k])} for k in kinds],
        },
    }


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
            rng = parse_range(request.args)
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
            rng = parse_range(request.args)
        except RangeError as err:
            return self.response_400(message={err.field: [str(err.message)]})
        return self.response(200, **report_figures(self.datamodel.session, rng))
