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
- claim: ``Statements.claim`` of a batch of 10 for a dispatcher that takes the 20 topics,
  the ``default`` task backend's tasks but the disabled plugin's, rolled back.
- idle poll: the same claim by a dispatcher of the ten topics none of whose jobs is due
  (``--topics``): what an idle dispatcher sends every ``POLL_INTERVAL``.
- with ``--park``: first the 5,000 blocked jobs are moved out of "pending" (their status
  set to ``parked``, one ``UPDATE``, timed): the claim and poll of approach (b).

Each figure is the median of ``--repeat`` calls. Two ratios, each against an anchor of the
same run: the figure at a million jobs over the one at 10,000, and the figure at a million
jobs with ten times the blocked ones (50,000) over the one with 5,000.
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


def _kinds(blocked: int = 1) -> list[tuple[int, int, str | None, str, str, int]]:
    """``(first serial number, how many, topic SQL, task backend, status, run_at offset in
    seconds)`` of the live jobs, numbered from 0 (the finished ones follow); ``blocked``
    times the blocked jobs of ``BLOCKED``."""
    kinds, start = [], 0
    for topic, backend, count in BLOCKED:
        kinds.append((start, count * blocked, f"'{topic}'", backend, "pending", -3600))
        start += count * blocked
    # the due ones of the first ten topics, those due later of the other ten
    for count, topic, status, offset in ((RUNNABLE_DUE, "'bench.topic' || (g % 10)", "pending", -3600),
                                         (RUNNABLE_LATER, "'bench.topic' || (10 + g % 10)", "pending", 3600),
                                         (PROCESSING, None, "processing", -60)):
        kinds.append((start, count, topic, "", status, offset))
        start += count
    return kinds


def fill(connection, count: int, blocked: int = 1) -> None:
    """``count`` jobs as the module says, in one statement (``blocked`` times the blocked ones)."""
    pg = connection.vendor == "postgresql"
    live = sum(kind[1] for kind in _kinds(blocked))
    assert count > live, f"at least {live + 1} jobs"
    topic_of_g = "'bench.topic' || (g % 20)"
    cases_topic, cases_status, cases_backend, cases_offset = [], [], [], []
    for start, n, topic, backend, status, offset in _kinds(blocked):
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


def median(repeat: int, run: Callable[[], object]) -> float:
    """The median time of ``repeat`` calls of ``run``."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def claim_time(connection, topics: list[str], expect: int, repeat: int) -> float:
    """The median time of a claim of 10 by a dispatcher of ``topics`` (each rolled back)."""
    from django.db import transaction
    from django.utils import timezone

    from jobs.sql import statements_for

    sql = statements_for("default")
    times = []
    for _ in range(repeat):
        with transaction.atomic():
            now = timezone.now()
            start = time.perf_counter()
            rows = sql.claim(WORKER, now, now, 10, topics, BACKENDS, BLOCKED_PREFIXES)
            times.append(time.perf_counter() - start)
            transaction.set_rollback(True)
        assert len(rows) == expect and not {row[1] for row in rows} - set(TOPICS), rows
    return statistics.median(times)


def park(connection, blocked: int) -> float:
    """Approach (b), simulated: the blocked jobs out of "pending" in one statement; its time."""
    topics = ", ".join(f"'{topic}'" for topic, _, _ in BLOCKED)
    start = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE _jobs SET status = 'parked' WHERE status = 'pending' AND topic IN ({topics})")
        assert cursor.rowcount == BLOCKED_COUNT * blocked, cursor.rowcount
    return time.perf_counter() - start


def measure(connection, size: int, blocked: int, args) -> dict[str, float]:
    import jobs

    start = time.perf_counter()
    fill(connection, size, blocked)
    print(f"{size:,} jobs ({BLOCKED_COUNT * blocked:,} blocked) written in {time.perf_counter() - start:.1f} s")
    figures = {}
    if args.park:
        figures["park the blocked jobs (one UPDATE)"] = park(connection, blocked)
    store = jobs.get_job_store()
    stats = store.stats()
    assert stats.due == RUNNABLE_DUE + (0 if args.park else BLOCKED_COUNT * blocked), stats
    assert stats.by_status["processing"] == PROCESSING, stats
    figures["stats()"] = median(args.repeat_stats, store.stats)
    figures["claim of 10"] = claim_time(connection, TOPICS, 10, args.repeat)
    figures["idle poll"] = claim_time(connection, TOPICS[10:], 0, args.repeat)
    return figures


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=50, help="claims and polls measured (the median counts)")
    parser.add_argument("--repeat-stats", type=int, default=9, help="stats() calls measured (the median counts)")
    parser.add_argument("--park", action="store_true", help="park the blocked jobs first (approach b)")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="jobs in _jobs, the anchor first")
    args = parser.parse_args()

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute("SELECT version()" if connection.vendor == "postgresql" else "SELECT sqlite_version()")
        version = cursor.fetchone()[0].split(" on ")[0]
    print(f"{connection.vendor} {version}, code in {ROOT}, {BLOCKED_COUNT:,} blocked due jobs"
          f"{' parked' if args.park else ''}, load average {os.getloadavg()[0]:.2f}")
    sizes = [int(size) for size in args.sizes.split(",")]
    # (jobs, times the blocked jobs): each size, then the largest with ten times the blocked jobs
    runs = [(size, 1) for size in sizes] + [(sizes[-1], 10)]
    results = [measure(connection, size, blocked, args) for size, blocked in runs]
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM _jobs")
    heads = [f"{size:,} / {BLOCKED_COUNT * blocked:,}" for size, blocked in runs]
    print(f"\n| jobs / blocked due jobs{'':<13} | " + " | ".join(f"{head:>16}" for head in heads)
          + " | ratio | ratio, 10x blocked |")
    print(f"| {'-' * 36} | " + " | ".join("-" * 15 + ":" for _ in heads) + " | ----: | -----------------: |")
    for name in results[0]:
        figures = [result[name] for result in results]
        print(f"| {name:<36} | " + " | ".join(f"{ms(figure):>16}" for figure in figures)
              + f" | {figures[-2] / figures[0]:.2f}x | {figures[-1] / figures[-2]:>17.2f}x |")
    print(f"\nratio: the figure at {sizes[-1]:,} jobs over the anchor, at {sizes[0]:,}; ratio, 10x blocked: "
          f"with {BLOCKED_COUNT * 10:,} blocked jobs over the anchor, with {BLOCKED_COUNT:,}. "
          f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
