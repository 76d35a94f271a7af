"""Shared helpers for the browser journeys (a day's task done from the workbench by clicking and
typing only): a click counter, full-page screenshots, choosing in a select2 box, and finding
English words in the visible text of a Chinese page.

Used by tests/browser/test_journeys_office.py and tests/browser/test_journeys.py.
"""

from __future__ import annotations

import re
from pathlib import Path

SHOTS = Path(__file__).resolve().parent / "shots"

# Words allowed on a Chinese page: brand and product names, units, file formats, the language
# switch's own name for English, and the test users' names (data typed by people, not wording).
# A journey passes its own extra words to ``english_words(page, allowed)``.
ALLOWED = set(
    # the language switch's own name for English; formats, standards and brands
    "English Excel xlsx xls csv WPS PDF SLA QR URL API HTTP VIP WeCom DingTalk webhook ECharts kWh "
    # the test users' logins and names (data, not wording)
    "admin manager supervisor staff committee system Admin Manager Supervisor Staff Committee System Tester "
    "AdminTester ManagerTester SupervisorTester StaffTester CommitteeTester "
    # the extension of an uploaded file's own name (物业服务收费标准批复.pdf)
    "pdf ofd jpg jpeg png doc docx".split()
)
# Tokens that are data, not words: anything with a digit (codes, numbers), mail addresses, paths.
_DATA_TOKEN = re.compile(r"\S*\d\S*|\S+@\S+|\S*/\S*")
_WORD = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{3,}(?![A-Za-z0-9])")


class Clicks:
    """Counts the clicks of a journey: every click goes through ``.click(locator)``."""

    def __init__(self, name: str = ""):
        self.name = name
        self.count = 0

    def click(self, locator, **kwargs):
        self.count += 1
        return locator.click(**kwargs)

    def select(self, locator, *args, **kwargs):
        """Choose in a native ``<select>`` (a person clicks it open and clicks the option: 2)."""
        self.count += 2
        return locator.select_option(*args, **kwargs)

    def __int__(self) -> int:
        return self.count

    def report(self) -> str:
        line = f"journey {self.name}: {self.count} clicks"
        print(line)
        return line


def shot(page, name: str) -> Path:
    """A full-page screenshot at tests/browser/shots/<name>.png (e.g. ``journey-billing-1-home``)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def select2_choose(page, field: str, label: str, typed: str | None = None, clicks: Clicks | None = None) -> None:
    """Choose ``label`` in the select2 box standing in for ``<select id=field>``: open it, type
    ``typed`` into its search box first if given (AJAX lookups fetch as you type), and click the
    option whose text is ``label``. Both clicks are counted on ``clicks`` when given."""

    def click(locator):
        return clicks.click(locator) if clicks is not None else locator.click()

    click(page.locator(f"#{field} + .select2-container .select2-selection").first)
    dropdown = page.locator(".select2-container--open .select2-dropdown")
    dropdown.wait_for(state="visible")
    if typed is not None:
        dropdown.locator(".select2-search__field").type(typed, delay=30)
    option = dropdown.locator(".select2-results__option", has_text=re.compile(rf"^\s*{re.escape(label)}\s*$"))
    option.first.wait_for(state="visible")
    click(option.first)
    shown = page.locator(f"#select2-{field}-container").inner_text()
    assert label in shown, f"{field}: chose {label!r} but the box shows {shown!r}"


def english_in_context(page, allowed: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """Each English word of the page's visible text with its line: ``"word | line"`` (see
    ``english_words``), for a failure message that says where the word is."""
    return english_in_text(page.locator("body").inner_text(), allowed)


def english_in_text(text: str, allowed: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """``english_in_context`` for a text already taken from the page (a part of it)."""
    allow = ALLOWED | set(allowed)
    found = []
    for line in text.splitlines():
        clean = _DATA_TOKEN.sub(" ", line)
        for m in _WORD.finditer(clean):
            if m.group(0) not in allow:
                found.append(f"{m.group(0)} | {line.strip()[:100]}")
    return found


def english_words(page, allowed: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """The English words (3+ Latin letters) in the page's visible text, other than the allowed
    brand/unit/user-name words (``ALLOWED`` plus ``allowed``) and data tokens (anything with a
    digit, mail addresses, paths)."""
    return [item.split(" | ", 1)[0] for item in english_in_context(page, allowed)]
