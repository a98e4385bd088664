"""Browser fixtures for every app (loaded with -p): Debian's chromium driven by Playwright
(never `playwright install`). `page` is a fresh context per test; `login(user)` signs in through
the real form on the `portal_server`; `screenshot(page, name)` saves a PNG to look at."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("PORTAL_CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(os.environ.get("PORTAL_SCREENSHOTS", "/tmp/portal-screenshots"))


@pytest.fixture(scope="module")
def browser():
    """Per module: Playwright keeps an event loop open in this thread while it runs, which would
    break asyncio tests collected later in the session."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package (scripts/test.sh does it as root).")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread while it runs; the ORM calls that
    # browser tests and their fixtures make meanwhile are ordinary synchronous ones.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15000)
    yield page
    context.close()


@pytest.fixture
def login(page, portal_server):
    """login(user) signs in through the real form and returns the page on the dashboard."""

    def _login(username: str, password: str = "correct-horse-battery-staple"):
        page.goto(f"{portal_server}/accounts/login/")
        page.fill("input[name=username]", username)
        page.fill("input[name=password]", password)
        page.click("button[type=submit]")
        try:
            page.wait_for_url(f"{portal_server}/")
        except Exception:
            screenshot(page, f"login-failed-{username}")
            raise
        return page

    return _login


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def wait_for_js(page, expression: str, timeout_s: float = 15.0) -> None:
    """Wait until a JavaScript expression is truthy. Not page.wait_for_function: Playwright compiles
    that predicate with eval() inside the page, which the portal's CSP (script-src 'self') refuses;
    page.evaluate goes through the browser's debugging protocol, which the policy does not govern."""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout_s} s: {expression}")
        page.wait_for_timeout(100)
