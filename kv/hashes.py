"""The hash commands of ``KVStore`` (``hset``, ``hget``, ``hgetall``, ``hdel``, ``hincrby``)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from django.db import transaction

from . import clock, governed
from .conf import kv_settings
from .errors import InvalidKey, InvalidValue, ValueTooLarge, WrongType
from .governed import current_plugin
from .refusals import refuse_increment
from .reserved import writable_key
from .validation import check_field, check_key, to_integer, to_json

if TYPE_CHECKING:
    from .sql import CacheStatements

T = TypeVar("T")


class HashCommands:
    """Fields of a JSON object under one key; mixed into ``KVStore``, whose plumbing it uses."""

    def write(self, keys: tuple[str, ...] | list[str], statements: Callable[..., T], *args: Any) -> T:
        raise NotImplementedError

    def _read(self, key: Any) -> tuple[str, Any] | None:
        raise NotImplementedError

    def hset(self, key: str, field: str | None = None, value: Any = None,
             mapping: dict[str, Any] | None = None) -> int:
        """Set fields of a hash (``field``/``value`` and/or ``mapping``); return how many are new."""
        if current_plugin() is not None:
            governed.check(governed.WRITE, "hset", key)
        key = writable_key(key)
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
        return self.write((key,), _hset, key, text, len(fields), clock.now_ms())

    def hget(self, key: str, field: str) -> Any:
        """The value of ``field`` in the hash ``key``; ``None`` when either is missing."""
        if current_plugin() is not None:
            governed.check(governed.READ, "hget", key)
        found = self._hash(key)
        return found.get(check_field(field)) if found else None

    def hgetall(self, key: str) -> dict[str, Any]:
        """Every field of the hash ``key``; ``{}`` when it is missing."""
        if current_plugin() is not None:
            governed.check(governed.READ, "hgetall", key)
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
        if current_plugin() is not None:
            governed.check(governed.WRITE, "hdel", key)
        key = writable_key(key)
        if not fields:
            raise InvalidKey("hdel needs at least one field")
        names = [check_field(field) for field in fields]
        result = self.write((key,), _hdel, key, names, clock.now_ms())
        if result is None:
            return 0
        if result[0] != "hash":
            raise WrongType(f"key {key!r} holds a {result[0]}, not a hash")
        return result[1]

    def hincrby(self, key: str, field: str, amount: int = 1) -> int:
        """Add ``amount`` to the integer ``field`` (from 0 when missing); the new value."""
        if current_plugin() is not None:
            governed.check(governed.WRITE, "hincrby", key)
        key = writable_key(key)
        field = check_field(field)
        amount = to_integer(amount, "amount")
        return self.write((key,), _hincr, key, field, amount, clock.now_ms())


# -- what the writes run (Session.write calls them with the statements first) -------------

def _hset(sql: CacheStatements, key: str, text: str, field_count: int, now: int) -> int:
    with _atomic_unless_in_one(sql, sql.vendor == "postgresql"):
        new = sql.hset(key, text, field_count, now, kv_settings.MAX_VALUE_SIZE)
        if new is None:
            found = sql.row(key, now)
            if found is not None and found[0] == "hash":
                raise ValueTooLarge(f"hash {key!r} would pass KV['MAX_VALUE_SIZE'] "
                                    f"({kv_settings.MAX_VALUE_SIZE} bytes) with these fields")
            raise WrongType(f"key {key!r} holds a value, not a hash")
    return new


def _hdel(sql: CacheStatements, key: str, fields: list[str], now: int) -> tuple[str, int] | None:
    with _atomic_unless_in_one(sql, sql.vendor == "sqlite"):
        return sql.hdel(key, fields, now)


def _hincr(sql: CacheStatements, key: str, field: str, amount: int, now: int) -> int:
    result = sql.hincr(key, field, amount, now)
    if result is None:
        refuse_increment(sql, key, field, amount, now)
    return result


def _atomic_unless_in_one(sql: CacheStatements, needed: bool):
    """A transaction around a write that needs two statements on this database."""
    if needed and not sql.connection.in_atomic_block:
        return transaction.atomic(using=sql.connection.alias)
    return contextlib.nullcontext()
