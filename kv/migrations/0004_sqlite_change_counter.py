"""SQLite only: a change counter of ``_kv``, raised by triggers in the writing statement itself.

Other processes' L1 caches follow it (``kv.watcher``): a process that sees it move drops its
L1. PostgreSQL needs none (a write's NOTIFY carries the keys), so nothing is made there.

- ``UPDATE`` and ``DELETE`` of a row raise it; an ``INSERT`` does not: a key that did not
  exist is in nobody's L1 (L1 keeps no misses). A ``DELETE`` of a row expired already does
  not either: L1 keeps no entry past its key's expiry, so the cleanup's batches raise nothing.
- A write raises it only when ``pending`` is 0, and sets ``pending``; later writes find it
  set and write nothing more (the counter's page is one more page for each commit to write,
  which would cost a ``set`` a third more). A watcher that sees ``pending`` drops its L1 at
  each commit it sees until ``pending`` is cleared, then clears it with a raise of its own
  (``kv.watcher``): while no process watches, writes cost nothing more after the first.
- A later migration that rebuilds ``_kv`` on SQLite (Django's ``AlterField`` copies the
  table) drops its triggers: the watcher then finds them missing and keeps L1 off, and
  ``tests/test_kv_l1.py`` fails, until a migration makes them again.
"""

from django.db import migrations

NOW_MS = "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)"
RAISE = "UPDATE _kv_changes SET counter = counter + 1, pending = 1 WHERE pending = 0"
CREATE = [
    "CREATE TABLE _kv_changes (id INTEGER PRIMARY KEY CHECK (id = 1), counter INTEGER NOT NULL, "
    "pending INTEGER NOT NULL)",
    "INSERT INTO _kv_changes (id, counter, pending) VALUES (1, 0, 0)",
    f"CREATE TRIGGER _kv_changed_by_update AFTER UPDATE ON _kv BEGIN {RAISE}; END",
    "CREATE TRIGGER _kv_changed_by_delete AFTER DELETE ON _kv "
    f"WHEN OLD.expire_at IS NULL OR OLD.expire_at > {NOW_MS} BEGIN {RAISE}; END",
]
DROP = [
    "DROP TRIGGER IF EXISTS _kv_changed_by_update",
    "DROP TRIGGER IF EXISTS _kv_changed_by_delete",
    "DROP TABLE IF EXISTS _kv_changes",
]


def run_on_sqlite(statements):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "sqlite":
            for statement in statements:
                schema_editor.execute(statement)

    return run


class Migration(migrations.Migration):

    dependencies = [
        ("kv", "0003_kv_incr_function"),
    ]

    operations = [
        migrations.RunPython(run_on_sqlite(CREATE), run_on_sqlite(DROP), elidable=False),
    ]
