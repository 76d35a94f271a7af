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
