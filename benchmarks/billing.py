"""Monthly billing at scale: ``run_billing`` against a plain ``INSERT ... SELECT`` of the same rows.

    python -m benchmarks.billing [--units 100000] [--repeat 3] [--database-url URL] [--drop]

Builds (or reuses) a PostgreSQL database with ``--units`` units (``app.seed.generate``, 20,000 per
estate), two approved standards over every estate (property service fee per m² of gross area,
garbage fee per unit), then for each repeat a fresh period:

- ``run_billing`` for every estate (the job: advisory lock, run row, one
  ``INSERT ... SELECT ... ON CONFLICT DO NOTHING`` per standard, counts, commit): lines per second;
- the same SELECTs as plain ``INSERT ... SELECT`` (no ON CONFLICT, no RETURNING, no run row) into
  ``bill_scratch``, a copy of ``bill`` with its defaults, checks, indexes and foreign keys: lines per second;
- ``run_billing`` again (the rerun: every line exists, nothing is inserted): seconds.

Prints medians and ratios (targets: at least half the plain rate; the rerun under a fifth of the
first run). It never fails on time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import secrets
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PG_SERVER = os.environ.get("DESK_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")
DEFAULT_DB = "desk_bench_billing"


def _plain(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def ensure_database(name: str) -> str:
    with psycopg.connect(_plain(PG_SERVER) + "/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    return f"{PG_SERVER}/{name}"


def drop_database(name: str) -> None:
    with psycopg.connect(_plain(PG_SERVER) + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def build_app(database_url: str, units: int):
    from flask_migrate import upgrade
    from sqlalchemy import func, select

    from app import create_app
    from app.extensions import db
    from app.factory import sync_roles
    from app.seed import generate
    from models.archives import Unit
    from models.base import acting_as, system_user_id

    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": database_url,
            "SECRET_KEY": secrets.token_urlsafe(48),
            "SYNC_ROLES_ON_START": False,
            "CELERY_TASK_ALWAYS_EAGER": True,
        }
    )
    with app.app_context():
        upgrade()
        sync_roles(app.appbuilder)
        have = db.session.execute(select(func.count()).select_from(Unit)).scalar()
        if have < units:
            t0 = time.perf_counter()
            with acting_as(system_user_id(db.session)):
                counts = generate(units=units - have, residents_per_unit=0, estate_prefix="BB")
            print(f"generated {counts} in {time.perf_counter() - t0:.1f} s", flush=True)
        else:
            print(f"database already has {have} units: generation skipped", flush=True)
        db.session.commit()
        ensure_standards()
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM (ANALYZE) unit, ownership, bill, fee_standard, fee_standard_estate")
        db.session.remove()
    return app


def ensure_standards() -> None:
    """Two approved standards over every estate, made once."""
    from sqlalchemy import select

    from app.extensions import db
    from models.archives import Estate
    from models.base import acting_as, system_user_id
    from models.fees import FeeItem, FeeStandard

    uid = system_user_id(db.session)
    with acting_as(uid):
        estates = db.session.execute(select(Estate)).scalars().all()
        for code, name, kind, basis, price in (
            ("BENCH_PROP", "物业服务费", "property_service", "per_area_month", "2.3500"),
            ("BENCH_GARB", "垃圾处理费", "garbage", "per_unit_month", "15.0000"),
        ):
            item = db.session.execute(select(FeeItem).where(FeeItem.code == code)).scalar()
            if item is None:
                item = FeeItem(code=code, name=name, kind=kind, due_days=15)
                db.session.add(item)
                db.session.flush()
            std = db.session.execute(
                select(FeeStandard).where(FeeStandard.item_id == item.id, FeeStandard.status == "approved")
            ).scalar()
            if std is None:
                std = FeeStandard(
                    item_id=item.id,
                    revision=1,
                    basis=basis,
                    unit_price=Decimal(price),
                    rounding="half_up_cent",
                    unit_uses=["residential"],
                    effective_from=dt.date(2000, 1, 1),
                    estates=estates,
                )
                db.session.add(std)
                db.session.flush()
                std.declare("fee_standard/bench.pdf")
                std.approve(uid)
            else:
                std.estates = estates
        db.session.commit()


def plain_sql(standard) -> str:
    """The job's statement for a standard, as a plain INSERT ... SELECT into the scratch table."""
    from jobs.billing import _insert_sql

    sql = _insert_sql(standard)
    for old, new in (
        ("WITH ins AS (\n  INSERT INTO bill ", "INSERT INTO bill_scratch "),
        ("  ON CONFLICT (unit_id, item_id, period, source) DO NOTHING\n  RETURNING amount\n)\n", ""),
        ("SELECT count(*), coalesce(sum(amount), 0) FROM ins\n", ""),
    ):
        assert old in sql, old
        sql = sql.replace(old, new)
    return sql


def one_period(app, period: str) -> dict:
    from sqlalchemy import select, text

    from app.extensions import db
    from jobs.billing import _params, applicable_standards, run_billing
    from models.archives import Estate
    from models.base import acting_as, system_user_id, utcnow

    with app.app_context():
        uid = system_user_id(db.session)
        estates = db.session.execute(select(Estate.id).order_by(Estate.id)).scalars().all()
        db.session.execute(text("DELETE FROM bill WHERE period = :p"), {"p": period})
        db.session.execute(text("DELETE FROM billing_run WHERE period = :p"), {"p": period})
        db.session.execute(text("TRUNCATE bill_scratch"))
        db.session.commit()
        with acting_as(uid):
            t0 = time.perf_counter()
            lines = sum(run_billing(e, period, "bench")["lines_created"] for e in estates)
            first = time.perf_counter() - t0
            t0 = time.perf_counter()
            again = sum(run_billing(e, period, "bench")["lines_created"] for e in estates)
            rerun = time.perf_counter() - t0
        # The plain INSERT ... SELECT of the same rows, one transaction per estate as the job.
        plain_lines = 0
        t0 = time.perf_counter()
        for e in estates:
            for std in applicable_standards(db.session, e, period):
                params = _params(std, e, period, None, uid, utcnow())
                plain_lines += db.session.execute(text(plain_sql(std)), params).rowcount
            db.session.commit()
        plain = time.perf_counter() - t0
        db.session.remove()
    assert again == 0 and plain_lines == lines, (again, plain_lines, lines)
    return {"lines": lines, "first": first, "rerun": rerun, "plain": plain}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--units", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--drop", action="store_true", help="drop the benchmark database afterwards")
    args = parser.parse_args(argv)
    url = args.database_url or ensure_database(DEFAULT_DB)
    app = build_app(url, args.units)
    with app.app_context():
        from app.extensions import db

        with db.engine.begin() as conn:
            # The same defaults, checks, indexes and foreign keys (LIKE copies no foreign key).
            conn.exec_driver_sql("DROP TABLE IF EXISTS bill_scratch")
            conn.exec_driver_sql(
                "CREATE TABLE bill_scratch (LIKE bill INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES)"
            )
            conn.exec_driver_sql(
                "DO $$ DECLARE r record; BEGIN FOR r IN SELECT conname, pg_get_constraintdef(oid) AS d"
                " FROM pg_constraint WHERE conrelid = 'bill'::regclass AND contype = 'f' LOOP"
                " EXECUTE format('ALTER TABLE bill_scratch ADD CONSTRAINT %%I %%s', 'scratch_' || r.conname, r.d);"
                " END LOOP; END $$"
            )
    results = []
    for i in range(args.repeat):
        r = one_period(app, f"2045-{i % 12 + 1:02d}")
        results.append(r)
        print(
            f"run {i + 1}: {r['lines']} lines; run_billing {r['first']:.2f} s ({r['lines'] / r['first']:,.0f}/s),"
            f" plain INSERT...SELECT {r['plain']:.2f} s ({r['lines'] / r['plain']:,.0f}/s),"
            f" rerun {r['rerun']:.2f} s",
            flush=True,
        )
    lines = results[0]["lines"]
    first = statistics.median(r["first"] for r in results)
    plain = statistics.median(r["plain"] for r in results)
    rerun = statistics.median(r["rerun"] for r in results)
    print()
    print(f"units: {args.units}, bill lines per month: {lines}, repeats: {args.repeat} (medians)")
    print(f"run_billing:           {first:.2f} s  {lines / first:,.0f} lines/s")
    print(f"plain INSERT...SELECT: {plain:.2f} s  {lines / plain:,.0f} lines/s")
    print(f"ratio run_billing / plain rate: {plain / first:.2f}  (target >= 0.5)")
    print(f"rerun:                 {rerun:.2f} s  = {rerun / first:.2f} of the first run  (target < 0.2)")
    arrears(app, args.repeat)
    if args.drop:
        drop_database(url.rsplit("/", 1)[1])
    return 0


def arrears(app, repeat: int) -> None:
    """The arrears report over what the runs above billed: about a third of the lines paid, the
    rest unpaid across three months (aging buckets), for every unit."""
    import datetime as dt

    from sqlalchemy import text

    from app.extensions import db
    from models.arrears import arrears_by_unit, arrears_count, arrears_summary

    with app.app_context():
        db.session.execute(
            text("UPDATE bill SET paid_amount = amount, status = 'paid' WHERE period LIKE '2045-%' AND id % 3 = 0")
        )
        db.session.commit()
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM (ANALYZE) bill")
        unpaid = db.session.execute(text("SELECT count(*) FROM bill WHERE status IN ('open', 'partial')")).scalar()
        as_of = dt.date(2045, 8, 1)
        timings = {"page of 100 (biggest first)": [], "count": [], "per-estate summary": []}
        for _ in range(max(repeat, 3) + 1):
            for name, fn in (
                ("page of 100 (biggest first)", lambda: arrears_by_unit(db.session, as_of, limit=100)),
                ("count", lambda: arrears_count(db.session, as_of)),
                ("per-estate summary", lambda: arrears_summary(db.session, as_of)),
            ):
                t0 = time.perf_counter()
                fn()
                timings[name].append(time.perf_counter() - t0)
        db.session.remove()
    print()
    print(f"arrears report as of {as_of}: {unpaid:,} unpaid lines (medians, first call dropped)")
    for name, values in timings.items():
        print(f"  {name:<28} {statistics.median(values[1:]) * 1000:8.1f} ms  (target: under 1 s)")


if __name__ == "__main__":
    sys.exit(main())
