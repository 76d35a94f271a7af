"""The reports' charts, on the server (issue 12, "Forms that help"): every report page, for every
role that reads it, declares its charts as ``<div class="desk-chart" data-chart=...>`` whose data
are the report's own figures (the same the API answers and the table under the chart shows), from
an axis at 0 (rates to 100%, scores to 5); it loads only scripts of the product itself, with the
page's CSP nonce, and names no other host anywhere; the vendored Apache ECharts and charts.js are
served with a JavaScript type. The drawing itself (hover, proportions, print) is
tests/browser/test_charts.py.

On the shared scene (tests/scene.py): help requests, bills (one overdue), payments, a charged
paid service in 2031, a renovation at work with an open violation.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from decimal import Decimal
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest

from tests import conftest as cf

ROLES = cf.ROLES
SCRIPT_TYPES = {"application/javascript", "text/javascript"}
ECHARTS = "/static/desk/vendor/echarts/echarts.min.js"
CHARTS_JS = "/static/desk/charts.js"


@pytest.fixture(scope="module")
def app(scene_app):
    return scene_app


@pytest.fixture(scope="module")
def tokens(scene_tokens):
    return scene_tokens


class Page(HTMLParser):
    """The charts (their data) and the scripts (src, nonce) of a page."""

    def __init__(self, html: str):
        super().__init__()
        self.charts: dict[str, dict] = {}
        self.scripts: list[dict] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "div" and "desk-chart" in (a.get("class") or "").split():
            spec = json.loads(a["data-chart"])
            assert spec["title"] not in self.charts, spec["title"]
            assert a.get("aria-label") == spec["title"]
            self.charts[spec["title"]] = spec
        if tag == "script":
            self.scripts.append(a)


def _today() -> dt.date:
    from models.fees import local_today

    return local_today()


def report_urls(scene) -> dict[str, str]:
    today, estate = _today(), scene["estate"]
    return {
        "desk": f"/ticket/report?from={today.replace(day=1)}&to={today}&estate={estate}",
        "fees": f"/collection_report/report?from={today.year - 1}-01&to={today:%Y-%m}&estate={estate}&as_of={today}",
        "arrears": f"/collection_report/arrears?as_of={today}&estate={estate}",
        "services": "/service_order/report?from=2031-01-01&to=2031-12-31",
        "renovations": "/renovation/report",
    }


# Who reads which report (app/roles.py): everyone reads them; the arrears per unit are owners'
# financial data, for those who read bills (not the Committee).
READERS = {
    "desk": ROLES,
    "fees": ROLES,
    "arrears": ("Admin", "Manager", "Supervisor", "Staff"),
    "services": ROLES,
    "renovations": ROLES,
}


def _pct(rate):
    return None if rate is None else round(rate * 100, 2)


def _num(v):
    return None if v is None else float(Decimal(str(v)))


def _series(spec: dict) -> dict[str, list]:
    return {s["name"]: s["data"] for s in spec["series"]}


# --- what each report's charts must hold: its figures, as the API answers them ------------------
def expect_desk(api, url) -> dict[str, dict]:
    fig = api.get("/api/v1" + url).json
    days = fig["by_day"]
    short = len({d["date"][:4] for d in days}) == 1
    kinds = fig["by_kind"]
    return {
        "各类求助数量": {
            "categories": [k["label"] for k in kinds],
            "series": {"求助数量": [k["count"] for k in kinds]},
            "max": None,
        },
        "响应时限达标率（%）": {
            "categories": [c["label"] for c in fig["compliance"]],
            "series": {
                "答复达标率": [_pct(c["reply"]["rate"]) for c in fig["compliance"]],
                "解决达标率": [_pct(c["resolve"]["rate"]) for c in fig["compliance"]],
            },
            "max": 100,
        },
        "回访满意度分布": {
            "categories": [f"{s} 分" for s in range(1, 6)],
            "series": {"回访数": [fig["satisfaction"]["distribution"][str(s)] for s in range(1, 6)]},
            "max": None,
        },
        "每日求助数量": {
            "categories": [d["date"][5:] if short else d["date"] for d in days],
            "series": {k["label"]: [d["by_kind"][k["kind"]] for d in days] for k in kinds},
            "max": None,
        },
    }


def _aging(aging: list[dict]) -> dict:
    from models.arrears import BUCKETS

    return {
        "categories": [str(label) for _k, label, _lo, _hi in BUCKETS],
        "series": {row["estate_name"]: [_num(row[key]) for key, *_ in BUCKETS] for row in aging},
        "max": None,
    }


def expect_fees(api, url) -> dict[str, dict]:
    fig = api.get("/api/v1" + url).json
    col, income = fig["collection"], fig["income"]
    return {
        "各月收缴率（%）": {
            "categories": [a["label"] for a in col["by_month"]],
            "series": {"收缴率": [_pct(a["rate"]) for a in col["by_month"]]},
            "max": 100,
        },
        "各收费项目收缴率（%）": {
            "categories": [a["label"] for a in col["by_item"]],
            "series": {"收缴率": [_pct(a["rate"]) for a in col["by_item"]]},
            "max": 100,
        },
        "欠费账龄（元）": _aging(fig["aging"]),
        "各付款方式收入（元）": {
            "categories": [m["label"] for m in income["methods"]],
            "series": {r["label"]: [_num(r[m["method"]]) for m in income["methods"]] for r in income["by_item"]},
            "max": None,
        },
    }


def expect_arrears(api, url) -> dict[str, dict]:
    as_of, estate = re.search(r"as_of=([\d-]+)&estate=(\d+)", url).groups()
    fig = api.get(f"/api/v1/collection_report/report?as_of={as_of}&estate={estate}").json
    return {"欠费账龄（元）": _aging(fig["aging"])}


def expect_services(api, url) -> dict[str, dict]:
    fig = api.get("/api/v1" + url).json
    assert len(fig["by_item"]) <= 20
    return {
        "各服务项目收入（元）": {
            "categories": [x["item"] for x in fig["by_item"]],
            "series": {"收入": [_num(x["revenue"]) for x in fig["by_item"]]},
            "max": None,
        },
        "每月收入（元）": {
            "categories": [m["month"] for m in fig["by_month"]],
            "series": {"收入": [_num(m["revenue"]) for m in fig["by_month"]]},
            "max": None,
        },
        "员工服务满意度（平均分，满分 5）": {
            "categories": [s["staff"] for s in fig["by_staff"]],
            "series": {"满意度": [s["satisfaction"] for s in fig["by_staff"]]},
            "max": 5,
        },
    }


def expect_renovations(api, url) -> dict[str, dict]:
    fig = api.get("/api/v1" + url).json
    return {
        "装修管理概况": {
            "categories": ["施工中", "超期未验收", "有未关闭违规", "整改超期"],
            "series": {"数量": [fig["active"], fig["overdue"], fig["open_violations"], fig["late_rectifications"]]},
            "max": None,
        }
    }


EXPECT = {
    "desk": expect_desk,
    "fees": expect_fees,
    "arrears": expect_arrears,
    "services": expect_services,
    "renovations": expect_renovations,
}


def _absolute_urls(html: str) -> list[str]:
    return re.findall(r"""(?:https?:)?//[^\s"'<>)]+""", html.replace("&#34;", '"'))


def check_page(resp, report: str) -> Page:
    """A report page that declares charts and loads only the product's own scripts."""
    assert resp.status_code == 200, (report, resp.status_code, resp.get_data(as_text=True)[:500])
    html = resp.get_data(as_text=True)
    page = Page(html)
    # No other host anywhere: no absolute URL (http://, https:// or protocol-relative //host)
    # except the test client's own host.
    others = [u for u in _absolute_urls(html) if urlsplit(u if ":" in u.split("/")[0] else "http:" + u).hostname not in ("localhost",)]
    assert not others, (report, others)
    # Every script is the product's own file (or inline JSON-free code), carries the nonce the
    # CSP header names, and the charts' two are there, ECharts before charts.js.
    csp = resp.headers["Content-Security-Policy"]
    nonce = re.search(r"'nonce-([^']+)'", csp).group(1)
    assert "script-src 'self'" in csp and "unsafe-eval" not in csp
    srcs = [s.get("src") for s in page.scripts]
    assert all(s.get("nonce") == nonce for s in page.scripts), (report, page.scripts)
    assert all(src is None or src.startswith("/static/") for src in srcs), (report, srcs)
    assert ECHARTS in srcs and CHARTS_JS in srcs and srcs.index(ECHARTS) < srcs.index(CHARTS_JS), srcs
    return page


@pytest.mark.parametrize("report", list(READERS))
def test_every_report_declares_its_figures_as_charts_for_each_reader(web, api, scene, report):
    url = report_urls(scene)[report]
    expected = EXPECT[report](api("Admin"), url)
    for role in ROLES:
        resp = web(role).get(url)
        if role not in READERS[report]:
            assert resp.status_code == 403, (report, role)
            continue
        page = check_page(resp, f"{report} as {role}")
        assert set(page.charts) == set(expected), (report, role, sorted(page.charts))
        for title, want in expected.items():
            spec = page.charts[title]
            assert spec["type"] == "bar" and spec["max"] == want["max"], (report, title, spec)
            assert spec["categories"] == want["categories"], (report, title, spec["categories"])
            assert _series(spec) == want["series"], (report, role, title, spec["series"], want["series"])
            values = [v for s in spec["series"] for v in s["data"] if v is not None]
            assert all(v >= 0 for v in values), (report, title)


def test_the_scene_gives_the_charts_something_to_draw(web, api, scene):
    """Not a page of empty charts: the scene's figures reach every report's charts."""
    urls = report_urls(scene)
    manager = web("Manager")
    drawn = {}
    for report, url in urls.items():
        page = Page(manager.get(url).get_data(as_text=True))
        drawn[report] = sum(1 for spec in page.charts.values() for s in spec["series"] for v in s["data"] if v)
    assert all(drawn.values()), drawn


def test_a_rate_is_in_percent_of_an_axis_to_100_and_the_table_says_the_same(web, api, scene):
    url = report_urls(scene)["fees"]
    html = web("Committee").get(url).get_data(as_text=True)
    spec = Page(html).charts["各月收缴率（%）"]
    rates = api("Committee").get("/api/v1" + url).json["collection"]["by_month"]
    assert rates and spec["max"] == 100 and spec["unit"] == "%" and spec["decimals"] == 1
    for a, value in zip(rates, spec["series"][0]["data"], strict=True):
        assert value == _pct(a["rate"])
        # the table under the chart: the same rate, as the chart's tooltip writes it
        shown = "—" if value is None else f"{value:.1f}%"
        assert re.search(rf"<td>{a['label']}</td>.*?<td class=\"num\">{re.escape(shown)}</td></tr>", html, re.S)
    # and the tooltip's own lines: billed and collected of that month
    assert spec["details"][0][0].startswith("应收 ¥")


def test_charts_speak_the_users_language(web, scene):
    client = web("Manager")
    client.get("/lang/en")
    page = Page(client.get(report_urls(scene)["desk"]).get_data(as_text=True))
    assert "Requests per class" in page.charts and "Response-time compliance (%)" in page.charts
    spec = page.charts["Requests per class"]
    assert spec["categories"][1] == "Repair" and spec["series"][0]["name"] == "Requests" and spec["empty"] == "No data"
    client.get("/lang/zh")


def test_the_vendored_echarts_and_charts_js_are_served_by_the_product(app):
    from pathlib import Path

    client = app.test_client()
    echarts = client.get(ECHARTS)
    assert echarts.status_code == 200 and echarts.mimetype in SCRIPT_TYPES
    body = echarts.get_data()
    assert len(body) > 500_000 and b"Apache Software Foundation" in body[:2000] and b"echarts" in body[:20000]
    charts = client.get(CHARTS_JS)
    assert charts.status_code == 200 and charts.mimetype in SCRIPT_TYPES and b"echarts.init" in charts.get_data()
    css = client.get("/static/desk/charts.css")
    assert css.status_code == 200 and css.mimetype == "text/css"
    # The version named in the vendor README is the one served (and its licences ship beside it).
    vendor = Path(app.static_folder) / "desk" / "vendor" / "echarts"
    version = re.search(r"^VERSION: (\S+)$", (vendor / "README.md").read_text(), re.M).group(1)
    assert f'version="{version}"'.encode() in body
    for name in ("LICENSE", "NOTICE", "LICENSE-zrender", "LICENSE-d3"):
        assert (vendor / name).is_file(), name


def test_the_package_ships_the_vendored_files():
    """pyproject's package data takes every vendored file (setuptools expands the patterns as a
    recursive glob under the package)."""
    import glob
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    patterns = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["app"]
    shipped = {Path(f).resolve() for pattern in patterns for f in glob.glob(str(root / "app" / pattern), recursive=True)}
    vendored = [p.resolve() for p in (root / "app/static/desk/vendor").rglob("*") if p.is_file()]
    assert len(vendored) >= 6 and not [p for p in vendored if p not in shipped]
    assert (root / "app/static/desk/charts.js").resolve() in shipped
