"""The cache's key space (``cache:...``): the store's Redis-like writes refuse it with
``kv.errors.ReservedKey`` and write nothing; ``kv.cache.KVCache`` keeps writing there, and
the admin's ``delete_rows`` may delete its rows."""

from __future__ import annotations

import pytest

import kv
from kv.cache import KVCache
from kv.errors import InvalidKey, ReservedKey
from kv.models import KVEntry

pytestmark = pytest.mark.django_db

WRITES = {
    "set": lambda store, key: store.set(key, 1),
    "setex": lambda store, key: store.setex(key, 10, 1),
    "mset": lambda store, key: store.mset({"plain": 1, key: 1}),
    "delete": lambda store, key: store.delete("plain", key),
    "expire": lambda store, key: store.expire(key, 10),
    "expire_now": lambda store, key: store.expire(key, 0),
    "pexpire": lambda store, key: store.pexpire(key, 10_000),
    "persist": lambda store, key: store.persist(key),
    "incr": lambda store, key: store.incr(key),
    "incrby": lambda store, key: store.incrby(key, 5),
    "decr": lambda store, key: store.decr(key),
    "hset": lambda store, key: store.hset(key, "f", 1),
    "hdel": lambda store, key: store.hdel(key, "f"),
    "hincrby": lambda store, key: store.hincrby(key, "f", 1),
    "lock": lambda store, key: store.lock(key, 10),
    "unlock": lambda store, key: store.unlock(key, "token"),
}


@pytest.fixture
def cache() -> KVCache:
    return KVCache("default", {})


def rows() -> list[tuple]:
    return sorted(KVEntry.objects.values_list("key", "type", "value", "expire_at"))


@pytest.mark.parametrize("write", list(WRITES))
def test_store_write__in_the_cache_key_space_is_refused_and_nothing_written(cache, write):
    store = kv.get_store()
    cache.set("session", {"user": 1}, 60)
    store.set("plain", 0)
    before = rows()

    with pytest.raises(ReservedKey, match=r"key 'cache:default:.*session' is in the key space of kv.cache"):
        WRITES[write](store, cache.row_key("session"))

    assert rows() == before
    assert cache.get("session") == {"user": 1}


@pytest.mark.parametrize("key", ["cache:", "cache:anything", "cache:default:x"])
def test_store_write__any_key_starting_with_cache_colon_is_refused_even_without_a_row(key):
    store = kv.get_store()

    with pytest.raises(ReservedKey):
        store.set(key, 1)
    with pytest.raises(ReservedKey), store.locked(key, 10):
        pass

    assert rows() == []


@pytest.mark.parametrize("key", ["cache", "Cache:x", "my:cache:x", "cachex:y"])
def test_store_write__keys_outside_the_space_are_written(key):
    store = kv.get_store()

    assert store.set(key, 1) is True
    assert store.get(key) == 1 and store.delete(key) == 1


def test_reserved_key__is_an_invalid_key():
    assert issubclass(ReservedKey, InvalidKey)


def test_kv_cache__keeps_writing_its_rows(cache):
    cache.set("a", "x", 60)
    assert cache.add("n", 1) is True
    assert cache.incr("n", 2) == 3
    assert cache.touch("a", 120) is True
    cache.set_many({"b": 1, "c": 2})
    cache.delete("b")

    assert cache.get_many(["a", "b", "c", "n"]) == {"a": "x", "c": 2, "n": 3}
    cache.clear()
    assert rows() == []


def test_store_read__of_a_cache_row_still_answers(cache):
    store = kv.get_store()
    cache.set("a", 1)
    key = cache.row_key("a")

    assert store.exists(key) == 1 and store.type(key) == "cache"
    assert store.keys("cache:*") == []  # keys() lists the store's own keys, not the cache's


def test_delete_rows__deletes_cache_rows_and_plain_keys(cache):
    store = kv.get_store()
    cache.set("a", 1)
    store.set("plain", 1)

    assert store.delete_rows(cache.row_key("a"), "plain", "missing") == 2
    assert rows() == [] and cache.get("a") is None
