"""SQLite statements: one writer at a time, so a claim is a compare-and-set on
``status = 'pending'``; datetimes travel as the text Django's SQLite backend stores."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from .base import TABLE, Statements, attempt_of

__all__ = ["SQLiteStatements"]


class SQLiteStatements(Statements):
    """SQLite: JSON1 functions, and a compare-and-set claim (one writer at a time)."""

    vendor = "sqlite"
    append_worker = "json_insert(workers, '$[#]', %s)"
    append_error = "json_insert(errors, '$[#]', json(%s))"
    drop_last_worker = "json_remove(workers, '$[#-1]')"
    # one writer at a time: the sub-select and the update see the same rows, and the status
    # test makes it a compare-and-set (RETURNING holds only the rows it changed); the unary
    # "+" keeps the planner from reading every pending job for it (by the index of
    # (status, topic)) instead of the chosen ones by their ids
    claim_recheck = " AND +status = 'pending'"
    pending_index = " INDEXED BY jobs_pending_topic"
    insert_chunk = 100  # SQLite allows 32,766 parameters per statement

    def dt(self, value: datetime) -> Any:
        # timezone.now()'s datetimes (in UTC) on a connection in UTC, the common case, as
        # Django's adapt_datetimefield_value writes them, without its settings lookups
        if value.tzinfo is UTC and self.connection.timezone is UTC:
            return str(value.replace(tzinfo=None))
        return self.connection.ops.adapt_datetimefield_value(value)

    def native(self, sql):
        return sql.replace("%s", "?")

    def read_dt(self, value: Any) -> datetime | None:
        if value is None or isinstance(value, datetime):
            return value
        parsed = parse_datetime(value)
        assert parsed is not None, f"a datetime column holds Django's datetime text, not {value!r}"
        return timezone.make_aware(parsed, UTC) if parsed.tzinfo is None else parsed

    def refresh_statistics(self) -> None:
        # without sqlite_stat1, SQLite guesses that an equality on an index's first column
        # picks about ten rows: "status IN ('completed', 'failed')" on jobs_status_topic then
        # looks cheaper than any partial index, and the prune and the dashboard's chart walk
        # every finished job. ANALYZE of _jobs reads only its indexes (0.2 s for a million jobs).
        with self.connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {TABLE}")

    def finished_estimate(self):
        # the rows of the index of finished jobs when ANALYZE last ran (each prune runs it):
        # the first figure of its sqlite_stat1 row
        with self.connection.cursor() as cursor:
            cursor.execute("SELECT name FROM sqlite_master WHERE name = 'sqlite_stat1'")
            if cursor.fetchone() is None:
                return None
            cursor.execute("SELECT stat FROM sqlite_stat1 WHERE tbl = '_jobs' AND idx = 'jobs_finished_age'")
            row = cursor.fetchone()
        return int(row[0].split()[0]) if row else None

    #: outcomes per completing statement (three parameters each; SQLite allows 32,766)
    complete_chunk = 1000

    def complete(self, worker, now, outcomes):
        if not outcomes:
            return set()
        at = self.dt(now)
        done: set[int] = set()
        # one statement per chunk, in one transaction (one commit) when there are more
        chunks = [outcomes[start:start + self.complete_chunk] for start in range(0, len(outcomes), self.complete_chunk)]
        with transaction.atomic(using=self.using) if len(chunks) > 1 else contextlib.nullcontext():
            for chunk in chunks:
                values = ", ".join(["(%s, %s, %s)"] * len(chunk))
                sql = (f"WITH v(id, result, attempt) AS (VALUES {values}) "
                       f"UPDATE {TABLE} SET status = 'completed', result = v.result, locked_until = NULL, "
                       f"finished_at = %s, updated = %s FROM v WHERE {TABLE}.id = v.id AND locked_by = %s "
                       "AND status = 'processing' AND (v.attempt IS NULL OR attempts = v.attempt) RETURNING id")
                params = [v for outcome in chunk for v in (*outcome[:2], attempt_of(outcome))]
                done.update(row[0] for row in self.fetch(sql, [*params, at, at, worker]))
        return done
