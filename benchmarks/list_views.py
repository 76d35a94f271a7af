"""List cost at scale: the desk's units and residents lists against stock Flask-AppBuilder.

    python -m benchmarks.list_views [--units 100000] [--per-estate 5000] [--repeat 30]
                                    [--database-url URL] [--drop]

Builds (or reuses) a PostgreSQL database with ``--units`` units in estates of ``--per-estate``
units (20 estates of 5,000 by default) and two residents per unit (``app.seed.generate``),
registers a stock FAB ``ModelRestApi`` (``SQLAInterface``, the same list
columns) as ``stock_unit`` / ``stock_resident`` and a stock ``ModelView`` for each on the same app,
then times list requests through Flask's test client (in process: server work only, no network)
and counts SQL statements per request with a ``before_cursor_execute`` listener.

Prints p50 / p95 in milliseconds and statements per request for the first page, a deep page and a
filtered page, API and screen, ours and stock side by side, as a company-level Admin; then the
same cases as a Staff member who works for one estate (the estate filter on: every list joins
to its estate), with a check that each page holds only that estate's rows. It never fails on time.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import quote

import psycopg

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PG_SERVER = os.environ.get("DESK_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")
DEFAULT_DB = "desk_bench_lists"
ADMIN = ("bench_admin", "Bench-Admin-Pass-12")
SCOPED = ("bench_staff", "Bench-Staff-Pass-12")  # Staff of one estate (the first)


def _plain(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def ensure_database(name: str) -> str:
    with psycopg.connect(_plain(PG_SERVER) + "/postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
    return f"{PG_SERVER}/{name}"


def drop_database(name: str) -> None:
    with psycopg.connect(_plain(PG_SERVER) + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- the app, with stock FAB views registered beside ours ---------------------------------------
def stock_views(appbuilder):
    """A plain ModelRestApi and ModelView per list, over the same tables and columns."""
    from flask_appbuilder import ModelRestApi, ModelView
    from flask_appbuilder.models.sqla.interface import SQLAInterface

    from models.archives import Resident, Unit
    from views.registry import REGISTRY

    made = {}
    for name, model in (("unit", Unit), ("resident", Resident)):
        res = REGISTRY[name]
        list_columns = ["id", *[c for c in res.list_columns if c != "id"], "version"]
        api = type(
            f"Stock{model.__name__}Api",
            (ModelRestApi,),
            dict(
                resource_name=f"stock_{name}",
                class_permission_name=f"stock_{name}",
                datamodel=SQLAInterface(model),
                list_columns=list_columns,
                search_columns=list(res.search_columns),
                order_columns=[c for c in res.list_columns if "." not in c] + ["id"],
                base_order=res.order,
                page_size=res.page_size,
            ),
        )
        view = type(
            f"Stock{model.__name__}View",
            (ModelView,),
            dict(
                route_base=f"/stock_{name}",
                class_permission_name=f"stock_{name}",
                datamodel=SQLAInterface(model),
                list_columns=list(res.list_columns),
                search_columns=list(res.search_columns),
                base_order=res.order,
                page_size=res.page_size,
            ),
        )
        appbuilder.add_api(api)
        appbuilder.add_view_no_menu(view)
        made[name] = view.__name__
    return made


def build_app(database_url: str, units: int, per_estate: int):
    from flask_migrate import upgrade
    from sqlalchemy import func, select

    from app import create_app
    from app.extensions import db
    from app.factory import sync_roles
    from app.seed import ensure_user, generate
    from models.archives import Estate, Unit

    config = {
        "SQLALCHEMY_DATABASE_URI": database_url,
        "SECRET_KEY": secrets.token_urlsafe(48),
        "WTF_CSRF_ENABLED": False,
        "SESSION_COOKIE_SECURE": False,
        "RATELIMIT_ENABLED": False,
        "AUTH_RATE_LIMITED": False,
        "FAB_PASSWORD_COMPLEXITY_ENABLED": False,
        "SYNC_ROLES_ON_START": False,
        "CELERY_TASK_ALWAYS_EAGER": True,
    }
    app = create_app(config)
    with app.app_context():
        upgrade()
        sync_roles(app.appbuilder)
        have = db.session.execute(select(func.count()).select_from(Unit)).scalar()
        if have < units:
            t0 = time.perf_counter()
            counts = generate(units=units - have, per_estate=per_estate)
            print(f"generated {counts} in {time.perf_counter() - t0:.1f} s", flush=True)
        else:
            print(f"database already has {have} units: generation skipped", flush=True)
        ensure_user(app.appbuilder.sm, ADMIN[0], "Admin", "Bench", "Admin", ADMIN[1])
        first_estate = db.session.execute(select(func.min(Estate.id))).scalar()
        ensure_user(app.appbuilder.sm, SCOPED[0], "Staff", "Bench", "Staff", SCOPED[1], estates=[first_estate])
        db.session.commit()
        if db.engine.dialect.name == "postgresql":
            # What autovacuum does to a table that has just been filled (it may be off here): sets
            # the visibility map, without which index-only scans read every heap page.
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM (ANALYZE) unit, resident, building, owner, ownership")
        stock = stock_views(app.appbuilder)
        db.session.remove()
    return app, stock, first_estate


# --- measuring -----------------------------------------------------------------------------------
class StatementCounter:
    def __init__(self, engine):
        from sqlalchemy import event

        self.n = 0
        self.statements: list[str] = []
        event.listen(engine, "before_cursor_execute", self._on)

    def _on(self, conn, cursor, statement, parameters, context, executemany):
        self.n += 1
        self.statements.append(statement)

    def reset(self):
        self.n = 0
        self.statements = []


class Series:
    def __init__(self, url):
        self.url = url
        self.times: list[float] = []
        self.statements = 0
        self.sql: list[str] = []
        self.resp = None

    def run(self, client, counter, headers, keep: bool) -> None:
        counter.reset()
        t0 = time.perf_counter()
        resp = client.get(self.url, headers=headers)
        elapsed = (time.perf_counter() - t0) * 1000
        if resp.status_code != 200:
            raise SystemExit(f"{self.url}: HTTP {resp.status_code}: {resp.get_data(as_text=True)[:400]}")
        if keep:
            self.times.append(elapsed)
            self.statements = max(self.statements, counter.n)
            self.sql = list(counter.statements)
            self.resp = resp

    def p50(self) -> float:
        return statistics.median(self.times)

    def p95(self) -> float:
        times = sorted(self.times)
        return times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]


def measure(client, counter, ours_url, stock_url, headers, warmup, repeat):
    """Ours and stock alternate request by request, so a change in the machine's load (it is
    shared) falls on both alike."""
    ours, stock = Series(ours_url), Series(stock_url)
    for i in range(warmup + repeat):
        ours.run(client, counter, headers, keep=i >= warmup)
        stock.run(client, counter, headers, keep=i >= warmup)
    return ours, stock


def api_url(resource: str, page: int, size: int, filters: str | None = None) -> str:
    q = f"(page:{page},page_size:{size}"
    if filters:
        q += f",filters:{filters}"
    q += ")"
    return f"/api/v1/{resource}/?q={quote(q, safe='(),:!')}"


def screen_url(base: str, view: str, page: int, size: int, flt: str | None = None) -> str:
    url = f"{base}/list/?page_{view}={page}&psize_{view}={size}"
    if flt:
        url += "&" + flt
    return url


def cases(units: int, stock_views_: dict):
    deep_units = max(0, units // 25 - 1)  # the last page of units
    deep_res = deep_units  # the same offset in residents (the middle of the table)
    unit_flt = "!((col:status,opr:eq,value:vacant))"
    res_flt = "!((col:name,opr:sw,value:王))"  # api_url quotes it
    unit_screen_flt = "_flt_3_status=vacant"
    res_screen_flt = "_flt_0_name=" + quote("王")
    out = []
    for name, deep, api_flt, scr_flt in (
        ("unit", deep_units, unit_flt, unit_screen_flt),
        ("resident", deep_res, res_flt, res_screen_flt),
    ):
        ours_view = f"{name.capitalize()}View"
        stock_view = stock_views_[name]
        for size in (25, 100):
            out.append(
                (f"{name} api first p0/{size}", api_url(name, 0, size), api_url(f"stock_{name}", 0, size), "api")
            )
        out.append(
            (
                f"{name} api deep p{deep}/25",
                api_url(name, deep, 25),
                api_url(f"stock_{name}", deep, 25),
                "api",
            )
        )
        for size in (25, 100):
            out.append(
                (
                    f"{name} api filtered p0/{size}",
                    api_url(name, 0, size, api_flt),
                    api_url(f"stock_{name}", 0, size, api_flt),
                    "api",
                )
            )
        for size in (25, 100):
            out.append(
                (
                    f"{name} screen first p0/{size}",
                    screen_url(f"/{name}", ours_view, 0, size),
                    screen_url(f"/stock_{name}", stock_view, 0, size),
                    "web",
                )
            )
        out.append(
            (
                f"{name} screen deep p{deep}/25",
                screen_url(f"/{name}", ours_view, deep, 25),
                screen_url(f"/stock_{name}", stock_view, deep, 25),
                "web",
            )
        )
        out.append(
            (
                f"{name} screen filtered p0/25",
                screen_url(f"/{name}", ours_view, 0, 25, scr_flt),
                screen_url(f"/stock_{name}", stock_view, 0, 25, scr_flt),
                "web",
            )
        )
    return out


def login(app, user):
    api_client = app.test_client()
    resp = api_client.post("/api/v1/security/login", json={"username": user[0], "password": user[1], "provider": "db"})
    if resp.status_code != 200:
        raise SystemExit(f"API login failed: {resp.status_code} {resp.get_data(as_text=True)[:300]}")
    headers = {"Authorization": f"Bearer {resp.json['access_token']}"}
    web_client = app.test_client()
    resp = web_client.post("/login/", data={"username": user[0], "password": user[1]})
    if resp.status_code not in (302, 303):
        raise SystemExit(f"screen login failed: {resp.status_code}")
    return api_client, headers, web_client


def estate_rows(app, estate_id: int) -> dict[str, set[int]]:
    """The ids of one estate's units and residents: what the scoped user may see."""
    from sqlalchemy import select

    from app.extensions import db
    from models.archives import Building, Resident, Unit

    with app.app_context():
        units = select(Unit.id).join(Building, Unit.building_id == Building.id).where(Building.estate_id == estate_id)
        out = {
            "unit": set(db.session.execute(units).scalars()),
            "resident": set(db.session.execute(select(Resident.id).where(Resident.unit_id.in_(units))).scalars()),
        }
        db.session.remove()
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--units", type=int, default=100_000)
    parser.add_argument("--per-estate", type=int, default=5_000, help="units per estate")
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--database-url", default=None, help="use this database instead of creating one")
    parser.add_argument("--drop", action="store_true", help="drop the database this created at the end")
    parser.add_argument("--show-sql", action="store_true", help="print the statements of each case once")
    args = parser.parse_args(argv)

    created = None
    url = args.database_url
    if url is None:
        created = f"{DEFAULT_DB}_{args.units}_{args.per_estate}"
        url = ensure_database(created)
    app, stock, first_estate = build_app(url, args.units, args.per_estate)

    from app.extensions import db

    with app.app_context():
        counter = StatementCounter(db.engine)
    api_client, headers, web_client = login(app, ADMIN)

    load_before = os.getloadavg()[0]
    estates = -(-args.units // args.per_estate)
    print(
        f"\nPostgreSQL, {args.units:,} units / {2 * args.units:,} residents in {estates} estates of "
        f"{args.per_estate:,} units; {args.repeat} runs per case after {args.warmup} warm-up; times in ms "
        "(Flask test client, in process); stmts = SQL statements per request\n"
    )
    print("As a company-level Admin (no estate filter), ours against stock FAB:\n")
    head = f"{'case':<34} {'ours p50':>9} {'p95':>8} {'stmts':>6} | {'stock p50':>9} {'p95':>8} {'stmts':>6} | {'stock/ours p50':>14}"
    print(head)
    print("-" * len(head))
    for label, ours_url, stock_url, kind in cases(args.units, stock):
        client, hdrs = (api_client, headers) if kind == "api" else (web_client, {})
        ours, stock_ = measure(client, counter, ours_url, stock_url, hdrs, args.warmup, args.repeat)
        if args.show_sql:
            for who, series in (("ours", ours), ("stock", stock_)):
                print(f"  -- {label} ({who}):")
                for st in series.sql:
                    print("     " + " ".join(st.split())[:3000])
        o50, o95, on, oresp = ours.p50(), ours.p95(), ours.statements, ours.resp
        s50, s95, sn, sresp = stock_.p50(), stock_.p95(), stock_.statements, stock_.resp
        extra = ""
        if kind == "api":
            ours_ids, stock_ids = oresp.json["ids"], sresp.json["ids"]
            if ours_ids != stock_ids:
                extra = "  ROWS DIFFER"
            if oresp.json.get("count_estimated"):
                extra += f"  (count ~{oresp.json['count']:,} estimated, stock {sresp.json['count']:,})"
        print(
            f"{label:<34} {o50:9.1f} {o95:8.1f} {on:6d} | {s50:9.1f} {s95:8.1f} {sn:6d} | {s50 / o50:13.1f}x{extra}",
            flush=True,
        )

    # The same lists as a Staff member of one estate: the estate filter is on.
    allowed = estate_rows(app, first_estate)
    api_client, headers, web_client = login(app, SCOPED)
    print(
        f"\nAs a Staff member of one estate ({len(allowed['unit']):,} units, {len(allowed['resident']):,} residents "
        f"of the {args.units:,} / {2 * args.units:,}): the estate filter on\n"
    )
    head = f"{'case':<34} {'p50':>9} {'p95':>8} {'stmts':>6}  rows"
    print(head)
    print("-" * (len(head) + 30))
    for label, ours_url, _stock_url, kind in cases(args.per_estate, stock):
        client, hdrs = (api_client, headers) if kind == "api" else (web_client, {})
        series = Series(ours_url)
        for i in range(args.warmup + args.repeat):
            series.run(client, counter, hdrs, keep=i >= args.warmup)
        if args.show_sql:
            print(f"  -- {label}:")
            for st in series.sql:
                print("     " + " ".join(st.split())[:3000])
        rows = ""
        if kind == "api":
            body = series.resp.json
            resource = label.split()[0]
            outside = set(body["ids"]) - allowed[resource]
            rows = f"{len(body['ids'])} on page, count {body['count']:,}"
            rows += "  ROWS OF ANOTHER ESTATE" if outside else ", all of the estate"
            if not body["ids"]:
                rows += "  EMPTY PAGE"
        print(f"{label:<34} {series.p50():9.1f} {series.p95():8.1f} {series.statements:6d}  {rows}", flush=True)

    print(
        f"\nload average (1 min) before / after: {load_before:.2f} / {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"
    )
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    if args.drop and created:
        drop_database(created)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
