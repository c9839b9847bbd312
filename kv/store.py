"""``KVStore``: a Redis-like API over the ``_kv`` table, with the L1 cache in front."""

from __future__ import annotations

import contextlib
import functools
import json
import random
import secrets
import threading
import time
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.db import connections, router, transaction
from django.utils import timezone

from .conf import kv_settings
from .errors import (
    InvalidKey,
    InvalidValue,
    LockTimeout,
    NotAnInteger,
    Overflow,
    ValueTooLarge,
    WrongType,
)
from .l1 import L1Cache
from .sql import Statements, statements_for
from .sql.base import INT64_MAX, INT64_MIN
from .validation import check_field, check_key, expiry, to_integer, to_json, to_seconds

INVALIDATE_CHANNEL = "kv-invalidate"
_INVALIDATE_ALL_OVER = 6000  # bytes of key names: past this, tell other processes to drop everything


@functools.cache
def _runtime():
    from tachycore.runtime import runtime  # imported late: it needs the apps loaded

    return runtime


_settings_read = object.__getattribute__(settings, "__dict__")


def _debug() -> bool:
    """``settings.DEBUG`` at the cost of a dict read: ``LazySettings`` keeps each setting it
    has read in its ``__dict__`` (and empties it whenever settings change); read through it
    when the value is not there."""
    debug = _settings_read.get("DEBUG")
    return settings.DEBUG if debug is None else debug


def _invalidation(keys: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """The sync message that drops ``keys`` from other processes' L1 (all of it past a size)."""
    if sum(len(key) + 4 for key in keys) > _INVALIDATE_ALL_OVER:
        return {"all": True}
    return {"keys": list(keys)}


def now_ms() -> int:
    return int(time.time() * 1000)


class KVStore:
    """The key-value store. Method names, arguments and results follow redis-py.

    Every write is one SQL statement, atomic across processes, and joins the
    caller's transaction when there is one. Reads go through the L1 cache of
    this process, except inside a transaction, where they never fill it.
    """

    def __init__(self, using: str | None = None) -> None:
        self._using = using
        self._l1: L1Cache | None = None
        self._l1_config: tuple | None = None
        self._local = threading.local()

    # -- plumbing --------------------------------------------------------------------------

    @property
    def using(self) -> str:
        if self._using is None:
            from .models import KVEntry

            self._using = router.db_for_write(KVEntry)
        return self._using

    @property
    def l1(self) -> L1Cache | None:
        """This process's L1 cache, or ``None`` when ``KV["L1_ENABLED"]`` is off."""
        if self._l1_config is None:
            config = (kv_settings.L1_ENABLED, kv_settings.L1_MAX_SIZE, kv_settings.L1_TTL)
            self._l1 = L1Cache(config[1], config[2]) if config[0] else None
            self._l1_config = config
        return self._l1

    def reset_l1(self, **kwargs: Any) -> None:
        """Build L1 again from the settings at next use (``setting_changed`` for ``KV``)."""
        if kwargs.get("setting", "KV") == "KV":
            self._l1_config = None

    def _transaction_unless_in_one(self, needed: bool):
        """A transaction around a write that needs two statements on this database."""
        if needed and not self._in_transaction():
            return transaction.atomic(using=self.using)
        return contextlib.nullcontext()

    def _connection(self):
        """This thread's connection (kept per thread: the handler's lookup costs more than an L1 hit)."""
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._local.connection = connections[self.using]
        return connection

    def _in_transaction(self) -> bool:
        return self._connection().in_atomic_block

    def _statements(self, connection) -> Statements:
        """Statements on a cursor of ``connection``: Django's while queries are logged (DEBUG,
        a test capturing queries), else the driver's own, kept for the connection's life
        (Django's wrapper and a new cursor each time would cost more than the query)."""
        if connection.queries_logged:
            return statements_for(connection, connection.cursor())
        connection.ensure_connection()
        cached = getattr(connection, "_kv_statements", None)
        if cached is None or cached.cursor.connection is not connection.connection:
            cached = statements_for(connection, connection.connection.cursor())
            connection._kv_statements = cached
        return cached

    def _hot(self) -> Statements | None:
        """This thread's statements when the next one runs on its own: outside a transaction,
        queries not logged, on the connection they were made for (the common case). The hot
        paths then skip the general machinery of ``_reading``/``_writing``, to the same effect;
        ``None`` sends them through it."""
        connection = getattr(self._local, "connection", None)
        if connection is None or connection.in_atomic_block:
            return None
        sql = connection.__dict__.get("_kv_statements")
        if (sql is None or sql.cursor.connection is not connection.connection
                or connection.force_debug_cursor or _debug()):  # connection.queries_logged, cheaper
            return None
        return sql

    def _hot_writer(self) -> Statements | None:
        """``_hot()`` for a write: also not on PostgreSQL with ``DURABILITY = "fast"``, which
        needs its own transaction (and SQLite ignores the setting: it is not read there)."""
        sql = self._hot()
        if sql is not None and sql.vendor == "postgresql" and kv_settings.DURABILITY == "fast":
            return None
        return sql

    def _hot_notify(self, sql: Statements, key: str) -> tuple[str, str] | None:
        """``(channel, message)`` to NOTIFY with a hot write of ``key`` (as ``_notify_in_statement``)."""
        if sql.vendor != "postgresql":
            return None
        adapter = _runtime().pubsub
        if getattr(adapter, "using", None) != self.using or not hasattr(adapter, "channel"):
            return None
        return adapter.channel, sql.invalidation_of(key, adapter.node_id, adapter.channel, INVALIDATE_CHANNEL)

    def _hot_written(self, key: str, notified: bool) -> None:
        """After a hot write (committed: autocommit): as ``_after_commit`` for one key."""
        l1 = self._l1 if self._l1_config is not None else self.l1
        if l1 is not None:
            l1.invalidate_one(key)
        if not notified:
            runtime = _runtime()
            if runtime.has_audience:
                runtime.publish(INVALIDATE_CHANNEL, {"keys": [key]})

    @contextlib.contextmanager
    def _reading(self) -> Iterator[Statements]:
        yield self._statements(self._connection())

    @contextlib.contextmanager
    def _writing(self, *keys: str) -> Iterator[Statements]:
        """Run one write; drop the keys from L1 now and, after commit, here and everywhere."""
        connection = self._connection()
        l1 = self.l1
        if l1 is not None:
            l1.invalidate(*keys)
        if kv_settings.DURABILITY == "fast" and connection.vendor == "postgresql" and not connection.in_atomic_block:
            with transaction.atomic(using=self.using):
                sql = self._statements(connection)
                sql.execute("SET LOCAL synchronous_commit = off", {})
                yield sql
                self._after_commit(keys)
            return
        sql = self._statements(connection)
        payload = _invalidation(keys)
        notify = self._notify_in_statement(connection, payload)
        sql.notify_with = notify
        try:
            yield sql
        finally:
            sent, sql.notify_with = sql.notify_with is None and notify is not None, None
        self._after_commit(keys, connection=connection, payload=None if sent else payload)

    def _notify_in_statement(self, connection, payload: dict[str, Any]) -> tuple[str, str] | None:
        """``(channel, message)`` for a NOTIFY sent with the write itself (one round trip,
        one commit), when this process's sync messages go through PostgreSQL on this database."""
        if connection.vendor != "postgresql" or connection.queries_logged:
            return None
        adapter = _runtime().pubsub
        if getattr(adapter, "using", None) != self.using or not hasattr(adapter, "channel"):
            return None
        from tachycore.pubsub.base import encode

        return adapter.channel, encode(INVALIDATE_CHANNEL, payload, adapter.node_id)

    def _after_commit(self, keys: tuple[str, ...] | list[str], everything: bool = False,
                      connection=None, payload: dict[str, Any] | None = None) -> None:
        """Drop ``keys`` (or everything) from L1 here and, unless the write's statement
        notified them already (``payload`` None), in every other process, once committed."""
        if everything:
            payload = {"all": True}
        elif payload is None and connection is None:
            payload = _invalidation(keys)
        if connection is not None and not connection.in_atomic_block:
            # committed already (autocommit): no on_commit machinery on this hot path
            self._drop(keys, everything)
            if payload is not None:
                _runtime().publish(INVALIDATE_CHANNEL, payload)
            return
        transaction.on_commit(lambda: self._drop(keys, everything), using=self.using)
        if payload is not None:
            from tachycore import sync

            sync.publish(INVALIDATE_CHANNEL, payload, using=self.using)

    def _drop(self, keys: tuple[str, ...] | list[str], everything: bool) -> None:
        l1 = self.l1
        if l1 is not None:
            l1.clear() if everything else l1.invalidate(*keys)

    # -- validation ------------------------------------------------------------------------

    # -- strings ---------------------------------------------------------------------------

    def get(self, key: str) -> Any:
        """The value of ``key``, or ``None`` when it is missing or expired."""
        l1 = self._l1 if self._l1_config is not None else self.l1
        # the L1 hit, kept short (the hot path); inside a transaction L1 is not used at all:
        # another thread may have cached the committed value this transaction has replaced
        if l1 is not None and key.__class__ is str and not self._connection().in_atomic_block:
            hit = l1.get(key)
            if hit is not None and hit[0] == "value":
                return hit[1]
        found = self._read(check_key(key))
        if found is None:
            return None
        type_, value = found
        if type_ != "value":
            raise WrongType(f"key {key!r} holds a {type_}, not a value")
        return value

    def _read(self, key: str) -> tuple[str, Any] | None:
        l1 = self._l1 if self._l1_config is not None else self.l1
        sql = self._hot()
        cacheable = l1 is not None and (sql is not None or not self._in_transaction())
        if cacheable:  # outside a transaction only (see get)
            hit = l1.get(key)
            if hit is not None:
                return hit
            generation = l1.generation
        now = now_ms()
        if sql is None:
            sql = self._statements(self._connection())
        row = sql.get(key, now)
        if row is None:
            return None
        type_, text, expire_at = row
        value = json.loads(text)
        if cacheable:
            ttl = None if expire_at is None else (expire_at - now) / 1000
            l1.fill(key, type_, value, text, ttl, generation)
        return type_, value

    def set(self, key: str, value: Any, ex: Any = None, px: Any = None, nx: bool = False, xx: bool = False,
            keepttl: bool = False) -> bool | None:
        """Store ``value``; ``True``, or ``None`` when ``nx``/``xx`` refused it (as redis-py)."""
        key = check_key(key)
        text = to_json(value, key)
        if nx and xx:
            raise InvalidValue("give nx or xx, not both")
        now = now_ms()
        expire_at = expiry(ex, px, now)
        if keepttl and expire_at is not None:
            raise InvalidValue("keepttl cannot go with ex or px")
        if not (nx or xx or keepttl) and (sql := self._hot_writer()) is not None:
            l1 = self._l1 if self._l1_config is not None else self.l1
            if l1 is not None:
                l1.invalidate_one(key)
            notify = self._hot_notify(sql, key)
            sql.put(key, text, expire_at, now, sql.timestamp(), notify)
            self._hot_written(key, notify is not None)
            return True
        with self._writing(key) as sql:
            if xx:
                written = sql.replace(key, text, expire_at, now, timezone.now(), keepttl=keepttl)
            else:
                written = sql.set(key, text, expire_at, now, timezone.now(), nx=nx, keepttl=keepttl)
        return True if written else None

    def setex(self, key: str, seconds: Any, value: Any) -> bool:
        return bool(self.set(key, value, ex=seconds))

    def mset(self, mapping: dict[str, Any]) -> bool:
        """Store every key at once (one statement); their TTLs are cleared."""
        if not isinstance(mapping, dict) or not mapping:
            raise InvalidValue("mset needs a non-empty dict of keys and values")
        items = [(check_key(key), to_json(value, key)) for key, value in mapping.items()]
        now = now_ms()
        with self._writing(*mapping) as sql:
            sql.set_many(items, None, now, timezone.now())
        return True

    def mget(self, *keys: Any) -> list[Any]:
        """The values of ``keys`` in order, ``None`` for each missing one (a list is accepted too)."""
        if len(keys) == 1 and isinstance(keys[0], list | tuple):
            keys = tuple(keys[0])
        names = [check_key(key) for key in keys]
        found = self.read_many(names)
        return [found[key][1] if key in found and found[key][0] == "value" else None for key in names]

    def read(self, key: str) -> tuple[str, Any] | None:
        """``(type, value)`` of a live key of any type, through L1; ``None`` when absent.

        For readers of their own row types (``kv.cache``); ``get`` answers plain values only.
        """
        return self._read(check_key(key))

    def read_many(self, keys: list[str]) -> dict[str, tuple[str, Any]]:
        """``{key: (type, value)}`` for the live ones of ``keys``, of any type, through L1."""
        keys = list(dict.fromkeys(check_key(key) for key in keys))
        found: dict[str, tuple[str, Any]] = {}
        l1 = self.l1
        cacheable = l1 is not None and not self._in_transaction()
        if cacheable:
            generation = l1.generation
            found = {key: hit for key in keys if (hit := l1.get(key)) is not None}
        misses = [key for key in keys if key not in found]
        if misses:
            now = now_ms()
            with self._reading() as sql:
                rows = sql.get_many(misses, now)
            for key, (type_, text, expire_at) in rows.items():
                found[key] = (type_, json.loads(text))
                if cacheable:
                    ttl = None if expire_at is None else (expire_at - now) / 1000
                    l1.fill(key, type_, json.loads(text), text, ttl, generation)
        return found

    def forget(self, *keys: str, everything: bool = False) -> None:
        """Drop ``keys`` (or every key) from L1 now and, after commit, here and in every process.

        For a statement that learns which keys it removed only as it runs (``kv.cache``'s
        clear and cull); other writes go through ``_writing``, which does this around them.
        """
        if not keys and not everything:
            return
        l1 = self.l1
        if l1 is not None:
            l1.clear() if everything else l1.invalidate(*keys)
        self._after_commit(keys, everything=everything)

    def delete(self, *keys: str) -> int:
        """Delete keys; return how many existed."""
        if not keys:
            raise InvalidKey("delete needs at least one key")
        keys = tuple(dict.fromkeys(check_key(key) for key in keys))
        with self._writing(*keys) as sql:
            return sql.delete(list(keys), now_ms())

    def exists(self, *keys: str) -> int:
        """How many of ``keys`` exist (a key named twice counts twice, as in Redis)."""
        if not keys:
            raise InvalidKey("exists needs at least one key")
        names = [check_key(key) for key in keys]
        with self._reading() as sql:
            live = sql.get_many(list(dict.fromkeys(names)), now_ms())
        return sum(1 for key in names if key in live)

    def type(self, key: str) -> str:
        """``"value"``, ``"hash"`` or ``"none"``."""
        found = self._read(check_key(key))
        return found[0] if found else "none"

    def keys(self, pattern: str = "*") -> list[str]:
        """Live keys matching a Redis glob pattern (``*``, ``?``, ``[abc]``, ``[^a]``, ``[a-z]``, ``\\``)."""
        if not isinstance(pattern, str):
            raise InvalidKey(f"a pattern must be a string, got {pattern!r}")
        with self._reading() as sql:
            return sql.keys(pattern, now_ms())

    # -- expiry ----------------------------------------------------------------------------

    def pttl(self, key: str) -> int:
        """Milliseconds left; -2 for a missing key, -1 for a key without expiry."""
        now = now_ms()
        with self._reading() as sql:
            row = sql.expire_at(check_key(key), now)
        if row is None:
            return -2
        return -1 if row[0] is None else max(0, row[0] - now)

    def ttl(self, key: str) -> int:
        """Seconds left (rounded, as Redis does); -2 missing, -1 no expiry."""
        left = self.pttl(key)
        return left if left < 0 else (left + 500) // 1000

    def expire(self, key: str, seconds: Any) -> bool:
        """Give ``key`` a TTL; 0 or less deletes it. ``False`` when the key is missing."""
        return self._expire(check_key(key), to_seconds(seconds, "seconds") * 1000)

    def pexpire(self, key: str, milliseconds: Any) -> bool:
        return self._expire(check_key(key), to_seconds(milliseconds, "milliseconds"))

    def _expire(self, key: str, milliseconds: float) -> bool:
        now = now_ms()
        with self._writing(key) as sql:
            if milliseconds <= 0:
                return sql.delete([key], now) > 0
            return sql.set_expiry(key, now + max(1, round(milliseconds)), now, timezone.now())

    def persist(self, key: str) -> bool:
        """Remove the TTL; ``True`` if there was one."""
        key = check_key(key)
        with self._writing(key) as sql:
            return sql.set_expiry(key, None, now_ms(), timezone.now(), only_if_set=True)

    # -- counters --------------------------------------------------------------------------

    def incrby(self, key: str, amount: int = 1) -> int:
        """Add ``amount`` (from 0 when missing or expired); the key keeps its TTL."""
        key = check_key(key)
        amount = to_integer(amount, "amount")
        now = now_ms()
        if (sql := self._hot_writer()) is not None:
            l1 = self._l1 if self._l1_config is not None else self.l1
            if l1 is not None:
                l1.invalidate_one(key)
            notify = self._hot_notify(sql, key)
            result = sql.incr_value(key, amount, now, sql.timestamp(), notify)
            if result is None:
                self._refuse_increment(sql, key, None, amount, now)
            self._hot_written(key, notify is not None)
            return result
        with self._writing(key) as sql:
            result = sql.incr(key, amount, now, timezone.now())
            if result is None:
                self._refuse_increment(sql, key, None, amount, now)
        return result

    def incr(self, key: str, amount: int = 1) -> int:
        return self.incrby(key, amount)

    def decrby(self, key: str, amount: int = 1) -> int:
        return self.incrby(key, -to_integer(amount, "amount"))

    def decr(self, key: str, amount: int = 1) -> int:
        return self.decrby(key, amount)

    def _refuse_increment(self, sql: Statements, key: str, field: str | None, amount: int, now: int) -> None:
        found = sql.row(key, now)
        type_, current = (found[0], json.loads(found[1])) if found else ("none", None)
        expected = "hash" if field is not None else "value"
        if type_ != expected:
            raise WrongType(f"key {key!r} holds a {type_}, not a {expected}")
        if field is not None:
            current = current.get(field)
        where = f"field {field!r} of key {key!r}" if field is not None else f"key {key!r}"
        if isinstance(current, bool) or not isinstance(current, int) or not INT64_MIN <= current <= INT64_MAX:
            raise NotAnInteger(f"{where} holds {current!r}, not an integer")
        raise Overflow(f"adding {amount} to {where} ({current}) would leave the signed 64-bit range")

    # -- hashes ----------------------------------------------------------------------------

    def hset(self, key: str, field: str | None = None, value: Any = None,
             mapping: dict[str, Any] | None = None) -> int:
        """Set fields of a hash (``field``/``value`` and/or ``mapping``); return how many are new."""
        key = check_key(key)
        fields: dict[str, Any] = {}
        if field is not None:
            fields[check_field(field)] = value
        if mapping is not None:
            if not isinstance(mapping, dict):
                raise InvalidValue(f"mapping for key {key!r} must be a dict, got {mapping!r}")
            fields.update({check_field(name): item for name, item in mapping.items()})
        if not fields:
            raise InvalidValue(f"hset of key {key!r} needs a field and value, or a mapping")
        text = to_json(fields, key)
        now = now_ms()
        with self._writing(key) as sql, self._transaction_unless_in_one(sql.vendor == "postgresql"):
            new = sql.hset(key, text, len(fields), now, timezone.now(), kv_settings.MAX_VALUE_SIZE)
            if new is None:
                found = sql.row(key, now)
                if found is not None and found[0] == "hash":
                    raise ValueTooLarge(f"hash {key!r} would pass KV['MAX_VALUE_SIZE'] "
                                        f"({kv_settings.MAX_VALUE_SIZE} bytes) with these fields")
                raise WrongType(f"key {key!r} holds a value, not a hash")
        return new

    def hget(self, key: str, field: str) -> Any:
        found = self._hash(key)
        return found.get(check_field(field)) if found else None

    def hgetall(self, key: str) -> dict[str, Any]:
        return self._hash(key) or {}

    def _hash(self, key: str) -> dict[str, Any] | None:
        found = self._read(check_key(key))
        if found is None:
            return None
        if found[0] != "hash":
            raise WrongType(f"key {key!r} holds a {found[0]}, not a hash")
        return found[1]

    def hdel(self, key: str, *fields: str) -> int:
        """Remove fields; the key goes when its last field does. Return how many were removed."""
        key = check_key(key)
        if not fields:
            raise InvalidKey("hdel needs at least one field")
        names = [check_field(field) for field in fields]
        with self._writing(key) as sql, self._transaction_unless_in_one(sql.vendor == "sqlite"):
            result = sql.hdel(key, names, now_ms(), timezone.now())
        if result is None:
            return 0
        if result[0] != "hash":
            raise WrongType(f"key {key!r} holds a {result[0]}, not a hash")
        return result[1]

    def hincrby(self, key: str, field: str, amount: int = 1) -> int:
        key = check_key(key)
        field = check_field(field)
        amount = to_integer(amount, "amount")
        now = now_ms()
        with self._writing(key) as sql:
            result = sql.hincr(key, field, amount, now, timezone.now())
            if result is None:
                self._refuse_increment(sql, key, field, amount, now)
        return result

    # -- locks -----------------------------------------------------------------------------

    def lock(self, key: str, ttl: Any) -> str | None:
        """Take the lock ``key`` for ``ttl`` seconds: a fresh token, or ``None`` if it is held."""
        key = check_key(key)
        seconds = to_seconds(ttl, "ttl")
        if seconds <= 0:
            raise InvalidValue(f"a lock's ttl must be positive, got {ttl!r}")
        token = secrets.token_urlsafe(16)
        now = now_ms()
        with self._writing(key) as sql:
            taken = sql.lock(key, token, now + max(1, round(seconds * 1000)), now, timezone.now())
        return token if taken else None

    def unlock(self, key: str, token: str) -> bool:
        """Release the lock if ``token`` still holds it (and it has not expired)."""
        key = check_key(key)
        if not isinstance(token, str):
            raise InvalidValue(f"a lock token is a string, got {token!r}")
        with self._writing(key) as sql:
            return sql.unlock(key, token, now_ms())

    @contextlib.contextmanager
    def locked(self, key: str, ttl: Any, timeout: Any = None) -> Iterator[str]:
        """Hold the lock ``key`` inside the block, waiting up to ``timeout`` seconds for it
        (``None``: as long as it takes). Raises ``LockTimeout`` when it cannot."""
        deadline = None if timeout is None else time.monotonic() + to_seconds(timeout, "timeout")
        delay = 0.005
        while (token := self.lock(key, ttl)) is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise LockTimeout(f"lock {key!r} is still held after {timeout} s")
            pause = delay * (1 + random.random())
            if deadline is not None:
                pause = min(pause, max(0.0, deadline - time.monotonic()))
            time.sleep(pause)
            delay = min(delay * 2, 0.1)
        try:
            yield token
        finally:
            self.unlock(key, token)

    # -- maintenance -----------------------------------------------------------------------

    def delete_expired(self, batch_size: int | None = None) -> int:
        """Delete expired rows in batches until none is left; return how many."""
        size = batch_size or kv_settings.CLEANUP_BATCH_SIZE
        total = 0
        while True:
            with self._reading() as sql:
                deleted = sql.delete_expired(now_ms(), size)
            total += deleted
            if deleted < size:
                return total
