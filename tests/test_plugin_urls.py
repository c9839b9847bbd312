"""Plugin URLs follow the registry at runtime: 404 while disabled, in every process, no restart."""

from __future__ import annotations

import io
import json
import time

import pytest
from django.core.management import call_command

from demo.notes.plugin import WELCOME_TITLE
from tests.helpers.http import status_of
from tests.helpers.processes import manage

#: how soon another process must see a plugin state change (DESIGN.md: "within one second")
PROPAGATION = 1.0


def pm(*args: str) -> str:
    out = io.StringIO()
    call_command("pm", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def seconds_until_status(url: str, expected: int, within: float) -> float | None:
    """Poll ``url`` until it answers ``expected``; return the seconds it took, or None after ``within``."""
    start = time.monotonic()
    while True:
        code = status_of(url)
        elapsed = time.monotonic() - start
        if code == expected:
            return elapsed
        if elapsed > within:
            return None
        time.sleep(0.02)


# -- one process (the test client) ------------------------------------------------------------


@pytest.mark.django_db
def test_notes_urls__answer_only_while_enabled_without_restart(client):
    pm("enable", "notes")
    response = client.get("/api/notes/")
    assert response.status_code == 200
    assert [note["title"] for note in response.json()] == [WELCOME_TITLE]

    pm("disable", "notes")
    assert client.get("/api/notes/").status_code == 404

    pm("enable", "notes")
    assert client.get("/api/notes/").status_code == 200


@pytest.mark.django_db
def test_notes_urls__404_before_the_plugin_is_added(client):
    assert client.get("/api/notes/").status_code == 404


@pytest.mark.django_db
def test_notes_urls__404_when_added_but_not_enabled(client):
    pm("install", "notes")

    assert client.get("/api/notes/").status_code == 404


@pytest.mark.django_db
def test_notes_urls__404_after_remove(client):
    pm("enable", "notes")
    pm("remove", "notes", "--force")

    assert client.get("/api/notes/").status_code == 404


@pytest.mark.django_db
def test_notes_urls__disabling_one_plugin_leaves_others_served(admin_client):
    pm("enable", "notes")
    pm("disable", "notes")

    assert admin_client.get("/api/notes/").status_code == 404
    response = admin_client.get("/api/audit/")
    assert response.status_code == 200
    assert ["audit", "enabled"] in [[event["plugin"], event["event"]] for event in response.json()]


@pytest.mark.django_db
def test_notes_urls__options_are_applied_at_runtime(client):
    from demo.notes.models import Note

    pm("enable", "notes")
    Note.objects.bulk_create(Note(title=f"note {i}") for i in range(5))
    assert len(client.get("/api/notes/").json()) == 6

    pm("remove", "notes", "--force")
    pm("enable", "notes", "--options", '{"page_size": 2}')

    assert len(client.get("/api/notes/").json()) == 2


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path",
    [
        "/api/toolbox/",  # an enabled plugin without URLs
        "/api/nosuch/",  # no such plugin
        "/api/",
        "/nowhere/",  # outside every plugin
    ],
)
def test_unrouted_paths__404(client, path):
    pm("enable", "notes")

    assert client.get(path).status_code == 404


# -- real processes: runserver and manage.py pm -------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_runserver__follows_disable_and_enable_from_another_process(
    live_server_process, subprocess_env
):
    pm("enable", "notes")
    url = live_server_process() + "/api/notes/"
    assert status_of(url) == 200

    disabled = manage(subprocess_env, "pm", "disable", "notes")
    assert disabled.returncode == 0, disabled.stderr
    took = seconds_until_status(url, 404, within=PROPAGATION)
    assert took is not None, f"still served {PROPAGATION}s after pm disable"

    enabled = manage(subprocess_env, "pm", "enable", "notes")
    assert enabled.returncode == 0, enabled.stderr
    took = seconds_until_status(url, 200, within=PROPAGATION)
    assert took is not None, f"still 404 {PROPAGATION}s after pm enable"


@pytest.mark.django_db(transaction=True)
def test_runserver__serves_plugin_first_enabled_after_start(live_server_process, subprocess_env):
    url = live_server_process() + "/api/notes/"
    assert status_of(url) == 404

    enabled = manage(subprocess_env, "pm", "enable", "notes")
    assert enabled.returncode == 0, enabled.stderr

    assert seconds_until_status(url, 200, within=PROPAGATION) is not None


@pytest.mark.django_db(transaction=True)
def test_runserver__unrouted_paths_404(live_server_process):
    pm("enable", "notes")
    base = live_server_process()

    assert status_of(base + "/api/notes/") == 200
    assert status_of(base + "/api/toolbox/") == 404
    assert status_of(base + "/api/nosuch/") == 404
    assert status_of(base + "/nowhere/") == 404


@pytest.mark.django_db
def test_a_broken_registry_file__serves_the_last_state_read_instead_of_500s(client, settings, tmp_path, caplog):
    path = tmp_path / "plugins.json"
    settings.TACHYCORE = {**settings.TACHYCORE, "REGISTRY": {
        "BACKEND": "tachycore.registry.JSONFileRegistry", "OPTIONS": {"PATH": str(path)}}}
    pm("enable", "notes")
    assert client.get("/api/notes/").status_code == 200

    good = path.read_bytes()
    path.write_text('{"version": 99, "plugins": [{"name": "notes", "enabled": "no"}]}')
    from tachycore.manager import plugin_manager

    plugin_manager.forget()  # the next request reads the file again

    assert client.get("/api/notes/").status_code == 200  # still the state last read
    assert "plugin registry unreadable" in caplog.text
    assert "field 'enabled' of plugin 'notes' must be true or false" in caplog.text

    data = json.loads(good)
    data["version"] += 1
    for record in data["plugins"]:
        record["enabled"] = record["enabled"] and record["name"] != "notes"
    path.write_text(json.dumps(data))
    plugin_manager.forget()
    assert client.get("/api/notes/").status_code == 404  # a good file again: followed
