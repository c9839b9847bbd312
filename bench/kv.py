"""The key-value store against its anchors, measured in one run on one database.

    .venv/bin/python bench/kv.py                                                   # SQLite (a temporary file)
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/tachy_bench .venv/bin/python bench/kv.py

Each line prints our figure, the anchor measured in the same run, their ratio
and the goal. Anchors: Django's LocMemCache and DatabaseCache, a raw primary-key
SELECT and a raw single-statement upsert on the same connection (psycopg or
sqlite3, no Django in between), and, for the reader, redis-py against the local
Redis (``pip install -e '.[bench]'``; skipped when Redis is not reachable).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(os.environ.get("BENCH_ROOT") or Path(__file__).resolve().parent.parent)  # BENCH_ROOT: other code
sys.path.insert(0, str(ROOT))
from bench.demo_site import use_demo_site  # noqa: E402 (after the path it is found on)

use_demo_site()

VALUE = "x" * 98  # 100 bytes as JSON
#: a 100-byte JSON object (compact, as the store writes it), with a list inside: a hit must
#: hand out a copy the caller may change
OBJECT = {"id": 1234, "name": "Ada Lovelace", "email": "ada@example.org", "roles": ["admin", "editor"], "active": True}
assert len(json.dumps(OBJECT, separators=(",", ":"))) == 100
RESULTS: list[tuple[str, float, str, float, str, bool]] = []
NOTES: list[str] = []  # figures beside the goals, for the reader


def per_op(fn, n: int, repeat: int = 5) -> float:
    """Seconds per call: the best of ``repeat`` runs of ``n`` calls."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - start) / n)
    return best


def paired(ours_fn, anchor_fn, n: int, repeat: int = 5) -> tuple[float, float]:
    """``per_op`` of both, their runs taken in turn (ours, anchor, ours...): a change of the
    machine's pace during the measurement reaches both alike. Best of ``repeat`` each."""
    ours, anchor = float("inf"), float("inf")
    for _ in range(repeat):
        ours = min(ours, per_op(ours_fn, n, 1))
        anchor = min(anchor, per_op(anchor_fn, n, 1))
    return ours, anchor


def record(name: str, ours: float, anchor_name: str, anchor: float, goal: str, met: bool) -> None:
    RESULTS.append((name, ours, anchor_name, anchor, goal, met))


def fmt(seconds: float) -> str:
    return f"{seconds * 1e6:8.2f} µs"


def raw_statements(connection):
    """The raw driver cursor and the anchor statements for this database."""
    connection.ensure_connection()
    raw = connection.connection.cursor()
    if connection.vendor == "postgresql":
        select = "SELECT value::text, expire_at FROM _kv WHERE key = %s"
        upsert = ("INSERT INTO _kv (key, type, value, expire_at, created, updated) "
                  "VALUES (%s, 'value', %s::jsonb, NULL, now(), now()) ON CONFLICT (key) DO UPDATE "
                  "SET value = excluded.value, expire_at = NULL, updated = excluded.updated")
        incr = ("INSERT INTO _kv (key, type, value, expire_at, created, updated) "
                "VALUES (%s, 'value', '1'::jsonb, NULL, now(), now()) ON CONFLICT (key) DO UPDATE "
                "SET value = to_jsonb((_kv.value #>> '{}')::bigint + 1), updated = excluded.updated "
                "RETURNING (value #>> '{}')::bigint")
    else:
        select = "SELECT value, expire_at FROM _kv WHERE key = ?"
        upsert = ("INSERT INTO _kv (key, type, value, expire_at, created, updated) "
                  "VALUES (?, 'value', ?, NULL, datetime('now'), datetime('now')) ON CONFLICT (key) DO UPDATE "
                  "SET value = excluded.value, expire_at = NULL, updated = excluded.updated")
        incr = ("INSERT INTO _kv (key, type, value, expire_at, created, updated) "
                "VALUES (?, 'value', '1', NULL, datetime('now'), datetime('now')) ON CONFLICT (key) DO UPDATE "
                "SET value = CAST(CAST(_kv.value AS INTEGER) + 1 AS TEXT), updated = excluded.updated "
                "RETURNING CAST(value AS INTEGER)")
    return raw, select, upsert, incr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the number of calls")
    parser.add_argument("--prepare-threshold", type=int, default=None,
                        help="PostgreSQL: OPTIONS['prepare_threshold'] (Django's default, None, prepares "
                             "nothing); with it the store prepares its hot statements")
    args = parser.parse_args()

    import django

    django.setup()
    if args.prepare_threshold is not None:
        from django.conf import settings

        settings.DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = args.prepare_threshold
    from django.core.cache.backends.db import DatabaseCache
    from django.core.cache.backends.locmem import LocMemCache
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import override_settings

    import kv
    from tachycore.runtime import runtime

    call_command("migrate", verbosity=0)
    call_command("createcachetable", "bench_django_cache", verbosity=0)
    # as in a web process: on PostgreSQL L1 fills only while the sync listener is live
    runtime.start(kind="command")
    store = kv.get_store()
    n = int(20_000 * args.scale)
    n_db = int(2_000 * args.scale)

    # -- L1 hit ----------------------------------------------------------------------------
    locmem = LocMemCache("bench", {})
    for name, value, goal, met in [
        ("get, L1 hit (100-byte object)", OBJECT, "<= 1/4", lambda ours, anchor: ours <= anchor / 4),
        ("get, L1 hit (100-byte string)", VALUE, "<= 1/4 and < 1 µs",
         lambda ours, anchor: ours <= anchor / 4 and ours < 1e-6),
    ]:
        store.set("bench:l1", value)
        assert store.get("bench:l1") == value  # fills L1
        locmem.set("bench:l1", value)  # LocMemCache pickles: its get unpickles a fresh copy
        ours = per_op(lambda: store.get("bench:l1"), n)
        anchor = per_op(lambda: locmem.get("bench:l1"), n)
        record(name, ours, "LocMemCache.get", anchor, goal, met(ours, anchor))

    raw, select, upsert, incr = raw_statements(connection)
    dbcache = DatabaseCache("bench_django_cache", {})
    dbcache.set("bench:l2", VALUE)
    store.set("bench:l2", VALUE)
    raw.execute(upsert, ["bench:raw", json.dumps(VALUE)])

    # -- L2 get ----------------------------------------------------------------------------
    with override_settings(KV={"L1_ENABLED": False}):
        assert store.get("bench:l2") == VALUE
        def raw_get():
            raw.execute(select, ["bench:raw"])
            json.loads(raw.fetchone()[0])

        ours, anchor = paired(lambda: store.get("bench:l2"), raw_get, n_db)
        django_db = per_op(lambda: dbcache.get("bench:l2"), n_db)
        # issue 15: at most 1.3x on SQLite (1.5x before)
        get_goal = 1.3 if connection.vendor == "sqlite" else 1.5
        record("get, L1 off", ours, "raw PK SELECT", anchor, f"<= {get_goal}x", ours <= get_goal * anchor)
        record("get, L1 off", ours, "DatabaseCache.get", django_db, ">= 3x faster", django_db >= 3 * ours)

        # -- set and incr ------------------------------------------------------------------
        # each set writes the next of 1,000 different 100-byte values, the same sequence for
        # ours, the anchor and DatabaseCache: with one value repeated, the anchor's upsert
        # (its datetime('now') changes once a second) would leave the row byte for byte as it
        # was, and SQLite then writes no page at all, while the store stamps `updated` to the
        # microsecond and always writes: no longer the same work
        values = [f"{i:03d}" + VALUE[3:] for i in range(1000)]
        texts = [json.dumps(value) for value in values]

        def cycling(call):
            position = [0]

            def step():
                position[0] = (position[0] + 1) % 1000
                call(position[0])

            return step

        ours = per_op(cycling(lambda i: store.set("bench:set", values[i])), n_db)
        anchor = per_op(cycling(lambda i: raw.execute(upsert, ["bench:rawset", json.dumps(values[i])])), n_db)
        django_db = per_op(cycling(lambda i: dbcache.set("bench:set", values[i])), n_db)
        record("set", ours, "raw upsert", anchor, "<= 1.3x", ours <= 1.3 * anchor)
        record("set", ours, "DatabaseCache.set", django_db, ">= 3x faster", django_db >= 3 * ours)
        same = per_op(lambda: raw.execute(upsert, ["bench:rawsame", texts[0]]), n_db)
        ours_same = per_op(lambda: store.set("bench:same", values[0]), n_db)
        NOTES.append(f"one value repeated: raw upsert {fmt(same)}, set {fmt(ours_same)} "
                     f"({ours_same / same:.2f}x; on SQLite the raw upsert then rewrites nothing)")

        def raw_incr():
            raw.execute(incr, ["bench:rawincr"])
            raw.fetchone()

        ours, anchor = paired(lambda: store.incr("bench:incr"), raw_incr, n_db)
        # issue 15: at most 1.2x on PostgreSQL (kv_incr, a function whose plan stays cached)
        incr_goal = 1.2 if connection.vendor == "postgresql" else 1.3
        record("incr", ours, "raw upsert RETURNING", anchor, f"<= {incr_goal}x", ours <= incr_goal * anchor)

    prepare = connection.connection.prepare_threshold if connection.vendor == "postgresql" else None
    print(f"kv on {connection.vendor} ({connection.settings_dict['NAME']}), best of 5 runs"
          + (f", prepare_threshold {prepare}" if prepare is not None else ""))
    print(f"{'operation':30} {'ours':>11}   {'anchor':24} {'anchor':>11} {'ratio':>7}  goal")
    for name, ours, anchor_name, anchor, goal, met in RESULTS:
        print(f"{name:30} {fmt(ours)}   {anchor_name:24} {fmt(anchor)} {ours / anchor:6.2f}x  "
              f"{goal}: {'met' if met else 'NOT met'}")
    for note in NOTES:
        print(f"for the reader, {note}")
    redis_figures(n_db)


def redis_figures(n: int) -> None:
    try:
        import redis

        client = redis.Redis(host="127.0.0.1", port=6379, db=15, socket_connect_timeout=1)
        client.ping()
    except Exception as e:  # noqa: BLE001 - any reason: the reader's figures are optional
        print(f"redis-py: skipped ({e})")
        return
    client.set("bench:redis", VALUE)
    figures = {
        "GET": per_op(lambda: client.get("bench:redis"), n),
        "SET": per_op(lambda: client.set("bench:redis", VALUE), n),
        "INCR": per_op(lambda: client.incr("bench:redis:incr"), n),
    }
    print("for the reader, redis-py against the local Redis: "
          + ", ".join(f"{name} {seconds * 1e6:.1f} µs" for name, seconds in figures.items()))
    statistics.mean(figures.values())


if __name__ == "__main__":
    main()
