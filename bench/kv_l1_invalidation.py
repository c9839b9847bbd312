"""How long another process serves a replaced value from its L1, measured with two processes.

    .venv/bin/python bench/kv_l1_invalidation.py                                                   # SQLite
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/tachy_bench .venv/bin/python bench/kv_l1_invalidation.py

Process A (this one) writes a key ``--writes`` times, each after a random pause of 0-50 ms;
process B reads it through ``store.get`` every millisecond, with ``KV_L1_TTL=60`` so that
only an invalidation can make it read the database, and tells the time (``CLOCK_MONOTONIC``,
one clock for both processes) at which it first sees each new value. The figure is the
time from ``set`` returning in A to B's first read of the new value: its p50, p99 and
maximum, against the goal (p99 at most 100 ms); the anchor is the same loop with L1 off in
B (every read asks the database), the floor of what B can see. It also counts B's reads
that L1 answered (without L1 the figure says nothing).

On SQLite the invalidation is ``kv.watcher`` (``PRAGMA data_version`` every 20 ms, then the
change counter); on PostgreSQL the NOTIFY of each write. On SQLite it then measures what the
change counter costs a ``set``: the same loop with and without the counter's triggers, in
alternating rounds, with this process's watcher running.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.demo_site import use_demo_site  # noqa: E402 (after the path it is found on)

use_demo_site()

KEY = "bench:l1:shared"
GOAL = 0.100  # seconds, p99


def reader(seconds: float) -> None:
    """Process B: print ``seen <value> <time> <reads> <l1 hits>`` at each new value."""
    import django

    django.setup()
    import kv
    from tachycore.runtime import runtime

    runtime.start(kind="command")  # as a web process: on PostgreSQL, the LISTEN
    store = kv.get_store()
    last = object()
    reads = hits = 0
    print("ready", flush=True)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        cached = store.l1 is not None and store.l1.get(KEY) is not None
        value = store.get(KEY)
        now = time.monotonic()
        reads += 1
        hits += cached
        if value != last:
            print("seen", json.dumps(value), now, reads, hits, flush=True)
            last = value
        time.sleep(0.001)


def start_reader(l1: bool, seconds: float) -> subprocess.Popen:
    env = {**os.environ, "KV_L1_TTL": "60", "KV_L1_ENABLED": "true" if l1 else "false"}
    process = subprocess.Popen([sys.executable, __file__, "--reader", str(seconds)], env=env,
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    return process


def measure(store, writes: int, l1: bool) -> tuple[list[float], int, int]:
    """Latencies of ``writes`` writes seen by a reader process, and its reads and L1 hits."""
    store.set(KEY, -1)
    process = start_reader(l1, seconds=writes * 0.5 + 30)
    assert process.stdout is not None
    try:
        line = process.stdout.readline().split()  # B's first read: -1, which fills its L1
        assert line[:2] == ["seen", "-1"], line
        time.sleep(0.3)  # B's L1 holds -1 now (its watcher has made its first look)
        latencies = []
        for i in range(writes):
            time.sleep(random.uniform(0, 0.05))
            store.set(KEY, i)
            written = time.monotonic()
            while True:
                line = process.stdout.readline().split()
                if line and line[0] == "seen" and json.loads(line[1]) == i:
                    break
            latencies.append(float(line[2]) - written)
        return latencies, int(line[3]), int(line[4])
    finally:
        process.kill()
        process.wait()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def set_cost(store, connection, rounds: int, n: int) -> tuple[float, float]:
    """µs per ``set`` with the change counter's triggers and without them (dropped and made
    again between rounds): the best round of each. This process's L1 watcher runs, as in a
    site's process, and acknowledges the pending change every 20 ms."""
    from kv import receivers
    from kv.watcher import TRIGGERS

    deadline = time.monotonic() + 5
    while not receivers.invalidations_arrive():  # starts the watcher
        assert time.monotonic() < deadline, "the L1 watcher did not start"
        time.sleep(0.01)

    with connection.cursor() as cursor:
        cursor.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND name IN (%s, %s)",
                       list(TRIGGERS))
        triggers = cursor.fetchall()
    assert len(triggers) == 2, "run migrate: the change counter's triggers are missing"
    values = [f"{i:03d}" + "x" * 95 for i in range(1000)]  # 100 bytes of JSON, each a change

    def loop() -> float:
        start = time.perf_counter()
        for i in range(n):
            store.set("bench:set", values[i % 1000])
        return (time.perf_counter() - start) / n

    best = {True: float("inf"), False: float("inf")}
    for _ in range(rounds):
        for with_counter in (True, False):
            with connection.cursor() as cursor:
                for name, sql in triggers:
                    cursor.execute(f"DROP TRIGGER IF EXISTS {name}")
                    if with_counter:
                        cursor.execute(sql)
            best[with_counter] = min(best[with_counter], loop())
    with connection.cursor() as cursor:
        for name, sql in triggers:
            cursor.execute(f"DROP TRIGGER IF EXISTS {name}")
            cursor.execute(sql)
    return best[True], best[False]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--writes", type=int, default=200)
    parser.add_argument("--reader", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reader is not None:
        reader(args.reader)
        return

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    import kv
    from tachycore.runtime import runtime

    call_command("migrate", verbosity=0)
    runtime.start(kind="command")
    store = kv.get_store()
    random.seed(15)

    print(f"kv L1 across processes on {connection.vendor} ({connection.settings_dict['NAME']}), "
          f"{args.writes} writes, load average {os.getloadavg()[0]:.2f}")
    floor, _, _ = measure(store, args.writes, l1=False)
    latencies, reads, hits = measure(store, args.writes, l1=True)
    for name, figures in (("L1 on (ours)", latencies), ("L1 off (anchor)", floor)):
        print(f"{name:16} p50 {percentile(figures, 0.5) * 1e3:6.1f} ms  p99 {percentile(figures, 0.99) * 1e3:6.1f} ms"
              f"  max {max(figures) * 1e3:6.1f} ms  mean {statistics.mean(figures) * 1e3:6.1f} ms")
    p99 = percentile(latencies, 0.99)
    print(f"p99 ours / anchor: {p99 / percentile(floor, 0.99):.1f}x; goal p99 <= {GOAL * 1e3:.0f} ms: "
          f"{'met' if p99 <= GOAL else 'NOT met'}; B's reads answered by L1: {hits}/{reads} ({hits / reads:.0%})")

    if connection.vendor == "sqlite":
        with_counter, without = set_cost(store, connection, rounds=5, n=2000)
        print(f"set on SQLite with the change counter {with_counter * 1e6:.2f} µs, without "
              f"{without * 1e6:.2f} µs: {with_counter / without:.2f}x")


if __name__ == "__main__":
    main()
