"""What is enforced: each statement, kv operation and enqueue of a plugin against its grants."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.db import connection, transaction

import jobs
import kv
from demo.audit.models import AuditEvent
from demo.notes.models import Note
from jobs.dispatcher import Dispatcher
from jobs.models import Job
from kv.models import KVEntry
from tachycore.context import acting_as
from tachycore.errors import CapabilityDenied
from tachycore.governance import grants
from tachycore.sql_guard import guard, own_tables
from tests.helpers.grants import revoke
from tests.helpers.processes import manage


@pytest.fixture
def notes_on(db):
    """notes and audit enabled, with what the test settings grant them."""
    call_command("pm", "enable", "notes", stdout=io.StringIO(), stderr=io.StringIO())
    grants.forget()


def raw(sql: str, params=()):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description else cursor.rowcount


def test_the_guard__is_the_first_wrapper_of_the_connection(db):
    raw("SELECT 1")

    assert connection.execute_wrappers[0] is guard


def test_own_tables__are_the_plugins_models(notes_on):
    assert own_tables("notes") == {"notes_note"}
    assert own_tables("audit") == {"audit_auditevent"}
    assert own_tables("nosuch") == frozenset()


# -- SQL -----------------------------------------------------------------------------------------


def test_sql__a_plugin_reads_and_writes_its_own_tables_with_storage_sql(notes_on):
    with acting_as("notes"):
        Note.objects.create(title="mine", body="x")
        assert Note.objects.filter(title="mine").count() == 1
        Note.objects.filter(title="mine").update(body="y")
        Note.objects.filter(title="mine").delete()


def test_sql__another_plugins_table_needs_its_own_grant(notes_on):
    # notes writes audit's table through the service audit:record; granted the table itself:
    grants.grant("notes", "storage:sql:audit_auditevent", "WRITE")
    with acting_as("notes"):
        AuditEvent.objects.create(plugin="notes", event="granted")
    revoke("notes", "storage:sql:audit_auditevent")

    # a savepoint of its own: the ORM's save runs in an atomic block, which Django marks as
    # broken when anything raises through it (the test's transaction goes on after it)
    with acting_as("notes"), pytest.raises(CapabilityDenied) as refused, transaction.atomic():
        AuditEvent.objects.create(plugin="notes", event="refused")

    assert "storage:sql:audit_auditevent at WRITE (audit_auditevent)" in str(refused.value)
    assert list(AuditEvent.objects.filter(event="refused")) == []  # the statement never ran


@pytest.mark.parametrize("sql", [
    "SELECT key FROM _kv",
    'SELECT * FROM "_jobs" WHERE id = 1',
    "DELETE FROM _kv",
    "/* harmless */ DELETE FROM _kv",
    "WITH gone AS (DELETE FROM _kv RETURNING key) SELECT count(*) FROM gone",
    "SELECT 1; DELETE FROM _kv",
])
def test_sql__tables_of_no_grant_are_refused_before_the_database_sees_them(notes_on, sql):
    kv.get_store().set("kept", 1)

    with acting_as("notes"), pytest.raises(CapabilityDenied, match="plugin 'notes' may not use storage:sql:"):
        raw(sql)

    assert KVEntry.objects.filter(key="kept").exists()


def test_sql__ddl_on_a_new_table_needs_execute_on_that_table(notes_on):
    with acting_as("notes"), pytest.raises(CapabilityDenied, match="storage:sql:notes_scratch at EXECUTE"):
        raw("CREATE TABLE notes_scratch (id integer)")
    grants.grant("notes", "storage:sql:notes_scratch", "EXECUTE")

    with acting_as("notes"):
        raw("CREATE TABLE notes_scratch (id integer)")
        raw("DROP TABLE notes_scratch")


def test_sql__a_statement_of_no_table_needs_storage_sql_at_its_access(notes_on):
    setting = "PRAGMA user_version" if connection.vendor == "sqlite" else "SET application_name = 'tachy'"
    with acting_as("notes"):
        raw("SELECT 1")  # READ, within the WRITE grant
        with pytest.raises(CapabilityDenied, match="storage:sql at EXECUTE"):
            raw(setting)
    grants.grant("notes", "storage:sql", "EXECUTE")

    with acting_as("notes"):
        raw(setting)


def test_sql__the_tables_django_reads_to_authenticate_are_readable(notes_on, django_user_model):
    django_user_model.objects.create_user("reader")

    with acting_as("notes"):
        assert django_user_model.objects.filter(username="reader").exists()
        with pytest.raises(CapabilityDenied, match="storage:sql:auth_user at WRITE"), transaction.atomic():
            django_user_model.objects.filter(username="reader").update(is_superuser=True)

    assert not django_user_model.objects.get(username="reader").is_superuser


def test_sql__after_a_refusal_the_plugins_transaction_goes_on(notes_on):
    with acting_as("notes"), transaction.atomic():
        Note.objects.create(title="before", body="x")
        with pytest.raises(CapabilityDenied):
            raw("DELETE FROM _kv")
        Note.objects.create(title="after", body="x")

    assert set(Note.objects.filter(title__in=["before", "after"]).values_list("title", flat=True)) == {
        "before", "after"}


def test_sql__a_plugin_without_any_grant_may_still_open_atomic_blocks(notes_on):
    revoke("notes", "storage:sql")

    with acting_as("notes"), transaction.atomic(), transaction.atomic():
        pass  # SAVEPOINT and RELEASE need no grant
    with acting_as("notes"), pytest.raises(CapabilityDenied, match="storage:sql at READ"):
        Note.objects.count()


@pytest.mark.parametrize("mode", ["audit", "off"])
def test_sql__audit_and_off_modes_run_the_statement(notes_on, settings, mode):
    settings.TACHYCORE = {**settings.TACHYCORE, "GOVERNANCE": mode}
    kv.get_store().set("doomed", 1)

    with acting_as("notes"):
        raw("DELETE FROM _kv WHERE key = %s", ["doomed"])

    assert not KVEntry.objects.filter(key="doomed").exists()


def test_sql__the_host_and_built_in_plugins_are_not_checked(notes_on):
    raw("SELECT count(*) FROM _kv")
    with acting_as("toolbox"):
        raw("SELECT count(*) FROM _kv")


# -- kv ------------------------------------------------------------------------------------------


def test_kv__a_plugin_needs_kv_at_the_operations_access(notes_on, settings):
    store = kv.get_store()
    store.set("shared", 1)

    with acting_as("notes"), pytest.raises(CapabilityDenied, match="may not use kv at READ \\(shared\\)"):
        store.get("shared")
    grants.grant("notes", "kv", "READ")
    with acting_as("notes"):
        assert store.get("shared") == 1
        assert store.exists("shared") == 1
        for write in (lambda: store.set("shared", 2), lambda: store.incr("n"), lambda: store.delete("shared"),
                      lambda: store.hset("h", "f", 1), lambda: store.expire("shared", 5),
                      lambda: store.lock("l", 5)):
            with pytest.raises(CapabilityDenied, match="kv at WRITE"):
                write()
    assert store.get("shared") == 1 and store.ttl("shared") == -1 and not store.exists("n", "h", "l")

    grants.grant("notes", "kv", "WRITE")
    with acting_as("notes"):
        store.set("shared", 2)
        assert store.incr("n") == 1
    assert store.get("shared") == 2


@pytest.mark.parametrize("debug", [False, True])
def test_kv__its_own_statements_are_not_parsed_by_the_sql_guard(notes_on, settings, debug):
    settings.DEBUG = debug  # with DEBUG the store runs on Django's cursors, which the guard wraps
    grants.grant("notes", "kv", "WRITE")

    with acting_as("notes"):
        kv.get_store().set("through-kv", {"a": 1})
        assert kv.get_store().get("through-kv") == {"a": 1}


# -- jobs ----------------------------------------------------------------------------------------


def test_jobs__enqueue_needs_jobs_enqueue(notes_on):
    store = jobs.get_job_store()
    with acting_as("notes"):
        store.enqueue("notes.word_count", {"note": 101})
    revoke("notes", "jobs:enqueue")

    with acting_as("notes"), pytest.raises(CapabilityDenied, match="jobs:enqueue at EXECUTE \\(notes.word_count\\)"):
        store.enqueue("notes.word_count", {"note": 102})

    payloads = [job.payload for job in Job.objects.filter(topic="notes.word_count")]
    assert {"note": 101} in payloads and {"note": 102} not in payloads


@pytest.mark.django_db(transaction=True)
def test_jobs__a_handler_refused_fails_its_attempt_with_the_message(settings):
    call_command("pm", "enable", "notes", stdout=io.StringIO(), stderr=io.StringIO())
    note = Note.objects.create(title="t", body="three words here")
    job = jobs.get_job_store().enqueue("notes.word_count", {"note": note.pk}, max_retries=0)
    revoke("notes", "storage:sql")

    Dispatcher(burst=True, workers=1).run()

    stored = Job.objects.get(pk=job.pk)
    assert stored.status == "failed"
    assert "CapabilityDenied" in stored.last_error
    assert "plugin 'notes' may not use storage:sql" in stored.last_error


# -- HTTP and commands ---------------------------------------------------------------------------


def test_http__a_refused_plugin_view_is_a_403_with_the_reason(notes_on, client):
    revoke("notes", "storage:sql")

    response = client.get("/api/notes/")

    assert response.status_code == 403
    assert "plugin 'notes' may not use storage:sql at READ" in response.json()["detail"]


@pytest.mark.django_db(transaction=True)
def test_command__a_plugins_command_refused_is_one_line_and_exit_1(subprocess_env):
    call_command("pm", "enable", "notes", stdout=io.StringIO(), stderr=io.StringIO())
    assert manage(subprocess_env, "notes_count").stdout.strip().isdigit()
    revoke("notes", "storage:sql")

    refused = manage(subprocess_env, "notes_count")

    assert refused.returncode == 1
    assert refused.stderr.count("\n") == 1, refused.stderr
    assert "plugin 'notes' may not use storage:sql at READ" in refused.stderr
