"""Form fields the generated forms use for column types FAB handles badly for this product:
times are typed and shown in the office's zone (stored in UTC), booleans are never required."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from flask import current_app
from markupsafe import Markup, escape
from wtforms import BooleanField, DateField, Field
from wtforms.validators import DataRequired, Optional
from wtforms.widgets import DateInput

from app.i18n import T

MSG_DATETIME = T("时间格式为 YYYY-MM-DD HH:MM", "Times are written YYYY-MM-DD HH:MM")
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
        return "、".join(str(v) for v in value)
    return value


def date_field(label: str, required: bool, description: str = "") -> DateField:
    """The browser's own date picker (``type=date``): shown in the browser's language, typed or
    picked, no script to rewrite it."""
    return DateField(
        label,
        widget=DateInput(),
        format="%Y-%m-%d",
        validators=[DataRequired()] if required else [Optional()],
        description=description,
        render_kw={"class": "form-control"},
    )
