"""Issue 9, items 13, 14 and 17: callbacks and what is printed.

- 13: a callback's 回访人 is whoever recorded its outcome (API and screen), and the form prints it;
- 14: every coded value on the print form and in the registers shows its label, as the screens do;
- 17: a callback can be made by hand, by the API and by the screen, for a finished request."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from zoneinfo import ZoneInfo

from sqlalchemy import select, update

from models.desk import TICKET_CODED

SHANGHAI = ZoneInfo("Asia/Shanghai")


def _ticket(api, ids, **extra) -> int:
    body = {"kind": "other", "channel": "phone", "unit": ids["unit"], "description": "借梯子", **extra}
    resp = api("Staff").post("/api/v1/ticket/", json=body)
    assert resp.status_code == 201, resp.json
    return resp.json["id"]


def _get(api, pk) -> dict:
    return api("Staff").get(f"/api/v1/ticket/{pk}").json["result"]


def _move(api, pk, to, **extra):
    resp = api("Staff").post(f"/api/v1/ticket/{pk}/transition", json={"to": to, "version": _get(api, pk)["version"], **extra})
    assert resp.status_code == 200, resp.json


def _pending_callback(app, pk) -> int:
    from app.extensions import db
    from models.desk import Callback

    with app.app_context():
        cb = db.session.execute(select(Callback.id).where(Callback.ticket_id == pk, Callback.status == "pending")).scalar_one()
        db.session.remove()
    return cb


def _callback(app, cb_id):
    from app.extensions import db
    from models.desk import Callback

    with app.app_context():
        cb = db.session.get(Callback, cb_id)
        row = {"status": cb.status, "assignee": cb.assignee.username if cb.assignee else None, "next_due_at": cb.next_due_at}
        db.session.remove()
    return row


def _cell(page: str, label: str) -> str:
    """The value printed next to a label on the one-ticket form."""
    m = re.search(rf"<th>{re.escape(label)}</th><td>([^<]*)</td>", page)
    assert m, f"no row {label!r} on the form"
    return m.group(1)


# --- 13: who called back -----------------------------------------------------------------------
def test_the_callback_is_by_whoever_recorded_it(app, api, web, make_unit):
    ids = make_unit()
    by_api = _ticket(api, ids, kind="complaint", complaint_about="staff", description="保安态度差")
    by_screen = _ticket(api, ids, kind="complaint", complaint_about="neighbour", description="噪音")
    for pk in (by_api, by_screen):
        _move(api, pk, "resolved")
    cb = _pending_callback(app, by_api)
    assert _callback(app, cb)["assignee"] is None
    resp = api("Staff").post(f"/api/v1/callback/{cb}/outcome", json={"reached": True, "satisfaction": 4})
    assert resp.status_code == 200, resp.json
    assert _callback(app, cb)["assignee"] == "staff"
    cb2 = _pending_callback(app, by_screen)
    resp = web("Supervisor").post(f"/callback/outcome/{cb2}", data={"reached": "1", "satisfaction": "5"})
    assert resp.status_code in (302, 303)
    assert _callback(app, cb2)["assignee"] == "supervisor"
    page = web("Staff").get(f"/ticket/print/{by_api}").get_data(as_text=True)
    assert _cell(page, "回访人") == "StaffTester"
    api_row = api("Staff").get(f"/api/v1/callback/{cb}").json["result"]
    assert "staff" in str(api_row.get("assignee")), api_row


# --- 14: labels, never codes, on paper -----------------------------------------------------------
def test_every_coded_value_prints_its_label_on_the_form(app, api, web, make_unit):
    """Each coded column of a ticket (TICKET_CODED: the screens' vocabulary), set to each of its
    values in turn, prints that value's label on the one-ticket form."""
    from app.extensions import db
    from models.desk import SUBKINDS_OF, Ticket
    from views.desk import TICKET_LABELS

    pk = _ticket(api, make_unit())
    client = web("Staff")
    baseline = {
        "kind": "other",
        "subkind": None,
        "status": "new",
        "channel": "phone",
        "priority": "normal",
        "escalation_level": 0,
        "responsibility": None,
        "medical_path": None,
        "consult_mode": None,
        "complaint_about": None,
    }
    assert set(baseline) == set(TICKET_CODED)  # a new coded column must be added here, and printed
    try:
        for column, vocab in TICKET_CODED.items():
            for code, label in vocab.items():
                values = {**baseline, column: code}
                if column == "subkind":
                    values["kind"] = next(k for k, subs in SUBKINDS_OF.items() if code in subs)
                with app.app_context():  # Core: any value, whatever the rules say
                    db.session.execute(update(Ticket).where(Ticket.id == pk).values(**values))
                    db.session.commit()
                    db.session.remove()
                page = client.get(f"/ticket/print/{pk}").get_data(as_text=True)
                if column == "subkind":
                    assert _cell(page, TICKET_LABELS["kind"].zh).endswith(f"（{label.zh}）"), (column, code)
                else:
                    assert _cell(page, TICKET_LABELS[column].zh) == label.zh, (column, code)
    finally:
        with app.app_context():
            db.session.execute(update(Ticket).where(Ticket.id == pk).values(**baseline))
            db.session.execute(update(Ticket).where(Ticket.id == pk).values(status="cancelled", cancel_reason="测试"))
            db.session.commit()
            db.session.remove()


def test_the_reported_case_level_zero_prints_as_the_screen_says(app, api, web, make_unit):
    pk = _ticket(api, make_unit())
    page = web("Staff").get(f"/ticket/print/{pk}").get_data(as_text=True)
    assert _cell(page, "升级级别") == "前台"
    page = web("Staff").get(f"/ticket/show/{pk}").get_data(as_text=True)
    assert "前台" in page


def test_the_registers_print_no_code(app, api, web):
    """Tickets with every class, sub-class, status, responsibility, emergency path, complaint object
    and callback state, in an estate of their own: the coded cells of all three registers are
    Chinese labels, not one Latin letter."""
    from decimal import Decimal

    from app.extensions import db
    from models.archives import Building, Estate, Unit
    from models.desk import CALLBACK_STATUSES, SUBKINDS_OF, Callback, Ticket
    from views.registers import REGISTERS

    tag = uuid.uuid4().hex[:6]
    day = dt.datetime(2032, 4, 7, 10, 0, tzinfo=SHANGHAI)
    with app.app_context():
        from models.base import acting_as, system_user_id

        with acting_as(system_user_id(db.session)):
            estate = Estate(code=f"PR{tag}", name=f"打印小区{tag}")
            unit = Unit(building=Building(estate=estate, code="1", name="1栋"), code="1-1-101", floor=1, gross_area=Decimal("80"))
            db.session.add_all([estate, unit])
            db.session.flush()
            rows = []
            combos = [(k, None) for k in TICKET_CODED["kind"] if k not in SUBKINDS_OF]
            combos += [(k, s) for k, subs in SUBKINDS_OF.items() for s in subs]
            extras = [
                {"responsibility": r} for r in TICKET_CODED["responsibility"]
            ] + [{"medical_path": m} for m in TICKET_CODED["medical_path"]] + [
                {"complaint_about": c} for c in TICKET_CODED["complaint_about"]
            ] + [{"status": s, "cancel_reason": "撤回"} for s in TICKET_CODED["status"]]
            for n, extra in enumerate([{}] * len(combos) + extras):
                kind, sub = combos[n] if n < len(combos) else ("repair" if "responsibility" in extra else "complaint", None)
                rows.append(
                    {
                        "number": f"PR{tag}-{n:03d}",
                        "estate_id": estate.id,
                        "unit_id": unit.id,
                        "kind": kind,
                        "subkind": sub,
                        "channel": "phone",
                        "priority": "normal",
                        "status": "new",
                        "description": "测试",
                        "reported_at": day,
                        "received_at": day,
                        **extra,
                    }
                )
            ids = []
            for r in rows:  # Core: no rule applies, every value is reachable
                ids.append(db.session.execute(Ticket.__table__.insert().values(
                    version=1, created_at=day, changed_at=day, created_by_id=system_user_id(db.session),
                    changed_by_id=system_user_id(db.session), confidential=False, escalation_level=0,
                    second_level_minutes=30, warn_minutes=2, reply_steps_done=0, resolve_steps_done=0, **r,
                ).returning(Ticket.id)).scalar_one())
            for n, status in enumerate(CALLBACK_STATUSES):
                db.session.execute(Callback.__table__.insert().values(
                    version=1, created_at=day, changed_at=day, created_by_id=system_user_id(db.session),
                    changed_by_id=system_user_id(db.session), ticket_id=ids[-(n + 1)], due_at=day, status=status,
                    attempts=1, steps_done=0, satisfaction=3,
                ))
            db.session.commit()
        estate_id = estate.id
        db.session.remove()
    client = web("Staff")
    coded_cells = ("kind", "responsibility", "complaint_about", "result", "callback")
    for name in REGISTERS:
        page = client.get(f"/ticket/register?register={name}&from=2032-04-07&to=2032-04-07&estate={estate_id}").get_data(as_text=True)
        assert page.count('class="register-line"') >= 1, name
        for cls in coded_cells:
            cells = re.findall(rf'<td class="{cls}">([^<]*)</td>', page)
            assert cells or cls not in {c.key for c in REGISTERS[name]["columns"]}, (name, cls)
            for cell in cells:
                assert not re.search(r"[A-Za-z]", cell), (name, cls, cell)


def test_every_shown_coded_column_has_its_labels_on_every_ticket_screen():
    """The archived register showed 升级级别 as a bare number: both ticket screens take their
    labels from the one vocabulary."""
    import views  # noqa: F401  (registers the resources)
    from views.registry import REGISTRY

    for name, resource in REGISTRY.items():
        if resource.model.__name__ != "Ticket":
            continue
        for column in resource.show_columns:
            if column in TICKET_CODED:
                assert resource.choices.get(column) is TICKET_CODED[column], (name, column)


def test_an_archived_request_shows_the_escalation_label(app, api, web, make_unit):
    from app.extensions import db
    from models.desk import Ticket

    pk = _ticket(api, make_unit())
    with app.app_context():
        db.session.execute(update(Ticket).where(Ticket.id == pk).values(escalation_level=1, archived_at=dt.datetime.now(dt.UTC)))
        db.session.commit()
        db.session.remove()
    page = web("Manager").get(f"/ticket_archive/show/{pk}").get_data(as_text=True)
    assert "主管" in page


# --- 17: a callback made by hand ----------------------------------------------------------------
def test_a_callback_is_created_by_the_api_for_a_finished_request(app, api, make_unit):
    ids = make_unit()
    pk = _ticket(api, ids)
    due = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)).replace(microsecond=0).isoformat()
    # An open request gets no callback; a missing request is named.
    resp = api("Staff").post("/api/v1/callback/", json={"ticket": pk, "due_at": due})
    assert resp.status_code == 422 and "ticket" in resp.json["message"], resp.json
    resp = api("Staff").post("/api/v1/callback/", json={"due_at": due})
    assert resp.status_code == 422 and "ticket" in resp.json["message"], resp.json
    _move(api, pk, "resolved")
    _move(api, pk, "closed")
    resp = api("Staff").post("/api/v1/callback/", json={"ticket": pk, "due_at": due, "comment": "主管要求加访"})
    assert resp.status_code == 201, resp.json
    cb = resp.json["id"]
    row = _callback(app, cb)
    assert row["status"] == "pending" and row["next_due_at"] == dt.datetime.fromisoformat(due)
    # An unsatisfied resident reopens the closed case.
    resp = api("Staff").post(f"/api/v1/callback/{cb}/outcome", json={"reached": True, "satisfaction": 1, "comment": "仍未解决"})
    assert resp.status_code == 200, resp.json
    assert resp.json["ticket_status"] == "reopened"


def test_a_callback_is_created_on_the_screen(app, api, web, make_unit):
    from app.extensions import db
    from models.desk import Callback

    pk = _ticket(api, make_unit())
    _move(api, pk, "resolved")
    client = web("Staff")
    page = client.get("/callback/add").get_data(as_text=True)
    assert 'name="ticket"' in page
    number = _get(api, pk)["number"]
    found = client.get(f"/callback/lookup/ticket?q={number}").get_data(as_text=True)
    assert number in found
    due = (dt.datetime.now(SHANGHAI) + dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    resp = client.post("/callback/add", data={"ticket": str(pk), "due_at": due, "comment": "加访"})
    assert resp.status_code in (302, 303), resp.get_data(as_text=True)[:800]
    with app.app_context():
        assert db.session.execute(select(Callback.id).where(Callback.ticket_id == pk, Callback.comment == "加访")).scalar()
        db.session.remove()
