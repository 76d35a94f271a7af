"""Bilingual text for the product's own labels and messages.

Each text is declared once with its Simplified Chinese and English wording, side by side, and
resolved at render time from the request's language (Chinese when there is no request). Our
strings never go through a catalogue that could fall out of step with them.

FAB's and WTForms' own interface strings come from gettext catalogues: FAB's bundled ``zh`` one
(old: it misses the list buttons, the delete question, the groups screens...) and ours,
``app/translations/<lang>/LC_MESSAGES/messages.po``, which Flask-Babel merges after FAB's, so an
entry of ours wins. ``.mo`` files are build output (git-ignored): ``compile_catalogues`` makes them
from the ``.po`` at start-up when missing or older, next to the ``.po`` or, where the package
directory is read-only, in a cache directory.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from flask import has_request_context
from flask_babel.speaklater import LazyString

TRANSLATIONS_DIR = Path(__file__).resolve().parent / "translations"


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


# --- gettext catalogues (FAB's and WTForms' strings) --------------------------------------------
def _compile(po: Path, mo: Path) -> None:
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with po.open("rb") as f:
        catalog = read_po(f, locale=po.parent.parent.name)
    mo.parent.mkdir(parents=True, exist_ok=True)
    # Several processes may start together: each writes its own file and renames it into place.
    fd, tmp = tempfile.mkstemp(dir=mo.parent, prefix=f".{mo.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            write_mo(f, catalog)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; every process user reads it
        os.replace(tmp, mo)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def compile_catalogues(source: Path = TRANSLATIONS_DIR) -> str:
    """Compile every ``<lang>/LC_MESSAGES/*.po`` under ``source`` to its ``.mo`` when that is
    missing or older, and return the directory holding the ``.mo`` files (for
    ``BABEL_TRANSLATION_DIRECTORIES``): ``source`` itself, or a cache directory when ``source``
    cannot be written."""
    pos = sorted(source.glob("*/LC_MESSAGES/*.po"))
    try:
        for po in pos:
            mo = po.with_suffix(".mo")
            if not mo.exists() or mo.stat().st_mtime < po.stat().st_mtime:
                _compile(po, mo)
        return str(source)
    except OSError:
        digest = hashlib.sha1(str(source).encode()).hexdigest()[:10]
        cache = Path(tempfile.gettempdir()) / f"desk-translations-{os.getuid()}-{digest}"
        for po in pos:
            mo = cache / po.relative_to(source).with_suffix(".mo")
            if not mo.exists() or mo.stat().st_mtime < po.stat().st_mtime:
                _compile(po, mo)
        return str(cache)


def use_catalogues(app) -> None:
    """Before FAB starts Flask-Babel: our catalogue directory after FAB's (FAB prepends its own to
    ``BABEL_TRANSLATION_DIRECTORIES``; Flask-Babel merges them in order, the last one winning)."""
    configured = app.config.get("BABEL_TRANSLATION_DIRECTORIES") or "translations"
    ours = compile_catalogues()
    dirs = [d for d in configured.split(";") if d and Path(app.root_path, d).resolve() != TRANSLATIONS_DIR]
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = ";".join([*dirs, ours])
