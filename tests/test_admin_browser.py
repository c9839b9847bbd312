"""The admin in a real browser (headless Chromium) against a real server and dispatcher.

Set ``TACHY_SCREENSHOTS=docs/images`` to also write the README's screenshots.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tachycore.manager import plugin_manager

from .conftest import ROOT, status_of, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = os.environ.get("TACHY_SCREENSHOTS")


def screenshot(page, name: str) -> None:
    if SCREENSHOTS:
        folder = Path(SCREENSHOTS) if os.path.isabs(SCREENSHOTS) else ROOT / SCREENSHOTS
        folder.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def test_browser__log_in_and_see_the_platform_sections(admin_site, browser_page):
    url, login = admin_site
    login(browser_page)
    text = browser_page.inner_text("#content").lower()
    assert "plugin kernel" in text and "plugins" in text and "jobs" in text and "key-value store" in text


def test_browser__disable_the_demo_plugin_from_its_confirmation_page_then_enable_it(admin_site, browser_page):
    url, login = admin_site
    plugin_manager.enable("notes")
    page = browser_page
    login(page)
    page.goto(url + "/admin/tachycore/applicationplugin/")
    screenshot(page, "plugins")
    page.click('#plugin-notes a[data-operation="disable"]')
    assert "will:" in page.inner_text("#content")  # the confirmation page says what it will do
    assert page.url.endswith("/notes/disable/")
    assert status_of(url + "/api/notes/") != 404  # nothing changed yet
    page.click("#confirm-operation")
    assert "Plugin notes was disabled." in page.inner_text(".messagelist")
    assert page.get_attribute("#plugin-notes", "data-status") == "disabled"
    assert wait_until(lambda: status_of(url + "/api/notes/") == 404, 5)

    page.click('#plugin-notes a[data-operation="enable"]')
    page.click("#confirm-operation")
    assert "Plugin notes was enabled." in page.inner_text(".messagelist")
    assert wait_until(lambda: status_of(url + "/api/notes/") != 404, 5)


def test_browser__a_refused_operation_says_why(admin_site, browser_page):
    url, login = admin_site
    plugin_manager.enable("notes")
    page = browser_page
    login(page)
    page.goto(url + "/admin/tachycore/applicationplugin/audit/disable/")
    assert "notes" in page.inner_text("#plan-refused")
    assert page.locator("#confirm-operation").count() == 0
