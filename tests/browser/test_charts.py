"""The reports' charts in a real browser (Debian's Chromium through Playwright; live server from
tests/browser/conftest.py): drawn by the product's own copy of Apache ECharts, scaled to their
range, with the values on hover, and nothing fetched from another host.

One estate of its own with figures chosen for the point: March 2029 billed 1,000.00 and 4.00 of it
collected (a 0.4% collection rate, which must be drawn as a sliver on an axis to 100%, not a full
bar), April 2029 billed 200.00 and 150.00 collected (75%); three help requests today; a paid
service charged and rated; a renovation at work. Each report is opened as the Manager (the one
role that reads all five), waited for until its charts are drawn, and shot full-page to
tests/browser/shots/charts-*.png.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

import pytest

pytestmark = pytest.mark.browser

SHOTS = Path(__file__).resolve().parent / "shots"


@pytest.fixture()
def figures(app, api, make_unit) -> dict:
    """The estate's bills, payments, requests, a service order and a renovation (see above)."""
    from flask_appbuilder.security.sqla.models import User
    from sqlalchemy import select

    from app.extensions import db
    from app.seed import renovation_fee_items, service_catalog
    from models.archives import Unit
    from models.base import acting_as
    from models.fees import Bill, FeeItem
    from models.payments import record_payment
    from models.services import ServiceItem
    from tests.test_renovation import application, pay_deposit

    ids = make_unit()
    with app.app_context():
        users = dict(db.session.execute(select(User.username, User.id)).all())
        with acting_as(users["admin"]):
            item = FeeItem(code=f"CH{ids['unit']}", name="物业服务费", kind="property_service")
            db.session.add(item)
            db.session.flush()
            bills = {}
            for period, amount in (("2029-03", "1000.00"), ("2029-04", "200.00")):
                due = dt.date.fromisoformat(f"{period}-15")
                bill = Bill(
                    estate_id=ids["estate"],
                    unit_id=ids["unit"],
                    item_id=item.id,
                    period=period,
                    source=f"charts:{ids['unit']}:{period}",
                    quantity=Decimal(1),
                    unit_price=Decimal(amount),
                    amount=Decimal(amount),
                    issued_on=due - dt.timedelta(days=15),
                    due_date=due,
                )
                db.session.add(bill)
                db.session.flush()
                bills[period] = bill.id
            unit = db.session.get(Unit, ids["unit"])
            for period, amount, method in (("2029-03", "4.00", "cash"), ("2029-04", "150.00", "wechat")):
                paid_at = dt.datetime.fromisoformat(f"{period}-20T02:00:00+00:00")
                record_payment(db.session, unit, Decimal(amount), method, bill_ids=[bills[period]], paid_at=paid_at)
            db.session.commit()
            renovation_fee_items()
            service_catalog()
            tap = db.session.execute(select(ServiceItem.id).where(ServiceItem.code == "R-TAP")).scalar_one()
        db.session.remove()

    staff, manager = api("Staff"), api("Manager")
    for kind, extra in (("repair", {"responsibility": "common_area"}), ("complaint", {}), ("consultation", {})):
        body = {"kind": kind, "unit": ids["unit"], "description": f"图表测试{kind}", **extra}
        assert staff.post("/api/v1/ticket/", json=body).status_code == 201

    # A paid service in 2032 at a slot of its own (the technician is never booked twice).
    start = dt.datetime(2032, 3, 1, 1, tzinfo=dt.UTC) + dt.timedelta(hours=3 * random.randrange(2000))
    made = staff.post(
        "/api/v1/service_order/",
        json={
            "item": tap,
            "unit": ids["unit"],
            "requested_start": start.isoformat(),
            "requested_end": (start + dt.timedelta(hours=2)).isoformat(),
        },
    )
    assert made.status_code == 201, made.get_data(as_text=True)
    version = made.json["version"]
    for action, body in (
        ("schedule", {"assignee": users["staff"]}),
        ("start", {}),
        ("done", {"quantity": "1", "materials_amount": "12.34"}),
        ("charge", {"charge_mode": "bill"}),
        ("rate", {"satisfaction": 4}),
    ):
        resp = staff.post(f"/api/v1/service_order/{made.json['id']}/{action}", json={"version": version, **body})
        assert resp.status_code == 200, (action, resp.get_data(as_text=True))
        version = resp.json["version"]

    reno = staff.post("/api/v1/renovation/", json=application(ids["unit"]))
    assert reno.status_code == 201, reno.get_data(as_text=True)
    approved = manager.post(f"/api/v1/renovation/{reno.json['id']}/approve", json={"version": reno.json["version"]})
    assert approved.status_code == 200, approved.get_data(as_text=True)
    pay_deposit(app, reno.json["id"])
    started = staff.post(f"/api/v1/renovation/{reno.json['id']}/start", json={"version": approved.json["version"]})
    assert started.status_code == 200, started.get_data(as_text=True)
    return ids


def reports(ids: dict) -> dict[str, str]:
    estate = ids["estate"]
    return {
        "desk": f"/ticket/report?estate={estate}",
        "fees": f"/collection_report/report?from=2029-03&to=2029-04&estate={estate}&as_of=2029-12-31",
        "arrears": f"/collection_report/arrears?as_of=2029-12-31&estate={estate}",
        "services": "/service_order/report?from=2032-01-01&to=2032-12-31",
        "renovations": "/renovation/report",
    }


def watch(page, base: str) -> dict:
    """Every request the page makes, and every console error (a CSP refusal is one)."""
    seen = {"requests": [], "errors": []}
    page.on("request", lambda r: seen["requests"].append(r.url))
    page.on("console", lambda m: seen["errors"].append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: seen["errors"].append(str(e)))
    return seen


def open_report(page, url: str) -> int:
    """Open a report and wait until ECharts has drawn each of its charts; returns their count."""
    resp = page.goto(url)
    assert resp is not None and resp.status == 200, url
    count = page.locator(".desk-chart").count()
    assert count >= 1, url
    page.wait_for_function(
        "() => [...document.querySelectorAll('.desk-chart')].every(el => el.dataset.chartReady === '1')"
    )
    return count


CHART_STATE = """(title) => {
  const el = [...document.querySelectorAll('.desk-chart')].find(
    e => JSON.parse(e.dataset.chart).title === title);
  const chart = echarts.getInstanceByDom(el);
  const model = chart.getModel();
  const axis = model.getComponent('yAxis', 0).axis;
  const grid = model.getComponent('grid', 0).coordinateSystem.getRect();
  const data = model.getSeriesByIndex(0).getData();
  const bars = [];
  for (let i = 0; i < data.count(); i++) {
    const l = data.getItemLayout(i);
    bars.push({value: data.get(data.mapDimension('y'), i), height: Math.abs(l.height), x: l.x, y: l.y, width: l.width});
  }
  const box = el.getBoundingClientRect();
  return {extent: axis.scale.getExtent(), option: chart.getOption().yAxis[0], grid: {height: grid.height},
          bars: bars, box: {x: box.x + window.scrollX, y: box.y + window.scrollY},
          svg: el.querySelectorAll('svg').length};
}"""


def test_a_small_rate_is_a_sliver_and_hovering_shows_the_values(page, login, live_server, figures):
    seen = watch(page, live_server.url)
    login(page, "Manager")
    open_report(page, reports(figures)["fees"])

    state = page.evaluate(CHART_STATE, "各月收缴率（%）")
    assert state["svg"] == 1  # drawn by ECharts, as SVG
    # The axis is not cut: from 0 to 100%, whatever the data.
    assert state["option"]["min"] == 0 and state["option"]["max"] == 100
    assert state["extent"] == [0, 100]
    march, april = state["bars"]
    assert (march["value"], april["value"]) == (0.4, 75.0)
    # Bars in proportion: 75% is three quarters of the plot, 0.4% a sliver of it.
    assert april["height"] == pytest.approx(state["grid"]["height"] * 0.75, rel=0.02)
    assert march["height"] == pytest.approx(state["grid"]["height"] * 0.004, abs=0.6)
    assert march["height"] < 3 and march["height"] / april["height"] == pytest.approx(0.4 / 75, abs=0.01)

    # Hovering a bar shows its value and the figures behind it.
    tip = page.locator(".desk-chart-tip").first
    for bar, value, billed in ((april, "75.0%", "¥200.00"), (march, "0.4%", "¥1,000.00")):
        x = state["box"]["x"] + bar["x"] + bar["width"] / 2
        y = state["box"]["y"] + bar["y"] - 2 * max(bar["height"], 1) / 3
        page.mouse.move(x - 40, y - 40)
        page.mouse.move(x, y, steps=4)
        tip.wait_for(state="visible")
        page.wait_for_function(
            "(v) => [...document.querySelectorAll('.desk-chart-tip')].some(t => t.offsetParent && t.textContent.includes(v))",
            arg=value,
        )
        text = tip.inner_text()
        assert value in text and billed in text and "收缴率" in text, text
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "charts-fees-hover.png"))

    # The table under the chart holds the same figures.
    rows = page.locator(".desk-fee-report table").first.locator("tbody tr")
    assert rows.nth(0).inner_text().split("\t")[-1].strip() == "0.4%"
    assert rows.nth(1).inner_text().split("\t")[-1].strip() == "75.0%"

    own = urlsplit(live_server.url).netloc
    assert seen["requests"] and all(urlsplit(u).netloc == own for u in seen["requests"] if u.startswith("http"))
    assert any(u.endswith("/static/desk/vendor/echarts/echarts.min.js") for u in seen["requests"])
    assert not seen["errors"], seen["errors"]


PAINTED = """() => [...document.querySelectorAll('.desk-chart svg')].map(svg => {
  const box = svg.querySelector(':scope > g').getBBox();
  return [Number(svg.getAttribute('width')), Math.round(box.x + box.width), (svg.getAttribute('viewBox') || '').split(' ').slice(0, 3).join(' ')];
})"""


def test_every_report_draws_its_charts_and_prints(page, login, live_server, figures):
    seen = watch(page, live_server.url)
    login(page, "Manager")
    SHOTS.mkdir(parents=True, exist_ok=True)
    drawn = {}
    for name, url in reports(figures).items():
        drawn[name] = open_report(page, url)
        # Every chart that has data is an ECharts SVG, its value axis from 0.
        for spec_json, svgs in page.evaluate(
            "() => [...document.querySelectorAll('.desk-chart')].map(el => [el.dataset.chart, el.querySelectorAll('svg').length])"
        ):
            spec = json.loads(spec_json)
            if spec["categories"] and spec["series"]:
                assert svgs == 1, (name, spec["title"])
                state = page.evaluate(
                    """(title) => {
                      const el = [...document.querySelectorAll('.desk-chart')].find(e => JSON.parse(e.dataset.chart).title === title);
                      const m = echarts.getInstanceByDom(el).getModel();
                      const axis = m.getComponent(JSON.parse(el.dataset.chart).horizontal ? 'xAxis' : 'yAxis', 0).axis;
                      return axis.scale.getExtent();
                    }""",
                    spec["title"],
                )
                assert state[0] == 0, (name, spec["title"], state)
                values = [v for s in spec["series"] for v in s["data"] if v is not None]
                assert state[1] >= max(values, default=0), (name, spec["title"], state)
                if spec["max"] is not None:
                    assert state[1] == max([spec["max"], *values]), (name, spec["title"], state)
        page.screenshot(path=str(SHOTS / f"charts-{name}.png"), full_page=True)

        # Printed: before the page is laid out on paper (the 'beforeprint' event, after which a
        # page being printed gets no animation frame), each chart is drawn again at most 680 px
        # wide (A4 less its margins is about 700 px) and painted at once: nothing is cut off on
        # the right; its viewBox lets the print styles scale it down further.
        printed = page.evaluate(f"() => {{ window.dispatchEvent(new Event('beforeprint')); return ({PAINTED})(); }}")
        assert printed and all(w <= 680 and right <= w + 1 for w, right, _vb in printed), (name, printed)
        assert all(vb == f"0 0 {w}" for w, _right, vb in printed), (name, printed)
        page.evaluate("() => window.dispatchEvent(new Event('afterprint'))")
        page.wait_for_function(f"() => ({PAINTED})().every(([w, right]) => w > 680 && right <= w + 1)")
        # And as Chromium prints it (look at the PDF: no chart cut off, no tooltip).
        page.pdf(path=str(SHOTS / f"charts-{name}.pdf"), format="A4")

    assert drawn == {"desk": 4, "fees": 4, "arrears": 1, "services": 3, "renovations": 1}
    own = urlsplit(live_server.url).netloc
    assert all(urlsplit(u).netloc == own for u in seen["requests"] if u.startswith("http")), seen["requests"]
    assert not seen["errors"], seen["errors"]
