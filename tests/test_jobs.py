"""Background jobs on real workers: Celery on Redis, Celery on the embedded SQLite broker, and
``flask desk run-job`` in-process.

The workers are real ``celery -A jobs.worker worker`` subprocesses that build their own Flask app
from ``DESK_*`` environment variables, pointed at this run's PostgreSQL test database.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select, update

from tests.conftest import REDIS_URL

pytestmark = pytest.mark.services

REPO = Path(__file__).resolve().parent.parent
TASK = "jobs.archives.close_moved_out_residents"
JOB = "residents.close_moved_out"
RESULT_TIMEOUT = 60


# --- helpers ---------------------------------------------------------------------------------
@contextlib.contextmanager
def celery_worker(tmp_path: Path, database_url: str, broker: str, backend: str, queue: str = "celery"):
    """A real worker process (solo pool); always stopped on the way out. Yields (proc, log path)."""
    log_path = tmp_path / f"worker-{uuid.uuid4().hex[:6]}.log"
    env = {
        **os.environ,
        "DESK_DATABASE_URL": database_url,
        "DESK_BROKER_URL": broker,
        "DESK_RESULT_BACKEND": backend,
        "DESK_INSTANCE_DIR": str(tmp_path / "instance"),
        # The worker refuses to start without a secret key (none is written for a fresh instance dir).
        "DESK_SECRET_KEY": os.environ.get("DESK_SECRET_KEY", "test-secret-key-that-is-long-enough-for-hs256"),
        "PYTHONUNBUFFERED": "1",
    }
    cmd = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "jobs.worker",
        "worker",
        "--pool=solo",
        "-Q",
        queue,
        "--loglevel=INFO",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "-n",
        f"desk-test-{uuid.uuid4().hex[:6]}@%h",
    ]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc, log_path
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # warm shutdown
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def wait_result(async_result, proc, log_path: Path, timeout: float = RESULT_TIMEOUT):
    """The task's return value; fails early (with the worker's log) if the worker dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"worker exited with {proc.returncode}:\n{log_path.read_text(errors='replace')[-4000:]}")
        if async_result.ready():
            return async_result.get(timeout=5)
        time.sleep(0.25)
    pytest.fail(f"no result within {timeout} s; worker log:\n{log_path.read_text(errors='replace')[-4000:]}")


@pytest.fixture()
def moved_out_residents(app, make_unit):
    """Residents written through the ORM by a person (user 'staff'), current, whose move-out
    date has since passed. ``check()`` closes a resident saved with a past move-out at once, so
    the rows are saved with a future date that is then moved into the past, as time would."""
    from app.extensions import db
    from models.archives import Resident
    from models.base import acting_as

    def factory(n: int = 3) -> list[int]:
        unit_id = make_unit()["unit"]
        with app.app_context():
            staff = app.appbuilder.sm.find_user(username="staff")
            future = dt.date.today() + dt.timedelta(days=30)
            with acting_as(staff.id):
                rows = [
                    Resident(unit_id=unit_id, name=f"住户{i}", move_in=dt.date(2020, 1, 1), move_out=future)
                    for i in range(n)
                ]
                db.session.add_all(rows)
                db.session.commit()
            ids = [r.id for r in rows]
            assert all(r.is_current for r in rows)
            assert {r.changed_by_id for r in rows} == {staff.id}
            past = dt.date.today() - dt.timedelta(days=1)
            db.session.execute(update(Resident).where(Resident.id.in_(ids)).values(move_out=past))
            db.session.commit()
            db.session.remove()
        return ids

    return factory


def resident_state(app, ids: list[int]) -> dict[int, tuple]:
    from app.extensions import db
    from models.archives import Resident

    with app.app_context():
        rows = db.session.execute(
            select(
                Resident.id, Resident.is_current, Resident.changed_by_id, Resident.version, Resident.changed_at
            ).where(Resident.id.in_(ids))
        ).all()
        db.session.remove()
    return {r.id: tuple(r[1:]) for r in rows}


def system_user(app):
    with app.app_context():
        user = app.appbuilder.sm.find_user(username=app.config["SYSTEM_USERNAME"])
        assert user is not None
        return user.id


def change_log_count(app, ids: list[int]) -> int:
    from sqlalchemy import func

    from app.extensions import db
    from models.base import ChangeLog

    with app.app_context():
        n = db.session.execute(
            select(func.count()).where(ChangeLog.table_name == "resident", ChangeLog.row_id.in_(ids))
        ).scalar_one()
        db.session.remove()
    return n


def assert_closed_by_system(app, ids: list[int]) -> None:
    sys_id = system_user(app)
    state = resident_state(app, ids)
    assert set(state) == set(ids)
    for rid, (is_current, changed_by, _version, _at) in state.items():
        assert is_current is False, f"resident {rid} is still current"
        assert changed_by == sys_id, f"resident {rid} changed by user {changed_by}, not the system user"


# --- (a) a real worker on Redis --------------------------------------------------------------
def test_worker_on_redis_closes_moved_out_residents_as_system_user(app, database_url, moved_out_residents, tmp_path):
    ids = moved_out_residents(3)
    celery = app.extensions["celery"]
    assert celery.conf.broker_url == REDIS_URL
    # A queue of our own, so no other test run sharing this Redis database takes our tasks.
    queue = f"desk-test-{uuid.uuid4().hex[:8]}"
    with celery_worker(tmp_path, database_url, REDIS_URL, REDIS_URL, queue=queue) as (proc, log):
        started = time.perf_counter()
        first = wait_result(celery.send_task(TASK, queue=queue), proc, log)
        first_s = time.perf_counter() - started
        assert first >= len(ids)
        assert_closed_by_system(app, ids)
        after_first = resident_state(app, ids)
        logged = change_log_count(app, ids)

        # Idempotent: the second run finds nothing left and writes nothing.
        second = wait_result(celery.send_task(TASK, queue=queue), proc, log)
        assert second == 0
        assert resident_state(app, ids) == after_first
        assert change_log_count(app, ids) == logged
    print(f"redis worker: first result after {first_s:.1f} s (includes worker start-up)")


# --- (b) flask desk run-job ------------------------------------------------------------------
def test_run_job_command_runs_in_process_and_prints_the_count(app, moved_out_residents):
    ids = moved_out_residents(2)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["desk", "run-job", JOB])
    assert result.exit_code == 0, result.output
    line = result.output.strip().splitlines()[-1]
    name, _, count = line.partition(": ")
    assert name == JOB
    assert int(count) >= len(ids)
    assert_closed_by_system(app, ids)

    again = runner.invoke(args=["desk", "run-job", JOB])
    assert again.exit_code == 0, again.output
    assert again.output.strip().splitlines()[-1] == f"{JOB}: 0"


def test_run_job_unknown_name_fails_clearly(app):
    result = app.test_cli_runner().invoke(args=["desk", "run-job", "no.such.job"])
    assert result.exit_code != 0
    assert "unknown job 'no.such.job'" in result.output
    assert JOB in result.output  # says which jobs exist


def test_run_job_list(app):
    result = app.test_cli_runner().invoke(args=["desk", "run-job", "--list"])
    assert result.exit_code == 0, result.output
    assert f"{JOB}\t{TASK}" in result.output.splitlines()


# --- (c) the embedded default: SQLite broker and results, no Redis ---------------------------
def test_worker_on_embedded_sqlite_broker_runs_a_task(app, database_url, moved_out_residents, tmp_path):
    from celery import Celery

    ids = moved_out_residents(2)
    broker = f"sqla+sqlite:///{tmp_path / 'broker.db'}"
    backend = f"db+sqlite:///{tmp_path / 'results.db'}"
    # A bare client: the session's Flask app stays on Redis, and the default Celery app is untouched.
    client = Celery("desk-embedded-client", broker=broker, backend=backend, set_as_current=False)
    client.conf.broker_connection_retry_on_startup = True
    try:
        with celery_worker(tmp_path, database_url, broker, backend) as (proc, log):
            started = time.perf_counter()
            result = wait_result(client.send_task(TASK), proc, log)
            elapsed = time.perf_counter() - started
            assert result >= len(ids)
            assert_closed_by_system(app, ids)
            assert "sqla+sqlite" in log.read_text(errors="replace")  # it really used the SQLite transport
    finally:
        client.close()
    print(f"sqlite worker: result after {elapsed:.1f} s (includes worker start-up)")
