"""PostgreSQL statements: concurrent dispatchers claim with ``FOR UPDATE SKIP LOCKED`` and
take different jobs without waiting on each other; an enqueue wakes idle dispatchers
with a ``NOTIFY`` in its own statement."""

from __future__ import annotations

import json

import psycopg

from .base import FINISHED_SQL, NOTIFY_CHANNEL, TABLE, Statements, attempt_of, like_escape

__all__ = ["PostgresStatements"]


class PostgresStatements(Statements):
    """PostgreSQL: jsonb operators, ``FOR UPDATE SKIP LOCKED``, lists as array parameters."""

    vendor = "postgresql"
    json_param = "%s::jsonb"
    append_worker = "workers || jsonb_build_array(%s::text)"
    append_error = "errors || jsonb_build_array(%s::jsonb)"
    drop_last_worker = "workers - (-1)"
    insert_chunk = 1000

    # the types of INSERT_COLUMNS, in its order
    _ARRAY_TYPES = ("varchar[]", "jsonb[]", "smallint[]", "varchar[]", "timestamptz[]", "integer[]",
                    "varchar[]", "varchar[]", "jsonb[]")

    def _topic_filter(self, topics, task_backends, blocked_prefixes, task_topics=(), on=""):
        # lists travel as array parameters: the statement's text depends only on which
        # lists are there, so the server can keep it prepared
        parts, params = [], []
        if topics:
            parts.append(f"({on}task_backend = '' AND {on}topic = ANY(%s::varchar[]))")
            params.append(list(topics))
        if task_backends:
            part = f"{on}task_backend = ANY(%s::varchar[])"
            params.append(list(task_backends))
            if task_topics:
                part = f"({part} AND {on}topic = ANY(%s::varchar[]))"
                params.append(list(task_topics))
            parts.append(part)
        sql = "(" + " OR ".join(parts) + ")" if parts else "1 = 0"
        if blocked_prefixes:
            sql += f" AND NOT ({on}topic LIKE ANY(%s::varchar[]))"
            params.append([like_escape(prefix) + "%" for prefix in blocked_prefixes])
        return sql, params

    def _claim_choice(self, where):
        # each key's first due jobs are locked as they are read, skipping those another
        # claim holds: concurrent dispatchers take different jobs without waiting on each
        # other (the rows read and not chosen stay locked only until the statement ends)
        return (f"{self._pending_keys()}SELECT due.id FROM pending_keys AS k CROSS JOIN LATERAL ("
                f"SELECT id, priority, run_at FROM {TABLE} WHERE status = 'pending' AND task_backend = k.task_backend "
                "AND topic = k.topic AND run_at <= %s ORDER BY priority DESC, run_at LIMIT %s "
                f"FOR UPDATE SKIP LOCKED) AS due WHERE {where} ORDER BY due.priority DESC, due.run_at LIMIT %s")

    def finished_estimate(self):
        # the planner's estimate (no row is read): the rows per page of the last ANALYZE
        # (autovacuum's) times the table's pages now, times the share of the two statuses
        with self.connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN (FORMAT JSON) SELECT 1 FROM {TABLE} WHERE {FINISHED_SQL}")
            (plan,) = cursor.fetchone()
        if isinstance(plan, str):
            plan = json.loads(plan)
        return int(plan[0]["Plan"]["Plan Rows"])

    def _run_claim(self, sql, params):
        # the claim is the statement an idle dispatcher waits on after a NOTIFY: where the site
        # allows server-side prepared statements (OPTIONS["prepare_threshold"] set; Django's
        # default, None, turns them off for poolers in transaction mode), it is prepared once
        # per connection (Django's cursors bind on the client and cannot prepare)
        connection = self.connection
        connection.ensure_connection()
        if connection.connection.prepare_threshold is None:
            return super()._run_claim(sql, params)
        with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
            cursor.execute(sql, params, prepare=True)
            return cursor.fetchall()

    def insert_statements(self, rows, dedupe):
        return rows if dedupe else 1

    def _insert_sql(self, source, dedupe):
        # NOTIFY in the same statement (no second round trip); it is delivered at commit,
        # and not at all on rollback, so a dispatcher never wakes for a job it cannot see
        return (f"WITH ins AS ({super()._insert_sql(source, dedupe)}), "
                f"wake AS (SELECT pg_notify('{NOTIFY_CHANNEL}', '')) SELECT ins.id FROM ins, wake")

    #: an enqueue: the one-row insert and its NOTIFY in the function of migration
    #: ``jobs.0004``, whose plans the server keeps per session (this text, sent alone, is
    #: parsed and planned at every call: about a third of the time of an enqueue)
    _ENQUEUE_CALL = ("SELECT tachy_jobs_enqueue(%s::varchar, %s::jsonb, %s::smallint, %s::varchar, "
                     "%s::timestamptz, %s::integer, %s::varchar, %s::varchar, %s::jsonb, %s::timestamptz, "
                     "%s::boolean)")

    def insert_one(self, now, row, dedupe, at=None):
        found = self.fetch(self._ENQUEUE_CALL, [*row, now, dedupe], native=self._ENQUEUE_CALL)
        return found[0][0]

    def insert(self, now, rows, dedupe):
        if dedupe or len(rows) == 1:
            return super().insert(now, rows, dedupe)
        # one statement for the whole batch, its text the same for any size: each column
        # travels as one array parameter (a VALUES list would be parsed row by row)
        columns = [list(column) for column in zip(*rows, strict=True)]
        arrays = ", ".join(f"%s::{kind}" for kind in self._ARRAY_TYPES)
        sql = self._insert_sql(f"SELECT *, %s::timestamptz, %s::timestamptz FROM unnest({arrays})", False)
        with self.connection.cursor() as cursor:
            cursor.execute(sql, [now, now, *columns])
            return sorted(row[0] for row in cursor.fetchall())

    def new_driver_cursor(self, driver_connection):
        # binding on the server (no statement prepared: pooler-safe under Django's defaults)
        # costs PostgreSQL less than the client's text with every value quoted into it
        return psycopg.Cursor(driver_connection)

    def notify(self) -> None:
        with self.connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, '')", [NOTIFY_CHANNEL])

    def complete(self, worker, now, outcomes):
        if not outcomes:
            return set()
        # one text for any number of outcomes (each column one array parameter), bound on
        # the server: nothing to quote into it on the client
        sql = (f"UPDATE {TABLE} AS j SET status = 'completed', result = v.result, locked_until = NULL, "
               "finished_at = %s, updated = %s "
               "FROM unnest(%s::bigint[], %s::jsonb[], %s::integer[]) AS v(id, result, attempt) "
               "WHERE j.id = v.id AND j.locked_by = %s AND j.status = 'processing' "
               "AND (v.attempt IS NULL OR j.attempts = v.attempt) RETURNING j.id")
        ids = [outcome[0] for outcome in outcomes]
        results = [outcome[1] for outcome in outcomes]
        attempts = [attempt_of(outcome) for outcome in outcomes]
        return {row[0] for row in self.fetch(sql, [now, now, ids, results, attempts, worker])}
