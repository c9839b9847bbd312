"""The statements of the job queue, shared by both databases; vendor classes fill in the rest.

Every state change of a job is one statement. A claim takes a batch of due jobs
and marks them ``processing`` under this worker's name with a lease; no row lock
is held after it returns, so a job runs without holding one. Finishing a job
writes only if the row still says this worker owns it (``locked_by`` and
``status`` in the ``WHERE``): a worker that lost its lease cannot overwrite the
newer outcome. The vendor classes say how a claim reads each topic's first due
jobs and how two claims never take one job (``claim_recheck``), and how JSON
arrays grow.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from datetime import datetime
from typing import Any, ClassVar

from django.db import IntegrityError, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

from tachycore.sql_guard import guard

from ..errors import WorkerLost

__all__ = ["CLAIMED_COLUMNS", "INSERT_COLUMNS", "NOTIFY_CHANNEL", "Statements"]

#: the PostgreSQL channel an enqueue notifies (after commit) and idle dispatchers listen on
NOTIFY_CHANNEL = "tachy_jobs"

TABLE = '"_jobs"'
#: the columns an enqueue gives (the others start at constants: pending, no attempts, no errors)
INSERT_COLUMNS = ("topic", "payload", "priority", "queue_name", "run_at", "max_retries", "dedupe_key",
                  "task_backend", "trace_context")
_JSON_COLUMNS = ("payload", "trace_context")
#: the columns a claim returns, in this order, to build the ``Job`` a handler gets
CLAIMED_COLUMNS = ("id", "topic", "payload", "priority", "queue_name", "run_at", "attempts", "retries",
                   "max_retries", "dedupe_key", "task_backend", "created", "started_at", "attempted_at",
                   "workers", "errors", "trace_context")
# the index predicate exactly as the migration wrote it: SQLite matches a partial index
# only when the conflict target's WHERE is the same expression
_DEDUPE_CONFLICT = """ON CONFLICT ("dedupe_key") WHERE ("dedupe_key" IS NOT NULL AND "status" = 'pending') DO NOTHING"""


#: what a job whose lease ran out records; the class path must import (Django's
#: ``TaskError.exception_class`` imports it for a task)
LOST_CLASS_PATH = f"{WorkerLost.__module__}.{WorkerLost.__qualname__}"
LOST_MESSAGE = "the worker stopped without finishing the job (its lease expired)"

#: a job going back to pending gives up its dedupe key when another pending job holds it
#: meanwhile (enqueued while this one ran): the partial unique index allows one pending job per key
_YIELD_KEY = ("CASE WHEN dedupe_key IS NOT NULL AND EXISTS (SELECT 1 FROM " + TABLE + " AS other "
              "WHERE other.status = 'pending' AND other.dedupe_key = " + TABLE + ".dedupe_key "
              "AND other.id <> " + TABLE + ".id) THEN NULL ELSE dedupe_key END")

#: finished jobs, in the words of the condition of the index ``jobs_finished_age`` (see
#: ``jobs.models.FINISHED``)
FINISHED_SQL = "status IN ('completed', 'failed')"

#: the distinct ``(task_backend, topic)`` of the pending jobs, found by a loose scan of the
#: index ``jobs_pending_topic`` (``{pending}``: the table, on that index): one index probe per
#: key (the next topic of the same task backend, else the first topic of the next backend),
#: however many jobs each key has. A claim tests on these few rows which topics its worker
#: takes, instead of testing every due job, so that the due jobs of topics it does not take
#: cost it nothing.
PENDING_KEYS = (
    "WITH RECURSIVE pending_keys(task_backend, topic) AS ("
    "SELECT task_backend, topic FROM (SELECT task_backend, topic FROM {pending} WHERE status = 'pending' "
    "ORDER BY task_backend, topic LIMIT 1) AS first_key "
    f"UNION ALL SELECT next_key.task_backend, next_key.topic FROM pending_keys AS k JOIN {TABLE} AS next_key "
    "ON next_key.id = COALESCE((SELECT id FROM {pending} WHERE status = 'pending' "
    "AND task_backend = k.task_backend AND topic > k.topic ORDER BY topic LIMIT 1), "
    "(SELECT id FROM {pending} WHERE status = 'pending' AND task_backend > k.task_backend "
    "ORDER BY task_backend, topic LIMIT 1))) ")


class Statements:
    """The statements the store and the dispatcher send, for one database connection alias."""

    vendor = ""
    json_param = "%s"  # how a JSON text parameter is written in SQL
    append_worker = ""  # SQL that appends the %s worker id to the "workers" array
    append_error = ""  # SQL that appends the %s JSON error object to the "errors" array
    drop_last_worker = ""
    # how two claims never take one job: SQL ending the update's WHERE (SQLite re-tests
    # the status, a compare-and-set; PostgreSQL locks the rows it chooses, ``_claim_choice``)
    claim_recheck = ""
    # what follows the table's name where a claim reads the pending jobs by topic (SQLite
    # names the index: its planner may prefer the index of (status, topic) and sort)
    pending_index = ""

    def __init__(self, using: str, connection: BaseDatabaseWrapper | None = None) -> None:
        self.using = using
        # the connection of the thread that made these statements, if given: Django's lookup
        # (a context-local read) costs a tenth of an enqueue's Python, which asks three times
        self._made_with = connection
        self._made_in = threading.get_ident()

    @property
    def connection(self) -> BaseDatabaseWrapper:
        """This thread's connection to the statements' database."""
        connection = self._made_with
        if connection is not None and self._made_in == threading.get_ident():
            return connection
        return connections[self.using]

    # -- values --------------------------------------------------------------------------

    def dt(self, value: datetime) -> Any:
        """A datetime as a parameter."""
        return value

    def read_dt(self, value: Any) -> datetime | None:
        """A datetime column as the driver returned it, made a datetime."""
        return value

    def read_json(self, value: Any) -> Any:
        """A JSON column as the driver returned it (text on SQLite), made Python data."""
        return json.loads(value) if isinstance(value, str | bytes) else value

    # -- enqueue -------------------------------------------------------------------------

    def _values_sql(self, rows: int) -> str:
        one = "(" + ", ".join(self.json_param if c in _JSON_COLUMNS else "%s" for c in INSERT_COLUMNS) + ", %s, %s)"
        return ", ".join([one] * rows)

    def _insert_sql(self, source: str, dedupe: bool) -> str:
        return (f"INSERT INTO {TABLE} ({', '.join(INSERT_COLUMNS)}, created, updated, status, locked_by, "
                f"attempts, retries, last_error, errors, workers) "
                f"SELECT *, 'pending', '', 0, 0, '', '[]', '[]' FROM ({source}) AS v"
                # "WHERE true": SQLite reads "ON" after a bare SELECT as a join's
                + (f" WHERE true {_DEDUPE_CONFLICT}" if dedupe else "") + " RETURNING id")

    def insert_statements(self, rows: int, dedupe: bool) -> int:
        """How many statements ``insert`` sends for ``rows`` rows (one needs no transaction)."""
        if dedupe:
            return rows
        return -(-rows // self.insert_chunk)

    def insert(self, now: datetime, rows: Sequence[Sequence[Any]], dedupe: bool) -> list[int | None]:
        """Insert pending jobs (values in ``INSERT_COLUMNS`` order), created ``now``; return
        the new ids in the order of ``rows``, ``None`` for a row skipped because a pending
        job has its dedupe key. Idle dispatchers are told at commit (PostgreSQL)."""
        at = self.dt(now)
        ids: list[int | None] = []
        with self.connection.cursor() as cursor:
            if dedupe:  # which row was skipped is known only row by row
                sql = self._insert_sql(f"VALUES {self._values_sql(1)}", True)
                for row in rows:
                    cursor.execute(sql, [*row, at, at])
                    found = cursor.fetchone()
                    ids.append(found[0] if found else None)
                return ids
            for start in range(0, len(rows), self.insert_chunk):
                chunk = rows[start:start + self.insert_chunk]
                cursor.execute(self._insert_sql(f"VALUES {self._values_sql(len(chunk))}", False),
                               [v for row in chunk for v in (*row, at, at)])
                # ids come from the sequence in the order of the rows
                ids.extend(sorted(row[0] for row in cursor.fetchall()))
        return ids

    insert_chunk = 500

    #: ``insert_one``'s statements by ``dedupe``, each as ``(text, text in the driver's
    #: style)``, made at first use (per class)
    _one_row_statements: ClassVar[dict[bool, tuple[str, str]]]

    def insert_one(self, now: datetime, row: Sequence[Any], dedupe: bool, at: Any = None) -> int | None:
        """``insert`` of one row, an enqueue's: its id, or ``None`` when a pending job has its
        dedupe key. ``at``: ``dt(now)``, when the caller has it already. Its text is made
        once, and it runs on the driver's own cursor (``fetch``): Django's cursor, its
        wrapper and its rewriting of the statement cost about what the insert itself costs
        on SQLite."""
        if at is None:
            at = self.dt(now)
        sql, native = self._one_row_sql(dedupe)
        found = self.fetch(sql, [*row, at, at], native=native)
        return found[0][0] if found else None

    def _one_row_sql(self, dedupe: bool) -> tuple[str, str]:
        """``insert_one``'s statement and its text in the driver's style, made once per class."""
        made = type(self).__dict__.get("_one_row_statements")
        if made is None:
            made = {}
            for key in (False, True):
                sql = self._insert_sql(f"VALUES {self._values_sql(1)}", key)
                made[key] = (sql, self.native(sql))
            type(self)._one_row_statements = made
        return made[dedupe]

    def fetch(self, sql: str, params: Sequence[Any], native: str | None = None) -> list[tuple]:
        """Run ``sql`` (``%s`` parameters) and return its rows: on the driver's own cursor
        (``driver_cursor``), with Django's error classes, or on Django's cursor while queries
        are logged or wrapped. ``native``: ``native(sql)``, when the caller keeps it."""
        cursor = self.driver_cursor()
        if cursor is None:
            with self.connection.cursor() as django_cursor:
                django_cursor.execute(sql, params)
                return django_cursor.fetchall()
        connection = self.connection
        if connection.needs_rollback:
            connection.validate_no_broken_transaction()
        try:
            cursor.execute(self.native(sql) if native is None else native, params)
            # every row: a statement left open would keep SQLite's transaction open
            return cursor.fetchall()
        except Exception:
            with connection.wrap_database_errors:  # Django's error classes, as its cursor gives
                raise

    def native(self, sql: str) -> str:
        """``sql`` (``%s`` parameters, no literal ``%``) in the parameter style of the driver."""
        return sql

    def driver_cursor(self) -> Any:
        """The driver's own cursor on this thread's connection, kept for the connection's life;
        ``None`` while Django logs queries (DEBUG, a test counting them) or wraps them (an
        ``execute_wrapper`` other than the SQL guard, which leaves the queue's statements
        alone anyway): then Django's cursor must run the statement, so that they see it."""
        connection = self.connection
        if connection.queries_logged or any(wrapper is not guard for wrapper in connection.execute_wrappers):
            return None
        connection.close_if_health_check_failed()  # what Django's cursor() does first
        connection.ensure_connection()
        cursor = connection.__dict__.get("_jobs_cursor")
        if cursor is None or cursor.connection is not connection.connection:
            cursor = connection.__dict__["_jobs_cursor"] = self.new_driver_cursor(connection.connection)
        return cursor

    def new_driver_cursor(self, driver_connection: Any) -> Any:
        """A cursor of the driver's connection for ``driver_cursor``."""
        return driver_connection.cursor()

    def notify(self) -> None:
        """Wake idle dispatchers once the caller's transaction commits (PostgreSQL; an
        insert does it in its own statement)."""

    # -- maintenance ---------------------------------------------------------------------

    def refresh_statistics(self) -> None:
        """Bring the query planner's statistics of ``_jobs`` up to date, where the database
        does not keep them by itself (PostgreSQL's autovacuum does)."""

    # -- stats -------------------------------------------------------------------------

    def finished_estimate(self) -> int | None:
        """The completed and failed jobs as the database's statistics estimate them
        without counting (``None``: it keeps none)."""
        return None

    def id_span(self) -> int:
        """How many ids lie between the oldest job and the newest (two primary-key probes):
        the jobs there are, less those deleted in between."""
        with self.connection.cursor() as cursor:
            cursor.execute(f"SELECT (SELECT MAX(id) FROM {TABLE}) - (SELECT MIN(id) FROM {TABLE}) + 1")
            return cursor.fetchone()[0] or 0

    def count_finished(self, limit: int) -> list[tuple[str, str, int]]:
        """``(status, topic, count)`` of the completed and failed jobs, counting no more than
        ``limit`` of them (the sum is ``limit`` when there are more)."""
        return self._grouped(f"SELECT status, topic FROM {TABLE} WHERE {FINISHED_SQL} LIMIT %s", limit)

    def recently_finished(self, limit: int) -> list[tuple[str, str, int]]:
        """``(status, topic, count)`` of the ``limit`` jobs finished last (read from the index
        of finished jobs by age)."""
        return self._grouped(f"SELECT status, topic FROM {TABLE} WHERE {FINISHED_SQL} "
                             "ORDER BY finished_at DESC LIMIT %s", limit)

    def _grouped(self, source: str, limit: int) -> list[tuple[str, str, int]]:
        with self.connection.cursor() as cursor:
            cursor.execute(f"SELECT status, topic, COUNT(*) FROM ({source}) AS f GROUP BY status, topic", [limit])
            return cursor.fetchall()

    # -- dispatcher ----------------------------------------------------------------------

    def _topic_filter(self, topics: Sequence[str], task_backends: Sequence[str],
                      blocked_prefixes: Sequence[str], task_topics: Sequence[str] = (),
                      on: str = "") -> tuple[str, list[Any]]:
        """``topics``: handler topics; ``task_backends``: tasks of these ``TASKS`` aliases
        (only the ``task_topics`` among them, when given); ``blocked_prefixes``: task paths
        of disabled plugins. ``on`` qualifies the columns (``"k."``)."""
        parts: list[str] = []
        params: list[Any] = []
        if topics:
            parts.append(f"({on}task_backend = '' AND {on}topic IN ({', '.join(['%s'] * len(topics))}))")
            params.extend(topics)
        if task_backends:
            part = f"{on}task_backend IN ({', '.join(['%s'] * len(task_backends))})"
            params.extend(task_backends)
            if task_topics:
                part = f"({part} AND {on}topic IN ({', '.join(['%s'] * len(task_topics))}))"
                params.extend(task_topics)
            parts.append(part)
        sql = "(" + " OR ".join(parts) + ")" if parts else "1 = 0"
        for prefix in blocked_prefixes:
            sql += f" AND {on}topic NOT LIKE %s ESCAPE '\\'"
            params.append(like_escape(prefix) + "%")
        return sql, params

    def claim(self, worker: str, now: datetime, lease_until: datetime, limit: int, topics: Sequence[str],
              task_backends: Sequence[str] = (), blocked_prefixes: Sequence[str] = (),
              task_topics: Sequence[str] = ()) -> list[tuple]:
        """Mark up to ``limit`` due jobs as processing by ``worker``; return their
        ``CLAIMED_COLUMNS``, highest priority first, then oldest ``run_at``.

        It reads the pending jobs' distinct topics (``PENDING_KEYS``), keeps those this
        worker takes, and takes up to ``limit`` due jobs of each in the order of the index
        before choosing among them: its cost grows with the topics, not with the due jobs
        of the topics it does not take (a disabled plugin's, another worker's)."""
        where, params = self._topic_filter(topics, task_backends, blocked_prefixes, task_topics, on="k.")
        at = self.dt(now)
        sql = (f"UPDATE {TABLE} SET status = 'processing', locked_by = %s, locked_until = %s, "
               f"attempts = attempts + 1, workers = {self.append_worker}, "
               "started_at = COALESCE(started_at, %s), attempted_at = %s, updated = %s "
               f"WHERE id IN ({self._claim_choice(where)}){self.claim_recheck} "
               f"RETURNING {', '.join(CLAIMED_COLUMNS)}")
        rows = self._run_claim(sql, [worker, self.dt(lease_until), worker, at, at, at, at, limit, *params, limit])
        # RETURNING follows no order: put them back in the order they were chosen
        rows.sort(key=lambda row: (-row[3], row[5]))
        return rows

    def _pending(self) -> str:
        """The table, read through the index of pending jobs by topic where the vendor says so."""
        return TABLE + self.pending_index

    def _pending_keys(self) -> str:
        """``PENDING_KEYS`` for this database."""
        return PENDING_KEYS.format(pending=self._pending())

    def _claim_choice(self, where: str) -> str:
        """The sub-select of the ids a claim takes: of each pending key that ``where``
        (on ``k``) keeps, its first due jobs in the index's order, then the first of all.
        Parameters: now, the limit, ``where``'s, the limit."""
        # CROSS JOIN: SQLite then keeps the keys the outer loop (it could choose to walk
        # every job and look its key up otherwise)
        return (f"{self._pending_keys()}SELECT j.id FROM pending_keys AS k CROSS JOIN {TABLE} AS j WHERE j.id IN ("
                f"SELECT id FROM {self._pending()} WHERE status = 'pending' AND task_backend = k.task_backend "
                "AND topic = k.topic AND run_at <= %s ORDER BY priority DESC, run_at LIMIT %s) "
                f"AND {where} ORDER BY j.priority DESC, j.run_at LIMIT %s")

    def _run_claim(self, sql: str, params: list[Any]) -> list[tuple]:
        with self.connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()

    def complete(self, worker: str, now: datetime, outcomes: Sequence[tuple]) -> set[int]:
        """Mark jobs completed with their JSON results; return the ids still owned (written).

        Each outcome is ``(id, result JSON)`` or ``(id, result JSON, attempt)``: with the
        attempt, only a job still at that attempt is written (a dispatcher that got its own
        lapsed job back cannot finish the new claim with the old run's outcome)."""
        raise NotImplementedError

    def fail(self, worker: str, now: datetime, job_id: int, error: dict[str, Any], retry_at: datetime | None,
             attempt: int | None = None) -> bool:
        """Record a failed attempt: back to pending at ``retry_at``, or failed for good.
        With ``attempt``, only if the job is still at that attempt (the claim's fence)."""
        status = "pending" if retry_at is not None else "failed"
        key = f"dedupe_key = {_YIELD_KEY}, " if retry_at is not None else ""
        sql = (f"UPDATE {TABLE} SET status = %s, run_at = COALESCE(%s, run_at), {key}"
               "retries = retries + %s, last_error = %s, errors = " + self.append_error + ", "
               "locked_until = NULL, finished_at = %s, updated = %s "
               "WHERE id = %s AND locked_by = %s AND status = 'processing'")
        params = [status, self.dt(retry_at) if retry_at else None, 1 if retry_at else 0, error["traceback"],
                  json.dumps(error), None if retry_at else self.dt(now), self.dt(now), job_id, worker]
        if attempt is not None:
            sql += " AND attempts = %s"
            params.append(attempt)
        with self.connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.rowcount == 1

    def extend(self, worker: str, now: datetime, lease_until: datetime) -> set[tuple[int, int]]:
        """Renew the lease of every job ``worker`` holds; return them as ``(id, attempt)``
        claims. A claim the caller holds and this does not return is lost: its lease ran
        out and another worker (or the recovery) took the job."""
        with self.connection.cursor() as cursor:
            cursor.execute(f"UPDATE {TABLE} SET locked_until = %s WHERE locked_by = %s AND status = 'processing' "
                           "RETURNING id, attempts", [self.dt(lease_until), worker])
            return {(job_id, attempt) for job_id, attempt in cursor.fetchall()}

    def release(self, worker: str, now: datetime, claims: Sequence[tuple[int, int]], started: bool) -> int:
        """Return claimed jobs, given as ``(id, attempt)``, to pending. A job that never
        started gets its attempt back; one that was interrupted keeps it. Fenced like an
        outcome: a job another worker (or a later claim) holds now is left alone."""
        if not claims:
            return 0
        undo = "" if started else (
            f", attempts = attempts - 1, workers = {self.drop_last_worker}, "
            "started_at = CASE WHEN attempts = 1 THEN NULL ELSE started_at END, "
            "attempted_at = CASE WHEN attempts = 1 THEN NULL ELSE attempted_at END")
        sql = (f"UPDATE {TABLE} SET status = 'pending', locked_by = '', locked_until = NULL, "
               f"dedupe_key = {_YIELD_KEY}, updated = %s{undo} WHERE locked_by = %s AND status = 'processing' "
               "AND (id, attempts) IN (VALUES {claims})")
        return self._one_by_one_on_conflict(sql, [self.dt(now), worker], list(claims))

    def _one_by_one_on_conflict(self, sql: str, params: list[Any], claims: list[tuple[int, int]]) -> int:
        """Run ``sql`` (with ``{claims}``) for all the claims at once; when two of them hold
        one dedupe key (the statement cannot see its own rows), one claim at a time instead."""
        try:
            with transaction.atomic(using=self.using), self.connection.cursor() as cursor:
                cursor.execute(sql.format(claims=", ".join(["(%s, %s)"] * len(claims))),
                               [*params, *(value for claim in claims for value in claim)])
                return cursor.rowcount
        except IntegrityError:
            done = 0
            with transaction.atomic(using=self.using), self.connection.cursor() as cursor:
                for claim in claims:
                    cursor.execute(sql.format(claims="(%s, %s)"), [*params, *claim])
                    done += cursor.rowcount
            return done

    def recover(self, now: datetime) -> tuple[int, int]:
        """Jobs whose lease ran out (their worker died): back to pending, or failed when
        they used up their retries. Return (requeued, failed)."""
        error = json.dumps({"exception_class_path": LOST_CLASS_PATH, "traceback": LOST_MESSAGE,
                            "at": now.isoformat()})
        sql = (f"UPDATE {TABLE} SET "
               "status = CASE WHEN attempts > max_retries THEN 'failed' ELSE 'pending' END, "
               "retries = retries + CASE WHEN attempts > max_retries THEN 0 ELSE 1 END, "
               "finished_at = CASE WHEN attempts > max_retries THEN %s ELSE NULL END, "
               f"dedupe_key = CASE WHEN attempts > max_retries THEN dedupe_key ELSE {_YIELD_KEY} END, "
               f"last_error = '{LOST_MESSAGE}', "
               "errors = " + self.append_error + ", locked_by = '', locked_until = NULL, updated = %s "
               "WHERE status = 'processing' AND locked_until < %s{only} RETURNING status")
        params = [self.dt(now), error, self.dt(now), self.dt(now)]
        try:
            with transaction.atomic(using=self.using), self.connection.cursor() as cursor:
                cursor.execute(sql.format(only=""), params)
                statuses = [row[0] for row in cursor.fetchall()]
        except IntegrityError:  # two lapsed jobs with one dedupe key: one at a time
            statuses = []
            with transaction.atomic(using=self.using), self.connection.cursor() as cursor:
                cursor.execute(f"SELECT id FROM {TABLE} WHERE status = 'processing' AND locked_until < %s",
                               [self.dt(now)])
                for (job_id,) in cursor.fetchall():
                    cursor.execute(sql.format(only=" AND id = %s"), [*params, job_id])
                    statuses += [row[0] for row in cursor.fetchall()]
        return statuses.count("pending"), statuses.count("failed")


def attempt_of(outcome: tuple) -> int | None:
    """The attempt an outcome of ``complete`` is fenced with, if any."""
    return outcome[2] if len(outcome) > 2 else None


def like_escape(text: str) -> str:
    """``text`` matched literally by ``LIKE ... ESCAPE '\\'``."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
