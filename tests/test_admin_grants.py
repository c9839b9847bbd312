"""The admin and governance: the enable page lists what a plugin asks for, the grants page."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from tachycore.governance import grants, is_allowed
from tachycore.manager import plugin_manager
from tachycore.models import CapabilityGrant

ENABLE_NOTES = "/admin/tachycore/applicationplugin/notes/enable/"
GRANTS = "/admin/tachycore/capabilitygrant/"


def staff(username: str, *codenames: str) -> Client:
    user = User.objects.create_user(username, password="pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def operator():
    """Staff who may enable plugins and grant capabilities."""
    return staff("operator", "view_applicationplugin", "change_applicationplugin", "add_capabilitygrant",
                 "view_capabilitygrant")


@pytest.fixture
def enabler():
    """Staff who may enable plugins but not grant anything."""
    return staff("enabler", "view_applicationplugin", "change_applicationplugin")


def test_enable_page__lists_what_the_plugin_and_its_dependency_ask_for(no_grants, operator):
    page = operator.get(ENABLE_NOTES).content.decode()

    assert 'id="capabilities-asked"' in page
    for capability in ("storage:sql", "service:audit:record", "jobs:enqueue"):
        assert f"<code>{capability}</code>" in page
    assert "<td>audit</td>" in page
    assert 'id="grant-requested"' in page


def test_enable__without_the_grant_box_is_refused_and_changes_nothing(no_grants, operator):
    response = operator.post(ENABLE_NOTES, follow=True)

    message = [str(m) for m in response.context["messages"]][0]
    assert message.startswith("Enable notes: refused, nothing was changed: not enabled:")
    assert "manage.py pm grant notes jobs:enqueue EXECUTE" in message
    assert not plugin_manager.is_enabled("notes")
    assert not CapabilityGrant.objects.exists()


def test_enable__with_the_grant_box_grants_and_enables(no_grants, operator):
    response = operator.post(ENABLE_NOTES, {"grant_requested": "on"}, follow=True)

    assert [str(m) for m in response.context["messages"]] == [
        "Plugin notes was enabled (with audit, which it needs). What they asked for was granted."]
    assert plugin_manager.is_enabled("notes")
    assert set(CapabilityGrant.objects.values_list("granted_by", flat=True)) == {"admin (operator)"}
    assert is_allowed("notes", "jobs:enqueue", "EXECUTE")


def test_enable__staff_who_may_not_grant_get_no_box_and_cannot_grant_by_posting(no_grants, enabler):
    page = enabler.get(ENABLE_NOTES).content.decode()
    assert 'id="capabilities-asked"' in page and 'id="grant-requested"' not in page
    assert "needs the permission to add capability grants" in page

    enabler.post(ENABLE_NOTES, {"grant_requested": "on"})

    assert not plugin_manager.is_enabled("notes")
    assert not CapabilityGrant.objects.exists()


def test_enable_page__a_plugin_granted_already_asks_for_nothing(db, operator):
    page = operator.get(ENABLE_NOTES).content.decode()  # the test settings grant the demo plugins

    assert 'id="capabilities-asked"' not in page


# -- the grants page ---------------------------------------------------------------------------


def test_grants_list__shows_grants_and_what_is_asked_for_but_not_granted(no_grants, operator):
    grants.grant("notes", "storage:sql", "WRITE", granted_by="pm grant (ops)")

    page = operator.get(GRANTS).content.decode()

    assert "pm grant (ops)" in page
    assert 'id="capabilities-ungranted"' in page
    assert "manage.py pm grant notes jobs:enqueue EXECUTE" in page
    assert "manage.py pm grant notes storage:sql WRITE" not in page


def test_grants_add__through_the_form_grants_for_every_process(no_grants):
    client = staff("granter", "add_capabilitygrant", "view_capabilitygrant")

    response = client.post(GRANTS + "add/", {"plugin": "notes", "capability": "kv", "access": "1"})

    assert response.status_code == 302, response.content.decode()[:2000]
    grant = CapabilityGrant.objects.get(plugin="notes", capability="kv")
    assert (grant.access, grant.granted_by) == (1, "admin (granter)")
    assert is_allowed("notes", "kv", "READ")


@pytest.mark.parametrize(("fields", "says"), [
    ({"plugin": "nosuch", "capability": "kv", "access": "1"}, "No plugin named"),
    ({"plugin": "notes", "capability": "KV!", "access": "1"}, "a capability is a family"),
    ({"plugin": "notes", "capability": "kv", "access": "0"}, "Select a valid choice"),
])
def test_grants_add__a_bad_grant_is_a_form_error(no_grants, fields, says):
    client = staff("granter", "add_capabilitygrant", "view_capabilitygrant")

    response = client.post(GRANTS + "add/", fields)

    assert response.status_code == 200
    assert says in response.content.decode()
    assert not CapabilityGrant.objects.exists()


def test_grants_delete__revokes(no_grants):
    grants.grant("notes", "kv", "WRITE")
    grant = CapabilityGrant.objects.get()
    client = staff("revoker", "delete_capabilitygrant", "view_capabilitygrant")

    response = client.post(GRANTS + f"{grant.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302
    assert not is_allowed("notes", "kv", "READ")


def test_grants_pages__staff_without_the_permission_get_403(no_grants):
    client = staff("stranger", "view_applicationplugin")

    assert client.get(GRANTS).status_code == 403
    assert client.post(GRANTS + "add/", {"plugin": "notes", "capability": "kv", "access": "1"}).status_code == 403
    assert not CapabilityGrant.objects.exists()
