"""Browser fixtures: the app served over real HTTP from a background thread, and Debian's
Chromium driven by Playwright (``playwright install`` cannot download browsers here).

``live_server`` serves the session ``app`` fixture (tests/conftest.py: CSRF off, insecure session
cookie) with werkzeug on 127.0.0.1 and a free port; ``browser`` is one Chromium per session;
``page`` is a fresh context (own cookies) per test; ``login(page, role)`` signs in through the
login form.
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest
from werkzeug.serving import WSGIRequestHandler, make_server

from tests.conftest import PASSWORD

CHROMIUM = os.environ.get("DESK_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    # The browser's own controls (date pickers, file inputs) in Chinese, as on the office's PCs.
    "--lang=zh-CN",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
TIMEOUT_MS = 15_000


class QuietHandler(WSGIRequestHandler):
    """No access log line per asset: failures print the page instead."""

    def log_request(self, *args, **kwargs):
        pass


class LiveServer:
    def __init__(self, app):
        self.server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=QuietHandler)
        self.host = f"127.0.0.1:{self.server.server_port}"
        self.url = f"http://{self.host}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="live-server", daemon=True)

    def start(self):
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.thread.join(timeout=10)
        self.server.server_close()


@pytest.fixture(scope="session")
def live_server(app):
    server = LiveServer(app)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser():
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        pytest.fail(f'Chromium not found at {CHROMIUM} (apt-get install -y chromium; deselect with -m "not browser")')
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture()
def new_page(browser, live_server):
    """``new_page(locale="zh-CN")``: a page in a fresh browser context (its own cookies)."""
    contexts = []

    def make(locale: str = "zh-CN"):
        context = browser.new_context(base_url=live_server.url, locale=locale, viewport={"width": 1280, "height": 900})
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


@pytest.fixture()
def page(new_page):
    return new_page()


def sign_in(page, role: str) -> None:
    """Sign in as ``role`` (or a username) from the home page, by its login link and the form,
    and wait for the redirect away from it."""
    page.goto("/")
    if page.locator("input[name=username]").count() == 0:
        with page.expect_navigation():
            page.locator("a[href*='/login']").first.click()
    page.fill("input[name=username]", role.lower())
    page.fill("input[name=password]", PASSWORD)
    with page.expect_navigation():
        page.locator("form [type=submit]").first.click()
    assert "/login" not in page.url, f"{role}: login failed, still at {page.url}: {page.content()[:500]}"


@pytest.fixture()
def login():
    """``login(page, "Staff")``: sign in through the login form."""
    return sign_in


@pytest.fixture()
def artifacts():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
