"""The nodes page: the supervisor's processes, stale ones as such, and maintenance mode."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from tachycore.maintenance import maintenance
from tachycore.models import Node, SiteState
from tests.helpers.rows import make_node

pytestmark = pytest.mark.django_db

LIST = "admin:tachycore_node_changelist"
MAINTENANCE = "admin:tachycore_node_maintenance"


def node_rows(page: str) -> dict[str, str]:
    """Node id -> its table row, as the page shows it."""
    return {match[1]: match[0] for match in re.finditer(r'<tr id="node-([^"]+)".*?</tr>', page, re.S)}


def page_of(client) -> str:
    response = client.get(reverse(LIST))
    assert response.status_code == 200
    return response.content.decode()


@pytest.fixture
def non_staff(client):
    client.force_login(User.objects.create_user("visitor", password="pw"))
    return client


@pytest.fixture
def staff_viewer(client):
    """Staff who may see the nodes but not change maintenance mode."""
    user = User.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_node"))
    client.force_login(user)
    return client


# -- the list --------------------------------------------------------------------------------


def test_list__shows_each_node(admin_client):
    make_node("web-1", name="gunicorn", age=2)
    make_node("jobs-1", kind="dispatcher", name="runjobs", age=1, status="error")
    rows = node_rows(page_of(admin_client))
    assert set(rows) == {"web-1", "jobs-1"}
    assert "host-a:4242" in rows["web-1"] and "gunicorn" in rows["web-1"]
    assert re.search(r'class="node-heartbeat">2\.\d s<', rows["web-1"]) and 'data-stale="false"' in rows["web-1"]
    assert '<span class="pa-badge on">running</span>' in rows["web-1"]
    assert '<span class="pa-badge error">error</span>' in rows["jobs-1"]


def test_list__shows_stale_nodes_as_stale(admin_client, settings):
    settings.TACHYCORE = {**settings.TACHYCORE, "NODE_TIMEOUT": "30s"}
    make_node("alive", age=5)
    make_node("gone", age=600)
    make_node("stopped", age=600, status="stopped")
    rows = node_rows(admin_client.get(reverse(LIST), {"gone": "1"}).content.decode())
    assert 'data-stale="true"' in rows["gone"] and "pa-stale" in rows["gone"] and ">stale<" in rows["gone"]
    assert ">stale<" not in rows["alive"] and "pa-stale" not in rows["alive"]
    assert ">stale<" not in rows["stopped"] and ">stopped<" in rows["stopped"]  # it said goodbye


def test_list__lists_live_processes_and_links_to_the_gone_ones(admin_client, settings):
    settings.TACHYCORE = {**settings.TACHYCORE, "NODE_TIMEOUT": "30s"}
    make_node("alive", age=5)
    make_node("gone", age=600)
    make_node("stopped", age=600, status="stopped")

    page = page_of(admin_client)

    assert set(node_rows(page)) == {"alive"}
    assert '<a href="?gone=1" id="nodes-show-gone">Show 2 stopped or stale processes</a>' in page


def test_list__with_gone_lists_every_process(admin_client):
    make_node("alive", age=5)
    make_node("stopped", age=600, status="stopped")

    page = admin_client.get(reverse(LIST), {"gone": "1"}).content.decode()

    assert set(node_rows(page)) == {"alive", "stopped"} and 'id="nodes-live-only"' in page


def test_list__pages_the_live_processes_and_counts_the_others(admin_client, settings, monkeypatch):
    settings.TACHYCORE = {**settings.TACHYCORE, "NODE_TIMEOUT": "30s"}
    monkeypatch.setattr("plugins_admin.admin.nodes.NODES_PER_PAGE", 2)
    for name in ("a", "b", "c"):
        make_node(f"alive-{name}", pid=ord(name), age=5)
    make_node("stale", age=600)
    make_node("stopped", age=5, status="stopped")

    first = page_of(admin_client)
    second = admin_client.get(reverse(LIST), {"p": "2"}).content.decode()

    assert set(node_rows(first)) | set(node_rows(second)) == {"alive-a", "alive-b", "alive-c"}
    assert len(node_rows(first)) == 2 and len(node_rows(second)) == 1
    assert "Page 1 of 2 (3 processes)" in first and 'href="?p=2" id="nodes-next-page"' in first
    assert 'href="?p=1" id="nodes-previous-page"' in second
    assert "Show 2 stopped or stale processes" in first and "Show 2 stopped or stale processes" in second
    everyone = [node_rows(admin_client.get(reverse(LIST), {"gone": "1", "p": page}).content.decode())
                for page in ("1", "2", "3")]
    assert [len(rows) for rows in everyone] == [2, 2, 1]
    assert set().union(*everyone) == {"alive-a", "alive-b", "alive-c", "stale", "stopped"}
    # a page number that makes no sense: the nearest page, not an error
    assert len(node_rows(admin_client.get(reverse(LIST), {"p": "x"}).content.decode())) == 2


def test_maintenance__off_with_every_process_out_of_it_says_so(admin_client):
    make_node("web-1", maintenance=False)
    make_node("web-2", maintenance=False)

    page = page_of(admin_client)

    assert "2 live processes, none in maintenance mode." in page
    assert "picked it up" not in page


def test_list__shows_last_errors_newest_first(admin_client):
    errors = [{"at": "2026-01-01T10:00:00+00:00", "message": "older <boom>"},
              {"at": "2026-01-01T11:00:00+00:00", "message": "newer failure"}]
    make_node("web-1", errors=errors)
    row = node_rows(page_of(admin_client))["web-1"]
    assert "<details>" in row and "2 errors" in row
    assert row.index("newer failure") < row.index("older &lt;boom&gt;")


def test_list__shows_which_nodes_picked_maintenance_up(admin_client):
    make_node("web-1", maintenance=True)
    make_node("web-2", maintenance=False)
    rows = node_rows(page_of(admin_client))
    assert '<td class="node-maintenance">yes</td>' in rows["web-1"]
    assert '<td class="node-maintenance">no</td>' in rows["web-2"]


def test_list__shows_each_nodes_plugin_code_and_what_is_mixed(admin_client):
    make_node("web-1", code_versions={"notes": "1.0.0", "kv": "1.0.0"})
    make_node("web-2", code_versions={"notes": "1.0.0", "kv": "1.0.0"})
    make_node("web-3", code_versions={"notes": "1.1.0", "kv": "1.0.0"})

    page = page_of(admin_client)

    rows = node_rows(page)
    assert '<div data-plugin="kv">kv <code>1.0.0</code></div>' in rows["web-1"]  # the same everywhere
    assert re.search(r'<div data-plugin="notes" class="pa-mixed">notes <code>1.0.0</code> '
                     r'<span class="pa-badge new">mixed</span></div>', rows["web-1"])
    assert "notes <code>1.1.0</code>" in rows["web-3"]
    summary = page[page.index('id="nodes-mixed-versions"'):page.index('id="changelist"')]
    assert '<li data-plugin="notes"><strong>notes</strong>: 1.0.0 on 2 nodes, 1.1.0 on 1 node</li>' in summary
    assert 'data-plugin="kv"' not in summary


def test_list__one_version_everywhere_says_nothing_of_a_mix(admin_client):
    make_node("web-1", code_versions={"notes": "1.1.0"})
    make_node("web-2", code_versions={"notes": "1.1.0"})
    make_node("old", status="stopped", code_versions={"notes": "1.0.0"})  # gone: part of no mix

    page = admin_client.get(reverse(LIST), {"gone": "1"}).content.decode()

    assert 'id="nodes-mixed-versions"' not in page and ">mixed<" not in page
    assert "notes <code>1.0.0</code>" in node_rows(page)["old"]


def test_list__a_node_that_reports_no_code_says_so(admin_client):
    make_node("web-1")
    assert "not reported" in node_rows(page_of(admin_client))["web-1"]


def test_node_page__is_read_only(admin_client):
    make_node("web-1", errors=[{"at": "2026-01-01T10:00:00+00:00", "message": "it broke"}])
    response = admin_client.get(reverse("admin:tachycore_node_change", args=["web-1"]))
    assert response.status_code == 200 and "it broke" in response.content.decode()
    assert admin_client.post(reverse("admin:tachycore_node_change", args=["web-1"]),
                             {"status": "stopped"}).status_code == 403
    assert admin_client.get(reverse("admin:tachycore_node_add")).status_code == 403
    assert admin_client.post(reverse("admin:tachycore_node_delete", args=["web-1"]),
                             {"post": "yes"}).status_code == 403
    assert Node.objects.get(pk="web-1").status == "running"


# -- maintenance -----------------------------------------------------------------------------


def test_maintenance__turned_on_and_off_from_the_admin(admin_client):
    response = admin_client.post(reverse(MAINTENANCE), {"action": "on", "message": "Back at noon"})
    assert response.status_code == 302 and response["Location"] == reverse(LIST)
    state = maintenance.current()
    assert state.enabled and state.message == "Back at noon"
    page = page_of(admin_client)
    assert "Maintenance mode is on" in page.replace("\n", " ").replace('<span class="pa-state-on">', "")
    assert "Back at noon" in page
    response = admin_client.post(reverse(MAINTENANCE), {"action": "off"})
    assert response.status_code == 302
    assert not maintenance.current().enabled
    assert "Maintenance mode is off" in admin_client.get(reverse(LIST), follow=True).content.decode()


def test_maintenance__a_non_staff_page_answers_503_once_on(admin_client, django_user_model):
    from django.test import Client

    admin_client.post(reverse(MAINTENANCE), {"action": "on", "message": "Back at noon"})
    visitor = Client()
    visitor.force_login(django_user_model.objects.create_user("visitor", password="pw"))
    response = visitor.get("/api/schema/")
    assert response.status_code == 503 and "Back at noon" in response.content.decode()
    assert admin_client.get(reverse(LIST)).status_code == 200  # staff still get in


def test_maintenance__the_page_says_who_picked_it_up(admin_client, settings):
    settings.TACHYCORE = {**settings.TACHYCORE, "NODE_TIMEOUT": "30s"}
    maintenance.turn_on("upgrade")
    make_node("web-1", name="web one", maintenance=True)
    make_node("web-2", name="web two", maintenance=True)
    make_node("jobs-1", kind="dispatcher", name="lagging dispatcher", maintenance=False)
    make_node("cmd-1", kind="command", name="a command", maintenance=False)  # not waited for
    make_node("dead", name="dead web", maintenance=False, age=600)  # stale: not live
    page = page_of(admin_client)
    uptake = page[page.index('id="maintenance-uptake"'):page.index("</ul>", page.index('id="maintenance-uptake"'))]
    assert "2 of 3 live processes picked it up." in uptake
    assert "lagging dispatcher" in uptake
    assert "web one" not in uptake and "a command" not in uptake and "dead web" not in uptake


def test_maintenance__after_turning_off_the_nodes_still_in_it_are_listed(admin_client):
    make_node("web-1", name="web one", maintenance=True)
    make_node("web-2", name="web two", maintenance=False)
    admin_client.post(reverse(MAINTENANCE), {"action": "off"})
    page = page_of(admin_client)
    assert "1 of 2 live processes left maintenance mode." in page
    assert 'id="maintenance-waiting"' in page and "web one" in page[page.index('id="maintenance-waiting"'):]


def test_maintenance__a_get_changes_nothing(admin_client):
    response = admin_client.get(reverse(MAINTENANCE), {"action": "on", "message": "x"})
    assert response.status_code == 405
    assert not maintenance.current().enabled and not SiteState.objects.filter(maintenance=True).exists()


def test_maintenance__a_bad_action_changes_nothing(admin_client):
    response = admin_client.post(reverse(MAINTENANCE), {"action": "maybe"}, follow=True)
    assert "Maintenance mode was not changed" in response.content.decode()
    assert not maintenance.current().enabled


# -- rights ----------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["anonymous", "non_staff", "staff_viewer"])
def test_rights__others_cannot_change_maintenance(request, client, who):
    if who != "anonymous":
        request.getfixturevalue(who)
    make_node("web-1")
    response = client.post(reverse(MAINTENANCE), {"action": "on", "message": "x"})
    assert response.status_code in (302, 403)
    assert response.status_code == 403 or "/admin/login/" in response["Location"]
    assert not maintenance.current().enabled
    assert not SiteState.objects.filter(maintenance=True).exists()


@pytest.mark.parametrize("who", ["anonymous", "non_staff"])
def test_rights__others_get_no_page(request, client, who):
    if who != "anonymous":
        request.getfixturevalue(who)
    make_node("web-1")
    for url in [reverse(LIST), reverse("admin:tachycore_node_change", args=["web-1"])]:
        response = client.get(url)
        assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_rights__a_viewer_sees_the_page_without_the_form(staff_viewer):
    make_node("web-1")
    page = page_of(staff_viewer)
    assert "node-web-1" in page and 'id="maintenance-form"' not in page


def test_csrf__a_post_without_the_token_is_refused(django_user_model):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(django_user_model.objects.create_superuser("root", password="pw"))
    assert client.post(reverse(MAINTENANCE), {"action": "on", "message": "x"}).status_code == 403
    assert not maintenance.current().enabled
