"""The supervisor: every process is a node with a heartbeat, a status and its errors, seen from any process."""

from __future__ import annotations

import io
import json
import re
import signal
import socket
from datetime import datetime

import pytest
from django.core.management import call_command
from django.db import DatabaseError
from django.utils import timezone

from tachycore.models import Node, NodeStatus
from tachycore.supervisor import MAX_ERRORS, Supervisor, list_nodes, prune_nodes
from tests.helpers.processes import manage, wait_until
from tests.helpers.rows import make_node

JSON_KEYS = {
    "id",
    "kind",
    "name",
    "hostname",
    "pid",
    "status",
    "started",
    "heartbeat",
    "heartbeat_age",
    "stale",
    "maintenance",
    "last_errors",
    "code_versions",
    "instances",
}


def supervisor(*args: str) -> tuple[str, str]:
    """Run ``manage.py supervisor`` in this process; return stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    call_command("supervisor", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def parse_table(output: str) -> dict[str, dict[str, str]]:
    """The table rows of ``manage.py supervisor`` by node id, each as ``{column: cell}``."""
    lines = output.splitlines()
    found = list(re.finditer(r"\S+(?: \S+)*", lines[0]))  # columns are 2+ spaces apart
    columns = [match.group() for match in found]
    starts = [match.start() for match in found]
    table = {}
    for line in lines[1:]:
        if line.split()[0].endswith(":"):  # an error line after the table: "<id>: <at>: <message>"
            continue
        cells = [
            line[start:end].strip() for start, end in zip(starts, [*starts[1:], None], strict=True)
        ]
        table[cells[0]] = dict(zip(columns, cells, strict=True))
    return table


def by_id(nodes) -> dict:
    return {node.id: node for node in nodes}


# -- list_nodes ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_list_nodes__live_only_by_default(db):
    make_node("web-1")
    make_node("jobs-1", kind="dispatcher", status=NodeStatus.MAINTAINING)
    make_node("cmd-1", kind="command", status=NodeStatus.COMMANDING)
    make_node("web-broken", status=NodeStatus.ERROR)
    make_node("web-stale", age=120)
    make_node("web-stopped", status=NodeStatus.STOPPED)
    make_node("web-stopped-long-ago", status=NodeStatus.STOPPED, age=3600)

    assert set(by_id(list_nodes())) == {"web-1", "jobs-1", "cmd-1", "web-broken"}


@pytest.mark.django_db
def test_list_nodes__include_gone_adds_stale_and_stopped(db):
    make_node("web-1")
    make_node("web-stale", age=120)
    make_node("web-stopped", status=NodeStatus.STOPPED)
    make_node("web-stopped-long-ago", status=NodeStatus.STOPPED, age=3600)

    nodes = by_id(list_nodes(include_gone=True))

    assert set(nodes) == {"web-1", "web-stale", "web-stopped", "web-stopped-long-ago"}
    assert nodes["web-1"].stale is False
    assert nodes["web-stale"].stale is True
    # a stopped node said goodbye: it is gone, not stale
    assert nodes["web-stopped"].stale is False
    assert nodes["web-stopped-long-ago"].stale is False


@pytest.mark.django_db
def test_list_nodes__stale_follows_node_timeout(settings):
    make_node("web-15s", age=15)
    make_node("web-5s", age=5)
    assert {n.id: n.stale for n in list_nodes(include_gone=True)} == {
        "web-15s": False,
        "web-5s": False,
    }

    settings.TACHYCORE = {**settings.TACHYCORE, "NODE_TIMEOUT": "10s"}

    assert {n.id: n.stale for n in list_nodes(include_gone=True)} == {
        "web-15s": True,
        "web-5s": False,
    }
    assert [n.id for n in list_nodes()] == ["web-5s"]


@pytest.mark.django_db
def test_list_nodes__stale_follows_node_timeout_from_the_environment(monkeypatch):
    from tachycore.conf import tachycore_settings

    make_node("web-15s", age=15)
    monkeypatch.setenv("TACHYCORE_NODE_TIMEOUT", "10s")
    tachycore_settings.reset()
    try:
        assert list_nodes() == []
    finally:
        monkeypatch.delenv("TACHYCORE_NODE_TIMEOUT")
        tachycore_settings.reset()


@pytest.mark.django_db
def test_list_nodes__heartbeat_age_in_seconds(db):
    make_node("web-1", age=7)
    make_node("web-2")

    nodes = by_id(list_nodes())

    assert 7.0 <= nodes["web-1"].heartbeat_age < 7.5
    assert 0.0 <= nodes["web-2"].heartbeat_age < 0.5


@pytest.mark.django_db
def test_list_nodes__carries_the_row(db):
    errors = [{"at": "2030-01-01T00:00:00+00:00", "message": "boom"}]
    row = make_node("web-1", maintenance=True, status=NodeStatus.MAINTAINING, errors=errors)

    [node] = list_nodes()

    assert (node.id, node.kind, node.name, node.hostname, node.pid) == (
        "web-1",
        "web",
        "gunicorn",
        "host-a",
        4242,
    )
    assert (node.status, node.maintenance, node.last_errors) == ("maintaining", True, errors)
    assert (node.started, node.heartbeat) == (row.started, row.heartbeat)


@pytest.mark.django_db
def test_list_nodes__empty(db):
    assert list_nodes() == []
    assert list_nodes(include_gone=True) == []


# -- prune_nodes --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_prune_nodes__deletes_rows_older_than_retention_and_returns_the_count(db):
    make_node("web-live")
    make_node("web-stopped-today", status=NodeStatus.STOPPED, age=3600)
    make_node("web-stopped-old", status=NodeStatus.STOPPED, age=2 * 86400)
    make_node("web-stale-old", age=3 * 86400)

    assert prune_nodes() == 2

    assert set(Node.objects.values_list("id", flat=True)) == {"web-live", "web-stopped-today"}


@pytest.mark.django_db
def test_prune_nodes__follows_node_retention(settings):
    make_node("web-live")
    make_node("web-stopped-2h", status=NodeStatus.STOPPED, age=7200)
    settings.TACHYCORE = {**settings.TACHYCORE, "NODE_RETENTION": "1h"}

    assert prune_nodes() == 1

    assert list(Node.objects.values_list("id", flat=True)) == ["web-live"]


@pytest.mark.django_db
def test_prune_nodes__nothing_to_delete(db):
    make_node("web-live")

    assert prune_nodes() == 0
    assert Node.objects.count() == 1


# -- manage.py supervisor -----------------------------------------------------------------------


@pytest.mark.django_db
def test_command__table_shows_kind_status_heartbeat_age_and_errors(db):
    errors = [{"at": f"2030-01-01T00:00:0{i}+00:00", "message": f"error {i}"} for i in (4, 3, 2, 1)]
    make_node("web-1", age=3, errors=errors)
    make_node(
        "jobs-1", kind="dispatcher", status=NodeStatus.MAINTAINING, maintenance=True, name="runjobs"
    )

    out, _ = supervisor()

    table = parse_table(out)
    assert set(table) == {"web-1", "jobs-1"}
    web = table["web-1"]
    assert (web["KIND"], web["STATUS"], web["ERRORS"], web["MAINTENANCE"]) == (
        "web",
        "running",
        "4",
        "off",
    )
    assert re.fullmatch(r"3\.\ds ago", web["HEARTBEAT"]), web["HEARTBEAT"]
    jobs = table["jobs-1"]
    assert (jobs["KIND"], jobs["STATUS"], jobs["ERRORS"], jobs["MAINTENANCE"]) == (
        "dispatcher",
        "maintaining",
        "0",
        "on",
    )
    # the newest three errors of each node follow the table
    assert "web-1: 2030-01-01T00:00:04+00:00: error 4" in out
    assert "error 2" in out
    assert "error 1" not in out


@pytest.mark.django_db
def test_command__no_live_nodes(db):
    assert supervisor()[0].strip() == "No live nodes."


@pytest.mark.django_db
def test_command__only_gone_nodes_is_no_live_nodes(db):
    make_node("web-stale", age=120)
    make_node("web-stopped", status=NodeStatus.STOPPED)

    assert supervisor()[0].strip() == "No live nodes."


@pytest.mark.django_db
def test_command_all__lists_stale_and_stopped(db):
    make_node("web-1")
    make_node("web-stale", age=120)
    make_node("web-stopped", status=NodeStatus.STOPPED)

    table = parse_table(supervisor("--all")[0])

    assert {node_id: row["STATUS"] for node_id, row in table.items()} == {
        "web-1": "running",
        "web-stale": "running (stale)",
        "web-stopped": "stopped",
    }


@pytest.mark.django_db
def test_command_json__shape(db):
    errors = [{"at": "2030-01-01T00:00:00+00:00", "message": "boom"}]
    make_node("web-1", age=2, errors=errors, maintenance=True, status=NodeStatus.MAINTAINING)
    make_node("web-stale", age=120)

    data = json.loads(supervisor("--json")[0])

    assert isinstance(data, list)
    [node] = data
    assert set(node) == JSON_KEYS
    assert (node["id"], node["kind"], node["name"], node["hostname"], node["pid"]) == (
        "web-1",
        "web",
        "gunicorn",
        "host-a",
        4242,
    )
    assert (node["status"], node["stale"], node["maintenance"]) == ("maintaining", False, True)
    assert node["last_errors"] == errors
    assert 2.0 <= node["heartbeat_age"] < 2.5
    heartbeat = datetime.fromisoformat(node["heartbeat"])
    assert abs((timezone.now() - heartbeat).total_seconds() - 2) < 0.5
    assert datetime.fromisoformat(node["started"]) < heartbeat


@pytest.mark.django_db
def test_command_json__empty_is_an_empty_list(db):
    assert json.loads(supervisor("--json")[0]) == []


@pytest.mark.django_db
def test_command_json_all__marks_stale(db):
    make_node("web-stale", age=120)

    [node] = json.loads(supervisor("--json", "--all")[0])

    assert (node["id"], node["stale"]) == ("web-stale", True)


@pytest.mark.django_db
def test_command_prune__deletes_old_rows_first_and_says_how_many(db):
    make_node("web-1")
    make_node("web-old", status=NodeStatus.STOPPED, age=2 * 86400)

    out, err = supervisor("--prune", "--all")

    assert err.strip() == "Pruned 1 old node rows."
    assert set(parse_table(out)) == {"web-1"}
    assert list(Node.objects.values_list("id", flat=True)) == ["web-1"]


# -- Supervisor (this process's node) -----------------------------------------------------------


def test_record_error__keeps_the_newest_ten_newest_first():
    node = Supervisor("node-a")

    for i in range(12):
        node.record_error(f"error {i}")

    assert MAX_ERRORS == 10
    assert [error["message"] for error in node.errors] == [f"error {i}" for i in range(11, 1, -1)]
    assert all(datetime.fromisoformat(error["at"]) for error in node.errors)


@pytest.mark.django_db
def test_record_error__reaches_the_row_newest_first(db):
    node = Supervisor("node-a")
    node.register("web", "gunicorn")
    for i in range(12):
        node.record_error(f"error {i}")

    node.write()

    stored = Node.objects.get(id="node-a").last_errors
    assert [error["message"] for error in stored] == [f"error {i}" for i in range(11, 1, -1)]


def test_record_error__asks_for_a_write():
    node = Supervisor("node-a")
    woken = []
    node.wake = lambda: woken.append(True)

    node.record_error("boom")

    assert woken


@pytest.mark.parametrize(
    ("before", "enabled", "after"),
    [
        (NodeStatus.RUNNING, True, NodeStatus.MAINTAINING),
        (NodeStatus.MAINTAINING, False, NodeStatus.RUNNING),
        (NodeStatus.MAINTAINING, True, NodeStatus.MAINTAINING),
        (NodeStatus.RUNNING, False, NodeStatus.RUNNING),
        (NodeStatus.COMMANDING, True, NodeStatus.COMMANDING),
        (NodeStatus.COMMANDING, False, NodeStatus.COMMANDING),
        (NodeStatus.ERROR, True, NodeStatus.ERROR),
        (NodeStatus.STOPPED, True, NodeStatus.STOPPED),
    ],
)
def test_set_maintenance__switches_running_and_maintaining_only(before, enabled, after):
    node = Supervisor("node-a")
    node.status = before
    woken = []
    node.wake = lambda: woken.append(True)

    node.set_maintenance(enabled)

    assert (node.status, node.maintenance) == (after, enabled)
    assert woken


@pytest.mark.django_db
def test_write__stores_the_node_row(db):
    node = Supervisor("node-a")
    node.register("web", "runserver", status=NodeStatus.RUNNING)
    node.set_maintenance(True)

    node.write()

    row = Node.objects.get(id="node-a")
    assert (row.kind, row.name, row.status, row.maintenance) == (
        "web",
        "runserver",
        "maintaining",
        True,
    )
    assert row.hostname == socket.gethostname()[:255]
    assert (timezone.now() - row.heartbeat).total_seconds() < 5


@pytest.mark.django_db
def test_write__stores_the_code_versions_and_the_instances_reported(db):
    node = Supervisor("node-a")
    node.register("web")
    node.code_versions = {"notes": "1.1.0"}
    node.instances_report = lambda: {"notes": {"generation": 2}}

    node.write()

    row = Node.objects.get(id="node-a")
    assert (row.code_versions, row.instances) == ({"notes": "1.1.0"}, {"notes": {"generation": 2}})


@pytest.mark.django_db
def test_write__an_instances_report_that_raises_leaves_the_heartbeat_going(db, caplog):
    node = Supervisor("node-a")
    node.register("web")
    node.instances_report = lambda: 1 / 0

    with caplog.at_level("WARNING", logger="tachycore.supervisor"):
        node.write()

    assert Node.objects.get(id="node-a").instances == {}
    assert "ZeroDivisionError" in caplog.text


@pytest.mark.django_db
def test_write__moves_the_heartbeat(db):
    node = Supervisor("node-a")
    node.register("web")
    node.write()
    first = Node.objects.get(id="node-a").heartbeat

    node.write()

    assert Node.objects.get(id="node-a").heartbeat > first
    assert Node.objects.count() == 1


@pytest.mark.django_db
def test_write__before_register_writes_nothing(db):
    Supervisor("node-a").write()

    assert not Node.objects.exists()


@pytest.mark.django_db
def test_write__database_error_is_logged_not_raised(db, monkeypatch, caplog):
    def fail(*args, **kwargs):
        raise DatabaseError("database is down")

    monkeypatch.setattr(Node.objects, "update_or_create", fail)
    node = Supervisor("node-a")
    node.register("web")

    with caplog.at_level("WARNING", logger="tachycore.supervisor"):
        node.write()

    assert not Node.objects.exists()
    [record] = [r for r in caplog.records if r.name == "tachycore.supervisor"]
    assert record.levelname == "WARNING"
    assert "node-a" in record.getMessage()
    assert "database is down" in record.getMessage()


def test_write__a_database_error_is_a_warning_once_until_a_write_succeeds(db, monkeypatch, caplog):
    real = Node.objects.update_or_create
    down = True

    def maybe_fail(*args, **kwargs):
        if down:
            raise DatabaseError("no such table: tachycore_nodes")
        return real(*args, **kwargs)

    monkeypatch.setattr(Node.objects, "update_or_create", maybe_fail)
    node = Supervisor("node-a")
    node.register("web")

    with caplog.at_level("WARNING", logger="tachycore.supervisor"):
        node.write()
        node.write()
        node.write()
        down = False
        node.write()
        down = True
        node.write()

    assert len([r for r in caplog.records if r.name == "tachycore.supervisor"]) == 2


# -- real processes -----------------------------------------------------------------------------


@pytest.fixture
def server(server_processes):
    """``start() -> (base url, Popen)``; the server is stopped after the test."""
    return server_processes


def nodes_seen_by_another_process(env: dict[str, str], *args: str) -> list[dict]:
    result = manage(env, "supervisor", "--json", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def node_of(pid: int, nodes: list[dict]) -> dict | None:
    found = [
        node
        for node in nodes
        if node["pid"] == pid and node["hostname"] == socket.gethostname()[:255]
    ]
    assert len(found) <= 1, found
    return found[0] if found else None


@pytest.mark.django_db(transaction=True)
def test_runserver__is_a_running_web_node_with_a_fresh_heartbeat(server, subprocess_env):
    _, proc = server()

    node = wait_until(
        lambda: node_of(proc.pid, nodes_seen_by_another_process(subprocess_env)), timeout=5
    )

    assert node is not None, nodes_seen_by_another_process(subprocess_env, "--all")
    assert (node["kind"], node["status"], node["stale"]) == ("web", "running", False)
    assert 0 <= node["heartbeat_age"] < 3
    assert "runserver" in node["name"]


@pytest.mark.django_db(transaction=True)
def test_runserver__heartbeat_keeps_moving(server):
    _, proc = server()
    first = wait_until(
        lambda: Node.objects.filter(pid=proc.pid).values_list("heartbeat", flat=True).first(),
        timeout=5,
    )
    assert first is not None

    moved = wait_until(
        lambda: Node.objects.filter(pid=proc.pid, heartbeat__gt=first).exists(),
        timeout=3,
        interval=0.1,
    )

    assert moved, "no new heartbeat within 3s (HEARTBEAT_INTERVAL is 1s in tests)"


def _gone_or_stopped(pid: int) -> bool:
    live = [
        node
        for node in list_nodes()
        if node.pid == pid and node.hostname == socket.gethostname()[:255]
    ]
    return not live


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_runserver__stopped_process_leaves_the_live_listing_within_seconds(server, signum):
    _, proc = server()
    assert wait_until(lambda: not _gone_or_stopped(proc.pid), timeout=5), (
        "the server never showed up as live"
    )

    proc.send_signal(signum)
    proc.wait(timeout=10)

    assert wait_until(lambda: _gone_or_stopped(proc.pid), timeout=5), (
        f"5s after {signum.name} the dead server is still listed as live: "
        f"{[(n.status, n.heartbeat_age) for n in list_nodes() if n.pid == proc.pid]}"
    )
    rows = list(Node.objects.filter(pid=proc.pid).values_list("status", flat=True))
    assert rows in ([], ["stopped"]), rows


@pytest.mark.django_db(transaction=True)
def test_command_process__leaves_a_stopped_command_node(subprocess_env):
    result = manage(subprocess_env, "pm", "list")
    assert result.returncode == 0, result.stderr

    gone = nodes_seen_by_another_process(subprocess_env, "--all")
    live = nodes_seen_by_another_process(subprocess_env)

    commands = [node for node in gone if node["kind"] == "command"]
    assert [(node["status"], node["name"]) for node in commands] == [("stopped", "manage.py pm")]
    assert commands[0]["stale"] is False
    assert not [node for node in live if node["kind"] == "command"]


@pytest.mark.django_db(transaction=True)
def test_command_process__a_failed_command_leaves_its_error_on_its_node(subprocess_env):
    result = manage(subprocess_env, "pm", "enable", "nosuch")
    assert result.returncode == 1

    [node] = [n for n in nodes_seen_by_another_process(subprocess_env, "--all") if n["kind"] == "command"]
    assert node["status"] == "stopped"
    assert [error["message"] for error in node["last_errors"]] == [
        "manage.py pm failed: unknown plugin 'nosuch'"
    ]


@pytest.mark.django_db(transaction=True)
def test_prune_schedule__one_hourly_row_after_migrate_whose_function_prunes_old_nodes(settings):
    from django.core.management import call_command
    from django.utils.module_loading import import_string
    from django_q.models import Schedule

    from tachycore.receivers import NODE_PRUNE_SCHEDULE

    call_command("migrate", verbosity=0)  # again: still one row
    [row] = Schedule.objects.filter(name=NODE_PRUNE_SCHEDULE)
    assert (row.schedule_type, row.repeats) == (Schedule.HOURLY, -1)

    settings.TACHYCORE = {**settings.TACHYCORE, "NODE_RETENTION": "1h"}
    make_node("old", age=7200, status="stopped")
    make_node("recent", age=60, status="stopped")
    assert import_string(row.func)() == 1
    assert list(Node.objects.values_list("id", flat=True)) == ["recent"]
