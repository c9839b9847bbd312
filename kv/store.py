"""``KVStore``: a Redis-like API over the ``_kv`` table, with the L1 cache in front.

The SQL, the connections and what a write tells other processes live in ``kv.sql``;
the hash, lock and scan commands in ``kv.hashes``, ``kv.locks`` and ``kv.scans``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from . import clock, governed
from .conf import kv_settings
from .errors import InvalidKey, InvalidValue, WrongType
from .governed import current_plugin
from .hashes import HashCommands
from .l1 import L1Cache
from .locks import LockCommands
from .refusals import refuse_increment
from .reserved import writable_key
from .scans import ScanCommands
from .sql import CacheStatements
from .sql.glob import check_pattern
from .sql.session import Session
from .validation import check_key, expire_at, expiry, to_integer, to_json, to_seconds

T = TypeVar("T")


class KVStore(HashCommands, LockCommands, ScanCommands):
    """The key-value store. Method names, arguments and results follow redis-py.

    Every write is one SQL statement, atomic across processes, and joins the
    caller's transaction when there is one. Writes refuse the key space of ``kv.cache``
    (``cache:...``, see ``kv.reserved``). Reads go through the L1 cache of
    this process, except inside a transaction, where they never fill it.
    """

    def __init__(self, using: str | None = None) -> None:
        self._session = Session(using)
        self._l1: L1Cache | None = None
        self._l1_config: tuple | None = None

    @property
    def using(self) -> str:
        """The database alias of the ``_kv`` table."""
        return self._session.using

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

    def write(self, keys: tuple[str, ...] | list[str], statements: Callable[..., T], *args: Any) -> T:
        """``statements(sql, *args)`` with ``sql`` the statements of ``kv.sql``, as one write of
        ``keys``: L1 and other processes follow as for the store's own writes (``kv.cache``);
        its result. See ``Session.write``."""
        return self._session.write(keys, self._l1 if self._l1_config is not None else self.l1, statements, *args)

    def _read(self, key: Any) -> tuple[str, Any] | None:
        """``(type, value)`` of a live key; through L1 outside a transaction only (inside one,
        another thread may have cached the committed value this transaction replaced)."""
        l1 = self._l1 if self._l1_config is not None else self.l1  # the property costs an L1 hit a call
        if l1 is not None and self._session.connection().in_atomic_block:
            l1 = None  # inside a transaction: past L1, and it is not filled
        # L1 holds checked keys only: a hit needs no check
        if l1 is not None and key.__class__ is str and (hit := l1.get(key)) is not None:
            return hit
        row = self._load(key, l1)
        return None if row is None else (row[0], row[1])

    def _load(self, key: Any, l1: L1Cache | None) -> tuple[str, Any, int | None, int] | None:
        """``(type, value, expire_at, now)`` of a live key read from the database (``key``
        checked here), kept in ``l1`` unless an invalidation came during the read."""
        generation = l1.generation if l1 is not None else 0
        key = check_key(key)
        now = clock.now_ms()
        row = self._session.statements().get(key, now)
        if row is None:
            return None
        type_, text, expire_at = row
        value = json.loads(text)
        if l1 is not None:
            l1.fill(key, type_, value, text, None if expire_at is None else (expire_at - now) / 1000, generation,
                    expire_at)
        return type_, value, expire_at, now

    # -- strings ---------------------------------------------------------------------------

    def get(self, key: str) -> Any:
        """The value of ``key``, or ``None`` when it is missing or expired."""
        if current_plugin() is not None:
            governed.check(governed.READ, "get", key)
        found = self._read(key)
        if found is None:
            return None
        if found[0] != "value":
            raise WrongType(f"key {key!r} holds a {found[0]}, not a value")
        return found[1]

    def set(self, key: str, value: Any, ex: Any = None, px: Any = None, nx: bool = False, xx: bool = False,
            keepttl: bool = False) -> bool | None:
        """Store ``value``; ``True``, or ``None`` when ``nx``/``xx`` refused it (as redis-py)."""
        if current_plugin() is not None:
            governed.check(governed.WRITE, "set", key)
        key = writable_key(key)
        text = to_json(value, key)
        if nx and xx:
            raise InvalidValue("give nx or xx, not both")
        now = clock.now_ms()
        expire_at = expiry(ex, px, now)
        if keepttl and expire_at is not None:
            raise InvalidValue("keepttl cannot go with ex or px")
        # the session itself, not self.write: one call less on the store's busiest write
        l1 = self._l1 if self._l1_config is not None else self.l1
        written = self._session.write((key,), l1, _set, key, text, expire_at, now, nx, xx, keepttl)
        return True if written else None

    def setex(self, key: str, seconds: Any, value: Any) -> bool:
        """``set(key, value, ex=seconds)``."""
        return bool(self.set(key, value, ex=seconds))

    def mset(self, mapping: dict[str, Any]) -> bool:
        """Store every key at once (one statement); their TTLs are cleared."""
        if current_plugin() is not None:
            governed.check(governed.WRITE, "mset", "")
        if not isinstance(mapping, dict) or not mapping:
            raise InvalidValue("mset needs a non-empty dict of keys and values")
        items = [(writable_key(key), to_json(value, key)) for key, value in mapping.items()]
        self.write(tuple(mapping), _set_many, items, clock.now_ms())
        return True

    def mget(self, *keys: Any) -> list[Any]:
        """The values of ``keys`` in order, ``None`` for each missing one (a list is accepted too)."""
        if current_plugin() is not None:
            governed.check(governed.READ, "mget", "")
        if len(keys) == 1 and isinstance(keys[0], list | tuple):
            keys = tuple(keys[0])
        names = [check_key(key) for key in keys]
        found = self.read_many(names)
        return [found[key][1] if key in found and found[key][0] == "value" else None for key in names]

    def read(self, key: str) -> tuple[str, Any] | None:
        """``(type, value)`` of a live key of any type, through L1; ``None`` when absent.

        For readers of their own row types (``kv.cache``); ``get`` answers plain values only.
        """
        return self._read(key)

    def inspect(self, key: str) -> tuple[str, Any, int] | None:
        """``(type, value, pttl)`` of a live key of any type in one read, through L1 (``pttl``
        as ``pttl()`` gives it: milliseconds left, -1 without expiry); ``None`` when absent.

        For the API's ``GET /keys/<key>/``, which shows all three: ``type``, ``get`` and
        ``pttl`` would be three reads, the last one always of the database.
        """
        if current_plugin() is not None:
            governed.check(governed.READ, "inspect", key)
        l1 = self.l1
        if l1 is not None and self._session.connection().in_atomic_block:
            l1 = None  # inside a transaction: past L1, and it is not filled
        if l1 is not None and key.__class__ is str and (hit := l1.read(key)) is not None:
            left = _left(hit[2], clock.now_ms())
            return None if left == -2 else (hit[0], hit[1], left)
        row = self._load(key, l1)
        return None if row is None else (row[0], row[1], _left(row[2], row[3]))

    def read_many(self, keys: list[str]) -> dict[str, tuple[str, Any]]:
        """``{key: (type, value)}`` for the live ones of ``keys``, of any type, through L1."""
        keys = list(dict.fromkeys(check_key(key) for key in keys))
        found: dict[str, tuple[str, Any]] = {}
        l1 = self.l1
        if l1 is not None and self._session.in_transaction():
            l1 = None  # inside a transaction: past L1, and it is not filled
        if l1 is not None:
            generation = l1.generation
            found = {key: hit for key in keys if (hit := l1.get(key)) is not None}
        misses = [key for key in keys if key not in found]
        if misses:
            now = clock.now_ms()
            for key, (type_, text, expire_at) in self._session.statements().get_many(misses, now).items():
                value = json.loads(text)
                found[key] = (type_, value)
                if l1 is not None:  # it keeps a copy of its own
                    ttl = None if expire_at is None else (expire_at - now) / 1000
                    l1.fill(key, type_, value, text, ttl, generation, expire_at)
        return found

    def statements(self) -> CacheStatements:
        """The statements of ``kv.sql`` on this thread's connection, for a caller that tells
        L1 itself what changed (``forget``)."""
        return self._session.statements()

    def forget(self, *keys: str, everything: bool = False) -> None:
        """Drop ``keys`` (or every key) from L1 now and, after commit, here and in every process.

        For a statement that learns which keys it removed only as it runs (``kv.cache``'s
        clear and cull); other writes go through ``write``, which does this around them.
        """
        if not keys and not everything:
            return
        l1 = self.l1
        if l1 is not None:
            l1.clear() if everything else l1.invalidate(*keys)
        self._session.announce(None if everything else keys, l1)

    def delete(self, *keys: str) -> int:
        """Delete keys; return how many existed."""
        if current_plugin() is not None:
            governed.check(governed.WRITE, "delete", "")
        if not keys:
            raise InvalidKey("delete needs at least one key")
        keys = tuple(dict.fromkeys(writable_key(key) for key in keys))
        return self.write(keys, _delete, list(keys), clock.now_ms())

    def delete_rows(self, *keys: str) -> int:
        """``delete`` of rows of any type, ``kv.cache``'s entries included (``delete`` refuses
        the cache's key space): for the admin's key browser. Return how many existed."""
        keys = tuple(dict.fromkeys(check_key(key) for key in keys))
        return self.write(keys, _delete, list(keys), clock.now_ms()) if keys else 0

    def exists(self, *keys: str) -> int:
        """How many of ``keys`` exist (a key named twice counts twice, as in Redis)."""
        if current_plugin() is not None:
            governed.check(governed.READ, "exists", "")
        if not keys:
            raise InvalidKey("exists needs at least one key")
        names = [check_key(key) for key in keys]
        live = self._session.statements().get_many(list(dict.fromkeys(names)), clock.now_ms())
        return sum(1 for key in names if key in live)

    def type(self, key: str) -> str:
        """``"value"``, ``"hash"`` or ``"none"``."""
        if current_plugin() is not None:
            governed.check(governed.READ, "type", key)
        found = self._read(key)
        return found[0] if found else "none"

    def keys(self, pattern: str = "*", *, limit: int | None = None) -> list[str]:
        """Live keys matching a Redis glob pattern (``*``, ``?``, ``[abc]``, ``[^a]``, ``[a-z]``,
        ``\\``), sorted: all of them, as Redis, or the first ``limit``. ``scan`` returns them a
        few at a time, in constant memory.

        All of them are read in steps of ``scan`` (keyset pages of the primary key index): the
        database sorts nothing and Python holds the key strings only. A key present throughout
        is returned once; one added or removed meanwhile may be returned or not, as in a scan.

        A pattern is at most ``kv.sql.glob.MAX_PATTERN_LENGTH`` characters with at most
        ``kv.sql.glob.MAX_PATTERN_WILDCARDS`` wildcards (``InvalidPattern`` past them). On
        PostgreSQL the search is cancelled after ``KV["KEYS_TIMEOUT"]`` (``SearchTimeout``).
        """
        if current_plugin() is not None:
            governed.check(governed.READ, "keys", pattern)
        pattern = check_pattern(pattern)
        if limit is not None and (type(limit) is not int or limit < 1):
            raise InvalidValue(f"limit must be a whole number of at least 1, got {limit!r}")
        sql = self._session.statements()
        with sql.time_limit(kv_settings.KEYS_TIMEOUT, pattern):
            if limit is None:
                return sql.all_keys(pattern, clock.now_ms())
            return sql.keys(pattern, clock.now_ms(), limit=limit)

    # -- expiry ----------------------------------------------------------------------------

    def pttl(self, key: str) -> int:
        """Milliseconds left; -2 for a missing key, -1 for a key without expiry."""
        if current_plugin() is not None:
            governed.check(governed.READ, "pttl", key)
        now = clock.now_ms()
        row = self._session.statements().expire_at(check_key(key), now)
        if row is None:
            return -2
        return -1 if row[0] is None else max(0, row[0] - now)

    def ttl(self, key: str) -> int:
        """Seconds left (rounded, as Redis does); -2 missing, -1 no expiry."""
        left = self.pttl(key)
        return left if left < 0 else (left + 500) // 1000

    def expire(self, key: str, seconds: Any) -> bool:
        """Give ``key`` a TTL; 0 or less deletes it. ``False`` when the key is missing."""
        if current_plugin() is not None:
            governed.check(governed.WRITE, "expire", key)
        return self._expire(writable_key(key), to_seconds(seconds, "seconds") * 1000)

    def pexpire(self, key: str, milliseconds: Any) -> bool:
        """``expire`` in milliseconds."""
        if current_plugin() is not None:
            governed.check(governed.WRITE, "pexpire", key)
        return self._expire(writable_key(key), to_seconds(milliseconds, "milliseconds"))

    def _expire(self, key: str, milliseconds: float) -> bool:
        now = clock.now_ms()
        if milliseconds <= 0:
            return self.write((key,), _delete, [key], now) > 0
        return self.write((key,), _set_expiry, key, expire_at(now, milliseconds), now, False)

    def persist(self, key: str) -> bool:
        """Remove the TTL; ``True`` if there was one."""
        if current_plugin() is not None:
            governed.check(governed.WRITE, "persist", key)
        key = writable_key(key)
        return self.write((key,), _set_expiry, key, None, clock.now_ms(), True)

    def delete_expired(self, batch_size: int | None = None) -> int:
        """Delete the rows expired when the pass starts, in batches, until none is left;
        return how many.

        Every row expired at its start goes, even with writes beside it (a ``set`` that gives
        a picked row a new life leaves its batch a row short; the pass goes on). Rows that
        expire while it runs are the next pass's, so a pass always ends. See
        ``Statements.expired_deletions`` (and SQLite's, which walks the table in storage
        order when expired rows are many).
        """
        size = batch_size or kv_settings.CLEANUP_BATCH_SIZE
        return sum(self._session.statements().expired_deletions(clock.now_ms(), size))

    # -- counters --------------------------------------------------------------------------

    def incrby(self, key: str, amount: int = 1) -> int:
        """Add ``amount`` (from 0 when missing or expired); the key keeps its TTL."""
        if current_plugin() is not None:
            governed.check(governed.WRITE, "incrby", key)
        key = writable_key(key)
        amount = to_integer(amount, "amount")
        now = clock.now_ms()
        # the session itself, not self.write: one call less on a busy write
        l1 = self._l1 if self._l1_config is not None else self.l1
        return self._session.write((key,), l1, _incr, key, amount, now)

    def incr(self, key: str, amount: int = 1) -> int:
        """``incrby``."""
        return self.incrby(key, amount)

    def decrby(self, key: str, amount: int = 1) -> int:
        """``incrby`` of ``-amount``."""
        return self.incrby(key, -to_integer(amount, "amount"))

    def decr(self, key: str, amount: int = 1) -> int:
        """``decrby``."""
        return self.decrby(key, amount)


# -- what the writes run (Session.write calls them with the statements first) -------------

def _left(expire_at: int | None, now: int) -> int:
    """Milliseconds from ``now`` to ``expire_at``: -1 without expiry, -2 when past."""
    if expire_at is None:
        return -1
    return expire_at - now if expire_at > now else -2


def _set(sql: CacheStatements, key: str, text: str, expire_at: int | None, now: int, nx: bool, xx: bool,
         keepttl: bool) -> bool:
    if xx:
        return sql.replace(key, text, expire_at, now, keepttl=keepttl)
    return sql.set(key, text, expire_at, now, nx=nx, keepttl=keepttl)


def _incr(sql: CacheStatements, key: str, amount: int, now: int) -> int:
    result = sql.incr(key, amount, now)
    if result is None:
        refuse_increment(sql, key, None, amount, now)
    return result


def _set_many(sql: CacheStatements, items: list[tuple[str, str]], now: int) -> None:
    sql.set_many(items, None, now)


def _delete(sql: CacheStatements, keys: list[str], now: int) -> int:
    return sql.delete(keys, now)


def _set_expiry(sql: CacheStatements, key: str, expire_at: int | None, now: int, only_if_set: bool) -> bool:
    return sql.set_expiry(key, expire_at, now, only_if_set=only_if_set)
