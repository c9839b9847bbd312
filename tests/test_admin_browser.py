"""The admin in a real browser (headless Chromium) against a real server and dispatcher.

Set ``TACHY_SCREENSHOTS=docs/images`` to also write the README's screenshots.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

from tachycore.manager import plugin_manager
from tests.helpers.http import status_of
from tests.helpers.processes import ROOT, wait_until

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


def test_browser__requeue_a_failed_job_and_see_it_complete_while_runjobs_runs(admin_site, browser_page,
                                                                             subprocess_env):
    import subprocess
    import sys

    from django.utils import timezone

    from jobs import get_job_store
    from jobs.models import Job, JobStatus

    url, login = admin_site
    now = timezone.now()
    failed = Job.objects.create(topic="toolbox.echo", payload={"again": True}, status=JobStatus.FAILED,
                                run_at=now, created=now, updated=now, finished_at=now, attempts=4,
                                max_retries=3, last_error="Traceback (most recent call last):\nRuntimeError: boom")
    get_job_store().enqueue_many([{"topic": "toolbox.echo", "payload": n} for n in range(30)])
    runjobs = subprocess.Popen([sys.executable, str(ROOT / "manage.py"), "runjobs", "--workers", "2"],
                               env={**subprocess_env, "JOBS_POLL_INTERVAL": "0.2s", "JOBS_STATUS_INTERVAL": "0"},
                               cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        page = browser_page
        login(page)
        page.goto(url + "/admin/jobs/job/?status__exact=failed")
        page.check(f'input.action-select[value="{failed.id}"]')
        page.select_option('select[name="action"]', "requeue")
        page.click('button[name="index"]')
        assert "1 job requeued" in page.inner_text(".messagelist")
        assert wait_until(lambda: Job.objects.get(pk=failed.id).status == JobStatus.COMPLETED, 20)
        page.goto(url + f"/admin/jobs/job/{failed.id}/change/")
        assert "completed" in page.inner_text("#content")
        assert wait_until(lambda: Job.objects.filter(status=JobStatus.COMPLETED).count() == 31, 20)
        page.goto(url + "/admin/jobs/job/dashboard/")
        assert page.locator("svg").count() >= 1
        screenshot(page, "jobs-dashboard")
    finally:
        runjobs.terminate()
        runjobs.wait(30)
        runjobs.stderr.close()


def test_browser__editing_a_key_with_invalid_json_shows_the_parse_error(admin_site, browser_page):
    from urllib.parse import quote

    from django.contrib.admin.utils import quote as admin_quote

    import kv
    from kv.models import KVEntry

    url, login = admin_site
    store = kv.get_store()
    store.set("settings/theme", {"dark": True, "accent": "teal"})
    store.set("visits", 1234)
    store.hset("user:1", mapping={"name": "Ada", "logins": 3})
    store.set("session:abc", {"user": 1}, ex=3600)
    page = browser_page
    login(page)
    page.goto(url + "/admin/kv/kventry/?q=" + quote("s*"))
    listed = page.inner_text("#result_list")
    assert "settings/theme" in listed and "session:abc" in listed and "visits" not in listed
    page.goto(url + "/admin/kv/kventry/")
    screenshot(page, "keys")
    page.goto(url + f"/admin/kv/kventry/{admin_quote('settings/theme')}/change/")
    page.fill('textarea[name="json_value"]', '{"dark": true, "accent": ')
    page.click('input[name="_save"]')
    assert "Invalid JSON" in page.inner_text(".errorlist")
    assert KVEntry.objects.get(key="settings/theme").value == {"dark": True, "accent": "teal"}


def test_browser__maintenance_on_answers_503_to_a_non_staff_page(admin_site, browser_page, chromium):
    from tachycore.maintenance import maintenance

    url, login = admin_site
    page = browser_page
    login(page)
    page.goto(url + "/admin/tachycore/node/")
    page.fill('#maintenance-form textarea, #maintenance-form input[name="message"]', "Back at five")
    page.click('#maintenance-form button[value="on"]')
    assert "Back at five" in page.inner_text("#maintenance")
    visitor = chromium.new_context()
    try:
        anonymous = visitor.new_page()
        assert wait_until(lambda: anonymous.goto(url + "/api/notes/").status == 503, 5)
        assert "Back at five" in anonymous.content()
        page.goto(url + "/admin/tachycore/node/")  # staff still get in
        page.click('#maintenance-form button[value="off"]')
        assert not maintenance.current().enabled
        assert wait_until(lambda: anonymous.goto(url + "/api/notes/").status != 503, 5)
    finally:
        visitor.close()


def test_browser__the_grants_and_the_audit_trail_of_a_refusal(admin_site, browser_page):
    from tachycore import audit
    from tachycore.context import acting_as
    from tachycore.errors import CapabilityDenied
    from tachycore.governance import grants

    url, login = admin_site
    plugin_manager.enable("notes")
    grants.grant("notes", "kv", "READ", granted_by="pm grant (ops)")
    import kv

    with acting_as("notes"), contextlib.suppress(CapabilityDenied):
        kv.get_store().set("notes:draft", 1)
    audit.flush(5)
    page = browser_page
    login(page)

    page.goto(url + "/admin/tachycore/capabilitygrant/")
    rows = page.inner_text("#result_list")
    assert "pm grant (ops)" in rows and "jobs:enqueue" in rows
    screenshot(page, "grants")

    page.goto(url + "/admin/tachycore/auditevent/?decision__exact=denied")
    rows = page.inner_text("#result_list")
    assert "kv.set" in rows and "notes:draft" in rows
    screenshot(page, "audit")
