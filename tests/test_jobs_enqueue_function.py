"""The enqueue on PostgreSQL through ``tachy_jobs_enqueue``, the function of migration jobs
0004: one ``SELECT`` per enqueue, the wake-up NOTIFY sent only when a job was added (not for
a dedupe hit), the SQL guard reading a plugin's own call of it as a write of ``_jobs``, and
the migration undone and redone.
The rest of the enqueue's behaviour is tests/test_jobs_store.py's, which runs through the
function on PostgreSQL."""

from __future__ import annotations

import importlib
import io

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

import jobs
from jobs.models import Job
from jobs.sql import NOTIFY_CHANNEL
from tachycore import sql_classifier
from tachycore.context import acting_as
from tachycore.errors import CapabilityDenied
from tachycore.governance import grants
from tests.helpers.functions import undo_and_redo

pytestmark = pytest.mark.postgres
CALL = ("SELECT tachy_jobs_enqueue('toolbox.echo', '{}'::jsonb, 0::smallint, 'default', now(), 3, NULL, '', "
        "'{}'::jsonb, now(), false)")
migration = importlib.import_module("jobs.migrations.0004_enqueue_function")


def test_sql_classifier__a_call_of_the_enqueue_function_writes_the_jobs_table():
    statement = sql_classifier.classify(CALL, "postgresql")

    assert statement.access == sql_classifier.WRITE
    assert statement.writes == {"_jobs"}


@pytest.mark.django_db
def test_enqueue__is_one_select_of_the_function():
    with CaptureQueriesContext(connection) as captured:
        job = jobs.get_job_store().enqueue("toolbox.echo", {"n": 1}, dedupe_key="k")

    assert [query["sql"].split("(")[0] for query in captured.captured_queries] == ["SELECT tachy_jobs_enqueue"]
    assert Job.objects.get(pk=job.id).dedupe_key == "k"


@pytest.mark.django_db(transaction=True)
def test_enqueue__notifies_when_it_adds_a_job_only():
    store = jobs.get_job_store()
    settings = connection.settings_dict
    with psycopg.connect(host=settings["HOST"] or "127.0.0.1", port=settings["PORT"] or 5432,
                         user=settings["USER"], dbname=settings["NAME"], autocommit=True) as listener:
        listener.execute(f"LISTEN {NOTIFY_CHANNEL}")
        first = store.enqueue("toolbox.echo", {"n": 1}, dedupe_key="once")
        assert len(list(listener.notifies(timeout=0.5, stop_after=1))) == 1

        again = store.enqueue("toolbox.echo", {"n": 2}, dedupe_key="once")
        assert list(listener.notifies(timeout=0.3)) == []
    assert (again.id, again.deduplicated, first.deduplicated) == (first.id, True, False)


@pytest.fixture
def notes_on(db):
    call_command("pm", "enable", "notes", stdout=io.StringIO(), stderr=io.StringIO())
    grants.forget()


def test_sql_guard__a_plugin_calling_the_enqueue_function_needs_to_write_the_jobs_table(notes_on):
    with acting_as("notes"), connection.cursor() as cursor, \
            pytest.raises(CapabilityDenied, match="storage:sql:_jobs at WRITE"):
        cursor.execute(CALL)

    assert not Job.objects.filter(topic="toolbox.echo").exists()


@pytest.mark.django_db
def test_migration__is_undone_and_redone():
    undo_and_redo(migration, "tachy_jobs_enqueue")
    assert jobs.get_job_store().enqueue("toolbox.echo", {"n": 1}).id
