"""The home page (工作台) at scale: statements and time per role.

    python -m benchmarks.workbench [--units 100000] [--per-estate 5000] [--tickets 200000]
                                   [--repeat 30] [--database-url URL]

Reuses the list benchmark's database (``benchmarks/list_views.py``: 100,000 units, 200,000
residents in 20 estates of 5,000) and adds, once, what the workbench counts: ``--tickets``
requests over the last six months (3% of them open: assigned or not, overdue, escalated),
callbacks for a third of the resolved ones, and six months of bills for two fee items (1.2
million lines, 8% left unpaid). Then times ``GET /`` through Flask's test client for a
company-level Admin and Manager and for a Supervisor, a Staff member and a Committee member of
one estate, and counts the SQL statements of each request. Prints p50 / p95; never fails on time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.list_views import DEFAULT_DB, build_app, ensure_database  # noqa: E402

PASSWORD = "Bench-Work-Pass-12"
PEOPLE = (  # username, role, company-level?
    ("wb_admin", "Admin", True),
    ("wb_manager", "Manager", True),
    ("wb_supervisor", "Supervisor", False),
    ("wb_staff", "Staff", False),
    ("wb_committee", "Committee", False),
)

TICKETS_SQL = """
INSERT INTO ticket (number, kind, channel, priority, description, status, escalation_level, confidential,
    reported_at, received_at, reply_due_at, resolve_due_at, replied_at, resolved_at, next_due_at,
    second_level_minutes, warn_minutes, reply_steps_done, resolve_steps_done, estate_id, unit_id, assignee_id,
    version, created_at, changed_at, created_by_id, changed_by_id)
SELECT 'WB' || lpad(g::text, 9, '0'),
       (ARRAY['repair','complaint','consultation','other','repair'])[1 + g % 5],
       'phone', 'normal', '工作台基准数据', s.status, CASE WHEN s.open AND g % 7 = 0 THEN 1 + g % 2 ELSE 0 END, false,
       t.at, t.at, t.at + interval '5 minutes', t.at + interval '3 days',
       CASE WHEN s.status <> 'new' THEN t.at + make_interval(mins => g % 9) END,
       CASE WHEN NOT s.open THEN t.at + make_interval(hours => 2 + g % 90) END,
       CASE WHEN s.open THEN now() + make_interval(mins => (g % 600) - 300) END,
       30, 5, 0, 0, u.estate_id, u.id,
       CASE WHEN g % 4 = 0 THEN NULL ELSE :staff END,
       1, t.at, t.at, :system, :system
FROM generate_series(1, :n) AS g
CROSS JOIN LATERAL (SELECT now() - make_interval(secs => (g::bigint * 15552000 / :n)) AS at) t
CROSS JOIN LATERAL (SELECT g % 33 = 0 AS open,
                           CASE WHEN g % 33 = 0 THEN (ARRAY['new','in_progress','acknowledged'])[1 + g % 3]
                                ELSE 'closed' END AS status) s
JOIN unit u ON u.id = (SELECT min(id) FROM unit) + (g * 7919) % :units
"""

CALLBACKS_SQL = """
INSERT INTO callback (ticket_id, due_at, status, attempts, steps_done, satisfaction,
    version, created_at, changed_at, created_by_id, changed_by_id)
SELECT id, resolved_at + interval '1 day', CASE WHEN id % 9 = 0 THEN 'pending' ELSE 'done' END, 1, 0,
       CASE WHEN id % 9 = 0 THEN NULL ELSE 3 + id % 3 END, 1, resolved_at, resolved_at, :system, :system
FROM ticket WHERE number LIKE 'WB%' AND resolved_at IS NOT NULL AND id % 3 = 0
"""

ITEMS_SQL = """
INSERT INTO fee_item (code, name, kind, grace_days, late_daily_rate, late_cap_rate, due_days, active,
    payment_term_days, version, created_at, changed_at, created_by_id, changed_by_id)
VALUES ('WB-MGMT', '物业服务费', 'property_service', 30, 0.0003, 0.1, 15, true, 15, 1, now(), now(), :system, :system),
       ('WB-PARK', '停车费', 'parking', 30, 0.0003, 0.1, 15, true, 15, 1, now(), now(), :system, :system)
"""

BILLS_SQL = """
INSERT INTO bill (estate_id, unit_id, billed_to_developer, item_id, period, source, quantity, unit_price, amount,
    paid_amount, late_fee, late_fee_waived, due_date, status, disputed, issued_on,
    version, created_at, changed_at, created_by_id, changed_by_id)
SELECT u.estate_id, u.id, false, i.id, to_char(p.first, 'YYYY-MM'), 'bench', u.gross_area, 2.5,
       round(u.gross_area * 2.5, 2),
       CASE WHEN (u.id + i.id + p.k) % 12 = 0 THEN 0 ELSE round(u.gross_area * 2.5, 2) END,
       0, 0, (p.first + interval '15 days')::date,
       CASE WHEN (u.id + i.id + p.k) % 12 = 0 THEN 'open' ELSE 'paid' END, false, p.first::date,
       1, now(), now(), :system, :system
FROM unit u
CROSS JOIN (SELECT id FROM fee_item WHERE code LIKE 'WB-%') i
CROSS JOIN LATERAL (SELECT k, (date_trunc('month', now()) - make_interval(months => k))::date AS first
                    FROM generate_series(0, 5) k) p
"""


def seed(app, tickets: int, first_estate: int) -> None:
    from sqlalchemy import func, select, text

    from app.extensions import db
    from app.seed import ensure_user
    from models.archives import Unit
    from models.desk import Ticket

    with app.app_context():
        users = {}
        from app.seed import ALL_ESTATES

        for name, role, company in PEOPLE:
            where = ALL_ESTATES if company else [first_estate]
            ensure_user(app.appbuilder.sm, name, role, "基准", role, PASSWORD, estates=where)
        db.session.commit()
        for name, *_ in PEOPLE:
            users[name] = db.session.execute(text("SELECT id FROM ab_user WHERE username = :u"), {"u": name}).scalar()
        system = db.session.execute(text("SELECT id FROM ab_user WHERE username = 'system'")).scalar()
        have = db.session.execute(select(func.count()).select_from(Ticket).where(Ticket.number.like("WB%"))).scalar()
        if have >= tickets:
            print(f"database already has {have:,} workbench requests: seeding skipped", flush=True)
            return
        t0 = time.perf_counter()
        units = db.session.execute(select(func.count()).select_from(Unit)).scalar()
        p = {"n": tickets, "units": units, "staff": users["wb_staff"], "system": system}
        db.session.execute(text(TICKETS_SQL), p)
        db.session.execute(text(CALLBACKS_SQL), p)
        db.session.execute(text(ITEMS_SQL), p)
        db.session.execute(text(BILLS_SQL), p)
        db.session.commit()
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM (ANALYZE) ticket, callback, bill, fee_item")
        counts = {
            t: db.session.execute(text(f"SELECT count(*) FROM {t}")).scalar() for t in ("ticket", "callback", "bill")
        }
        print(f"seeded {counts} in {time.perf_counter() - t0:.1f} s", flush=True)
        db.session.remove()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--units", type=int, default=100_000)
    parser.add_argument("--per-estate", type=int, default=5_000)
    parser.add_argument("--tickets", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--show-sql", action="store_true")
    args = parser.parse_args(argv)

    url = args.database_url or ensure_database(f"{DEFAULT_DB}_{args.units}_{args.per_estate}")
    app, _stock, first_estate = build_app(url, args.units, args.per_estate)
    seed(app, args.tickets, first_estate)

    from sqlalchemy import event

    from app.extensions import db

    with app.app_context():
        engine = db.engine
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda c, cur, s, *a: statements.append(s))

    load_before = os.getloadavg()[0]
    print(
        f"\nGET / (the workbench), PostgreSQL, {args.units:,} units in estates of {args.per_estate:,}, "
        f"{args.tickets:,} requests, 1.2 million bill lines; {args.repeat} runs after {args.warmup} warm-up; ms\n"
    )
    for ttl in (0, 60):
        app.config["WORKBENCH_FIGURES_SECONDS"] = ttl
        print(
            "every figure computed on each request (WORKBENCH_FIGURES_SECONDS=0):"
            if ttl == 0
            else "\nthe month figures kept 60 s (the default; tiles always counted live):"
        )
        run(app, args, statements)
    print(f"\nload average (1 min) before / after: {load_before:.2f} / {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print("budget: at most 10 statements and p95 at most 150 ms per home page")
    return 0


def run(app, args, statements: list[str]) -> None:
    import re

    print(f"{'who':<44}{'p50':>8}{'p95':>8}{'stmts':>7}  tiles")
    print("-" * 96)
    for name, role, company in PEOPLE:
        client = app.test_client()
        resp = client.post("/login/", data={"username": name, "password": PASSWORD})
        assert resp.status_code in (302, 303), resp.status_code
        times = []
        for i in range(args.warmup + args.repeat):
            statements.clear()
            t0 = time.perf_counter()
            resp = client.get("/")
            elapsed = (time.perf_counter() - t0) * 1000
            assert resp.status_code == 200, resp.status_code
            if i >= args.warmup:
                times.append(elapsed)
        page = resp.get_data(as_text=True)
        tiles = [int(n) for n in re.findall(r'desk-tile-count"[^>]*>(\d+)<', page)]
        p95 = statistics.quantiles(times, n=20)[18] if len(times) >= 20 else max(times)
        who = f"{role} ({'company' if company else 'one estate'})"
        print(f"{who:<44}{statistics.median(times):>8.1f}{p95:>8.1f}{len(statements):>7}  {tiles}")
        if args.show_sql:
            for s in statements:
                print("    " + " ".join(s.split())[:300])


if __name__ == "__main__":
    sys.exit(main())
