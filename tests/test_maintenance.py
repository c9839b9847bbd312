"""Maintenance mode: 503 with the message to everyone but staff, in this process and in every other."""

from __future__ import annotations

import io
import json
import time

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db.models import F
from django.utils import timezone

from tachycore.maintenance import MaintenanceMode, maintenance
from tachycore.models import SiteState
from tests.helpers.http import fetch, status_of
from tests.helpers.processes import manage, wait_until
from tests.helpers.rows import make_node

#: how soon every process must follow a change (DESIGN.md: "within one second")
PROPAGATION = 1.0
DEFAULT_TEXT = "The site is down for maintenance. Please try again soon."


def run(*args: str) -> str:
    """Run a command in this process; return what it printed."""
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


@pytest.fixture
def notes(db):
    run("pm", "enable", "notes")


@pytest.fixture
def member(db):
    return get_user_model().objects.create_user("member", password="member-pass")


@pytest.fixture
def staff(db):
    return get_user_model().objects.create_user("editor", password="editor-pass", is_staff=True)


# -- one process: the test client ---------------------------------------------------------------


@pytest.mark.django_db
def test_api__anonymous_gets_503_json_with_the_message_and_retry_after(client, notes):
    maintenance.turn_on("Back at five")

    response = client.get("/api/notes/")

    assert response.status_code == 503
    assert response["Content-Type"] == "application/json"
    assert response.json()["detail"] == "Back at five"
    assert int(response["Retry-After"]) > 0


@pytest.mark.django_db
def test_api__turned_on_by_the_command_answers_503(client, notes):
    run("maintenance", "on", "--message", "Back at five")

    response = client.get("/api/notes/")

    assert response.status_code == 503
    assert response.json()["detail"] == "Back at five"


@pytest.mark.django_db
def test_api__unrouted_api_path_answers_503_too(client, notes):
    maintenance.turn_on("Back at five")

    response = client.get("/api/nosuch/")

    assert response.status_code == 503
    assert response.json()["detail"] == "Back at five"


@pytest.mark.django_db
def test_api__post_from_a_member_answers_503_and_writes_nothing(client, notes, member):
    from demo.notes.models import Note

    before = Note.objects.count()
    client.force_login(member)
    maintenance.turn_on("Back at five")

    response = client.post(
        "/api/notes/", {"title": "during maintenance"}, content_type="application/json"
    )

    assert response.status_code == 503
    assert Note.objects.count() == before


@pytest.mark.django_db
def test_page__anonymous_gets_503_html_with_the_message(client):
    maintenance.turn_on("Back at five")

    response = client.get("/admin/")

    assert response.status_code == 503
    assert response["Content-Type"].startswith("text/html")
    assert "Back at five" in response.content.decode()
    assert int(response["Retry-After"]) > 0


@pytest.mark.django_db
def test_page__message_is_html_escaped(client):
    maintenance.turn_on('<script>alert("x")</script> & more')

    body = client.get("/admin/").content.decode()

    assert "<script>" not in body
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; more" in body


@pytest.mark.django_db
def test_page__accept_json_gets_json(client):
    maintenance.turn_on("Back at five")

    response = client.get("/admin/", headers={"Accept": "application/json"})

    assert response.status_code == 503
    assert response["Content-Type"] == "application/json"
    assert response.json()["detail"] == "Back at five"


@pytest.mark.django_db
def test_empty_message__gets_a_default_text(client, notes):
    maintenance.turn_on("")

    api = client.get("/api/notes/")
    page = client.get("/admin/")

    assert api.status_code == 503
    assert api.json()["detail"] == DEFAULT_TEXT
    assert page.status_code == 503
    assert DEFAULT_TEXT in page.content.decode()


@pytest.mark.django_db
def test_member__authenticated_non_staff_gets_503(client, notes, member):
    client.force_login(member)
    maintenance.turn_on("Back at five")

    assert client.get("/api/notes/").status_code == 503
    assert client.get("/admin/").status_code == 503


@pytest.mark.django_db
def test_staff__gets_the_normal_answers(client, notes, staff):
    client.force_login(staff)
    maintenance.turn_on("Back at five")

    notes_response = client.get("/api/notes/")
    admin_response = client.get("/admin/")

    assert notes_response.status_code == 200
    assert isinstance(notes_response.json(), list)
    assert admin_response.status_code == 200


@pytest.mark.django_db
def test_superuser__gets_the_normal_answers(admin_client, notes):
    maintenance.turn_on("Back at five")

    assert admin_client.get("/admin/").status_code == 200
    assert admin_client.get("/api/notes/").status_code == 200


@pytest.mark.django_db
def test_staff__inactive_account_gets_503(client, staff):
    client.force_login(staff)
    staff.is_active = False
    staff.save()
    maintenance.turn_on("Back at five")

    assert client.get("/admin/").status_code == 503


def token_header(user) -> dict[str, str]:
    from rest_framework.authtoken.models import Token

    return {"HTTP_AUTHORIZATION": f"Token {Token.objects.create(user=user).key}"}


@pytest.mark.django_db
def test_api_token__staff_get_the_normal_answers(client, notes, staff):
    maintenance.turn_on("Back at five")

    read = client.get("/api/notes/", **token_header(staff))
    write = client.post("/api/notes/", {"title": "t", "body": "b"}, content_type="application/json",
                        HTTP_AUTHORIZATION=read.request["HTTP_AUTHORIZATION"])

    assert read.status_code == 200
    assert write.status_code == 201, write.content  # no CSRF check: the token is not a session


@pytest.mark.django_db
def test_api_token__member_gets_503(client, notes, member):
    maintenance.turn_on("Back at five")

    response = client.post("/api/notes/", {"title": "t", "body": "b"}, content_type="application/json",
                           **token_header(member))

    assert response.status_code == 503 and response.json()["detail"] == "Back at five"


@pytest.mark.django_db
def test_api_token__inactive_staff_gets_503(client, notes, staff):
    header = token_header(staff)
    staff.is_active = False
    staff.save()
    maintenance.turn_on("Back at five")

    assert client.get("/api/notes/", **header).status_code == 503


@pytest.mark.django_db
@pytest.mark.parametrize("authorization", ["Token not-a-token", "Token", "Token a b", "Bearer x", "Basic !!"])
def test_api_token__bad_credentials_get_503_not_500(client, notes, authorization):
    maintenance.turn_on("Back at five")

    response = client.get("/api/notes/", HTTP_AUTHORIZATION=authorization)

    assert response.status_code == 503 and response.json()["detail"] == "Back at five"


@pytest.mark.django_db
def test_api_token__only_under_the_api(client, notes, staff):
    maintenance.turn_on("Back at five")

    assert client.get("/admin/", **token_header(staff)).status_code == 503  # the admin takes sessions only


@pytest.mark.django_db
def test_api_token__member_session_with_a_staff_token_gets_through(client, notes, member, staff):
    client.force_login(member)
    maintenance.turn_on("Back at five")

    assert client.get("/api/notes/", **token_header(staff)).status_code == 200


@pytest.mark.django_db
def test_api_basic__staff_get_through_where_the_site_takes_basic(client, notes, staff, settings):
    import base64

    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.BasicAuthentication"]}
    maintenance.turn_on("Back at five")

    def basic(password: str) -> str:
        return "Basic " + base64.b64encode(f"editor:{password}".encode()).decode()

    assert client.get("/api/notes/", HTTP_AUTHORIZATION=basic("editor-pass")).status_code == 200
    assert client.get("/api/notes/", HTTP_AUTHORIZATION=basic("wrong")).status_code == 503


@pytest.mark.django_db
def test_admin_login__stays_reachable(client):
    maintenance.turn_on("Back at five")

    response = client.get("/admin/login/")

    assert response.status_code == 200
    assert "Back at five" not in response.content.decode()


@pytest.mark.django_db
def test_admin_login__staff_can_sign_in_during_maintenance(client, staff):
    maintenance.turn_on("Back at five")
    assert client.get("/admin/").status_code == 503

    response = client.post(
        "/admin/login/", {"username": "editor", "password": "editor-pass", "next": "/admin/"}
    )

    assert response.status_code == 302
    assert response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200


@pytest.mark.django_db
def test_admin_login__member_sign_in_still_gets_503(client, member):
    maintenance.turn_on("Back at five")

    client.post(
        "/admin/login/", {"username": "member", "password": "member-pass", "next": "/admin/"}
    )

    assert client.get("/admin/").status_code == 503


@pytest.mark.django_db
def test_off__restores_normal_answers_for_everyone(client, notes):
    maintenance.turn_on("Back at five")
    assert client.get("/api/notes/").status_code == 503

    run("maintenance", "off")

    assert client.get("/api/notes/").status_code == 200
    response = client.get("/admin/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


@pytest.mark.django_db
def test_off__when_never_on_is_harmless(client, notes):
    assert run("maintenance", "off").strip() == "Maintenance mode is off."

    assert client.get("/api/notes/").status_code == 200


@pytest.mark.django_db
def test_state__is_stored_in_the_database(db):
    maintenance.turn_on("Back at five")

    row = SiteState.objects.get(pk=1)
    assert (row.maintenance, row.message) == (True, "Back at five")
    assert row.changed is not None
    other = MaintenanceMode().current()
    assert (other.enabled, other.message) == (True, "Back at five")

    maintenance.turn_off()

    other = MaintenanceMode().current()
    assert (other.enabled, other.message) == (False, "")
    assert SiteState.objects.get(pk=1).maintenance is False


@pytest.mark.django_db
def test_state__each_change_raises_the_version(db):
    maintenance.turn_on("one")
    first = SiteState.objects.get(pk=1).version
    maintenance.turn_on("two")
    second = SiteState.objects.get(pk=1).version
    maintenance.turn_off()
    third = SiteState.objects.get(pk=1).version

    assert first < second < third


@pytest.mark.django_db
def test_state__a_change_written_elsewhere_is_followed_within_a_second(client, notes):
    """Another process writes the row (as ``manage.py maintenance`` does); this one follows."""
    assert client.get("/api/notes/").status_code == 200

    SiteState.objects.update_or_create(
        pk=1,
        defaults={
            "maintenance": True,
            "message": "From elsewhere",
            "changed": timezone.now(),
            "version": 41,
        },
    )

    assert wait_until(lambda: client.get("/api/notes/").status_code == 503, timeout=PROPAGATION)
    assert client.get("/api/notes/").json()["detail"] == "From elsewhere"

    SiteState.objects.filter(pk=1).update(maintenance=False, message="", version=F("version") + 1)

    assert wait_until(lambda: client.get("/api/notes/").status_code == 200, timeout=PROPAGATION)


# -- manage.py maintenance ---------------------------------------------------------------------


@pytest.mark.django_db
def test_command_on__confirms_and_stores_the_message(db):
    out = run("maintenance", "on", "--message", "Back at five")

    assert out.strip() == "Maintenance mode is on: every process answers 503 to all but staff."
    row = SiteState.objects.get(pk=1)
    assert (row.maintenance, row.message) == (True, "Back at five")


@pytest.mark.django_db
def test_command_off__confirms_and_clears(db):
    run("maintenance", "on", "--message", "Back at five")

    out = run("maintenance", "off")

    assert out.strip() == "Maintenance mode is off."
    row = SiteState.objects.get(pk=1)
    assert (row.maintenance, row.message) == (False, "")


@pytest.mark.django_db
def test_command_status__on_with_message_and_pickup_count(db):
    maintenance.turn_on("Back at five")
    make_node("web-1", maintenance=True)
    make_node("web-2", maintenance=False)  # has not picked it up yet
    make_node("jobs-1", kind="dispatcher", status="maintaining", maintenance=True)
    # not counted: a command, a dead process, a stopped one
    make_node("cmd-1", kind="command", status="commanding", maintenance=True)
    make_node("web-stale", maintenance=True, age=3600)
    make_node("web-stopped", status="stopped", maintenance=True)

    lines = run("maintenance", "status").splitlines()

    assert lines[0].startswith("Maintenance mode is on since ")
    assert "Message: Back at five" in lines
    assert lines[-1] == "2 of 3 live processes have picked it up."


@pytest.mark.django_db
def test_command_status__off_counts_processes_that_left_it(db):
    maintenance.turn_on("Back at five")
    maintenance.turn_off()
    make_node("web-1", maintenance=False)
    make_node("web-2", maintenance=True)  # still serving 503

    out = run("maintenance", "status")

    assert out.splitlines()[0].startswith("Maintenance mode is off since ")
    assert "Message:" not in out
    assert out.splitlines()[-1] == "1 of 2 live processes have picked it up."


@pytest.mark.django_db
def test_command_status__never_turned_on(db):
    out = run("maintenance", "status")

    assert out.splitlines() == [
        "Maintenance mode is off.",
        "0 of 0 live processes have picked it up.",
    ]


@pytest.mark.django_db
@pytest.mark.parametrize("args", [("restart",), ()])
def test_command__bad_or_missing_action_is_a_usage_error_naming_the_actions(db, args):
    with pytest.raises(CommandError, match=r"\{on,off,status\}"):
        run("maintenance", *args)

    assert not SiteState.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_command__bad_action_exits_2_with_usage_in_a_new_process(subprocess_env):
    result = manage(subprocess_env, "maintenance", "restart")

    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "usage:" in result.stderr
    assert "invalid choice: 'restart'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not SiteState.objects.exists()


# -- real processes: runserver and manage.py maintenance -----------------------------------------


def web_nodes(env: dict[str, str]) -> list[dict]:
    result = manage(env, "supervisor", "--json")
    assert result.returncode == 0, result.stderr
    return [node for node in json.loads(result.stdout) if node["kind"] == "web"]


def check_maintenance(env: dict[str, str], action: str, *args: str) -> None:
    result = manage(env, "maintenance", action, *args)
    assert result.returncode == 0, result.stderr


@pytest.mark.django_db(transaction=True)
def test_runserver__follows_on_and_off_from_another_process_within_a_second(
    live_server_process, subprocess_env
):
    run("pm", "enable", "notes")
    base = live_server_process()
    assert status_of(base + "/api/notes/") == 200

    check_maintenance(subprocess_env, "on", "--message", "Upgrading")
    start = time.monotonic()
    assert wait_until(lambda: status_of(base + "/api/notes/") == 503, timeout=PROPAGATION), (
        f"still served {PROPAGATION}s after maintenance on"
    )
    assert time.monotonic() - start <= PROPAGATION + 0.5

    status, headers, body = fetch(base + "/api/notes/")
    assert (status, json.loads(body)["detail"]) == (503, "Upgrading")
    assert "Retry-After" in headers
    status, headers, body = fetch(base + "/admin/")
    assert status == 503
    assert headers["Content-Type"].startswith("text/html")
    assert "Upgrading" in body
    assert status_of(base + "/admin/login/") == 200

    check_maintenance(subprocess_env, "off")
    assert wait_until(lambda: status_of(base + "/api/notes/") == 200, timeout=PROPAGATION), (
        f"still 503 {PROPAGATION}s after maintenance off"
    )
    assert status_of(base + "/admin/") == 302


@pytest.mark.django_db(transaction=True)
def test_runserver__node_reports_picking_up_maintenance(live_server_process, subprocess_env):
    base = live_server_process()
    nodes = wait_until(lambda: web_nodes(subprocess_env), timeout=5, interval=0.1)
    assert [(n["status"], n["maintenance"]) for n in nodes] == [("running", False)]

    check_maintenance(subprocess_env, "on", "--message", "Upgrading")
    assert wait_until(lambda: status_of(base + "/admin/") == 503, timeout=PROPAGATION)

    def status_says_picked_up() -> str | bool:
        out = manage(subprocess_env, "maintenance", "status").stdout
        return "1 of 1 live processes have picked it up." in out and out

    out = wait_until(status_says_picked_up, timeout=5, interval=0.1)
    assert out, manage(subprocess_env, "maintenance", "status").stdout
    assert out.startswith("Maintenance mode is on since ")
    assert "Message: Upgrading" in out
    [node] = web_nodes(subprocess_env)
    assert (node["status"], node["maintenance"]) == ("maintaining", True)

    check_maintenance(subprocess_env, "off")
    assert wait_until(lambda: status_of(base + "/admin/") == 302, timeout=PROPAGATION)
    nodes = wait_until(
        lambda: [
            n
            for n in web_nodes(subprocess_env)
            if (n["status"], n["maintenance"]) == ("running", False)
        ],
        timeout=5,
        interval=0.1,
    )
    assert len(nodes) == 1, web_nodes(subprocess_env)


@pytest.mark.django_db(transaction=True)
def test_runserver__started_during_maintenance_serves_503_and_reports_it(
    live_server_process, subprocess_env
):
    run("pm", "enable", "notes")
    maintenance.turn_on("Started late")

    base = live_server_process()

    status, _, body = fetch(base + "/api/notes/")
    assert (status, json.loads(body)["detail"]) == (503, "Started late")
    nodes = wait_until(
        lambda: [
            n
            for n in web_nodes(subprocess_env)
            if (n["status"], n["maintenance"]) == ("maintaining", True)
        ],
        timeout=5,
        interval=0.1,
    )
    assert len(nodes) == 1, web_nodes(subprocess_env)
