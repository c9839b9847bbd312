"""Every process in step: two real servers follow plugin and maintenance changes made elsewhere."""

from __future__ import annotations

import io
import json
import time

import pytest
from django.core.management import call_command
from django.db import connection

from tachycore.models import ApplicationPlugin
from tachycore.registry import DatabaseRegistry
from tests.helpers.http import fetch, status_of
from tests.helpers.processes import manage, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def all_answer(servers: list[str], path: str, code: int, timeout: float) -> bool:
    return bool(wait_until(lambda: all(status_of(s + path) == code for s in servers), timeout=timeout))


@pytest.fixture
def server_env(subprocess_env):
    """Servers that can only learn of a change in time through the sync channel.

    On PostgreSQL the periodic reconcile is pushed far away (60 s), so the
    one-second goal can only be met by LISTEN/NOTIFY. On SQLite there is no
    cross-process message: processes poll the registry's version row every
    STATE_CHECK_INTERVAL (the default 0.5 s here).
    """
    env = dict(subprocess_env)
    if connection.vendor == "postgresql":
        env.update(TACHYCORE_RECONCILE_INTERVAL="60s", TACHYCORE_STATE_CHECK_INTERVAL="60s")
    else:
        env.update(TACHYCORE_STATE_CHECK_INTERVAL="0.5s")
    return env


@pytest.fixture
def two_servers(live_server_process, server_env, subprocess_env):
    assert manage(subprocess_env, "pm", "enable", "notes").returncode == 0
    servers = [live_server_process(server_env), live_server_process(server_env)]
    assert all_answer(servers, "/api/notes/", 200, timeout=5)
    return servers


def test_two_servers__follow_pm_disable_and_enable_within_a_second(two_servers, subprocess_env):
    for _ in range(2):
        assert manage(subprocess_env, "pm", "disable", "notes").returncode == 0
        assert all_answer(two_servers, "/api/notes/", 404, timeout=1.0)

        assert manage(subprocess_env, "pm", "enable", "notes").returncode == 0
        assert all_answer(two_servers, "/api/notes/", 200, timeout=1.0)


def test_two_servers__follow_maintenance_within_a_second(two_servers, subprocess_env):
    assert manage(subprocess_env, "maintenance", "on", "--message", "Back at five").returncode == 0

    assert all_answer(two_servers, "/api/notes/", 503, timeout=1.0)
    for server in two_servers:
        code, _, body = fetch(server + "/api/notes/")
        assert (code, json.loads(body)["detail"]) == (503, "Back at five")
        assert status_of(server + "/admin/login/") == 200

    assert manage(subprocess_env, "maintenance", "off").returncode == 0
    assert all_answer(two_servers, "/api/notes/", 200, timeout=1.0)


def test_two_servers__are_listed_as_live_nodes(two_servers, subprocess_env):
    result = manage(subprocess_env, "supervisor", "--json")

    nodes = [node for node in json.loads(result.stdout) if node["kind"] == "web"]
    assert len(nodes) == 2
    assert all(node["status"] == "running" and node["heartbeat_age"] < 5 for node in nodes)


def _kill_listeners() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name LIKE %s",
            ["tachycore-listen %"],
        )
        return cursor.fetchone()[0]


@pytest.mark.postgres
def test_lost_notification__is_repaired_by_the_periodic_reconcile(live_server_process, subprocess_env):
    """A change whose NOTIFY never arrives is served within the reconcile interval."""
    assert manage(subprocess_env, "pm", "enable", "notes").returncode == 0
    env = dict(subprocess_env, TACHYCORE_RECONCILE_INTERVAL="1s", TACHYCORE_STATE_CHECK_INTERVAL="60s")
    server = live_server_process(env)
    assert status_of(server + "/api/notes/") == 200

    # commit a change and send no notification at all: only the reconcile can see it
    ApplicationPlugin.objects.filter(name="notes").update(enabled=False)
    DatabaseRegistry()._bump()
    changed = time.monotonic()

    assert wait_until(lambda: status_of(server + "/api/notes/") == 404, timeout=3)
    assert time.monotonic() - changed < 2.5


@pytest.mark.postgres
def test_lost_notification__killed_listener_reconnects_and_catches_up(live_server_process, subprocess_env):
    assert manage(subprocess_env, "pm", "enable", "notes").returncode == 0
    env = dict(subprocess_env, TACHYCORE_RECONCILE_INTERVAL="60s", TACHYCORE_STATE_CHECK_INTERVAL="60s")
    server = live_server_process(env)
    assert status_of(server + "/api/notes/") == 200

    assert _kill_listeners() == 1
    # the change commits at once, while the listener is reconnecting: its NOTIFY is lost
    call_command("pm", "disable", "notes", stdout=io.StringIO())

    assert wait_until(lambda: status_of(server + "/api/notes/") == 404, timeout=5)
    # and the new listener gets the next notifications again
    assert manage(subprocess_env, "pm", "enable", "notes").returncode == 0
    assert wait_until(lambda: status_of(server + "/api/notes/") == 200, timeout=1.0)


def test_web_process__registers_its_node_before_any_request(subprocess_env):
    """The runtime starts when the server builds its handler, so that what hangs on
    ``process_started`` (AUTO_START's dispatcher, the plugin warnings) runs at start."""
    import subprocess
    import sys

    from tachycore.models import Node
    from tests.helpers.processes import ROOT, free_port, stop_server

    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "runserver", f"127.0.0.1:{free_port()}", "--noreload"],
        env=subprocess_env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        node = wait_until(lambda: Node.objects.filter(kind="web", pid=proc.pid).first(), timeout=20)
        assert node is not None, "no web node without a request"
        assert node.status == "running"
    finally:
        stop_server(proc)
