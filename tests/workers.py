"""Real Celery workers (and beat) for the tests, on this run's PostgreSQL test database.

Every worker listens on a queue of its own (``desk-test-<random>``), and everything it sends
itself (beat's periodic tasks, deliveries queued by a sweep, retries) goes to that queue too: the
worker is started through this module, which sets the app's default queue before handing over to
``celery -A jobs.worker ...``. In the test process, ``routed_to(queue)`` does the same for the
deliveries that the web requests queue.

    python -m tests.workers worker -B --pool=prefork -c 1 ...   # with DESK_TEST_QUEUE set
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def new_queue() -> str:
    return f"desk-test-{uuid.uuid4().hex[:8]}"


def _reset_routing(celery) -> None:
    for name in ("queues", "default_queue", "router"):
        celery.amqp.__dict__.pop(name, None)


@contextlib.contextmanager
def routed_to(queue: str):
    """Tasks sent from this process (e.g. the after-commit delivery hook) go to ``queue``."""
    from celery import _state, current_app

    from jobs.notify import deliver_notification

    # Every Celery app of this process: tests build several Flask apps (each with its own Celery),
    # and which one is "current" when a task is sent depends on what ran before.
    candidates = [current_app._get_current_object(), deliver_notification.app, *list(_state._apps)]
    apps = {id(a): a for a in candidates}
    old = {k: a.conf.task_default_queue for k, a in apps.items()}
    for a in apps.values():
        a.conf.task_default_queue = queue
        _reset_routing(a)
    try:
        yield
    finally:
        for k, a in apps.items():
            a.conf.task_default_queue = old[k]
            _reset_routing(a)


class Worker:
    def __init__(self, proc: subprocess.Popen, log_path: Path, queue: str):
        self.proc, self.log_path, self.queue = proc, log_path, queue

    def log(self, tail: int = 6000) -> str:
        return self.log_path.read_text(errors="replace")[-tail:]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def children(self) -> list[int]:
        """Pool processes (prefork) of this worker."""
        try:
            out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(self.proc.pid)], capture_output=True, text=True)
        except OSError:
            return []
        return [int(p) for p in out.stdout.split()]

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"worker exited with {self.proc.returncode}:\n{self.log()}")
            if " ready." in self.log_path.read_text(errors="replace"):
                return
            time.sleep(0.2)
        raise RuntimeError(f"worker not ready within {timeout} s:\n{self.log()}")

    def kill(self) -> None:
        """SIGKILL the worker and its pool (and beat): no warm shutdown, nothing acknowledged."""
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)  # warm shutdown
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


@contextlib.contextmanager
def celery_worker(
    tmp_path: Path,
    database_url: str,
    broker: str,
    queue: str,
    *,
    pool: str = "solo",
    concurrency: int = 1,
    beat: bool = False,
    env: dict | None = None,
    ready: bool = True,
):
    """A real ``celery -A jobs.worker worker`` process (optionally ``-B``); always stopped."""
    log_path = tmp_path / f"worker-{uuid.uuid4().hex[:6]}.log"
    (tmp_path / "instance").mkdir(exist_ok=True)
    full_env = {
        **os.environ,
        "DESK_DATABASE_URL": database_url,
        "DESK_BROKER_URL": broker,
        "DESK_RESULT_BACKEND": broker,
        "DESK_INSTANCE_DIR": str(tmp_path / "instance"),
        # The worker's own app refuses to start without a key of its own (app/factory.py).
        "DESK_SECRET_KEY": os.environ.get("DESK_SECRET_KEY") or "test-secret-key-that-is-long-enough-for-hs256",
        "DESK_TEST_QUEUE": queue,
        "DESK_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1:*,localhost:*",
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    cmd = [
        sys.executable,
        "-m",
        "tests.workers",
        "worker",
        f"--pool={pool}",
        "-Q",
        queue,
        "--loglevel=INFO",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "-n",
        f"{queue}-{uuid.uuid4().hex[:4]}@%h",
    ]
    if pool == "prefork":
        cmd += ["-c", str(concurrency)]
    if beat:
        cmd += ["-B", "-s", str(tmp_path / f"beat-{uuid.uuid4().hex[:6]}")]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd, cwd=REPO, env=full_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    worker = Worker(proc, log_path, queue)
    try:
        if ready:
            worker.wait_ready()
        yield worker
    finally:
        worker.stop()


def main() -> None:
    from celery.bin.celery import main as celery_main

    from jobs.worker import celery

    queue = os.environ.get("DESK_TEST_QUEUE")
    if queue:
        celery.conf.task_default_queue = queue
    deliveries = os.environ.get("DESK_TEST_DELIVERY_QUEUE")
    if deliveries:  # deliveries elsewhere, when a test is about the sweep alone
        celery.conf.task_routes = {"jobs.notify.deliver": {"queue": deliveries}}
    sys.argv = ["celery", "-A", "jobs.worker", *sys.argv[1:]]
    celery_main()


if __name__ == "__main__":
    main()
