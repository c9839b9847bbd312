"""The audit trail: what is written, with which trace and user, and that nothing that must be is lost.

The writer thread writes on a connection of its own, so these tests commit for real
(``transaction=True``) and wait for it with ``audit.flush()``.
"""

from __future__ import annotations

import io
import threading
import time
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import connection, transaction
from django.utils import timezone

import jobs
import kv
from demo.notes.models import Note
from jobs.dispatcher import Dispatcher
from kv.models import KVEntry
from tachycore import audit
from tachycore.audit import writer
from tachycore.conf import tachycore_settings
from tachycore.context import acting_as
from tachycore.errors import CapabilityDenied, PluginNotFound, UngrantedCapabilities
from tachycore.governance import grants
from tachycore.manager import plugin_manager
from tachycore.models import Access, AuditEvent
from tachycore.receivers import AUDIT_PRUNE_FUNC, AUDIT_PRUNE_SCHEDULE, keep_audit_prune_schedule
from tachycore.runtime import runtime
from tests.helpers.grants import revoke
from tests.helpers.processes import manage

pytestmark = pytest.mark.django_db(transaction=True)

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
INCOMING = f"00-{TRACE}-00f067aa0ba902b7-01"


@pytest.fixture
def trail():
    """notes enabled with the test settings' grants, and an empty trail."""
    call_command("pm", "enable", "notes", stdout=io.StringIO(), stderr=io.StringIO())
    grants.forget()
    assert audit.flush()
    AuditEvent.objects.all().delete()
    yield audit.trail
    audit.flush()


def rows(**filters) -> list[AuditEvent]:
    assert audit.flush(), audit.stats()
    return list(AuditEvent.objects.filter(**filters).order_by("id"))


def raw(sql: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql)


# -- denials -------------------------------------------------------------------------------------


def test_denial_in_a_request__is_stored_with_the_requests_trace_id_and_user(trail, client):
    user = User.objects.create_user("reader", password="pw")
    client.force_login(user)
    revoke("notes", "storage:sql")

    response = client.get("/api/notes/", headers={"traceparent": INCOMING})

    assert response.status_code == 403
    [row] = rows(decision="denied")
    assert (row.plugin, row.capability, row.access, row.action) == ("notes", "storage:sql", Access.READ, "sql")
    assert row.trace_id == TRACE
    assert row.user_id == user.pk
    assert row.node == runtime.node_id
    assert row.target == "own tables"


def test_denial_in_a_job__carries_the_trace_id_of_the_request_that_enqueued_it(trail, client):
    client.force_login(User.objects.create_user("writer", password="pw"))
    created = client.post("/api/notes/", {"title": "t", "body": "three words here"},
                          content_type="application/json", headers={"traceparent": INCOMING})
    assert created.status_code == 201
    revoke("notes", "storage:sql")

    Dispatcher(burst=True, workers=1).run()

    # the job of the note the plugin made when enabled runs too, in a trace of its own
    [row] = rows(decision="denied", trace_id=TRACE)
    assert (row.plugin, row.capability, row.action) == ("notes", "storage:sql", "sql")
    assert row.trace_id == TRACE
    assert row.user_id is None  # a job runs for nobody signed in


def test_audit_mode__lets_the_call_through_and_records_would_deny(trail, client, settings):
    settings.TACHYCORE = {**settings.TACHYCORE, "GOVERNANCE": "audit"}
    revoke("notes", "storage:sql")

    response = client.get("/api/notes/", headers={"traceparent": INCOMING})

    assert response.status_code == 200
    found = rows(plugin="notes")
    assert {row.decision for row in found} == {"would_deny"}
    assert {(row.capability, row.trace_id) for row in found} == {("storage:sql", TRACE)}


def test_denials_of_kv_and_jobs__name_their_action_and_target(trail):
    revoke("notes", "jobs:enqueue")

    with acting_as("notes"):
        with pytest.raises(CapabilityDenied):
            jobs.get_job_store().enqueue("notes.word_count", {"note": 1})
        with pytest.raises(CapabilityDenied):
            kv.get_store().set("k", 1)

    found = {(row.action, row.capability, row.target) for row in rows(decision="denied")}
    assert ("jobs.enqueue", "jobs:enqueue", "notes.word_count") in found
    assert ("kv.set", "kv", "k") in found


# -- surviving the plugin's rollback --------------------------------------------------------------


def test_denial_inside_a_transaction_that_rolls_back__is_still_stored(trail):
    seen_inside: list[int] = []
    with pytest.raises(CapabilityDenied), acting_as("notes"), transaction.atomic():
        Note.objects.create(title="rolled back", body="x")  # the transaction holds the write lock (SQLite)
        started = time.perf_counter()
        with pytest.raises(CapabilityDenied):
            KVEntry.objects.count()  # storage:sql:_kv: no grant
        denied_in = time.perf_counter() - started
        if connection.vendor == "postgresql":  # written at once, beside the open transaction
            assert audit.flush(2)
            with acting_as(None):
                seen_inside.append(AuditEvent.objects.filter(decision="denied").count())
        raise CapabilityDenied("the plugin gives up: everything rolls back")

    assert denied_in < 0.05  # the caller never waits for the audit write (nor for a lock it holds)
    assert not Note.objects.filter(title="rolled back").exists()
    [row] = rows(decision="denied")
    assert (row.plugin, row.capability, row.access) == ("notes", "storage:sql:_kv", Access.READ)
    if connection.vendor == "postgresql":
        assert seen_inside == [1]


def test_denial_while_the_plugin_holds_the_write_lock__does_not_block_it(trail):
    """On SQLite the writer waits for the plugin's transaction to end; the plugin never waits."""
    with acting_as("notes"), transaction.atomic():
        Note.objects.create(title="kept", body="x")
        with pytest.raises(CapabilityDenied), transaction.atomic():
            KVEntry.objects.count()
        started = time.perf_counter()
        written_inside = audit.flush(0.3)
        waited = time.perf_counter() - started
        Note.objects.create(title="after", body="x")

    assert waited < 1.0  # a bounded wait, never a deadlock
    assert written_inside == (connection.vendor == "postgresql")
    assert len(rows(decision="denied")) == 1
    assert Note.objects.filter(title__in=["kept", "after"]).count() == 2


# -- the bounded queue ---------------------------------------------------------------------------


def test_saturated_queue__drops_allowed_checks_counts_them_and_keeps_every_denial(trail, settings, monkeypatch):
    settings.TACHYCORE = {**settings.TACHYCORE, "AUDIT_ALLOWED": "all", "AUDIT_QUEUE_SIZE": 2}
    release = threading.Event()
    insert = writer._insert

    def slow_insert(entries):
        release.wait(10)  # the database is slow: nothing is written meanwhile
        insert(entries)

    monkeypatch.setattr(writer, "_insert", slow_insert)
    before = audit.stats()["dropped"]

    with acting_as("notes"):
        for _ in range(20):
            Note.objects.count()  # allowed: queued while there is room, dropped after
        for _ in range(5):
            with pytest.raises(CapabilityDenied):
                KVEntry.objects.count()
    dropped = audit.stats()["dropped"] - before
    release.set()

    assert dropped >= 16  # 20 offered: room for 2 queued, and 2 in the batch the writer holds at most
    assert len(rows(decision="denied")) == 5
    assert 0 < len(rows(decision="allowed", plugin="notes")) <= 4
    deadline = time.monotonic() + 3
    while not any("allowed check(s) dropped" in error["message"] for error in runtime.supervisor.errors):
        assert time.monotonic() < deadline, list(runtime.supervisor.errors)
        time.sleep(0.05)


@pytest.mark.parametrize(("wanted", "expected"), [
    ("none", set()),
    ("writes", {Access.WRITE}),
    ("all", {Access.READ, Access.WRITE}),
])
def test_allowed_checks__are_recorded_per_audit_allowed(trail, settings, wanted, expected):
    settings.TACHYCORE = {**settings.TACHYCORE, "AUDIT_ALLOWED": wanted}

    with acting_as("notes"):
        Note.objects.create(title="n", body="x")  # WRITE
        Note.objects.filter(title="n").count()  # READ

    assert {row.access for row in rows(decision="allowed", plugin="notes", action="sql")} == expected


# -- operations and grant changes ----------------------------------------------------------------


def test_plugin_operations__are_recorded_with_the_os_user(trail):
    plugin_manager.disable("notes")
    plugin_manager.enable("notes")

    found = rows(plugin="notes")
    assert [(row.action, row.decision) for row in found] == [("pm.disable", "allowed"), ("pm.enable", "allowed")]
    assert found[1].detail.startswith("changed: notes (os user ")
    assert all(row.user_id is None for row in found)


def test_plugin_operation_in_the_admin__names_the_signed_in_user(trail, admin_client, admin_user):
    from django.urls import reverse

    admin_client.post(reverse("admin:tachycore_applicationplugin_operation", args=["notes", "disable"]))

    [row] = rows(action="pm.disable")
    assert (row.plugin, row.decision, row.user_id) == ("notes", "allowed", admin_user.pk)
    assert "os user" not in row.detail


def test_plugin_operation_on_the_command_line__is_written_before_the_command_exits(trail, subprocess_env):
    done = manage(subprocess_env, "pm", "disable", "notes")
    assert done.returncode == 0, done.stderr

    [row] = rows(action="pm.disable")  # written by the command's process, not this one
    assert (row.plugin, row.decision, row.user_id) == ("notes", "allowed", None)
    assert "(os user " in row.detail and row.node != runtime.node_id


def test_plugin_operation_refused__is_recorded_as_denied(trail, settings):
    settings.TACHYCORE = {**settings.TACHYCORE, "GRANTS": {}}  # enable would give the settings' grants
    plugin_manager.disable("notes")
    for capability in ("storage:sql", "service:audit:record", "jobs:enqueue"):
        revoke("notes", capability)

    with pytest.raises(UngrantedCapabilities):
        plugin_manager.enable("notes")
    with pytest.raises(PluginNotFound):
        plugin_manager.disable("nosuch")

    refused = rows(action="pm.enable")
    assert [row.decision for row in refused] == ["denied"]
    assert "UngrantedCapabilities" in refused[0].detail and "pm grant notes" in refused[0].detail
    assert [row.decision for row in rows(action="pm.disable", plugin="nosuch")] == ["failed"]


def test_grant_and_revoke__are_recorded(trail):
    grants.grant("notes", "kv", "READ", granted_by="pm grant (alice)")
    grants.revoke("notes", "kv")
    grants.revoke("notes", "kv")  # it had none: nothing changed, nothing recorded

    found = rows(plugin="notes", capability="kv")
    assert [(row.action, row.decision, row.access) for row in found] == [
        ("grant", "allowed", Access.READ), ("revoke", "allowed", Access.NONE)]
    assert found[0].detail.startswith("granted by pm grant (alice)")


def test_grant_rolled_back__is_not_recorded(trail):
    with pytest.raises(RuntimeError), transaction.atomic():
        grants.grant("notes", "kv", "READ")
        raise RuntimeError("changed my mind")

    assert rows(action="grant") == []


def test_settings_grants__changes_are_recorded(trail):
    grants.apply_settings({"notes": {"storage:sql": "READ"}})

    found = {(row.action, row.capability) for row in rows(plugin="notes")}
    assert ("grant", "storage:sql") in found
    assert ("revoke", "jobs:enqueue") in found


# -- retention -----------------------------------------------------------------------------------


def test_prune__deletes_rows_older_than_the_retention(trail, settings):
    settings.TACHYCORE = {**settings.TACHYCORE, "AUDIT_RETENTION": "1d"}
    now = timezone.now()
    for age in (timedelta(hours=1), timedelta(hours=23), timedelta(days=2), timedelta(days=40)):
        AuditEvent.objects.create(at=now - age, plugin="old", decision="denied", action="sql")

    assert audit.prune(now) == 2
    assert AuditEvent.objects.filter(plugin="old").count() == 2


def test_prune_schedule__is_kept_once_hourly_after_migrate(trail):
    from django_q.models import Schedule

    keep_audit_prune_schedule(using="default")
    keep_audit_prune_schedule(using="default")

    [schedule] = Schedule.objects.filter(name=AUDIT_PRUNE_SCHEDULE)
    assert (schedule.func, schedule.schedule_type) == (AUDIT_PRUNE_FUNC, "H")


# -- stats ---------------------------------------------------------------------------------------


def test_stats__count_what_was_written(trail):
    before = audit.stats()
    with acting_as("notes"), pytest.raises(CapabilityDenied):
        KVEntry.objects.count()
    assert audit.flush()

    after = audit.stats()
    assert after["denials_written"] == before["denials_written"] + 1
    assert after["written"] == before["written"] + 1
    assert after["queued"] == 0


@pytest.mark.parametrize(("key", "value"), [("AUDIT_ALLOWED", "some"), ("AUDIT_QUEUE_SIZE", 0),
                                            ("AUDIT_RETENTION", "a month")])
def test_settings__bad_values_are_reported_by_key(settings, key, value):
    settings.TACHYCORE = {**settings.TACHYCORE, key: value}

    assert [name for name, _message in tachycore_settings.errors()] == [key]
