"""Form fields the generated forms use for column types FAB handles badly for this product:
times are typed and shown in the office's zone (stored in UTC), booleans are never required,
periods (账期, 'YYYY-MM') are picked as months, and an add form starts on the usual answer: the
office's current month for a period, the office's today for the dates declared so
(``TODAY_DATES``, or a resource's own ``defaults``)."""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

from flask import current_app
from markupsafe import Markup, escape
from sqlalchemy import String
from wtforms import BooleanField, DateField, Field
from wtforms.validators import DataRequired, Optional
from wtforms.widgets import DateInput

from app.i18n import T

MSG_DATETIME = T("时间格式为 YYYY-MM-DD HH:MM", "Times are written YYYY-MM-DD HH:MM")
MSG_PERIOD = T("账期格式为 YYYY-MM", "The period is YYYY-MM")
FORMATS = ("%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S")


def office_zone() -> ZoneInfo:
    return ZoneInfo(current_app.config["DISPLAY_TIMEZONE"])


class LocalDateTimeWidget:
    """The browser's own date-and-time picker (``datetime-local``): no script, no outside asset."""

    def __call__(self, field, **kwargs):
        required = " required" if field.flags.required else ""
        return Markup(
            f'<input type="datetime-local" class="form-control" id="{escape(field.id)}" name="{escape(field.name)}"'
            f' value="{escape(field._value())}" step="60"{required}>'
        )


class LocalDateTimeField(Field):
    """Typed as local time (Asia/Shanghai by default), handed to the model as aware UTC."""

    widget = LocalDateTimeWidget()

    def _value(self):
        if self.raw_data:
            return self.raw_data[0]
        if isinstance(self.data, dt.datetime):
            value = self.data if self.data.tzinfo else self.data.replace(tzinfo=dt.UTC)
            return value.astimezone(office_zone()).strftime("%Y-%m-%dT%H:%M")
        return ""

    def process_formdata(self, valuelist):
        if not valuelist or not valuelist[0].strip():
            self.data = None
            return
        text = valuelist[0].strip()
        for fmt in FORMATS:
            try:
                local = dt.datetime.strptime(text, fmt)
            except ValueError:
                continue
            self.data = local.replace(tzinfo=office_zone()).astimezone(dt.UTC)
            # The box shows minutes only: a time left as it was keeps its seconds (a deadline the
            # system computed must not move up to 59 s earlier because a form was saved).
            original = self.object_data
            if isinstance(original, dt.datetime) and fmt in ("%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"):
                original = original if original.tzinfo else original.replace(tzinfo=dt.UTC)
                if original.replace(second=0, microsecond=0) == self.data:
                    self.data = original
            return
        self.data = None
        raise ValueError(str(MSG_DATETIME))


def optional_boolean(label: str, default: bool | None) -> BooleanField:
    """A checkbox that may be left unticked (FAB makes NOT NULL booleans required)."""
    return BooleanField(label, default=bool(default), validators=[Optional()])


def show_value(value):
    """How a plain value reads on a detail page or list: no 'None', 是/否, local times."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(T("是", "Yes")) if value else str(T("否", "No"))
    if isinstance(value, dt.datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return aware.astimezone(office_zone()).strftime("%Y-%m-%d %H:%M")
    if isinstance(value, (list, tuple)):  # a to-many relation: its members' names
        return "、".join(str(show_value(v)) for v in value)
    if isinstance(value, str):
        from views.uploads import display_name, is_stored_name

        if is_stored_name(value):  # an uploaded file: the name it was uploaded under
            return display_name(value, value.rsplit("/", 1)[-1])
    return value


def date_field(label: str, required: bool, description: str = "", default=None) -> DateField:
    """The browser's own date picker (``type=date``): shown in the browser's language, typed or
    picked, no script to rewrite it. ``default``: what an add form starts on (a function of none)."""
    return DateField(
        label,
        widget=DateInput(),
        format="%Y-%m-%d",
        validators=[DataRequired()] if required else [Optional()],
        description=description,
        render_kw={"class": "form-control"},
        default=default,
    )


# --- the usual answer ------------------------------------------------------------------------------
# Dates whose usual answer is the office's today, on every add form that has them: a standard takes
# effect from today, a meter is read today. (A resource may declare others, or another value, in
# ``Resource.defaults``; an edit form always shows what is stored.)
TODAY_DATES = frozenset({"effective_from", "read_on"})
_PERIOD = re.compile(r"^\s*(\d{4})\s*[-/.年]?\s*(\d{1,2})\s*月?\s*$")


def office_today() -> dt.date:
    """Today in the office's zone (models.fees.local_today), not the server's."""
    from models.fees import local_today

    return local_today()


def current_period() -> str:
    """The office's current month as a period: '2026-03'."""
    return office_today().strftime("%Y-%m")


def is_period_column(column) -> bool:
    """A billing period (账期) kept as 'YYYY-MM' text: a String(7) column named period or *_period."""
    key = getattr(column, "key", "") or ""
    return (
        isinstance(getattr(column, "type", None), String)
        and column.type.length == 7
        and (key == "period" or key.endswith("_period"))
    )


def add_default(resource, col: str, column):
    """What ``col`` of ``resource``'s add form starts on (a value or a function WTForms calls when
    the form is built), or None: the resource's declaration first, then the usual answer."""
    declared = getattr(resource, "defaults", None) or {}
    if col in declared:
        return declared[col]
    if column is not None and is_period_column(column):
        return current_period
    if col in TODAY_DATES:
        return office_today
    return None


class MonthInput:
    """The browser's own month picker (``type=month``: Chromium, Edge, Safari); a browser without
    one shows a text box that takes YYYY-MM."""

    def __call__(self, field, **kwargs):
        required = " required" if field.flags.required else ""
        return Markup(
            f'<input type="month" class="form-control desk-month" id="{escape(field.id)}" name="{escape(field.name)}"'
            f' value="{escape(field._value())}" placeholder="{escape(T("年-月，如 2026-03", "YYYY-MM"))}" pattern="[0-9]{{4}}-[0-9]{{2}}"{required}>'
        )


class MonthField(Field):
    """A period (账期) picked as a month; '2026-3', '2026/03', '2026年3月' are read as '2026-03'."""

    widget = MonthInput()

    def _value(self):
        if self.raw_data:
            return self.raw_data[0]
        return self.data or ""

    def process_formdata(self, valuelist):
        text = (valuelist[0] if valuelist else "") or ""
        if not text.strip():
            self.data = None
            return
        m = _PERIOD.match(text)
        if not m or not 1 <= int(m.group(2)) <= 12:
            self.data = None
            raise ValueError(str(MSG_PERIOD))
        self.data = f"{m.group(1)}-{int(m.group(2)):02d}"


def month_field(label: str, required: bool, description: str = "", default=None) -> MonthField:
    return MonthField(
        label,
        validators=[DataRequired()] if required else [Optional()],
        description=description,
        default=default,
    )
