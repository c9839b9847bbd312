"""The SQL functions migrations make on PostgreSQL (kv_incr, tachy_jobs_enqueue)."""

from __future__ import annotations

from types import ModuleType

from django.db import connection


def function_exists(name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_proc WHERE proname = %s", [name])
        return cursor.fetchone()[0] == 1


def undo_and_redo(migration: ModuleType, name: str) -> None:
    """Run the migration's ``drop`` then its ``create`` of the function ``name``, checking
    each took effect; in the test's transaction (PostgreSQL's DDL rolls back with it)."""
    with connection.schema_editor() as editor:
        migration.drop(None, editor)
        assert not function_exists(name)
        migration.create(None, editor)
    assert function_exists(name)
