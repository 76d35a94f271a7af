"""Issue 9, item 6: closed, cancelled and archived records are read-only, except for the documented
way out (reopening a closed request).

The rule is declared on the model (``__final__ = FinalStates(...)``, models/base.py) and checked
before every flush, whatever the path: the API, the screen, a job or an import through the ORM.
It is answered with a 4xx naming each field and the reason."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select, update

from models.base import AuditedModel, FinalStates
from tests.test_issue9_desk_callbacks_print import _get, _move, _ticket


def _closed(api, ids) -> int:
    pk = _ticket(api, ids)
    _move(api, pk, "resolved")
    _move(api, pk, "closed")
    return pk


def _register_line(web, pk, number) -> str:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    day = datetime.now(ZoneInfo("Asia/Shanghai")).date().isoformat()
    page = web("Staff").get(f"/ticket/register?register=help&from={day}&to={day}").get_data(as_text=True)
    start = page.index(f'data-number="{number}"')
    return page[start : page.index("</tr>", start)]


def test_a_closed_request_cannot_be_rewritten_by_the_api(api, web, make_unit):
    ids = make_unit()
    pk = _closed(api, ids)
    t = _get(api, pk)
    printed = _register_line(web, pk, t["number"])
    for change in ({"description": "改写后的内容"}, {"priority": "major"}, {"unit": make_unit()["unit"]}):
        resp = api("Staff").put(f"/api/v1/ticket/{pk}", json={**change, "version": t["version"]})
        assert resp.status_code == 422, resp.json
        field = next(iter(change))
        assert field in resp.json["message"], resp.json
        assert "已关闭" in resp.json["message"][field][0] and "重新打开" in resp.json["message"][field][0]
    assert _get(api, pk)["description"] == "借梯子" and _get(api, pk)["version"] == t["version"]
    assert _register_line(web, pk, t["number"]) == printed
    resp = api("Staff").delete(f"/api/v1/ticket/{pk}")
    assert resp.status_code == 422 and "status" in resp.json["message"], resp.json
    # Saving what it already holds is no change and goes through.
    resp = api("Staff").put(f"/api/v1/ticket/{pk}", json={"description": "借梯子", "visitor_name": "", "version": t["version"]})
    assert resp.status_code == 200, resp.json


def test_reopening_is_the_way_back(api, make_unit):
    pk = _closed(api, make_unit())
    _move(api, pk, "reopened")
    t = _get(api, pk)
    assert t["status"] == "reopened" and t["closed_at"] is None
    resp = api("Staff").put(f"/api/v1/ticket/{pk}", json={"description": "补充：梯子要 3 米", "version": t["version"]})
    assert resp.status_code == 200, resp.json


def test_a_cancelled_request_is_final(api, make_unit):
    pk = _ticket(api, make_unit())
    _move(api, pk, "cancelled", reason="住户撤回")
    t = _get(api, pk)
    resp = api("Staff").put(f"/api/v1/ticket/{pk}", json={"description": "改写", "version": t["version"]})
    assert resp.status_code == 422 and "description" in resp.json["message"], resp.json
    assert "已取消" in resp.json["message"]["description"][0]


def test_the_screen_says_read_only_and_refuses_the_edit_with_the_reason(web, api, make_unit):
    pk = _ticket(api, make_unit(), kind="complaint", complaint_about="neighbour", description="噪音")
    _move(api, pk, "resolved")
    client = web("Staff")
    cbs = api("Staff").get("/api/v1/callback/?q=(order_column:id,order_direction:desc,page_size:20)").json["result"]
    cb = next(c for c in cbs if c["ticket"]["number"] == _get(api, pk)["number"])
    resp = client.post(f"/callback/outcome/{cb['id']}", data={"reached": "1", "satisfaction": "4", "comment": "满意"})
    assert resp.status_code in (302, 303)
    assert "只读" in client.get(f"/ticket/show/{pk}").get_data(as_text=True)  # closed by the callback
    version = api("Staff").get(f"/api/v1/callback/{cb['id']}").json["result"]["version"]
    resp = client.post(
        f"/callback/edit/{cb['id']}",
        data={"due_at": "2030-01-01T09:00", "comment": "改写回访意见", "version": str(version)},
    )
    assert resp.status_code == 422
    assert "为只读记录" in resp.get_data(as_text=True)
    assert api("Staff").get(f"/api/v1/callback/{cb['id']}").json["result"]["comment"] == "满意"


def test_a_job_or_import_through_the_orm_is_refused_too(app, api, make_unit):
    from app.extensions import db
    from models.base import ReadOnlyRecord, acting_as, system_user_id
    from models.desk import Ticket, TicketEvent

    pk = _closed(api, make_unit())
    with app.app_context():
        with acting_as(system_user_id(db.session)):
            events = db.session.execute(select(TicketEvent.id).where(TicketEvent.ticket_id == pk)).all()
            t = db.session.get(Ticket, pk)
            t.description = "任务改写"
            t.reply = "补一条答复"  # its hook would write a timeline entry: none may be left behind
            with pytest.raises(ReadOnlyRecord) as err:
                db.session.commit()
            assert {"description", "reply"} <= set(err.value.errors)
            db.session.rollback()
            assert db.session.execute(select(TicketEvent.id).where(TicketEvent.ticket_id == pk)).all() == events
            db.session.delete(db.session.get(Ticket, pk))
            with pytest.raises(ReadOnlyRecord):
                db.session.flush()
            db.session.rollback()
        db.session.remove()


def test_an_archived_request_cannot_be_changed_nor_reopened(app, api, make_unit):
    from app.extensions import db
    from models.base import ReadOnlyRecord, acting_as, system_user_id
    from models.desk import Ticket

    pk = _closed(api, make_unit())
    with app.app_context():
        # As the yearly job does it: a Core UPDATE of archived_at.
        db.session.execute(update(Ticket).where(Ticket.id == pk).values(archived_at=dt.datetime.now(dt.UTC)))
        db.session.commit()
        with acting_as(system_user_id(db.session)):
            t = db.session.get(Ticket, pk)
            with pytest.raises(ReadOnlyRecord) as err:
                t.transition(db.session, "reopened")
                db.session.flush()
            assert "已归档" in err.value.errors["status"][0]
            db.session.rollback()
        db.session.remove()


def test_a_finished_callback_is_read_only(api, make_unit):
    pk = _ticket(api, make_unit(), kind="complaint", complaint_about="neighbour", description="噪音")
    _move(api, pk, "resolved")
    cbs = api("Staff").get("/api/v1/callback/?q=(order_column:id,order_direction:desc,page_size:20)").json["result"]
    cb = next(c for c in cbs if c["ticket"]["number"] == _get(api, pk)["number"])
    resp = api("Staff").post(f"/api/v1/callback/{cb['id']}/outcome", json={"reached": True, "satisfaction": 5, "comment": "满意"})
    assert resp.status_code == 200, resp.json
    cb = api("Staff").get(f"/api/v1/callback/{cb['id']}").json["result"]
    resp = api("Staff").put(f"/api/v1/callback/{cb['id']}", json={"comment": "不满意", "version": cb["version"]})
    assert resp.status_code == 422 and "comment" in resp.json["message"], resp.json
    assert "已回访" in resp.json["message"]["comment"][0]


def _final_models() -> list[type]:
    seen, out = set(), []
    stack = list(AuditedModel.__subclasses__())
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if cls not in seen and isinstance(getattr(cls, "__final__", None), FinalStates):
            seen.add(cls)
            out.append(cls)
    return out


def test_every_declared_final_state_is_a_real_state_of_its_model():
    """A typo in a declaration would silently protect nothing: every state, exit and column named
    must exist."""
    import models  # noqa: F401  (every model registered)

    declared = _final_models()
    assert {c.__name__ for c in declared} >= {"Ticket", "Callback"}
    for cls in declared:
        spec: FinalStates = cls.__final__
        columns = set(cls.__table__.columns.keys())
        assert spec.column in columns, cls
        assert spec.states and set(spec.states) <= set(spec.labels), cls
        assert set(spec.exits) <= set(spec.labels) and not set(spec.exits) & set(spec.states), cls
        for col in spec.filled:
            assert col in columns, (cls, col)
        for extra in spec.exits.values():
            assert set(extra) <= columns, (cls, extra)


def test_a_closed_complaint_may_still_be_linked_to_its_renovation_and_nothing_else(app, api, make_unit):
    """A declared annotation (``FinalStates.annotations``) files a link on a final record without
    opening the record: the link is saved, every other change is still refused."""
    from app.extensions import db
    from app.seed import renovation_fee_items
    from models.base import ReadOnlyRecord, acting_as, system_user_id
    from models.desk import Ticket
    from tests.test_renovation import application

    ids = make_unit()
    with app.app_context():
        renovation_fee_items()
    resp = api("Staff").post("/api/v1/renovation/", json=application(ids["unit"]))
    assert resp.status_code == 201, resp.get_data(as_text=True)
    renovation_id = resp.json["id"]
    pk = _ticket(api, ids, kind="complaint", description="楼上装修噪音")
    _move(api, pk, "resolved")
    _move(api, pk, "closed")
    with app.app_context():
        with acting_as(system_user_id(db.session)):
            t = db.session.get(Ticket, pk)
            t.renovation_id = renovation_id
            db.session.commit()
            assert db.session.get(Ticket, pk).renovation_id == renovation_id
            t.description = "改写"
            with pytest.raises(ReadOnlyRecord):
                db.session.commit()
            db.session.rollback()
        db.session.remove()
