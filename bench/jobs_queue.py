"""The queue's own reads at 10,000 and at a million jobs: ``JobStore.stats()``, a claim
and the idle poll, with 5,000 due jobs this dispatcher may not take, on the database of
``DATABASE_URL`` (a temporary SQLite file without it).

    .venv/bin/python bench/jobs_queue.py
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/h_bench .venv/bin/python bench/jobs_queue.py
    # the code of another commit on the same rows (migrated by that code)
    mkdir /tmp/queue-before && git archive 6150d7e | tar -x -C /tmp/queue-before
    BENCH_ROOT=/tmp/queue-before .venv/bin/python bench/jobs_queue.py
    # parking (approach b, simulated): the blocked jobs moved out of "pending" before measuring
    BENCH_ROOT=/tmp/queue-before .venv/bin/python bench/jobs_queue.py --park

At each size ``_jobs`` is filled by one ``INSERT ... SELECT``: 5,000 pending jobs due for an
hour that the measured dispatcher does not take (2,000 of a disabled plugin's handler
topic, 1,000 of its ``django.tasks`` tasks, 2,000 of topics another worker's ``--topics``
takes), 200 due and 300 not yet due of the 20 topics it takes, 100 processing, and the rest
finished over the last seven days (95% completed, 5% failed). Then the statistics the
database keeps (PostgreSQL: ``VACUUM ANALYZE``, as autovacuum leaves it; SQLite:
``ANALYZE``, as the prune leaves it).

- ``stats()``: ``JobStore.stats()``.
- claim: ``Statements.claim`` of a batch of 10 for the dispatcher (its handler topics,
  the ``default`` task backend, the disabled plugin's task paths blocked), rolled back.
- idle poll: the same claim when none of its jobs is due (the 200 due ones pushed an hour
  ahead, rolled back): what an idle dispatcher sends every ``POLL_INTERVAL``.

Each figure is the median of ``--repeat`` calls; the anchor of each is its figure at
10,000 jobs, and the ratio the figure at a million over it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(os.environ.get("BENCH_ROOT", Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(ROOT))
from bench.demo_site import use_demo_site  # noqa: E402 (after the path it is found on)

use_demo_site()
os.environ.setdefault("TACHYCORE_LOG_LEVEL", "WARNING")

SIZES = (10_000, 1_000_000)
TOPICS = [f"bench.topic{n}" for n in range(20)]
BACKENDS = ["default"]
BLOCKED_PREFIXES = ["bench_off."]
WORKER = "bench-worker"
#: (topic, task backend, how many, due): the due jobs this dispatcher does not take
BLOCKED = [("bench_off.handler", "", 2000), ("bench_off.tasks.work", "default", 1000),
           ("other.topic0", "", 1000), ("other.topic1", "", 1000)]
BLOCKED_COUNT = sum(n for *_, n in BLOCKED)
RUNNABLE_DUE = 200
RUNNABLE_LATER = 300
PROCESSING = 100
SPAN_SECONDS = 7 * 86400

_COLUMNS = ("topic, payload, status, priority, queue_name, run_at, locked_until, locked_by, attempts, retries, "
            "max_retries, last_error, errors, result, dedupe_key, task_backend, workers, created, updated, "
            "started_at, attempted_at, finished_at, trace_context")


def _kinds() -> list[tuple[int, str, str, str, str]]:
    """``(first serial number, topic SQL, task backend, status, run_at offset in seconds)`` of
    the live jobs, numbered from 0 (the finished ones follow)."""
    kinds, start = [], 0
    for topic, backend, count in BLOCKED:
        kinds.append((start, count, f"'{topic}'", backend, "pending", -3600))
        start += count
    for count, status, offset in ((RUNNABLE_DUE, "pending", -3600), (RUNNABLE_LATER, "pending", 3600),
                                  (PROCESSING, "processing", -60)):
        kinds.append((start, count, None, "", status, offset))
        start += count
    return kinds


def fill(connection, count: int) -> None:
    """``count`` jobs as the module says, in one statement."""
    pg = connection.vendor == "postgresql"
    live = sum(kind[1] for kind in _kinds())
    assert count > live, f"at least {live + 1} jobs"
    topic_of_g = "'bench.topic' || (g % 20)"
    cases_topic, cases_status, cases_backend, cases_offset = [], [], [], []
    for start, n, topic, backend, status, offset in _kinds():
        when = f"WHEN g < {start + n}"
        cases_topic.append(f"{when} THEN {topic or topic_of_g}")
        cases_backend.append(f"{when} THEN '{backend}'")
        cases_status.append(f"{when} THEN '{status}'")
        cases_offset.append(f"{when} THEN {offset}")
    topic = f"CASE {' '.join(cases_topic)} ELSE {topic_of_g} END"
    backend = f"CASE {' '.join(cases_backend)} ELSE '' END"
    status = f"CASE {' '.join(cases_status)} WHEN g % 20 = 0 THEN 'failed' ELSE 'completed' END"
    # finished jobs: the oldest first (lower ids), spread over SPAN_SECONDS up to now
    age = f"(CASE {' '.join(cases_offset)} ELSE -{SPAN_SECONDS} + (g - {live}) * {SPAN_SECONDS} / {count - live} END)"
    if pg:
        at = f"(now() + make_interval(secs => {age}))"
        source = f"generate_series(0::bigint, {count - 1}) AS s(g)"
        json_empty, json_list = "'{}'::jsonb", "'[]'::jsonb"
        prefix = ""
    else:
        at = f"strftime('%Y-%m-%d %H:%M:%f', 'now', {age} || ' seconds')"
        source = "s"
        json_empty, json_list = "'{}'", "'[]'"
        prefix = f"WITH RECURSIVE s(g) AS (SELECT 0 UNION ALL SELECT g + 1 FROM s WHERE g < {count - 1}) "
    finished = f"CASE WHEN {status} IN ('completed', 'failed') THEN {at} END"
    # the live jobs are the oldest rows (lowest ids), the finished ones were written after
    sql = (f"{prefix}INSERT INTO _jobs ({_COLUMNS}) SELECT {topic}, {json_empty}, {status}, 0, 'default', {at}, "
           f"CASE WHEN {status} = 'processing' THEN {at} END, "
           f"CASE WHEN {status} = 'processing' THEN '{WORKER}' ELSE '' END, 1, 0, 3, '', {json_list}, NULL, NULL, "
           f"{backend}, {json_list}, {at}, {at}, {at}, {at}, {finished}, {json_empty} FROM {source}")
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM _jobs")
        cursor.execute(sql.replace("%", "%%"), [])
    refresh(connection)


def refresh(connection) -> None:
    """The planner's statistics, as the database keeps them (autovacuum; the prune's ANALYZE)."""
    with connection.cursor() as cursor:
        cursor.execute('VACUUM ANALYZE "_jobs"' if connection.vendor == "postgresql" else 'ANALYZE "_jobs"')
