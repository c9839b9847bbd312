"""``store.scan`` and ``store.scan_iter``: Redis's SCAN over the ``_kv`` table.

A scan walks the keys in key order, ``count`` rows a call, and returns the live keys among
them; a cursor of 0 starts and ends it. The tests check what a caller relies on: every key
once, expired and cache rows left out, the glob of ``keys()``, the bound ``count`` puts on a
call, cursors a client can hand back and clear errors for the rest, and, with another
process adding, deleting and rewriting keys while a scan runs, every key present from start
to end returned exactly once and no key twice.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import pytest

import kv
from kv.errors import InvalidCursor, InvalidPattern, InvalidValue
from kv.scans import MAX_COUNT, MAX_CURSOR_LENGTH, cursor_after, key_after
from kv.sql.glob import MAX_PATTERN_WILDCARDS
from kv.store import KVStore
from tachycore.context import acting_as
from tachycore.errors import CapabilityDenied
from tests.helpers.processes import ROOT, wait_until


@pytest.fixture
def store(db):
    return kv.get_store()


def every_call(store, match=None, count=None, **options) -> list[tuple[int | str, list[str]]]:
    """The ``(cursor, keys)`` of each call of a whole scan, from cursor 0 to cursor 0."""
    calls, cursor = [], 0
    while True:
        cursor, keys = store.scan(cursor, match, count, **options)
        calls.append((cursor, keys))
        if cursor == 0:
            return calls
        assert len(calls) < 10_000, "the scan does not end"


def write_many(store, keys: list[str], value=0) -> None:
    for start in range(0, len(keys), 500):
        store.mset(dict.fromkeys(keys[start:start + 500], value))


# -- the walk ------------------------------------------------------------------------------------


def test_scan__an_empty_store_is_done_at_the_first_call(store):
    assert store.scan() == (0, [])


def test_scan__from_cursor_0_to_cursor_0_every_key_once_in_key_order(store):
    names = [f"user:{i}" for i in range(23)] + ["0", "a/b", "sp ace", "ünï", "\U0001f600"]
    write_many(store, names)
    store.hset("h", "f", 1)

    calls = every_call(store, count=5)

    seen = [key for _, keys in calls for key in keys]
    assert seen == sorted([*names, "h"]) == store.keys()
    assert all(isinstance(cursor, str) for cursor, _ in calls[:-1]) and calls[-1][0] == 0


def test_scan_iter__yields_what_the_scan_returns(store):
    write_many(store, [f"k{i:02}" for i in range(30)])

    assert list(store.scan_iter(count=7)) == [key for _, keys in every_call(store, count=7) for key in keys]
    assert list(store.scan_iter()) == store.keys()


def test_scan__count_is_how_many_rows_a_call_reads_10_by_default(store):
    write_many(store, [f"k{i:02}" for i in range(25)])

    cursor, first = store.scan()
    assert first == [f"k{i:02}" for i in range(10)]
    assert store.scan(cursor, count=3) == (cursor_after("k12"), ["k10", "k11", "k12"])
    assert store.scan(cursor_after("k12"), count=100) == (0, [f"k{i:02}" for i in range(13, 25)])


def test_scan_iter__holds_one_call_of_count_keys_at_a_time(store, monkeypatch):
    write_many(store, [f"k{i:02}" for i in range(25)])
    returned = []

    def scan(*args, **kwargs):
        cursor, keys = KVStore.scan(store, *args, **kwargs)
        returned.append(len(keys))
        return cursor, keys

    monkeypatch.setattr(store, "scan", scan)
    iterator = store.scan_iter(count=10)
    first = [next(iterator) for _ in range(10)]

    assert returned == [10] and first == [f"k{i:02}" for i in range(10)]  # one call so far
    assert len(list(iterator)) == 15 and returned == [10, 10, 5]


def test_scan__count_is_capped_at_max_count(store):
    write_many(store, [f"k{i:05}" for i in range(MAX_COUNT + 1)])

    cursor, keys = store.scan(count=10**9)

    assert len(keys) == MAX_COUNT and cursor == cursor_after(f"k{MAX_COUNT - 1:05}")
    assert store.scan(cursor, count=10**9) == (0, [f"k{MAX_COUNT:05}"])


def test_scan__limit_stops_at_limit_keys_and_the_next_call_goes_on_after_the_last(store):
    write_many(store, [f"k{i:02}" for i in range(20)])

    cursor, keys = store.scan(count=100, limit=3)

    assert (cursor, keys) == (cursor_after("k02"), ["k00", "k01", "k02"])
    assert store.scan(cursor, count=100, limit=100) == (0, [f"k{i:02}" for i in range(3, 20)])


# -- what a call leaves out ------------------------------------------------------------------------


def test_scan__leaves_out_expired_keys_which_count_toward_count(store, clock):
    store.set("a", 1)
    store.set("b", 1, ex=5)
    store.set("c", 1, ex=5)
    store.set("d", 1)
    store.set("e", 1, ex=50)
    clock.advance(10)

    assert store.scan(count=4) == (cursor_after("d"), ["a", "d"])
    assert list(store.scan_iter(count=2)) == ["a", "d", "e"]


def test_scan__leaves_out_the_cache_backends_rows(store, settings):
    from django.core.cache import caches

    settings.CACHES = {**settings.CACHES, "kvtest": {"BACKEND": "kv.cache.KVCache"}}
    caches["kvtest"].set("page", "<html>")
    store.set("mine", 1)

    assert list(store.scan_iter()) == ["mine"] == store.keys()


def test_scan__type_keeps_values_or_hashes(store):
    store.mset({"v1": 1, "v2": [2]})
    store.hset("h1", "f", 1)

    assert list(store.scan_iter(_type="hash")) == ["h1"]
    assert list(store.scan_iter(_type="value")) == ["v1", "v2"]


# -- match -------------------------------------------------------------------------------------------

KEYS = ["user:1", "user:2", "user:10", "a%b", "a_b", "axb", "percent%", "session:x", "a*b", "[x]"]


@pytest.mark.parametrize("pattern", [
    "user:*", "user:?", "user:[1-1]*", "[a-m]*", "a%b", "a_b", "a?b", "*%*", "user", "a\\*b", "\\[x]", "*",
    "**", "", "[]*", "[^u]*",
], ids=repr)
def test_scan__match_matches_as_keys_does(store, pattern):
    write_many(store, KEYS)

    assert list(store.scan_iter(pattern, count=3)) == store.keys(pattern)


def test_scan__match_reads_only_the_keys_under_its_literal_prefix(store):
    write_many(store, [f"a{i:03}" for i in range(100)] + [f"b{i}" for i in range(10)])

    # 10 rows read, all of them under "b": the keys before "b" were never read
    cursor, keys = store.scan(0, "b*", count=10)

    assert keys == [f"b{i}" for i in range(10)]
    assert store.scan(cursor, "b*", count=10) == (0, [])


def test_scan__match_refuses_what_keys_refuses(store):
    with pytest.raises(InvalidPattern, match=f"at most {MAX_PATTERN_WILDCARDS} wildcards"):
        store.scan(0, "?" * (MAX_PATTERN_WILDCARDS + 1))
    with pytest.raises(InvalidPattern, match="must be a string"):
        list(store.scan_iter(match=b"a*"))


# -- cursors -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["a", "0", "user:1", "a/b?c=d&e", "ünï", "\U0001f600", "\\u0000",
                                 "x" * 512, "\U0010ffff" * 512], ids=lambda key: repr(key)[:20])
def test_cursor__any_key_round_trips_through_a_url_safe_cursor(key):
    cursor = cursor_after(key)

    assert key_after(cursor) == key
    assert re.fullmatch(r"k[A-Za-z0-9_-]+", cursor) and len(cursor) <= MAX_CURSOR_LENGTH


def test_cursor__the_string_0_starts_as_0_does(store):
    write_many(store, ["a", "b"])

    assert store.scan("0") == store.scan(0) == (0, ["a", "b"])


def test_cursor__a_scan_goes_on_after_a_key_that_no_longer_exists(store):
    write_many(store, ["a", "b", "c", "d"])
    cursor, _ = store.scan(count=2)
    store.delete("b")

    assert store.scan(cursor) == (0, ["c", "d"])


@pytest.mark.parametrize("cursor", [
    1, -1, True, 0.0, 1.5, None, b"0", [], "", "1", "00", " 0", "k", "x" + cursor_after("a")[1:],
    cursor_after("a") + "=", cursor_after("a") + "!", "kYQ=", "kYR",  # padding, last bits not zero
    "k" + "_w",  # not UTF-8
    cursor_after("a\x00b"), cursor_after("x" * 513), "k" + "A" * (MAX_CURSOR_LENGTH + 10),
    "kü",
], ids=repr)
def test_cursor__anything_but_0_or_a_returned_cursor_is_invalid_cursor(store, cursor):
    with pytest.raises(InvalidCursor, match=r"is not a scan cursor: give 0 to start a scan"):
        store.scan(cursor)


def test_cursor__an_invalid_cursor_is_an_invalid_value():
    # the HTTP API answers InvalidValue with a 400
    assert issubclass(InvalidCursor, InvalidValue)


@pytest.mark.parametrize(("options", "message"), [
    ({"count": 0}, "count must be a whole number of at least 1"),
    ({"count": "10"}, "count must be a whole number"),
    ({"count": True}, "count must be a whole number"),
    ({"limit": 0}, "limit must be a whole number of at least 1"),
    ({"_type": "cache"}, "_type must be one of 'value', 'hash' or None"),
], ids=repr)
def test_scan__bad_arguments_are_invalid_value(store, options, message):
    with pytest.raises(InvalidValue, match=message):
        store.scan(0, **options)


def test_scan__a_plugin_needs_kv_at_read(store):
    store.set("secret", 1)

    with acting_as("notes"), pytest.raises(CapabilityDenied, match="may not use kv at READ"):
        store.scan()
    with acting_as("notes"), pytest.raises(CapabilityDenied):
        next(store.scan_iter())


# -- while others write --------------------------------------------------------------------------------

#: adds and deletes keys between the stable ones ("k:00042:c<n>" sorts right after
#: "k:00042:s"'s neighbours), rewrites stable ones, until it reads "stop"; prints the time of
#: each write
WRITER = r"""
import json
import random
import sys
import threading
import time

import django

django.setup()

import kv

store = kv.get_store()
stable = int(sys.argv[1])
stop = threading.Event()
print("ready", flush=True)
assert sys.stdin.readline().strip() == "go"
threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True).start()
rng = random.Random(15)
added, times = [], []
while not stop.is_set():
    i, roll = rng.randrange(stable), rng.random()
    if roll < 0.5 or not added:
        key = f"k:{i:05}:{rng.choice('acz')}{rng.randrange(100)}"
        store.set(key, 1)
        added.append(key)
    elif roll < 0.85:
        store.delete(added.pop(rng.randrange(len(added))))
    else:
        store.set(f"k:{i:05}:s", "rewritten")  # a stable key's row changes under the scan
    times.append(time.monotonic())
print("times", json.dumps(times), flush=True)
"""
STABLE = 2000


@pytest.mark.django_db(transaction=True)
def test_scan__every_key_present_throughout_once_while_another_process_adds_and_deletes(subprocess_env):
    store = kv.get_store()
    stable = [f"k:{i:05}:s" for i in range(STABLE)]
    write_many(store, stable)
    # the writer's PostgreSQL session commits without waiting for the disk: more writes race the scan
    env = {**subprocess_env, "PGOPTIONS": "-c synchronous_commit=off"}
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(STABLE)], env=env, cwd=ROOT,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "ready", writer.stderr.read()
        writer.stdin.write("go\n")
        writer.stdin.flush()
        assert wait_until(lambda: store.keys("k:*[acz]*", limit=1), timeout=30), "the writer wrote nothing"

        seen, cursor, started = [], 0, time.monotonic()
        while True:
            cursor, keys = store.scan(cursor, "k:*", count=20)
            seen.extend(keys)
            if cursor == 0:
                break
            time.sleep(0.005)  # the writer's changes land between the calls too
        ended = time.monotonic()

        writer.stdin.write("stop\n")
        writer.stdin.flush()
        out, err = writer.communicate(timeout=60)
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.communicate()
    assert writer.returncode == 0, err

    times = json.loads(next(line for line in out.splitlines() if line.startswith("times "))[6:])
    during = sum(1 for moment in times if started < moment < ended)
    assert during >= 100, f"only {during} writes while the scan ran: nothing raced"
    assert seen == sorted(set(seen)), "a key came twice, or out of key order"
    assert set(stable) <= set(seen), f"missed {sorted(set(stable) - set(seen))[:5]}"
    assert all(re.fullmatch(r"k:\d{5}:(s|[acz]\d+)", key) for key in seen)
    assert len(seen) > STABLE  # keys the writer added were found too (those it kept long enough)
