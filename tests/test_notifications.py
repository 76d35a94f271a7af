"""Notifications on the real services: a major case is told at once and delivered by a real
worker; a group-robot webhook that is down never blocks the ticket and is retried; email goes out
over SMTP; the in-app inbox counts and marks only my rows.

A tiny HTTP server and a tiny SMTP server, both on 127.0.0.1, stand in for the WeCom/DingTalk
robot and the mail relay.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import http.server
import json
import socketserver
import threading
import time
import uuid

import pytest
import redis
from sqlalchemy import delete, select

from tests.conftest import REDIS_URL
from tests.workers import celery_worker, new_queue, routed_to

pytestmark = pytest.mark.services


# --- stand-ins for the robot and the mail relay ------------------------------------------------
class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.received.append((self.path, self.headers.get("Content-Type"), body))
        status = self.server.status
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps({"errcode": 0 if status == 200 else 500}).encode())

    def log_message(self, *args):
        pass


class SmtpHandler(socketserver.StreamRequestHandler):
    """Enough SMTP for smtplib: EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT."""

    def handle(self):
        def say(line: str) -> None:
            self.wfile.write((line + "\r\n").encode())

        say("220 127.0.0.1 test SMTP")
        envelope = {"from": None, "to": []}
        while True:
            raw = self.rfile.readline()
            if not raw:
                return
            cmd = raw.decode("utf-8", "replace").strip()
            verb = cmd.split(" ", 1)[0].upper()
            if verb == "EHLO":
                say("250-127.0.0.1")
                say("250-8BITMIME")
                say("250 SMTPUTF8")
            elif verb == "HELO":
                say("250 127.0.0.1")
            elif verb == "MAIL":
                envelope = {"from": cmd[10:].split(" ")[0].strip("<>"), "to": []}
                say("250 OK")
            elif verb == "RCPT":
                envelope["to"].append(cmd[8:].strip().strip("<>"))
                say("250 OK")
            elif verb == "DATA":
                say("354 End data with <CR><LF>.<CR><LF>")
                lines = []
                while True:
                    line = self.rfile.readline()
                    if line in (b".\r\n", b".\n", b""):
                        break
                    lines.append(line[1:] if line.startswith(b"..") else line)
                self.server.messages.append({**envelope, "data": b"".join(lines)})
                say("250 OK queued")
            elif verb in ("RSET", "NOOP"):
                say("250 OK")
            elif verb == "QUIT":
                say("221 Bye")
                return
            else:
                say("502 Command not implemented")


class ThreadingServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@pytest.fixture(scope="module")
def hook_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    server.received, server.status = [], 500
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def smtp_server():
    server = ThreadingServer(("127.0.0.1", 0), SmtpHandler)
    server.messages = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def worker(app, database_url, tmp_path_factory, smtp_server):
    """One real worker for the module, with the mail relay above; deliveries queued by the web
    requests of this process go to its queue."""
    queue = new_queue()
    env = {
        "DESK_MAIL_SERVER": "127.0.0.1",
        "DESK_MAIL_PORT": str(smtp_server.server_address[1]),
        "DESK_WEBHOOK_TIMEOUT_SECONDS": "3",
    }
    tmp = tmp_path_factory.mktemp("notify-worker")
    try:
        with (
            routed_to(queue),
            celery_worker(tmp, database_url, REDIS_URL, queue, pool="prefork", concurrency=1, env=env) as w,
        ):
            yield w
    finally:
        redis.Redis.from_url(REDIS_URL).delete(queue)


@pytest.fixture()
def route(app):
    """``route(role, channel, target=None)``: an active NotificationRoute, removed afterwards so
    no other test's major case is sent to this module's stand-ins."""
    from app.extensions import db
    from models.base import acting_as, system_user_id
    from models.desk import NotificationRoute

    made = []

    def factory(role: str, channel: str, target: str | None = None) -> int:
        with app.app_context():
            with acting_as(system_user_id(db.session)):
                r = NotificationRoute(role=role, channel=channel, target=target, active=True)
                db.session.add(r)
                db.session.commit()
            made.append(r.id)
            db.session.remove()
        return made[-1]

    yield factory
    with app.app_context():
        db.session.execute(delete(NotificationRoute).where(NotificationRoute.id.in_(made)))
        db.session.commit()
        db.session.remove()


# --- helpers ---------------------------------------------------------------------------------
def major_ticket(api, unit_id: int, kind: str = "security", **extra) -> dict:
    body = {
        "kind": kind,
        "channel": "phone",
        "priority": "urgent",
        "unit": unit_id,
        "description": f"测试重大事件 {uuid.uuid4().hex[:6]}",
    }
    if kind == "security":
        body.update(subkind="theft", address="2栋地下车库", callback_phone="13812345678")
    if kind == "disaster":
        body.update(subkind="fire", address="3栋 12 楼", callback_phone="13812345678")
    if kind == "emergency_medical":
        body.update(priority="major", address="1栋1单元101", callback_phone="13812345678", medical_path="ambulance")
    body.update(extra)
    resp = api("Staff").post("/api/v1/ticket/", json=body)
    assert resp.status_code == 201, resp.json
    return api("Staff").get(f"/api/v1/ticket/{resp.json['id']}").json["result"] | {"id": resp.json["id"]}


def rows(app, ticket_id: int, **where) -> list:
    from app.extensions import db
    from models.desk import Notification

    with app.app_context():
        stmt = select(Notification).where(Notification.subject_type == "ticket", Notification.subject_id == ticket_id)
        for k, v in where.items():
            stmt = stmt.where(getattr(Notification, k) == v)
        out = db.session.execute(stmt.order_by(Notification.id)).scalars().all()
        for n in out:
            db.session.expunge(n)
        db.session.remove()
    return out


def wait_rows(app, ticket_id, predicate, timeout, worker, what, **where):
    deadline = time.monotonic() + timeout
    got = []
    while time.monotonic() < deadline:
        got = rows(app, ticket_id, **where)
        if got and predicate(got):
            return got
        if not worker.alive():
            pytest.fail(f"worker died waiting for {what}:\n{worker.log()}")
        time.sleep(0.2)
    pytest.fail(
        f"{what}: not within {timeout} s; rows {[(n.channel, n.state, n.last_error) for n in got]}\n{worker.log()}"
    )


def move(api, pk, to):
    version = api("Staff").get(f"/api/v1/ticket/{pk}").json["result"]["version"]
    return api("Staff").post(f"/api/v1/ticket/{pk}/transition", json={"to": to, "version": version})


# --- 4. a major emergency is told at once and delivered ------------------------------------------
def test_major_emergency_is_notified_at_once_and_delivered(app, api, make_unit, worker):
    t0 = time.perf_counter()
    ticket = major_ticket(api, make_unit()["unit"], kind="emergency_medical")
    inbox = rows(app, ticket["id"], kind="major_incident", channel="inbox")
    # The rows exist as soon as the POST has answered: no sweep, no worker needed for that.
    recipients = {n.recipient for n in inbox}
    with app.app_context():
        sm = app.appbuilder.sm
        want = {f"user:{sm.find_user(username='supervisor').id}", f"user:{sm.find_user(username='manager').id}"}
    assert want <= recipients
    sent = wait_rows(
        app,
        ticket["id"],
        lambda r: all(n.state == "sent" for n in r),
        60,
        worker,
        "inbox rows sent",
        kind="major_incident",
        channel="inbox",
    )
    assert all(n.sent_at is not None and n.attempts == 1 for n in sent)
    print(f"major emergency: {len(inbox)} inbox rows at once; all sent after {time.perf_counter() - t0:.2f} s")


# --- 5. a webhook that is down ---------------------------------------------------------------------
def test_webhook_down_leaves_the_ticket_alone_and_is_retried(app, api, make_unit, worker, route, hook_server):
    hook_server.status = 500
    hook_server.received.clear()
    url = f"http://127.0.0.1:{hook_server.server_address[1]}/hook"
    route("Supervisor", "webhook", url)

    ticket = major_ticket(api, make_unit()["unit"], kind="security")
    # The workflow goes on whatever the robot does.
    resp = move(api, ticket["id"], "acknowledged")
    assert resp.status_code == 200, resp.json
    failed = wait_rows(
        app,
        ticket["id"],
        lambda r: r[0].state == "failed",
        60,
        worker,
        "the webhook row failed",
        kind="major_incident",
        channel="webhook",
    )
    (n,) = failed
    assert n.attempts >= 1 and n.last_error and "500" in n.last_error, (n.attempts, n.last_error)
    assert hook_server.received, "the robot was never called"
    assert api("Staff").get(f"/api/v1/ticket/{ticket['id']}").json["result"]["status"] == "acknowledged"

    # The robot is back: the redelivery sweep sends it (the task's own retry would too, later).
    hook_server.status = 200
    hook_server.received.clear()
    app.extensions["celery"].send_task("jobs.notify.redeliver", queue=worker.queue)
    (n,) = wait_rows(
        app,
        ticket["id"],
        lambda r: r[0].state == "sent",
        60,
        worker,
        "the webhook row sent",
        kind="major_incident",
        channel="webhook",
    )
    assert n.attempts >= 2 and n.last_error is None and n.sent_at is not None
    posted = [json.loads(body) for path, ctype, body in hook_server.received if path == "/hook"]
    ours = [p for p in posted if ticket["number"] in p.get("text", {}).get("content", "")]
    assert ours, posted
    assert ours[0]["msgtype"] == "text" and set(ours[0]) == {"msgtype", "text"}
    assert "重大事件" in ours[0]["text"]["content"]
    assert any(ctype.startswith("application/json") for _, ctype, _ in hook_server.received)


# --- 6. email over SMTP ------------------------------------------------------------------------
def test_email_route_sends_the_major_incident_over_smtp(app, api, make_unit, worker, route, smtp_server):
    route("Manager", "email")
    smtp_server.messages.clear()
    ticket = major_ticket(api, make_unit()["unit"], kind="disaster")
    mails = wait_rows(
        app,
        ticket["id"],
        lambda r: all(n.state == "sent" for n in r),
        60,
        worker,
        "email rows sent",
        kind="major_incident",
        channel="email",
    )
    with app.app_context():
        manager_email = app.appbuilder.sm.find_user(username="manager").email
    assert any(n.recipient.startswith("user:") for n in mails)
    got = []
    for m in smtp_server.messages:
        msg = email.message_from_bytes(m["data"], policy=email.policy.default)
        got.append((m["to"], str(msg["Subject"]), msg.get_content()))
    ours = [g for g in got if ticket["number"] in g[1]]
    assert ours, got
    assert any(manager_email in to for to, _, _ in ours)
    assert "重大事件" in ours[0][1] and ticket["description"] in ours[0][2]


# --- 7. the inbox ----------------------------------------------------------------------------
def test_inbox_counts_marks_and_lists_only_my_rows(app, api):
    from app.extensions import db
    from models.desk import claim_notifications

    with app.app_context():
        sm = app.appbuilder.sm
        staff, manager = sm.find_user(username="staff"), sm.find_user(username="manager")
        staff_id = staff.id
        subject = int(time.time() * 1000) % 2_000_000_000
        mine = claim_notifications(
            db.session,
            subject_type="test",
            subject_id=subject,
            kind="warn",
            deadline_at=dt.datetime.now(dt.UTC),
            people={"Staff": [staff]},
            title="给我的",
            body="x",
        )
        mine += claim_notifications(
            db.session,
            subject_type="test",
            subject_id=subject + 1,
            kind="warn",
            deadline_at=dt.datetime.now(dt.UTC),
            people={"Staff": [staff]},
            title="给我的 2",
            body="x",
        )
        theirs = claim_notifications(
            db.session,
            subject_type="test",
            subject_id=subject,
            kind="warn",
            deadline_at=dt.datetime.now(dt.UTC),
            people={"Manager": [manager]},
            title="给经理的",
            body="x",
        )
        db.session.info.pop("desk_new_notifications", None)  # nothing to deliver in this test
        db.session.commit()
        db.session.remove()
    assert len(mine) == 2 and len(theirs) == 1

    def unread(role):
        resp = api(role).get("/api/v1/notification/unread")
        assert resp.status_code == 200, resp.json
        return resp.json["unread"]

    def my_total(user_id, only_unread_inbox):
        from models.desk import Notification

        with app.app_context():
            stmt = select(Notification.id).where(Notification.user_id == user_id)
            if only_unread_inbox:
                stmt = stmt.where(Notification.channel == "inbox", Notification.read_at.is_(None))
            n = len(db.session.execute(stmt).all())
            db.session.remove()
        return n

    before = unread("Staff")
    assert before == my_total(staff_id, True) and before >= 2
    # someone else's row: 404, and it stays unread
    assert api("Staff").post(f"/api/v1/notification/{theirs[0]}/read").status_code == 404
    assert api("Staff").post("/api/v1/notification/999999999/read").status_code == 404
    manager_unread = unread("Manager")
    # mine: read once (200), then it is no longer unread (404 again)
    assert api("Staff").post(f"/api/v1/notification/{mine[0]}/read").status_code == 200
    assert unread("Staff") == before - 1
    assert api("Staff").post(f"/api/v1/notification/{mine[0]}/read").status_code == 404
    assert unread("Manager") == manager_unread
    assert api("Manager").post(f"/api/v1/notification/{theirs[0]}/read").status_code == 200
    assert unread("Manager") == manager_unread - 1

    # The list and the detail show my rows only (base filter).
    resp = api("Staff").get("/api/v1/notification/?q=(page:0,page_size:100)")
    assert resp.status_code == 200, resp.json
    assert resp.json["count"] == my_total(staff_id, False)
    assert mine[1] in resp.json["ids"] and theirs[0] not in resp.json["ids"]
    assert api("Staff").get(f"/api/v1/notification/{theirs[0]}").status_code == 404
    assert api("Staff").get(f"/api/v1/notification/{mine[1]}").status_code == 200


def test_navbar_bell_script_is_served_and_asks_for_the_unread_count(web):
    client = web("Staff")
    resp = client.get("/static/desk/desk.js")
    assert resp.status_code == 200
    js = resp.get_data(as_text=True)
    assert "/api/v1/notification/unread" in js and "/notification/list/" in js and ".navbar-right" in js
    page = client.get("/notification/list/")
    assert page.status_code == 200
    assert "desk/desk.js" in page.get_data(as_text=True)
