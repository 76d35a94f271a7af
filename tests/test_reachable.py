"""Everything reachable (issue 12, part 3): starting from the home page, each role reaches every
page the registry gives it (every list, every report and register with a menu entry) within
three clicks, by following the links the pages show, and no link it is shown answers 4xx/5xx.

Links are followed as a browser would (GET, redirects followed); one link of each shape is opened
(``/ticket/show/12`` and ``/ticket/show/13`` are one shape), so the crawl stays bounded however
much data there is. The registry and the role matrix are walked: a resource or a report added
later is covered without a line here.
"""

from __future__ import annotations

import html
import re
from collections import deque
from urllib.parse import parse_qsl, urlsplit

import pytest

from app import roles as R
from tests import conftest as cf
from tests.scene import two_estates
from views.registry import REGISTRY, menu_entries_for

ROLES = ("Manager", "Supervisor", "Staff", "Committee")
# Quoted or not (FAB's sort headers write ``href=/x/list/?_oc_...``).
HREF = re.compile(r"""<a\b[^>]*\bhref=(?:"([^"]+)"|'([^']+)'|([^\s>"']+))""", re.I)
# Not pages: signing out, switching the language, files the page loads, the API.
SKIP = ("/logout", "/lang/", "/static/", "/api/", "/login", "/favicon")
MAX_CLICKS = 3


@pytest.fixture(scope="module")
def app():
    with cf.app_aside("desk_reach") as flask_app:
        yield flask_app


@pytest.fixture(scope="module")
def office(app):
    return two_estates(app, ("RCA", "RCB"), ROLES)


def _client(app, username):
    client = cf.FreshContextClient(app, app.test_client())
    resp = client.post("/login/", data={"username": username, "password": cf.PASSWORD})
    assert resp.status_code in (302, 303)
    return client


def _local(href: str) -> str | None:
    href = html.unescape(href).strip()
    if href.startswith(("#", "javascript:", "mailto:", "tel:")):
        return None
    parts = urlsplit(href)
    if parts.scheme or parts.netloc:
        return None  # another host (there must be none: the pages load nothing from outside)
    if not parts.path.startswith("/") or parts.path.startswith(SKIP):
        return None
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _shape(url: str) -> str:
    """One link per shape: ids are one, query values other than a view's name are one."""
    parts = urlsplit(url)
    path = re.sub(r"/\d+(?=/|$)", "/N", parts.path)
    # A view's name and a list's sort column are part of the shape: each sort header is opened.
    named_keys = ("register", "preset")
    keys = sorted({k if k in named_keys else k.split("_")[0] or k[:4] for k, _v in parse_qsl(parts.query)})
    named = sorted(f"{k}={v}" for k, v in parse_qsl(parts.query) if k in named_keys or k.startswith("_oc_"))
    return path + "?" + "&".join(keys + named)


def _expected(role: str) -> set[str]:
    """The pages the registry gives the role: each list it reads, each page a menu entry opens."""
    pages = set()
    for name, res in REGISTRY.items():
        rights = R.rights_of(role, name)
        if "read" not in rights:
            continue
        pages.add(f"/{name}/list/" if res.records and res.menu_route == "list" else f"/{name}/{res.menu_route}")
        for entry in res.menus:
            if (entry.menu_name(name), entry.category) in menu_entries_for(name, lambda r: R.rights_of(role, r)):
                pages.add(f"/{name}/{entry.path}")
    return pages


def crawl(client) -> tuple[dict[str, int], dict[str, tuple[int, str]], int]:
    """Breadth first from the home page: the fewest clicks to each link seen (pages up to
    MAX_CLICKS - 1 clicks deep are opened and their links read), and the links that answered
    4xx/5xx with the page that showed them. One page of each shape is opened."""
    clicks: dict[str, int] = {}
    broken: dict[str, tuple[int, str]] = {}
    opened: set[str] = set()
    queue = deque([("/", 0, "")])
    pages = 0
    while queue:
        url, depth, source = queue.popleft()
        shape = _shape(url)
        if shape in opened:
            continue
        opened.add(shape)
        resp = client.get(url, follow_redirects=True)
        pages += 1
        if resp.status_code >= 400:
            broken[url] = (resp.status_code, source)
            continue
        if depth >= MAX_CLICKS or "text/html" not in (resp.content_type or ""):
            continue
        for quoted in HREF.findall(resp.get_data(as_text=True)):
            link = _local(next(h for h in quoted if h))
            if link is None:
                continue
            if link not in clicks or clicks[link] > depth + 1:
                clicks[link] = depth + 1
            queue.append((link, depth + 1, url))
    return clicks, broken, pages


@pytest.mark.parametrize("role", [*ROLES, "Admin"])
def test_every_page_of_the_role_is_within_three_clicks_and_no_link_is_broken(app, office, role):
    username = "admin" if role == "Admin" else f"{role.lower()}_a"
    clicks, broken, pages = crawl(_client(app, username))
    assert not broken, f"{role}: links answering 4xx/5xx (link: (status, page showing it)): {broken}"
    expected = _expected(role)
    assert expected, role
    far = {p: clicks.get(p) for p in expected if clicks.get(p) is None or clicks[p] > MAX_CLICKS}
    assert not far, f"{role}: pages not reached within {MAX_CLICKS} clicks: {sorted(far)}"
    # The figure for the closing note.
    print(f"\n{role}: {len(expected)} registered pages reached within {MAX_CLICKS} clicks; {pages} pages opened; broken links: 0")


def test_the_reports_and_registers_are_in_the_menu(app, office):
    """The menu itself (one click) leads to every report and register the role may read; the
    arrears by household only for those who read bills."""
    page = _client(app, "committee_a").get("/").get_data(as_text=True)
    for href in ("/ticket/report", "/ticket/register?register=help", "/ticket/register?register=repair",
                 "/ticket/register?register=complaint", "/collection_report/report", "/service_order/report",
                 "/renovation/report"):
        assert f'href="{href}"' in html.unescape(page) or f'href="{href}"' in page, href
    assert "/collection_report/arrears" not in page  # the Committee reads no bills
    staff = _client(app, "staff_a").get("/").get_data(as_text=True)
    assert 'href="/collection_report/arrears"' in staff


def test_a_notification_opens_its_record_and_is_read(app, office):
    """Opening a notification from the list reads it (the bell counts one fewer) and its link
    goes to the record it is about."""
    import datetime as dt

    from flask_appbuilder.security.sqla.models import User
    from sqlalchemy import select

    from app.extensions import db
    from models.desk import Notification, Ticket

    with app.app_context():
        uid = db.session.execute(select(User.id).where(User.username == "supervisor_a")).scalar_one()
        ticket = db.session.execute(select(Ticket).where(Ticket.estate_id == office["A"]).limit(1)).scalar_one()
        note = Notification(
            user_id=uid, recipient=f"user:{uid}", channel="inbox", kind="reply_level1", subject_type="ticket",
            subject_id=ticket.id, deadline_at=dt.datetime.now(dt.UTC), title=f"求助单 {ticket.number} 已升级到主管",
            state="sent",
        )
        db.session.add(note)
        db.session.commit()
        note_id, ticket_id, number = note.id, ticket.id, ticket.number
        db.session.remove()
    client = _client(app, "supervisor_a")
    before = client.get("/api/v1/notification/unread").json["unread"]
    assert before >= 1
    unread_list = client.get("/notification/list/?preset=unread").get_data(as_text=True)
    assert number in unread_list
    detail = client.get(f"/notification/show/{note_id}").get_data(as_text=True)
    assert f"/notification/open/{note_id}" in detail
    assert client.get("/api/v1/notification/unread").json["unread"] == before - 1
    resp = client.get(f"/notification/open/{note_id}")
    assert resp.status_code == 302 and resp.headers["Location"].endswith(f"/ticket/show/{ticket_id}")
    # Another user's notification opens nothing.
    other = _client(app, "staff_a").get(f"/notification/open/{note_id}")
    assert other.status_code == 404


def test_related_records_link_to_each_other(app, office):
    """Request -> its unit and owner; unit -> its owners, residents, requests, bills, payments,
    renovations, service orders; owner -> their units. Only what the role may read."""
    from sqlalchemy import select

    from app.extensions import db
    from models.desk import Ticket
    from models.fees import Bill

    with app.app_context():
        t = db.session.execute(
            select(Ticket).where(Ticket.estate_id == office["A"], Ticket.unit_id.is_not(None), Ticket.owner_id.is_not(None))
        ).scalars().first()
        assert t is not None, "the scene has no request with a unit and an owner"
        ticket_id, unit_id, owner_id = t.id, t.unit_id, t.owner_id
        bill_id = db.session.execute(select(Bill.id).where(Bill.unit_id == unit_id)).scalars().first()
        db.session.remove()
    staff = _client(app, "staff_a")
    page = staff.get(f"/ticket/show/{ticket_id}").get_data(as_text=True)
    assert f'href="/unit/show/{unit_id}"' in page and f'href="/owner/show/{owner_id}"' in page
    unit_page = staff.get(f"/unit/show/{unit_id}").get_data(as_text=True)
    for block in ("desk-owners", "desk-residents", "desk-tickets", "desk-bills", "desk-payments"):
        assert block in unit_page, block
    assert f"/ticket/show/{ticket_id}" in unit_page and f"/owner/show/{owner_id}" in unit_page
    if bill_id is not None:
        assert f"/bill/show/{bill_id}" in unit_page
    owner_page = staff.get(f"/owner/show/{owner_id}").get_data(as_text=True)
    assert f"/unit/show/{unit_id}" in owner_page and f"/ticket/show/{ticket_id}" in owner_page
    # The Committee reads units and requests, never bills or payments.
    board = _client(app, "committee_a").get(f"/unit/show/{unit_id}").get_data(as_text=True)
    assert "desk-tickets" in board and "desk-bills" not in board and "desk-payments" not in board
