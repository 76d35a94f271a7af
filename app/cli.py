"""``flask desk ...`` commands."""

from __future__ import annotations

import json
import time

import click
from flask import Flask, current_app
from flask.cli import AppGroup

desk = AppGroup("desk", help="Property service desk commands.")


@desk.command("sync-roles")
def sync_roles_cmd():
    """Write the role matrix (app/roles.py) to the role tables."""
    from app.factory import sync_roles

    counts = sync_roles(current_app.appbuilder)
    for role, n in sorted(counts.items()):
        click.echo(f"{role}: {n} permissions")


@desk.command("demo-data")
@click.option("--logins-file", default=None, help="Also write the printed logins to this file.")
def demo_data_cmd(logins_file):
    """Two estates with owners and residents; one login per role for each, a company-level
    Manager and Admin (new passwords)."""
    from app.factory import sync_roles
    from app.seed import demo_data, desk_defaults

    sync_roles(current_app.appbuilder)
    logins = demo_data(current_app.appbuilder.sm)
    for note in desk_defaults():  # a year chinese-calendar does not know yet: say so, loudly
        click.echo(f"warning: {note}", err=True)
    lines = [f"  {user:<14} {password:<14} {who}" for user, password, who in logins]
    text = "Demo logins (user / password / who):\n" + "\n".join(lines)
    click.echo(text)
    if logins_file:
        with open(logins_file, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")


@desk.command("generate")
@click.option("--units", type=int, required=True, help="How many units to add.")
@click.option("--residents-per-unit", type=int, default=2, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--per-estate", type=int, default=20000, show_default=True, help="Units per estate.")
def generate_cmd(units, residents_per_unit, seed, per_estate):
    """Add realistic units, owners and residents at any size (benchmarks)."""
    from app.seed import generate

    started = time.perf_counter()
    counts = generate(units=units, residents_per_unit=residents_per_unit, seed=seed, per_estate=per_estate)
    elapsed = time.perf_counter() - started
    click.echo(json.dumps(counts, ensure_ascii=False) + f"  ({elapsed:.1f} s)")


@desk.command("run-job")
@click.argument("name", required=False)
@click.option("--list", "list_", is_flag=True, help="List the periodic jobs.")
def run_job_cmd(name, list_):
    """Run one periodic job now, in this process, by its schedule name."""
    from jobs import periodic_jobs

    jobs = periodic_jobs(current_app)
    if list_ or not name:
        for job, task in sorted(jobs.items()):
            click.echo(f"{job}\t{task}")
        return
    if name not in jobs:
        raise click.BadParameter(f"unknown job {name!r}; known: {', '.join(sorted(jobs))}", param_hint="NAME")
    celery = current_app.extensions["celery"]
    task = celery.tasks[jobs[name]]
    result = task.apply()
    if result.failed():
        raise click.ClickException(f"{name} failed: {result.result!r}")
    click.echo(f"{name}: {result.result}")


@desk.command("holidays")
@click.option("--year", "years", type=int, multiple=True, help="A year to load (repeat for several).")
def holidays_cmd(years):
    """Load mainland China's holidays and make-up working days of a year from chinese-calendar into
    the holiday table (days already there, e.g. a Manager's corrections, are kept); without
    --year, say which years the package and the table have."""
    from sqlalchemy import extract, func, select

    from app.extensions import db
    from models.base import acting_as, system_user_id
    from models.calendar import CalendarYearUnknown, Holiday, known_years, load_official_year
    from models.desk import recompute_open_tickets

    known = known_years()
    if not years:
        in_table = db.session.execute(
            select(extract("year", Holiday.day).label("y"), func.count()).group_by("y").order_by("y")
        ).all()
        click.echo(f"chinese-calendar knows: {f'{known.start}-{known.stop - 1}' if known else 'nothing'}")
        click.echo("in the table: " + (", ".join(f"{int(y)} ({n} days)" for y, n in in_table) or "nothing"))
        return
    with acting_as(system_user_id(db.session)):
        try:
            results = {year: load_official_year(db.session, year) for year in years}
        except CalendarYearUnknown as e:
            db.session.rollback()
            raise click.ClickException(str(e)) from e
        db.session.commit()
        changed = sum(r["added"] for r in results.values())
        recomputed = recompute_open_tickets(db.session) if changed else 0
    for year, r in results.items():
        line = f"{year}: {r['added']} days added, {r['kept']} already there"
        if r["differing"]:
            line += f", {r['differing']} kept as a Manager changed them (they differ from chinese-calendar)"
        click.echo(line)
    if recomputed:
        click.echo(f"deadlines recomputed for {recomputed} open requests")


@desk.command("restore-tickets")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--keep-years", type=int, default=None, help="Keep the restored tickets this many years (default RETENTION_KEEP_YEARS)."
)
def restore_tickets_cmd(file, keep_years):
    """Bring back tickets the retention job exported and deleted (their timeline, callbacks and
    notifications too, and the links that were detached), with their ids; rows that exist are
    skipped. Restored tickets start a new retention period, which is printed."""
    from app.extensions import db
    from jobs.retention import RetentionError, restore_file
    from models.base import acting_as, system_user_id

    try:
        with acting_as(system_user_id(db.session)):
            counts = restore_file(db.session, file, keep_years=keep_years)
    except RetentionError as e:
        raise click.ClickException(str(e)) from e
    for table, c in counts.items():
        click.echo(f"{table}: {c['restored']} restored, {c['skipped']} already present")
    kept_until = counts.get("ticket", {}).get("kept_until")
    if kept_until:
        click.echo(f"restored tickets are kept until {kept_until} (the retention job purges them after that)")


def register_cli(app: Flask) -> None:
    app.cli.add_command(desk)
