"""The escalation sweep at scale: 1,000,000 tickets of which 1,000 are due.

    python -m benchmarks.sla_sweep [--tickets 1000000] [--due 1000] [--repeat 20] [--database-url URL]
                                   [--skip-latency] [--drop]

Builds (or reuses) the PostgreSQL database ``desk_bench_sla_<tickets>`` by the migrations, fills
it with ``INSERT ... SELECT generate_series`` (most tickets closed, ``--open`` still open with
deadlines far ahead, ``--due`` whose warning and reply deadline have passed), then prints:

- the sweep's ticket query plan (``EXPLAIN (ANALYZE, BUFFERS)``): it must read the partial index
  ``ix_ticket_next_due_at``, never the table;
- the time of ``jobs.escalation.sweep(now=...)`` when nothing is due (``now`` before every
  deadline), median and p95 of ``--repeat`` runs (target <= 50 ms);
- the time of a sweep that handles the ``--due`` tickets (warning + level 1, notification rows
  claimed and their deliveries queued), median of 3 runs, the due tickets made afresh each time;
- the ticket list API, first page and a filtered page (status=new): p50 / p95 and SQL statements
  per request (target p95 <= 50 ms, <= 4 statements);
- the escalation latency with a real worker and beat (``celery -A jobs.worker worker -B``, sweep
  every ``--sweep-seconds``): from a reply deadline to its level-1 notification row (target <= 60 s).

It never fails on time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.list_views import (  # noqa: E402
    ADMIN,
    Series,
    StatementCounter,
    api_url,
    drop_database,
    ensure_database,
)

REDIS_URL = os.environ.get("DESK_BENCH_REDIS", "redis://127.0.0.1:6379/14")
UTC = dt.UTC

TICKET_INSERT = """
INSERT INTO ticket (
    number, kind, channel, priority, description, status, confidential, escalation_level,
    visitor_name, reported_at, reply_due_at, resolve_due_at, closed_at, second_level_minutes,
    warn_minutes, reply_steps_done, resolve_steps_done, next_due_at,
    version, created_at, changed_at, created_by_id, changed_by_id)
SELECT
    CAST(:prefix AS text) || lpad(i::text, 8, '0'), 'repair', 'phone', 'normal', '厨房水管漏水 ' || i,
    CASE WHEN CAST(:closed AS boolean) THEN 'closed' ELSE 'new' END, false, 0,
    '住户' || i, d - interval '5 minutes', d, d + interval '1 day',
    CASE WHEN CAST(:closed AS boolean) THEN d + interval '1 hour' END, 30,
    CAST(:warn AS integer), 0, 0,
    CASE WHEN CAST(:closed AS boolean) THEN NULL
         WHEN CAST(:warn AS integer) > 0 THEN d - make_interval(mins => CAST(:warn AS integer)) ELSE d END,
    1, d - interval '5 minutes', d - interval '5 minutes', CAST(:user AS integer), CAST(:user AS integer)
FROM (
    SELECT i, CAST(:due AS timestamptz) + make_interval(secs => (i - 1) * CAST(:step AS double precision)) AS d
    FROM generate_series(1, CAST(:n AS integer)) AS i
) s
RETURNING id
"""


def insert_tickets(
    conn,
    n: int,
    *,
    reply_due_at: dt.datetime,
    user_id: int,
    prefix: str | None = None,
    warn_minutes: int = 2,
    step_seconds: float = 0,
    closed: bool = False,
) -> list[int]:
    """Insert ``n`` repair tickets (Core, one statement) whose reply is due at ``reply_due_at``
    (+ ``step_seconds`` per ticket), deadlines and ``next_due_at`` as the model computes them.
    ``conn``: a SQLAlchemy connection or session. Returns the ids."""
    from sqlalchemy import text

    prefix = prefix or f"B{uuid.uuid4().hex[:8]}-"
    rows = conn.execute(
        text(TICKET_INSERT),
        {
            "prefix": prefix,
            "closed": closed,
            "warn": warn_minutes,
            "user": user_id,
            "due": reply_due_at,
            "step": float(step_seconds),
            "n": n,
        },
    )
    return [r[0] for r in rows]


# --- the app -------------------------------------------------------------------------------------
def build_app(database_url: str, queue: str):
    from flask_migrate import upgrade

    from app import create_app
    from app.factory import sync_roles
    from app.seed import ensure_user

    config = {
        "SQLALCHEMY_DATABASE_URI": database_url,
        "SECRET_KEY": secrets.token_urlsafe(48),
        "WTF_CSRF_ENABLED": False,
        "SESSION_COOKIE_SECURE": False,
        "RATELIMIT_ENABLED": False,
        "AUTH_RATE_LIMITED": False,
        "FAB_PASSWORD_COMPLEXITY_ENABLED": False,
        "SYNC_ROLES_ON_START": False,
        "CELERY_BROKER_URL": REDIS_URL,
        "CELERY_RESULT_BACKEND": REDIS_URL,
    }
    app = create_app(config)
    celery = app.extensions["celery"]
    celery.conf.task_default_queue = queue  # the deliveries the sweep queues: purged at the end
    with app.app_context():
        upgrade()
        sync_roles(app.appbuilder)
        sm = app.appbuilder.sm
        ensure_user(sm, ADMIN[0], "Admin", "Bench", "Admin", ADMIN[1])
        ensure_user(sm, "bench_supervisor", "Supervisor", "Bench", "Supervisor", ADMIN[1])
        ensure_user(sm, "bench_manager", "Manager", "Bench", "Manager", ADMIN[1])
    return app


def fill(app, tickets: int, open_: int, due: int) -> None:
    from sqlalchemy import func, select

    from app.extensions import db
    from models.base import system_user_id
    from models.desk import Ticket

    with app.app_context():
        have = db.session.execute(select(func.count()).select_from(Ticket)).scalar()
        uid = system_user_id(db.session)
        far = dt.datetime.now(UTC) + dt.timedelta(days=3650)
        if have < tickets - due:
            t0 = time.perf_counter()
            closed = tickets - due - open_ - have
            if closed > 0:
                insert_tickets(
                    db.session,
                    closed,
                    reply_due_at=far - dt.timedelta(days=7300),
                    user_id=uid,
                    prefix="C-",
                    closed=True,
                    step_seconds=1,
                )
            insert_tickets(db.session, open_, reply_due_at=far, user_id=uid, prefix="O-", step_seconds=30)
            db.session.commit()
            print(f"generated {tickets - due - have:,} tickets in {time.perf_counter() - t0:.1f} s", flush=True)
        else:
            print(f"database already has {have:,} tickets: generation skipped", flush=True)
        db.session.remove()
    vacuum(app)


def vacuum(app) -> None:
    from app.extensions import db

    with app.app_context():
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM (ANALYZE) ticket, notification, ticket_event")


def fresh_due(app, due: int, reply_due_at: dt.datetime) -> list[int]:
    """Drop the previous run's due tickets (and what the sweep wrote for them); insert ``due`` new."""
    from sqlalchemy import delete, select

    from app.extensions import db
    from models.base import system_user_id
    from models.desk import Notification, Ticket, TicketEvent

    with app.app_context():
        old = select(Ticket.id).where(Ticket.number.startswith("D-"))
        db.session.execute(delete(Notification).where(Notification.subject_id.in_(old)))
        db.session.execute(delete(TicketEvent).where(TicketEvent.ticket_id.in_(old)))
        db.session.execute(delete(Ticket).where(Ticket.number.startswith("D-")))
        ids = insert_tickets(
            db.session, due, reply_due_at=reply_due_at, user_id=system_user_id(db.session), prefix="D-"
        )
        db.session.commit()
        db.session.remove()
    return ids


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


# --- the figures ---------------------------------------------------------------------------------
def explain(app, now: dt.datetime) -> str:
    from sqlalchemy import select

    from app.extensions import db
    from models.desk import Ticket

    stmt = (
        select(Ticket)
        .where(Ticket.next_due_at <= now)
        .order_by(Ticket.next_due_at)
        .limit(500)
        .with_for_update(skip_locked=True, of=Ticket)
    )
    with app.app_context():
        compiled = stmt.compile(db.engine)
        rows = (
            db.session.connection()
            .exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + str(compiled), compiled.params)
            .all()
        )
        db.session.rollback()
        db.session.remove()
    return "\n".join(r[0] for r in rows)


def time_sweeps(app, now: dt.datetime, repeat: int) -> list[float]:
    from jobs.escalation import sweep

    times = []
    with app.app_context():
        for _ in range(repeat):
            t0 = time.perf_counter()
            result = sweep(now=now)
            times.append((time.perf_counter() - t0) * 1000)
            assert result == {"tickets": 0, "callbacks": 0}, result
    return times


def time_due_sweep(app, due: int, runs: int = 3) -> list[tuple[float, dict, int]]:
    from sqlalchemy import func, select

    from app.extensions import db
    from jobs.escalation import sweep
    from models.desk import Notification

    out = []
    for _ in range(runs):
        reply_due = dt.datetime.now(UTC) - dt.timedelta(minutes=1)
        ids = fresh_due(app, due, reply_due)
        with app.app_context():
            t0 = time.perf_counter()
            result = sweep(now=reply_due + dt.timedelta(seconds=30))
            ms = (time.perf_counter() - t0) * 1000
            rows = db.session.execute(
                select(func.count()).select_from(Notification).where(Notification.subject_id.in_(ids))
            ).scalar()
            db.session.remove()
        out.append((ms, result, rows))
    return out


def time_lists(app, repeat: int, warmup: int = 3):
    from app.extensions import db

    with app.app_context():
        counter = StatementCounter(db.engine)
    client = app.test_client()
    resp = client.post("/api/v1/security/login", json={"username": ADMIN[0], "password": ADMIN[1], "provider": "db"})
    if resp.status_code != 200:
        raise SystemExit(f"API login failed: {resp.status_code} {resp.get_data(as_text=True)[:300]}")
    headers = {"Authorization": f"Bearer {resp.json['access_token']}"}
    results = []
    for label, url in (
        ("ticket api first p0/25", api_url("ticket", 0, 25)),
        ("ticket api status=new p0/25", api_url("ticket", 0, 25, "!((col:status,opr:eq,value:new))")),
    ):
        series = Series(url)
        for i in range(warmup + repeat):
            with app.app_context():
                series.run(client, counter, headers, keep=i >= warmup)
        results.append((label, series))
    return results


def escalation_latency(database_url: str, sweep_seconds: int, n: int = 10, timeout: float = 180) -> list[float]:
    """Tickets whose reply falls due a few seconds from now; a real worker with beat escalates
    them. Seconds from each deadline to its level-1 notification row."""
    from sqlalchemy import create_engine, func, select, text

    from models.desk import Notification
    from tests.workers import celery_worker, new_queue

    engine = create_engine(database_url)
    with engine.begin() as conn:
        uid = conn.execute(text("SELECT id FROM ab_user WHERE username = 'system'")).scalar_one()
    queue = new_queue()
    with tempfile.TemporaryDirectory() as tmp:
        with celery_worker(
            Path(tmp),
            database_url,
            REDIS_URL,
            queue,
            pool="prefork",
            concurrency=1,
            beat=True,
            env={"DESK_ESCALATION_SWEEP_SECONDS": str(sweep_seconds)},
        ):
            due = dt.datetime.now(UTC) + dt.timedelta(seconds=5)
            with engine.begin() as conn:
                ids = insert_tickets(
                    conn, n, reply_due_at=due, user_id=uid, prefix=f"L{uuid.uuid4().hex[:6]}-", warn_minutes=0
                )
            deadline = time.monotonic() + timeout
            latencies: dict[int, float] = {}
            while time.monotonic() < deadline and len(latencies) < n:
                with engine.connect() as conn:
                    rows = conn.execute(
                        select(Notification.subject_id, func.min(Notification.created_at))
                        .where(Notification.subject_id.in_(ids), Notification.kind == "reply_level1")
                        .group_by(Notification.subject_id)
                    ).all()
                latencies = {sid: (created - due).total_seconds() for sid, created in rows}
                time.sleep(0.5)
    engine.dispose()
    return sorted(latencies.values()) if len(latencies) == n else [float("inf")]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--open", type=int, default=50_000, help="open tickets not yet due (of --tickets)")
    parser.add_argument("--due", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--sweep-seconds", type=int, default=10)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--drop", action="store_true")
    args = parser.parse_args(argv)

    created = None
    url = args.database_url
    if url is None:
        created = f"desk_bench_sla_{args.tickets}"
        url = ensure_database(created)
    queue = f"desk-bench-{uuid.uuid4().hex[:8]}"
    app = build_app(url, queue)
    fill(app, args.tickets, args.open, args.due)
    fresh_due(app, args.due, dt.datetime.now(UTC) - dt.timedelta(minutes=1))
    vacuum(app)
    load_before = os.getloadavg()[0]

    from sqlalchemy import func, select

    from app.extensions import db
    from models.desk import Ticket

    with app.app_context():
        total = db.session.execute(select(func.count()).select_from(Ticket)).scalar()
        pending = db.session.execute(select(func.count()).where(Ticket.next_due_at.is_not(None))).scalar()
        first_due = db.session.execute(select(func.min(Ticket.next_due_at))).scalar()
        db.session.remove()
    before_all = first_due - dt.timedelta(minutes=1)
    print(f"\nPostgreSQL, {total:,} tickets, {pending:,} with a pending deadline, {args.due:,} due\n")

    print("sweep query plan, now before every deadline:")
    print("  " + explain(app, before_all).replace("\n", "\n  "))

    idle = time_sweeps(app, before_all, args.repeat)
    print(
        f"\nsweep, nothing due ({args.repeat} runs): median {statistics.median(idle):.2f} ms, "
        f"p95 {pct(idle, 0.95):.2f} ms, max {max(idle):.2f} ms  (target <= 50 ms)"
    )

    for i, (ms, result, rows) in enumerate(time_due_sweep(app, args.due)):
        print(f"sweep, {args.due:,} due, run {i + 1}: {ms:.0f} ms; handled {result}; {rows:,} notification rows")

    print()
    for label, s in time_lists(app, args.repeat):
        print(f"{label:<30} p50 {s.p50():6.1f} ms  p95 {s.p95():6.1f} ms  statements {s.statements}")

    if not args.skip_latency:
        lat = escalation_latency(url, args.sweep_seconds)
        print(
            f"\nescalation latency, real worker + beat (sweep every {args.sweep_seconds} s), {len(lat)} tickets: "
            f"min {lat[0]:.1f} s, median {statistics.median(lat):.1f} s, max {lat[-1]:.1f} s  (target <= 60 s)"
        )

    print(
        f"\nload average (1 min) before / after: {load_before:.2f} / {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"
    )
    # The deliveries the sweeps queued: nobody listens on this queue.
    import redis

    redis.Redis.from_url(REDIS_URL).delete(queue)
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    if args.drop and created:
        drop_database(created)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
