"""Chinese everywhere (issue 12, section 6): no English word on a Chinese page.

Every page a role may open is rendered in Chinese (the default) through the Flask test client, on
the shared scene (tests/scene.py: rows of nearly every registered resource): the home page, every
entry of its menu bar, every list, add form and edit form, the detail page of one record of every
resource (with its actions' forms), every report, register and print page a resource serves, and
the error pages 403, 404 and 500. The visible text (tags, scripts and styles stripped; of the
attributes only what a person reads: placeholders, tooltips, button captions, confirmation
texts) must hold no English word outside a short allow-list (brand names, units, codes, the
language switch's "English"). A word found is reported with the page it is on and its context.

English mode is tested too: the ticket form's labels and section titles are English.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from html.parser import HTMLParser

import pytest
from sqlalchemy import select

from app import roles as R
from tests import conftest as cf
from views.registry import REGISTRY

ROLES = cf.ROLES


@pytest.fixture(scope="module")
def app(scene_app, scene):
    return scene_app


# --- what a person reads on a page --------------------------------------------------------------
# Attributes a person reads: a box's hint, a tooltip, a button's caption, an image's text, the
# question a confirmation dialog asks.
READ_ATTRIBUTES = {"placeholder", "title", "alt", "aria-label", "data-desk-confirm", "data-text", "data-original-title"}
BUTTON_INPUTS = {"submit", "button", "reset"}
SKIP_CONTENT = {"script", "style", "noscript", "template"}
# Inline scripts: the texts they hand to a dialog (FAB's delete confirmation is one).
DIALOG_CALL = re.compile(
    r"""(?:execute_single_delete|execute_multiple|confirm|alert|ab_alert)\s*\((?:[^()'"]*,\s*)?(?:'[^']*'\s*,\s*)?(['"])((?:(?!\1).)*)\1"""
)


class VisibleText(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.scripts: list[str] = []
        self._skip: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for name in READ_ATTRIBUTES:
            if a.get(name):
                self.parts.append(a[name])
        if tag == "input" and (a.get("type") or "").lower() in BUTTON_INPUTS and a.get("value"):
            self.parts.append(a["value"])
        if tag in SKIP_CONTENT:
            self._skip.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag in SKIP_CONTENT:
            self._skip.pop()

    def handle_endtag(self, tag):
        if self._skip and self._skip[-1] == tag:
            self._skip.pop()

    def handle_data(self, data):
        if self._skip:
            if self._skip[-1] == "script":
                self.scripts.append(data)
            return
        self.parts.append(data)


def _filter_texts(script: str) -> list[str]:
    """FAB's search box is built by a script from its arguments: the columns' labels, the filter
    inputs (HTML) and the filters' names (equal to, starts with, ...), one argument a line."""
    lines = [x for x in script.split("new AdminFilters(", 1)[1].splitlines() if x.strip()][1:4]
    labels, fields, filters = (json.loads(line.strip().rstrip(",")) for line in lines)
    out = [str(v) for v in labels.values()]
    out += [visible_text(html) for html in fields.values()]
    out += [f if isinstance(f, str) else str(f[-1]) for names in filters.values() for f in names]
    return out


def visible_text(html: str) -> str:
    parser = VisibleText()
    parser.feed(html)
    parser.close()
    extra = [m.group(2) for script in parser.scripts for m in DIALOG_CALL.finditer(script)]
    extra += [t for script in parser.scripts if "new AdminFilters(" in script for t in _filter_texts(script)]
    return "\n".join([*parser.parts, *extra])


# Words allowed on a Chinese page: brand and product names, units, codes, the file format, the
# language switch's own name for English.
ALLOWED = {
    "English",  # the language switch offers English by its own name
    "Excel", "xlsx", "WPS",
    "SLA", "ID", "IC", "QR", "PDF", "URL", "API", "HTTP", "VIP",
    "WeCom", "DingTalk", "webhook",
    "m²", "kWh", "kW", "KB", "MB", "GB",
    "CAD", "JPG", "PNG",
}
WORD = re.compile(r"[A-Za-z][A-Za-z'’]*[A-Za-z]|[A-Za-z]")
# Tokens that are data, not words: numbers and codes with digits (3-2-1501, 粤B7Q001, T2025-0001),
# mail addresses, paths and links.
DATA_TOKEN = re.compile(r"\S*\d\S*|\S+@\S+|\S*/\S*|\S*://\S*")


def english_words(text: str, allowed: set[str], phrases: frozenset[str] = frozenset()) -> list[tuple[str, str]]:
    """(word, context) for each English word in the text; a line that is one of ``phrases`` (a
    record's own English name, shown in its 英文名称 column) is data."""
    found = []
    for line in text.splitlines():
        if line.strip() in phrases:
            continue
        clean = DATA_TOKEN.sub(" ", line)
        for m in WORD.finditer(clean):
            word = m.group(0)
            if len(word) < 2 or word in allowed:
                continue
            found.append((word, line.strip()[:120]))
    return found


def data_words(app) -> set[str]:
    """The words of the seeded records' own names and codes (what people typed, not the product's
    text): estate and fee item codes, a hand-made bill's source reference, people's names and
    logins."""
    from flask_appbuilder.security.sqla.models import User

    from app.extensions import db

    words: set[str] = set()
    with app.app_context():
        for row in db.session.execute(select(User.username, User.first_name, User.last_name, User.email)).all():
            for value in (*row, f"{row.first_name or ''}{row.last_name or ''}"):
                words.update(WORD.findall(value or ""))
        for res in REGISTRY.values():
            for col in ("code", "plate", "number", "receipt_no", "name", "source"):
                column = getattr(res.model, col, None)
                if column is None or not hasattr(column, "property"):
                    continue
                try:
                    values = db.session.execute(select(column).limit(500)).scalars()
                except Exception:
                    db.session.rollback()
                    continue
                for value in values:
                    if isinstance(value, str):
                        words.update(WORD.findall(value))
        db.session.remove()
    return words


def data_phrases(app) -> frozenset[str]:
    """The English names records carry on purpose (``name_en``: a sub-class's or a catalogue
    item's English wording, which a Manager keeps beside the Chinese one)."""
    from app.extensions import db

    out = set()
    with app.app_context():
        for res in REGISTRY.values():
            column = getattr(res.model, "name_en", None)
            if column is not None and hasattr(column, "property"):
                out.update(v for v in db.session.execute(select(column)).scalars() if v)
        db.session.remove()
    return frozenset(out)


# --- the pages ----------------------------------------------------------------------------------
class NavLinks(HTMLParser):
    """The links of the menu bar (FAB's ``<header class="top">``) of a page."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.inside = False
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "header":
            self.inside = True
        if tag == "a" and self.inside and a.get("href"):
            self.links.append(a["href"])

    def handle_endtag(self, tag):
        if tag == "header":
            self.inside = False


def menu_links(html: str) -> list[str]:
    parser = NavLinks()
    parser.feed(html)
    out = []
    for href in parser.links:
        if not href.startswith("/") or href.startswith("//"):
            continue
        if href.startswith(("/logout", "/lang/", "/static/")) or href == "#":
            continue
        out.append(href.split("#")[0])
    return list(dict.fromkeys(out))


def first_id(app, resource: str):
    from app.extensions import db

    res = REGISTRY[resource]
    with app.app_context():
        pk = db.session.execute(select(res.model.id).order_by(res.model.id).limit(1)).scalar()
        db.session.remove()
        return pk


SKIP_ROUTES = ("export", "lookup", "import_template", "register_xlsx", "report_xlsx", "document", "drawing", "photo", "mark_read")


def resource_pages(app, role: str) -> list[str]:
    """Every screen of every resource the role may read: list, detail page of one record, add and
    edit forms when it may write, and the other pages the resource serves (reports, registers,
    print forms, receipts, letters, permits)."""
    urls = []
    for name in sorted(REGISTRY):
        res = REGISTRY[name]
        rights = R.rights_of(role, name)
        if "read" not in rights:
            continue
        pk = first_id(app, name) if res.records else None
        if res.records:
            urls.append(f"/{name}/list/")
            if pk is not None:
                urls.append(f"/{name}/show/{pk}")
            if "write" in rights and res.writable:
                if res.add_columns:
                    urls.append(f"/{name}/add")
                if res.edit_columns and pk is not None:
                    urls.append(f"/{name}/edit/{pk}")
        for rule in app.url_map.iter_rules():
            if "GET" not in rule.methods or not rule.rule.startswith(f"/{name}/"):
                continue
            endpoint = rule.endpoint.rsplit(".", 1)[-1]
            if endpoint in SKIP_ROUTES or endpoint in ("list", "show", "add", "edit", "delete", "download", "action"):
                continue
            if set(rule.arguments) - {"pk"}:
                continue
            if "pk" in rule.arguments:
                if pk is None:
                    continue
                urls.append(re.sub(r"<(?:int:)?pk>", str(pk), rule.rule))
            else:
                urls.append(rule.rule)
    return list(dict.fromkeys(urls))


def login(app, username: str):
    client = cf.FreshContextClient(app, app.test_client())
    resp = client.post("/login/", data={"username": username, "password": cf.PASSWORD})
    assert resp.status_code in (302, 303), resp.get_data(as_text=True)[:300]
    return client


FOUND: dict[str, set[str]] = defaultdict(set)  # the line an English word is on -> "role url" it is on
WORDS: Counter = Counter()  # English word -> times found
CHECKED: dict[str, int] = {}
BROKEN: list[str] = []


def check_page(client, url: str, allowed, role: str, expect=(200,)) -> None:
    resp = client.get(url)
    if resp.status_code >= 500 and 500 not in expect:
        BROKEN.append(f"{role} GET {url}: {resp.status_code}")
    if resp.status_code in (301, 302, 303):
        return
    if not (resp.mimetype or "").startswith("text/html"):
        return
    text = visible_text(resp.get_data(as_text=True))
    for word, context in english_words(text, *allowed):
        FOUND[context].add(f"{role} {url}")
        WORDS[word] += 1
    CHECKED[role] = CHECKED.get(role, 0) + 1


@pytest.fixture(scope="module")
def allowed(app):
    """The allowed words and the allowed whole lines (records' English names)."""
    return ALLOWED | data_words(app), data_phrases(app)


def error_pages(role: str) -> list[tuple[str, int]]:
    """A page that is not there, a record that is not there, a page the role may not open."""
    pages = [("/no-such-page/", 404), ("/ticket/show/987654321", 404)]
    forbidden = next(
        (f"/{n}/add" for n in sorted(REGISTRY) if REGISTRY[n].records and "write" not in R.rights_of(role, n)), None
    )
    if forbidden:
        pages.append((forbidden, 403))
    return pages


def failing_home(app, monkeypatch):
    """The home page made to fail (an unexpected error: the 500 page)."""

    def boom(*args, **kwargs):
        raise RuntimeError("the 500 page, on purpose")

    monkeypatch.setitem(app.view_functions, "DeskIndexView.index", boom)


@pytest.mark.parametrize("role", ROLES)
def test_every_page_of_every_role_is_chinese(app, allowed, role, monkeypatch):
    client = login(app, role.lower())
    home = client.get("/").get_data(as_text=True)
    pages = ["/", *menu_links(home), *resource_pages(app, role)]
    if "read" in R.rights_of(role, "ticket"):
        pages.append("/ticket/caller?q=" + "保密")  # the caller card with people on it
    for url in dict.fromkeys(pages):
        check_page(client, url, allowed, role)
    for url, code in error_pages(role):
        check_page(client, url, allowed, role, expect=(code,))
    failing_home(app, monkeypatch)
    check_page(client, "/", allowed, role, expect=(500,))


class FormParts(HTMLParser):
    """What a form says about its fields: labels, section titles, hints, placeholders; and whether
    any field is required."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.texts: list[str] = []
        self.required = False
        self._in: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        cls = a.get("class") or ""
        if tag in ("input", "select", "textarea") and "required" in a and (a.get("type") or "") != "hidden":
            self.required = True
        if a.get("placeholder"):
            self.texts.append(a["placeholder"])
        if tag in ("label", "legend") or "panel-title" in cls or "help-block" in cls or "panel-heading" in cls:
            self._in.append(tag)
        elif self._in and tag == self._in[-1]:
            self._in.append(tag)

    def handle_endtag(self, tag):
        if self._in and self._in[-1] == tag:
            self._in.pop()

    def handle_data(self, data):
        if self._in and data.strip():
            self.texts.append(data.strip())


def form_parts(html: str) -> FormParts:
    parser = FormParts()
    parser.feed(html)
    return parser


ADDABLE = sorted(n for n, r in REGISTRY.items() if r.records and r.writable and r.add_columns)


def test_form_errors_are_chinese(app, allowed):
    """Every add form sent empty (those with a required field: nothing is saved) answers with its
    errors in Chinese: WTForms' and FAB's validator messages included."""
    client = login(app, "admin")
    refused, required_said = 0, 0
    for name in ADDABLE:
        if not form_parts(client.get(f"/{name}/add").get_data(as_text=True)).required:
            continue
        resp = client.post(f"/{name}/add", data={})
        assert resp.status_code not in (301, 302, 303), f"{name}: an empty form was saved"
        text = visible_text(resp.get_data(as_text=True))
        assert "alert-danger" in resp.get_data(as_text=True) or resp.status_code == 422, name
        for word, context in english_words(text, *allowed):
            FOUND[context].add(f"Admin POST /{name}/add")
            WORDS[word] += 1
        refused += 1
        required_said += "必填" in text  # WTForms' "This field is required.", in Chinese
    CHECKED["Admin (form errors)"] = refused
    assert refused >= len(ADDABLE) // 2
    assert required_said >= refused // 2, (required_said, refused)


CJK = re.compile(r"[\u3400-\u9fff\uff00-\uffef\u3000-\u303f]")


def test_the_ticket_form_speaks_english_in_english_mode(app):
    """Switched to English (the language menu: /lang/en), the ticket form's labels, section titles,
    hints and placeholders are English: no Chinese character among them."""
    client = login(app, "staff")
    assert client.get("/lang/en").status_code in (302, 303)
    html = client.get("/ticket/add").get_data(as_text=True)
    parts = form_parts(html)
    assert len(parts.texts) > 15, parts.texts
    chinese = [t for t in parts.texts if CJK.search(t)]
    assert not chinese, f"Chinese on the English ticket form: {chinese}"
    assert 'content="en"' in html  # desk.js reads the page's language from here
    # ?_l_=zh (FAB's switch for one request) and back: the same form in Chinese.
    html = client.get("/ticket/add?_l_=zh").get_data(as_text=True)
    assert sum(bool(CJK.search(t)) for t in form_parts(html).texts) > 10
    client.get("/lang/zh")


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_error_pages_have_the_menu_bar_and_a_way_back(app, lang, monkeypatch):
    titles = {
        403: {"zh": "没有权限", "en": "Forbidden"},
        404: {"zh": "页面不存在", "en": "Not found"},
        500: {"zh": "服务器内部错误", "en": "Internal error"},
    }
    for role in ("Staff", "Committee"):
        client = login(app, role.lower())
        client.get(f"/lang/{lang}")
        pages = error_pages(role)
        assert {code for _, code in pages} == {403, 404}
        for url, code in [*pages, ("/", 500)]:
            if code == 500:
                failing_home(app, monkeypatch)
            resp = client.get(url, headers={"Referer": "http://localhost/owner/list/"})
            html = resp.get_data(as_text=True)
            assert resp.status_code == code, (role, url)
            assert '<header class="top"' in html and menu_links(html), f"{url}: no menu bar"
            assert titles[code][lang] in html, (role, url, lang)
            assert 'href="/"' in html and 'href="http://localhost/owner/list/"' in html, f"{url}: no way back"
            if lang == "en":  # the product's name and the language menu's 简体中文 are names
                text = visible_text(html).replace(app.config["APP_NAME"], "").replace("简体中文", "")
                assert not CJK.search(text), (url, [t for t in text.splitlines() if CJK.search(t)])
        monkeypatch.undo()
        client.get("/lang/zh")


def test_a_rule_about_a_column_off_the_form_names_it_by_its_label(app):
    """A model rule about a column the form does not show (a request's status, the version read)
    is flashed with the column's label, not its name: 状态：…, not status: …"""
    from flask import get_flashed_messages

    view = next(v for v in app.appbuilder.baseviews if getattr(getattr(v, "resource", None), "name", None) == "ticket")
    for lang, expected in (("zh", ["状态：不能改成这个状态", "版本：已被他人修改"]), ("en", ["Status: 不能改成这个状态", "Version: 已被他人修改"])):
        with app.test_request_context(f"/ticket/add?_l_={lang}"):
            form = view.add_form.refresh()
            assert "status" not in form and "version" not in form
            view._attach_errors(form, {"status": ["不能改成这个状态"], "version": ["已被他人修改"]}, 422)
            assert get_flashed_messages() == expected


def test_exports_read_as_the_screens_do(app, allowed):
    """A list's Excel export (Admin, every resource) holds no English word either: choices by
    label, 是/否 for yes and no. (The change history's export is its raw rows: left out.)"""
    import io

    from openpyxl import load_workbook

    client = login(app, "admin")
    checked = 0
    for name in sorted(n for n, r in REGISTRY.items() if r.records and n != "change_log"):
        resp = client.get(f"/{name}/export.xlsx")
        assert resp.status_code == 200, name
        book = load_workbook(io.BytesIO(resp.get_data()), read_only=True)
        cells = [str(v) for sheet in book.worksheets for row in sheet.iter_rows(values_only=True) for v in row if v is not None]
        assert not english_words("\n".join(cells), *allowed), (name, english_words("\n".join(cells), *allowed)[:5])
        checked += 1
    CHECKED["Admin (Excel exports)"] = checked


def test_the_catalogue_needs_no_build_step(tmp_path, monkeypatch):
    """Only the .po is kept (*.mo is git-ignored): start-up compiles it next to the .po when the
    .mo is missing or older, or into a cache directory when the package cannot be written."""
    import os
    import shutil
    import tempfile

    from babel.support import Translations

    from app import i18n

    source = tmp_path / "translations"
    shutil.copytree(i18n.TRANSLATIONS_DIR, source, ignore=shutil.ignore_patterns("*.mo"))
    mo = source / "zh" / "LC_MESSAGES" / "messages.mo"
    assert i18n.compile_catalogues(source) == str(source) and mo.exists()
    assert mo.stat().st_mode & 0o044 == 0o044  # readable by the web and worker processes' user
    catalogue = Translations.load(str(source), ["zh"])
    assert catalogue.gettext("Are you sure you want to delete this item?") == "确定要删除这条记录吗？"
    assert catalogue.gettext("Cancel") == "取消"
    # An edited .po is compiled again; an unchanged one is not.
    os.utime(mo, (1_000_000, 1_000_000))
    i18n.compile_catalogues(source)
    assert mo.stat().st_mtime > 1_000_000
    made = mo.stat().st_mtime_ns
    i18n.compile_catalogues(source)
    assert mo.stat().st_mtime_ns == made
    # A package directory that cannot be written: the .mo goes to a cache directory.
    mo.unlink()
    real = tempfile.mkstemp

    def refuse_in_source(*args, dir=None, **kwargs):
        if dir is not None and str(dir).startswith(str(source)):
            raise PermissionError(13, "read-only", str(dir))
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", refuse_in_source)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "cache"))
    (tmp_path / "cache").mkdir()
    where = i18n.compile_catalogues(source)
    assert where.startswith(str(tmp_path / "cache")) and not mo.exists()
    assert Translations.load(where, ["zh"]).gettext("OK") == "确定"


def test_the_sign_in_page_is_chinese(app, allowed):
    client = app.test_client()
    for url in ("/login/", "/"):
        check_page(client, url, allowed, "anonymous")


def test_report():
    """The figure: pages checked per role and English words found (each line with where it was)."""
    lines = [
        f"{len(wheres):4d} x {context!r}   e.g. {sorted(wheres)[0]}"
        for context, wheres in sorted(FOUND.items(), key=lambda kv: -len(kv[1]))
    ]
    print("\nChinese everywhere: pages checked per role:", dict(CHECKED))
    print("English words found:", sum(WORDS.values()))
    print("\n".join(lines))
    assert not BROKEN, f"pages that failed: {BROKEN}"
    assert not FOUND, "English on Chinese pages:\n" + "\n".join(lines[:60])
