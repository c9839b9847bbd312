"""Tables filled in one ``INSERT ... SELECT`` each, for the benchmarks that need many rows.

The rows come from a numbers CTE: ``generate_series`` on PostgreSQL, a recursive CTE on
SQLite, ``g`` from 0 to ``count - 1``; each column is an expression of ``g``. Datetimes
are written as each backend stores them (``timestamptz`` on PostgreSQL, the text of
Django's SQLite backend), so that the ORM reads the rows as its own.
"""

from __future__ import annotations

import time

#: the age of the oldest row: the jobs' retention (7 days) and the hour the prune removes
SPAN_SECONDS = 7 * 86400 + 3600
#: the topic of the jobs that wait for a disabled plugin (demo/notes: not enabled after migrate)
BLOCKED_TOPIC = "notes.word_count"
TOPICS = 22


def numbers(connection) -> str:
    """``WITH`` a table ``s(g)`` of the numbers 0 to ``%s - 1`` (the count is the first parameter)."""
    if connection.vendor == "postgresql":
        return "WITH s(g) AS (SELECT generate_series(0::bigint, %s - 1)) "
    return "WITH RECURSIVE s(g) AS (SELECT 0 UNION ALL SELECT g + 1 FROM s WHERE g < %s - 1) "


def seconds_ago(connection, seconds: str) -> str:
    """The SQL of the time ``seconds`` (an SQL expression, negative: in the future) before now."""
    if connection.vendor == "postgresql":
        return f"(now() - ({seconds}) * interval '1 second')"
    return f"strftime('%%Y-%%m-%%d %%H:%%M:%%f', 'now', (-({seconds})) || ' seconds')"


def json_text(connection, text: str) -> str:
    """A JSON literal for a JSON column."""
    return f"'{text}'::jsonb" if connection.vendor == "postgresql" else f"'{text}'"


def empty(connection, *tables: str) -> None:
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f'TRUNCATE "{table}"' if connection.vendor == "postgresql" else f'DELETE FROM "{table}"')


def jobs(connection, count: int) -> None:
    """``count`` jobs created over the last seven days and an hour, by ``g % 200``: 93%
    completed, 5% failed (22 topics ``bench.topicN``), 0.5% pending and due on the topic of
    a plugin that is not enabled (``BLOCKED_TOPIC``: 5,000 of a million), 1% pending due in
    a day, 0.5% processing."""
    j = lambda text: json_text(connection, text)  # noqa: E731
    at = seconds_ago(connection, "g * %s / %s")
    tomorrow = seconds_ago(connection, "-86400")
    in_an_hour = seconds_ago(connection, "-3600")
    empty(connection, "_jobs")
    with connection.cursor() as cursor:
        cursor.execute(
            numbers(connection) + ", t AS (SELECT g, " + at + " AS at, g %% 200 AS kind FROM s) "
            "INSERT INTO _jobs (topic, payload, status, priority, queue_name, run_at, locked_until, locked_by, "
            "attempts, retries, max_retries, last_error, errors, result, dedupe_key, task_backend, workers, "
            "created, updated, started_at, attempted_at, finished_at, trace_context) "
            f"SELECT CASE WHEN kind = 196 THEN '{BLOCKED_TOPIC}' ELSE 'bench.topic' || (g %% {TOPICS}) END, "
            f"{j('{}')}, "
            "CASE WHEN kind < 186 THEN 'completed' WHEN kind < 196 THEN 'failed' "
            "WHEN kind < 199 THEN 'pending' ELSE 'processing' END, 0, 'default', "
            f"CASE WHEN kind IN (197, 198) THEN {tomorrow} ELSE at END, "
            f"CASE WHEN kind = 199 THEN {in_an_hour} END, "
            "CASE WHEN kind = 199 THEN 'bench-worker' ELSE '' END, "
            f"CASE WHEN kind < 196 OR kind = 199 THEN 1 ELSE 0 END, 0, 3, '', {j('[]')}, NULL, NULL, '', "
            f"{j('[]')}, at, at, CASE WHEN kind < 196 OR kind = 199 THEN at END, "
            "CASE WHEN kind < 196 OR kind = 199 THEN at END, CASE WHEN kind < 196 THEN at END, "
            f"{j('{}')} FROM t",
            [count, SPAN_SECONDS, count],
        )


def keys(connection, count: int) -> None:
    """``count`` keys, ``key:0000001:`` plus 0 to 59 hex digits (no ``z`` anywhere), the even
    ones expired a minute ago, the odd ones without a TTL."""
    if connection.vendor == "postgresql":
        key = "'key:' || lpad(g::text, 7, '0') || ':' || left(repeat(md5(g::text), 2), (g %% 60)::int)"
    else:
        key = "'key:' || printf('%%07d', g) || ':' || substr(lower(hex(randomblob(30))), 1, g %% 60)"
    now = seconds_ago(connection, "0")
    empty(connection, "_kv")
    with connection.cursor() as cursor:
        cursor.execute(
            numbers(connection) + "INSERT INTO _kv (key, type, value, expire_at, created, updated) "
            f"SELECT {key}, 'value', {json_text(connection, '1')}, "
            f"CASE WHEN g %% 2 = 0 THEN %s END, {now}, {now} FROM s",
            [count, int(time.time() * 1000) - 60_000],
        )


def audit(connection, count: int) -> None:
    """``count`` audit events over the last seven days: 10 plugins, one in 20 denied."""
    trace = "md5(g::text)" if connection.vendor == "postgresql" else "lower(hex(randomblob(16)))"
    empty(connection, "tachycore_audit")
    with connection.cursor() as cursor:
        cursor.execute(
            numbers(connection) + "INSERT INTO tachycore_audit (at, node, plugin, capability, access, decision, "
            "action, target, detail, trace_id, user_id) "
            f"SELECT {seconds_ago(connection, 'g * %s / %s')}, 'bench-node', 'plugin' || (g %% 10), "
            "'storage:sql', 2, CASE WHEN g %% 20 = 0 THEN 'denied' ELSE 'allowed' END, 'sql', "
            f"'table' || (g %% 50), '', {trace}, NULL FROM s",
            [count, SPAN_SECONDS, count],
        )


def nodes(connection, count: int, live: int = 5) -> None:
    """``count`` node rows: ``live`` processes that beat now, the others stopped, one a
    minute before the next, as rows that no prune removed pile up."""
    j = lambda text: json_text(connection, text)  # noqa: E731
    beat = seconds_ago(connection, f"CASE WHEN g < {live} THEN 0 ELSE g * 60 END")
    empty(connection, "tachycore_nodes")
    with connection.cursor() as cursor:
        cursor.execute(
            numbers(connection) + "INSERT INTO tachycore_nodes (id, kind, name, hostname, pid, status, started, "
            "heartbeat, maintenance, last_errors, code_versions, instances) "
            "SELECT 'bench-node-' || g, CASE g %% 3 WHEN 0 THEN 'web' WHEN 1 THEN 'dispatcher' ELSE 'command' END, "
            f"'', 'host' || (g %% 5), g, CASE WHEN g < {live} THEN 'running' ELSE 'stopped' END, {beat}, {beat}, "
            f"false, {j('[]')}, {j('{}')}, {j('{}')} FROM s",
            [count],
        )


def analyze(connection, *tables: str) -> None:
    """The planner's statistics of ``tables`` (PostgreSQL: and the visibility map its
    index-only scans need), as autovacuum or the SQLite prune's ``ANALYZE`` leave them."""
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f'VACUUM ANALYZE "{table}"' if connection.vendor == "postgresql" else f'ANALYZE "{table}"')
