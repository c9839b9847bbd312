"""The queries of finished jobs on SQLite with a million of them: the prune of an hour and
the job dashboard's chart, against the same statements forced onto their partial index.

    .venv/bin/python bench/jobs_indexes.py                      # a temporary SQLite file
    .venv/bin/python bench/jobs_indexes.py --jobs 100000
    # before: the code of another commit, the same table and statements
    mkdir /tmp/indexes-before && git archive 69e0dc5 | tar -x -C /tmp/indexes-before
    BENCH_ROOT=/tmp/indexes-before .venv/bin/python bench/jobs_indexes.py

``_jobs`` is filled by one ``INSERT ... SELECT`` with ``--jobs`` rows spread evenly over the
last seven days and one hour (``JOBS["RETENTION"]`` plus the hour the prune removes): 93%
completed, 5% failed, 1% pending and due, 1% processing, 22 topics. Each figure is measured
twice: first as SQLite starts, without statistics (no ``sqlite_stat1``), then after
``ANALYZE "_jobs"``.

- prune of an hour: ``JobStore.prune()`` of the jobs older than the retention, about
  ``--jobs / 169`` of them, in batches of 1,000, inside a transaction rolled back afterwards
  (so each of the ``--repeat`` runs has the same rows; the best counts). Its time per batch
  (a SELECT of ids and a DELETE) is the call's time less whatever else it sends (an
  ``ANALYZE`` first), divided by the batches; the whole call counts everything.
- chart: ``plugins_admin.charts.finished_per_minute(now)``, the last 60 minutes.

The anchor runs the same statements through the same connection with ``INDEXED BY
jobs_finished_age`` (SQLite uses that index whatever its statistics say; the prune's
DELETE ``NOT INDEXED``, by primary key) and the status values written in the SQL: the
cost of the plan the code aims at.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(os.environ.get("BENCH_ROOT", Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(ROOT))
from bench import fills  # noqa: E402 (after the path it is found on)
from bench.demo_site import use_demo_site  # noqa: E402

use_demo_site()
os.environ.setdefault("TACHYCORE_LOG_LEVEL", "WARNING")

SPAN_SECONDS = fills.SPAN_SECONDS  # the retention (7 days) and the hour the prune removes
BATCH = 1000
FINISHED_SQL = "status IN ('completed', 'failed')"


def fill(connection, count: int) -> None:
    """``count`` jobs in one statement, the newest finished now, the oldest seven days and an
    hour ago (datetimes as Django's SQLite backend writes them)."""
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM _jobs")
        cursor.execute(
            fills.numbers(connection) + ", t(g, at, kind) AS (SELECT g, "
            + fills.seconds_ago(connection, "g * %s / %s") + ", g %% 100 FROM s) "
            "INSERT INTO _jobs (topic, payload, status, priority, queue_name, run_at, locked_until, locked_by, "
            "attempts, retries, max_retries, last_error, errors, result, dedupe_key, task_backend, workers, "
            "created, updated, started_at, attempted_at, finished_at, trace_context) "
            "SELECT 'bench.topic' || (g %% 22), '{}', "
            "CASE WHEN kind < 93 THEN 'completed' WHEN kind < 98 THEN 'failed' "
            "WHEN kind < 99 THEN 'pending' ELSE 'processing' END, 0, 'default', at, "
            "CASE WHEN kind = 99 THEN " + fills.seconds_ago(connection, "-60") + " END, "
            "CASE WHEN kind = 99 THEN 'bench-worker' ELSE '' END, 1, 0, 3, '', '[]', NULL, NULL, '', '[]', "
            "at, at, at, at, CASE WHEN kind < 98 THEN at END, '{}' FROM t",
            [count, SPAN_SECONDS, count],
        )


def forget_statistics(connection) -> None:
    """As SQLite starts: no ``sqlite_stat1`` (dropping it resets what the connection loaded)."""
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS sqlite_stat1")


def analyze(connection) -> float:
    start = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute('ANALYZE "_jobs"')
    return time.perf_counter() - start


def best(repeat: int, run: Callable[[], tuple[float, ...]]) -> tuple[float, ...]:
    """The run with the smallest first figure among ``repeat``."""
    return min((run() for _ in range(repeat)), key=lambda figures: figures[0])


def rolled_back(connection, work: Callable[[], tuple[float, ...]]) -> tuple[float, ...]:
    """``work()``'s figures, its writes undone."""
    from django.db import transaction

    with transaction.atomic():
        figures = work()
        transaction.set_rollback(True)
    return figures


def prune_ours(connection) -> tuple[float, float, int]:
    """``(seconds per batch, seconds in all, batches)`` of ``JobStore.prune()``; a batch's
    time is the call's, less what it sends besides the batches (the ``ANALYZE``), shared out."""
    import jobs

    other = [0.0]
    batches = [0]

    def timed(execute, sql, params, many, context):
        batches[0] += sql.startswith("DELETE")
        if sql.startswith(("SELECT", "DELETE")):
            return execute(sql, params, many, context)
        start = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            other[0] += time.perf_counter() - start

    start = time.perf_counter()
    with connection.execute_wrapper(timed):
        pruned = jobs.get_job_store().prune(older_than=7 * 86400)
    total = time.perf_counter() - start
    assert pruned > 0, "nothing to prune: the table holds no job older than the retention"
    return (total - other[0]) / max(batches[0], 1), total, batches[0]


def prune_anchor(connection) -> tuple[float, float, int]:
    """The prune's two statements per batch: the SELECT on the index of finished jobs by age,
    the DELETE by primary key (``NOT INDEXED`` leaves SQLite only the rowid)."""
    import datetime

    from django.utils import timezone

    cutoff = connection.ops.adapt_datetimefield_value(timezone.now() - datetime.timedelta(days=7))
    batches = 0
    start = time.perf_counter()
    with connection.cursor() as cursor:
        while True:
            cursor.execute(f'SELECT id FROM "_jobs" INDEXED BY jobs_finished_age WHERE {FINISHED_SQL} '
                           "AND finished_at < %s LIMIT %s", [cutoff, BATCH])
            ids = [row[0] for row in cursor.fetchall()]
            if not ids:
                break
            cursor.execute(f'DELETE FROM "_jobs" NOT INDEXED WHERE id IN ({", ".join(["%s"] * len(ids))}) AND {FINISHED_SQL}',
                           ids)
            batches += 1
    total = time.perf_counter() - start
    return total / max(batches, 1), total, batches


def chart_ours(connection) -> tuple[float]:
    from django.utils import timezone

    from plugins_admin.charts import finished_per_minute

    start = time.perf_counter()
    minutes = finished_per_minute(timezone.now())
    took = time.perf_counter() - start
    assert sum(m.completed + m.failed for m in minutes) > 0, "no job finished in the last hour"
    return (took,)


def chart_anchor(connection) -> tuple[float]:
    """The chart's grouped count, on the index of finished jobs by age."""
    import datetime

    from django.utils import timezone

    last = timezone.now().astimezone(datetime.UTC).replace(second=0, microsecond=0)
    first = last - datetime.timedelta(minutes=59)
    dt = connection.ops.adapt_datetimefield_value
    start = time.perf_counter()
    with connection.cursor() as cursor:
        # the minute as the ORM truncates it (Django's SQLite function), so that only the plan differs
        cursor.execute("SELECT django_datetime_trunc('minute', finished_at, 'UTC', 'UTC') AS minute, status, "
                       f'COUNT(id) FROM "_jobs" INDEXED BY jobs_finished_age WHERE {FINISHED_SQL} '
                       "AND finished_at >= %s AND finished_at < %s GROUP BY 1, 2",
                       [dt(first), dt(last + datetime.timedelta(minutes=1))])
        cursor.fetchall()
    return (time.perf_counter() - start,)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1_000_000, help="rows in _jobs")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each figure (the best counts)")
    args = parser.parse_args()

    import django

    django.setup()
    import sqlite3

    from django.core.management import call_command
    from django.db import connection

    if connection.vendor != "sqlite":
        sys.exit("bench/jobs_indexes.py measures SQLite's query planner: run it without DATABASE_URL "
                 "or with a sqlite:/// one")
    call_command("migrate", verbosity=0)
    start = time.perf_counter()
    fill(connection, args.jobs)
    print(f"SQLite {sqlite3.sqlite_version}, {args.jobs:,} jobs written in {time.perf_counter() - start:.1f} s, "
          f"code in {ROOT}, load average {os.getloadavg()[0]:.2f}")

    rows = []
    for state in ("no statistics", "statistics"):
        if state == "no statistics":
            forget_statistics(connection)
        else:
            print(f'ANALYZE "_jobs": {ms(analyze(connection))}')
        # the prune first: the chart after a prune that ANALYZEd (rolled back) would not start bare
        ours = best(args.repeat, lambda: rolled_back(connection, lambda: prune_ours(connection)))
        forget_statistics(connection) if state == "no statistics" else analyze(connection)
        anchor = best(args.repeat, lambda: rolled_back(connection, lambda: prune_anchor(connection)))
        rows.append((f"prune of an hour, per batch ({state})", ours[0], anchor[0]))
        rows.append((f"prune of an hour, all {ours[2]} batch(es) ({state})", ours[1], anchor[1]))
        forget_statistics(connection) if state == "no statistics" else analyze(connection)
        ours = best(args.repeat, lambda: chart_ours(connection))
        anchor = best(args.repeat, lambda: chart_anchor(connection))
        rows.append((f"chart of the last hour ({state})", ours[0], anchor[0]))

    print(f"\n| {'':<48} | {'ours':>12} | {'anchor (INDEXED BY)':>19} | {'ours / anchor':>13} |")
    print(f"| {'-' * 48} | {'-' * 11}: | {'-' * 18}: | {'-' * 12}: |")
    for name, ours_seconds, anchor_seconds in rows:
        print(f"| {name:<48} | {ms(ours_seconds):>12} | {ms(anchor_seconds):>19} | "
              f"{ours_seconds / anchor_seconds:>12.1f}x |")
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
