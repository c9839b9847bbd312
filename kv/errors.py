"""Exceptions of the key-value store; each message names the key, field or value at fault."""

from __future__ import annotations


class KVError(Exception):
    """Base class of every error the store raises."""


class InvalidKey(KVError, ValueError):
    """A key (or hash field) that is not a non-empty string of at most 512 characters."""


class InvalidPattern(InvalidKey):
    """A glob pattern that is not a string, or passes ``kv.sql.glob.MAX_PATTERN_LENGTH``
    characters or ``kv.sql.glob.MAX_PATTERN_WILDCARDS`` wildcards (PostgreSQL's regular
    expressions cost more per key with each one)."""


class InvalidValue(KVError, ValueError):
    """A value that is not JSON-serialisable or is larger than ``KV["MAX_VALUE_SIZE"]``."""


class InvalidCursor(InvalidValue):
    """A ``scan`` cursor that is neither ``0`` nor one ``scan`` returned."""


class ValueTooLarge(InvalidValue):
    """A value whose JSON form is larger than ``KV["MAX_VALUE_SIZE"]`` bytes."""


class WrongType(KVError, TypeError):
    """A hash operation on a plain value, or a plain-value operation on a hash."""


class NotAnInteger(KVError, ValueError):
    """``incr``/``hincrby`` on a value that is not an integer."""


class Overflow(KVError, ValueError):
    """An increment that would leave the signed 64-bit range."""


class SearchTimeout(KVError, TimeoutError):
    """A search of keys by pattern ran past ``KV["KEYS_TIMEOUT"]`` and PostgreSQL cancelled it."""


class LockTimeout(KVError, TimeoutError):
    """``locked()`` could not acquire the lock within its timeout."""


class KVDisabled(KVError, RuntimeError):
    """kv is turned off (``KV["DISABLED"]``) and something asked it for data (``KVCache``)."""


class ReservedKey(InvalidKey):
    """A write through the store's Redis-like API to a key of ``kv.cache.KVCache``'s key
    space (``cache:...``): those rows are the cache backend's, written only through it."""
