"""Delivery of notifications: its own task per message, with retries and a recorded state, so a
channel that is down never blocks or fails the ticket workflow that caused the message.

- rows are created ``pending`` by ``models.desk.claim_notifications`` in the writer's transaction;
- after that transaction commits, a delivery task is queued per new row (``after_commit`` hook);
- a delivery takes a lease on its row (``pending``/``failed`` -> ``sending``) so two workers never
  send the same row at once; a worker killed while sending leaves a lease that expires, and the
  redelivery sweep queues the row again: nothing is skipped.
- inbox rows are delivered by existing: they are marked sent at once.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import smtplib
import urllib.request
from email.message import EmailMessage

from celery import shared_task
from flask import current_app
from sqlalchemy import event, or_, select, update
from sqlalchemy.orm import Session

from app.extensions import db
from models.base import utcnow
from models.desk import Notification, NotificationRoute, webhook_host_allowed

log = logging.getLogger(__name__)


@event.listens_for(Session, "after_commit")
def _queue_new_notifications(session: Session) -> None:
    ids = session.info.pop("desk_new_notifications", None)
    if ids:
        queue_deliveries(ids)


@event.listens_for(Session, "after_soft_rollback")
def _forget_new_notifications(session: Session, previous_transaction) -> None:
    session.info.pop("desk_new_notifications", None)


def queue_deliveries(ids: list[int]) -> None:
    # The current Flask app's Celery, not the process-wide default (a process may hold several apps).
    from flask import current_app as flask_app
    from flask import has_app_context

    celery = flask_app.extensions.get("celery") if has_app_context() else None
    task = celery.tasks[deliver_notification.name] if celery is not None else deliver_notification
    for nid in ids:
        try:
            task.apply_async(args=[nid], ignore_result=True)
        except Exception:  # the broker is down: the redelivery sweep will queue it later
            log.warning("could not queue notification %s; the redelivery sweep will", nid, exc_info=True)


def _lease(nid: int, now: dt.datetime) -> bool:
    lease_seconds = int(current_app.config.get("NOTIFY_LEASE_SECONDS", 120))
    result = db.session.execute(
        update(Notification)
        .where(
            Notification.id == nid,
            or_(
                Notification.state.in_(("pending", "failed")),
                (Notification.state == "sending") & (Notification.lease_until < now),
            ),
        )
        .values(
            state="sending", lease_until=now + dt.timedelta(seconds=lease_seconds), attempts=Notification.attempts + 1
        )
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return result.rowcount == 1


def _send_email(n: Notification) -> None:
    cfg = current_app.config
    msg = EmailMessage()
    msg["Subject"] = n.title
    msg["From"] = cfg["MAIL_DEFAULT_SENDER"]
    msg["To"] = n.user.email
    msg.set_content(n.body or n.title)
    with smtplib.SMTP(cfg["MAIL_SERVER"], int(cfg["MAIL_PORT"]), timeout=10) as smtp:
        if cfg.get("MAIL_USE_TLS"):
            smtp.starttls()
        if cfg.get("MAIL_USERNAME"):
            smtp.login(cfg["MAIL_USERNAME"], cfg["MAIL_PASSWORD"])
        smtp.send_message(msg)


def _post_webhook(n: Notification) -> None:
    route_id = int(n.recipient.split(":", 1)[1])
    route = db.session.get(NotificationRoute, route_id)
    if route is None or not route.active:
        raise RuntimeError("webhook route gone")
    if not webhook_host_allowed(route.target):
        raise RuntimeError("webhook host not in WEBHOOK_ALLOWED_HOSTS")
    # WeCom / DingTalk group robots both take {"msgtype": "text", "text": {"content": ...}}.
    payload = {"msgtype": "text", "text": {"content": f"{n.title}\n{n.body or ''}".strip()}}
    req = urllib.request.Request(
        route.target,
        data=json.dumps(payload, ensure_ascii=False).encode("utf-8"),
        headers={"Content-Type": "application/json; charset=utf-8"},
        method="POST",
    )
    timeout = float(current_app.config.get("WEBHOOK_TIMEOUT_SECONDS", 5))
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 (URL set by a Manager)
        if resp.status >= 300:
            raise RuntimeError(f"webhook answered {resp.status}")


@shared_task(
    name="jobs.notify.deliver",
    bind=True,
    max_retries=8,
    default_retry_delay=30,
    retry_backoff=True,
    retry_backoff_max=1800,
)
def deliver_notification(self, nid: int) -> str:
    now = utcnow()
    if not _lease(nid, now):
        return "skipped"  # sent already, or another worker holds it
    n = db.session.get(Notification, nid)
    try:
        if n.channel == "email":
            _send_email(n)
        elif n.channel == "webhook":
            _post_webhook(n)
        n.state, n.sent_at, n.last_error, n.lease_until = "sent", utcnow(), None, None
        db.session.commit()
        return "sent"
    except Exception as exc:
        n.state, n.last_error, n.lease_until = "failed", f"{type(exc).__name__}: {exc}"[:2000], None
        db.session.commit()
        if self.request.called_directly:
            return "failed"
        raise self.retry(exc=exc, countdown=min(30 * 2 ** (n.attempts - 1), 1800)) from None


@shared_task(name="jobs.notify.redeliver")
def redeliver(now: str | None = None) -> int:
    """Queue rows left pending (broker was down), failed (retries ran out) or with an expired
    lease (worker killed while sending). Idempotent: the lease decides who sends."""
    moment = dt.datetime.fromisoformat(now) if now else utcnow()
    grace = moment - dt.timedelta(seconds=int(current_app.config.get("NOTIFY_REDELIVER_AFTER_SECONDS", 60)))
    max_attempts = int(current_app.config.get("NOTIFY_MAX_ATTEMPTS", 20))
    ids = (
        db.session.execute(
            select(Notification.id)
            .where(
                Notification.attempts < max_attempts,
                or_(
                    (Notification.state == "pending") & (Notification.created_at < grace),
                    (Notification.state == "failed"),
                    (Notification.state == "sending") & (Notification.lease_until < moment),
                ),
            )
            .limit(1000)
        )
        .scalars()
        .all()
    )
    db.session.rollback()
    queue_deliveries(list(ids))
    return len(ids)
