"""kv at scale: the expiry cleanup per deleted row, a `set` loop's latency while it runs, and
`keys('*')`'s time and memory, on tables of 10,000 to 1,000,000 keys.

    .venv/bin/python bench/kv_cleanup.py                                            # SQLite (a temporary file)
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/tachy_bench .venv/bin/python bench/kv_cleanup.py

Each table is written by one INSERT ... SELECT: keys ``bench:0000000`` up, 100-byte JSON
values, half of them expired (at random times of the last hour, so in no order the table
keeps: the worst case for the cleanup; ``--written-order``: in the keys' order, as keys
written one after the other with one TTL), the others live for an hour. Goals (issue 15): the
cleanup linear in what it deletes (time per deleted row at 1M at most 2x the one at 10k), a
`set` loop's p99 during a pass under 20 ms (PostgreSQL) / 100 ms (SQLite).
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import os
import random
import resource
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(os.environ.get("BENCH_ROOT") or Path(__file__).resolve().parent.parent)
sys.path.insert(0, str(ROOT))
from bench.demo_site import use_demo_site  # noqa: E402 (after the path it is found on)

use_demo_site()
os.environ.setdefault("TACHYCORE_LOG_LEVEL", "WARNING")

VALUE = '"' + "x" * 98 + '"'  # 100 bytes of JSON
HOUR_MS = 3_600_000


def fill(connection, count: int, written_order: bool = False) -> None:
    """``count`` keys, the odd ones expired at a random time of the last hour (with
    ``written_order``, in the order of the keys, as keys written one after the other with
    one TTL expire)."""
    from kv import clock

    now = clock.now_ms()
    # the expired ones: random() is 64 bits on SQLite, 0 to 1 on PostgreSQL
    offset = (f"((CAST({count} AS bigint) - g) * {HOUR_MS} / {count})" if written_order
              else "(random() * %s)::bigint" if connection.vendor == "postgresql" else "abs(random() %% %s)")
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("TRUNCATE _kv")
            cursor.execute(
                "INSERT INTO _kv (key, type, value, expire_at, created, updated) "
                "SELECT 'bench:' || lpad(g::text, 7, '0'), 'value', %s::jsonb, "
                f"CASE WHEN g %% 2 = 1 THEN %s - 1 - {offset} ELSE %s + %s END, now(), now() "
                "FROM generate_series(0, %s - 1) AS g",
                [VALUE, now, *([] if written_order else [HOUR_MS]), now, HOUR_MS, count],
            )
            cursor.execute("VACUUM ANALYZE _kv")
        else:
            cursor.execute("DELETE FROM _kv")
            cursor.execute(
                "WITH RECURSIVE s(g) AS (SELECT 0 UNION ALL SELECT g + 1 FROM s WHERE g < %s - 1) "
                "INSERT INTO _kv (key, type, value, expire_at, created, updated) "
                "SELECT 'bench:' || substr('000000' || g, -7), 'value', %s, "
                f"CASE WHEN g %% 2 = 1 THEN %s - 1 - {offset} ELSE %s + %s END, "
                "strftime('%%Y-%%m-%%d %%H:%%M:%%f', 'now'), strftime('%%Y-%%m-%%d %%H:%%M:%%f', 'now') FROM s",
                [count, VALUE, now, *([] if written_order else [HOUR_MS]), now, HOUR_MS],
            )
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def timed_cleanup() -> tuple[float, int]:
    from kv.cleanup import cleanup_expired

    start = time.perf_counter()
    removed = cleanup_expired()
    return time.perf_counter() - start, removed


def set_loop(count: int, stop, ready, results) -> None:
    """In a child process: ``set`` random keys of the table (the expired ones too) until
    ``stop``; put the latencies (seconds) on ``results``."""
    from django.db import connection

    import kv

    store = kv.get_store()
    rng = random.Random(7)
    latencies = []
    store.set("bench:warm", 1)
    ready.set()
    while not stop.is_set():
        key = f"bench:{rng.randrange(count):07d}"
        start = time.perf_counter()
        store.set(key, "x" * 98)
        latencies.append(time.perf_counter() - start)
        time.sleep(0.001)  # a busy writer, not a flood: the other core is the cleanup's
    connection.close()
    results.put(latencies)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def under_set_loop(connection, count: int, seconds_before: float) -> tuple[list[float], list[float], float, int]:
    """The set loop's latencies alone for ``seconds_before``, then during one cleanup pass."""
    from django.db import connections

    connections.close_all()  # the child gets no copy of an open connection
    context = multiprocessing.get_context("fork")
    stop, ready, results = context.Event(), context.Event(), context.Queue()
    alone_stop, alone_ready, alone_results = context.Event(), context.Event(), context.Queue()
    alone = context.Process(target=set_loop, args=(count, alone_stop, alone_ready, alone_results))
    alone.start()
    alone_ready.wait(30)
    time.sleep(seconds_before)
    alone_stop.set()
    baseline = alone_results.get(timeout=60)
    alone.join(30)

    child = context.Process(target=set_loop, args=(count, stop, ready, results))
    child.start()
    ready.wait(30)
    time.sleep(0.2)
    elapsed, removed = timed_cleanup()
    stop.set()
    during = results.get(timeout=60)
    child.join(30)
    return baseline, during, elapsed, removed


def keys_figures() -> tuple[float, float, float, int]:
    """``keys('*')`` in a child process: seconds, peak MiB of Python allocations (tracemalloc),
    MiB the process's resident memory grew by at its peak (the driver's buffers too: libpq
    keeps a whole result in C memory), keys returned."""
    from django.db import connections

    connections.close_all()  # the child gets no copy of an open connection
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    child = context.Process(target=_keys_in_child, args=(results,))
    child.start()
    figures = results.get(timeout=600)
    child.join(30)
    return figures


def _keys_in_child(results) -> None:
    import kv

    store = kv.get_store()
    store.keys("bench:0000000")  # connected, the statements made: not counted
    gc.collect()
    with open("/proc/self/statm") as statm:
        resident = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    tracemalloc.start()
    start = time.perf_counter()
    keys = store.keys("*")
    elapsed = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - resident) / 2**20
    results.put((elapsed, peak, grown, len(keys)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="table sizes, comma-separated")
    parser.add_argument("--loop-size", type=int, default=None,
                        help="the table of the set-loop run (default: the largest size)")
    parser.add_argument("--skip-loop", action="store_true", help="leave out the set-loop run")
    parser.add_argument("--skip-keys", action="store_true", help="leave out keys('*')")
    parser.add_argument("--written-order", action="store_true",
                        help="keys expire in the order they were written (default: at random times)")
    args = parser.parse_args()

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection


    call_command("migrate", verbosity=0)
    sizes = [int(size) for size in args.sizes.split(",")]
    print(f"kv at scale on {connection.vendor} ({connection.settings_dict['NAME']}), code at {ROOT}")
    per_row = {}
    for size in sizes:
        started = time.perf_counter()
        fill(connection, size, args.written_order)
        filled = time.perf_counter() - started
        if not args.skip_keys:
            seconds, peak, grown, found = keys_figures()
            print(f"{size:>9,} keys: keys('*') {seconds * 1000:8.1f} ms, peak {peak:6.1f} MiB of Python "
                  f"allocations (tracemalloc), resident memory +{grown:6.1f} MiB at its peak, {found:,} live keys")
        elapsed, removed = timed_cleanup()
        per_row[size] = elapsed / max(removed, 1)
        print(f"{size:>9,} keys (written in {filled:.1f} s): cleanup removed {removed:,} in {elapsed * 1000:8.1f} ms, "
              f"{per_row[size] * 1e6:6.2f} µs per deleted row")
    if len(sizes) > 1:
        ratio = per_row[sizes[-1]] / per_row[sizes[0]]
        print(f"per deleted row, {sizes[-1]:,} against {sizes[0]:,}: {ratio:.2f}x (goal <= 2x: "
              f"{'met' if ratio <= 2 else 'NOT met'})")
    if args.skip_loop:
        return
    size = args.loop_size or sizes[-1]
    fill(connection, size, args.written_order)
    baseline, during, elapsed, removed = under_set_loop(connection, size, 2.0)
    goal_ms = 20 if connection.vendor == "postgresql" else 100
    print(f"set loop over {size:,} keys, alone: {len(baseline):,} sets, p50 {percentile(baseline, 0.5) * 1000:.2f} ms, "
          f"p99 {percentile(baseline, 0.99) * 1000:.2f} ms")
    p99 = percentile(during, 0.99)
    print(f"set loop during the cleanup ({removed:,} rows in {elapsed:.2f} s): {len(during):,} sets, "
          f"p50 {percentile(during, 0.5) * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms, max {max(during) * 1000:.2f} ms "
          f"(goal p99 < {goal_ms} ms: {'met' if p99 * 1000 < goal_ms else 'NOT met'})")


if __name__ == "__main__":
    main()
