"""The fee reports' figures (DESIGN.md item 12): collection rate per month, estate and item,
income by item and method, and the sheets of their workbook. Queries only; the screens and the
API that show them are in views/payments.py."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from app.i18n import T
from models.archives import Estate
from models.arrears import BUCKETS, arrears_by_unit, arrears_count, arrears_summary
from models.errors import FieldErrors
from models.fees import Bill, FeeItem, month_bounds
from models.payments import PAYMENT_METHODS, Payment, PaymentAllocation, _display_tz
from models.scope import estate_condition

MSG_PERIOD = T("账期格式为 YYYY-MM", "The period is YYYY-MM")


def _tz() -> ZoneInfo:
    return ZoneInfo(_display_tz())


def _period(args, name: str, default: str) -> str:
    value = (args.get(name) or default).strip()
    try:
        month_bounds(value)
    except FieldErrors:
        raise FieldErrors({name: [str(MSG_PERIOD)]}) from None
    if len(value) != 7:
        raise FieldErrors({name: [str(MSG_PERIOD)]})
    return value


def report_args(args) -> dict:
    """from / to (YYYY-MM, this year so far by default), estate (an id), as_of (a date, today):
    a bad one is a FieldErrors naming it."""
    today = dt.datetime.now(_tz()).date()
    first = _period(args, "from", f"{today.year}-01")
    last = _period(args, "to", f"{today:%Y-%m}")
    if first > last:
        raise FieldErrors({"to": [str(T("结束账期不能早于开始账期", "The end is before the start"))]})
    estate = args.get("estate") or None
    if estate is not None:
        if not estate.isdigit() or len(estate) > 18:
            raise FieldErrors({"estate": [str(T("应为小区编号", "The estate's id"))]})
        estate = int(estate)
    raw = args.get("as_of")
    try:
        as_of = dt.date.fromisoformat(raw) if raw else today
    except ValueError:
        raise FieldErrors({"as_of": [str(T("日期格式为 YYYY-MM-DD", "The date is YYYY-MM-DD"))]}) from None
    return {"from": first, "to": last, "estate": estate, "as_of": as_of}


def _rate(collected: Decimal, billed: Decimal) -> float | None:
    if not billed:
        return None
    return float((collected / billed).quantize(Decimal("0.0001")))


def collection_figures(session, first: str, last: str, estate_id: int | None = None) -> dict:
    """Billed (amount + unwaived late fee) and collected (paid) per month, estate and item, from
    one GROUP BY; the three views are sums of its rows."""
    billed = Bill.amount + Bill.late_fee - Bill.late_fee_waived
    q = (
        select(
            Bill.period,
            Bill.estate_id,
            Bill.item_id,
            func.sum(billed).label("billed"),
            func.sum(Bill.paid_amount).label("collected"),
        )
        .where(Bill.status != "void", Bill.period >= first, Bill.period <= last)
        .group_by(Bill.period, Bill.estate_id, Bill.item_id)
    )
    if estate_id is not None:
        q = q.where(estate_condition(Bill.estate_id, estate_id))
    rows = session.execute(q).all()
    estates = dict(session.execute(select(Estate.id, Estate.name).where(Estate.id.in_({r.estate_id for r in rows}))).all())
    items = dict(session.execute(select(FeeItem.id, FeeItem.name).where(FeeItem.id.in_({r.item_id for r in rows}))).all())

    def roll(key_of, label_of):
        acc: dict = {}
        for r in rows:
            k = key_of(r)
            a = acc.setdefault(k, {"key": k, "label": label_of(k), "billed": Decimal(0), "collected": Decimal(0)})
            a["billed"] += Decimal(r.billed)
            a["collected"] += Decimal(r.collected)
        out = sorted(acc.values(), key=lambda a: str(a["label"]))
        for a in out:
            a["outstanding"] = a["billed"] - a["collected"]
            a["rate"] = _rate(a["collected"], a["billed"])
        return out

    total_billed = sum((Decimal(r.billed) for r in rows), Decimal(0))
    total_collected = sum((Decimal(r.collected) for r in rows), Decimal(0))
    return {
        "from": first,
        "to": last,
        "estate": estate_id if isinstance(estate_id, int) else None,
        "billed": total_billed,
        "collected": total_collected,
        "rate": _rate(total_collected, total_billed),
        "by_month": sorted(roll(lambda r: r.period, lambda k: k), key=lambda a: a["key"]),
        "by_estate": roll(lambda r: r.estate_id, lambda k: estates.get(k, k)),
        "by_item": roll(lambda r: r.item_id, lambda k: items.get(k, k)),
    }


def income_figures(session, first: str, last: str, estate_id: int | None = None) -> dict:
    """Money received (valid payments) in the months' local dates, by method, and by fee item x
    method from the allocations; what no bill took yet is prepaid (预收)."""
    tz = _tz()
    start = dt.datetime.combine(month_bounds(first)[0], dt.time(0), tzinfo=tz)
    end = dt.datetime.combine(month_bounds(last)[1], dt.time(0), tzinfo=tz)
    where = [Payment.status == "valid", Payment.paid_at >= start, Payment.paid_at < end]
    if estate_id is not None:
        where.append(estate_condition(Payment.estate_id, estate_id))
    by_method = {
        m: (Decimal(total), n)
        for m, total, n in session.execute(
            select(Payment.method, func.sum(Payment.amount), func.count()).where(*where).group_by(Payment.method)
        ).all()
    }
    cells = session.execute(
        select(Bill.item_id, Payment.method, func.sum(PaymentAllocation.amount))
        .join(Payment, Payment.id == PaymentAllocation.payment_id)
        .join(Bill, Bill.id == PaymentAllocation.bill_id)
        .where(*where, PaymentAllocation.reversed_at.is_(None))
        .group_by(Bill.item_id, Payment.method)
    ).all()
    items = dict(session.execute(select(FeeItem.id, FeeItem.name).where(FeeItem.id.in_({c[0] for c in cells}))).all())
    methods = list(PAYMENT_METHODS)
    table: dict = {}
    for item_id, method, total in cells:
        row = table.setdefault(item_id, {"label": items.get(item_id, item_id), **{m: Decimal(0) for m in methods}})
        row[method] = row.get(method, Decimal(0)) + Decimal(total)
    rows = sorted(table.values(), key=lambda r: str(r["label"]))
    prepaid = {"label": str(T("预收款（未冲抵）", "Prepaid (not yet allocated)")), **{m: Decimal(0) for m in methods}}
    for m in methods:
        prepaid[m] = by_method.get(m, (Decimal(0), 0))[0] - sum((r[m] for r in rows), Decimal(0))
    rows.append(prepaid)
    for r in rows:
        r["total"] = sum((r[m] for m in methods), Decimal(0))
    none = (Decimal(0), 0)
    return {
        "from": first,
        "to": last,
        "methods": [{"method": m, "label": str(PAYMENT_METHODS[m])} for m in methods],
        "by_method": [
            {
                "method": m,
                "label": str(PAYMENT_METHODS[m]),
                "amount": by_method.get(m, none)[0],
                "payments": by_method.get(m, none)[1],
            }
            for m in methods
        ],
        "by_item": rows,
        "total": sum((v[0] for v in by_method.values()), Decimal(0)),
    }


def report_figures(session, args: dict) -> dict:
    """The report's three parts for ``report_args``: collection, income and arrears aging."""
    return {
        "collection": collection_figures(session, args["from"], args["to"], args["estate"]),
        "income": income_figures(session, args["from"], args["to"], args["estate"]),
        "aging": arrears_summary(session, args["as_of"], estate_id=args["estate"]),
    }


def arrears_page(session, args: dict, page: int, size: int) -> tuple[list[dict], int]:
    """One page of the arrears per unit and owner (biggest first), and how many units owe."""
    rows = arrears_by_unit(session, args["as_of"], estate_id=args["estate"], limit=size, offset=page * size)
    return rows, arrears_count(session, args["as_of"], estate_id=args["estate"])


def _money(v) -> str:
    return f"¥{Decimal(v):,.2f}"


def _rate_details(rows: list[dict]) -> list[list[str]]:
    return [
        [f"{T('应收', 'Billed')} {_money(a['billed'])}", f"{T('实收', 'Collected')} {_money(a['collected'])}"]
        for a in rows
    ]


def aging_series(aging: list[dict]) -> dict:
    """The arrears aging chart: the buckets, one stacked series per estate (the table's rows)."""
    return {
        "categories": [label for _key, label, _lo, _hi in BUCKETS],
        "series": [(row["estate_name"], [row[key] for key, *_ in BUCKETS]) for row in aging],
        "title": T("欠费账龄（元）", "Arrears by age (CNY)"),
        "unit": T("元", " CNY"),
        "decimals": 2,
        "stack": True,
        "total": T("合计", "Total"),
    }


def chart_series(figures: dict) -> dict[str, dict]:
    """The report's charts as data: name -> the arguments of ``views.reports.chart``, each from
    the same rows as the table under it. Rates are in percent on an axis to 100%."""

    def pct(rate):
        return None if rate is None else round(float(rate) * 100, 2)

    col, income = figures["collection"], figures["income"]
    rate = T("收缴率", "Collection rate")
    return {
        "by_month": {
            "categories": [a["label"] for a in col["by_month"]],
            "series": [(rate, [pct(a["rate"]) for a in col["by_month"]])],
            "title": T("各月收缴率（%）", "Collection rate per month (%)"),
            "unit": "%",
            "decimals": 1,
            "axis_max": 100,
            "details": _rate_details(col["by_month"]),
        },
        "by_item": {
            "categories": [str(a["label"]) for a in col["by_item"]],
            "series": [(rate, [pct(a["rate"]) for a in col["by_item"]])],
            "title": T("各收费项目收缴率（%）", "Collection rate per item (%)"),
            "unit": "%",
            "decimals": 1,
            "axis_max": 100,
            "horizontal": True,
            "details": _rate_details(col["by_item"]),
        },
        "aging": aging_series(figures["aging"]),
        "income": {
            "categories": [m["label"] for m in income["methods"]],
            "series": [(str(r["label"]), [r[m["method"]] for m in income["methods"]]) for r in income["by_item"]],
            "title": T("各付款方式收入（元）", "Income by method (CNY)"),
            "unit": T("元", " CNY"),
            "decimals": 2,
            "stack": True,
            "total": T("合计", "Total"),
        },
    }


def jsonable(value):
    """Figures as JSON: money as exact strings, dates as ISO text."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, T):
        return str(value)
    return value


def _texts(*labels: T) -> list[str]:
    return [str(label) for label in labels]


def report_workbook(session, args: dict, with_units: bool) -> bytes:
    """The fee report as an .xlsx file (``report_sheets``), user text kept as text."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    from models.xlsx import append_row, workbook_bytes

    wb = Workbook()
    wb.remove(wb.active)
    for title, header, rows in report_sheets(session, args, with_units):
        ws = wb.create_sheet(title=title[:31])
        append_row(ws, header)
        for cell in ws[1]:
            cell.font = Font(bold=True)
        for row in rows:
            append_row(ws, [float(v) if isinstance(v, Decimal) else v for v in row])
    return workbook_bytes(wb)


def report_sheets(session, args: dict, with_units: bool) -> list[tuple[str, list[str], list[list]]]:
    """The report workbook's sheets: (title, header, rows). The arrears per unit and owner only
    ``with_units`` (those who may read bills)."""
    col = collection_figures(session, args["from"], args["to"], args["estate"])
    income = income_figures(session, args["from"], args["to"], args["estate"])
    head = _texts(T("项目", "Key"), T("应收", "Billed"), T("实收", "Collected"), T("欠收", "Outstanding"))
    head.append(str(T("收缴率%", "Rate %")))

    def rows_of(block):
        def percent(rate):
            return None if rate is None else round(rate * 100, 2)

        return [[str(a["label"]), a["billed"], a["collected"], a["outstanding"], percent(a["rate"])] for a in block]

    buckets = [str(label) for _, label, _, _ in BUCKETS]
    keys = [k for k, _, _, _ in BUCKETS]
    total, disputed = _texts(T("合计", "Total"), T("其中争议", "Disputed"))
    sheets = [
        (str(T("按月收缴率", "By month")), head, rows_of(col["by_month"])),
        (str(T("按小区收缴率", "By estate")), head, rows_of(col["by_estate"])),
        (str(T("按项目收缴率", "By item")), head, rows_of(col["by_item"])),
        (
            str(T("收入", "Income")),
            [str(T("收费项目", "Item")), *[m["label"] for m in income["methods"]], total],
            [[str(r["label"]), *[r[m["method"]] for m in income["methods"]], r["total"]] for r in income["by_item"]],
        ),
        (
            str(T("欠费账龄（小区）", "Aging by estate")),
            [*_texts(T("小区", "Estate"), T("户数", "Units")), *buckets, total, disputed],
            [
                [r["estate_name"], r["units"], *[r[k] for k in keys], r["total"], r["disputed"]]
                for r in arrears_summary(session, args["as_of"], estate_id=args["estate"])
            ],
        ),
    ]
    if with_units:
        units = arrears_by_unit(session, args["as_of"], estate_id=args["estate"], limit=200_000)
        header = _texts(T("小区", "Estate"), T("房号", "Unit"), T("业主", "Owner"), T("最早账期", "From"), T("逾期天数", "Days late"))
        sheets.append(
            (
                str(T("欠费明细", "Arrears by unit")),
                [*header, *buckets, total, disputed],
                [
                    [
                        u["estate_name"],
                        u["unit_code"],
                        u["owner_name"] or "",
                        u["first_period"],
                        u["days_past_due"],
                        *[u[k] for k in keys],
                        u["total"],
                        u["disputed"],
                    ]
                    for u in units
                ],
            )
        )
    return sheets
