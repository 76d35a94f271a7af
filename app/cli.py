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
    """One estate with ~300 units, owners, residents; one user per role (new passwords)."""
    from app.factory import sync_roles
    from app.seed import demo_data

    sync_roles(current_app.appbuilder)
    logins = demo_data(current_app.appbuilder.sm)
    lines = [f"  {user:<11} {password}" for user, password in logins.items()]
    text = "Demo logins (user / password):\n" + "\n".join(lines)
    click.echo(text)
    if logins_file:
        with open(logins_file, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")


@desk.command("generate")
@click.option("--units", type=int, required=True, help="How many units to add.")
@click.option("--residents-per-unit", type=int, default=2, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
def generate_cmd(units, residents_per_unit, seed):
    """Add realistic units, owners and residents at any size (benchmarks)."""
    from app.seed import generate

    started = time.perf_counter()
    counts = generate(units=units, residents_per_unit=residents_per_unit, seed=seed)
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


@desk.command("restore-tickets")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
def restore_tickets_cmd(file):
    """Bring back tickets the retention job exported and deleted (their timeline, callbacks and
    notifications too), with their ids; rows that exist are skipped."""
    from app.extensions import db
    from jobs.retention import RetentionError, restore_file
    from models.base import acting_as, system_user_id

    try:
        with acting_as(system_user_id(db.session)):
            counts = restore_file(db.session, file)
    except RetentionError as e:
        raise click.ClickException(str(e)) from e
    for table, c in counts.items():
        click.echo(f"{table}: {c['restored']} restored, {c['skipped']} already present")


def register_cli(app: Flask) -> None:
    app.cli.add_command(desk)
