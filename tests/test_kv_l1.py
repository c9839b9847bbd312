"""The L1 cache: ``kv.l1.L1Cache`` on its own, then the store's use of it.

The unit tests drive ``L1Cache`` with the frozen clock of ``tests/fixtures/clock.py``. The store tests
run outside any test transaction, as a site does, because the store never fills
L1 inside an atomic block; they look at ``store.l1`` and at the queries a read
sends to tell an L1 hit from a database read, and change rows behind the
store's back (``KVEntry.objects...update``) to see which of the two answered.
They touch nothing but ``_kv``, so they name ``kv`` as the only available app:
the flush after each test then empties ``_kv`` alone (a flush of every table
costs more than half a second a test on PostgreSQL).
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import threading
import time

import pytest
from django.db import connection, connections, transaction

import kv
import kv.l1
from kv import receivers, watcher
from kv.l1 import L1Cache
from kv.models import KVEntry
from kv.receivers import flush_l1, invalidate_from_elsewhere
from kv.sql.base import Statements
from tachycore.runtime import runtime
from tests.helpers.processes import free_port, wait_until


@pytest.fixture(autouse=True)
def _invalidations_arrive(monkeypatch):
    """As in a process whose sync listener is live: the pytest process starts no runtime, so
    on PostgreSQL L1 would not fill at all (the tests of that switch set it themselves)."""
    monkeypatch.setattr(kv.l1, "_invalidations_arrive", lambda: True)


@pytest.fixture(autouse=True)
def _empty_l1():
    l1 = kv.get_store().l1
    if l1 is not None:
        l1.clear()


def fill(cache: L1Cache, key: str, value, ttl: float | None = None, generation: int | None = None,
         ascii_only: bool = True) -> None:
    """Fill as the store does after a read: the value, its JSON text, the key's remaining TTL."""
    text = json.dumps(value, ensure_ascii=ascii_only, separators=(",", ":"))
    cache.fill(key, "value", value, text, ttl, cache.generation if generation is None else generation)


def value_of(cache: L1Cache, key: str):
    hit = cache.get(key)
    return None if hit is None else hit[1]


# -- L1Cache --------------------------------------------------------------------------------


def test_l1cache__hit_returns_type_and_value():
    cache = L1Cache(10_000, 5)
    fill(cache, "k", {"a": [1, 2]})
    cache.fill("h", "hash", {"f": 1}, '{"f":1}', None, cache.generation)

    assert cache.get("k") == ("value", {"a": [1, 2]})
    assert cache.get("h") == ("hash", {"f": 1})
    assert cache.get("missing") is None


# the child only reads the cache (its lock is new after the fork) and leaves with os._exit
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded, use of fork:DeprecationWarning")
def test_l1cache__a_forked_child_starts_empty():
    # the child's invalidations start with its own first miss: what the parent kept must
    # not be served there (gunicorn --preload forks after the parent may have read)
    cache = L1Cache(max_bytes=10_000, ttl=60)
    cache.fill("k", "string", "parent's", '"parent\'s"', None, cache.generation)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report what its L1 holds, then leave at once
        os.write(write, b"hit" if cache.get("k") is not None else b"miss")
        os._exit(0)
    os.close(write)
    answer = os.read(read, 16)
    os.waitpid(pid, 0)
    os.close(read)
    assert answer == b"miss"
    assert cache.get("k") == ("string", "parent's")  # the parent keeps its own


def test_l1cache__never_holds_more_bytes_than_its_bound():
    cache = L1Cache(2000, 60)
    keys = [f"key-{i:03}" for i in range(50)]
    for key in keys:
        fill(cache, key, "v" * 200)

    kept = [key for key in keys if cache.get(key) is not None]

    assert kept, "the bound leaves room for several entries"
    assert kept == keys[-len(kept):], "the newest entries are the ones kept"
    assert sum(len(key) + len(json.dumps("v" * 200)) for key in kept) <= 2000
    assert cache.size <= 2000


def test_l1cache__bound_counts_bytes_not_characters():
    # PostgreSQL returns JSON text with the characters themselves (jsonb::text),
    # four bytes for each of these
    cache = L1Cache(1000, 60)
    for i in range(3):
        fill(cache, f"emoji-{i}", "😀" * 100, ascii_only=False)

    kept = [f"emoji-{i}" for i in range(3) if cache.get(f"emoji-{i}") is not None]

    assert kept
    assert sum(len(key.encode()) + len(json.dumps("😀" * 100, ensure_ascii=False).encode()) for key in kept) <= 1000


def test_l1cache__entry_larger_than_the_bound_is_not_kept_and_evicts_nothing():
    cache = L1Cache(1000, 60)
    fill(cache, "small", "s")

    fill(cache, "huge", "x" * 2000)

    assert cache.get("huge") is None
    assert value_of(cache, "small") == "s"


def test_l1cache__replacing_an_entry_counts_its_bytes_once():
    cache = L1Cache(1000, 60)
    fill(cache, "other", "o")
    for i in range(100):
        fill(cache, "k", f"{i:03}" + "x" * 300)

    assert value_of(cache, "other") == "o"
    assert value_of(cache, "k") == "099" + "x" * 300


def test_l1cache__dropped_entries_free_their_bytes():
    cache = L1Cache(10_000, 60)
    for i in range(20):
        fill(cache, f"k{i}", "x" * 100)

    cache.invalidate(*[f"k{i}" for i in range(10)])
    assert len(cache) == 10
    cache.clear()

    assert cache.size == 0
    assert len(cache) == 0


def _cache_holding_three(value: str) -> L1Cache:
    """A cache whose bound holds three entries of ``value`` under three-letter keys, not four."""
    probe = L1Cache(10**9, 60)
    fill(probe, "aaa", value)
    return L1Cache(probe.size * 3 + probe.size // 2, 60)


def test_l1cache__evicts_the_least_recently_filled_first():
    cache = _cache_holding_three("x" * 50)
    for key in ("aaa", "bbb", "ccc", "ddd"):
        fill(cache, key, "x" * 50)

    assert [key for key in ("aaa", "bbb", "ccc", "ddd") if cache.get(key)] == ["bbb", "ccc", "ddd"]


def test_l1cache__a_hit_makes_an_entry_recently_used():
    cache = _cache_holding_three("x" * 50)
    for key in ("aaa", "bbb", "ccc"):
        fill(cache, key, "x" * 50)
    assert cache.get("aaa") is not None

    fill(cache, "ddd", "x" * 50)

    assert [key for key in ("aaa", "bbb", "ccc", "ddd") if cache.get(key)] == ["aaa", "ccc", "ddd"]


def test_l1cache__refilling_an_entry_makes_it_recently_used():
    cache = _cache_holding_three("x" * 50)
    for key in ("aaa", "bbb", "ccc"):
        fill(cache, key, "x" * 50)
    fill(cache, "aaa", "y" * 50)

    fill(cache, "ddd", "x" * 50)

    assert [key for key in ("aaa", "bbb", "ccc", "ddd") if cache.get(key)] == ["aaa", "ccc", "ddd"]


def test_l1cache__entry_lives_for_the_l1_ttl(clock):
    cache = L1Cache(10_000, 5)
    fill(cache, "k", 1)

    clock.advance(4.9)
    assert value_of(cache, "k") == 1
    clock.advance(0.2)

    assert cache.get("k") is None
    assert len(cache) == 0


def test_l1cache__entry_lives_no_longer_than_the_keys_ttl(clock):
    cache = L1Cache(10_000, 5)
    fill(cache, "k", 1, ttl=1.0)

    clock.advance(0.9)
    assert value_of(cache, "k") == 1
    clock.advance(0.2)

    assert cache.get("k") is None


def test_l1cache__a_longer_key_ttl_does_not_extend_the_l1_ttl(clock):
    cache = L1Cache(10_000, 5)
    fill(cache, "k", 1, ttl=3600)

    clock.advance(5.1)

    assert cache.get("k") is None


@pytest.mark.parametrize("ttl", [0, -1.5])
def test_l1cache__key_with_no_time_left_is_not_kept(ttl):
    cache = L1Cache(10_000, 5)

    fill(cache, "k", 1, ttl=ttl)

    assert cache.get("k") is None


def vandalise(value) -> None:
    """Change every list and dict inside ``value`` in place, as a careless caller might."""
    if isinstance(value, dict):
        for item in list(value.values()):
            vandalise(item)
        value["junk"] = True
    elif isinstance(value, list):
        for item in list(value):
            vandalise(item)
        value.append("junk")


@pytest.mark.parametrize("value", [{"a": {"b": [1, 2]}}, [1, [2, {"c": 3}]]], ids=["dict", "list"])
def test_l1cache__mutating_a_returned_value_leaves_the_cache_alone(value):
    cache = L1Cache(10_000, 60)
    fill(cache, "k", json.loads(json.dumps(value)))

    vandalise(value_of(cache, "k"))
    vandalise(value_of(cache, "k"))

    assert value_of(cache, "k") == value


def test_l1cache__mutating_the_filled_object_leaves_the_cache_alone():
    cache = L1Cache(10_000, 60)
    original = {"a": [1, {"b": 2}]}
    fill(cache, "k", original)

    vandalise(original)

    assert value_of(cache, "k") == {"a": [1, {"b": 2}]}


def test_l1cache__fill_started_before_an_invalidation_is_dropped():
    cache = L1Cache(10_000, 60)
    started = cache.generation  # the reader took this before its database read

    cache.invalidate("k")  # a writer replaced the key meanwhile
    fill(cache, "k", "old", generation=started)

    assert cache.get("k") is None


def test_l1cache__fill_started_before_a_clear_is_dropped():
    cache = L1Cache(10_000, 60)
    started = cache.generation

    cache.clear()
    fill(cache, "k", "old", generation=started)

    assert cache.get("k") is None


def test_l1cache__fill_started_after_an_invalidation_is_kept():
    cache = L1Cache(10_000, 60)
    cache.invalidate("k")
    started = cache.generation

    fill(cache, "k", "new", generation=started)

    assert value_of(cache, "k") == "new"


def test_l1cache__invalidate_drops_only_the_named_keys():
    cache = L1Cache(10_000, 60)
    for key in ("a", "b", "c"):
        fill(cache, key, key)

    cache.invalidate("a", "c", "missing")

    assert [key for key in ("a", "b", "c") if cache.get(key)] == ["b"]


def test_l1cache__concurrent_use_keeps_its_byte_count_right():
    cache = L1Cache(5000, 0.002)
    keys = [f"k{i}" for i in range(30)]
    stop = time.monotonic() + 0.5
    errors: list[Exception] = []

    def hammer(seed: int) -> None:
        rng = random.Random(seed)
        try:
            while time.monotonic() < stop:
                key = rng.choice(keys)
                action = rng.random()
                if action < 0.5:
                    fill(cache, key, "x" * rng.randrange(1, 300))
                elif action < 0.9:
                    cache.get(key)
                else:
                    cache.invalidate(key)
        except Exception as e:  # handed to the test thread
            errors.append(e)

    threads = [threading.Thread(target=hammer, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    assert not errors
    assert cache.size <= 5000
    cache.invalidate(*keys)
    assert len(cache) == 0
    assert cache.size == 0


# -- the store's use of L1 ------------------------------------------------------------------

#: committed data, outside any test transaction, as a site runs
store_db = pytest.mark.django_db(transaction=True, available_apps=["kv"])


@pytest.fixture
def store():
    return kv.get_store()


def behind_the_stores_back(key: str, **fields) -> None:
    """Change a row as another process would, without telling this process's L1."""
    assert KVEntry.objects.filter(key=key).update(**fields) == 1


def in_another_thread(function):
    """Run ``function`` on a thread with its own database connection; return its result."""
    result: list = []

    def run() -> None:
        try:
            result.append(function())
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(10)
    assert result, "the thread failed"
    return result[0]


@store_db
def test_store_l1__read_fills_l1_and_a_hit_sends_no_query(store, django_assert_num_queries):
    store.set("k", {"a": 1})

    with django_assert_num_queries(1):
        assert store.get("k") == {"a": 1}
    with django_assert_num_queries(0):
        assert store.get("k") == {"a": 1}


@store_db
def test_store_l1__hash_reads_hit_l1_without_a_query(store, django_assert_num_queries):
    store.hset("h", mapping={"f": 1, "g": [2]})
    store.hgetall("h")

    with django_assert_num_queries(0):
        assert store.hgetall("h") == {"f": 1, "g": [2]}
        assert store.hget("h", "g") == [2]


@store_db
def test_store_l1__inspect_gives_type_value_and_ttl_from_l1_without_a_query(store, django_assert_num_queries):
    store.set("k", {"a": 1}, ex=100)
    store.hset("h", mapping={"f": 1})
    with django_assert_num_queries(1):
        first = store.inspect("k")
    store.inspect("h")

    with django_assert_num_queries(0):
        again = store.inspect("k")
        assert store.inspect("h") == ("hash", {"f": 1}, -1)

    assert first[:2] == again[:2] == ("value", {"a": 1})
    assert 99_000 < again[2] <= first[2] <= 100_000


@store_db
def test_store_l1__inspect_of_a_missing_or_expired_key_is_none(store, monkeypatch):
    store.set("k", 1, px=50)
    store.inspect("k")  # now in L1, with the key's own expiry

    now = kv.clock.now_ms() + 60
    monkeypatch.setattr(kv.clock, "now_ms", lambda: now)

    assert store.inspect("k") is None
    assert store.inspect("missing") is None


@store_db
def test_store_l1__mget_queries_only_for_what_l1_lacks(store, django_assert_num_queries):
    store.mset({"a": 1, "b": 2})
    store.get("a")

    with django_assert_num_queries(1):
        assert store.mget("a", "b", "missing") == [1, 2, None]
    with django_assert_num_queries(0):
        assert store.mget("b", "a") == [2, 1]


@store_db
def test_store_l1__is_used_after_the_database_changed_behind_its_back(store):
    # the premise of every test below: while an entry lives, L1 answers, not the database
    store.set("k", "cached")
    store.get("k")

    behind_the_stores_back("k", value="changed")

    assert store.get("k") == "cached"


@store_db
def test_store_l1__off_means_every_read_queries(store, settings, django_assert_num_queries):
    settings.KV = {"L1_ENABLED": False}
    store.set("k", 1)

    assert store.l1 is None
    with django_assert_num_queries(2):
        assert store.get("k") == 1
        assert store.get("k") == 1


@store_db
def test_store_l1__entry_does_not_outlive_the_keys_ttl(store, settings):
    settings.KV = {"L1_TTL": 60}
    store.set("k", "v", px=150)
    assert store.get("k") == "v"

    time.sleep(0.2)

    assert store.get("k") is None


@store_db
def test_store_l1__entry_lives_for_l1_ttl_then_the_database_answers(store, settings):
    settings.KV = {"L1_TTL": 0.2}
    store.set("k", "old")
    store.get("k")
    behind_the_stores_back("k", value="new")
    assert store.get("k") == "old"

    time.sleep(0.25)

    assert store.get("k") == "new"


@store_db
@pytest.mark.parametrize("container", ["get", "hgetall", "mget"])
def test_store_l1__returned_value_is_safe_to_mutate(store, container, django_assert_num_queries):
    value = {"a": {"b": [1, 2]}, "c": [3]}
    if container == "hgetall":
        store.hset("k", mapping=value)
    else:
        store.set("k", value)

    def read():
        return {"get": store.get, "hgetall": store.hgetall, "mget": lambda k: store.mget(k)[0]}[container]("k")

    read()  # fills L1
    with django_assert_num_queries(0):
        vandalise(read())
        assert read() == value


WRITES = {
    "set": (lambda s: s.set("k", "new"), "new"),
    "set-xx": (lambda s: s.set("k", "new", xx=True), "new"),
    "set-keepttl": (lambda s: s.set("k", "new", keepttl=True), "new"),
    "setex": (lambda s: s.setex("k", 100, "new"), "new"),
    "mset": (lambda s: s.mset({"k": "new", "other": 1}), "new"),
    "delete": (lambda s: s.delete("k"), None),
    "expire-0": (lambda s: s.expire("k", 0), None),
    "incr": (lambda s: s.incr("k"), 6),
    "decrby": (lambda s: s.decrby("k", 10), -5),
}


@store_db
@pytest.mark.parametrize("write", WRITES.values(), ids=WRITES.keys())
def test_store_l1__write_drops_the_local_entry(store, write):
    operation, expected = write
    store.set("k", 5)
    assert store.get("k") == 5

    operation(store)

    assert store.l1.get("k") is None
    assert store.get("k") == expected


HASH_WRITES = {
    "hset": (lambda s: s.hset("h", "f", 2), lambda s: s.hgetall("h"), {"f": 2}),
    "hdel": (lambda s: s.hdel("h", "f"), lambda s: s.hgetall("h"), {}),
    "hincrby": (lambda s: s.hincrby("h", "f", 5), lambda s: s.hgetall("h"), {"f": 6}),
    "mset": (lambda s: s.mset({"h": "plain"}), lambda s: s.get("h"), "plain"),
}


@store_db
@pytest.mark.parametrize("write", HASH_WRITES.values(), ids=HASH_WRITES.keys())
def test_store_l1__hash_write_drops_the_local_entry(store, write):
    operation, read, expected = write
    store.hset("h", "f", 1)
    assert store.hgetall("h") == {"f": 1}

    operation(store)

    assert store.l1.get("h") is None
    assert read(store) == expected


@store_db
def test_store_l1__expire_shortens_the_life_of_the_local_entry(store, settings):
    settings.KV = {"L1_TTL": 60}
    store.set("k", "v")
    store.get("k")

    store.pexpire("k", 100)
    time.sleep(0.15)

    assert store.get("k") is None


@store_db
def test_store_l1__read_in_atomic_does_not_fill(store):
    store.set("k", "committed")

    with transaction.atomic():
        assert store.get("k") == "committed"
        assert store.mget("k") == ["committed"]
        assert store.l1.get("k") is None

    assert store.l1.get("k") is None


@store_db
def test_store_l1__uncommitted_write_never_reaches_l1(store):
    with transaction.atomic():
        store.set("k", "uncommitted")
        assert store.get("k") == "uncommitted"
        assert store.l1.get("k") is None

    assert store.l1.get("k") is None


@store_db
def test_store_l1__write_in_atomic_drops_the_entry_at_once(store):
    store.set("k", "old")
    store.get("k")

    with transaction.atomic():
        store.set("k", "new")
        assert store.l1.get("k") is None
        assert store.get("k") == "new"


@store_db
def test_store_l1__write_in_atomic_drops_the_entry_again_after_commit(store):
    store.set("k", "old")

    with transaction.atomic():
        store.set("k", "new")
        # another thread of this process reads the committed value meanwhile and fills L1
        assert in_another_thread(lambda: store.get("k")) == "old"
        assert store.l1.get("k") == ("value", "old")
        # this transaction still reads its own write, not what L1 holds
        assert store.get("k") == "new"

    assert store.l1.get("k") is None
    assert store.get("k") == "new"


@store_db
def test_store_l1__rollback_leaves_nothing_behind(store):
    store.set("k", "old")
    store.get("k")

    with pytest.raises(RuntimeError, match="roll back"), transaction.atomic():
        store.set("k", "new")
        store.set("fresh", "new")
        assert store.get("k") == "new"
        assert store.get("fresh") == "new"
        raise RuntimeError("roll back")

    assert store.l1.get("k") is None
    assert store.l1.get("fresh") is None
    assert store.get("k") == "old"
    assert store.get("fresh") is None


@store_db
def test_store_l1__ttl_reads_the_database(store):
    store.set("k", "v")
    store.get("k")

    behind_the_stores_back("k", expire_at=int(time.time() * 1000) + 50_000)

    assert 49 <= store.ttl("k") <= 50
    assert 49_000 <= store.pttl("k") <= 50_000


@store_db
def test_store_l1__incr_reads_the_database(store):
    store.set("n", 5)
    store.get("n")

    behind_the_stores_back("n", value=100)

    assert store.incr("n") == 101
    assert store.get("n") == 101


@store_db
def test_store_l1__hincrby_reads_the_database(store):
    store.hset("h", "n", 5)
    store.hgetall("h")

    behind_the_stores_back("h", value={"n": 100})

    assert store.hincrby("h", "n") == 101


@store_db
def test_store_l1__lock_reads_the_database(store):
    token = store.lock("L", 30)
    assert store.get("L") == token  # the lock is now in L1

    KVEntry.objects.filter(key="L").delete()  # its holder's row is gone (say, cleaned up)

    assert store.lock("L", 30) is not None


@store_db
def test_store_l1__unlock_reads_the_database(store):
    token = store.lock("L", 30)
    store.get("L")

    behind_the_stores_back("L", value="someone-else")

    assert store.unlock("L", token) is False
    assert store.get("L") == "someone-else"


@store_db
@pytest.mark.parametrize("read", ["get", "mget"])
def test_store_l1__fill_racing_an_invalidation_does_not_put_the_old_value_back(store, monkeypatch, read):
    store.set("k", "old")
    method = "get" if read == "get" else "get_many"
    original = getattr(Statements, method)

    def read_then_lose_the_race(self, *args):
        rows = original(self, *args)
        # another process replaces the value and its invalidation arrives before this fill
        KVEntry.objects.filter(key="k").update(value="new")
        invalidate_from_elsewhere({"keys": ["k"]})
        return rows

    monkeypatch.setattr(Statements, method, read_then_lose_the_race)
    assert (store.get("k") if read == "get" else store.mget("k")[0]) == "old"
    monkeypatch.undo()

    assert store.l1.get("k") is None
    assert store.get("k") == "new"


@store_db
def test_store_l1__invalidation_from_another_process_drops_the_named_keys(store):
    store.mset({"a": 1, "b": 2})
    store.mget("a", "b")

    invalidate_from_elsewhere({"keys": ["a"]})

    assert store.l1.get("a") is None
    assert store.l1.get("b") == ("value", 2)


@store_db
def test_store_l1__invalidation_of_everything_from_another_process_clears_l1(store):
    store.mset({"a": 1, "b": 2})
    store.mget("a", "b")

    invalidate_from_elsewhere({"all": True})

    assert len(store.l1) == 0


@store_db
def test_store_l1__flush_l1_empties_it(store):
    store.mset({"a": 1, "b": 2})
    store.mget("a", "b")

    flush_l1()

    assert len(store.l1) == 0


@store_db
def test_store_l1__not_filled_while_invalidations_cannot_arrive(store, monkeypatch, django_assert_num_queries):
    store.set("k", "v")
    monkeypatch.setattr(kv.l1, "_invalidations_arrive", lambda: False)

    with django_assert_num_queries(2):
        assert store.get("k") == "v"
        assert store.mget("k") == ["v"]

    assert store.l1.get("k") is None


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("event", ["on_disconnect", "on_reconnect"], ids=["lost", "back"])
def test_store_l1__emptied_when_the_sync_listener_is_lost_or_back(event):
    """What the adapter calls once its listener is not live, and once it is back (messages
    may have been lost in between)."""
    store = kv.get_store()
    store.mset({"a": 1, "b": 2})
    store.mget("a", "b")
    assert len(store.l1) == 2

    getattr(runtime.pubsub, event)()

    assert len(store.l1) == 0


@pytest.mark.postgres
def test_invalidations_arrive__postgresql_with_the_in_process_adapter_l1_relies_on_its_ttl(settings):
    settings.TACHYCORE = {**settings.TACHYCORE, "PUBSUB": "tachycore.pubsub.memory.MemoryPubSub"}
    runtime.reset_pubsub()

    assert receivers.invalidations_arrive() is True


def test_invalidations_arrive__not_while_a_cross_process_listener_is_not_live(settings):
    pubsub = {"BACKEND": "tachycore.pubsub.redis.RedisPubSub",
              "OPTIONS": {"URL": f"redis://127.0.0.1:{free_port()}/0"}}  # nobody there
    settings.TACHYCORE = {**settings.TACHYCORE, "PUBSUB": pubsub}
    runtime.reset_pubsub()

    assert receivers.invalidations_arrive() is False


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_store_l1__flushed_when_the_postgresql_listener_loses_its_connection(settings):
    settings.KV = {"L1_TTL": 60}  # only the flush can drop the entry within the test
    store = kv.get_store()
    runtime.start(kind="command")
    assert runtime.pubsub.wait_listening(5)
    store.set("k", "v")
    store.get("k")
    time.sleep(0.2)
    assert store.l1.get("k") == ("value", "v")

    name = f"tachycore-listen {runtime.pubsub.node_id}"[:63]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = %s AND datname = current_database()",
            [name],
        )
        assert [row[0] for row in cursor.fetchall()] == [True]

    assert wait_until(lambda: store.l1.get("k") is None, timeout=5), "L1 was not flushed on reconnect"


# -- SQLite: the commit watcher (kv.watcher) ------------------------------------------------

sqlite_only = pytest.mark.skipif(connection.vendor != "sqlite", reason="the commit watcher of a SQLite file")


@pytest.fixture
def watched(monkeypatch):
    """As in a site on SQLite: L1 fills only while this process's commit watcher is live."""
    monkeypatch.setattr(kv.l1, "_invalidations_arrive", receivers.invalidations_arrive)
    runtime.reset_pubsub()
    assert not runtime.pubsub.cross_process  # SQLite's default: no messages between processes
    watcher.stop()
    yield
    watcher.stop()


def watcher_live() -> bool:
    return wait_until(receivers.invalidations_arrive, timeout=5)


def write_from_elsewhere(sql: str, params=()) -> None:
    """Commit ``sql`` on a connection of its own to the test database, as another process would."""
    other = sqlite3.connect(connection.settings_dict["NAME"], timeout=10)
    try:
        with other:
            other.execute(sql, params)
    finally:
        other.close()


def changes() -> tuple[int, int]:
    """``(counter, pending)`` of ``_kv_changes``."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT counter, pending FROM _kv_changes")
        return cursor.fetchone()


def acknowledge() -> int:
    """Clear ``pending`` as a watcher does; the counter."""
    with connection.cursor() as cursor:
        cursor.execute("UPDATE _kv_changes SET counter = counter + 1, pending = 0")
    return changes()[0]


@sqlite_only
@store_db
def test_watcher__a_write_elsewhere_leaves_l1_without_waiting_for_its_ttl(store, settings, watched):
    settings.KV = {"L1_TTL": 60}
    store.set("k", "v")
    assert watcher_live()
    time.sleep(5 * watcher.WATCH_INTERVAL)  # the watcher has seen this process's own write
    assert store.get("k") == "v"
    assert store.l1.get("k") == ("value", "v")

    write_from_elsewhere("UPDATE _kv SET value = '\"elsewhere\"' WHERE key = 'k'")

    assert wait_until(lambda: store.get("k") == "elsewhere", timeout=5)


@sqlite_only
@store_db
def test_change_counter__moves_with_an_update_or_a_delete_of_a_live_row(store):
    start = acknowledge()
    store.set("k", 1)  # a new key: in nobody's L1
    store.mset({"a": 1, "b": 2})
    store.set("gone", 1, px=1)
    assert changes() == (start, 0)

    for write in (lambda: store.set("k", 2), lambda: store.incr("k"), lambda: store.expire("a", 100),
                  lambda: store.delete("b", "missing")):
        counter = acknowledge()
        write()
        assert changes() == (counter + 1, 1)

    counter = acknowledge()
    time.sleep(0.01)
    assert store.delete_expired() == 1  # an expired row is in nobody's L1 either
    assert changes() == (counter, 0)


@sqlite_only
@store_db
def test_change_counter__while_pending_writes_leave_it_alone(store):
    store.set("k", 1)
    counter = acknowledge()

    store.set("k", 2)
    store.set("k", 3)
    store.delete("k")

    assert changes() == (counter + 1, 1)


@sqlite_only
@store_db
def test_watcher__acknowledges_a_pending_change(store, watched):
    store.set("k", 1)
    assert watcher_live()
    store.set("k", 2)

    assert wait_until(lambda: changes()[1] == 0, timeout=5)  # the next write raises the counter again


@sqlite_only
@store_db
def test_watcher__without_the_triggers_l1_stays_off(store, watched, django_assert_num_queries):
    """What a later migration rebuilding ``_kv`` would do (Django's SQLite ``AlterField``)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = '_kv'")
        triggers = cursor.fetchall()
        assert sorted(name for name, _ in triggers) == sorted(watcher.TRIGGERS)
        for name, _ in triggers:
            cursor.execute(f"DROP TRIGGER {name}")
    try:
        store.set("k", "v")
        assert receivers.invalidations_arrive() is False
        time.sleep(5 * watcher.WATCH_INTERVAL)  # its looks have failed
        with django_assert_num_queries(2):
            assert store.get("k") == "v"
            assert store.get("k") == "v"
        assert store.l1.get("k") is None
    finally:
        with connection.cursor() as cursor:
            for _, sql in triggers:
                cursor.execute(sql)
    assert watcher_live()


@sqlite_only
@store_db
def test_watcher__triggers_dropped_while_it_runs_turn_l1_off(store, watched):
    """A migration that rebuilds ``_kv`` while processes run: their watchers see the schema
    change and find the triggers gone, not only a watcher started afterwards."""
    store.set("k", "v")
    assert store.get("k") == "v"
    assert watcher_live()
    with connection.cursor() as cursor:
        cursor.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = '_kv'")
        triggers = cursor.fetchall()
        for name, _ in triggers:
            cursor.execute(f"DROP TRIGGER {name}")
    try:
        store.set("other", 1)  # a commit: the next look reads the schema version
        assert wait_until(lambda: not receivers.invalidations_arrive(), timeout=5)
        assert store.l1.get("k") is None
    finally:
        with connection.cursor() as cursor:
            for _, sql in triggers:
                cursor.execute(sql)
    assert wait_until(watcher_live, timeout=5)
