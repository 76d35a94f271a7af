"""Writing .xlsx files safely: every spreadsheet the product writes goes through here, so that
text a user typed stays text and never becomes a live formula (CSV/Excel injection)."""

from __future__ import annotations

import io

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell

# Text a spreadsheet would read as a formula (CSV/Excel injection: ``=HYPERLINK(...)`` in an owner's
# name). openpyxl writes a string starting with "=" as a live formula.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def as_text_cell(ws, value):
    """``value`` as a cell Excel shows as text and never evaluates, even after the cell is edited
    (string type plus the quote prefix, as Excel's own leading apostrophe does)."""
    if not (isinstance(value, str) and value.startswith(FORMULA_START)):
        return value
    cell = WriteOnlyCell(ws, value=value)
    cell.data_type = "s"
    cell.quotePrefix = True
    return cell


def append_row(ws, values) -> None:
    """Every product spreadsheet writes its rows through here: user text stays text."""
    ws.append([as_text_cell(ws, v) for v in values])


def workbook_bytes(wb: Workbook) -> bytes:
    """The saved workbook; a cell that still holds formula text is turned into text first."""
    if not getattr(wb, "write_only", False):
        for ws in wb.worksheets:
            for row in ws.iter_rows():
                for cell in row:
                    if isinstance(cell.value, str) and cell.value.startswith(FORMULA_START):
                        cell.data_type = "s"
                        cell.quotePrefix = True
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
