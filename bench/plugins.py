"""How fast does a plugin state change reach another process? (PostgreSQL)

Measures, over N changes (``--changes``, default 100), the time from the commit
of ``plugin_manager.disable/enable("notes")`` to the moment another process (a
real ``runserver``) serves the new state (``/api/notes/`` 404 or 200), next to
the anchor measured in the same run: the delivery time of a raw PostgreSQL
``NOTIFY`` from this process to a listener in another process.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test .venv/bin/python bench/plugins.py

The database is migrated first and its `notes` plugin is toggled: use a
scratch database. Goal: p99 under 100 ms.
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo.settings")

LISTENER = r"""
import sys, time, psycopg
conn = psycopg.connect(sys.argv[1], autocommit=True)
conn.execute("LISTEN bench_raw")
print("ready", flush=True)
for notify in conn.notifies():
    print(notify.payload, time.monotonic(), flush=True)
    if notify.payload == "stop":
        break
"""


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))
    return ordered[index]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status_of(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code


def raw_notify_latencies(changes: int) -> list[float]:
    """Seconds from NOTIFY's commit here to its arrival in a listening process."""
    from django.db import connection

    params = connection.get_connection_params()
    dsn = " ".join(f"{key}={params[key]}" for key in ("dbname", "user", "host", "port") if params.get(key))
    listener = subprocess.Popen([sys.executable, "-c", LISTENER, dsn], stdout=subprocess.PIPE, text=True)
    assert listener.stdout.readline().strip() == "ready"
    sent = {}
    with connection.cursor() as cursor:
        for i in range(changes):
            cursor.execute("SELECT pg_notify('bench_raw', %s)", [str(i)])  # autocommit: sent at once
            sent[str(i)] = time.monotonic()
            time.sleep(0.005)
        cursor.execute("SELECT pg_notify('bench_raw', 'stop')")
    received = {}
    for line in listener.stdout:
        payload, at = line.split()
        if payload == "stop":
            break
        received[payload] = float(at)
    listener.wait(10)
    return [received[key] - sent[key] for key in sent]


def state_change_latencies(changes: int, server: str) -> tuple[list[float], list[float]]:
    """Seconds from the commit of a plugin change to the other process serving it,
    and the time one poll of the server takes (the measurement's resolution)."""
    from django.db import transaction

    from tachycore.manager import plugin_manager

    latencies, polls = [], []
    for i in range(changes):
        enable = i % 2 == 1
        committed = []
        with transaction.atomic():
            transaction.on_commit(lambda stamps=committed: stamps.append(time.monotonic()))  # first after COMMIT
            (plugin_manager.enable if enable else plugin_manager.disable)("notes")
        want = 200 if enable else 404
        while True:
            before = time.monotonic()
            got = status_of(server + "/api/notes/")
            polls.append(time.monotonic() - before)
            if got == want:
                latencies.append(time.monotonic() - committed[0])
                break
            if time.monotonic() - committed[0] > 10:
                raise SystemExit(f"change {i}: the server did not serve {want} within 10 s")
        time.sleep(0.01)
    return latencies, polls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--changes", type=int, default=100)
    args = parser.parse_args()

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    if connection.vendor != "postgresql":
        raise SystemExit("bench/plugins.py measures LISTEN/NOTIFY: set DATABASE_URL=postgres://...")
    call_command("migrate", verbosity=0)
    call_command("pm", "enable", "notes", stdout=io.StringIO())

    port = free_port()
    env = dict(os.environ, TACHYCORE_RECONCILE_INTERVAL="60s", TACHYCORE_STATE_CHECK_INTERVAL="60s")
    server_proc = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "runserver", f"127.0.0.1:{port}", "--noreload"],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    server = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while status_of_safe(server + "/api/notes/") != 200:
            if time.monotonic() > deadline:
                raise SystemExit("the server did not start")
            time.sleep(0.1)
        time.sleep(0.5)  # let its listener connect

        raw = raw_notify_latencies(args.changes)
        served, polls = state_change_latencies(args.changes, server)
    finally:
        server_proc.terminate()
        server_proc.wait(10)

    ms = 1000
    print(f"PostgreSQL {connection.pg_version // 10000}, {args.changes} changes, another process (runserver)")
    print(f"{'':38} {'p50':>9} {'p99':>9}")
    print(f"{'raw NOTIFY delivery (anchor)':38} {percentile(raw, 50) * ms:8.2f}ms {percentile(raw, 99) * ms:8.2f}ms")
    print(f"{'plugin change commit -> served':38} {percentile(served, 50) * ms:8.2f}ms "
          f"{percentile(served, 99) * ms:8.2f}ms")
    print(f"{'  one HTTP poll (resolution)':38} {statistics.median(polls) * ms:8.2f}ms")
    print(f"ratio to the anchor: p50 {percentile(served, 50) / percentile(raw, 50):.1f}x, "
          f"p99 {percentile(served, 99) / percentile(raw, 99):.1f}x")
    verdict = "met" if percentile(served, 99) < 0.1 else "NOT met"
    print(f"goal p99 < 100 ms: {verdict}")


def status_of_safe(url: str) -> int:
    try:
        return status_of(url)
    except OSError:
        return 0


if __name__ == "__main__":
    main()
