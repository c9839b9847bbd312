"""The systems ``bench/jobs.py`` drives: ours, the peers, and the bare two-statement loop.

Each ``System`` says how to enqueue a no-op job (one by one and, where it can, in
bulk) and a job that reports its start, how many of its jobs are finished, and
which worker processes run them. ``Bare`` is the anchor: raw statements through
the driver on a table of ``_jobs``'s shape, no Django in between.
"""

from __future__ import annotations

import re
import threading
import time
import uuid

BARE = "bench_bare_jobs"


def sql(statement: str, params: list | tuple = ()) -> list[tuple]:
    """Run one statement on Django's connection (autocommit); its rows, if any."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


def count(table: str, where: str) -> int:
    return sql(f'SELECT COUNT(*) FROM "{table}" WHERE {where}')[0][0]


def clear(*tables: str) -> None:
    from django.db import connection

    for table in tables:
        if connection.vendor == "postgresql":
            sql(f'TRUNCATE "{table}" CASCADE')
        else:
            sql(f'DELETE FROM "{table}"')


# -- the systems -------------------------------------------------------------------------------

class System:
    """One queue as the bench drives it."""

    name = ""
    postgres_only = False
    tables: tuple[str, ...] = ()

    def enqueue_one(self, i: int) -> None:
        raise NotImplementedError

    def enqueue_bulk(self, n: int) -> bool:
        """Enqueue n no-op jobs in one go; False when the system has no bulk way."""
        return False

    def enqueue_pickup(self, sample: int) -> None:
        raise NotImplementedError

    def finished(self) -> int:
        raise NotImplementedError

    def commands(self, workers: int, drain: bool) -> list[list[str]]:
        """The worker processes to start (``drain``: for the drain, else for the pickup)."""
        raise NotImplementedError

    def poll_period(self, vendor: str) -> float:
        """How often an idle worker looks for jobs by itself (0: it is woken by NOTIFY)."""
        return 0.0

    def note(self, workers: int) -> str:
        return ""


class Ours(System):
    name = "jobs (ours)"
    tables = ("_jobs",)

    def __init__(self) -> None:
        import jobs

        self.store = jobs.get_job_store()

    def enqueue_one(self, i):
        self.store.enqueue("bench.noop", {"i": i})

    def enqueue_bulk(self, n):
        self.store.enqueue_many([{"topic": "bench.noop", "payload": {"i": i}} for i in range(n)])
        return True

    def enqueue_pickup(self, sample):
        self.store.enqueue("bench.pickup", {"sample": sample})

    def finished(self):
        return count("_jobs", "status IN ('completed', 'failed')")

    def commands(self, workers, drain):
        return [["runjobs", "--workers", str(workers)]]

    def poll_period(self, vendor):
        from jobs.conf import jobs_settings

        return 0.0 if vendor == "postgresql" else jobs_settings.POLL_INTERVAL

    def note(self, workers):
        from jobs.conf import jobs_settings

        return (f"`runjobs --workers {workers}` (one process, {workers} threads, BATCH_SIZE "
                f"{jobs_settings.BATCH_SIZE}, POLL_INTERVAL {jobs_settings.POLL_INTERVAL:g} s)")


class Procrastinate(System):
    name = "procrastinate"
    postgres_only = True
    tables = ("procrastinate_jobs",)

    def __init__(self) -> None:
        from bench.jobs_site import procrastinate_tasks

        self.tasks = procrastinate_tasks

    def enqueue_one(self, i):
        self.tasks.noop.defer(i=i)

    def enqueue_bulk(self, n):
        self.tasks.noop.batch_defer(*({"i": i} for i in range(n)))
        return True

    def enqueue_pickup(self, sample):
        self.tasks.pickup.defer(sample=sample)

    def finished(self):
        return count("procrastinate_jobs", "status IN ('succeeded', 'failed')")

    def commands(self, workers, drain):
        return [["procrastinate", "worker", "--concurrency", str(workers)]]

    def note(self, workers):
        return f"`procrastinate worker --concurrency {workers}` (one process, LISTEN/NOTIFY)"


class DjangoQ(System):
    name = "django-q2"
    tables = ("django_q_task", "django_q_ormq")

    def enqueue_one(self, i):
        from django_q.tasks import async_task

        async_task("bench.jobs_site.tasks.q_noop", i)

    def enqueue_pickup(self, sample):
        from django_q.tasks import async_task

        async_task("bench.jobs_site.tasks.q_pickup", sample)

    def finished(self):
        return count("django_q_task", "1 = 1")

    def commands(self, workers, drain):
        return [["qcluster"]]

    def poll_period(self, vendor):
        return 0.2  # django-q2's default "poll"

    def note(self, workers):
        from django.conf import settings

        return (f"`qcluster` (ORM broker, {settings.Q_CLUSTER['workers']} worker processes, "
                "polls every 0.2 s; no bulk enqueue)")


class TasksDB(System):
    name = "django-tasks-db"
    tables = ("django_tasks_db_dbtaskresult",)

    def __init__(self) -> None:
        from django_tasks_db.models import DBTaskResult

        from bench.jobs_site import tasks

        self.tasks = tasks
        self.model = DBTaskResult
        self.tables = (DBTaskResult._meta.db_table,)

    def enqueue_one(self, i):
        self.tasks.db_noop.enqueue(i)

    def enqueue_bulk(self, n):
        # django.tasks has no bulk enqueue: rows built as its backend builds them, one bulk_create
        from django_tasks_db.models import get_date_max

        task = self.tasks.db_noop
        self.model.objects.bulk_create([
            self.model(id=uuid.uuid4(), args_kwargs={"args": [i], "kwargs": {}}, priority=task.priority,
                       task_path=task.module_path, queue_name=task.queue_name, run_after=get_date_max(),
                       backend_name="db") for i in range(n)], batch_size=1000)
        return True

    def enqueue_pickup(self, sample):
        self.tasks.db_pickup.enqueue(sample)

    def finished(self):
        return count(self.tables[0], "status IN ('SUCCESSFUL', 'FAILED')")

    def commands(self, workers, drain):
        # its random start-up delay (up to 1 s) spreads the polls of its processes; for the drain
        # it is left out, so that the clock does not count it
        command = ["db_worker", "--backend", "db", "--no-reload", "-v", "0"]
        return [[*command, "--no-startup-delay"] if drain else command for _ in range(workers)]

    def poll_period(self, vendor):
        return 1.0  # db_worker's default --interval

    def note(self, workers):
        return (f"{workers} `db_worker --backend db` processes (one task at a time each, each polls every 1 s; "
                "bulk: `bulk_create` of its model, it has no bulk enqueue)")


# -- the anchor: the bare two-statement loop -----------------------------------------------------

class Bare:
    """Raw statements through the driver on a copy of ``_jobs``'s shape, no Django in between."""

    COLUMNS = ("topic", "payload", "status", "priority", "queue_name", "run_at", "locked_by", "attempts",
               "retries", "max_retries", "last_error", "errors", "dedupe_key", "task_backend", "workers",
               "created", "updated", "trace_context")

    def __init__(self) -> None:
        from django.db import connection

        self.vendor = connection.vendor
        self.params = connection.get_connection_params()
        if self.vendor == "postgresql":
            sql(f'DROP TABLE IF EXISTS "{BARE}"')
            sql(f'CREATE TABLE "{BARE}" (LIKE "_jobs" INCLUDING ALL)')  # columns, defaults, partial indexes
        else:
            sql(f'DROP TABLE IF EXISTS "{BARE}"')
            for (statement,) in sql("SELECT sql FROM sqlite_master WHERE tbl_name = '_jobs' AND sql IS NOT NULL"):
                statement = statement.replace('"_jobs"', f'"{BARE}"')
                statement = re.sub(r'INDEX "(\w+)"', r'INDEX "bare_\1"', statement)
                sql(statement)
        self.tables = (BARE,)

    def connect(self):
        """A new driver connection in autocommit mode."""
        if self.vendor == "postgresql":
            import psycopg

            params = {k: v for k, v in self.params.items()
                      if k not in ("cursor_factory", "context", "prepare_threshold")}
            return psycopg.connect(**params, autocommit=True)
        import sqlite3

        conn = sqlite3.connect(self.params["database"], isolation_level=None, timeout=20,
                               check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    def _now(self) -> str:
        from datetime import UTC, datetime

        return datetime.now(UTC).isoformat(sep=" ")

    def insert_sql(self, rows: int) -> str:
        mark = "%s" if self.vendor == "postgresql" else "?"
        one = "(" + ", ".join([mark] * len(self.COLUMNS)) + ")"
        return (f'INSERT INTO "{BARE}" ({", ".join(self.COLUMNS)}) VALUES '
                + ", ".join([one] * rows) + " RETURNING id")

    def row(self, i: int, now) -> list:
        return ["bench.noop", f'{{"i": {i}}}', "pending", 0, "default", now, "", 0, 0, 3, "", "[]", None,
                "", "[]", now, now, "{}"]

    def enqueue_one_rate(self, n: int) -> float:
        conn = self.connect()
        statement = self.insert_sql(1)
        start = time.perf_counter()
        for i in range(n):
            conn.execute(statement, self.row(i, self._now())).fetchone()
        elapsed = time.perf_counter() - start
        conn.close()
        return n / elapsed

    #: PostgreSQL: the SQL type of each column, for the bulk insert from arrays
    TYPES = ("text", "jsonb", "text", "smallint", "text", "timestamptz", "text", "integer", "integer",
             "integer", "text", "jsonb", "text", "text", "jsonb", "timestamptz", "timestamptz", "jsonb")

    def enqueue_bulk_rate(self, n: int, chunk: int = 1000) -> float:
        """Jobs/s of one transaction of bulk inserts returning the ids: on PostgreSQL one
        statement whose columns travel as arrays (``INSERT ... SELECT ... FROM unnest(...)``,
        one parameter per column whatever the count), on SQLite multi-row ``VALUES`` of
        ``chunk`` rows."""
        conn = self.connect()
        start = time.perf_counter()
        now = self._now()
        rows = [self.row(i, now) for i in range(n)]
        conn.execute("BEGIN")
        if self.vendor == "postgresql":
            arrays = ", ".join(f"%s::{kind}[]" for kind in self.TYPES)
            conn.execute(f'INSERT INTO "{BARE}" ({", ".join(self.COLUMNS)}) SELECT * FROM unnest({arrays}) '
                         "RETURNING id", [list(column) for column in zip(*rows, strict=True)]).fetchall()
        else:
            for first in range(0, n, chunk):
                part = rows[first:first + chunk]
                conn.execute(self.insert_sql(len(part)), [v for row in part for v in row]).fetchall()
        conn.execute("COMMIT")
        elapsed = time.perf_counter() - start
        conn.close()
        return n / elapsed

    def statements(self) -> tuple[str, str]:
        if self.vendor == "postgresql":
            claim = (f'UPDATE "{BARE}" SET status = \'processing\', locked_by = %s, '
                     "locked_until = now() + interval '60 seconds', attempts = attempts + 1, "
                     "started_at = now(), attempted_at = now(), updated = now() "
                     f'WHERE id = (SELECT id FROM "{BARE}" WHERE status = \'pending\' AND run_at <= now() '
                     "ORDER BY priority DESC, run_at LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id, topic, payload")
            finish = (f'UPDATE "{BARE}" SET status = \'completed\', locked_until = NULL, finished_at = now(), '
                      "updated = now() WHERE id = %s AND locked_by = %s AND status = 'processing'")
            return claim, finish
        claim = (f'UPDATE "{BARE}" SET status = \'processing\', locked_by = ?, '
                 "locked_until = datetime('now', '+60 seconds'), attempts = attempts + 1, "
                 "started_at = datetime('now'), attempted_at = datetime('now'), updated = datetime('now') "
                 f'WHERE id = (SELECT id FROM "{BARE}" WHERE status = \'pending\' AND run_at <= ? '
                 "ORDER BY priority DESC, run_at LIMIT 1) AND status = 'pending' RETURNING id, topic, payload")
        finish = (f'UPDATE "{BARE}" SET status = \'completed\', locked_until = NULL, '
                  "finished_at = datetime('now'), updated = datetime('now') "
                  "WHERE id = ? AND locked_by = ? AND status = 'processing'")
        return claim, finish

    def drain_rate(self, n: int, workers: int) -> float:
        claim, finish = self.statements()
        conns = [self.connect() for _ in range(workers)]
        go = threading.Barrier(workers + 1)
        done = [0] * workers

        def work(number: int) -> None:
            conn, me = conns[number], f"bare-{number}"
            args = [me] if self.vendor == "postgresql" else [me, self._now()]
            go.wait()
            while True:
                row = conn.execute(claim, args).fetchone()
                if row is None:
                    return
                conn.execute(finish, [row[0], me])
                done[number] += 1

        threads = [threading.Thread(target=work, args=(k,)) for k in range(workers)]
        for thread in threads:
            thread.start()
        go.wait()
        start = time.perf_counter()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - start
        for conn in conns:
            conn.close()
        assert sum(done) == n == count(BARE, "status = 'completed'"), (done, n)
        return n / elapsed
