"""``kv_incr``: the statement of ``incr`` as a PL/pgSQL function, on PostgreSQL only.

Sent as text on every call (Django binds parameters on the client), the statement is parsed
and planned each time; a PL/pgSQL function keeps the plans of its statements for the life of
the connection, so a call costs little more than the work itself. It sends the NOTIFY that
drops the key from other processes' L1 when the write was made (``p_channel`` not NULL).
Returns the new integer, or NULL when the key holds something else (the store then reads
the row to say why). The SQL is written out here, not imported: a migration must keep
doing what it did when it was written. SQLite keeps its statement (kv/sql/sqlite.py).
"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION kv_incr(p_key text, p_amount bigint, p_now bigint, p_ts timestamptz,
                                   p_channel text, p_message text) RETURNS bigint
LANGUAGE plpgsql AS $kv_incr$
DECLARE
    result bigint;
BEGIN
    INSERT INTO _kv (key, type, value, expire_at, created, updated)
    VALUES (p_key, 'value', to_jsonb(p_amount), NULL, p_ts, p_ts)
    ON CONFLICT (key) DO UPDATE SET
        value = CASE WHEN (_kv.expire_at IS NOT NULL AND _kv.expire_at <= p_now) THEN excluded.value
                ELSE to_jsonb(((_kv.value #>> '{}')::numeric + p_amount)::bigint) END,
        expire_at = CASE WHEN (_kv.expire_at IS NOT NULL AND _kv.expire_at <= p_now) THEN NULL
                    ELSE _kv.expire_at END,
        created = CASE WHEN (_kv.expire_at IS NOT NULL AND _kv.expire_at <= p_now) THEN excluded.created
                  ELSE _kv.created END,
        type = excluded.type,
        updated = excluded.updated
    -- expired: it starts over; else only an integer whose sum stays in the signed 64-bit range
    WHERE (_kv.expire_at IS NOT NULL AND _kv.expire_at <= p_now)
       OR (_kv.type = 'value' AND CASE WHEN jsonb_typeof(_kv.value) = 'number'
                                            AND (_kv.value #>> '{}') ~ '^-?[0-9]+$'
                                       THEN (_kv.value #>> '{}')::numeric + p_amount
                                            BETWEEN -9223372036854775808 AND 9223372036854775807
                                       ELSE false END)
    RETURNING (_kv.value #>> '{}')::bigint INTO result;
    IF result IS NOT NULL AND p_channel IS NOT NULL THEN
        PERFORM pg_notify(p_channel, p_message);
    END IF;
    RETURN result;
END
$kv_incr$
"""
DROP = "DROP FUNCTION IF EXISTS kv_incr(text, bigint, bigint, timestamptz, text, text)"


def create(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def drop(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):

    dependencies = [
        ('kv', '0002_expiring_keys_index'),
    ]

    operations = [
        migrations.RunPython(create, drop, elidable=False),
    ]
