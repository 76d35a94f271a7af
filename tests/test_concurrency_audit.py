"""Audit columns, change history and optimistic locking on every business table."""

from __future__ import annotations

from sqlalchemy import select


def _owner(api):
    resp = api("Staff").post("/api/v1/owner/", json={"name": "并发业主", "kind": "person", "phone": "13800000001"})
    assert resp.status_code == 201, resp.json
    return resp.json["id"]


def test_stale_api_edit_gets_409_and_changes_nothing(api):
    pk = _owner(api)
    first = api("Staff").get(f"/api/v1/owner/{pk}").json["result"]
    second = api("Supervisor").get(f"/api/v1/owner/{pk}").json["result"]
    ok = api("Staff").put(f"/api/v1/owner/{pk}", json={"address": "一号楼", "version": first["version"]})
    assert ok.status_code == 200
    stale = api("Supervisor").put(f"/api/v1/owner/{pk}", json={"address": "二号楼", "version": second["version"]})
    assert stale.status_code == 409
    assert api("Staff").get(f"/api/v1/owner/{pk}").json["result"]["address"] == "一号楼"


def test_put_without_version_is_refused(api):
    pk = _owner(api)
    resp = api("Staff").put(f"/api/v1/owner/{pk}", json={"address": "三号楼"})
    assert resp.status_code == 422
    assert "version" in resp.json["message"]


def test_stale_form_edit_is_a_conflict_not_an_overwrite(web, api):
    pk = _owner(api)
    version = api("Staff").get(f"/api/v1/owner/{pk}").json["result"]["version"]
    staff, supervisor = web("Staff"), web("Supervisor")
    form = {"name": "并发业主", "kind": "person", "phone": "13800000001", "version": str(version)}
    assert staff.post(f"/owner/edit/{pk}", data={**form, "address": "甲"}).status_code in (302, 303)
    resp = supervisor.post(f"/owner/edit/{pk}", data={**form, "address": "乙"})
    assert resp.status_code == 409
    assert "已被他人修改" in resp.get_data(as_text=True)
    assert api("Staff").get(f"/api/v1/owner/{pk}").json["result"]["address"] == "甲"


def test_database_level_lock_catches_a_race(app):
    """Two sessions load the same version; the second flush fails (UPDATE ... WHERE version)."""
    import pytest
    from sqlalchemy.orm import Session

    from app.extensions import db
    from models.archives import Owner
    from models.errors import Conflict
    from views.datamodel import DeskInterface

    with app.app_context():
        owner = Owner(name="竞态", phone="13800000002")
        db.session.add(owner)
        db.session.commit()
        pk = owner.id
        other = Session(bind=db.engine)  # a second person's session
        theirs = other.get(Owner, pk)
        mine = db.session.get(Owner, pk)
        theirs.address = "他们的"
        from models.base import acting_as, system_user_id

        with acting_as(system_user_id(db.session)):
            other.commit()
            mine.address = "我的"
            with pytest.raises(Conflict):
                DeskInterface(Owner).edit(mine)
        other.close()
        db.session.remove()
        assert db.session.get(Owner, pk).address == "他们的"
        db.session.remove()


def test_audit_columns_and_change_log(api, app):
    pk = _owner(api)
    version = api("Staff").get(f"/api/v1/owner/{pk}").json["result"]["version"]
    api("Supervisor").put(f"/api/v1/owner/{pk}", json={"phone": "13800000009", "version": version})
    with app.app_context():
        from app.extensions import db
        from models.archives import Owner
        from models.base import ChangeLog

        owner = db.session.get(Owner, pk)
        assert owner.created_by.username == "staff"
        assert owner.changed_by.username == "supervisor"
        assert owner.created_at.tzinfo is not None
        logs = (
            db.session.execute(
                select(ChangeLog).where(ChangeLog.table_name == "owner", ChangeLog.row_id == pk).order_by(ChangeLog.id)
            )
            .scalars()
            .all()
        )
        assert [entry.action for entry in logs] == ["insert", "update"]
        assert logs[1].changes == {"phone": ["13800000001", "13800000009"]}
        assert logs[1].user.username == "supervisor"
        db.session.remove()
    # A Manager reads the history; Staff and Committee do not.
    q = f"(filters:!((col:table_name,opr:eq,value:owner),(col:row_id,opr:eq,value:{pk})))"
    assert api("Manager").get(f"/api/v1/change_log/?q={q}").json["count"] == 2
    assert api("Staff").get(f"/api/v1/change_log/?q={q}").status_code == 403
    assert api("Committee").get(f"/api/v1/change_log/?q={q}").status_code == 403


def test_delete_is_logged_with_old_values(api, app):
    pk = _owner(api)
    assert api("Staff").delete(f"/api/v1/owner/{pk}").status_code == 200
    with app.app_context():
        from app.extensions import db
        from models.base import ChangeLog

        entry = db.session.execute(
            select(ChangeLog).where(
                ChangeLog.table_name == "owner", ChangeLog.row_id == pk, ChangeLog.action == "delete"
            )
        ).scalar_one()
        assert entry.changes["name"] == ["并发业主", None]
        db.session.remove()


def test_referenced_rows_cannot_be_deleted(api, make_unit):
    ids = make_unit()
    resp = api("Manager").delete(f"/api/v1/building/{ids['building']}")
    assert resp.status_code == 422
    assert "引用" in str(resp.json["message"])


def test_job_writes_as_system_user(app):
    from app.extensions import db
    from models.archives import Estate
    from models.base import acting_as, system_user_id

    with app.app_context():
        with acting_as(system_user_id(db.session)):
            estate = Estate(code="SYS1", name="系统写入")
            db.session.add(estate)
            db.session.commit()
        assert estate.created_by.username == app.config["SYSTEM_USERNAME"]
        db.session.remove()
