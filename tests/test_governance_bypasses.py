"""What the governance layer does not stop, shown (docs/governance.md lists them).

It guards plugins that cooperate; it is no sandbox. Each test is a bypass a plugin's code
can use on purpose, and shows it working, so that the list in the docs stays true.
"""

from __future__ import annotations

import io
import threading

import pytest
from django.core.management import call_command
from django.db import connection

import kv
from kv.models import KVEntry
from tachycore.context import acting_as, current_plugin
from tachycore.errors import CapabilityDenied


@pytest.fixture
def notes_on(db):
    call_command("pm", "enable", "notes", stdout=io.StringIO(), stderr=io.StringIO())
    kv.get_store().set("victim", 1)


def guarded_delete():
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM _kv WHERE key = 'victim'")


def test_the_guard_itself__refuses_this_delete(notes_on):
    with acting_as("notes"), pytest.raises(CapabilityDenied):
        guarded_delete()

    assert KVEntry.objects.filter(key="victim").exists()


def test_bypass__the_db_api_connection_below_django(notes_on):
    with acting_as("notes"):
        connection.ensure_connection()
        cursor = connection.connection.cursor()  # the driver's own: no execute wrappers
        cursor.execute("DELETE FROM _kv WHERE key = 'victim'")

    assert not KVEntry.objects.filter(key="victim").exists()


@pytest.mark.django_db(transaction=True)
def test_bypass__a_plain_thread_runs_as_the_host_site():
    # committed data: the thread has a connection of its own
    call_command("pm", "enable", "notes", stdout=io.StringIO(), stderr=io.StringIO())
    kv.get_store().set("victim", 1)
    seen = []

    def work():
        seen.append(current_plugin())
        guarded_delete()
        connection.close()

    with acting_as("notes"):
        thread = threading.Thread(target=work)
        thread.start()
        thread.join()

    assert seen == [None]
    assert not KVEntry.objects.filter(key="victim").exists()


def test_bypass__a_plugin_can_call_acting_as_itself(notes_on):
    with acting_as("notes"), acting_as(None):
        guarded_delete()

    assert not KVEntry.objects.filter(key="victim").exists()


@pytest.mark.postgres
def test_bypass__a_database_function_with_side_effects_reads_as_a_select(notes_on):
    with connection.cursor() as cursor:  # as the host: the site's own migration, say
        cursor.execute("CREATE FUNCTION tachy_wipe() RETURNS integer LANGUAGE sql AS "
                       "$$ DELETE FROM _kv WHERE key = 'victim' RETURNING 1 $$")
    with acting_as("notes"), connection.cursor() as cursor:
        cursor.execute("SELECT tachy_wipe()")  # READ, on no table: within storage:sql

    assert not KVEntry.objects.filter(key="victim").exists()
