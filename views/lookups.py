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
MSG_CHOOSE = T("请选择", "Choose")
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
        # data-* attributes set on the field (a prefill rule: views/lookups.py prefill_add_form)
        extra = "".join(
            f' {escape(k)}="{escape(v)}"' for k, v in (field.render_kw or {}).items() if str(k).startswith("data-")
        )
        return Markup(
            f'<select class="form-control desk-lookup" id="{escape(field.id)}" name="{escape(field.name)}"'
            f' data-endpoint="{escape(field.endpoint)}" data-placeholder="{escape(str(T("输入以搜索", "Type to search")))}"'
            f"{required}{extra}>{selected}</select>"
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


# --- a field with one sensible value starts on it ----------------------------------------------
# An add form's relation field starts on its value when there is only one that makes sense: the
# estate, when the user may choose only one (a user of one estate, a company of one estate), on
# every add form with an estate field; and what a rule below says for a field (a meter reading's
# fee item, when the unit has one metered item). A rule's answer depends on other fields of the
# form (``depends``): the form asks ``/<resource>/prefill/<column>`` again when they change.
class Prefill:
    """``choices(session, values)``: the sensible records of the field given ``values`` (the
    depended-on fields' records, None when not chosen yet)."""

    def __init__(self, choices, depends=()):
        self.choices = choices
        self.depends = tuple(depends)


PREFILLS: dict[tuple[str, str], Prefill] = {}


def _estate_model():
    from models.archives import Estate

    return Estate


def _related_model(resource, column):
    prop = getattr(getattr(resource.model, column, None), "property", None)
    mapper = getattr(prop, "mapper", None)
    return mapper.class_ if mapper is not None else None


def _is_estate_field(resource, column) -> bool:
    from views.scope import COMPANY, COMPANY_ONLY

    # Not where an empty estate means the whole company by choice (the users' estates, Admin's).
    return _related_model(resource, column) is _estate_model() and resource.estate not in (COMPANY, COMPANY_ONLY)


def only_estate(session):
    """The one estate the current user may choose, or None when there are several (or none)."""
    Estate = _estate_model()
    stmt = select(Estate).order_by(Estate.id).limit(2)
    clause = choosable_clause(Estate)
    if clause is not None:
        stmt = stmt.where(clause)
    rows = session.execute(stmt).scalars().all()
    return rows[0] if len(rows) == 1 else None


def _choose(field, obj) -> None:
    """Put ``obj`` in a relation field of a form being shown."""
    from flask_appbuilder.fields import QuerySelectMultipleField

    if isinstance(field, LookupField):
        field.obj = field.data = obj
    elif isinstance(field, QuerySelectMultipleField):
        field.data = [obj]
    else:
        field.data = obj


def choose_first_on_add(form_class) -> None:
    """A required relation's dropdown on an add form starts on no record (请选择) instead of on
    whichever record the list gives first, which the browser would show as chosen and a clerk
    could save unseen; ``prefill_add_form`` then chooses the only record when there is one. Left
    on 请选择, the form says the field is required."""
    from flask_appbuilder.fields import QuerySelectField, QuerySelectMultipleField
    from wtforms.fields.core import UnboundField

    for attr in vars(form_class).values():
        if (
            isinstance(attr, UnboundField)
            and issubclass(attr.field_class, QuerySelectField)
            and not issubclass(attr.field_class, QuerySelectMultipleField)
            and not attr.kwargs.get("allow_blank")
        ):
            attr.kwargs["allow_blank"] = True
            attr.kwargs["blank_text"] = MSG_CHOOSE


def _empty(field) -> bool:
    data = field.data
    return data is None or data == [] or data == ""


def prefill_add_form(resource, form) -> None:
    """Start the add form's fields that have one sensible value on it (views/base.py calls this
    when the form is first shown, never over what the user typed)."""
    from flask import current_app
    from flask_appbuilder.fields import QuerySelectField, QuerySelectMultipleField

    session = current_app.appbuilder.session
    estate = ...  # asked once, only if an estate field needs it
    for name, field in form._fields.items():
        if not _empty(field):
            continue
        if _is_estate_field(resource, name):
            if isinstance(field, QuerySelectField):  # the dropdown's options are what the user may choose
                options = field._get_object_list()
                if len(options) == 1:
                    _choose(field, options[0][1])
                continue
            if estate is ...:
                estate = only_estate(session)
            if estate is not None and isinstance(field, LookupField):
                _choose(field, estate)
            continue
        rule = prefill_rule(resource, name)
        if rule is None:
            if (
                isinstance(field, QuerySelectField)
                and not isinstance(field, QuerySelectMultipleField)
                and field.flags.required
            ):
                options = field._get_object_list()  # a required choice of one record: that one
                if len(options) == 1:
                    _choose(field, options[0][1])
            continue
        field.render_kw = {
            **(field.render_kw or {}),
            "data-desk-prefill": f"/{resource.name}/prefill/{name}",
            "data-desk-depends": ",".join(rule.depends),
        }
        values = {d: (form[d].data if d in form else None) for d in rule.depends}
        sensible = rule.choices(session, values)
        if len(sensible) == 1:
            _choose(field, sensible[0])
            field.render_kw["data-desk-prefilled"] = "1"


def prefill_response(resource, column: str):
    """The one sensible value of ``column`` given the depended-on fields in the query string
    (``?unit=12``): ``{"id": ..., "text": ...}``, or ``{}`` when there is none or several."""
    from flask import abort, current_app

    rule = prefill_rule(resource, column)
    if rule is None:
        abort(404)
    session = current_app.appbuilder.session
    values = {}
    for dep in rule.depends:
        raw = (request.args.get(dep) or "").strip()
        model = _related_model(resource, dep)
        obj = None
        if raw.isdigit() and model is not None and is_choosable(session, model, int(raw)):
            obj = session.get(model, int(raw))  # a record the user may not choose is no answer
        values[dep] = obj
    sensible = rule.choices(session, values)
    if len(sensible) != 1:
        return jsonify({})
    return jsonify(id=sensible[0].id, text=str(sensible[0]))


def metered_items(session, values) -> list:
    """The fee items a meter reading may be for: those with an approved metered standard
    (per quantity) in force this month, in the unit's estate and for the unit's use (before a
    unit is chosen: in the user's estates)."""
    from models.archives import Estate
    from models.fees import FeeItem, FeeStandard, fee_standard_estate, month_bounds
    from views.fields import current_period

    first, nxt = month_bounds(current_period())
    unit = values.get("unit")
    stmt = (
        select(FeeStandard)
        .join(FeeItem, FeeItem.id == FeeStandard.item_id)
        .join(fee_standard_estate, fee_standard_estate.c.fee_standard_id == FeeStandard.id)
        .where(
            FeeStandard.status == "approved",
            FeeStandard.basis == "per_quantity",
            FeeStandard.effective_from < nxt,
            FeeStandard.effective_to.is_(None) | (FeeStandard.effective_to >= first),
            FeeItem.active.is_(True),
        )
    )
    if unit is not None:
        stmt = stmt.where(fee_standard_estate.c.estate_id == unit.estate_id)
    else:
        clause = choosable_clause(Estate)
        if clause is not None:
            stmt = stmt.where(fee_standard_estate.c.estate_id.in_(select(Estate.id).where(clause)))
    items = {}
    for std in session.execute(stmt).scalars():
        if unit is None or unit.use in (std.unit_uses or ()):
            items.setdefault(std.item_id, std.item)
    return list(items.values())


PREFILLS[("meter_reading", "item")] = Prefill(metered_items, depends=("unit",))


def unit_owners(session, values) -> list:
    """The owners of the chosen unit today (a unit with co-owners has no one sensible owner)."""
    from models.archives import Owner, Ownership
    from models.fees import local_today

    unit = values.get("unit")
    if unit is None:
        return []
    today = local_today()
    return (
        session.execute(
            select(Owner)
            .join(Ownership, Ownership.owner_id == Owner.id)
            .where(
                Ownership.unit_id == unit.id,
                (Ownership.since.is_(None)) | (Ownership.since <= today),
                (Ownership.until.is_(None)) | (Ownership.until >= today),
            )
            .limit(2)
        )
        .scalars()
        .all()
    )


UNIT_OWNER = Prefill(unit_owners, depends=("unit",))


def prefill_rule(resource, column: str) -> Prefill | None:
    """The declared rule for the field, else the general one: on any form with a unit, the owner
    follows the unit (a request, a service order, a renovation, a resident, a vehicle)."""
    rule = PREFILLS.get((resource.name, column))
    if rule is not None:
        return rule
    from models.archives import Owner, Unit

    if (
        _related_model(resource, column) is Owner
        and _related_model(resource, "unit") is Unit
        and "unit" in (resource.add_columns or resource.edit_columns)
    ):
        return UNIT_OWNER
    return None
