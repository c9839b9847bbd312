"""The contract of ``kv.cache.KVCache``: Django's cache API on the ``_kv`` table.

Every test runs twice, on SQLite and (in the PostgreSQL pass) on PostgreSQL: with the
store's L1 on, committing its writes (inside a transaction the store never fills L1, so
the L1 run would prove nothing), and with L1 off inside a test transaction rolled back at
its end (so the cache is also seen working inside a caller's transaction).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import json
import pickle
import subprocess
import sys
import time
from decimal import Decimal
from fractions import Fraction

import pytest
from asgiref.sync import async_to_sync
from django.core.cache import CacheKeyWarning, caches
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext, override_settings

import kv
import kv.l1
from kv import clock as kv_clock
from kv import get_store
from kv.cache import KVCache
from kv.models import KVEntry
from kv.sql import postgresql
from kv.sql.base import INT64_MAX
from kv.sql.postgresql import sorts_by_code_point
from tests.helpers.processes import ROOT, run_together


@dataclasses.dataclass
class Point:
    x: int
    y: list


class Unpicklable:
    def __reduce__(self):
        raise pickle.PicklingError("no")


def custom_key_func(key, key_prefix, version):
    return f"custom/{key_prefix}/{version}/{key}"


@pytest.fixture(params=[
    pytest.param("l1", marks=pytest.mark.django_db(transaction=True)),
    pytest.param("no-l1", marks=pytest.mark.django_db),
])
def l1(request, settings, monkeypatch):
    """The store's L1, on (the test commits) or off (``None``: the test runs in a transaction).
    On, as in a process whose sync listener is live (the pytest process starts none)."""
    settings.KV = {"L1_ENABLED": request.param == "l1"}
    monkeypatch.setattr(kv.l1, "_invalidations_arrive", lambda: True)
    assert connection.in_atomic_block is (request.param == "no-l1")  # the premise of the two runs
    store_l1 = get_store().l1
    if store_l1 is not None:
        store_l1.clear()
    yield store_l1
    if store_l1 is not None:  # what this test committed is gone: so must its L1 entries be
        store_l1.clear()


def make_cache(location: str = "test", **params) -> KVCache:
    return KVCache(location, params)


@pytest.fixture
def cache(l1) -> KVCache:
    return make_cache()


def row(cache: KVCache, key: str, version: int | None = None) -> KVEntry:
    return KVEntry.objects.get(key=cache.row_key(key, version))


def kv_queries(context: CaptureQueriesContext) -> list[str]:
    return [query["sql"] for query in context.captured_queries if "_kv" in query["sql"]]


# -- values ------------------------------------------------------------------------------

VALUES = {
    "str": "hello",
    "unicode": "ünïcødé ✓ 漢字",
    "empty-str": "",
    "bytes": b"\x00\xffbinary",
    "int": 42,
    "negative-int": -7,
    "big-int": 2**100,
    "bool": True,
    "float": 3.25,
    "decimal": Decimal("1.10"),
    "fraction": Fraction(1, 3),
    "datetime": datetime.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=datetime.UTC),
    "date": datetime.date(2026, 1, 2),
    "set": {1, 2, 3},
    "frozenset": frozenset({"a"}),
    "tuple": (1, "two", None),
    "list": [1, [2, {"three": 3}]],
    "dict": {"a": 1, 2: "b"},
    "custom-class": Point(1, [2, 3]),
}


@pytest.mark.parametrize("value", VALUES.values(), ids=VALUES.keys())
def test_set__value_of_any_picklable_type_round_trips(cache, value):
    cache.set("k", value)

    for _ in range(2):  # the second read may come from L1
        got = cache.get("k")
        assert got == value
        assert type(got) is type(value)


def test_set__integers_are_json_integers_and_other_values_pickled_text(cache):
    cache.set("n", 42)
    cache.set("s", "42")

    assert row(cache, "n").value == 42
    stored = row(cache, "s").value
    assert isinstance(stored, str)
    assert pickle.loads(base64.b64decode(stored)) == "42"


def test_get__returns_a_copy_the_caller_may_change(cache):
    cache.set("k", {"items": [1]})
    cache.get("k")["items"].append(2)

    assert cache.get("k") == {"items": [1]}


def test_get__missing_key_returns_default(cache):
    assert cache.get("nope") is None
    assert cache.get("nope", "fallback") == "fallback"


def test_get__stored_none_is_a_value_not_a_miss(cache):
    cache.set("k", None)

    assert cache.get("k", "fallback") is None
    assert cache.has_key("k")


def test_set__replaces_the_value(cache):
    cache.set("k", "one")
    cache.get("k")
    cache.set("k", "two")

    assert cache.get("k") == "two"


def test_set__value_that_cannot_be_pickled_raises_and_keeps_the_old_one(cache):
    cache.set("k", "old")

    with pytest.raises(pickle.PicklingError):
        cache.set("k", Unpicklable())
    assert cache.get("k") == "old"


def test_set__large_value_up_to_max_value_size_round_trips(cache):
    value = bytes(range(256)) * 2800  # ~700 KB, ~960 KB stored: under the default 1 MiB

    cache.set("big", value)

    assert cache.get("big") == value


def stored_size(value) -> int:
    return len(json.dumps(base64.b64encode(pickle.dumps(value, pickle.HIGHEST_PROTOCOL)).decode()))


def test_set__value_at_max_value_size_is_stored(cache, settings):
    value = "x" * 500
    settings.KV = {**settings.KV, "MAX_VALUE_SIZE": stored_size(value)}

    cache.set("k", value)

    assert cache.get("k") == value


def test_set__value_over_max_value_size_is_not_stored_and_drops_the_old_one(cache, settings):
    value = "x" * 500
    cache.set("k", "old")
    cache.get("k")
    settings.KV = {**settings.KV, "MAX_VALUE_SIZE": stored_size(value) - 1}

    cache.set("k", value)

    assert cache.get("k") is None


def test_add__value_over_max_value_size_returns_false_and_keeps_nothing(cache, settings):
    settings.KV = {**settings.KV, "MAX_VALUE_SIZE": 100}

    assert cache.add("k", "x" * 200) is False
    assert not cache.has_key("k")


# -- rows, locations, keys ---------------------------------------------------------------

def test_set__stores_a_cache_row_under_its_location(cache):
    cache.set("k", "v")

    entry = KVEntry.objects.get(key="cache:test::1:k")
    assert entry.type == "cache"
    assert get_store().keys("*") == []


def test_caches__configured_in_settings_use_their_location(l1):
    config = {"default": {"BACKEND": "kv.cache.KVCache", "LOCATION": "default", "KEY_PREFIX": "site"}}
    with override_settings(CACHES=config):
        caches["default"].set("k", "v")

        assert isinstance(caches["default"], KVCache)
        assert caches["default"].get("k") == "v"
        assert KVEntry.objects.filter(key="cache:default:site:1:k", type="cache").exists()


def test_caches__locations_do_not_see_each_others_keys(l1):
    first, second = make_cache("first"), make_cache("second")
    first.set("k", "one")

    assert second.get("k") is None
    second.set("k", "two")
    assert first.get("k") == "one"


def test_key_prefix__caches_with_different_prefixes_do_not_collide(l1):
    a, b = make_cache(KEY_PREFIX="a"), make_cache(KEY_PREFIX="b")
    a.set("k", "from a")

    assert b.get("k") is None
    assert a.get("k") == "from a"


@pytest.mark.parametrize("key_function", [custom_key_func, "tests.test_kv_cache.custom_key_func"])
def test_key_function__makes_the_row_key(l1, key_function):
    cache = make_cache(KEY_PREFIX="p", KEY_FUNCTION=key_function)
    cache.set("k", "v")

    assert cache.get("k") == "v"
    assert KVEntry.objects.filter(key="cache:test:custom/p/1/k").exists()


@pytest.mark.parametrize("key", ["x" * 600, "with space", "nul\x00char"], ids=["too-long", "space", "nul"])
def test_key__not_portable_to_memcached_warns_and_still_works(cache, key):
    with pytest.warns(CacheKeyWarning):
        cache.set(key, "v")
    with pytest.warns(CacheKeyWarning):
        assert cache.get(key) == "v"
    with pytest.warns(CacheKeyWarning):
        cache.set(key + "2", "other")
    with pytest.warns(CacheKeyWarning):
        assert cache.get(key) == "v"


def test_key__too_long_for_the_key_column_is_stored_under_a_hash(cache):
    with pytest.warns(CacheKeyWarning):
        cache.set("x" * 600, "v")

    (key,) = KVEntry.objects.filter(type="cache").values_list("key", flat=True)
    assert key.startswith("cache:test:#") and len(key) <= 512


def test_key__with_a_lone_surrogate_works(cache):
    cache.set("lone\ud800surrogate", "v")
    cache.set("lone\udc00surrogate", "other")

    assert cache.get("lone\ud800surrogate") == "v"


def test_kv_not_installed__using_the_cache_is_improperly_configured(monkeypatch):
    monkeypatch.setattr(kv, "get_store", lambda: None)

    with pytest.raises(ImproperlyConfigured, match="INSTALLED_APPS"):
        make_cache().get("k")


# -- timeouts ----------------------------------------------------------------------------

def expires_in(cache: KVCache, key: str) -> float | None:
    """Seconds until the row of ``key`` expires, ``None`` when it never does."""
    expire_at = row(cache, key).expire_at
    return None if expire_at is None else (expire_at - kv_clock.now_ms()) / 1000


def test_timeout__default_is_the_timeout_setting(l1, clock):
    cache = make_cache(TIMEOUT=60)
    cache.set("k", "v")

    assert expires_in(cache, "k") == 60


def test_timeout__default_timeout_none_keeps_forever(l1):
    cache = make_cache(TIMEOUT=None)
    cache.set("k", "v")

    assert expires_in(cache, "k") is None


def test_timeout__none_keeps_forever(cache):
    cache.set("k", "v", timeout=None)

    assert expires_in(cache, "k") is None
    assert cache.get("k") == "v"


@pytest.mark.parametrize("timeout", [0, -1, -3600])
def test_timeout__zero_or_negative_stores_nothing_and_drops_the_old_value(cache, timeout):
    cache.set("k", "old")
    cache.get("k")

    cache.set("k", "new", timeout=timeout)

    assert cache.get("k") is None
    assert not KVEntry.objects.filter(key=cache.row_key("k")).exists()


def test_timeout__float_expires_after_that_many_seconds(cache, clock):
    cache.set("k", "v", timeout=0.4)

    assert cache.get("k") == "v"
    assert expires_in(cache, "k") == 0.4
    clock.advance(0.4)
    assert cache.get("k") is None
    assert not cache.has_key("k")


def test_timeout__over_30_days_is_relative_not_a_timestamp(cache, clock):
    month = 60 * 60 * 24 * 30 + 1
    cache.set("k", "v", timeout=month)

    assert expires_in(cache, "k") == month
    assert cache.get("k") == "v"


@pytest.mark.parametrize("timeout", [10**20, float("inf")], ids=["huge", "inf"])
def test_timeout__beyond_int64_ends_at_int64s_end(cache, timeout):
    cache.set("k", "v", timeout=timeout)

    assert row(cache, "k").expire_at == INT64_MAX
    assert cache.get("k") == "v"


# -- add, get_or_set, has_key, delete -------------------------------------------------------

def test_add__stores_a_missing_key(cache):
    assert cache.add("k", "v") is True
    assert cache.get("k") == "v"


def test_add__leaves_an_existing_key_alone(cache):
    cache.set("k", "old")

    assert cache.add("k", "new") is False
    assert cache.get("k") == "old"


def test_add__replaces_an_expired_key(cache, clock):
    cache.set("k", "old", timeout=0.05)
    clock.advance(0.05)

    assert cache.add("k", "new") is True
    assert cache.get("k") == "new"


def test_add__uses_its_timeout(cache, clock):
    cache.add("k", "v", timeout=30)

    assert expires_in(cache, "k") == 30


def test_add__zero_timeout_succeeds_on_a_missing_key_and_stores_nothing(cache):
    assert cache.add("k", "v", timeout=0) is True
    assert cache.get("k") is None


def test_add__zero_timeout_fails_on_an_existing_key_and_keeps_it(cache):
    cache.set("k", "old")

    assert cache.add("k", "new", timeout=0) is False
    assert cache.get("k") == "old"


def test_get_or_set__stores_and_returns_the_default(cache):
    assert cache.get_or_set("k", 42) == 42
    assert cache.get("k") == 42


def test_get_or_set__calls_a_callable_default_only_when_missing(cache):
    calls = []

    def compute():
        calls.append(1)
        return "computed"

    assert cache.get_or_set("k", compute) == "computed"
    assert cache.get_or_set("k", compute) == "computed"
    assert len(calls) == 1


def test_get_or_set__returns_the_existing_value(cache):
    cache.set("k", "existing")

    assert cache.get_or_set("k", "default") == "existing"


def test_get_or_set__stores_none(cache):
    assert cache.get_or_set("k", None) is None
    assert cache.get("k", "fallback") is None


def test_has_key__and_in(cache):
    cache.set("k", "v")

    assert cache.has_key("k")
    assert "k" in cache
    assert not cache.has_key("other")
    assert "other" not in cache


def test_delete__removes_the_key_and_says_whether_it_was_there(cache):
    cache.set("k", "v")
    cache.get("k")

    assert cache.delete("k") is True
    assert cache.get("k") is None
    assert cache.delete("k") is False


# -- touch -------------------------------------------------------------------------------

def test_touch__sets_a_new_timeout(cache, clock):
    cache.set("k", "v", timeout=1)

    assert cache.touch("k", 100) is True
    assert expires_in(cache, "k") == 100


def test_touch__default_timeout(l1, clock):
    cache = make_cache(TIMEOUT=60)
    cache.set("k", "v", timeout=1)

    assert cache.touch("k") is True
    assert expires_in(cache, "k") == 60


def test_touch__none_keeps_forever(cache):
    cache.set("k", "v", timeout=1)

    assert cache.touch("k", None) is True
    assert expires_in(cache, "k") is None


def test_touch__zero_expires_the_key_at_once(cache):
    cache.set("k", "v")
    cache.get("k")

    assert cache.touch("k", 0) is True
    assert cache.get("k") is None


def test_touch__shorter_timeout_is_honoured_by_reads(cache, clock):
    cache.set("k", "v")
    cache.get("k")

    cache.touch("k", 0.05)
    clock.advance(0.05)

    assert cache.get("k") is None


def test_touch__missing_or_expired_key_returns_false(cache, clock):
    cache.set("gone", "v", timeout=0.05)
    clock.advance(0.05)

    assert cache.touch("missing") is False
    assert cache.touch("gone") is False


# -- incr, decr --------------------------------------------------------------------------

def test_incr__adds_and_returns_the_new_value(cache):
    cache.set("n", 1)
    cache.get("n")

    assert cache.incr("n") == 2
    assert cache.incr("n", 10) == 12
    assert cache.incr("n", -20) == -8
    assert cache.get("n") == -8


def test_decr__subtracts(cache):
    cache.set("n", 10)

    assert cache.decr("n") == 9
    assert cache.decr("n", 4) == 5
    assert cache.get("n") == 5


@pytest.mark.parametrize("method", ["incr", "decr"])
def test_incr__missing_key_raises_value_error_and_creates_nothing(cache, method):
    with pytest.raises(ValueError, match="not found"):
        getattr(cache, method)("missing")
    assert not cache.has_key("missing")


def test_incr__expired_key_raises_value_error(cache, clock):
    cache.set("n", 1, timeout=0.05)
    clock.advance(0.05)

    with pytest.raises(ValueError, match="not found"):
        cache.incr("n")


def test_incr__keeps_the_timeout(cache):
    cache.set("n", 1, timeout=100)
    expire_at = row(cache, "n").expire_at

    cache.incr("n")

    assert row(cache, "n").expire_at == expire_at


def test_incr__of_an_integer_is_one_statement(cache):
    cache.set("n", 1)

    with CaptureQueriesContext(connection) as queries:
        cache.incr("n", 5)

    (statement,) = kv_queries(queries)
    assert statement.lstrip().upper().startswith("UPDATE")
    assert row(cache, "n").value == 6


@pytest.mark.parametrize(("value", "delta", "expected"), [
    (1.5, 1, 2.5), (Decimal("1.10"), 2, Decimal("3.10")), (1, 0.5, 1.5), (True, 1, 2),
], ids=["float", "decimal", "float-delta", "bool"])
def test_incr__of_other_numbers_adds_as_python_does(cache, value, delta, expected):
    cache.set("n", value)

    assert cache.incr("n", delta) == expected
    assert cache.get("n") == expected


def test_incr__past_int64_goes_on_as_a_python_integer(cache):
    cache.set("n", INT64_MAX)

    assert cache.incr("n") == INT64_MAX + 1
    assert cache.get("n") == INT64_MAX + 1
    assert cache.decr("n", 2) == INT64_MAX - 1


def test_incr__of_a_string_raises_type_error_and_keeps_it(cache):
    cache.set("s", "text")

    with pytest.raises(TypeError):
        cache.incr("s")
    assert cache.get("s") == "text"


INCREMENTER = r"""
import json, os, sys

from django.conf import settings

settings.CACHES = json.loads(os.environ["KV_CACHE_TEST_CACHES"])

import django

django.setup()

from django.core.cache import caches

cache = caches["counter"]
print("ready", flush=True)
assert sys.stdin.readline().strip() == "go"
for _ in range(int(sys.argv[1])):
    cache.incr("hits")
print("done", flush=True)
"""


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("start", [0, 0.0], ids=["integer-one-statement", "float-compare-and-set"])
def test_incr__from_two_processes_loses_no_increment(subprocess_env, start):
    caches_setting = {"counter": {"BACKEND": "kv.cache.KVCache", "LOCATION": "counter"}}
    env = {**subprocess_env, "KV_CACHE_TEST_CACHES": json.dumps(caches_setting)}
    cache = make_cache("counter")
    cache.set("hits", start)
    procs = [subprocess.Popen([sys.executable, "-c", INCREMENTER, "500"], env=env, cwd=ROOT, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(2)]
    outputs = run_together(procs)  # set up before either adds, so their increments overlap

    for proc, (stdout, stderr) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, stderr
        assert stdout.strip() == "done"
    assert cache.get("hits") == 1000
    assert type(cache.get("hits")) is type(start)


# -- many --------------------------------------------------------------------------------

def test_set_many__stores_every_value_and_returns_no_failures(cache):
    assert cache.set_many({"a": 1, "b": "two", "c": [3]}) == []

    assert cache.get_many(["a", "b", "c"]) == {"a": 1, "b": "two", "c": [3]}


def test_set_many__uses_its_timeout(cache, clock):
    cache.set_many({"a": 1, "b": 2}, timeout=30)

    assert expires_in(cache, "a") == 30
    assert expires_in(cache, "b") == 30


def test_set_many__zero_timeout_stores_nothing(cache):
    cache.set("a", "old")

    assert cache.set_many({"a": 1, "b": 2}, timeout=0) == []
    assert cache.get_many(["a", "b"]) == {}


def test_set_many__returns_the_keys_too_large_to_store(cache, settings):
    settings.KV = {**settings.KV, "MAX_VALUE_SIZE": 100}
    cache.set("big", "old")

    assert cache.set_many({"small": "v", "big": "x" * 200}) == ["big"]
    assert cache.get_many(["small", "big"]) == {"small": "v"}


def test_get_many__returns_only_the_keys_present(cache, clock):
    cache.set("a", 1)
    cache.set("gone", 2, timeout=0.05)
    clock.advance(0.05)

    assert cache.get_many(["a", "gone", "missing"]) == {"a": 1}


def test_get_many__with_versions(cache):
    cache.set("a", 1, version=2)
    cache.set("a", "v1")

    assert cache.get_many(["a"], version=2) == {"a": 1}
    assert cache.get_many(["a"]) == {"a": "v1"}


def test_many__thousands_of_keys_at_once(l1):
    data = {f"key{i}": i for i in range(2500)}
    cache = make_cache(OPTIONS={"MAX_ENTRIES": 10_000})

    assert cache.set_many(data) == []
    assert cache.get_many(list(data)) == data
    cache.delete_many(list(data))
    assert cache.get_many(list(data)) == {}


def test_delete_many__removes_only_the_given_keys(cache):
    cache.set_many({"a": 1, "b": 2, "c": 3})
    cache.get_many(["a", "b", "c"])

    cache.delete_many(["a", "b", "missing"])

    assert cache.get_many(["a", "b", "c"]) == {"c": 3}


def test_many__empty_arguments(cache):
    assert cache.get_many([]) == {}
    assert cache.set_many({}) == []
    cache.delete_many([])


# -- versions ----------------------------------------------------------------------------

def test_version__setting_and_argument_select_the_entry(l1):
    v1, v2 = make_cache(VERSION=1), make_cache(VERSION=2)
    v2.set("k", "two")

    assert v1.get("k") is None
    assert v1.get("k", version=2) == "two"
    assert KVEntry.objects.filter(key="cache:test::2:k").exists()


def test_incr_version__moves_the_value_to_the_next_version(cache):
    cache.set("k", "v")

    assert cache.incr_version("k") == 2
    assert cache.get("k") is None
    assert cache.get("k", version=2) == "v"


def test_decr_version__moves_the_value_to_the_previous_version(cache):
    cache.set("k", "v", version=2)

    assert cache.decr_version("k", version=2) == 1
    assert cache.get("k", version=2) is None
    assert cache.get("k") == "v"


def test_incr_version__missing_key_raises_value_error(cache):
    with pytest.raises(ValueError):
        cache.incr_version("missing")


# -- clear -------------------------------------------------------------------------------

def test_clear__removes_every_entry_of_this_cache(cache):
    cache.set_many({"a": 1, "b": 2})
    cache.set("c", 3, version=5)
    cache.get_many(["a", "b"])

    cache.clear()

    assert cache.get_many(["a", "b"]) == {}
    assert cache.get("c", version=5) is None
    assert not KVEntry.objects.filter(type="cache").exists()


def test_clear__keeps_the_stores_keys(cache):
    store = get_store()
    # a plain value in the cache's key space: written before the store refused that space
    now = datetime.datetime.now(datetime.UTC)
    KVEntry.objects.create(key="cache:test::1:plain", value="store value", created=now, updated=now)
    store.set("kept", 1)
    cache.set("k", "v")

    cache.clear()

    assert store.get("kept") == 1
    assert store.get("cache:test::1:plain") == "store value"


@pytest.mark.parametrize(("cleared", "other"), [
    ("a", "a:b"), ("a_c", "abc"), ("a%", "ab"), ("Loc", "loc"), ("", "x"), ("x", ""),
])
def test_clear__keeps_other_locations_entries(l1, cleared, other):
    mine, theirs = make_cache(cleared), make_cache(other)
    mine.set("k", "mine")
    theirs.set("k", "theirs")
    theirs.set("b:k", "theirs too")  # a made key that looks like a location

    mine.clear()

    assert mine.get("k") is None
    assert theirs.get("k") == "theirs"
    assert theirs.get("b:k") == "theirs too"


@pytest.mark.parametrize(("collation", "provider", "expected"), [
    ("C", "c", True), ("POSIX", "c", True), ("C.UTF-8", "c", True), ("C.utf8", "c", True),
    ("C.UTF-8", "b", True), ("en_US.UTF-8", "c", False), ("und-x-icu", "i", False), ("", "i", False),
])
def test_sorts_by_code_point__only_for_c_like_collations(collation, provider, expected):
    assert sorts_by_code_point(collation, provider) is expected


@pytest.mark.postgres
@pytest.mark.django_db
def test_clear__on_a_language_collation_keeps_other_locations_entries(settings, monkeypatch):
    # under ICU, "cache:loc:k" sorts between "cache:Loc:" and "cache:Loc;" (case is a
    # tertiary difference): a key range in the column's own collation would take it
    settings.KV = {"L1_ENABLED": False}
    monkeypatch.setattr(postgresql, "_code_point_order", {})
    with connection.cursor() as cursor:
        cursor.execute('ALTER TABLE _kv ALTER COLUMN key TYPE varchar(512) COLLATE "und-x-icu"')
    mine, theirs = make_cache("Loc", OPTIONS={"MAX_ENTRIES": 2}), make_cache("loc")
    theirs.set_many({"k1": 1, "k2": 2, "k3": 3})
    mine.set_many({"k1": "a", "k2": "b"})
    mine.set("k3", "c")  # counts and culls "Loc" only

    mine.clear()

    assert theirs.get_many(["k1", "k2", "k3"]) == {"k1": 1, "k2": 2, "k3": 3}
    assert mine.get_many(["k1", "k2", "k3"]) == {}


# -- culling -----------------------------------------------------------------------------

def fill(cache: KVCache, count: int, prefix: str = "cull") -> int:
    """Set ``count`` keys; return how many of them are still there."""
    for i in range(count):
        cache.set(f"{prefix}{i}", "value", 1000)
    return sum(cache.has_key(f"{prefix}{i}") for i in range(count))


def test_cull__past_max_entries_removes_a_cull_frequency_share(l1):
    # as DatabaseCache: at 31 rows the next set deletes 31 // 3 = 10 of them
    assert fill(make_cache(OPTIONS={"MAX_ENTRIES": 30}), 49) == 29


def test_cull__cull_frequency_zero_clears_the_cache(l1):
    assert fill(make_cache(OPTIONS={"MAX_ENTRIES": 30, "CULL_FREQUENCY": 0}), 49) == 18


def test_cull__deletes_expired_entries_first(l1, clock):
    cache = make_cache(OPTIONS={"MAX_ENTRIES": 4, "CULL_FREQUENCY": 2})
    cache.set_many({"k1": 1, "k2": 2})
    cache.set_many({"e1": 1, "e2": 2, "e3": 3}, timeout=0.05)
    clock.advance(0.05)

    cache.set("k3", 3)  # 5 rows > 4: the 3 expired go, and that is enough

    assert cache.get_many(["k1", "k2", "k3"]) == {"k1": 1, "k2": 2, "k3": 3}
    assert KVEntry.objects.filter(type="cache").count() == 3


def test_cull__removes_the_least_recently_written(l1):
    cache = make_cache(OPTIONS={"MAX_ENTRIES": 3, "CULL_FREQUENCY": 2})
    for key in ["a", "b", "c", "a", "d"]:
        cache.set(key, key)
        time.sleep(0.002)
    cache.get_many(["a", "b", "c", "d"])

    cache.set("e", "e")  # 4 rows > 3: the 2 written longest ago go

    assert sorted(cache.get_many(["a", "b", "c", "d", "e"])) == ["a", "d", "e"]


def test_cull__counts_and_removes_only_this_caches_entries(l1):
    other = make_cache("other", OPTIONS={"MAX_ENTRIES": 1000})
    fill(other, 10, prefix="other")
    cache = make_cache(OPTIONS={"MAX_ENTRIES": 5})

    assert fill(cache, 5) == 5  # the 10 rows of "other" do not count toward this cache's 5
    fill(cache, 20, prefix="more")  # culls this cache, again and again

    assert sum(other.has_key(f"other{i}") for i in range(10)) == 10


def test_cull__max_entries_below_zero_still_stores(l1):
    cache = make_cache(OPTIONS={"MAX_ENTRIES": -1})

    cache.set("k", "v")

    assert cache.get("k") == "v"


# -- transactions, L1 ---------------------------------------------------------------------

def test_transaction__rolled_back_write_leaves_the_old_value(cache):
    cache.set("k", "old")
    cache.get("k")

    with pytest.raises(RuntimeError), transaction.atomic():
        cache.set("k", "new")
        assert cache.get("k") == "new"
        raise RuntimeError

    assert cache.get("k") == "old"


@pytest.mark.django_db(transaction=True)
def test_l1__a_second_read_asks_no_database(settings, monkeypatch):
    settings.KV = {"L1_ENABLED": True}
    monkeypatch.setattr(kv.l1, "_invalidations_arrive", lambda: True)  # as with a live listener
    cache = make_cache()
    cache.set("k", "v")
    cache.get("k")

    with CaptureQueriesContext(connection) as queries:
        assert cache.get("k") == "v"
        assert cache.get_many(["k"]) == {"k": "v"}

    assert kv_queries(queries) == []


# -- async -------------------------------------------------------------------------------

def test_async__methods_follow_the_sync_ones(cache):
    async def scenario():
        await cache.aset("k", "v")
        assert await cache.aget("k") == "v"
        assert await cache.aadd("k", "other") is False
        assert await cache.aget_or_set("g", 5) == 5
        assert await cache.aincr("g", 2) == 7
        assert await cache.adecr("g") == 6
        assert await cache.ahas_key("g")
        assert await cache.atouch("g", None) is True
        assert await cache.aset_many({"a": 1, "b": 2}) == []
        assert await cache.aget_many(["a", "b", "x"]) == {"a": 1, "b": 2}
        await cache.adelete_many(["a"])
        assert await cache.aincr_version("b") == 2
        assert await cache.adecr_version("b", version=2) == 1
        assert await cache.adelete("k") is True
        assert await cache.aget("k") is None
        await cache.aclear()
        assert await cache.aget_many(["g", "b"]) == {}

    async_to_sync(scenario)()
    assert not KVEntry.objects.filter(type="cache").exists()
