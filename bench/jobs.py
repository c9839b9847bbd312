"""The job queue against its peers and the bare two-statement loop, in one run on one database.

    .venv/bin/pip install -e '.[dev,redis,bench]'
    .venv/bin/python bench/jobs.py                                                    # SQLite (a temporary file)
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/tachy_bench .venv/bin/python bench/jobs.py

On PostgreSQL the run works in a scratch database ``<name>_jobs`` beside the one
named (created afresh, dropped at the end unless ``--keep``). The site is
``bench/jobs_site`` (the demo's settings plus the peers and a no-op job for each).

For each system (ours: ``runjobs``; procrastinate and its worker, PostgreSQL only;
django-q2 with its ORM broker and ``qcluster``; django-tasks-db and its
``db_worker``) and for the anchor, a bare loop of two raw statements on a table of
the same shape as ``_jobs``, it measures:

- enqueue rate one by one (each job its own transaction) and in bulk (one transaction),
  the best of ``--repeat`` rounds that each visit every system;
- drain rate: N no-op jobs are waiting, the real worker processes start with 4
  workers, and the clock runs from their start until the database says every job
  is done (polled every 20 ms); the bare loop runs 4 threads, each with its own
  connection, that claim one job with one ``UPDATE ... RETURNING`` (``FOR UPDATE
  SKIP LOCKED`` on PostgreSQL, a compare-and-set on SQLite) and finish it with a
  second ``UPDATE``;
- pickup latency: on idle workers, a job is committed, and its handler sends
  ``time.time()`` as it starts (one UDP datagram, see ``jobs_site/pickup.py``);
  the latency runs from the moment COMMIT is sent. The workers of all systems run
  side by side and ``--samples`` jobs go to each in turn, each after a short pause
  plus a random part of that system's poll period.

It prints a Markdown table (each figure, the anchor, the ratios) and the goals of
issue 5 with met / not met.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = str(ROOT / "bench")
# run as a script, this file's folder comes first on sys.path, and "jobs" would be this file
sys.path[:] = [str(ROOT)] + [p for p in sys.path if p not in (BENCH, str(ROOT))]
os.environ["DJANGO_SETTINGS_MODULE"] = "bench.jobs_site.settings"
from bench import demo_site  # noqa: E402 (after the path it is found on)
from bench.demo_site import debug_off  # noqa: E402

debug_off()
os.environ.setdefault("TACHYCORE_LOG_LEVEL", "WARNING")

LOGS = Path(tempfile.mkdtemp(prefix="bench-jobs-"))

from bench.jobs_site.systems import (  # noqa: E402
    BARE,
    Bare,
    DjangoQ,
    Ours,
    Procrastinate,
    System,
    TasksDB,
    clear,
    sql,
)

# -- the database ---------------------------------------------------------------------------

def scratch_database(keep: bool) -> Callable[[], None]:
    """Point DATABASE_URL at a fresh scratch database; return what drops it at the end."""
    return demo_site.scratch_database(keep, "jobs", str(LOGS))


# -- worker processes -------------------------------------------------------------------------

class Workers:
    """Worker processes started for one measurement, stopped (SIGTERM, then SIGKILL) after it."""

    def __init__(self, commands: list[list[str]], label: str, env: dict[str, str] | None = None) -> None:
        self.commands = commands
        self.label = label
        self.env = dict(os.environ, **(env or {}))
        self.procs: list[subprocess.Popen] = []

    def __enter__(self) -> Workers:
        for number, command in enumerate(self.commands):
            log = open(LOGS / f"{self.label}-{number}.log", "ab")  # noqa: SIM115 - the child has its copy
            self.procs.append(subprocess.Popen(
                [sys.executable, str(ROOT / "manage.py"), *command], cwd=ROOT, env=self.env,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
            log.close()
        return self

    def check_alive(self) -> None:
        for proc in self.procs:
            if proc.poll() is not None:
                raise RuntimeError(f"{self.label}: a worker exited ({proc.returncode}); see {LOGS}")

    def __exit__(self, *exc) -> None:
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for proc in self.procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)  # the group this bench started for it
                proc.wait(5)


# -- measurements ----------------------------------------------------------------------------

def rate(fn: Callable[[int], None], n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        fn(i)
    return n / (time.perf_counter() - start)


def drain(system: System, n: int, workers: int) -> tuple[float, float, float]:
    """(jobs/s from worker start, jobs/s from the first job done, seconds to the first job done)."""
    from django.db import transaction

    clear(*system.tables)
    with transaction.atomic():
        if not system.enqueue_bulk(n):
            for i in range(n):
                system.enqueue_one(i)
    start = time.perf_counter()
    first = None
    with Workers(system.commands(workers, drain=True), f"{slug(system.name)}-drain") as procs:
        deadline = start + max(120.0, n / 20)
        while True:
            done = system.finished()
            now = time.perf_counter()
            if done and first is None:
                first = (now, done)
            if done >= n:
                break
            if now > deadline:
                raise RuntimeError(f"{system.name}: {done} of {n} jobs done after {now - start:.0f} s")
            procs.check_alive()
            time.sleep(0.02)
    total = now - start
    steady = (n - first[1]) / (now - first[0]) if now > first[0] else float("nan")
    return n / total, steady, first[0] - start


class Stamps:
    """Receives the datagrams the pickup handlers send: sample -> start time."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]

    def wait_for(self, sample: int, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"sample {sample} not started within {timeout:.0f} s")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(256)
            except TimeoutError:
                continue
            got, started = data.decode().split()
            if int(got) == sample:
                return float(started)


def pickup(systems: list[System], samples: int, workers: int, pause: float) -> dict[str, list[float]]:
    """Seconds from the COMMIT of a job to the start of its handler, on idle workers: system
    name -> latencies.

    The workers of every system run side by side, idle, and the samples go to the systems
    in turn, in a new random order each round, so that whatever else loads the machine
    weighs on each system alike. Before each job the bench waits ``pause`` plus a random
    part of that system's poll period, so that a job comes at any point of a polling
    worker's cycle, never in step with it."""
    from django.db import connection, transaction

    stamps = Stamps()
    env = {"BENCH_PICKUP_PORT": str(stamps.port)}
    latencies: dict[str, list[float]] = {system.name: [] for system in systems}
    numbers = iter(range(1_000_000))
    with contextlib.ExitStack() as stack:
        procs = []
        for system in systems:
            clear(*system.tables)
            procs.append(stack.enter_context(
                Workers(system.commands(workers, drain=False), f"{slug(system.name)}-pickup", env)))
        for system in systems:  # each system's workers are up and have run a job
            for _ in range(2):
                number = next(numbers)
                system.enqueue_pickup(number)
                stamps.wait_for(number, 60)
        for _ in range(samples):
            for system in random.sample(systems, len(systems)):
                time.sleep(pause + random.uniform(0, system.poll_period(connection.vendor)))
                number = next(numbers)
                with transaction.atomic():
                    system.enqueue_pickup(number)
                    committing = time.time()
                latencies[system.name].append(stamps.wait_for(number, 30) - committing)
            for workers_of_one in procs:
                workers_of_one.check_alive()
    stamps.sock.close()
    return latencies


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))]


# -- report ------------------------------------------------------------------------------------

def best(row: dict[str, float], name: str, value: float) -> None:
    row[name] = max(value, row.get(name, 0.0))


def measure(args, systems: list[System], bare: Bare) -> dict[str, dict[str, float]]:
    """figure name -> system name -> value (rates in jobs/s, latencies in ms)."""
    from django.db import transaction

    figures: dict[str, dict[str, float]] = {key: {} for key in
                                            ("one", "bulk", "drain", "steady", "first", "p50", "p95")}
    # enqueue: best of --repeat rounds, every system in each round (a load that comes and goes
    # on the machine then weighs on all of them)
    for _ in range(args.repeat):
        for system in systems:
            clear(*system.tables)
            best(figures["one"], system.name, rate(system.enqueue_one, args.enqueue))
            clear(*system.tables)
            start = time.perf_counter()
            with transaction.atomic():
                if system.enqueue_bulk(args.bulk):
                    best(figures["bulk"], system.name, args.bulk / (time.perf_counter() - start))
        clear(BARE)
        best(figures["one"], "bare", bare.enqueue_one_rate(args.enqueue))
        clear(BARE)
        best(figures["bulk"], "bare", bare.enqueue_bulk_rate(args.bulk))
    for name in [*(system.name for system in systems), "bare"]:
        log(f"{name}: enqueue {figures['one'][name]:.0f}/s one by one, "
            f"{figures['bulk'].get(name, float('nan')):.0f}/s bulk")
    clear(BARE)
    bare.enqueue_bulk_rate(args.drain)
    figures["drain"]["bare"] = bare.drain_rate(args.drain, args.workers)
    log(f"bare loop: drain {figures['drain']['bare']:.0f}/s")
    for system in systems:
        total, steady, first = drain(system, args.drain, args.workers)
        figures["drain"][system.name], figures["steady"][system.name] = total, steady
        figures["first"][system.name] = first * 1000
        log(f"{system.name}: drain {total:.0f}/s from worker start ({steady:.0f}/s from the first job done, "
            f"{first:.2f} s to it)")
    for name, latencies in pickup(systems, args.samples, args.workers, args.pause).items():
        figures["p50"][name] = percentile(latencies, 50) * 1000
        figures["p95"][name] = percentile(latencies, 95) * 1000
        log(f"{name}: pickup p50 {figures['p50'][name]:.2f} ms, p95 {figures['p95'][name]:.2f} ms")
    return figures


ROWS = [
    ("one", "enqueue {enqueue:,} one by one, a transaction each (jobs/s, best of {repeat})", True),
    ("bulk", "enqueue {bulk:,} in one transaction (jobs/s, best of {repeat})", True),
    ("drain", "drain {drain:,} no-op jobs, {workers} workers, from worker start (jobs/s)", True),
    ("steady", "the same, from the first job done (jobs/s)", True),
    ("first", "worker start to the first job done (ms)", False),
    ("p50", "pickup latency p50, commit to handler start (ms)", False),
    ("p95", "pickup latency p95 (ms)", False),
]


def report(args, figures, systems: list[System], vendor: str) -> list[tuple[str, bool]]:
    names = [system.name for system in systems]
    peers = [name for name in names if name != Ours.name]
    header = ["", *names, "bare loop (anchor)", "ours / best peer", "ours / bare loop"]
    print()
    print("| " + " | ".join(header) + " |")
    print("| --- |" + " ---: |" * (len(header) - 1))
    for key, label, higher_is_better in ROWS:
        row = figures[key]
        cells = [label.format(**vars(args))]
        for name in [*names, "bare"]:
            cells.append(fmt(row.get(name), key))
        best = best_peer(row, peers, higher_is_better)
        ours = row.get(Ours.name)
        cells.append(f"{ours / row[best]:.2f}x ({best})" if ours and best else "")
        cells.append(f"{ours / row['bare']:.2f}x" if ours and row.get("bare") else "")
        print("| " + " | ".join(cells) + " |")
    print()
    for system in systems:
        print(f"- {system.name}: {system.note(args.workers)}")
    print(f"- bare loop: {args.workers} threads, each with its own connection, one claim statement "
          "(one job) and one finishing statement per job, no process start")
    return goals(figures, peers, vendor)


def best_peer(row: dict[str, float], peers: list[str], higher_is_better: bool) -> str | None:
    present = [name for name in peers if row.get(name) is not None]
    if not present:
        return None
    return (max if higher_is_better else min)(present, key=row.__getitem__)


def fmt(value: float | None, key: str) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.2f}" if key in ("p50", "p95") else f"{value:,.0f}"


def goals(figures, peers: list[str], vendor: str) -> list[tuple[str, bool]]:
    drain, ours = figures["drain"], Ours.name
    best = best_peer(drain, peers, True)
    results = []
    if best:  # with --only, a peer may be left out: its goals are not judged
        results.append((f"drain >= 2x the best peer ({best} {drain[best]:,.0f}/s): ours {drain[ours]:,.0f}/s, "
                        f"{drain[ours] / drain[best]:.2f}x", drain[ours] >= 2 * drain[best]))
    results.append((f"drain >= 1/2 the bare loop ({drain['bare']:,.0f}/s): ours "
                    f"{drain[ours] / drain['bare']:.2f}x", drain[ours] >= drain["bare"] / 2))
    if vendor == "postgresql" and "procrastinate" in peers:
        p50, bulk = figures["p50"], figures["bulk"]
        results.append((f"pickup p50 below procrastinate's ({p50['procrastinate']:.2f} ms): ours "
                        f"{p50[ours]:.2f} ms", p50[ours] < p50["procrastinate"]))
        results.append((f"bulk enqueue above procrastinate's ({bulk['procrastinate']:,.0f}/s): ours "
                        f"{bulk[ours]:,.0f}/s", bulk[ours] > bulk["procrastinate"]))
    print()
    for text, met in results:
        print(f"- goal: {text}: **{'met' if met else 'not met'}**")
    return results


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--enqueue", type=int, default=1000, help="jobs enqueued one by one (default 1000)")
    parser.add_argument("--repeat", type=int, default=3, help="enqueue rounds; the best counts (default 3)")
    parser.add_argument("--bulk", type=int, default=5000, help="jobs enqueued in one bulk (default 5000)")
    parser.add_argument("--drain", type=int, default=5000, help="no-op jobs drained (default 5000)")
    parser.add_argument("--workers", type=int, default=4, help="workers of each system (default 4)")
    parser.add_argument("--samples", type=int, default=100, help="pickup latency samples (default 100)")
    parser.add_argument("--pause", type=float, default=0.05,
                        help="idle time before each pickup sample, seconds, plus a random part of the "
                             "system's poll period (default 0.05)")
    parser.add_argument("--only", help="comma-separated systems: jobs,procrastinate,django-q2,django-tasks-db")
    parser.add_argument("--keep", action="store_true", help="keep the PostgreSQL scratch database")
    args = parser.parse_args()

    drop = scratch_database(args.keep)
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    try:
        call_command("migrate", verbosity=0)
        sql('DELETE FROM "django_q_schedule"')  # the maintenance schedules: no cron in the middle of a run
        vendor = connection.vendor
        chosen = [cls for cls in (Ours, Procrastinate, DjangoQ, TasksDB)
                  if vendor == "postgresql" or not cls.postgres_only]
        if args.only:
            wanted = {name.strip() for name in args.only.split(",")} | {"jobs"}
            chosen = [cls for cls in chosen if slug(cls.name).split("-ours")[0] in wanted]
        systems = [cls() for cls in chosen]
        bare = Bare()
        log(f"jobs bench on {vendor} ({connection.settings_dict['NAME']}); worker logs in {LOGS}")
        load = os.getloadavg()[0]
        figures = measure(args, systems, bare)
        report(args, figures, systems, vendor)
        # the machine may run other work meanwhile: the reader should know
        print(f"\nload average (1 min) at the start {load:.2f}, at the end {os.getloadavg()[0]:.2f}")
    finally:
        drop()


if __name__ == "__main__":
    main()
