"""The demo site as ``make run`` serves it (demo.settings, no test plugins), in headless Chromium.

It runs on its own SQLite file, migrated, with ``notes`` enabled and a superuser, like a
laptop after ``make run`` and the README's ``pm enable notes --grant-requested``. With
``TACHY_SCREENSHOTS=docs/images`` it writes the README's screenshot of the plugins page.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.helpers.processes import ROOT, start_server, stop_server

from .test_admin_browser import screenshot

pytestmark = pytest.mark.browser

PASSWORD = "demo-screens-pw"


def demo_env(database: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("PYTEST", "TACHYCORE_", "KV_", "JOBS_"))}
    env.update(DJANGO_SETTINGS_MODULE="demo.settings", DATABASE_URL=f"sqlite:///{database}",
               PYTHONPATH=str(ROOT), DJANGO_SUPERUSER_PASSWORD=PASSWORD)
    return env


@pytest.fixture(scope="module")
def demo_site(tmp_path_factory, chromium):
    """The URL of a demo ``runserver`` on a fresh database, stopped after the module."""
    env = demo_env(str(tmp_path_factory.mktemp("demo") / "db.sqlite3"))
    for command in (["migrate", "--noinput"], ["pm", "enable", "notes", "--grant-requested"],
                    ["createsuperuser", "--noinput", "--username", "admin", "--email", "admin@example.com"]):
        done = subprocess.run([sys.executable, "manage.py", *command], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
    url, proc = start_server(env)
    yield url
    stop_server(proc)


def log_in(page, url: str) -> None:
    page.goto(url + "/admin/login/?next=/admin/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(url + "/admin/")


def test_demo_browser__the_admins_view_site_opens_the_landing_page(demo_site, browser_page):
    log_in(browser_page, demo_site)

    browser_page.click("text=View site")

    assert browser_page.url == demo_site + "/"
    assert browser_page.locator('a[href="/api/notes/"]').count() == 1
    assert "on" in browser_page.inner_text('li:has(a[href="/api/notes/"]) .on')


def test_demo_browser__the_plugins_page_lists_the_demo_plugins_and_nothing_of_the_tests(demo_site,
                                                                                      browser_page):
    log_in(browser_page, demo_site)

    browser_page.goto(demo_site + "/admin/tachycore/applicationplugin/")

    statuses = {name: browser_page.get_attribute(f"#plugin-{name}", "data-status")
                for name in ("audit", "jobs", "kv", "notes")}
    assert statuses == dict.fromkeys(statuses, "enabled")
    assert "toolbox" not in browser_page.inner_text("#content")
    screenshot(browser_page, "plugins")
