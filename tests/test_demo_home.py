"""The demo's landing page at ``/`` (the admin's "View site") and the docs it links to."""

from __future__ import annotations

import io
import re

import pytest
from django.core.management import call_command


def links(html: str) -> list[str]:
    return re.findall(r'<a href="([^"]+)"', html)


@pytest.fixture
def home(client, db):
    def get() -> str:
        response = client.get("/")
        assert response.status_code == 200
        assert response["Content-Type"].startswith("text/html")
        return response.content.decode()

    return get


def test_home__links_to_the_admin_the_apis_the_schema_and_the_docs(home):
    found = links(home())

    assert {"/admin/", "/api/kv/", "/api/jobs/", "/api/schema/", "/docs/operations.md"} <= set(found)


def test_home__says_the_kv_and_jobs_apis_are_off_by_default_and_how_to_turn_them_on(home):
    html = home()

    assert re.search(r'/api/kv/</a>\s*<span class="off">off</span>: turn it on with <code>KV_HTTP_ENABLED=true make run</code>', html)
    assert re.search(r'/api/jobs/</a>\s*<span class="off">off</span>: turn it on with <code>JOBS_HTTP_ENABLED=true make run</code>', html)


def test_home__says_the_kv_api_is_on_when_kv_http_enabled(home, app_env):
    app_env.set("KV_HTTP_ENABLED", "true")

    html = home()

    assert re.search(r'/api/kv/</a>\s*<span class="on">on</span>', html)


def test_home__says_the_jobs_api_is_on_when_jobs_http_enabled_in_settings(home, settings):
    settings.JOBS = {"HTTP_ENABLED": True}

    assert re.search(r'/api/jobs/</a>\s*<span class="on">on</span>', home())


def test_home__lists_a_disabled_plugins_api_with_the_command_that_enables_it(home):
    assert re.search(r'/api/notes/</a>\s*<span class="off">off</span>: turn it on with '
                     r"<code>manage.py pm enable notes</code>", home())


def test_home__lists_an_enabled_plugins_api_as_on(home):
    call_command("pm", "enable", "notes", stdout=io.StringIO(), stderr=io.StringIO())

    assert re.search(r'/api/notes/</a>\s*<span class="on">on</span>', home())


def test_home__has_no_script(home):
    assert "<script" not in home().lower()


def test_home__escapes_a_plugins_description(home, monkeypatch):
    from tachycore.manager import plugin_manager

    monkeypatch.setattr(plugin_manager.plugins["notes"], "description", "<b>bold</b> & more")

    html = home()
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; more" in html
    assert "<b>bold</b>" not in html


@pytest.mark.django_db
def test_doc__serves_a_docs_file_as_plain_text(client):
    response = client.get("/docs/operations.md")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert b"".join(response.streaming_content).startswith(b"# ")


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["nosuch.md", "..%2FREADME.md", "..%2F..%2Fetc%2Fpasswd", "images"])
def test_doc__answers_404_for_anything_but_a_docs_markdown_file(client, name):
    assert client.get(f"/docs/{name}").status_code == 404


def test_home__a_plugin_asking_for_ungranted_capabilities_gets_the_grant_requested_command(home, settings):
    from tachycore.models import CapabilityGrant

    settings.TACHYCORE = {**settings.TACHYCORE, "GRANTS": {}}
    CapabilityGrant.objects.filter(plugin="audit").delete()

    assert re.search(r"<code>manage.py pm enable notes --grant-requested</code>", home())
