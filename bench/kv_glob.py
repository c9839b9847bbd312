"""Glob patterns over many keys: how long ``GET /api/kv/keys/?pattern=`` and the admin's key
search take for the patterns an attacker would send, and for the worst ones allowed.

    psql -h 127.0.0.1 -U postgres -c 'create database tachy_glob'
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/tachy_glob .venv/bin/python bench/kv_glob.py
    DATABASE_URL=... .venv/bin/python bench/kv_glob.py --key-length 512   # every key 512 characters
    .venv/bin/python bench/kv_glob.py                                        # SQLite (a temporary file)

The keys (100,000 by default: ``key:000001:`` plus 0 to 59 hex digits, or padded with hex
digits to ``--key-length``) are written by one ``INSERT ... SELECT``; the ``_kv`` table is emptied
first. Each line prints the status of the API and of the admin search and the time of each
(the best of ``--repeat`` runs; a run over 5 s is not repeated). The anchor is the same
``SELECT`` with the plain pattern ``*`` through the API.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(os.environ.get("BENCH_ROOT", Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(ROOT))
from bench.demo_site import use_demo_site  # noqa: E402 (after the path it is found on)

use_demo_site()
os.environ.setdefault("KV_HTTP_ENABLED", "true")
os.environ.setdefault("ALLOWED_HOSTS", "testserver")


def fill(connection, count: int, key_length: int | None) -> None:
    """``count`` keys in one statement: ``key:000001:`` plus 0 to 59 hex digits (as the test
    of the limits writes them), or each padded with hex digits to ``key_length``."""
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM _kv")
        if connection.vendor == "postgresql":
            start = "'key:' || lpad(g::text, 6, '0') || ':'"
            hex_digits = "repeat(md5(g::text), 16)"
            key = f"left({start} || {hex_digits}, {key_length})" if key_length else f"{start} || left({hex_digits}, mod(g, 60))"
            cursor.execute(
                "INSERT INTO _kv (key, type, value, expire_at, created, updated) "
                f"SELECT {key}, 'value', '1'::jsonb, NULL, now(), now() FROM generate_series(1, %s) AS g",
                [count],
            )
        else:
            start = "'key:' || printf('%%06d', g) || ':'"
            hex_digits = "lower(hex(randomblob(256)))"
            key = f"substr({start} || {hex_digits}, 1, {key_length})" if key_length else f"{start} || substr({hex_digits}, 1, g %% 60)"
            cursor.execute(
                "WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < %s) "
                "INSERT INTO _kv (key, type, value, expire_at, created, updated) "
                f"SELECT {key}, 'value', '1', NULL, datetime('now'), datetime('now') FROM s",
                [count],
            )
        cursor.execute("ANALYZE _kv")


def timed(get, url: str, params: dict, repeat: int) -> tuple[int, float]:
    """``(status, seconds)``: the best of ``repeat`` requests (one when it takes over 5 s)."""
    best, status = float("inf"), 0
    for _ in range(repeat):
        start = time.perf_counter()
        status = get(url, params).status_code
        best = min(best, time.perf_counter() - start)
        if best > 5:
            break
    return status, best


def patterns(max_length: int, max_wildcards: int) -> list[tuple[str, str]]:
    """``(name, pattern)``: the issue's patterns, then the worst ones the limits allow."""
    w = max_wildcards
    return [
        ("* (anchor)", "*"),
        ("? x 1000", "?" * 1000),
        ("? x 5000", "?" * 5000),
        ("*a x 200 + b", "*a" * 200 + "b"),
        (f"? x {w} (most wildcards)", "?" * w),
        (f"* + ? x {w - 1}", "*" + "?" * (w - 1)),
        (f"*a x {w} + b", "*a" * w + "b"),
        (f"*? x {w // 2} + x", "*?" * (w // 2) + "x"),
        (f"* + ? x {w - 1} + x.. ({max_length} chars)", ("*" + "?" * (w - 1)).ljust(max_length, "x")),
        (f"literal prefix, {max_length} chars", ("key:0001" + "*?" * (w // 2)).ljust(max_length, "x")),
        (f"? x {w + 1} (one over)", "?" * (w + 1)),
        (f"{max_length + 1} chars (one over)", "key:" + "x" * (max_length - 3)),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=100_000, help="how many keys")
    parser.add_argument("--key-length", type=int, default=None,
                        help="every key this long (at most 512); by default 11 to 70 characters")
    parser.add_argument("--repeat", type=int, default=3, help="requests per pattern (the best counts)")
    args = parser.parse_args()

    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.urls import reverse

    from kv.sql import glob

    call_command("migrate", verbosity=0)
    fill(connection, args.keys, args.key_length)
    user, _ = get_user_model().objects.get_or_create(username="bench-glob", is_staff=True, is_superuser=True)
    client = Client(raise_request_exception=False)  # a 500 is a figure too
    client.force_login(user)
    admin_url = reverse("admin:kv_kventry_changelist")
    # the limits of the code under test; code from before them (BENCH_ROOT) gets the same patterns
    max_length = getattr(glob, "MAX_PATTERN_LENGTH", 256)
    max_wildcards = getattr(glob, "MAX_PATTERN_WILDCARDS", 16)

    print(f"{connection.vendor}, {args.keys} keys of {args.key_length or '11 to 70'} characters, code in {ROOT}")
    print(f"{'pattern':<44} {'API':>14} {'admin search':>16}")
    for name, pattern in patterns(max_length, max_wildcards):
        api_status, api_time = timed(client.get, "/api/kv/keys/", {"pattern": pattern, "limit": 100}, args.repeat)
        admin_status, admin_time = timed(client.get, admin_url, {"q": pattern}, args.repeat)
        print(f"{name:<44} {api_status} {api_time:8.3f} s   {admin_status} {admin_time:8.3f} s", flush=True)


if __name__ == "__main__":
    main()
