"""The statements of the store, shared by both databases; vendor classes fill in the rest.

Every write is one statement. Expiry is compared with ``now`` (epoch milliseconds)
passed as a parameter, so an expired row counts as absent everywhere. Values
travel as JSON text and are read back as text (``json.loads`` in Python).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

from django.utils import timezone

from .glob import key_bounds, length_bounds

EXPIRED = "(_kv.expire_at IS NOT NULL AND _kv.expire_at <= %(now)s)"
ALIVE = "(expire_at IS NULL OR expire_at > %(now)s)"
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
#: the SET clause of an upsert that meets an expired row: it starts over as a new key
RESTART_IF_EXPIRED = (
    f"expire_at = CASE WHEN {EXPIRED} THEN NULL ELSE _kv.expire_at END, "
    f"created = CASE WHEN {EXPIRED} THEN excluded.created ELSE _kv.created END, "
    "type = excluded.type, updated = excluded.updated"
)


class Statements:
    """The statements both PostgreSQL and SQLite accept (``%(name)s`` parameters).

    Writes stamp ``created``/``updated`` with ``timestamp()`` and carry ``notify_with``
    (PostgreSQL) when the store set it for them.
    """

    vendor = ""
    #: how the value column is read as JSON text
    value_text = "value"

    def json_param(self, name: str) -> str:
        """How the JSON text parameter ``name`` becomes a value of the column."""
        return f"%({name})s"

    def __init__(self, connection, cursor) -> None:
        self.connection = connection
        self.cursor = cursor  # the driver's own cursor: Django's wrapper costs more than the query
        #: where ``run`` leaves its rows (a vendor may run the hot statements on another cursor)
        self._results = cursor
        #: ``(channel, message)`` to NOTIFY with the next statement (PostgreSQL only)
        self.notify_with: tuple[str, str] | None = None
        # the statements of every call, in the driver's parameter style once and for all
        self._get_sql = self.native(
            f"SELECT type, {self.value_text}, expire_at FROM _kv WHERE key = %(key)s AND {ALIVE}"
        )
        #: the same with ``?`` for the key and now, where the driver binds a tuple for less
        self._get_positional: str | None = None
        #: ``set``'s statement by ``(nx, keepttl, type_)``, made at first use
        self._set_sql: dict[tuple[bool, bool, str], str] = {}
        self._incr_sql = self.native(self.incr_statement)

    #: the statement of ``incr`` (vendor classes give it)
    incr_statement = ""

    def _set_statement(self, nx: bool, keepttl: bool, type_: str) -> str:
        # the type is written in the statement, not bound: a parameter less to bind on every
        # set (on SQLite a named parameter costs a lookup by a new string); a row type is a word
        if not type_.isidentifier():
            raise ValueError(f"not a row type: {type_!r}")
        expire = f"CASE WHEN {EXPIRED} THEN NULL ELSE _kv.expire_at END" if keepttl else "excluded.expire_at"
        return (
            "INSERT INTO _kv (key, type, value, expire_at, created, updated) "
            f"VALUES (%(key)s, '{type_}', {self.json_param('value')}, %(expire_at)s, %(ts)s, %(ts)s) "
            "ON CONFLICT (key) DO UPDATE SET type = excluded.type, value = excluded.value, "
            f"expire_at = {expire}, updated = excluded.updated, "
            f"created = CASE WHEN {EXPIRED} THEN excluded.created ELSE _kv.created END"
            # only nx can refuse: RETURNING only then
            + (f" WHERE {EXPIRED} RETURNING 1" if nx else "")
        )

    def timestamp(self):
        """``created``/``updated`` for now, as the driver takes it."""
        return timezone.now()

    def run(self, native_sql: str, params: Any) -> None:
        """``execute`` for a statement already in the driver's style, with parameters the
        driver takes as they are (the statements of every call: no conversion, no context
        manager): a dict of names, or a tuple where the statement has ``?``; its rows are on
        ``self._results``."""
        connection = self.connection
        if connection.needs_rollback:
            connection.validate_no_broken_transaction()
        try:
            self.cursor.execute(native_sql, params)
        except Exception:
            with connection.wrap_database_errors:  # Django's error classes, as execute gives
                raise

    #: ``run`` for a write, with the NOTIFY of ``notify_with`` where the database has one
    #: (PostgreSQL overrides it; elsewhere it is ``run`` itself, not a call more per write)
    run_write = run

    def execute(self, sql: str, params: dict[str, Any]) -> None:
        """Run one statement on the driver's cursor, with Django's error classes."""
        self.connection.validate_no_broken_transaction()
        with self.connection.wrap_database_errors:
            self.cursor.execute(self.native(sql), self.adapt(params))

    def native(self, sql: str) -> str:
        """The statement in the driver's parameter style."""
        return sql

    def adapt(self, params: dict[str, Any]) -> dict[str, Any]:
        """Parameters as the driver takes them."""
        return params

    def _one(self, sql: str, params: dict[str, Any]) -> tuple | None:
        self.execute(sql, params)
        # every row is fetched: a statement left open would keep SQLite's transaction open
        rows = self.cursor.fetchall()
        return rows[0] if rows else None

    def _all(self, sql: str, params: dict[str, Any]) -> list[tuple]:
        self.execute(sql, params)
        return self.cursor.fetchall()

    @staticmethod
    def _in(name: str, values: list[str], params: dict[str, Any]) -> str:
        """``%(name0)s, %(name1)s, ...`` for an IN list, adding the parameters."""
        names = []
        for i, value in enumerate(values):
            params[f"{name}{i}"] = value
            names.append(f"%({name}{i})s")
        return ", ".join(names)

    # -- reads -----------------------------------------------------------------------------

    def get(self, key: str, now: int) -> tuple[str, str, int | None] | None:
        """``(type, value JSON, expire_at)`` of a live key."""
        if self._get_positional is not None:
            self.run(self._get_positional, (key, now))
        else:
            self.run(self._get_sql, {"key": key, "now": now})
        # every row is fetched: a statement left open would keep SQLite's transaction open
        rows = self._results.fetchall()
        return rows[0] if rows else None

    def get_many(self, keys: list[str], now: int) -> dict[str, tuple[str, str, int | None]]:
        params: dict[str, Any] = {"now": now}
        rows = self._all(
            f"SELECT key, type, {self.value_text}, expire_at FROM _kv "
            f"WHERE key IN ({self._in('k', keys, params)}) AND {ALIVE}",
            params,
        )
        return {row[0]: row[1:] for row in rows}

    def expire_at(self, key: str, now: int) -> tuple[int | None] | None:
        return self._one(f"SELECT expire_at FROM _kv WHERE key = %(key)s AND {ALIVE}", {"key": key, "now": now})

    def keys(self, pattern: str, now: int, type_: str | None = None, *, limit: int | None = None) -> list[str]:
        """Live keys matching a Redis glob, sorted, the first ``limit`` of them when given;
        cache rows only when ``type_`` asks for them.

        The pattern runs last, on the keys left by its literal prefix (a key range the
        primary key index answers) and its length: PostgreSQL's regular expression costs
        more per key with each wildcard. With ``limit`` the scan stops at the last key wanted.
        """
        match = self.pattern_condition(pattern)
        if match is None:
            return []
        condition, pattern_param = match
        params: dict[str, Any] = {"now": now, "pattern": pattern_param, "type": type_, "limit": limit}
        conditions = [ALIVE, "type <> 'cache'" if type_ is None else "type = %(type)s"]
        bounds = key_bounds(pattern)
        if bounds is not None:
            conditions.append(self.key_range)
            params["lo"], params["hi"] = bounds
        params["length"], exact = length_bounds(pattern)
        # a CASE, not AND: PostgreSQL orders the conditions of a WHERE by their estimated
        # cost, and rates a regular expression cheaper than a comparison of a length
        length = f"length(key) {'=' if exact else '>='} %(length)s"
        conditions.append(f"CASE WHEN {length} THEN {condition} ELSE false END")
        rows = self._all(
            f"SELECT key FROM _kv WHERE {' AND '.join(conditions)} ORDER BY key"
            + (" LIMIT %(limit)s" if limit is not None else ""),
            params,
        )
        return [row[0] for row in rows]

    @property
    def key_range(self) -> str:
        """Keys from ``lo`` (included) to ``hi`` (excluded), compared by code point."""
        return "key >= %(lo)s AND key < %(hi)s"

    def time_limit(self, seconds: float, pattern: str) -> AbstractContextManager[None]:
        """Statements run inside it that search keys by ``pattern`` are cancelled after
        ``seconds`` (0: never) with ``kv.errors.SearchTimeout``, where the database can do
        it (PostgreSQL; SQLite cannot, and its ``GLOB`` costs no more per wildcard)."""
        return contextlib.nullcontext()

    def pattern_condition(self, pattern: str) -> tuple[str, str] | None:
        """``(SQL condition on key using %(pattern)s, its value)``; ``None`` if nothing can match."""
        raise NotImplementedError

    # -- writes ----------------------------------------------------------------------------

    def set(self, key: str, value: str, expire_at: int | None, now: int, *, nx: bool = False,
            keepttl: bool = False, type_: str = "value") -> bool:
        """Create or replace a key; with ``nx`` only when absent. Return whether it was written."""
        statement = self._set_sql.get((nx, keepttl, type_))
        if statement is None:
            statement = self._set_sql[nx, keepttl, type_] = self.native(self._set_statement(nx, keepttl, type_))
        self.run_write(statement, {"key": key, "value": value, "expire_at": expire_at, "now": now,
                                   "ts": self.timestamp()})
        return bool(self._results.fetchall()) if nx else True

    def incr(self, key: str, amount: int, now: int) -> int | None:
        """Add ``amount`` to an integer (0 when absent); ``None`` when refused (see ``row``)."""
        self.run_write(self._incr_sql, {"key": key, "amount": amount, "text": str(amount), "now": now,
                                        "ts": self.timestamp()})
        rows = self._results.fetchall()
        return rows[0][0] if rows else None

    def replace(self, key: str, value: str, expire_at: int | None, now: int, *, keepttl: bool = False,
                type_: str = "value") -> bool:
        """Replace a live key only (``SET ... XX``)."""
        expire = "expire_at" if keepttl else "%(expire_at)s"
        row = self._one(
            f"UPDATE _kv SET type = %(type)s, value = {self.json_param('value')}, expire_at = {expire}, "
            f"updated = %(ts)s WHERE key = %(key)s AND {ALIVE} RETURNING 1",
            {"key": key, "type": type_, "value": value, "expire_at": expire_at, "now": now, "ts": self.timestamp()},
        )
        return row is not None

    def set_many(self, items: list[tuple[str, str]], expire_at: int | None, now: int,
                 type_: str = "value") -> None:
        """Create or replace several keys in one statement (``MSET``)."""
        params: dict[str, Any] = {"now": now, "ts": self.timestamp(), "expire_at": expire_at, "type": type_}
        rows = []
        for i, (key, value) in enumerate(items):
            params[f"k{i}"], params[f"v{i}"] = key, value
            rows.append(f"(%(k{i})s, %(type)s, {self.json_param(f'v{i}')}, "
                        f"%(expire_at)s, %(ts)s, %(ts)s)")
        self.execute(
            f"INSERT INTO _kv (key, type, value, expire_at, created, updated) VALUES {', '.join(rows)} "
            f"ON CONFLICT (key) DO UPDATE SET type = excluded.type, value = excluded.value, "
            f"expire_at = excluded.expire_at, updated = excluded.updated, "
            f"created = CASE WHEN {EXPIRED} THEN excluded.created ELSE _kv.created END",
            params,
        )

    def delete(self, keys: list[str], now: int) -> int:
        """Delete keys; return how many of them were live."""
        params: dict[str, Any] = {"now": now}
        rows = self._all(
            f"DELETE FROM _kv WHERE key IN ({self._in('k', keys, params)}) RETURNING expire_at", params
        )
        return sum(1 for (expire_at,) in rows if expire_at is None or expire_at > now)

    def set_expiry(self, key: str, expire_at: int | None, now: int, *, only_if_set: bool = False) -> bool:
        """Set or clear a live key's expiry; with ``only_if_set`` only when it has one (``PERSIST``)."""
        condition = " AND expire_at IS NOT NULL" if only_if_set else ""
        row = self._one(
            f"UPDATE _kv SET expire_at = %(expire_at)s, updated = %(ts)s "
            f"WHERE key = %(key)s AND {ALIVE}{condition} RETURNING 1",
            {"key": key, "expire_at": expire_at, "now": now, "ts": self.timestamp()},
        )
        return row is not None

    def lock(self, key: str, token: str, expire_at: int, now: int) -> bool:
        """Take ``key`` for ``token`` unless a live holder has it."""
        return self.set(key, json.dumps(token), expire_at, now, nx=True)

    def unlock(self, key: str, token: str, now: int) -> bool:
        """Delete ``key`` only while it is live and holds ``token``."""
        row = self._one(
            f"DELETE FROM _kv WHERE key = %(key)s AND {ALIVE} AND type = 'value' "
            f"AND {self.value_text} = %(token)s RETURNING 1",
            {"key": key, "token": json.dumps(token), "now": now},
        )
        return row is not None

    def expired_deletions(self, now: int, batch_size: int) -> Iterator[int]:
        """Delete the rows expired by ``now``, at most ``batch_size`` per statement, until none
        is left; yield how many each batch deleted (each batch commits on its own outside a
        transaction).

        A batch smaller than ``batch_size`` ends the pass only once no row expired by ``now``
        is left: a ``set`` beside it may have given one of the rows it picked a new life while
        more expired rows wait. Rows that expire later are the next pass's."""
        while True:
            deleted = self.delete_expired(now, batch_size)
            yield deleted
            if deleted < batch_size and not self.any_expired(now):
                return

    def delete_expired(self, now: int, batch_size: int) -> int:
        """Delete at most ``batch_size`` expired rows, in expiry order; return how many."""
        self.execute(
            # expiry is checked again outside the subquery: a key set anew while this
            # statement waited for its row lock must survive
            "DELETE FROM _kv WHERE key IN (SELECT key FROM _kv WHERE expire_at <= %(now)s "
            "LIMIT %(limit)s) AND expire_at <= %(now)s",
            {"now": now, "limit": batch_size},
        )
        return self.cursor.rowcount

    def any_expired(self, now: int) -> bool:
        """Whether a row expired by ``now`` is left (the partial index answers it)."""
        return self._one("SELECT 1 FROM _kv WHERE expire_at <= %(now)s LIMIT 1", {"now": now}) is not None

    # -- vendor-specific -------------------------------------------------------------------

    def hset(self, key: str, mapping: str, field_count: int, now: int, max_size: int) -> int | None:
        """Merge ``mapping`` (JSON object) into a hash; the number of new fields, ``None`` when
        refused (not a hash, or the merged hash would pass ``max_size`` bytes)."""
        raise NotImplementedError

    def hdel(self, key: str, fields: list[str], now: int) -> tuple[str, int] | None:
        """Remove fields (the key goes with its last field); ``(type, removed)``, ``None`` if absent."""
        raise NotImplementedError

    def hincr(self, key: str, field: str, amount: int, now: int) -> int | None:
        raise NotImplementedError

    def invalidation_of(self, key: str, node_id: str, channel: str, message: str) -> str:
        """The NOTIFY payload that drops ``key`` from other processes' L1 (PostgreSQL only:
        the store asks for it only where sync messages travel by NOTIFY)."""
        raise NotImplementedError

    def row(self, key: str, now: int) -> tuple[str, str] | None:
        """``(type, value JSON)`` of a live key, to explain a refused write."""
        found = self.get(key, now)
        return (found[0], found[1]) if found else None
