"""Playwright (Python) driving Debian's Chromium against pytest-django's live server.

The browser is the system's ``chromium`` (``make test`` installs it with apt-get);
Playwright never downloads one. Without it these tests fail rather than skip, so CI
cannot pass without running them.
"""

import os
import shutil
from pathlib import Path

# Playwright's sync API runs an event loop in the test's thread; Django refuses ORM
# calls from a thread with a running loop unless told this is safe (it is: the loop
# only drives the browser).
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

import pytest
from django.core.management import call_command
from django.db import connections
from playwright.sync_api import sync_playwright

from config.celery import app as celery_app

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VENDOR_FILES = ["chart.umd.min.js", "htmx.min.js"]


@pytest.fixture(scope="session")
def chromium() -> str:
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("Debian's Chromium is missing: run `make test`, which installs it (apt-get install -y chromium).")
    missing = [name for name in VENDOR_FILES if not (ROOT / "static" / "vendor" / name).exists()]
    if missing:
        pytest.fail(f"static/vendor/ lacks {', '.join(missing)}: run `make assets` (npm ci and copy).")
    call_command("compile_translations", verbosity=0)
    return executable


@pytest.fixture
def eager_tasks():
    """Run Celery tasks in the live server's thread, as the quick start does, even when a broker is configured
    (no worker runs beside these tests)."""
    saved = celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates
    celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates = True, True
    yield
    celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates = saved


@pytest.fixture
def page(chromium, live_server, eager_tasks, settings):
    """A Chromium page on the live server, started and stopped with the test.

    While Playwright's event loop runs, Django treats the thread as async and hands the
    test body a database connection of its own. Starting the browser after the data
    fixtures (list them before ``page``) and closing that connection before the loop
    stops keeps the test database's own connection, and its rollback, intact.
    """
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False  # The live server speaks plain HTTP.
    errors = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(base_url=live_server.url, locale="en-US")
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.on("pageerror", lambda error: errors.append(str(error)))
        try:
            yield page
        finally:
            connections.close_all()
            browser.close()
    assert not errors, f"JavaScript errors in the page: {errors}"


def log_in(page, username: str, password: str = "pw-for-tests") -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
