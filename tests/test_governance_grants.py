"""Capabilities and grants: what a plugin asks for, what an operator gives, the check."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from tachycore import governance
from tachycore.context import acting_as
from tachycore.errors import CapabilityDenied, InvalidGrant, UngrantedCapabilities
from tachycore.governance import Access, check, covers, grants, is_allowed, parse_access, requires
from tachycore.manager import plugin_manager
from tachycore.models import ApplicationPlugin, CapabilityGrant
from tests.helpers.processes import ROOT, manage

NOTES_ASKS = {"storage:sql": "WRITE", "service:audit:record": "WRITE", "jobs:enqueue": "EXECUTE"}


def pm(*args: str) -> str:
    out = io.StringIO()
    call_command("pm", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


# -- the vocabulary ----------------------------------------------------------------------------


@pytest.mark.parametrize(("given", "level"), [
    ("READ", Access.READ), ("write", Access.WRITE), (" Execute ", Access.EXECUTE), (2, Access.WRITE),
    (Access.READ, Access.READ),
])
def test_parse_access__names_numbers_and_levels(given, level):
    assert parse_access(given) is level


@pytest.mark.parametrize("bad", ["ADMIN", "", 7, True, None, 1.0])
def test_parse_access__anything_else_is_refused_with_the_choices(bad):
    with pytest.raises(InvalidGrant, match="READ, WRITE, EXECUTE"):
        parse_access(bad)


def test_access__a_higher_level_covers_the_lower_ones():
    assert Access.NONE < Access.READ < Access.WRITE < Access.EXECUTE


@pytest.mark.parametrize(("granted", "asked", "covered"), [
    ("kv", "kv", True),
    ("storage:sql", "storage:sql", True),
    ("storage:sql", "storage:sql:auth_user", False),  # own tables only
    ("storage:sql:*", "storage:sql:auth_user", True),
    ("storage:sql:*", "storage:sql", True),
    ("storage:sql:auth_user", "storage:sql:auth_group", False),
    ("service:audit", "service:audit:record", True),
    ("service:audit", "service:auditor", False),
    ("service:audit:record", "service:audit", False),
    ("jobs:enqueue", "jobs", False),
])
def test_covers(granted, asked, covered):
    assert covers(granted, asked) is covered


# -- giving and taking ---------------------------------------------------------------------------


def test_grant__is_stored_and_seen_by_the_check(no_grants):
    grants.grant("notes", "kv", "WRITE", granted_by="a test")

    row = CapabilityGrant.objects.get(plugin="notes", capability="kv")
    assert (row.access, row.granted_by, row.expires_at) == (Access.WRITE, "a test", None)
    assert is_allowed("notes", "kv", "READ") and is_allowed("notes", "kv", "WRITE")
    assert not is_allowed("notes", "kv", "EXECUTE")
    assert not is_allowed("audit", "kv", "READ")


def test_grant__again_replaces_the_level(no_grants):
    grants.grant("notes", "kv", "WRITE")
    grants.grant("notes", "kv", "READ")

    assert CapabilityGrant.objects.filter(plugin="notes").count() == 1
    assert not is_allowed("notes", "kv", "WRITE")


@pytest.mark.parametrize(("plugin", "capability", "access", "says"), [
    ("nosuch", "kv", "READ", "no plugin named 'nosuch'"),
    ("notes", "Storage:SQL", "READ", "a capability is a family"),
    ("notes", "kv:", "READ", "a capability is a family"),
    ("notes", "kv x", "READ", "a capability is a family"),
    ("notes", "kv", "NONE", "revoke"),
    ("notes", "kv", "ALL", "READ, WRITE, EXECUTE"),
])
def test_grant__bad_arguments_are_refused_and_nothing_is_stored(no_grants, plugin, capability, access, says):
    with pytest.raises(InvalidGrant, match=says):
        grants.grant(plugin, capability, access)

    assert not CapabilityGrant.objects.exists()


def test_revoke__takes_it_away(no_grants):
    grants.grant("notes", "kv", "WRITE")

    assert grants.revoke("notes", "kv") is True
    assert grants.revoke("notes", "kv") is False
    assert not is_allowed("notes", "kv", "READ")


def test_a_lapsed_grant__allows_nothing(no_grants):
    grants.grant("notes", "kv", "READ", expires_at=timezone.now() - timedelta(seconds=1))

    assert not is_allowed("notes", "kv", "READ")


def test_a_grant_that_lapses__stops_allowing_though_its_answer_was_remembered(no_grants):
    grants.grant("notes", "kv", "WRITE")
    grants.grant("notes", "kv:*", "READ", expires_at=timezone.now() + timedelta(seconds=0.4))
    grants.grant("notes", "jobs:enqueue", "EXECUTE", expires_at=timezone.now() + timedelta(seconds=0.4))
    assert is_allowed("notes", "jobs:enqueue", "EXECUTE") and is_allowed("notes", "kv", "WRITE")

    time.sleep(0.5)  # nothing changed in the database: only the clock moved

    assert not is_allowed("notes", "jobs:enqueue", "READ")
    assert is_allowed("notes", "kv", "WRITE")  # the grant without an end still holds


def test_the_host_and_built_in_plugins__need_no_grant(no_grants):
    assert is_allowed(None, "storage:sql:*", "EXECUTE")
    assert is_allowed("kv", "storage:sql:*", "EXECUTE")
    assert is_allowed("toolbox", "jobs:enqueue", "EXECUTE")


# -- the check -----------------------------------------------------------------------------------


def test_check__refuses_a_plugin_without_the_grant_with_the_command_that_gives_it(no_grants):
    with acting_as("notes"), pytest.raises(CapabilityDenied) as refused:
        check("kv", Access.WRITE, target="notes:draft")

    assert str(refused.value) == (
        "plugin 'notes' may not use kv at WRITE (notes:draft): no grant allows it; an operator can "
        "give it with: manage.py pm grant notes kv WRITE")
    assert (refused.value.plugin, refused.value.capability, refused.value.access) == ("notes", "kv", Access.WRITE)


def test_check__lets_the_host_and_granted_plugins_through(no_grants):
    check("kv", Access.WRITE)  # the host site
    grants.grant("notes", "kv", "WRITE")
    with acting_as("notes"):
        check("kv", Access.WRITE)


@pytest.mark.parametrize("mode", ["audit", "off"])
def test_check__audit_and_off_modes_let_it_through(no_grants, settings, mode):
    settings.TACHYCORE = {**settings.TACHYCORE, "GOVERNANCE": mode}

    with acting_as("notes"):
        check("kv", Access.WRITE)


def test_requires__checks_before_each_call(no_grants):
    calls = []

    @requires("kv", "READ")
    def peek():
        calls.append(1)
        return "seen"

    with acting_as("notes"), pytest.raises(CapabilityDenied):
        peek()
    grants.grant("notes", "kv", "READ")
    with acting_as("notes"):
        assert peek() == "seen"
    assert calls == [1]


# -- enable: deny by default --------------------------------------------------------------------------


def test_enable__a_plugin_asking_for_ungranted_capabilities_is_refused_with_the_commands(no_grants):
    with pytest.raises(UngrantedCapabilities) as refused:
        plugin_manager.enable("notes")

    message = str(refused.value)
    assert "audit asks for storage:sql WRITE" in message
    assert "notes asks for storage:sql WRITE, service:audit:record WRITE, jobs:enqueue EXECUTE" in message
    assert "manage.py pm grant notes jobs:enqueue EXECUTE" in message
    assert "--grant-requested" in message
    assert not ApplicationPlugin.objects.filter(name__in=["notes", "audit"], enabled=True).exists()


def test_enable__with_grant_requested_grants_and_enables_in_one_go(no_grants):
    assert plugin_manager.enable("notes", grant_requested=True, granted_by="a test") == ["audit", "notes"]

    given = {(g.plugin, g.capability): (g.access.name, g.granted_by) for g in grants.list()}
    assert given == {
        ("audit", "storage:sql"): ("WRITE", "a test"),
        **{("notes", capability): (access, "a test") for capability, access in NOTES_ASKS.items()},
    }


def test_enable__when_governance_is_off_nothing_is_asked(no_grants, settings):
    settings.TACHYCORE = {**settings.TACHYCORE, "GOVERNANCE": "off"}

    assert plugin_manager.enable("notes") == ["audit", "notes"]
    assert not CapabilityGrant.objects.exists()


def test_enable__a_grant_that_covers_the_request_is_enough(no_grants):
    grants.grant("audit", "storage:sql:*", "EXECUTE")

    assert plugin_manager.enable("audit") == ["audit"]


# -- the settings -------------------------------------------------------------------------------------


def test_settings_grants__are_applied_changed_and_revoked_by_what_the_setting_lists(no_grants):
    grants.grant("notes", "kv", "READ", granted_by="pm grant (ops)")

    assert grants.apply_settings({"notes": {"jobs:enqueue": "EXECUTE"}, "audit": {"kv": "READ"}}) == (2, 0)
    assert grants.apply_settings({"notes": {"jobs:enqueue": "EXECUTE"}, "audit": {"kv": "READ"}}) == (0, 0)
    assert grants.apply_settings({"notes": {"jobs:enqueue": "WRITE"}}) == (1, 1)

    given = {(g.plugin, g.capability): (g.access.name, g.granted_by) for g in grants.list()}
    # an operator's grant stays: the setting revokes only what it gave
    assert given == {("notes", "kv"): ("READ", "pm grant (ops)"),
                     ("notes", "jobs:enqueue"): ("WRITE", "settings")}


def test_settings_grants__hold_from_the_first_enable_without_a_migrate(no_grants, settings):
    settings.TACHYCORE = {**settings.TACHYCORE, "GRANTS": {"audit": {"storage:sql": "WRITE"}}}

    assert plugin_manager.enable("audit") == ["audit"]
    assert [(g.capability, g.granted_by) for g in grants.list("audit")] == [("storage:sql", "settings")]


def test_settings_grants__are_what_migrate_applies(db):
    given = {(g.plugin, g.capability): g.access.name for g in grants.list() if g.granted_by == "settings"}

    assert given == {("audit", "storage:sql"): "WRITE",
                     **{("notes", capability): access for capability, access in NOTES_ASKS.items()}}


# -- pm ------------------------------------------------------------------------------------------------


def test_pm_grant_revoke_grants(no_grants):
    assert pm("grant", "notes", "kv", "write", "--expires-in", "2h").startswith("Granted notes kv WRITE until ")
    listed = json.loads(pm("grants", "notes", "--json"))

    (grant,) = listed["grants"]
    assert (grant["plugin"], grant["capability"], grant["access"]) == ("notes", "kv", "WRITE")
    assert grant["granted_by"].startswith("pm grant (")
    assert listed["requested"]["notes"] == NOTES_ASKS
    assert listed["ungranted"]["notes"] == NOTES_ASKS
    table = pm("grants")
    assert "notes   kv          WRITE" in table
    assert "notes asks for, ungranted: manage.py pm grant notes jobs:enqueue EXECUTE" in table

    assert pm("revoke", "notes", "kv") == "Revoked kv from notes.\n"
    with pytest.raises(CommandError, match="notes holds no grant for kv"):
        pm("revoke", "notes", "kv")


@pytest.mark.django_db(transaction=True)
def test_pm_enable__refused_is_one_line_and_exit_1_then_grant_requested_enables(subprocess_env):
    CapabilityGrant.objects.all().delete()
    subprocess_env = {**subprocess_env, "TACHYCORE_GRANTS": "{}"}  # the settings grant nothing

    refused = manage(subprocess_env, "pm", "enable", "notes")

    assert refused.returncode == 1
    assert refused.stderr.count("\n") == 1, refused.stderr
    assert "manage.py pm grant notes storage:sql WRITE" in refused.stderr
    assert not ApplicationPlugin.objects.filter(name="notes", enabled=True).exists()

    enabled = manage(subprocess_env, "pm", "enable", "notes", "--grant-requested")

    assert enabled.returncode == 0, enabled.stderr
    assert enabled.stdout.strip() == "Enabled audit, notes."
    assert CapabilityGrant.objects.filter(plugin="notes").count() == 3


@pytest.mark.parametrize("args", [
    ("grant", "notes", "kv", "ALL"),
    ("grant", "nosuch", "kv", "READ"),
    ("grant", "notes", "kv", "READ", "--expires-in=-1h"),
])
@pytest.mark.django_db(transaction=True)
def test_pm_grant__bad_arguments_are_one_line_and_exit_1(subprocess_env, args):
    result = manage(subprocess_env, "pm", *args)

    assert result.returncode == 1
    assert result.stderr.count("\n") == 1, result.stderr


# -- every process follows -------------------------------------------------------------------------------

FOLLOWER = """
import sys, time
import django
django.setup()
from tachycore.governance import is_allowed
seen = is_allowed("notes", "kv", "READ")  # read before saying ready: the test acts on "ready"
print("ready", flush=True)
deadline = time.monotonic() + 20
while time.monotonic() < deadline:
    now = is_allowed("notes", "kv", "READ")
    if now != seen:
        print("changed", now, flush=True)
        seen = now
        if now is False:
            break
    time.sleep(0.005)
"""


@pytest.mark.django_db(transaction=True)
def test_a_grant_and_a_revoke__reach_another_process_within_a_second(subprocess_env):
    CapabilityGrant.objects.filter(plugin="notes", capability="kv").delete()
    follower = subprocess.Popen([sys.executable, "-c", FOLLOWER], cwd=ROOT, env=subprocess_env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert follower.stdout.readline().strip() == "ready"
        took = []
        for command in (("grant", "notes", "kv", "READ"), ("revoke", "notes", "kv")):
            started = time.monotonic()
            pm(*command)
            line = follower.stdout.readline().strip()
            took.append(time.monotonic() - started)
            if not line:
                follower.kill()
                pytest.fail(f"the other process ended: {follower.stderr.read()}")
            assert line == f"changed {command[0] == 'grant'}"
        assert max(took) < 1.0, took
    finally:
        follower.kill()
        follower.wait()


def test_governance_exports_the_documented_names():
    for name in ("Access", "check", "is_allowed", "requires", "grants"):
        assert hasattr(governance, name)
