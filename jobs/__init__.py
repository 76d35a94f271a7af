"""The Celery app, bound to the Flask app (Flask's own Celery pattern).

Tasks run inside the app context, as the system user (every row they write names it), and are
written to be safe to run twice and to be killed halfway: ``task_acks_late`` with
``task_reject_on_worker_lost`` means a killed task is delivered again, never lost.
"""

from __future__ import annotations

import importlib

from celery import Celery, Task
from celery.signals import worker_process_init
from flask import Flask

# Modules holding tasks. Imported by ``celery_init_app`` too, not only by a worker's start-up
# (``include``): ``flask desk run-job`` looks tasks up in the web process, where nothing else
# imports them.
TASK_MODULES = (
    "jobs.archives",
    "jobs.escalation",
    "jobs.notify",
    "jobs.retention",
    "jobs.billing",
    "jobs.services",
    "jobs.late_fees",
    "jobs.dunning",
    "jobs.renovation",
)


def celery_init_app(app: Flask) -> Celery:
    class FlaskTask(Task):
        def __call__(self, *args, **kwargs):
            with app.app_context():
                from app.extensions import db
                from models.base import acting_as, system_user_id

                try:
                    with acting_as(system_user_id(db.session)):
                        return self.run(*args, **kwargs)
                finally:
                    db.session.remove()

    celery = Celery(app.name, task_cls=FlaskTask)
    celery.conf.update(
        broker_url=app.config["CELERY_BROKER_URL"],
        result_backend=app.config["CELERY_RESULT_BACKEND"],
        task_always_eager=app.config.get("CELERY_TASK_ALWAYS_EAGER", False),
        beat_schedule=app.config.get("CELERY_BEAT_SCHEDULE", {}),
        timezone="UTC",
        enable_utc=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        include=list(TASK_MODULES),
    )
    celery.set_default()
    for module in TASK_MODULES:
        importlib.import_module(module)
    app.extensions["celery"] = celery
    return celery


@worker_process_init.connect
def _fresh_connections_after_fork(**_kwargs) -> None:
    """A prefork pool process inherits the parent's pooled PostgreSQL connections (the worker
    builds the app, and touches the database, before forking). Two processes on one socket get
    each other's answers ("prepared statement _pg3_N already exists", wrong rows): each pool
    process drops the inherited connections, without closing them under the parent, and opens
    its own."""
    from app.extensions import db

    for engines in list(getattr(db, "_app_engines", {}).values()):
        for engine in engines.values():
            engine.dispose(close=False)


def periodic_jobs(app: Flask) -> dict[str, str]:
    """Beat schedule name -> task name."""
    return {name: entry["task"] for name, entry in app.config.get("CELERY_BEAT_SCHEDULE", {}).items()}
