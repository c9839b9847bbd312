"""The plugin manager's admin pages: the list, the confirmation pages, the operations."""

from __future__ import annotations

import html
import re

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from tachycore.manager import plugin_manager
from tachycore.models import ApplicationPlugin
from tachycore.plans import pending_migrations, plan
from tests.helpers.rows import make_node

pytestmark = pytest.mark.django_db

LIST = "admin:tachycore_applicationplugin_changelist"


def operation_url(name: str, operation: str) -> str:
    return reverse("admin:tachycore_applicationplugin_operation", args=[name, operation])


def enabled(name: str) -> bool:
    row = ApplicationPlugin.objects.filter(name=name).first()
    return bool(row and row.enabled)


def rows(client) -> dict[str, str]:
    """Plugin name -> its status, as the list shows them."""
    page = client.get(reverse(LIST)).content.decode()
    return dict(re.findall(r'data-plugin="([^"]+)" data-status="([^"]+)"', page))


@pytest.fixture
def staff_without_rights(client):
    user = User.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_applicationplugin"))
    client.force_login(user)
    return client


def test_list__shows_registry_and_discovered_plugins(admin_client):
    shown = rows(admin_client)
    # built-in plugins are enabled by migrate; demo plugins are discovered, not added
    assert shown["kv"] == "enabled" and shown["jobs"] == "enabled" and shown["toolbox"] == "enabled"
    assert shown["notes"] == "not added" and shown["audit"] == "not added"


def test_list__shows_badges_dependencies_and_actions(admin_client):
    plugin_manager.enable("notes")
    page = admin_client.get(reverse(LIST)).content.decode()
    notes = page[page.index('id="plugin-notes"'):]
    notes = notes[:notes.index("</tr>")]
    assert ">enabled<" in notes and ">installed<" in notes
    assert "audit" in notes  # depends on
    assert operation_url("notes", "disable") in notes
    assert operation_url("notes", "enable") not in notes
    audit = page[page.index('id="plugin-audit"'):]
    audit = audit[:audit.index("</tr>")]
    assert "notes" in audit  # needed by


def test_list__shows_the_last_error(admin_client):
    plugin_manager.add("audit")
    ApplicationPlugin.objects.filter(name="audit").update(last_error="install failed: boom")
    page = admin_client.get(reverse(LIST)).content.decode()
    assert "install failed: boom" in page and ">error<" in page


def test_confirmation__says_what_enable_will_do_and_changes_nothing(admin_client):
    response = admin_client.get(operation_url("notes", "enable"))
    assert response.status_code == 200
    text = response.content.decode()
    assert "enable audit (needed by notes)" in text  # the dependency first
    assert text.index("enable audit") < text.index("enable notes")
    assert not enabled("notes") and not enabled("audit")


def test_confirmation__a_disable_blocked_by_a_dependent_says_why_and_offers_no_form(admin_client):
    plugin_manager.enable("notes")
    text = html.unescape(admin_client.get(operation_url("audit", "disable")).content.decode())
    assert "enabled plugins depend on 'audit': notes" in text
    assert 'id="confirm-operation"' not in text


def test_operation__post_enables_with_dependencies_and_reports(admin_client):
    response = admin_client.post(operation_url("notes", "enable"), follow=True)
    assert enabled("notes") and enabled("audit")
    assert "Plugin notes was enabled (with audit, which it needs)." in response.content.decode()


def test_operation__disable_then_the_plugin_urls_answer_404(admin_client, client):
    plugin_manager.enable("notes")
    assert client.get("/api/notes/").status_code != 404
    admin_client.post(operation_url("notes", "disable"))
    assert not enabled("notes")
    assert client.get("/api/notes/").status_code == 404


def test_operation__refused_disable_changes_nothing_and_says_why(admin_client):
    plugin_manager.enable("notes")
    response = admin_client.post(operation_url("audit", "disable"), follow=True)
    text = response.content.decode()
    assert "refused, nothing was changed" in text and "notes" in text
    assert enabled("audit") and enabled("notes")


@pytest.mark.parametrize("operation, expect", [
    ("add", lambda: ApplicationPlugin.objects.filter(name="audit", installed=False).exists()),
    ("install", lambda: ApplicationPlugin.objects.filter(name="audit", installed=True, enabled=False).exists()),
    ("enable", lambda: enabled("audit")),
])
def test_operation__each_lifecycle_step(admin_client, operation, expect):
    admin_client.post(operation_url("audit", operation))
    assert expect()


def test_operation__remove_deletes_the_registry_row(admin_client):
    plugin_manager.add("audit")
    admin_client.post(operation_url("audit", "remove"))
    assert not ApplicationPlugin.objects.filter(name="audit").exists()


def test_operation__a_built_in_plugin_cannot_be_removed(admin_client):
    response = admin_client.post(operation_url("kv", "remove"), follow=True)
    assert "built in and cannot be removed" in html.unescape(response.content.decode())
    assert ApplicationPlugin.objects.filter(name="kv").exists()


def test_operation__a_built_in_plugin_cannot_be_disabled_and_offers_no_disable(admin_client):
    response = admin_client.post(operation_url("jobs", "disable"), follow=True)
    assert "built in and cannot be disabled" in html.unescape(response.content.decode())
    assert ApplicationPlugin.objects.get(name="jobs").enabled
    assert operation_url("jobs", "disable") not in admin_client.get(reverse(LIST)).content.decode()


def test_operation__upgrade_records_the_new_version(admin_client):
    plugin_manager.enable("audit")
    ApplicationPlugin.objects.filter(name="audit").update(version="0.9.0")
    plugin_manager.refresh(force=True)
    assert "upgrade to" in admin_client.get(reverse(LIST)).content.decode()
    admin_client.post(operation_url("audit", "upgrade"))
    assert ApplicationPlugin.objects.get(name="audit").version == plugin_manager.plugins["audit"].version


def plugin_row(page: str, name: str) -> str:
    row = page[page.index(f'id="plugin-{name}"'):]
    return row[:row.index("</tr>")]


def test_list__shows_the_versions_live_nodes_run_when_they_differ(admin_client):
    make_node("web-1", code_versions={"audit": "1.0.0", "kv": "1.0.0"})
    make_node("web-2", code_versions={"audit": "1.0.0", "kv": "1.0.0"})
    make_node("web-3", code_versions={"audit": "1.1.0", "kv": "1.0.0"})
    make_node("stale", age=600, code_versions={"audit": "0.1.0", "kv": "0.1.0"})

    page = admin_client.get(reverse(LIST)).content.decode()

    mixed = re.search(r'<div class="plugin-mixed">(.*?)</div>', plugin_row(page, "audit"), re.S)
    assert mixed and "mixed" in mixed[1] and " ".join(mixed[1].split()).endswith(
        "1.0.0 on 2 nodes, 1.1.0 on 1 node")
    assert "plugin-mixed" not in plugin_row(page, "kv")


def test_upgrade__refused_while_live_nodes_run_older_code(admin_client):
    plugin_manager.enable("audit")
    ApplicationPlugin.objects.filter(name="audit").update(version="0.9.0")
    plugin_manager.refresh(force=True)
    make_node("web-old", code_versions={"audit": "0.9.0"}, pid=111)

    confirmation = html.unescape(admin_client.get(operation_url("audit", "upgrade")).content.decode())
    response = admin_client.post(operation_url("audit", "upgrade"), follow=True)

    assert 'id="plan-refused"' in confirmation and "web host-a:111 (0.9.0)" in confirmation
    assert 'id="confirm-operation"' not in confirmation
    message = html.unescape(response.content.decode())
    assert "Upgrade audit: refused, nothing was changed" in message and "web host-a:111 (0.9.0)" in message
    assert ApplicationPlugin.objects.get(name="audit").version == "0.9.0"


def test_operation__get_never_changes_anything(admin_client):
    for operation in ("add", "install", "enable"):
        admin_client.get(operation_url("audit", operation))
    assert not ApplicationPlugin.objects.filter(name="audit").exists()


def test_operation__unknown_operation_or_plugin(admin_client):
    assert admin_client.get(operation_url("audit", "frob")).status_code == 404
    assert admin_client.get("/admin/tachycore/applicationplugin/a%00b/enable/").status_code == 404
    response = admin_client.post(operation_url("nope", "enable"), follow=True)
    assert "refused, nothing was changed" in response.content.decode()


def test_access__anonymous_and_non_staff_get_no_page_and_no_action(client):
    for url in (reverse(LIST), operation_url("audit", "enable")):
        response = client.get(url)
        assert response.status_code == 302 and "/admin/login/" in response["Location"]
    client.post(operation_url("audit", "enable"))
    user = User.objects.create_user("plain", password="pw")
    client.force_login(user)
    assert client.get(reverse(LIST)).status_code == 302
    client.post(operation_url("audit", "enable"))
    assert not ApplicationPlugin.objects.filter(name="audit").exists()


def test_access__staff_without_change_permission_sees_the_list_but_no_action(staff_without_rights):
    client = staff_without_rights
    page = client.get(reverse(LIST)).content.decode()
    assert 'data-plugin="audit"' in page and 'data-operation=' not in page
    assert client.post(operation_url("audit", "enable")).status_code == 403
    assert not ApplicationPlugin.objects.filter(name="audit").exists()


def test_access__operations_need_csrf():
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(User.objects.create_superuser("root", password="pw"))
    assert client.post(operation_url("audit", "add")).status_code == 403
    assert not ApplicationPlugin.objects.filter(name="audit").exists()


def test_plan__install_lists_the_migrations_to_run(django_db_blocker):
    # audit's tables exist in the test database: nothing pending for it
    assert pending_migrations("audit") == []
    assert plan("install", "audit").steps[-1] == "run audit.install()"
    assert pending_migrations(None) == []


@pytest.fixture
def bad_row():
    """A row put into the table by hand, with a name no plugin may have (a URL segment breaker)."""
    return ApplicationPlugin.objects.create(name="bad/name", package_name="bad", enabled=True)


@pytest.mark.parametrize("user", ["superuser", "viewer"])
def test_list__a_registry_row_with_a_bad_name_is_skipped_and_reported(client, bad_row, user):
    if user == "superuser":
        client.force_login(User.objects.create_superuser("root", password="pw"))
    else:
        viewer = User.objects.create_user("viewer", password="pw", is_staff=True)
        viewer.user_permissions.add(Permission.objects.get(codename="view_applicationplugin"))
        client.force_login(viewer)

    response = client.get(reverse(LIST))

    assert response.status_code == 200
    shown = rows(client)
    assert "bad/name" not in shown and shown["kv"] == "enabled" and shown["notes"] == "not added"
    page = html.unescape(response.content.decode())
    assert "row 'bad/name' is skipped" in page and "invalid plugin name" in page


def test_list__a_bad_row_leaves_the_operations_working(admin_client, bad_row):
    response = admin_client.post(operation_url("notes", "enable"))

    assert response.status_code == 302
    assert enabled("notes") and enabled("bad/name")


@pytest.mark.parametrize("name", ["..", ".hidden", "-x", "a b"])
def test_confirmation__a_name_no_plugin_may_have_is_404(admin_client, name):
    assert admin_client.get(operation_url(name, "enable")).status_code == 404


def test_operation__reload_confirms_then_switches_to_a_new_instance(admin_client):
    admin_client.post(operation_url("notes", "enable"))
    plugin_manager.is_enabled("notes")
    before = plugin_manager.instances.active("notes")

    page = html.unescape(admin_client.get(operation_url("notes", "reload")).content.decode())
    assert "new calls go to the new instance at once; calls inside the old one finish there" in page
    response = admin_client.post(operation_url("notes", "reload"), follow=True)

    assert "Plugin notes is reloading: every process switches to instance #1" in html.unescape(
        response.content.decode())
    after = plugin_manager.instances.active("notes")
    assert after.generation == before.generation + 1 and after.plugin is not before.plugin


def test_operation__reload_of_a_disabled_plugin_is_refused(admin_client):
    page = html.unescape(admin_client.get(operation_url("audit", "reload")).content.decode())
    assert "plugin 'audit' is not enabled: there is no instance to reload" in page
    response = admin_client.post(operation_url("audit", "reload"), follow=True)
    assert "Reload audit: refused, nothing was changed" in html.unescape(response.content.decode())
