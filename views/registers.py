"""The three registers of the help-request procedure (DESIGN.md item 3), as printable A4 pages and
as .xlsx, and the one-page form of a single ticket: the routes on the ticket screen. Their rows
and fields come from models/registers.py, as the viewer may see them.

Routes (permissions in ``views.base.VIEW_PERMISSIONS``): ``/ticket/register`` (read),
``/ticket/register.xlsx`` (export), ``/ticket/print/<pk>`` (read). Arguments: ``register``
(help, repair, complaint), ``from`` / ``to`` (local dates), ``estate``; a bad one is a 400 naming it.
"""

from __future__ import annotations

import datetime as dt
import io

from flask import abort, g, request, send_file
from flask_appbuilder.baseviews import expose
from flask_appbuilder.security.decorators import has_access
from sqlalchemy import select

from models.desk import Ticket
from models.registers import (  # noqa: F401  (display_tz, parse_range, RangeError: other areas' screens)
    CONFIDENTIAL,
    REGISTERS,
    RangeError,
    display_tz,
    estate_name,
    form_fields,
    form_title,
    latest_callbacks,
    parse_range,
    parse_register,
    range_args,
    register_lines,
    register_xlsx_bytes,
    timeline,
)
from models.visibility import may_read_row
from views.scope import scoped_range
from views.visibility import current_user

XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def bad_request(err: RangeError):
    """The screens' answer to a bad argument: 400 with the message naming the field."""
    abort(400, description=str(err.message))


class TicketRegisterMixin:
    """``register``, ``register_xlsx`` and ``print_form`` on the ticket screen."""

    def _register_args(self):
        from views.base import sees_personal

        try:
            name, rng = parse_register(request.args), scoped_range(parse_range(request.args))
        except RangeError as err:
            bad_request(err)
        session = self.datamodel.session
        lines = register_lines(session, name, rng, personal=sees_personal("ticket"), reader=current_user())
        return name, rng, lines, estate_name(session, rng)

    @expose("/register")
    @has_access
    def register(self):
        from views.base import rights

        name, rng, lines, estate = self._register_args()
        spec = REGISTERS[name]
        return self.render_template(
            "desk/register.html",
            reg_name=name,
            reg=spec,
            registers=REGISTERS,
            lines=lines,
            rng=rng,
            range_args=range_args(rng),
            estate=estate,
            total_width=sum(c.width for c in spec["columns"]),
            printed_at=dt.datetime.now(display_tz()).strftime("%Y-%m-%d %H:%M"),
            user=g.user,
            can_export="export" in rights("ticket"),
        )

    @expose("/register.xlsx")
    @has_access
    def register_xlsx(self):
        name, rng, lines, estate = self._register_args()
        return send_file(
            io.BytesIO(register_xlsx_bytes(name, rng, lines, estate)),
            mimetype=XLSX_MIME,
            as_attachment=True,
            download_name=f"{name}-register-{rng.first:%Y%m%d}-{rng.last:%Y%m%d}.xlsx",
        )

    @expose("/print/<int:pk>")
    @has_access
    def print_form(self, pk):
        from views.base import sees_personal

        t = self.datamodel.get(pk, self._base_filters)
        if t is None:
            abort(404)
        tz, session, reader = display_tz(), self.datamodel.session, current_user()
        cb = latest_callbacks(session, select(Ticket.id).where(Ticket.id == t.id)).get(t.id)
        personal = sees_personal("ticket")
        return self.render_template(
            "desk/print_form.html",
            t=t,
            form_title=form_title(t),
            fields=form_fields(t, personal=personal, reader=reader, tz=tz, cb=cb, session=session),
            description=t.description if may_read_row(t, reader) else str(CONFIDENTIAL),
            events=timeline(t, reader=reader, tz=tz),
            printed_at=dt.datetime.now(tz).strftime("%Y-%m-%d %H:%M"),
        )
