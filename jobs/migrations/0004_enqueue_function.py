"""On PostgreSQL, ``tachy_jobs_enqueue()``: the one-row insert of an enqueue and its wake-up
``NOTIFY`` in a PL/pgSQL function, whose statements PostgreSQL plans once per session and
keeps (the same text sent by the client is parsed and planned on every call: Django's
default configuration prepares nothing, for poolers in transaction mode). Nothing on SQLite."""

from django.db import migrations

# the columns as jobs.sql.base writes them (INSERT_COLUMNS, then the constant ones); the
# dedupe branch's ON CONFLICT names the partial unique index's predicate word for word
_INSERT = """INSERT INTO "_jobs" (topic, payload, priority, queue_name, run_at, max_retries, dedupe_key,
        task_backend, trace_context, created, updated, status, locked_by, attempts, retries, last_error,
        errors, workers)
      VALUES (p_topic, p_payload, p_priority, p_queue_name, p_run_at, p_max_retries, p_dedupe_key,
        p_task_backend, p_trace_context, p_now, p_now, 'pending', '', 0, 0, '', '[]', '[]')"""

CREATE = f"""
CREATE OR REPLACE FUNCTION tachy_jobs_enqueue(
    p_topic varchar, p_payload jsonb, p_priority smallint, p_queue_name varchar, p_run_at timestamptz,
    p_max_retries integer, p_dedupe_key varchar, p_task_backend varchar, p_trace_context jsonb,
    p_now timestamptz, p_dedupe boolean) RETURNS bigint LANGUAGE plpgsql AS $fn$
DECLARE
    new_id bigint;
BEGIN
    IF p_dedupe THEN
      {_INSERT}
      ON CONFLICT ("dedupe_key") WHERE ("dedupe_key" IS NOT NULL AND "status" = 'pending') DO NOTHING
      RETURNING id INTO new_id;
    ELSE
      {_INSERT}
      RETURNING id INTO new_id;
    END IF;
    IF new_id IS NOT NULL THEN  -- delivered at commit, not at all on rollback
      PERFORM pg_notify('tachy_jobs', '');
    END IF;
    RETURN new_id;  -- NULL: a pending job has the dedupe key
END
$fn$"""

DROP = "DROP FUNCTION IF EXISTS tachy_jobs_enqueue(varchar, jsonb, smallint, varchar, timestamptz, integer, varchar, varchar, jsonb, timestamptz, boolean)"


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):

    dependencies = [
        ("jobs", "0003_pending_by_topic"),
    ]

    operations = [
        migrations.RunPython(create, drop, elidable=False),
    ]
