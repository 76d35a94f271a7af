"""Excel on the screens.

Out: any list, with its current filters and order, as .xlsx (openpyxl, write-only, through
models/xlsx.py so that user text stays text).

In: ``ImportMixin`` gives every screen whose resource has an ``importer`` (an ``ImportSpec`` of
models/imports.py) the routes ``import_xlsx`` (form, dry run, import) and ``import_template``.
"""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal
from zoneinfo import ZoneInfo

from flask import abort, current_app, g, jsonify, make_response, request, send_file
from flask_appbuilder.baseviews import expose
from flask_appbuilder.security.decorators import has_access
from openpyxl import Workbook
from sqlalchemy import select

from app.i18n import T
from models.archives import Estate
from models.imports import (  # noqa: F401  (the specs resources declare as their importer)
    MAX_IMPORT_BYTES,
    METER_READING_IMPORT,
    MSG_ESTATE,
    MSG_NO_FILE,
    MSG_NOT_XLSX,
    MSG_TOO_BIG,
    SHOWN_ERRORS,
    UNIT_IMPORT,
    XLSX_MIME,
    ImportResult,
    ImportSpec,
    RowError,
)
from models.xlsx import append_row, workbook_bytes  # noqa: F401  (views write their sheets through them)

EXPORT_BATCH = 2000


def _cell(value, tz):
    if value is None:
        return None
    if isinstance(value, bool):  # read as the screens read it, not TRUE/FALSE
        return str(T("是", "Yes")) if value else str(T("否", "No"))
    if isinstance(value, dt.datetime):
        return value.astimezone(tz).replace(tzinfo=None) if value.tzinfo else value
    if isinstance(value, (dt.date, int, float, Decimal, str)):
        return value
    return str(value)


def resolve(item, column: str):
    value = item
    for part in column.split("."):
        if value is None:
            return None
        value = getattr(value, part, None)
        if isinstance(value, list):
            return "、".join(str(v) for v in value)
    return value


def export_rows(resource, datamodel, filters, order_column, order_direction, columns):
    """Yield lists of cell values for every row of the filtered list, as the viewer may see them:
    personal data masked, confidential content redacted (views/visibility.py)."""
    from views.base import sees_personal
    from views.visibility import mask_value, redact_values

    personal = {} if sees_personal(resource.name) else resource.personal_columns()
    choices = resource.choices
    page = 0
    while True:
        _, items = datamodel.query(filters, order_column, order_direction, page=page, page_size=EXPORT_BATCH)
        values = redact_values(resource.model, items, [{col: resolve(item, col) for col in columns} for item in items])
        for record in values:
            row = []
            for col in columns:
                value = record[col]
                if col in choices and value in choices[col]:
                    value = str(choices[col][value])
                if col in personal:
                    value = mask_value(personal[col], value)
                row.append(value)
            yield row
        if len(items) < EXPORT_BATCH:
            return
        page += 1


def export_response(resource, datamodel, filters, order_column, order_direction):
    from views.visibility import visible

    tz = ZoneInfo(current_app.config["DISPLAY_TIMEZONE"])
    columns = visible(resource, resource.list_columns)
    wb = Workbook(write_only=True)
    ws = wb.create_sheet(title=str(resource.label)[:31])
    append_row(ws, [str(resource.label_of(c)) for c in columns])
    for row in export_rows(resource, datamodel, filters, order_column, order_direction, columns):
        append_row(ws, [_cell(v, tz) for v in row])
    buf = io.BytesIO(workbook_bytes(wb))
    stamp = dt.datetime.now(tz).strftime("%Y%m%d-%H%M")
    return send_file(
        buf,
        mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        as_attachment=True,
        download_name=f"{resource.name}-{stamp}.xlsx",
    )


# --- the import screens ------------------------------------------------------------------------
def _wants_json() -> bool:
    return request.args.get("format") == "json" or request.accept_mimetypes.best == "application/json"


# What an import's summary counts, whichever import it is.
COUNT_LABELS = {
    "unit": T("新建房屋", "New units"),
    "building": T("新建楼栋", "New buildings"),
    "owner": T("新建业主", "New owners"),
    "owner_matched": T("匹配已有业主", "Existing owners matched"),
    "ownership": T("产权登记", "Ownerships"),
    "meter_reading": T("抄表记录", "Meter readings"),
    "replacement": T("其中换表", "Of which meter replacements"),
}


class ImportMixin:
    """``import_xlsx`` and ``import_template`` on a generic screen (views/base.py) whose resource
    has an ``importer``. Permissions: write and read on the resource (``VIEW_PERMISSIONS``)."""

    def _importer(self) -> ImportSpec:
        spec = getattr(self.resource, "importer", None)
        if spec is None:
            abort(404)
        return spec

    def _import_answer(self, spec, estates, status: int, result: ImportResult | None = None, form=None):
        if _wants_json():
            body = result.as_dict() if result else {"ok": False, "errors": []}
            return make_response(jsonify(body), status)
        return make_response(
            self.render_template(
                "desk/import.html",
                title=spec.label,
                spec=spec,
                estates=estates,
                result=result,
                form=form or {},
                shown_errors=SHOWN_ERRORS,
                count_labels=COUNT_LABELS,
                desk_view=type(self).__name__,
            ),
            status,
        )

    @expose("/import/", methods=["GET", "POST"])
    @has_access
    def import_xlsx(self):
        from app.extensions import db
        from views.scope import clause_for, resource_of_model

        spec = self._importer()
        # Only the estates the user works for are offered, and only those are taken.
        stmt = select(Estate.id, Estate.code, Estate.name).order_by(Estate.code)
        scope = clause_for(resource_of_model(Estate))
        estates = db.session.execute(stmt if scope is None else stmt.where(scope)).all()
        if request.method == "GET":
            return self._import_answer(spec, estates, 200, form={"dry_run": True})
        dry_run = request.form.get("dry_run") in ("y", "on", "1", "true")
        form = {"dry_run": dry_run, "estate_id": request.form.get("estate_id", "")}
        result = ImportResult(dry_run=dry_run)
        estate_id = None
        if spec.needs_estate:
            try:
                estate_id = int(form["estate_id"])
            except ValueError:
                estate_id = None
            if estate_id is None or estate_id not in {e.id for e in estates}:
                result.errors.append(RowError(0, "estate", str(T("小区", "Estate")), str(MSG_ESTATE)))
        upload = request.files.get("file")
        if upload is None or not upload.filename:
            result.errors.append(RowError(0, "file", "", str(MSG_NO_FILE)))
        if result.errors:
            return self._import_answer(spec, estates, 422, result, form)
        data = upload.stream.read(MAX_IMPORT_BYTES + 1)
        if len(data) > MAX_IMPORT_BYTES:
            result.errors.append(RowError(0, "file", "", str(MSG_TOO_BIG)))
            return self._import_answer(spec, estates, 422, result, form)
        result = spec.run(db.session, data, estate_id, g.user.id, dry_run)
        return self._import_answer(spec, estates, 200 if result.ok else 422, result, form)

    @expose("/import/template.xlsx")
    @has_access
    def import_template(self):
        spec = self._importer()
        return send_file(
            io.BytesIO(spec.template()),
            mimetype=XLSX_MIME,
            as_attachment=True,
            download_name=f"{spec.name}-import-template.xlsx",
        )
