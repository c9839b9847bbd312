"""What the SQL guard costs a plugin: an ORM primary-key SELECT with the guard on and off.

    .venv/bin/python bench/governance.py                                          # SQLite (a temporary file)
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/tachy_bench .venv/bin/python bench/governance.py
    .venv/bin/python bench/governance.py --suite       # also the classifier's cache hit rate over the test suite

The demo plugin ``notes`` (granted what it asks for) reads one of its notes by primary key
through the ORM, as itself (``acting_as("notes")``): with ``TACHYCORE["GOVERNANCE"]`` on
"enforce" (the guard classifies each statement, from its cache, and checks the grants) and,
as the anchor in the same run, on "off" (the wrapper returns at once). The two are measured
in alternating rounds so that a busy machine weighs on both alike. Goals: at most 1.05x on
PostgreSQL, 1.10x on SQLite. Also printed: the cost of an uncached classification (a
statement text never seen before) and, with ``--suite``, the cache's hit rate over the
whole test suite (goal above 99%).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.demo_site import use_demo_site  # noqa: E402 (after the path it is found on)

use_demo_site()


def per_op(fn, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=2000, help="calls per round")
    parser.add_argument("--suite", action="store_true", help="run the test suite for the cache hit rate")
    args = parser.parse_args()

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    from demo.notes.models import Note
    from tachycore.conf import tachycore_settings
    from tachycore.context import acting_as
    from tachycore.sql_classifier import cache_info, classify

    call_command("migrate", verbosity=0)
    call_command("pm", "enable", "notes", "--grant-requested", verbosity=0)
    note = Note.objects.create(title="bench", body="a note to read")

    def read() -> None:
        Note.objects.get(pk=note.pk)

    def mode(value: str) -> None:
        settings.TACHYCORE = {**getattr(settings, "TACHYCORE", {}), "GOVERNANCE": value}
        tachycore_settings.reset()

    guarded, anchor = [], []
    with acting_as("notes"):
        for _ in range(3):  # warm: connection, caches, the statement's first parse
            read()
        for _ in range(args.rounds):
            mode("enforce")
            guarded.append(per_op(read, args.calls))
            mode("off")
            anchor.append(per_op(read, args.calls))
    mode("enforce")
    ours, base = statistics.median(guarded), statistics.median(anchor)
    goal = 1.05 if connection.vendor == "postgresql" else 1.10
    print(f"database: {connection.vendor}")
    print(f"ORM primary-key SELECT as a granted plugin, guard on  {ours * 1e6:8.2f} µs")
    print(f"the same with GOVERNANCE = 'off' (anchor)            {base * 1e6:8.2f} µs")
    print(f"ratio {ours / base:.3f}x, goal <= {goal:.2f}x: {'met' if ours / base <= goal else 'NOT met'}")

    n = 300
    texts = [f'SELECT "notes_note"."id", "notes_note"."title" FROM "notes_note" WHERE "notes_note"."id" = {i} '
             f'AND "notes_note"."title" = %s LIMIT 21' for i in range(n)]
    start = time.perf_counter()
    for text in texts:
        classify(text, connection.vendor)
    uncached = (time.perf_counter() - start) / n
    start = time.perf_counter()
    for _ in range(10):
        for text in texts:
            classify(text, connection.vendor)
    cached = (time.perf_counter() - start) / (10 * n)
    print(f"classification: uncached {uncached * 1e6:8.1f} µs, cached {cached * 1e6:6.2f} µs "
          f"(this process: {cache_info().hits} hits, {cache_info().misses} misses)")

    if args.suite:
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            env = {**os.environ, "TACHY_CLASSIFIER_STATS": out.name}
            env.pop("DJANGO_SETTINGS_MODULE", None)
            env.pop("DEBUG", None)
            env.pop("SECRET_KEY", None)
            if env["DATABASE_URL"].startswith("sqlite"):
                env.pop("DATABASE_URL")
            subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "not faults", "-p", "no:cacheprovider"],
                           cwd=ROOT, env=env, check=False, stdout=subprocess.DEVNULL)
            stats = json.loads(Path(out.name).read_text() or "{}")
        hits, misses = stats.get("hits", 0), stats.get("misses", 0)
        rate = hits / (hits + misses) if hits + misses else 0.0
        print(f"the test suite's main process: {hits} hits, {misses} misses: hit rate {rate:.2%}, "
              f"goal > 99%: {'met' if rate > 0.99 else 'NOT met'}")


if __name__ == "__main__":
    main()
