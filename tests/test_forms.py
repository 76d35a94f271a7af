"""Every edit screen saves as a clerk expects (issue 9, items 1, 15, 16), for every resource in the
registry, on the shared scene (tests/scene.py):

- the form opened and submitted unchanged saves, and changes nothing: no version bump, no
  change-log entry (no NULL turned into "", no time losing its seconds);
- one field changed: only that field changes;
- someone else saved in between: 409, the form comes back with the user's input, nothing saved;
- a resource whose records are never edited shows no edit form.

A resource registered later is walked without editing this file.
"""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from sqlalchemy import func, select, update

from app import roles as R
from models.base import ChangeLog
from tests import conftest as cf
from views.registry import REGISTRY


@pytest.fixture(scope="module")
def app(scene_app, scene):
    return scene_app


class FormFields(HTMLParser):
    """The fields of the page's model form, as a browser would submit them unchanged."""

    def __init__(self):
        super().__init__()
        self.fields: dict[str, str] = {}
        self.kinds: dict[str, str] = {}
        self._in_form = False
        self._select = None
        self._select_value = None
        self._textarea = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form" and a.get("id") == "model_form":
            self._in_form = True
        if not self._in_form:
            return
        name = a.get("name")
        if tag == "input" and name:
            kind = a.get("type", "text")
            if kind in ("submit", "button", "file"):
                return
            if kind in ("checkbox", "radio"):
                if "checked" in a:
                    self.fields[name] = a.get("value", "y")
                self.kinds[name] = kind
                return
            self.fields[name] = a.get("value", "")
            self.kinds[name] = kind
        elif tag == "select" and name:
            self._select, self._select_value = name, None
            self.kinds[name] = "select"
        elif tag == "option" and self._select is not None:
            if "selected" in a:
                self._select_value = a.get("value", "")
        elif tag == "textarea" and name:
            self._textarea = name
            self.fields[name] = ""
            self.kinds[name] = "textarea"

    def handle_endtag(self, tag):
        if tag == "form" and self._in_form:
            self._in_form = False
        elif tag == "select" and self._select is not None:
            if self._select_value is not None:
                self.fields[self._select] = self._select_value
            self._select = None
        elif tag == "textarea" and self._textarea is not None:
            # As browsers do: the line break right after <textarea> is not part of the value.
            value = self.fields[self._textarea]
            self.fields[self._textarea] = value[2:] if value.startswith("\r\n") else value.removeprefix("\n")
            self._textarea = None

    def handle_data(self, data):
        if self._textarea is not None:
            self.fields[self._textarea] += data


def parse_form(html: str) -> FormFields:
    parser = FormFields()
    parser.feed(html)
    return parser


def errors_on(resp) -> list[str]:
    """The error messages a form page shows."""
    import re

    html = resp.get_data(as_text=True)
    return [re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", m)).strip() for m in re.findall(r'alert-danger[^>]*>(.*?)</div>', html, re.S)]


def writer_of(resource: str) -> str:
    """The least-privileged role that may write the resource."""
    for role in ("Staff", "Supervisor", "Manager"):
        if "write" in R.rights_of(role, resource):
            return role
    return "Admin"


# What every save moves, whatever field changed.
SAVE_STAMPS = {"version", "changed_at", "changed_by_id"}
EDITABLE = sorted(n for n, r in REGISTRY.items() if r.writable and r.records and r.edit_columns)
NOT_EDITABLE = sorted(n for n in REGISTRY if n not in EDITABLE)


def _row(app, resource: str):
    """A row the resource's screen serves (its base filters hold) and that may still be edited."""
    from app.extensions import db

    res = REGISTRY[resource]
    with app.app_context():
        ids = db.session.execute(select(res.model.id).order_by(res.model.id).limit(20)).scalars().all()
    client = login(app, writer_of(resource))
    for pk in ids:
        resp = client.get(f"/{resource}/edit/{pk}")
        if resp.status_code == 200:
            return pk, client, resp.get_data(as_text=True)
    return None, client, None


def login(app, role: str):
    client = cf.FreshContextClient(app, app.test_client())
    resp = client.post("/login/", data={"username": role.lower(), "password": cf.PASSWORD})
    assert resp.status_code in (302, 303)
    return client


def _state(app, resource: str, pk) -> tuple[dict, int]:
    """The row's columns, and how many change-log entries it has."""
    from app.extensions import db

    res = REGISTRY[resource]
    table = res.model.__table__
    with app.app_context():
        row = db.session.execute(select(table).where(table.c.id == pk)).mappings().one()
        logged = db.session.execute(
            select(func.count()).select_from(ChangeLog).where(ChangeLog.table_name == table.name, ChangeLog.row_id == pk)
        ).scalar()
        db.session.remove()
    return dict(row), logged


def _text_field(resource: str, form: FormFields) -> str | None:
    """A free-text column of the form that can take a new value."""
    from sqlalchemy import String, Text

    table = REGISTRY[resource].model.__table__
    for name, kind in form.kinds.items():
        col = table.columns.get(name)
        if (
            col is not None
            and kind in ("text", "textarea")
            and isinstance(col.type, (String, Text))
            and not col.unique
            and (getattr(col.type, "length", None) or 100) >= 12
            and name not in REGISTRY[resource].choices
            and not REGISTRY[resource].model.__dict__.get("__personal__", {}).get(name)
            and name not in ("code", "number", "plate", "period", "target", "receipt_no")
        ):
            return name
    return None


@pytest.mark.parametrize("resource", EDITABLE)
def test_unchanged_save_changes_nothing_and_one_change_changes_one_field(app, resource):
    pk, client, html = _row(app, resource)
    if pk is None:
        # No row of the scene may be edited in its present state: its edit page shows no form,
        # only the record and why (a started renovation, a closed ticket).
        from app.extensions import db

        res = REGISTRY[resource]
        with app.app_context():
            first = db.session.execute(select(res.model.id).order_by(res.model.id).limit(1)).scalar()
        assert first is not None, f"{resource}: the scene has no row"
        resp = client.get(f"/{resource}/edit/{first}")
        assert resp.status_code == 302 and f"/{resource}/show/{first}" in resp.headers["Location"]
        page = client.get(resp.headers["Location"]).get_data(as_text=True)
        assert 'id="model_form"' not in page and "alert-warning" in page
        return
    form = parse_form(html)
    assert "version" in form.fields, f"{resource}: the edit form carries no version"
    before, logged = _state(app, resource, pk)

    resp = client.post(f"/{resource}/edit/{pk}", data=form.fields)
    assert resp.status_code in (302, 303), f"{resource}: unchanged save answered {resp.status_code}: {errors_on(resp)}"
    after, logged_after = _state(app, resource, pk)
    changed = {k for k in before if before[k] != after[k]}
    assert not changed, f"{resource}: an unchanged save changed {changed}"
    assert logged_after == logged, f"{resource}: an unchanged save wrote a change-log entry"

    field = _text_field(resource, form)
    if field is None:
        return
    resp = client.post(f"/{resource}/edit/{pk}", data={**form.fields, field: "改过的说明 edited"})
    assert resp.status_code in (302, 303), f"{resource}: {errors_on(resp)}"
    final, _ = _state(app, resource, pk)
    changed = {k for k in before if before[k] != final[k]} - SAVE_STAMPS
    assert changed == {field}, f"{resource}: changing {field} changed {changed}"
    assert final["version"] == before["version"] + 1


@pytest.mark.parametrize("resource", EDITABLE)
def test_a_stale_form_is_refused_and_keeps_the_input(app, resource):
    from app.extensions import db

    pk, client, html = _row(app, resource)
    if pk is None:
        return  # no row can be edited now (the test above checks its page shows no form)
    form = parse_form(html)
    field = _text_field(resource, form)
    table = REGISTRY[resource].model.__table__
    with app.app_context():  # someone else saves first
        db.session.execute(update(table).where(table.c.id == pk).values(version=table.c.version + 1))
        db.session.commit()
    before, _ = _state(app, resource, pk)
    typed = "我的修改 mine"
    data = {**form.fields, field: typed} if field else form.fields
    resp = client.post(f"/{resource}/edit/{pk}", data=data)
    assert resp.status_code == 409, f"{resource}: {resp.status_code}"
    page = resp.get_data(as_text=True)
    if field:
        assert typed in page, f"{resource}: the user's input is lost"
    assert page.count("该记录已被他人修改") == 1, f"{resource}: the conflict is not said exactly once"
    after, _ = _state(app, resource, pk)
    assert after == before


@pytest.mark.parametrize("resource", NOT_EDITABLE)
def test_records_never_edited_show_no_edit_form(app, resource):
    from app.extensions import db

    res = REGISTRY[resource]
    with app.app_context():
        pk = db.session.execute(select(res.model.id).limit(1)).scalar() or 1
    client = login(app, "Admin")
    assert client.get(f"/{resource}/edit/{pk}").status_code == 404
    if res.records:
        page = client.get(f"/{resource}/list/").get_data(as_text=True)
        assert f"/{resource}/edit/" not in page


def _person_lookups():
    from flask_appbuilder.security.sqla.models import User

    out = []
    for name, res in sorted(REGISTRY.items()):
        for lk in res.lookups:
            if lk.choosable is not None:
                continue  # a picker that says whom it offers (user_estate: any person to give estates)
            prop = getattr(getattr(res.model, lk.column, None), "property", None)
            if getattr(prop, "mapper", None) is not None and issubclass(prop.mapper.class_, User):
                out.append((name, lk.column))
    return out


def test_person_pickers_offer_the_working_staff_only(app):
    """Every picker of a person, on every resource (declared or added by views/lookups.py): active
    Managers, Supervisors and Staff; never the Committee, an administrator or the system user."""
    from flask_appbuilder.security.sqla.models import User

    from app.extensions import db

    pickers = _person_lookups()
    names = {name for name, _ in pickers}
    assert {"ticket", "callback", "duty_shift", "service_subscription"} <= names, pickers
    with app.app_context():
        users = dict(db.session.execute(select(User.username, User.id)).all())
    client = login(app, "Admin")
    for resource, column in pickers:
        got = {r["id"] for r in client.get(f"/{resource}/lookup/{column}?q=").json["results"]}
        assert users["staff"] in got and users["supervisor"] in got and users["manager"] in got, (resource, column)
        for outsider in ("admin", "committee", "system"):
            assert users[outsider] not in got, (resource, column, outsider)


def test_a_person_outside_the_working_staff_is_refused_by_the_api(app, scene_tokens):
    from flask_appbuilder.security.sqla.models import User

    from app.extensions import db
    from tests.scene import api_client

    with app.app_context():
        users = dict(db.session.execute(select(User.username, User.id)).all())
        ticket = db.session.execute(select(REGISTRY["ticket"].model).order_by(REGISTRY["ticket"].model.id.desc())).scalars().first()
        pk, version = ticket.id, ticket.version
        db.session.remove()
    staff = api_client(app, scene_tokens["Staff"])
    for outsider in ("committee", "admin", "system"):
        resp = staff.put(f"/api/v1/ticket/{pk}", json={"assignee": users[outsider], "version": version})
        assert resp.status_code == 422 and "assignee" in resp.json["message"], (outsider, resp.json)
    resp = staff.put(f"/api/v1/ticket/{pk}", json={"assignee": users["staff"], "version": version})
    assert resp.status_code == 200, resp.json


@pytest.mark.parametrize("resource", EDITABLE)
def test_the_detail_page_leads_to_the_edit_form_for_those_who_may_edit(app, resource):
    pk, client, html = _row(app, resource)
    if pk is None:
        return  # nothing editable now: no button (checked by the final-record tests)
    assert f"/{resource}/edit/{pk}" in client.get(f"/{resource}/show/{pk}").get_data(as_text=True)
    if "read" in R.rights_of("Committee", resource):
        page = login(app, "Committee").get(f"/{resource}/show/{pk}").get_data(as_text=True)
        assert f"/{resource}/edit/" not in page


ADDABLE = sorted(n for n, r in REGISTRY.items() if r.writable and r.records and r.add_columns)


@pytest.mark.parametrize("resource", ADDABLE)
def test_every_add_form_speaks_the_clerks_language(app, resource):
    """No internal value on a form: no "__None" choice, no label left as a column name."""
    client = login(app, "Admin")
    page = client.get(f"/{resource}/add").get_data(as_text=True)
    assert "__None</option>" not in page, resource
    form = parse_form(page)
    assert form.fields or form.kinds, resource
    for col in REGISTRY[resource].add_columns:
        label = str(REGISTRY[resource].label_of(col))
        assert label in page, f"{resource}: the label of {col} is missing"


def test_two_company_owners_without_id_numbers_both_save_unchanged(app):
    """An empty optional text box is no value (NULL), not "": two owners without an ID number do
    not collide on the unique index when their forms are saved as they are."""
    from app.extensions import db
    from models.archives import Owner
    from models.base import acting_as, system_user_id

    with app.app_context():
        with acting_as(system_user_id(db.session)):
            owners = [Owner(name=f"物业公司{i}", kind="company", phone="0755-26881234") for i in range(2)]
            db.session.add_all(owners)
            db.session.commit()
            ids = [o.id for o in owners]
        db.session.remove()
    client = login(app, "Staff")
    for pk in ids:
        form = parse_form(client.get(f"/owner/edit/{pk}").get_data(as_text=True))
        resp = client.post(f"/owner/edit/{pk}", data=form.fields)
        assert resp.status_code == 302, errors_on(resp)
    with app.app_context():
        assert [db.session.get(Owner, pk).id_number for pk in ids] == [None, None]
        db.session.remove()


def test_integrity_errors_name_the_real_field_on_postgresql_and_sqlite(app, tmp_path):
    """A write the database refuses (a NOT NULL, a unique index, a missing related row) is a 422
    naming the field the form or API calls it, whatever the database says in its own words."""
    from sqlalchemy import insert
    from sqlalchemy.exc import IntegrityError

    from app.extensions import db
    from models.archives import Building, Estate
    from models.desk import Callback
    from tests.conftest import build_app
    from views.datamodel import MSG_REQUIRED, MSG_UNIQUE, _field_from_integrity_error

    def refused(flask_app, stmt, model):
        with flask_app.app_context():
            try:
                db.session.execute(stmt)
                db.session.flush()
            except IntegrityError as exc:
                return _field_from_integrity_error(exc, model)
            finally:
                db.session.rollback()
                db.session.remove()
        raise AssertionError("the database accepted it")

    sqlite_app = build_app(f"sqlite:///{tmp_path / 'x.db'}")
    for flask_app in (app, sqlite_app):
        with flask_app.app_context():
            estate = Estate.__table__
            code = f"IE{uuid4_hex()}"
            db.session.execute(insert(estate).values(code=code, name="甲", **stamp(db.session)))
            db.session.commit()
            db.session.remove()
        field, msg = refused(flask_app, insert(Estate.__table__).values(code=code, name="乙", **stamp_of(flask_app)), Estate)
        assert (field, msg) == ("code", MSG_UNIQUE), flask_app.config["SQLALCHEMY_DATABASE_URI"]
        field, msg = refused(flask_app, insert(Callback.__table__).values(due_at=None, **stamp_of(flask_app)), Callback)
        assert field in ("ticket", "due_at") and msg == MSG_REQUIRED, (field, flask_app.config["SQLALCHEMY_DATABASE_URI"])
        field, _ = refused(
            flask_app, insert(Building.__table__).values(code="1", name="x", estate_id=None, **stamp_of(flask_app)), Building
        )
        assert field == "estate" and not field.isdigit()


def uuid4_hex() -> str:
    import uuid

    return uuid.uuid4().hex[:6]


def stamp(session) -> dict:
    import datetime as dt

    from models.base import system_user_id

    now = dt.datetime.now(dt.UTC)
    uid = system_user_id(session)
    return {"version": 1, "created_at": now, "changed_at": now, "created_by_id": uid, "changed_by_id": uid}


def stamp_of(flask_app) -> dict:
    from app.extensions import db

    with flask_app.app_context():
        try:
            return stamp(db.session)
        finally:
            db.session.remove()
