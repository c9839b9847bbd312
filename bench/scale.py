"""The admin pages and the store calls of the jobs, the keys, the nodes and the audit at 10k,
100k and 1M rows: a size-to-time table for each, with the goal of issue 15 beside it.

    .venv/bin/python bench/scale.py                       # SQLite and PostgreSQL, 10k, 100k, 1M
    .venv/bin/python bench/scale.py --db sqlite --sizes 10k,100k
    .venv/bin/python bench/scale.py --db postgresql --pg-url postgres://postgres@127.0.0.1:5432/tachy_scale

SQLite works in a temporary file; PostgreSQL in the database ``--pg-url`` names, created
afresh and dropped at the end (unless ``--keep``). ``--db both`` runs the two one after the
other, each in a process of its own.

For each size N, the tables are filled by one ``INSERT ... SELECT`` each (``bench/fills.py``),
then ``ANALYZE``\\d (PostgreSQL: ``VACUUM ANALYZE``):

- ``_jobs``: N jobs over the last seven days and an hour, 93% completed, 5% failed, 22 topics;
  0.5% pending and due on the topic of the demo's notes plugin, which is not enabled (5,000 at
  1M: jobs no dispatcher may take), 1% pending and due tomorrow, 0.5% processing;
- ``_kv``: N keys, half of them expired;
- ``tachycore_audit``: N events;
- ``tachycore_nodes``: N / 100 rows (100, 1,000, 10,000), five live processes, the others
  stopped: the rows that pile up when nothing prunes them.

Each page is the median of ``--requests`` GETs by a logged-in superuser through Django's
test client (after one request per page on empty tables, which loads the templates); a page
or call stops repeating once it has taken ``--budget`` seconds. The calls:

- ``JobStore.stats()``;
- the claim: one due job of a topic with a handler, enqueued just before (``store.enqueue``,
  not timed), behind the blocked due jobs in the claim's order; the idle poll: the same
  claim when no job is takeable, only the blocked ones are due. Both are the dispatcher's
  claim statement with what ``Dispatcher.runnable()`` says (``claim_due``);
- ``kv.keys('*')``: its time, and the growth of the process's peak resident memory during
  one more call (``/proc/self/status`` ``VmHWM``, reset through ``/proc/self/clear_refs``);
- the key browser's page: ``store.scan(0, count=MAX_COUNT, limit=100)``, one step of its walk;
- ``kv_cleanup`` (``kv.cleanup.cleanup_expired``): the median of ``--cleanups`` passes, each
  over the half of ``_kv`` that expired (``_kv`` written again before each pass after the
  first), as the time per deleted key.

A verdict compares the largest size with the smallest: the time at the largest within the
bound (pages: 250 ms on PostgreSQL, 500 ms on SQLite) and at most the allowed ratio of the
time at the smallest; for the per-key figures (cleanup, ``keys``), "linear" allows 1.5x.
"""

from __future__ import annotations

import argparse
import atexit
import dataclasses
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(os.environ.get("BENCH_ROOT", Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(ROOT))
from bench import fills  # noqa: E402 (after the path it is found on)
from bench.demo_site import debug_off  # noqa: E402

DEFAULT_PG_URL = "postgres://postgres@127.0.0.1:5432/tachy_scale"
CLAIM_TOPIC = "bench.claim"
PAGE_MS = {"postgresql": 250.0, "sqlite": 500.0}
ROWS_PER_NODE = 100  # one node row for every 100 jobs
MAX_NODES = 10_000


@dataclasses.dataclass(frozen=True)
class Goal:
    """What a figure should do: stay within ``bound_ms`` at the largest size (pages), grow
    at most ``ratio`` times from the smallest size to the largest; ``text`` says it."""

    text: str
    ratio: float | None = None
    bound_ms: dict[str, float] | None = None


PAGE_GOAL = Goal("<= 250 ms PG / 500 ms SQLite at 1M, 1M <= 2x 10k", 2.0, PAGE_MS)
INFO = Goal("(no goal: shown)")


@dataclasses.dataclass
class Row:
    """One line of the table: a figure per size."""

    name: str
    goal: Goal
    unit: str = "ms"  # "ms", "us" (per row) or "MiB"
    figures: dict[int, float | str] = dataclasses.field(default_factory=dict)


# -- sizes and the table ----------------------------------------------------------------------

def parse_size(text: str) -> int:
    """``10k`` -> 10000, ``1M`` -> 1000000, ``2500`` -> 2500."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmM]?)\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"a size is a number with an optional k or M, not {text!r}")
    number, suffix = float(match[1]), match[2].lower()
    return int(number * {"": 1, "k": 1_000, "m": 1_000_000}[suffix])


def parse_sizes(text: str) -> list[int]:
    """``10k,100k,1M`` -> ``[10000, 100000, 1000000]``, smallest first."""
    return sorted(parse_size(size) for size in text.split(","))


def size_name(size: int) -> str:
    if size >= 1_000_000 and size % 1_000_000 == 0:
        return f"{size // 1_000_000}M"
    if size >= 1_000 and size % 1_000 == 0:
        return f"{size // 1_000}k"
    return f"{size:,}"


def shown(value: float | str, unit: str) -> str:
    if isinstance(value, str):
        return value
    if unit == "ms":
        if value < 0.001:
            return f"{value * 1000:.3f} ms"
        return f"{value * 1000:,.1f} ms" if value < 10 else f"{value:,.1f} s"
    if unit == "us":
        return f"{value * 1e6:,.1f} µs"
    return f"{value / 2**20:,.1f} MiB"


def verdict(row: Row, vendor: str, sizes: list[int]) -> tuple[str, str]:
    """``(ratio of the largest size to the smallest, pass / FAIL / "")``."""
    first, last = row.figures.get(sizes[0]), row.figures.get(sizes[-1])
    if not isinstance(first, float) or not isinstance(last, float) or len(sizes) < 2:
        return "", "FAIL" if isinstance(last, str) else ""
    ratio = last / first if first else float("inf")
    if row.goal.ratio is None:
        return f"{ratio:.2f}x", ""
    ok = ratio <= row.goal.ratio
    if row.goal.bound_ms is not None:
        ok = ok and last * 1000 <= row.goal.bound_ms[vendor]
    return f"{ratio:.2f}x", "pass" if ok else "FAIL"


def table(rows: list[Row], vendor: str, sizes: list[int]) -> str:
    names = [size_name(size) for size in sizes]
    head = ["what", *names, f"{names[-1]} / {names[0]}", "goal", ""]
    lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(sizes) + 1) + "|---|---|"]
    for row in rows:
        ratio, mark = verdict(row, vendor, sizes)
        cells = [row.name, *(shown(row.figures.get(size, "-"), row.unit) for size in sizes), ratio,
                 row.goal.text, mark]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# -- timing ---------------------------------------------------------------------------------

def median_time(run: Callable[[], object], repeat: int, budget: float) -> float:
    """The median of up to ``repeat`` runs of ``run``, fewer once they took ``budget`` seconds."""
    times: list[float] = []
    spent = time.perf_counter()
    while len(times) < repeat and time.perf_counter() - spent < budget:
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_memory(run: Callable[[], object]) -> float | str:
    """How far the process's peak resident memory rose above its size before ``run``, in
    bytes (Linux: ``VmHWM``, reset first through ``/proc/self/clear_refs``)."""
    def status() -> dict[str, int]:
        with open("/proc/self/status") as f:
            return {k: int(v) * 1024 for k, v in re.findall(r"(VmHWM|VmRSS):\s+(\d+) kB", f.read())}

    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        before = status()["VmRSS"]
    except OSError:
        return "n/a"
    run()
    return float(status()["VmHWM"] - before)


def keys_memory() -> float | str:
    """``peak_memory`` of ``kv.keys('*')`` in a new process of this script: its heap holds
    nothing freed yet that the call could reuse unseen."""
    done = subprocess.run([sys.executable, __file__, "--keys-memory"], capture_output=True, text=True)
    found = re.search(r"^keys memory: (\S+)$", done.stdout, re.MULTILINE)
    if done.returncode or not found:
        return f"failed ({done.returncode})"
    return found[1] if found[1] == "n/a" else float(found[1])


def print_keys_memory() -> None:
    """What ``keys_memory`` runs: set up the site, call ``keys`` once on a pattern that
    matches nothing (the imports), then measure ``keys('*')``."""
    setup_site()
    import kv

    store = kv.get_store()
    assert store is not None, "kv is not installed or disabled"
    store.keys("bench:none:*")
    print(f"keys memory: {peak_memory(lambda: store.keys('*'))}", flush=True)


# -- the database -----------------------------------------------------------------------------

def use_database(vendor: str, pg_url: str, keep: bool) -> None:
    """Point ``DATABASE_URL`` at a fresh database of ``vendor``, removed when the process
    exits (registered before Django starts: after the supervisor has said goodbye in it)."""
    if vendor == "sqlite":
        folder = tempfile.mkdtemp(prefix="scale-")
        os.environ["DATABASE_URL"] = f"sqlite:///{folder}/bench.sqlite3"
        if not keep:
            import shutil

            atexit.register(shutil.rmtree, folder, True)
        return
    import psycopg

    parts = urlsplit(pg_url)
    name = parts.path.lstrip("/")
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    os.environ["DATABASE_URL"] = pg_url

    def drop() -> None:
        from django.db import connections

        connections.close_all()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    if not keep:
        atexit.register(drop)


def server(connection) -> str:
    if connection.vendor == "postgresql":
        return f"PostgreSQL {connection.pg_version // 10000}.{connection.pg_version % 10000}"
    import sqlite3

    return f"SQLite {sqlite3.sqlite_version}"


def fill(connection, size: int) -> float:
    """Every table at ``size`` (nodes: ``size / 100``, at most 10,000); the seconds it took."""
    start = time.perf_counter()
    fills.jobs(connection, size)
    fills.keys(connection, size)
    fills.audit(connection, size)
    fills.nodes(connection, node_rows(size))
    fills.analyze(connection, "_jobs", "_kv", "tachycore_audit", "tachycore_nodes")
    return time.perf_counter() - start


def node_rows(size: int) -> int:
    return max(min(size // ROWS_PER_NODE, MAX_NODES), 1)


# -- the adapters to the code under test --------------------------------------------------------

def claim_due(dispatcher) -> int:
    """One claim of one job, as the dispatcher's loop makes it (the topics and task paths it
    takes now, its claim statement); how many jobs it took. The one place that reaches into
    the dispatcher's internals: change it here when the claim moves."""
    from django.utils import timezone

    from jobs.sql import statements_for

    topics, backends, task_topics, blocked = dispatcher.runnable()
    now = timezone.now()
    rows = statements_for(dispatcher.using).claim(
        dispatcher.name, now, now + timedelta(seconds=dispatcher.lock_duration), 1,
        topics, task_backends=backends, blocked_prefixes=blocked, task_topics=task_topics)
    return len(rows)


# -- the measures -------------------------------------------------------------------------------

class Bench:
    """The rows of the table, measured at one size after another on one database."""

    def __init__(self, args: argparse.Namespace) -> None:
        from django.contrib.auth import get_user_model
        from django.db import connection
        from django.test import Client

        import jobs
        import kv

        self.args = args
        self.connection = connection
        self.vendor = connection.vendor
        store, kv_store = jobs.get_job_store(), kv.get_store()
        if store is None or kv_store is None:
            sys.exit("bench/scale.py measures jobs and kv: both must be installed and enabled")
        self.store, self.kv = store, kv_store
        user, _ = get_user_model().objects.get_or_create(username="bench-scale", is_staff=True, is_superuser=True)
        self.client = Client(raise_request_exception=False)  # a 500 is a figure too
        self.client.force_login(user)
        self.dispatcher = self._dispatcher()
        self.rows: dict[str, Row] = {}

    def _dispatcher(self):
        from jobs import handler
        from jobs.dispatcher import Dispatcher
        from jobs.gating import blocked_topics

        handler(CLAIM_TOPIC)(lambda job: None)
        held = [topic for topics in blocked_topics().values() for topic in topics]
        if fills.BLOCKED_TOPIC not in held:
            sys.exit(f"the bench needs {fills.BLOCKED_TOPIC}'s plugin not enabled; the dispatcher skips {held}")
        return Dispatcher(workers=1, batch_size=1, name="bench-scale")

    def pages(self) -> list[tuple[str, str, dict[str, str]]]:
        """``(name, url, query)`` of each admin page."""
        from django.urls import reverse

        jobs_list = reverse("admin:jobs_job_changelist")
        keys = reverse("admin:kv_kventry_changelist")
        return [
            ("jobs: change list", jobs_list, {}),
            ("jobs: status=pending", jobs_list, {"status__exact": "pending"}),
            ("jobs: search by id", jobs_list, {"q": str(self._middle_job_id())}),
            ("jobs: dashboard", reverse("admin:jobs_job_dashboard"), {}),
            ("keys: key browser", keys, {}),
            ("keys: key browser, q=*zz*", keys, {"q": "*zz*"}),
            ("nodes page", reverse("admin:tachycore_node_changelist"), {}),
            ("audit list", reverse("admin:tachycore_auditevent_changelist"), {}),
        ]

    def _middle_job_id(self) -> int:
        from jobs.models import Job

        ids = Job.objects.order_by().values_list("id", flat=True)
        last = ids.order_by("-id").first() or 0
        return max(last - ids.count() // 2, 1) if last else 1

    def row(self, name: str, goal: Goal, unit: str = "ms") -> Row:
        return self.rows.setdefault(name, Row(name, goal, unit))

    def warm_up(self) -> None:
        """One request per page on the empty tables: templates, URL patterns, the first query."""
        for _, url, query in self.pages():
            self.client.get(url, query)

    def measure(self, size: int) -> None:
        self.measure_pages(size)
        self.measure_jobs(size)
        self.measure_keys(size)

    def measure_pages(self, size: int) -> None:
        for name, url, query in self.pages():
            statuses: set[int] = set()

            def get(url=url, query=query, statuses=statuses) -> None:
                statuses.add(self.client.get(url, query).status_code)

            seconds = median_time(get, self.args.requests, self.args.budget)
            figure: float | str = seconds if statuses == {200} else f"status {sorted(statuses)}"
            self.record(self.row(name, PAGE_GOAL), size, figure)

    def measure_jobs(self, size: int) -> None:
        repeat, budget = self.args.requests, self.args.budget
        self.record(self.row("JobStore.stats()", Goal("1M <= 2x 10k", 2.0)), size,
                    median_time(self.store.stats, repeat, budget))
        self.record(self.row("idle poll (no takeable job)", Goal("1M <= 1.5x 10k", 1.5)), size,
                    median_time(self._poll, self.args.claims, budget))
        self.record(self.row("claim of one due job", Goal("1M <= 1.5x 10k", 1.5)), size,
                    self._claims())

    def _poll(self) -> None:
        taken = claim_due(self.dispatcher)
        assert taken == 0, f"the idle poll took {taken} job(s): a job of a topic with a handler was due"

    def _claims(self) -> float:
        """The median claim of a job enqueued just before it (the enqueue not timed)."""
        times: list[float] = []
        spent = time.perf_counter()
        while len(times) < self.args.claims and time.perf_counter() - spent < self.args.budget:
            self.store.enqueue(CLAIM_TOPIC, {})
            start = time.perf_counter()
            taken = claim_due(self.dispatcher)
            times.append(time.perf_counter() - start)
            assert taken == 1, f"the claim took {taken} job(s) instead of the one enqueued"
        return statistics.median(times)

    def measure_keys(self, size: int) -> None:
        from kv.scans import MAX_COUNT

        repeat, budget = self.args.requests, self.args.budget
        keys = self.kv.keys
        self.record(self.row("kv.keys('*')", INFO), size, median_time(keys, repeat, budget))
        self.record(self.row("kv.keys('*') peak memory", INFO, "MiB"), size, keys_memory())
        self.record(self.row("key browser's scan page: scan(0, count=MAX_COUNT, limit=100)",
                             Goal("1M <= 2x 10k", 2.0)), size,
                    median_time(lambda: self.kv.scan(0, None, MAX_COUNT, limit=100), self.args.claims, budget))
        self.record(self.row("kv_cleanup, per deleted key (half of _kv)", Goal("linear: per key 1M <= 1.5x 10k", 1.5),
                             "us"), size, self._cleanups(size))

    def _cleanups(self, size: int) -> float | str:
        """The median time per key of ``--cleanups`` passes of ``kv_cleanup``, each over the
        half of ``_kv`` that expired (the keys written again before each pass after the first)."""
        from kv.cleanup import cleanup_expired

        per_key: list[float] = []
        for attempt in range(self.args.cleanups):
            if attempt:
                fills.keys(self.connection, size)
                fills.analyze(self.connection, "_kv")
            start = time.perf_counter()
            deleted = cleanup_expired()
            seconds = time.perf_counter() - start
            print(f"  kv_cleanup deleted {deleted:,} keys in {seconds:.2f} s", flush=True)
            if not deleted:
                return "nothing deleted"
            per_key.append(seconds / deleted)
        return statistics.median(per_key)

    def record(self, row: Row, size: int, figure: float | str) -> None:
        row.figures[size] = figure
        print(f"  {size_name(size):>5} {row.name:<60} {shown(figure, row.unit):>12}", flush=True)


# -- running ------------------------------------------------------------------------------------

def setup_site() -> None:
    """The demo site on ``DATABASE_URL``, ``DEBUG`` off, the test client's host allowed."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo.settings")
    os.environ.setdefault("ALLOWED_HOSTS", "testserver")
    os.environ.setdefault("TACHYCORE_LOG_LEVEL", "WARNING")
    debug_off()
    import django

    django.setup()


def run(args: argparse.Namespace) -> None:
    """The whole table on one database (``args.db``), in this process."""
    use_database(args.db, args.pg_url, args.keep)
    setup_site()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute('DELETE FROM "django_q_schedule"')  # no maintenance schedule mid-run
    bench = Bench(args)
    print(f"{args.db} ({server(connection)}), sizes {', '.join(map(size_name, args.sizes))}, "
          f"code in {ROOT}, load average {os.getloadavg()[0]:.2f}", flush=True)
    bench.warm_up()
    started = time.perf_counter()
    for size in args.sizes:
        print(f"{size_name(size)}: filled in {fill(connection, size):.1f} s ({node_rows(size):,} node rows)",
              flush=True)
        bench.measure(size)
    print(f"\n{args.db}: measured in {time.perf_counter() - started:.0f} s, "
          f"load average at the end {os.getloadavg()[0]:.2f}\n")
    print(table(list(bench.rows.values()), bench.vendor, args.sizes), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--sizes", type=parse_sizes, default="10k,100k,1M",
                        help="rows in _jobs, _kv and the audit, comma-separated (default 10k,100k,1M)")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL,
                        help=f"the PostgreSQL database to create, fill and drop (default {DEFAULT_PG_URL})")
    parser.add_argument("--requests", type=int, default=9, help="requests per page, calls of stats() and keys()")
    parser.add_argument("--claims", type=int, default=50, help="claims, idle polls and scan pages")
    parser.add_argument("--budget", type=float, default=8.0, help="seconds after which a figure stops repeating")
    parser.add_argument("--cleanups", type=int, default=3, help="kv_cleanup passes at each size (the median counts)")
    parser.add_argument("--keep", action="store_true", help="keep the database at the end")
    parser.add_argument("--keys-memory", action="store_true", help=argparse.SUPPRESS)  # see keys_memory()
    args = parser.parse_args()
    if args.keys_memory:
        print_keys_memory()
        return
    if args.db != "both":
        run(args)
        return
    for db in ("sqlite", "postgresql"):
        command = [sys.executable, __file__, *sys.argv[1:], "--db", db]
        code = subprocess.call(command)
        if code:
            sys.exit(code)
        print()


if __name__ == "__main__":
    main()
