"""``incr`` on PostgreSQL through ``kv_incr``, the function of migration kv 0003: one
``SELECT`` per call, the NOTIFY sent by the function once the write is made, the SQL guard
reading a plugin's call of it as a write of ``_kv``, and the migration undone and redone.
The Redis semantics (TTL, expiry, type errors, int64) are tests/test_kv_store.py's, which
run through the function on PostgreSQL."""

from __future__ import annotations

import importlib
import io

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

import kv
from kv.errors import NotAnInteger, WrongType
from kv.models import KVEntry
from tachycore import sql_classifier
from tachycore.context import acting_as
from tachycore.errors import CapabilityDenied
from tachycore.governance import grants
from tests.helpers.functions import undo_and_redo

pytestmark = pytest.mark.postgres
CALL = "SELECT kv_incr(%s, 1, 0, now(), NULL, NULL)"
migration = importlib.import_module("kv.migrations.0003_kv_incr_function")


def test_sql_classifier__a_call_of_kv_incr_writes_the_kv_table():
    statement = sql_classifier.classify("SELECT kv_incr(%s, 1, 0, now(), NULL, NULL)", "postgresql")

    assert statement.access == sql_classifier.WRITE
    assert statement.writes == {"_kv"}


@pytest.mark.django_db
def test_incr__is_one_select_of_kv_incr_and_keeps_the_ttl():
    store = kv.get_store()
    store.set("n", 41, ex=100)

    with CaptureQueriesContext(connection) as queries:
        assert store.incr("n") == 42

    assert [query["sql"].split("(")[0] for query in queries] == ["SELECT kv_incr"]
    assert store.get("n") == 42 and 99 <= store.ttl("n") <= 100


@pytest.mark.django_db
def test_incr__refused_by_the_function_raises_the_stores_errors_and_writes_nothing():
    store = kv.get_store()
    store.set("text", "abc")
    store.hset("hash", "f", 1)

    with pytest.raises(NotAnInteger):
        store.incr("text")
    with pytest.raises(WrongType):
        store.incr("hash")

    assert store.get("text") == "abc" and store.hgetall("hash") == {"f": 1}


@pytest.mark.django_db(transaction=True)
def test_kv_incr__sends_its_notify_when_it_writes_only():
    sql = kv.get_store().statements()
    KVEntry.objects.filter(key="n").delete()
    settings = connection.settings_dict
    with psycopg.connect(host=settings["HOST"] or "127.0.0.1", port=settings["PORT"] or 5432,
                         user=settings["USER"], dbname=settings["NAME"], autocommit=True) as listener:
        listener.execute("LISTEN kv_incr_test")

        sql.notify_with = ("kv_incr_test", "written")
        assert sql.incr("n", 1, 0) == 1
        kv.get_store().set("text", "abc")
        sql.notify_with = ("kv_incr_test", "refused")
        assert sql.incr("text", 1, 0) is None

        received = [note.payload for note in listener.notifies(timeout=0.5)]
    assert received == ["written"]
    assert sql.notify_with is None  # taken by the call: the session knows it was sent


@pytest.fixture
def notes_on(db):
    call_command("pm", "enable", "notes", stdout=io.StringIO(), stderr=io.StringIO())
    grants.forget()


def test_sql_guard__a_plugin_calling_kv_incr_needs_to_write_the_kv_table(notes_on):
    kv.get_store().set("n", 1)

    with acting_as("notes"), connection.cursor() as cursor, \
            pytest.raises(CapabilityDenied, match="storage:sql:_kv at WRITE"):
        cursor.execute(CALL, ["n"])

    assert kv.get_store().get("n") == 1


def test_sql_guard__the_stores_own_incr_passes_with_the_kv_grant(notes_on, settings):
    settings.DEBUG = True  # the store's statements then run on Django's cursor, past the guard
    grants.grant("notes", "kv", "WRITE")

    with acting_as("notes"):
        assert kv.get_store().incr("n") == 1


@pytest.mark.django_db
def test_migration__is_undone_and_redone():
    undo_and_redo(migration, "kv_incr")
    assert kv.get_store().incr("n") == 1
