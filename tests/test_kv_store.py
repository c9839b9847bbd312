"""The key-value store's Redis contract, on whichever database this run uses.

Each test names one behaviour a caller relies on (the return conventions of
redis-py, expiry, counters, hashes, locks, glob patterns, bad input). Expiry is
driven by a frozen clock (``clock``) so that TTLs are exact and no test sleeps,
except the one that checks real time does expire keys. The tests run inside
the test transaction, where the store never uses its L1 cache: what they see is
what the database holds (``tests/test_kv_l1.py`` covers L1).
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

import kv
from kv.errors import (
    InvalidKey,
    InvalidPattern,
    InvalidValue,
    LockTimeout,
    NotAnInteger,
    Overflow,
    WrongType,
)
from kv.models import KVEntry
from kv.sql.glob import MAX_PATTERN_LENGTH, MAX_PATTERN_WILDCARDS
from kv.sql.scans import ScanStatements
from kv.validation import MAX_TTL
from tachycore.jsontext import MAX_JSON_DEPTH
from tests.helpers.json_values import SURROGATES, nested_list

pytestmark = pytest.mark.django_db

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)


@pytest.fixture(autouse=True)
def _empty_l1():
    l1 = kv.get_store().l1
    if l1 is not None:
        l1.clear()


@pytest.fixture
def store():
    return kv.get_store()


def expired_value(store, clock, key: str, value=7) -> None:
    """``key`` held ``value`` with a TTL that has passed (its row is still in the table)."""
    store.set(key, value, px=1000)
    clock.advance(2)
    assert KVEntry.objects.filter(key=key).exists()


def expired_hash(store, clock, key: str) -> None:
    store.hset(key, mapping={"old": 1, "n": 5})
    store.expire(key, 1)
    clock.advance(2)
    assert KVEntry.objects.filter(key=key).exists()


# -- get / set ------------------------------------------------------------------------------

JSON_VALUES = [
    "text",
    "",
    "héllo wörld ✓ 日本語 😀 \"quoted\" \\ back\n\t",
    0,
    -17,
    INT64_MAX,
    INT64_MIN,
    2**80,
    0.1,
    -2.5,
    True,
    False,
    [],
    {},
    [1, "two", None, [3.5, {"four": 4}]],
    {"nested": {"list": [1, 2, {"deep": "é"}]}, "null": None, "": "empty key", "a.b": 1, "$": 2},
]


@pytest.mark.parametrize("value", JSON_VALUES, ids=repr)
def test_set__value_round_trips_through_get(store, value):
    assert store.set("k", value) is True

    got = store.get("k")

    assert got == value
    assert type(got) is type(value)


def test_set__null_is_a_value_that_exists(store):
    store.set("k", None)

    assert store.get("k") is None
    assert store.exists("k") == 1
    assert store.ttl("k") == -1


def test_get__missing_key_returns_none(store):
    assert store.get("nothing-here") is None


def test_get__expired_key_returns_none(store, clock):
    store.set("k", "v", ex=10)
    clock.advance(9.999)
    assert store.get("k") == "v"

    clock.advance(0.001)

    assert store.get("k") is None


def test_get__key_expires_in_real_time(store):
    store.set("k", "v", px=100)
    assert store.get("k") == "v"

    time.sleep(0.15)

    assert store.get("k") is None
    assert store.ttl("k") == -2


def test_set__replaces_the_value(store):
    store.set("k", "first")

    store.set("k", {"second": True})

    assert store.get("k") == {"second": True}


def test_set__clears_the_ttl(store, clock):
    store.set("k", "v", ex=100)

    store.set("k", "w")

    assert store.ttl("k") == -1
    clock.advance(1000)
    assert store.get("k") == "w"


def test_set__keepttl_keeps_the_ttl(store, clock):
    store.set("k", "v", ex=100)
    clock.advance(40)

    assert store.set("k", "w", keepttl=True) is True

    assert store.get("k") == "w"
    assert store.pttl("k") == 60_000


def test_set__keepttl_on_a_key_without_ttl_leaves_it_without(store):
    store.set("k", "v")

    store.set("k", "w", keepttl=True)

    assert store.ttl("k") == -1


def test_set__keepttl_on_an_expired_key_makes_a_key_without_ttl(store, clock):
    expired_value(store, clock, "k")

    store.set("k", "w", keepttl=True)

    assert store.get("k") == "w"
    assert store.ttl("k") == -1


def test_set__ex_sets_a_ttl_in_seconds(store, clock):
    store.set("k", "v", ex=30)

    assert store.ttl("k") == 30
    assert store.pttl("k") == 30_000


def test_set__px_sets_a_ttl_in_milliseconds(store, clock):
    store.set("k", "v", px=1500)

    assert store.pttl("k") == 1500


def test_set__ex_accepts_a_timedelta(store, clock):
    store.set("k", "v", ex=timedelta(minutes=2))

    assert store.pttl("k") == 120_000


def test_setex__sets_value_and_ttl(store, clock):
    assert store.setex("k", 20, "v") is True

    assert store.get("k") == "v"
    assert store.pttl("k") == 20_000


@pytest.mark.parametrize("expiry", [{"ex": 0}, {"ex": -1}, {"px": 0}, {"ex": float("nan")},
                                    {"ex": 1, "px": 1000}], ids=repr)
def test_set__bad_expiry_raises_invalid_value_and_writes_nothing(store, expiry):
    store.set("k", "before")

    with pytest.raises(InvalidValue):
        store.set("k", "after", **expiry)

    assert store.get("k") == "before"
    assert store.ttl("k") == -1


def test_set__nx_writes_a_missing_key_and_returns_true(store):
    assert store.set("k", "v", nx=True) is True

    assert store.get("k") == "v"


def test_set__nx_on_an_existing_key_returns_none_and_changes_nothing(store, clock):
    store.set("k", "v", ex=50)

    assert store.set("k", "w", nx=True) is None

    assert store.get("k") == "v"
    assert store.pttl("k") == 50_000


def test_set__nx_on_an_expired_key_writes_it(store, clock):
    expired_value(store, clock, "k")

    assert store.set("k", "w", nx=True) is True

    assert store.get("k") == "w"
    assert store.ttl("k") == -1


def test_set__xx_on_a_missing_key_returns_none_and_writes_nothing(store):
    assert store.set("k", "v", xx=True) is None

    assert store.exists("k") == 0


def test_set__xx_on_an_existing_key_replaces_it_and_clears_the_ttl(store, clock):
    store.set("k", "v", ex=50)

    assert store.set("k", "w", xx=True) is True

    assert store.get("k") == "w"
    assert store.ttl("k") == -1


def test_set__xx_with_keepttl_keeps_the_ttl(store, clock):
    store.set("k", "v", ex=50)

    assert store.set("k", "w", xx=True, keepttl=True) is True

    assert store.pttl("k") == 50_000


def test_set__xx_on_an_expired_key_returns_none(store, clock):
    expired_value(store, clock, "k", "old")

    assert store.set("k", "w", xx=True) is None

    assert store.get("k") is None


def test_set__replaces_a_hash(store):
    store.hset("k", "f", 1)

    store.set("k", "plain")

    assert store.get("k") == "plain"
    assert store.type("k") == "value"


def test_get__on_a_hash_raises_wrong_type(store):
    store.hset("k", "f", 1)

    with pytest.raises(WrongType, match="'k'"):
        store.get("k")


def test_type__names_value_hash_or_none(store):
    store.set("v", 1)
    store.hset("h", "f", 1)

    assert [store.type("v"), store.type("h"), store.type("missing")] == ["value", "hash", "none"]


# -- delete / exists ------------------------------------------------------------------------


def test_delete__returns_how_many_keys_existed(store):
    store.set("a", 1)
    store.hset("b", "f", 1)

    assert store.delete("a", "b", "missing") == 2

    assert store.exists("a", "b") == 0


def test_delete__counts_a_key_named_twice_once(store):
    store.set("a", 1)

    assert store.delete("a", "a") == 1


def test_delete__does_not_count_an_expired_key(store, clock):
    expired_value(store, clock, "k")

    assert store.delete("k") == 0


def test_exists__counts_live_keys_and_repeats(store, clock):
    store.set("a", 1)
    store.hset("b", "f", 1)
    expired_value(store, clock, "gone")

    assert store.exists("a", "b", "gone", "missing") == 2
    assert store.exists("a", "a") == 2


# -- ttl / pttl / expire / persist ----------------------------------------------------------


def test_ttl__missing_key_is_minus_two(store):
    assert store.ttl("missing") == -2
    assert store.pttl("missing") == -2


def test_ttl__key_without_expiry_is_minus_one(store):
    store.set("k", 1)

    assert store.ttl("k") == -1
    assert store.pttl("k") == -1


def test_ttl__expired_key_is_minus_two(store, clock):
    expired_value(store, clock, "k")

    assert store.ttl("k") == -2
    assert store.pttl("k") == -2


def test_ttl__counts_down_in_rounded_seconds(store, clock):
    store.set("k", 1, ex=100)

    clock.advance(30.4)

    assert store.pttl("k") == 69_600
    assert store.ttl("k") == 70


def test_ttl__of_a_hash(store, clock):
    store.hset("h", "f", 1)
    store.expire("h", 9)

    assert store.ttl("h") == 9


def test_expire__sets_a_ttl_and_returns_true(store, clock):
    store.set("k", 1)

    assert store.expire("k", 25) is True

    assert store.pttl("k") == 25_000
    clock.advance(25)
    assert store.get("k") is None


def test_expire__accepts_a_timedelta(store, clock):
    store.set("k", 1)

    store.expire("k", timedelta(seconds=3))

    assert store.pttl("k") == 3000


def test_expire__replaces_an_earlier_ttl(store, clock):
    store.set("k", 1, ex=5)

    store.expire("k", 500)

    assert store.ttl("k") == 500


def test_expire__missing_key_returns_false_and_creates_nothing(store):
    assert store.expire("missing", 10) is False

    assert store.exists("missing") == 0


def test_expire__expired_key_returns_false(store, clock):
    expired_value(store, clock, "k")

    assert store.expire("k", 10) is False

    assert store.get("k") is None


@pytest.mark.parametrize("seconds", [0, -5])
def test_expire__zero_or_less_deletes_the_key(store, seconds):
    store.set("k", 1)

    assert store.expire("k", seconds) is True

    assert store.exists("k") == 0
    assert store.ttl("k") == -2


def test_pexpire__sets_a_ttl_in_milliseconds(store, clock):
    store.set("k", 1)

    assert store.pexpire("k", 1234) is True

    assert store.pttl("k") == 1234


def test_persist__removes_the_ttl(store, clock):
    store.set("k", 1, ex=5)

    assert store.persist("k") is True

    assert store.ttl("k") == -1
    clock.advance(10)
    assert store.get("k") == 1


def test_persist__key_without_ttl_returns_false(store):
    store.set("k", 1)

    assert store.persist("k") is False


def test_persist__missing_or_expired_key_returns_false(store, clock):
    expired_value(store, clock, "gone")

    assert store.persist("missing") is False
    assert store.persist("gone") is False
    assert store.get("gone") is None


# -- counters -------------------------------------------------------------------------------


def test_incr__missing_key_starts_from_zero(store):
    assert store.incr("n") == 1

    assert store.get("n") == 1
    assert store.ttl("n") == -1


def test_incr__adds_to_a_stored_integer(store):
    store.set("n", 41)

    assert store.incr("n") == 42

    assert store.get("n") == 42


def test_incrby__adds_the_amount(store):
    store.set("n", 10)

    assert store.incrby("n", 5) == 15
    assert store.incrby("n", -20) == -5
    assert store.incr("n", 3) == -2


def test_decr__subtracts_one_from_zero_on_a_missing_key(store):
    assert store.decr("n") == -1


def test_decrby__subtracts_the_amount(store):
    store.set("n", 10)

    assert store.decrby("n", 4) == 6
    assert store.decr("n", 10) == -4


def test_incr__keeps_the_ttl(store, clock):
    store.set("n", 1, ex=100)
    clock.advance(10)

    store.incr("n")
    store.decrby("n", 5)

    assert store.pttl("n") == 90_000


def test_incr__expired_key_starts_from_zero_without_ttl(store, clock):
    expired_value(store, clock, "n", 100)

    assert store.incr("n") == 1

    assert store.ttl("n") == -1
    clock.advance(3600)
    assert store.get("n") == 1


def test_incr__expired_non_integer_starts_from_zero(store, clock):
    expired_value(store, clock, "n", "not a number")

    assert store.incrby("n", 4) == 4


def test_incr__expired_hash_starts_from_zero(store, clock):
    expired_hash(store, clock, "n")

    assert store.incr("n") == 1

    assert store.get("n") == 1
    assert store.incr("n") == 2


@pytest.mark.parametrize("value", ["abc", "10", 1.5, 1.0, True, None, [1], {"a": 1}], ids=repr)
def test_incr__non_integer_value_raises_not_an_integer_and_keeps_it(store, clock, value):
    store.set("n", value, ex=50)

    with pytest.raises(NotAnInteger, match="'n'"):
        store.incr("n")

    assert store.get("n") == value
    assert type(store.get("n")) is type(value)
    assert store.pttl("n") == 50_000


def test_incr__reaches_the_int64_bounds(store):
    store.set("up", INT64_MAX - 1)
    store.set("down", INT64_MIN + 1)

    assert store.incr("up") == INT64_MAX
    assert store.decr("down") == INT64_MIN

    assert store.get("up") == INT64_MAX
    assert store.get("down") == INT64_MIN


@pytest.mark.parametrize(("start", "operation"), [
    (INT64_MAX, lambda s: s.incr("n")),
    (INT64_MIN, lambda s: s.decr("n")),
    (1, lambda s: s.incrby("n", INT64_MAX)),
    (-2, lambda s: s.decrby("n", INT64_MAX)),
], ids=["incr-past-max", "decr-past-min", "incrby-past-max", "decrby-past-min"])
def test_incr__overflow_raises_overflow_and_keeps_the_value(store, start, operation):
    store.set("n", start)

    with pytest.raises(Overflow, match="'n'"):
        operation(store)

    assert store.get("n") == start


@pytest.mark.parametrize("amount", [2**63, -(2**63) - 1])
def test_incrby__amount_outside_int64_raises_overflow_and_writes_nothing(store, amount):
    with pytest.raises(Overflow):
        store.incrby("n", amount)

    assert store.exists("n") == 0


def test_incr__value_outside_int64_is_refused_and_kept(store):
    store.set("n", 2**70)

    with pytest.raises((NotAnInteger, Overflow)):
        store.incr("n")

    assert store.get("n") == 2**70


@pytest.mark.parametrize("amount", [1.5, "1", None, True])
def test_incrby__non_integer_amount_raises_invalid_value(store, amount):
    store.set("n", 1)

    with pytest.raises(InvalidValue):
        store.incrby("n", amount)

    assert store.get("n") == 1


def test_incr__on_a_hash_raises_wrong_type_and_keeps_it(store):
    store.hset("h", "f", 1)

    with pytest.raises(WrongType, match="'h'"):
        store.incr("h")

    assert store.hgetall("h") == {"f": 1}


# -- hashes ---------------------------------------------------------------------------------


def test_hset__new_key_counts_every_field_as_new(store):
    assert store.hset("h", mapping={"a": 1, "b": 2, "c": 3}) == 3

    assert store.hgetall("h") == {"a": 1, "b": 2, "c": 3}


def test_hset__returns_only_the_number_of_new_fields(store):
    store.hset("h", mapping={"a": 1, "b": 2})

    assert store.hset("h", "a", 10) == 0
    assert store.hset("h", mapping={"b": 20, "c": 30, "d": 40}) == 2

    assert store.hgetall("h") == {"a": 10, "b": 20, "c": 30, "d": 40}


def test_hset__field_and_mapping_together(store):
    assert store.hset("h", "a", 1, mapping={"b": 2}) == 2

    assert store.hgetall("h") == {"a": 1, "b": 2}


def test_hset__keeps_the_ttl(store, clock):
    store.hset("h", "a", 1)
    store.expire("h", 60)

    store.hset("h", "b", 2)

    assert store.pttl("h") == 60_000


def test_hset__on_an_expired_hash_starts_a_new_one(store, clock):
    expired_hash(store, clock, "h")

    assert store.hset("h", mapping={"old": 2, "new": 3}) == 2

    assert store.hgetall("h") == {"old": 2, "new": 3}
    assert store.ttl("h") == -1


def test_hset__on_an_expired_value_starts_a_new_hash(store, clock):
    expired_value(store, clock, "h")

    assert store.hset("h", "f", 1) == 1

    assert store.hgetall("h") == {"f": 1}


def test_hset__on_a_value_raises_wrong_type_and_keeps_it(store):
    store.set("k", "plain")

    with pytest.raises(WrongType, match="'k'"):
        store.hset("k", "f", 1)

    assert store.get("k") == "plain"


FIELD_NAMES = ["a.b", "$", "$.x", "[0]", "0", '"q"', "", "é", "😀", "a\\b", "line\nbreak", "null", "{}", "a'b"]


def test_hash__field_names_may_hold_any_characters(store):
    mapping = {name: i for i, name in enumerate(FIELD_NAMES)}

    assert store.hset("h", mapping=mapping) == len(FIELD_NAMES)

    assert store.hgetall("h") == mapping
    for i, name in enumerate(FIELD_NAMES):
        assert store.hget("h", name) == i
        assert store.hincrby("h", name, 100) == i + 100
    assert store.hdel("h", *FIELD_NAMES[:5]) == 5
    assert store.hgetall("h") == {name: i + 100 for i, name in enumerate(FIELD_NAMES) if i >= 5}


def test_hset__field_values_are_any_json(store):
    mapping = {"list": [1, [2]], "obj": {"x": None}, "none": None, "big": INT64_MAX, "text": "日本"}

    store.hset("h", mapping=mapping)

    assert store.hgetall("h") == mapping


def test_hget__missing_key_or_field_returns_none(store):
    store.hset("h", "a", 1)

    assert store.hget("missing", "a") is None
    assert store.hget("h", "b") is None


def test_hgetall__missing_key_returns_an_empty_dict(store):
    assert store.hgetall("missing") == {}


def test_hget__expired_hash_is_absent(store, clock):
    expired_hash(store, clock, "h")

    assert store.hget("h", "old") is None
    assert store.hgetall("h") == {}


@pytest.mark.parametrize("operation", [
    lambda s: s.hget("k", "f"),
    lambda s: s.hgetall("k"),
    lambda s: s.hdel("k", "f"),
    lambda s: s.hincrby("k", "f"),
], ids=["hget", "hgetall", "hdel", "hincrby"])
def test_hash_operation__on_a_value_raises_wrong_type_and_keeps_it(store, operation):
    store.set("k", {"f": 1})

    with pytest.raises(WrongType, match="'k'"):
        operation(store)

    assert store.get("k") == {"f": 1}


def test_hdel__returns_how_many_fields_it_removed(store):
    store.hset("h", mapping={"a": 1, "b": 2, "c": 3})

    assert store.hdel("h", "a", "b", "a", "missing") == 2

    assert store.hgetall("h") == {"c": 3}


def test_hdel__removing_the_last_field_deletes_the_key(store, clock):
    store.hset("h", mapping={"a": 1, "b": 2})
    store.expire("h", 100)

    assert store.hdel("h", "a", "b") == 2

    assert store.exists("h") == 0
    assert store.ttl("h") == -2
    assert store.hset("h", "c", 1) == 1
    assert store.ttl("h") == -1


def test_hdel__keeps_the_ttl_of_what_is_left(store, clock):
    store.hset("h", mapping={"a": 1, "b": 2})
    store.expire("h", 100)

    store.hdel("h", "a")

    assert store.pttl("h") == 100_000


def test_hdel__missing_key_or_fields_return_zero(store):
    store.hset("h", "a", 1)

    assert store.hdel("missing", "a") == 0
    assert store.hdel("h", "x", "y") == 0
    assert store.hgetall("h") == {"a": 1}


def test_hdel__expired_hash_returns_zero(store, clock):
    expired_hash(store, clock, "h")

    assert store.hdel("h", "old") == 0


def test_hincrby__missing_key_and_field_start_from_zero(store):
    assert store.hincrby("h", "n") == 1
    assert store.hincrby("h", "m", -5) == -5

    assert store.hgetall("h") == {"n": 1, "m": -5}


def test_hincrby__adds_to_an_integer_field(store):
    store.hset("h", mapping={"n": 10, "other": "x"})

    assert store.hincrby("h", "n", 32) == 42

    assert store.hgetall("h") == {"n": 42, "other": "x"}


def test_hincrby__keeps_the_ttl(store, clock):
    store.hset("h", "n", 1)
    store.expire("h", 70)

    store.hincrby("h", "n")
    store.hincrby("h", "new-field")

    assert store.pttl("h") == 70_000


def test_hincrby__expired_hash_starts_from_zero_without_ttl(store, clock):
    expired_hash(store, clock, "h")

    assert store.hincrby("h", "n") == 1

    assert store.hgetall("h") == {"n": 1}
    assert store.ttl("h") == -1


def test_hincrby__expired_value_starts_a_new_hash(store, clock):
    expired_value(store, clock, "h", {"n": 5})

    assert store.hincrby("h", "n") == 1

    assert store.hgetall("h") == {"n": 1}
    assert store.hincrby("h", "n") == 2


@pytest.mark.parametrize("value", ["x", "10", 1.5, True, None, [1], {"a": 1}], ids=repr)
def test_hincrby__non_integer_field_raises_not_an_integer_and_keeps_it(store, value):
    store.hset("h", mapping={"f": value, "g": 1})

    with pytest.raises(NotAnInteger, match="'f'"):
        store.hincrby("h", "f")

    assert store.hgetall("h") == {"f": value, "g": 1}


@pytest.mark.parametrize(("start", "amount"), [(INT64_MAX, 1), (INT64_MIN, -1), (5, INT64_MAX)])
def test_hincrby__overflow_raises_overflow_and_keeps_the_field(store, start, amount):
    store.hset("h", "f", start)

    with pytest.raises(Overflow, match="'f'"):
        store.hincrby("h", "f", amount)

    assert store.hget("h", "f") == start


def test_hincrby__reaches_the_int64_bounds(store):
    store.hset("h", mapping={"up": INT64_MAX - 1, "down": INT64_MIN + 1})

    assert store.hincrby("h", "up") == INT64_MAX
    assert store.hincrby("h", "down", -1) == INT64_MIN


# -- mset / mget ----------------------------------------------------------------------------


def test_mset__writes_every_key(store):
    assert store.mset({"a": 1, "b": [2], "c": {"x": "y"}}) is True

    assert store.mget("a", "b", "c") == [1, [2], {"x": "y"}]


def test_mset__replaces_values_and_clears_their_ttls(store, clock):
    store.set("a", 1, ex=10)
    store.hset("b", "f", 1)
    store.expire("b", 10)

    store.mset({"a": "new-a", "b": "new-b"})

    assert store.mget("a", "b") == ["new-a", "new-b"]
    assert [store.ttl("a"), store.ttl("b")] == [-1, -1]
    clock.advance(20)
    assert store.mget("a", "b") == ["new-a", "new-b"]


@pytest.mark.parametrize("mapping", [
    {"a": "new", "b": object()},
    {"a": "new", "": 2},
    {"a": "new", 7: 2},
    {"a": "new", "x" * 513: 2},
], ids=["bad-value", "empty-key", "int-key", "long-key"])
def test_mset__any_bad_item_writes_nothing(store, mapping):
    store.set("a", "old")

    with pytest.raises((InvalidKey, InvalidValue)):
        store.mset(mapping)

    assert store.get("a") == "old"
    assert store.keys("*") == ["a"]


def test_mget__returns_values_in_order_with_none_for_missing(store, clock):
    store.mset({"a": 1, "b": 2})
    expired_value(store, clock, "gone")

    assert store.mget("b", "missing", "a", "gone", "b") == [2, None, 1, None, 2]


def test_mget__accepts_a_list(store):
    store.mset({"a": 1, "b": 2})

    assert store.mget(["a", "b", "c"]) == [1, 2, None]


def test_mget__a_hash_reads_as_none(store):
    store.hset("h", "f", 1)

    assert store.mget("h") == [None]


# -- keys -----------------------------------------------------------------------------------


def redis_match(pattern: str, string: str) -> bool:
    """Redis's ``stringmatchlen`` (util.c), case-sensitive, over characters.

    A line-by-line port, quirks included: ``[a-]`` is the range from ``a`` to
    ``]`` (and the set then runs to the end of the pattern), ``[]`` matches
    nothing, ``[^]`` any one character, an unclosed ``[`` runs to the end, a
    trailing backslash is literal, ``!`` is no negation.
    """

    def at(i: int) -> str:
        return pattern[i] if i < len(pattern) else "\0"  # C strings end with NUL

    def match(p: int, s: int) -> bool:
        plen, slen = len(pattern) - p, len(string) - s
        while plen and slen:
            c = pattern[p]
            if c == "*":
                while plen and at(p + 1) == "*":
                    p, plen = p + 1, plen - 1
                if plen == 1:
                    return True
                return any(match(p + 1, t) for t in range(s, len(string)))
            if c == "?":
                s, slen = s + 1, slen - 1
            elif c == "[":
                p, plen = p + 1, plen - 1
                negated = at(p) == "^"
                if negated:
                    p, plen = p + 1, plen - 1
                found = False
                while True:
                    if at(p) == "\\" and plen >= 2:
                        p, plen = p + 1, plen - 1
                        found = found or pattern[p] == string[s]
                    elif at(p) == "]":
                        break
                    elif plen == 0:
                        p, plen = p - 1, plen + 1
                        break
                    elif plen >= 3 and at(p + 1) == "-":
                        low, high = sorted((pattern[p], pattern[p + 2]))
                        p, plen = p + 2, plen - 2
                        found = found or low <= string[s] <= high
                    else:
                        found = found or pattern[p] == string[s]
                    p, plen = p + 1, plen - 1
                if found == negated:
                    return False
                s, slen = s + 1, slen - 1
            else:
                if c == "\\" and plen >= 2:
                    p, plen = p + 1, plen - 1
                if pattern[p] != string[s]:
                    return False
                s, slen = s + 1, slen - 1
            p, plen = p + 1, plen - 1
            if slen == 0:
                while at(p) == "*":
                    p, plen = p + 1, plen - 1
                break
        return plen == 0 and slen == 0

    return match(0, 0)


def test_redis_match__reference_agrees_with_redis():
    # the examples of the Redis KEYS documentation
    assert redis_match("h?llo", "hello") and redis_match("h?llo", "hallo")
    assert redis_match("h*llo", "hllo") and redis_match("h*llo", "heeeello")
    assert redis_match("h[ae]llo", "hallo") and not redis_match("h[ae]llo", "hillo")
    assert redis_match("h[^e]llo", "hallo") and not redis_match("h[^e]llo", "hello")
    assert redis_match("h[a-b]llo", "hbllo") and not redis_match("h[a-b]llo", "hcllo")
    assert redis_match("h\\*llo", "h*llo") and not redis_match("h\\*llo", "hello")
    # what util.c does at the edges
    assert redis_match("[a-]", "_") and not redis_match("[a-]", "-")
    assert not redis_match("[]", "a") and not redis_match("a[]", "a]")
    assert redis_match("[^]", "a")
    assert redis_match("a[bc", "ab") and redis_match("a[bc", "ac") and not redis_match("a[bc", "abc")
    assert redis_match("[z-a]", "m")
    assert redis_match("a\\", "a\\")
    assert redis_match("[!a]", "!") and not redis_match("[!a]", "b")
    assert redis_match("a*", "a") and not redis_match("a?", "a")


#: keys full of characters that mean something to GLOB, LIKE or regular expressions
GLOB_KEYS = [
    "a", "b", "A", "ab", "abc", "aXb", "Ab", "a%b", "a_b", "a*b", "a?b", "a[b", "a]b", "a\\b", "a-b",
    "a^b", "a!b", "a.b", "a b", "a\nb", "a%", "a_", "%a", "_a", "%", "_", "*", "?", "[", "]", "\\",
    "-", "^", "!", ".", "$", "[]", "[a]", "100%", "50_50", "café", "cafe", "é", "日本語", "😀", "x😀y",
]

GLOB_PATTERNS = [
    "*", "a*", "*b", "*a*", "a?b", "?", "??", "???", "a*b", "a**b", "**",
    "%", "_", "a%b", "a_b", "a%", "%*", "_*", "*%*", "*_*", "100%", "50_50", "a_", "_a",
    "a\\*b", "a\\?b", "a\\[b", "a\\]b", "a\\\\b", "\\*", "\\?", "\\[", "\\]", "\\\\", "\\a*", "*\\\\*",
    "a\\", "*\\", "a\\%b", "a\\_b",
    "a[%_]b", "a[^%_]b", "a[*?]b", "a[[]b", "a[]]b", "[a-c]*", "[c-a]*", "[A-Z]*", "[^a]*", "[^a-z]",
    "[\\]]", "[\\[]", "[\\\\]", "[\\^]", "[\\-]", "[a\\-c]", "[-a]", "[a-]", "[%-_]", "[!a]*", "[.]",
    "[]", "[^]", "a[]b", "[]]", "[^]]", "[", "a[", "a[%_", "[^", "[\\",
    "*-*", "a-b", "a^b", "*^*", "a.b", "a b", "a\nb", "a?b*", "$", "*$",
    "caf?", "caf[é]", "caf[^e]", "[à-ÿ]*", "?", "*😀*", "?😀?", "[😀]", "日*", "*語",
]


@pytest.mark.parametrize("pattern", GLOB_PATTERNS, ids=repr)
def test_keys__pattern_matches_what_redis_matches(store, pattern):
    store.mset({key: i for i, key in enumerate(GLOB_KEYS)})

    found = store.keys(pattern)

    assert sorted(found) == sorted(key for key in GLOB_KEYS if redis_match(pattern, key))
    assert len(found) == len(set(found))


def test_keys__defaults_to_every_live_key_of_every_type(store, clock):
    store.set("v", 1)
    store.hset("h", "f", 1)
    expired_value(store, clock, "gone")
    expired_hash(store, clock, "gone-hash")

    assert sorted(store.keys()) == ["h", "v"]


def test_keys__every_key_across_several_steps_of_the_walk_sorted_once_each(store, clock, monkeypatch):
    # keys() without a limit reads the keys in steps of all_keys_step rows: 3 here, so that
    # expired rows, cache rows and a step boundary fall among the keys
    monkeypatch.setattr(ScanStatements, "all_keys_step", 3)
    store.mset({f"k{i:02d}": i for i in range(10)})
    store.hset("k05h", "f", 1)
    expired_value(store, clock, "k03x")
    KVEntry.objects.create(key="cache:default:k", type="cache", value=1, created=timezone.now(),
                           updated=timezone.now())

    assert store.keys("*") == sorted([f"k{i:02d}" for i in range(10)] + ["k05h"])
    assert store.keys("k0?") == [f"k{i:02d}" for i in range(10)]
    assert store.keys("k1*") == []


def test_keys__no_key_gives_an_empty_list(store):
    assert store.keys("*") == []


# -- keys: the limits on patterns, and limit= ----------------------------------------------------

W = MAX_PATTERN_WILDCARDS


def test_keys__a_pattern_of_the_longest_length_is_taken(store):
    key = "k" * MAX_PATTERN_LENGTH
    store.mset({key: 1, "k": 1})

    assert store.keys(key) == [key]


def test_keys__a_pattern_one_character_too_long_is_refused_naming_the_limit(store):
    with pytest.raises(InvalidPattern) as refused:
        store.keys("k" * (MAX_PATTERN_LENGTH + 1))

    assert str(refused.value) == (
        f"a pattern is at most {MAX_PATTERN_LENGTH} characters (kv.sql.glob.MAX_PATTERN_LENGTH); "
        f"this one has {MAX_PATTERN_LENGTH + 1}"
    )


@pytest.mark.parametrize("pattern", ["?" * W, "*" * W, "[a-z]" * W, "*?" * (W // 2), "*" + "?" * (W - 1)])
def test_keys__a_pattern_with_the_most_wildcards_is_taken(store, pattern):
    store.mset({"a" * W: 1, "b" * (W + 5): 1, "c": 1})

    assert store.keys(pattern) == sorted(key for key in ["a" * W, "b" * (W + 5), "c"] if redis_match(pattern, key))


@pytest.mark.parametrize("pattern", ["?" * (W + 1), "*" * (W + 1), "[ab]" * (W + 1), "*a" * W + "?",
                                     "user:" + "[^x]" * (W + 1)])
def test_keys__one_wildcard_too_many_is_refused_naming_the_limit(store, pattern):
    with pytest.raises(InvalidPattern) as refused:
        store.keys(pattern)

    assert str(refused.value) == (
        f"a pattern has at most {W} wildcards (*, ? and [...] sets; kv.sql.glob.MAX_PATTERN_WILDCARDS); "
        f"this one has {W + 1}"
    )


def test_keys__escaped_wildcards_are_literal_characters_and_not_counted(store):
    store.mset({"*?" * W: 1, "ab" * W: 1})

    assert store.keys("\\*\\?" * W) == ["*?" * W]


@pytest.mark.parametrize("pattern", [None, 3, b"a*", ["a*"]], ids=repr)
def test_keys__a_pattern_that_is_not_a_string_is_refused(store, pattern):
    with pytest.raises(InvalidPattern, match="a pattern must be a string"):
        store.keys(pattern)
    assert issubclass(InvalidPattern, InvalidKey)  # as before the limits: an InvalidKey


def test_keys__limit_gives_the_first_matching_keys_in_order(store, clock):
    store.mset({f"k{i}": i for i in range(5)} | {"other": 1})
    expired_value(store, clock, "k00")  # sorts first, but is gone

    assert store.keys("k*", limit=2) == ["k0", "k1"]
    assert store.keys("k*", limit=10) == ["k0", "k1", "k2", "k3", "k4"]
    assert store.keys("k*") == ["k0", "k1", "k2", "k3", "k4"]  # every one without a limit


@pytest.mark.parametrize("limit", [0, -1, 1.5, "2", True])
def test_keys__a_limit_that_is_not_a_positive_whole_number_is_refused(store, limit):
    with pytest.raises(InvalidValue, match="limit must be a whole number of at least 1"):
        store.keys("*", limit=limit)


#: keys around the edges of a literal prefix's key range (code point order)
PREFIX_KEYS = ["a", "ab", "abc", "ab\U0010ffff", "ab\U0010ffffz", "ac", "a\ud7ff", "a\ud7ffx", "a\ue000", "b",
               "\U0010ffff", "\U0010ffffa"]


@pytest.mark.parametrize("pattern", ["ab*", "ab?", "ab", "ab\U0010ffff*", "a\ud7ff*", "\U0010ffff*", "a*c",
                                     "a\\*", "ab[c]*"], ids=repr)
def test_keys__a_literal_prefix_takes_every_key_under_it_and_no_other(store, pattern):
    store.mset({key: 1 for key in PREFIX_KEYS})

    assert store.keys(pattern) == sorted(key for key in PREFIX_KEYS if redis_match(pattern, key))


# -- locks ----------------------------------------------------------------------------------


def test_lock__free_lock_returns_a_token(store):
    token = store.lock("L", 10)

    assert isinstance(token, str)
    assert len(token) >= 16


def test_lock__held_lock_returns_none(store):
    store.lock("L", 10)

    assert store.lock("L", 10) is None


def test_lock__tokens_are_fresh_and_random(store):
    tokens = []
    for _ in range(20):
        token = store.lock("L", 10)
        tokens.append(token)
        assert store.unlock("L", token) is True

    assert len(set(tokens)) == 20
    assert None not in tokens


def test_lock__expired_lock_can_be_taken_again(store, clock):
    first = store.lock("L", 5)
    clock.advance(5)

    second = store.lock("L", 5)

    assert second is not None
    assert second != first


def test_lock__ttl_is_the_lock_lifetime(store, clock):
    store.lock("L", 7.5)

    assert store.pttl("L") == 7500


def test_unlock__right_token_releases_the_lock(store):
    token = store.lock("L", 10)

    assert store.unlock("L", token) is True

    assert store.exists("L") == 0
    assert store.lock("L", 10) is not None


def test_unlock__wrong_token_returns_false_and_keeps_the_lock(store):
    token = store.lock("L", 10)

    assert store.unlock("L", "not-the-token") is False

    assert store.lock("L", 10) is None
    assert store.unlock("L", token) is True


def test_unlock__expired_lock_returns_false(store, clock):
    token = store.lock("L", 5)
    clock.advance(6)

    assert store.unlock("L", token) is False


def test_unlock__old_token_does_not_release_the_next_holder(store, clock):
    old = store.lock("L", 5)
    clock.advance(6)
    new = store.lock("L", 5)

    assert store.unlock("L", old) is False

    assert store.lock("L", 5) is None
    assert store.unlock("L", new) is True


def test_unlock__free_lock_returns_false(store):
    assert store.unlock("L", "any") is False


def test_locked__holds_the_lock_inside_and_releases_it_after(store):
    with store.locked("L", 10) as token:
        assert isinstance(token, str)
        assert store.lock("L", 10) is None

    assert store.exists("L") == 0


def test_locked__releases_the_lock_when_the_block_raises(store):
    with pytest.raises(RuntimeError, match="inside"), store.locked("L", 10):
        raise RuntimeError("inside")

    assert store.lock("L", 10) is not None


def test_locked__raises_lock_timeout_once_the_timeout_has_passed(store):
    held = store.lock("L", 30)
    started = time.monotonic()

    with pytest.raises(LockTimeout, match="'L'"), store.locked("L", 10, timeout=0.3):
        pytest.fail("the block must not run")

    assert 0.3 <= time.monotonic() - started < 2
    assert store.unlock("L", held) is True


def test_locked__waits_for_the_lock_to_expire(store):
    store.lock("L", 0.3)
    started = time.monotonic()

    with store.locked("L", 10, timeout=5):
        waited = time.monotonic() - started

    assert 0.25 <= waited < 2


# -- bad input ------------------------------------------------------------------------------

OPERATIONS = {
    "get": lambda s, k: s.get(k),
    "set": lambda s, k: s.set(k, 1),
    "setex": lambda s, k: s.setex(k, 10, 1),
    "delete": lambda s, k: s.delete(k),
    "exists": lambda s, k: s.exists(k),
    "ttl": lambda s, k: s.ttl(k),
    "pttl": lambda s, k: s.pttl(k),
    "expire": lambda s, k: s.expire(k, 10),
    "persist": lambda s, k: s.persist(k),
    "incr": lambda s, k: s.incr(k),
    "decrby": lambda s, k: s.decrby(k, 2),
    "hset": lambda s, k: s.hset(k, "f", 1),
    "hget": lambda s, k: s.hget(k, "f"),
    "hgetall": lambda s, k: s.hgetall(k),
    "hdel": lambda s, k: s.hdel(k, "f"),
    "hincrby": lambda s, k: s.hincrby(k, "f"),
    "mset": lambda s, k: s.mset({"ok": 1, k: 1}),
    "mget": lambda s, k: s.mget("ok", k),
    "lock": lambda s, k: s.lock(k, 10),
    "unlock": lambda s, k: s.unlock(k, "token"),
}
BAD_KEYS = {"empty": "", "513-chars": "k" * 513, "int": 7, "none": None, "bytes": b"key", "tuple": ("a",)}


@pytest.mark.parametrize("bad_key", BAD_KEYS.values(), ids=BAD_KEYS.keys())
@pytest.mark.parametrize("operation", OPERATIONS.values(), ids=OPERATIONS.keys())
def test_store__bad_key_raises_invalid_key_and_writes_nothing(store, operation, bad_key):
    with pytest.raises(InvalidKey) as raised:
        operation(store, bad_key)

    assert str(raised.value)
    assert KVEntry.objects.count() == 0


def test_store__invalid_key_message_names_the_problem(store):
    with pytest.raises(InvalidKey, match="empty"):
        store.set("", 1)
    with pytest.raises(InvalidKey, match="512"):
        store.set("k" * 513, 1)
    with pytest.raises(InvalidKey, match="int"):
        store.set(7, 1)


@pytest.mark.parametrize("key", ["k" * 512, "é" * 512, "😀" * 512, " ", "\n", "%_*?[]\\"], ids=repr)
def test_store__any_non_empty_string_of_512_characters_is_a_key(store, key):
    store.set(key, "v")

    assert store.get(key) == "v"
    assert store.keys("*") == [key]
    assert store.delete(key) == 1


NOT_JSON = {
    "object": object(),
    "set": {1, 2},
    "bytes": b"raw",
    "nan": float("nan"),
    "inf": float("inf"),
    "nested-object": {"a": [object()]},
    "complex": 1j,
}


@pytest.mark.parametrize("value", NOT_JSON.values(), ids=NOT_JSON.keys())
def test_set__non_json_value_raises_invalid_value_and_writes_nothing(store, value):
    store.set("k", "before")

    with pytest.raises(InvalidValue, match="'k'"):
        store.set("k", value)

    assert store.get("k") == "before"


@pytest.mark.parametrize("value", NOT_JSON.values(), ids=NOT_JSON.keys())
def test_hset__non_json_value_raises_invalid_value_and_writes_nothing(store, value):
    store.hset("h", "a", 1)

    with pytest.raises(InvalidValue, match="'h'"):
        store.hset("h", mapping={"b": 2, "c": value})

    assert store.hgetall("h") == {"a": 1}


AWKWARD_TEXT = {"nul": "a\x00b", "lone-surrogate": "a\ud800b"}


@pytest.mark.parametrize("text", AWKWARD_TEXT.values(), ids=AWKWARD_TEXT.keys())
def test_set__awkward_string_value_round_trips_or_raises_invalid_value(store, text):
    # both are Python strings json.dumps accepts; a database that cannot hold them
    # must say so with InvalidValue, not fail with a driver error
    store.set("k", "before")

    try:
        store.set("k", {"text": text})
    except InvalidValue as e:
        assert "'k'" in str(e)
        assert store.get("k") == "before"
    else:
        assert store.get("k") == {"text": text}


@pytest.mark.parametrize("text", AWKWARD_TEXT.values(), ids=AWKWARD_TEXT.keys())
def test_hset__awkward_field_name_round_trips_or_raises(store, text):
    try:
        store.hset("h", text, 1)
    except (InvalidKey, InvalidValue) as e:
        assert "'h'" in str(e) or repr(text) in str(e)
        assert store.exists("h") == 0
    else:
        assert store.hgetall("h") == {text: 1}


@pytest.mark.parametrize("text", AWKWARD_TEXT.values(), ids=AWKWARD_TEXT.keys())
def test_store__awkward_key_round_trips_or_raises_invalid_key(store, text):
    try:
        store.set(text, 1)
    except InvalidKey:
        assert KVEntry.objects.count() == 0
    else:
        assert store.get(text) == 1
        assert store.keys("*") == [text]


def test_hset__non_string_field_raises_invalid_key_and_writes_nothing(store):
    with pytest.raises(InvalidKey):
        store.hset("h", mapping={"ok": 1, 2: "two"})

    assert store.exists("h") == 0


def test_set__value_up_to_max_value_size_is_stored(store, settings):
    settings.KV = {"MAX_VALUE_SIZE": 50}

    store.set("k", "x" * 48)  # 50 bytes of JSON with its quotes

    assert store.get("k") == "x" * 48


def test_set__value_over_max_value_size_raises_invalid_value_and_writes_nothing(store, settings):
    settings.KV = {"MAX_VALUE_SIZE": 50}
    store.set("k", "before")

    with pytest.raises(InvalidValue, match=r"(?s)'k'.*51.*50"):
        store.set("k", "x" * 49)

    assert store.get("k") == "before"


def test_mset__value_over_max_value_size_writes_nothing(store, settings):
    settings.KV = {"MAX_VALUE_SIZE": 50}

    with pytest.raises(InvalidValue, match="'big'"):
        store.mset({"small": 1, "big": "x" * 100})

    assert store.mget("small", "big") == [None, None]


def test_hset__hash_cannot_grow_past_max_value_size(store, settings):
    settings.KV = {"MAX_VALUE_SIZE": 60}
    store.hset("h", "a", "x" * 30)

    with pytest.raises(InvalidValue, match="'h'"):
        store.hset("h", "b", "y" * 30)

    assert store.hgetall("h") == {"a": "x" * 30}


# -- bad input: lone surrogates, deep nesting, "\u0000" written out, TTLs past the cap ---------

@pytest.mark.parametrize("value", SURROGATES.values(), ids=SURROGATES.keys())
def test_set__a_lone_surrogate_anywhere_raises_invalid_value_and_writes_nothing(store, value):
    store.set("k", "before")

    with pytest.raises(InvalidValue, match=r"'k'.*lone surrogate"):
        store.set("k", value)
    with pytest.raises(InvalidValue, match="lone surrogate"):
        store.mset({"other": 1, "k": value})
    with pytest.raises(InvalidValue, match="lone surrogate"):
        store.hset("h", "f", value)

    assert store.get("k") == "before"
    assert store.mget("other", "h") == [None, None]


@pytest.mark.parametrize("key", ["a\ud800", "\udc00b"], ids=["high", "low"])
def test_store__a_key_or_field_with_a_lone_surrogate_raises_invalid_key(store, key):
    with pytest.raises(InvalidKey, match="lone surrogate"):
        store.set(key, 1)
    with pytest.raises(InvalidKey, match="lone surrogate"):
        store.hset("h", key, 1)

    assert KVEntry.objects.count() == 0


def test_set__a_value_at_max_json_depth_round_trips(store):
    value = nested_list(MAX_JSON_DEPTH)

    store.set("k", value)

    assert store.get("k") == value


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 1_000, 100_000])
def test_set__a_value_nested_deeper_than_max_json_depth_raises_invalid_value(store, depth):
    store.set("k", "before")

    with pytest.raises(InvalidValue, match=rf"'k'.*nested too deeply.*{MAX_JSON_DEPTH}"):
        store.set("k", nested_list(depth))
    with pytest.raises(InvalidValue, match="nested too deeply"):
        store.mset({"other": 1, "k": nested_list(depth)})

    assert store.get("k") == "before"
    assert store.get("other") is None


def test_hset__the_hash_counts_as_one_level_of_its_value(store):
    store.hset("h", "f", nested_list(MAX_JSON_DEPTH - 1))

    with pytest.raises(InvalidValue, match=r"'h'.*nested too deeply"):
        store.hset("h", "g", nested_list(MAX_JSON_DEPTH))

    assert store.hgetall("h") == {"f": nested_list(MAX_JSON_DEPTH - 1)}


def test_set__brackets_inside_strings_do_not_count_as_nesting(store):
    value = {"text": "[" * 500 + "{" * 500, "list": ["]]]", "[[["]}

    store.set("k", value)

    assert store.get("k") == value


@pytest.mark.parametrize("key", ["a\\u0000b", "\\u0000", "\\\\u0000", "x\\x00"], ids=repr)
def test_store__a_key_with_backslash_u0000_written_out_is_a_plain_key(store, key):
    # six characters, not a NUL: a key is a plain string, not JSON text
    store.set(key, "v")
    store.hset(f"h{key}", key, 1)

    assert store.get(key) == "v"
    assert store.hgetall(f"h{key}") == {key: 1}
    assert store.keys("*") == sorted([key, f"h{key}"])
    assert KVEntry.objects.get(key=key).value == "v"


def test_set__a_value_with_backslash_u0000_written_out_round_trips(store):
    value = {"\\u0000": "\\u0000", "list": ["a\\\\u0000"]}

    store.set("k", value)

    assert store.get("k") == value


@pytest.mark.parametrize("call", [
    lambda s: s.set("k", 1, ex=MAX_TTL + 1),
    lambda s: s.set("k", 1, ex=10**16),
    lambda s: s.set("k", 1, px=(MAX_TTL + 1) * 1000),
    lambda s: s.set("k", 1, ex=timedelta(days=10**8)),
    lambda s: s.set("k", 1, ex=float("inf")),
    lambda s: s.setex("k", 10**16, 1),
    lambda s: s.expire("k", 10**16),
    lambda s: s.pexpire("k", 10**19),
    lambda s: s.lock("k", 10**16),
], ids=["set-ex", "set-ex-huge", "set-px", "set-timedelta", "set-inf", "setex", "expire", "pexpire", "lock"])
def test_store__a_ttl_over_max_ttl_raises_invalid_value_and_writes_nothing(store, call):
    store.set("k", "before")

    with pytest.raises(InvalidValue, match=str(MAX_TTL)):
        call(store)

    assert store.get("k") == "before"
    assert store.ttl("k") == -1


def test_store__a_ttl_of_max_ttl_is_kept(store):
    store.set("k", 1, ex=MAX_TTL)

    assert store.ttl("k") == MAX_TTL
    assert store.expire("k", MAX_TTL) is True
