"""``KVCache``: a Django cache backend on the key-value store's ``_kv`` table and L1."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import pickle
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from django.core.cache.backends.base import DEFAULT_TIMEOUT, BaseCache
from django.core.exceptions import ImproperlyConfigured

from . import clock
from .conf import kv_settings
from .errors import KVDisabled
from .sql.base import INT64_MAX, INT64_MIN
from .validation import MAX_KEY_LENGTH

if TYPE_CHECKING:
    from .sql import CacheStatements
    from .store import KVStore

__all__ = ["KVCache"]

logger = logging.getLogger(__name__)

CACHE = "cache"  # kv.models.ValueType.CACHE (the models are not imported: see _kv)
BATCH = 1000  # keys per statement in the *_many methods (SQLite allows 32766 parameters)
_missing = object()


def _storable(key: str) -> bool:
    """Whether ``key`` fits the key column as it is (length, no NUL, encodable)."""
    try:
        key.encode()
    except UnicodeEncodeError:
        return False
    return len(key) <= MAX_KEY_LENGTH and "\x00" not in key


def _batches(items: list, size: int = BATCH) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class KVCache(BaseCache):
    """A Django cache whose entries are rows of type ``cache`` in the ``_kv`` table.

    ``CACHES = {"default": {"BACKEND": "kv.cache.KVCache", "LOCATION": "default"}}``.
    Each entry's row key is ``cache:<LOCATION>:<made key>``, so caches with different
    locations share the table without seeing, clearing or culling each other's entries.
    Integers are stored as JSON integers (``incr`` adds to them in one SQL statement);
    every other value is pickled and stored as base64 text. Reads go through the store's
    L1 and every write invalidates it here and, after commit, in every process.
    """

    pickle_protocol = pickle.HIGHEST_PROTOCOL

    def __init__(self, location: str, params: dict[str, Any]) -> None:
        super().__init__(params)
        # ":" and "%" are encoded, so no location's prefix starts another's
        self.key_space = f"cache:{quote(location or '', safe='')}:"
        if len(self.key_space) > MAX_KEY_LENGTH - 80:
            raise ImproperlyConfigured(f"kv.cache.KVCache: LOCATION {location[:40]!r}... is too long")
        self._store: KVStore | None = None

    @property
    def _kv(self) -> KVStore:
        if kv_settings.DISABLED:  # read on each use: the setting can change while the site runs
            raise KVDisabled("kv.cache.KVCache cannot be used: kv is disabled (KV['DISABLED'] or "
                             "KV_DISABLED); point this CACHES entry at another backend")
        if self._store is None:
            from . import get_store

            self._store = get_store()
            if self._store is None:
                raise ImproperlyConfigured("kv.cache.KVCache needs 'kv' in INSTALLED_APPS")
        return self._store

    # -- keys, values, timeouts ----------------------------------------------------------

    def row_key(self, key: Any, version: int | None = None) -> str:
        """The ``_kv`` key of a cache key: ``cache:<LOCATION>:<made key>``, or a SHA-256 of
        the made key in its place when that would not fit the key column."""
        made = self.make_and_validate_key(key, version=version)
        row = self.key_space + made
        if _storable(row):
            return row
        return self.key_space + "#" + hashlib.sha256(made.encode("utf-8", "surrogatepass")).hexdigest()

    def _encode(self, value: Any) -> str:
        if type(value) is int and INT64_MIN <= value <= INT64_MAX:
            return str(value)
        return json.dumps(base64.b64encode(pickle.dumps(value, self.pickle_protocol)).decode("ascii"))

    @staticmethod
    def _decode(found: tuple[str, Any] | None) -> Any:
        if found is None or found[0] != CACHE:
            return _missing
        value = found[1]
        return pickle.loads(base64.b64decode(value)) if isinstance(value, str) else value

    @staticmethod
    def _fits(text: str, row: str) -> bool:
        if len(text) <= kv_settings.MAX_VALUE_SIZE:
            return True
        logger.warning("cache value for %r not stored: it is %d bytes as stored; KV['MAX_VALUE_SIZE'] is %d",
                       row, len(text), kv_settings.MAX_VALUE_SIZE)
        return False

    def _expire_at(self, timeout: Any, now: int) -> int | None:
        """Epoch milliseconds of expiry, ``None`` for never; ``now`` or earlier: expired at once."""
        if timeout is DEFAULT_TIMEOUT:
            timeout = self.default_timeout
        if timeout is None:
            return None
        milliseconds = timeout * 1000
        if milliseconds <= 0:
            return now
        if milliseconds >= INT64_MAX - now:  # a timeout of centuries (or inf) ends at int64's end
            return INT64_MAX
        return now + max(1, round(milliseconds))

    # -- reads ---------------------------------------------------------------------------

    def get(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        value = self._decode(self._kv.read(self.row_key(key, version)))
        return default if value is _missing else value

    def get_many(self, keys: Iterable[Any], version: int | None = None) -> dict[Any, Any]:
        rows = {self.row_key(key, version): key for key in keys}
        found: dict[str, tuple[str, Any]] = {}
        for batch in _batches(list(rows)):
            found.update(self._kv.read_many(batch))
        values = {key: self._decode(found.get(row)) for row, key in rows.items()}
        return {key: value for key, value in values.items() if value is not _missing}

    def has_key(self, key: Any, version: int | None = None) -> bool:
        found = self._kv.read(self.row_key(key, version))
        return found is not None and found[0] == CACHE

    # -- writes --------------------------------------------------------------------------

    def set(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> None:
        self._write(self.row_key(key, version), value, timeout, add=False)

    def add(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        return self._write(self.row_key(key, version), value, timeout, add=True)

    def _write(self, row: str, value: Any, timeout: Any, add: bool) -> bool:
        text = self._encode(value)  # a value that cannot be pickled fails before any write
        now = clock.now_ms()
        expire_at = self._expire_at(timeout, now)
        if expire_at is not None and expire_at <= now:
            # stored and expired at once: an add succeeds where nothing is live; a set
            # leaves nothing behind
            if add:
                return self._kv.read(row) is None
            self._delete([row])
            return True
        if not self._fits(text, row):
            if not add:  # as memcached: a failed set must not leave the old value readable
                self._delete([row])
            return False
        self._cull(now)
        return self._kv.write((row,), _set, row, text, expire_at, now, add)

    def set_many(self, data: dict[Any, Any], timeout: Any = DEFAULT_TIMEOUT,
                 version: int | None = None) -> list[Any]:
        """Store every value; return the keys whose values were too large to store."""
        entries = {self.row_key(key, version): (key, self._encode(value)) for key, value in data.items()}
        now = clock.now_ms()
        expire_at = self._expire_at(timeout, now)
        expired = expire_at is not None and expire_at <= now
        items = [(row, text) for row, (_, text) in entries.items() if not expired and self._fits(text, row)]
        kept = {row for row, _ in items}
        self._delete([row for row in entries if row not in kept])
        if items:
            self._cull(now)
        for batch in _batches(items):
            self._kv.write([row for row, _ in batch], _set_many, batch, expire_at, now)
        return [key for row, (key, _) in entries.items() if row not in kept and not expired]

    def touch(self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        row = self.row_key(key, version)
        now = clock.now_ms()
        expire_at = self._expire_at(timeout, now)
        if expire_at is not None and expire_at <= now:
            return self._delete([row]) > 0
        return self._kv.write((row,), _set_expiry, row, expire_at, now)

    def delete(self, key: Any, version: int | None = None) -> bool:
        return self._delete([self.row_key(key, version)]) > 0

    def delete_many(self, keys: Iterable[Any], version: int | None = None) -> None:
        self._delete([self.row_key(key, version) for key in keys])

    def _delete(self, rows: list[str]) -> int:
        deleted = 0
        for batch in _batches(list(dict.fromkeys(rows))):
            deleted += self._kv.write(batch, _delete, batch, clock.now_ms())
        return deleted

    def incr(self, key: Any, delta: Any = 1, version: int | None = None) -> Any:
        """Add ``delta``: in one statement for an integer (atomic across processes), else by
        compare-and-set of ``value + delta``. ``ValueError`` when the key is missing."""
        row = self.row_key(key, version)
        if type(delta) is int and INT64_MIN <= delta <= INT64_MAX:
            now = clock.now_ms()
            result = self._kv.write((row,), _incr_existing, row, delta, now)
            if result is not None:
                return result
        return self._add_by_swap(row, key, delta)

    def _add_by_swap(self, row: str, key: Any, delta: Any) -> Any:
        """``value + delta`` written only if the value is unchanged meanwhile; retried until it is."""
        while True:
            swapped, new = self._kv.write((row,), self._swap_added, row, key, delta, clock.now_ms())
            if swapped:
                return new

    def _swap_added(self, sql: CacheStatements, row: str, key: Any, delta: Any, now: int) -> tuple[bool, Any]:
        """``_add_by_swap``'s one try, in a write of ``row``: whether it swapped, and the new value."""
        found = sql.get(row, now)  # the database, not L1: a stale L1 value never swaps
        if found is None or found[0] != CACHE:
            raise ValueError(f"Key '{key}' not found")
        new = self._decode((CACHE, json.loads(found[1]))) + delta
        return sql.swap(row, found[1], self._encode(new), now, CACHE), new

    # -- clear and cull ------------------------------------------------------------------

    def clear(self) -> None:
        """Delete this cache's entries (rows of type ``cache`` under its prefix), nothing else."""
        self._kv.statements().delete_prefix(self.key_space, CACHE)  # L1 is dropped everywhere right after
        self._kv.forget(everything=True)

    def _cull(self, now: int) -> None:
        """As ``DatabaseCache``: past ``MAX_ENTRIES``, delete the expired entries, then (if
        still past it) the least recently written ``1/CULL_FREQUENCY``; with 0, clear."""
        sql = self._kv.statements()
        count = sql.count_prefix(self.key_space, CACHE)
        if count <= self._max_entries or self._cull_frequency == 0:
            culled: list[str] = []
        else:
            count -= sql.delete_prefix(self.key_space, CACHE, expired_at=now)
            over = count > self._max_entries
            culled = sql.delete_oldest(self.key_space, CACHE, count // self._cull_frequency) if over else []
        if count > self._max_entries and self._cull_frequency == 0:
            self.clear()
        self._kv.forget(*culled)


# -- what the writes run (Session.write calls them with the statements first) -------------

def _set(sql: CacheStatements, row: str, text: str, expire_at: int | None, now: int, add: bool) -> bool:
    return sql.set(row, text, expire_at, now, nx=add, type_=CACHE)


def _set_many(sql: CacheStatements, batch: list[tuple[str, str]], expire_at: int | None, now: int) -> None:
    sql.set_many(batch, expire_at, now, type_=CACHE)


def _set_expiry(sql: CacheStatements, row: str, expire_at: int | None, now: int) -> bool:
    return sql.set_expiry(row, expire_at, now)


def _delete(sql: CacheStatements, rows: list[str], now: int) -> int:
    return sql.delete(rows, now)


def _incr_existing(sql: CacheStatements, row: str, delta: int, now: int) -> int | None:
    return sql.incr_existing(row, delta, now, CACHE)
