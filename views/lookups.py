"""Relation fields picked by typing: the form asks the server for 20 matches at a time instead of
rendering the whole related table into a dropdown (units and owners run to six figures)."""

from __future__ import annotations

from flask import jsonify, request
from markupsafe import Markup, escape
from sqlalchemy import or_, select
from wtforms import Field
from wtforms.validators import DataRequired, Optional

from app.i18n import T

MSG_NOT_FOUND = T("所选记录不存在", "The chosen record does not exist")
MSG_NOT_WORKING = T("只能选择在职的管理处人员", "Choose an active member of the office's staff")


def choosable_clause(model):
    """What a picker of ``model`` may offer, and a write may point at: a record of an estate the
    user works for (views/scope.py); a person who is an active member of a working role (never the
    Committee, an administrator's account or the system user) working in one of those estates."""
    from flask_appbuilder.security.sqla.models import User

    from views.scope import clause_for, people_in_scope_clause, resource_of_model

    if isinstance(model, type) and issubclass(model, User):
        from app.security import working_user_clause

        return working_user_clause() & people_in_scope_clause()
    res = resource_of_model(model)
    return clause_for(res) if res is not None else None


def check_choosable(session, model, field: str, ids, clause=None) -> dict:
    """The errors of a write pointing at ``ids`` of ``model``: a person outside the working staff
    or a record that does not exist is a 422 naming the field; a record of an estate the user does
    not work for is refused with 403 (a record may not be created in or moved to it)."""
    from views.scope import MSG_OUT_OF_SCOPE, OutOfScope

    bad = [int(v) for v in ids if not is_choosable(session, model, int(v), clause)]
    if not bad:
        return {}
    from flask_appbuilder.security.sqla.models import User

    if not issubclass(model, User) and session.execute(select(model.id).where(model.id.in_(bad))).first():
        raise OutOfScope(str(MSG_OUT_OF_SCOPE))
    return {field: [str(refusal_of(model))]}


def refusal_of(model) -> T:
    """What a write pointing at a record it may not choose is told: for a person, who may be
    chosen; for anything else, that there is no such record (never that it exists elsewhere)."""
    from flask_appbuilder.security.sqla.models import User

    return MSG_NOT_WORKING if isinstance(model, type) and issubclass(model, User) else MSG_NOT_FOUND


def is_choosable(session, model, pk, clause=None) -> bool:
    clause = clause if clause is not None else choosable_clause(model)
    if clause is None:
        return True
    return session.execute(select(model.id).where(model.id == pk, clause)).first() is not None


def person_lookups(resource) -> None:
    """Every relation to a person in a form is picked by typing among the working staff: a lookup
    is added for each one the resource did not declare."""
    from flask_appbuilder.security.sqla.models import User

    from app.security import user_label
    from views.registry import Lookup

    declared = {lk.column for lk in resource.lookups}
    added = []
    for col in dict.fromkeys([*resource.edit_columns, *(resource.add_columns or ())]):
        prop = getattr(getattr(resource.model, col, None), "property", None)
        mapper = getattr(prop, "mapper", None)
        if mapper is not None and issubclass(mapper.class_, User) and col not in declared:
            added.append(Lookup(col, search=("username", "first_name", "last_name"), label=user_label))
    if added:
        resource.lookups = [*resource.lookups, *added]


class LookupWidget:
    def __call__(self, field, **kwargs):
        selected = ""
        if field.obj is not None:
            selected = (
                f'<option value="{escape(field.obj.id)}" selected>{escape(field.lookup.label(field.obj))}</option>'
            )
        required = " required" if field.flags.required else ""
        return Markup(
            f'<select class="form-control desk-lookup" id="{escape(field.id)}" name="{escape(field.name)}"'
            f' data-endpoint="{escape(field.endpoint)}" data-placeholder="{escape(str(T("输入以搜索", "Type to search")))}"'
            f"{required}>{selected}</select>"
        )


class LookupField(Field):
    widget = LookupWidget()

    def __init__(self, label=None, validators=None, lookup=None, related_model=None, endpoint="", **kwargs):
        super().__init__(label, validators, **kwargs)
        self.lookup = lookup
        self.related_model = related_model
        self.endpoint = endpoint
        self.obj = None

    def _session(self):
        from flask import current_app

        return current_app.appbuilder.session

    def process_data(self, value):
        self.obj = value
        self.data = value

    def process_formdata(self, valuelist):
        if valuelist and valuelist[0] not in ("", None):
            try:
                self.obj = self._session().get(self.related_model, int(valuelist[0]))
            except (TypeError, ValueError):
                self.obj = None
            if self.obj is None:
                raise ValueError(str(MSG_NOT_FOUND))
            own = self.lookup.choosable() if self.lookup is not None and self.lookup.choosable else None
            if check_choosable(self._session(), self.related_model, self.name, [self.obj.id], own):
                raise ValueError(str(refusal_of(self.related_model)))
            self.data = self.obj
        else:
            self.obj = None
            self.data = None

    def _value(self):
        return str(self.obj.id) if self.obj is not None else ""


def lookup_field(resource, lk, datamodel):
    prop = getattr(resource.model, lk.column).property
    nullable = all(c.nullable for c in prop.local_columns)
    return LookupField(
        resource.label_of(lk.column),  # lazy: read in the page's language when the form is drawn
        validators=[Optional()] if nullable else [DataRequired()],
        lookup=lk,
        related_model=prop.mapper.class_,
        endpoint=f"/{resource.name}/lookup/{lk.column}",
    )


def lookup_response(resource, column: str):
    from flask import abort, current_app

    lk = next((x for x in resource.lookups if x.column == column), None)
    if lk is None:
        abort(404)
    model = getattr(resource.model, column).property.mapper.class_
    term = (request.args.get("q") or "").strip()
    stmt = select(model).order_by(model.id).limit(20)
    clause = lk.choosable() if lk.choosable else choosable_clause(model)
    if clause is not None:
        stmt = stmt.where(clause)
    if term:
        # "1201" finds "3-2-1201": clerks type the part of a code they hear on the phone.
        stmt = stmt.where(or_(*[getattr(model, c).contains(term, autoescape=True) for c in lk.search]))
    rows = current_app.appbuilder.session.execute(stmt).scalars().all()
    return jsonify(results=[{"id": r.id, "text": lk.label(r)} for r in rows])
