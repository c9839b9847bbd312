"""New plugin code by rolling restart: each node reports the plugin versions its code has,
and ``pm upgrade`` waits until every live node runs the new code (or is forced).

The tests with real processes run the versioned plugin (tests/plugin_apps/versioned) under
tests/settings_versions.py, its version given by ``TESTS_VERSIONED_VERSION``: a process
started with 1.0.0 is a node the rolling restart has not reached yet. Release 1.1.0 brings a
migration, and each run of the plugin's ``upgrade()`` leaves a row; the pytest process reads
both with plain SQL (it keeps tests.settings, which does not know the plugin).
"""

from __future__ import annotations

import io
import json
import re
import socket

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.urls import reverse

from tachycore.errors import OlderCodeRunning
from tachycore.manager import plugin_manager
from tachycore.models import ApplicationPlugin, Node, NodeStatus
from tachycore.runtime import runtime
from tachycore.supervisor import list_nodes
from tachycore.versions import mixed, mixed_plugins, running_other_code
from tests.helpers.processes import manage, wait_until
from tests.helpers.rows import make_node

HOSTNAME = socket.gethostname()[:255]
#: the plugin the in-process tests upgrade (a demo plugin the pytest process knows)
PLUGIN = "audit"
#: the registry's version of it before the upgrade: what a node not restarted yet runs
OLD = "0.9.0"


def supervisor(*args: str) -> str:
    """``manage.py supervisor`` in this process; what it printed."""
    out = io.StringIO()
    call_command("supervisor", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def ids(nodes) -> set[str]:
    return {node.id for node in nodes}


@pytest.fixture
def upgrade_due(db):
    """The audit plugin enabled, with the registry at ``OLD`` and this process's code at its
    own version; each run of its ``upgrade`` hook is recorded."""
    plugin_manager.enable(PLUGIN)
    ApplicationPlugin.objects.filter(name=PLUGIN).update(version=OLD)
    plugin_manager.refresh(force=True)
    plugin = plugin_manager.plugins[PLUGIN]
    calls: list[str] = []
    plugin.upgrade = calls.append  # the plugin objects outlive the test: taken off below
    yield calls
    del plugin.upgrade


def new_version() -> str:
    return plugin_manager.plugins[PLUGIN].version


# -- which nodes run which code --------------------------------------------------------------


@pytest.mark.django_db
def test_running_other_code__live_nodes_at_another_version_or_without_the_plugin():
    make_node("old", code_versions={"notes": "1.0.0"})
    make_node("new", code_versions={"notes": "1.1.0"})
    make_node("newer", code_versions={"notes": "1.2.0"})
    make_node("without", code_versions={"kv": "1.0.0"})
    make_node("silent")  # reports nothing: code older than the report itself
    make_node("stale", age=600, code_versions={"notes": "1.0.0"})
    make_node("stopped", status=NodeStatus.STOPPED, code_versions={"notes": "1.0.0"})

    assert ids(running_other_code("notes", "1.1.0")) == {"old", "newer", "without", "silent"}


@pytest.mark.django_db
def test_running_other_code__leaves_this_process_out():
    make_node(runtime.node_id, code_versions={"notes": "1.0.0"})

    assert running_other_code("notes", "1.1.0") == []


@pytest.mark.django_db
def test_mixed__counts_live_nodes_per_version_oldest_first():
    make_node("a", code_versions={"notes": "1.10.0"})
    make_node("b", code_versions={"notes": "1.9.0"})
    make_node("c", code_versions={"notes": "1.9.0"})
    make_node("d", code_versions={"kv": "1.0.0"})
    make_node("gone", age=600, code_versions={"notes": "0.1.0"})

    assert mixed("notes", list_nodes(include_gone=True)) == \
        "1.9.0 on 2 nodes, 1.10.0 on 1 node, missing on 1 node"


@pytest.mark.django_db
def test_mixed__one_version_everywhere_is_not_mixed():
    make_node("a", code_versions={"notes": "1.0.0", "kv": "1.0.0"})
    make_node("b", code_versions={"notes": "1.0.0", "kv": "1.0.0"})
    make_node("gone", status=NodeStatus.STOPPED, code_versions={"notes": "0.9.0", "kv": "1.0.0"})

    nodes = list_nodes(include_gone=True)
    assert mixed("notes", nodes) == ""
    assert mixed_plugins(nodes) == {}


# -- pm upgrade ------------------------------------------------------------------------------


def test_upgrade__refused_while_a_live_node_runs_older_code(upgrade_due):
    make_node("web-old", code_versions={PLUGIN: OLD}, pid=111)
    make_node("jobs-new", kind="dispatcher", code_versions={PLUGIN: new_version()}, pid=222)
    make_node("cmd-without", kind="command", code_versions={"kv": "1.0.0"}, pid=333)

    with pytest.raises(OlderCodeRunning) as refused:
        plugin_manager.upgrade(PLUGIN)

    message = str(refused.value)
    assert "2 live nodes run other code" in message
    assert f"web host-a:111 ({OLD})" in message and f"command host-a:333 (no {PLUGIN})" in message
    assert "host-a:222" not in message
    assert "rolling restart" in message and f"manage.py pm upgrade {PLUGIN} --force" in message
    assert upgrade_due == []
    assert ApplicationPlugin.objects.get(name=PLUGIN).version == OLD


def test_upgrade__force_runs_the_hook_once(upgrade_due):
    make_node("web-old", code_versions={PLUGIN: OLD})

    assert plugin_manager.upgrade(PLUGIN, force=True) == (OLD, new_version())
    assert plugin_manager.upgrade(PLUGIN, force=True) == (new_version(), new_version())
    assert plugin_manager.upgrade(PLUGIN) == (new_version(), new_version())  # nothing left to refuse

    assert upgrade_due == [OLD]
    assert ApplicationPlugin.objects.get(name=PLUGIN).version == new_version()


def test_upgrade__stale_stopped_and_new_nodes_do_not_hold_it_back(upgrade_due):
    make_node("stale", age=600, code_versions={PLUGIN: OLD})
    make_node("stopped", status=NodeStatus.STOPPED, code_versions={PLUGIN: OLD})
    make_node("restarted", code_versions={PLUGIN: new_version()})

    assert plugin_manager.upgrade(PLUGIN) == (OLD, new_version())
    assert upgrade_due == [OLD]


def test_pm_upgrade__refusal_names_the_nodes_and_force_goes_through(upgrade_due):
    make_node("web-old", code_versions={PLUGIN: OLD}, pid=111)

    with pytest.raises(CommandError, match=rf"web host-a:111 \({re.escape(OLD)}\)"):
        call_command("pm", "upgrade", PLUGIN, stdout=io.StringIO())
    assert upgrade_due == []

    out = io.StringIO()
    call_command("pm", "upgrade", PLUGIN, "--force", stdout=out)
    assert out.getvalue().strip() == f"Upgraded {PLUGIN} from {OLD} to {new_version()}."
    assert upgrade_due == [OLD]


# -- manage.py supervisor ---------------------------------------------------------------------


@pytest.mark.django_db
def test_supervisor__shows_each_nodes_code_and_the_mixed_plugins():
    make_node("web-1", code_versions={"notes": "1.0.0", "kv": "1.0.0"})
    make_node("web-2", code_versions={"notes": "1.1.0", "kv": "1.0.0"})
    make_node("web-3")

    out = supervisor()

    assert "web-1: code: kv 1.0.0, notes 1.0.0" in out.splitlines()
    assert "web-2: code: kv 1.0.0, notes 1.1.0" in out.splitlines()
    assert "web-3: code: no versions reported" in out.splitlines()
    assert "notes: mixed: 1.0.0 on 1 node, 1.1.0 on 1 node, missing on 1 node" in out.splitlines()
    assert "kv: mixed: 1.0.0 on 2 nodes, missing on 1 node" in out.splitlines()


@pytest.mark.django_db
def test_supervisor_json__carries_each_nodes_code_versions():
    make_node("web-1", code_versions={"notes": "1.0.0"})

    [node] = json.loads(supervisor("--json"))

    assert node["code_versions"] == {"notes": "1.0.0"}


# -- real processes --------------------------------------------------------------------------


@pytest.fixture
def versioned(subprocess_env):
    """``env(version)``: the environment of a process running release ``version`` of the
    versioned plugin; release 1.0.0 is migrated, enabled and recorded in the registry."""
    def env(version: str) -> dict[str, str]:
        return {**subprocess_env, "DJANGO_SETTINGS_MODULE": "tests.settings_versions",
                "TESTS_VERSIONED_VERSION": version}

    _drop_versioned_tables()
    for args in (("migrate", "versioned", "--verbosity", "0"), ("pm", "enable", "versioned")):
        done = manage(env("1.0.0"), *args)
        assert done.returncode == 0, done.stderr
    yield env
    _drop_versioned_tables()  # the test database's flush knows only the models of tests.settings


def _drop_versioned_tables() -> None:
    with connection.cursor() as cursor:
        for table in ("versioned_upgrades", "versioned_added_in_1_1"):
            cursor.execute(f"DROP TABLE IF EXISTS {table}")
        cursor.execute("DELETE FROM django_migrations WHERE app = 'versioned'")


def upgrades_run() -> list[tuple[str, str]]:
    """Each run of the versioned plugin's ``upgrade()``: (from, to)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT from_version, to_version FROM versioned_upgrades ORDER BY id")
        return [tuple(row) for row in cursor.fetchall()]


def migration_1_1_applied() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM django_migrations WHERE app = 'versioned' AND name = '0002_added_in_1_1'")
        return cursor.fetchone()[0] == 1


def registry_version() -> str:
    return ApplicationPlugin.objects.get(name="versioned").version


def reported(pid: int, version: str) -> Node | None:
    """The node row of process ``pid`` once it reports release ``version`` of the plugin."""
    node = Node.objects.filter(pid=pid, hostname=HOSTNAME).first()
    return node if node is not None and node.code_versions.get("versioned") == version else None


def expected_code(version: str) -> dict[str, str]:
    """What a process of tests.settings_versions runs: this process's plugins and the versioned one."""
    return {**{name: plugin.version for name, plugin in plugin_manager.plugins.items()}, "versioned": version}


@pytest.mark.django_db(transaction=True)
def test_nodes__web_command_and_dispatcher_report_their_code_versions(versioned, server_processes):
    _, server = server_processes(versioned("1.0.0"))
    for args in (("pm", "list"), ("runjobs", "--burst")):
        done = manage(versioned("1.0.0"), *args)
        assert done.returncode == 0, done.stderr

    web = wait_until(lambda: reported(server.pid, "1.0.0"), timeout=10)
    assert web is not None, list(Node.objects.values("kind", "pid", "code_versions"))
    assert web.code_versions == expected_code("1.0.0")
    others = {node.kind: node.code_versions for node in Node.objects.exclude(pid=server.pid)
              if node.code_versions.get("versioned")}
    assert others == {"command": expected_code("1.0.0"), "dispatcher": expected_code("1.0.0")}


@pytest.mark.django_db(transaction=True)
def test_pm_upgrade__refused_while_a_server_runs_older_code_then_forced_once(versioned, server_processes):
    _, server = server_processes(versioned("1.0.0"))
    assert wait_until(lambda: reported(server.pid, "1.0.0"), timeout=10)

    refused = manage(versioned("1.1.0"), "pm", "upgrade", "versioned")

    assert refused.returncode == 1 and refused.stdout == ""
    [line] = refused.stderr.strip().splitlines()
    assert line.startswith("CommandError: plugin 'versioned' not upgraded to 1.1.0")
    assert f"web {HOSTNAME}:{server.pid} (1.0.0)" in line and "--force" in line
    assert (registry_version(), upgrades_run(), migration_1_1_applied()) == ("1.0.0", [], False)

    forced = manage(versioned("1.1.0"), "pm", "upgrade", "versioned", "--force")
    again = manage(versioned("1.1.0"), "pm", "upgrade", "versioned", "--force")

    assert forced.returncode == 0, forced.stderr
    assert forced.stdout.strip() == "Upgraded versioned from 1.0.0 to 1.1.0."
    assert again.stdout.strip() == "versioned is already at version 1.1.0."
    assert (registry_version(), upgrades_run(), migration_1_1_applied()) == ("1.1.0", [("1.0.0", "1.1.0")], True)


@pytest.mark.django_db(transaction=True)
def test_pm_upgrade__goes_through_once_the_older_server_stopped(versioned, server_processes):
    _, old = server_processes(versioned("1.0.0"))
    _, new = server_processes(versioned("1.1.0"))
    assert wait_until(lambda: reported(old.pid, "1.0.0") and reported(new.pid, "1.1.0"), timeout=10)
    assert manage(versioned("1.1.0"), "pm", "upgrade", "versioned").returncode == 1

    old.terminate()
    old.wait(timeout=10)
    assert wait_until(lambda: Node.objects.filter(pid=old.pid, status=NodeStatus.STOPPED).exists(), timeout=5)
    done = manage(versioned("1.1.0"), "pm", "upgrade", "versioned")

    assert done.returncode == 0, done.stderr
    assert (registry_version(), upgrades_run(), migration_1_1_applied()) == ("1.1.0", [("1.0.0", "1.1.0")], True)


@pytest.mark.django_db(transaction=True)
def test_admin__shows_the_versions_two_real_servers_run(versioned, server_processes, admin_client):
    _, old = server_processes(versioned("1.0.0"))
    _, new = server_processes(versioned("1.1.0"))
    assert wait_until(lambda: reported(old.pid, "1.0.0") and reported(new.pid, "1.1.0"), timeout=10)

    nodes_page = admin_client.get(reverse("admin:tachycore_node_changelist")).content.decode()
    plugins_page = admin_client.get(reverse("admin:tachycore_applicationplugin_changelist")).content.decode()

    assert "<strong>versioned</strong>: 1.0.0 on 1 node, 1.1.0 on 1 node" in nodes_page
    for node, version in ((old, "1.0.0"), (new, "1.1.0")):
        row = re.search(rf'<tr id="node-[^"]+"(?:(?!</tr>).)*{HOSTNAME}:{node.pid}<.*?</tr>', nodes_page, re.S)
        assert row and f"versioned <code>{version}</code>" in row.group(), nodes_page
    plugin_row = plugins_page[plugins_page.index('id="plugin-versioned"'):]
    assert "1.0.0 on 1 node, 1.1.0 on 1 node" in plugin_row[:plugin_row.index("</tr>")]
