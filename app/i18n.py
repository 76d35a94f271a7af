"""Bilingual text for the product's own labels and messages.

Each text is declared once with its Simplified Chinese and English wording, side by side, and
resolved at render time from the request's language (Chinese when there is no request). FAB's own
interface strings come from its bundled ``zh`` catalogue; our strings never go through a catalogue
that could fall out of step with them.
"""

from __future__ import annotations

from flask import has_request_context
from flask_babel.speaklater import LazyString


def current_language() -> str:
    if has_request_context():
        try:
            from flask_babel import get_locale

            loc = get_locale()
            if loc is not None and str(loc).startswith("en"):
                return "en"
        except Exception:  # no babel on this app (bare scripts): fall through to the default
            pass
        return "zh"
    return "zh"


class T(LazyString):
    """A lazy bilingual string: ``T("房号", "Unit code")``. Behaves as a ``str`` wherever FAB,
    Jinja or JSON need one (it is flask-babel's ``LazyString``)."""

    def __init__(self, zh: str, en: str):
        self.zh = zh
        self.en = en
        super().__init__(self.resolve)

    def resolve(self, lang: str | None = None) -> str:
        return self.en if (lang or current_language()) == "en" else self.zh

    def __html__(self) -> str:
        from markupsafe import escape

        return str(escape(self.resolve()))

    def __repr__(self) -> str:
        return f"T({self.zh!r}, {self.en!r})"
