"""PostgreSQL statements: jsonb operators, regular expressions for glob patterns."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from json.encoder import encode_basestring_ascii
from typing import Any

import psycopg
from django.db import OperationalError, transaction

from tachycore.pubsub.base import MAX_MESSAGE_BYTES, encode

from ..errors import SearchTimeout
from .base import ALIVE, EXPIRED, INT64_MAX, INT64_MIN, RESTART_IF_EXPIRED
from .cache import CacheStatements
from .glob import glob_to_regex
from .scans import Step

_code_point_order: dict[tuple[str, str], bool] = {}
#: a NOTIFY sent in the query string of a write: one round trip and one commit for both
_NOTIFY = "; SELECT pg_notify(%(tc_channel)s, %(tc_message)s)"
_PLACE = "\x01kv-key\x01"  # stands for the key while the message's parts are encoded


def sorts_by_code_point(collation: str | None, provider: str) -> bool:
    """Whether a collation (``collcollate``/``datcollate``, provider ``c`` libc, ``i`` ICU,
    ``b`` builtin) orders text by code point, so that a key range is a prefix test."""
    if provider == "b":
        return True
    return provider == "c" and (collation in ("C", "POSIX") or (collation or "").upper().startswith("C."))


def key_range_sql(column: str, connection, lo: str, hi: str) -> str:
    """SQL: ``lo <= column < hi`` in code point order, as the primary key index of ``_kv``
    answers it when the column's collation sorts so (``C``), or by an exact scan."""
    if _keys_sort_by_code_point(connection):
        return f"{column} >= {lo} AND {column} < {hi}"
    # a language's collation need not sort "a:b" between "a:" and "a;": exact, but a scan
    return f'{column} COLLATE "C" >= {lo} AND {column} COLLATE "C" < {hi}'


def _keys_sort_by_code_point(connection) -> bool:
    """Whether ``_kv.key``'s collation orders by code point (asked once per database)."""
    database = (connection.alias, connection.settings_dict["NAME"])
    if database not in _code_point_order:
        with connection.cursor() as cursor:
            # to_jsonb: datlocprovider is missing before PostgreSQL 15 (libc only then)
            cursor.execute(
                "SELECT CASE WHEN c.collname = 'default' THEN d.datcollate ELSE c.collcollate END, "
                "CASE WHEN c.collname = 'default' THEN coalesce(to_jsonb(d) ->> 'datlocprovider', 'c') "
                "ELSE c.collprovider::text END FROM pg_attribute a JOIN pg_collation c ON c.oid = a.attcollation "
                "JOIN pg_database d ON d.datname = current_database() "
                "WHERE a.attrelid = '_kv'::regclass AND a.attname = 'key'"
            )
            row = cursor.fetchone()
        assert row is not None, "_kv.key has a collation once the migrations have run"
        _code_point_order[database] = sorts_by_code_point(*row)
    return _code_point_order[database]


def _sum_fits(value: str) -> str:
    """SQL: the jsonb ``value`` is an integer and adding ``%(amount)s`` stays in the signed
    64-bit range. The CASE keeps the cast from running on a value that is not an integer."""
    return (
        f"CASE WHEN jsonb_typeof({value}) = 'number' AND ({value} #>> '{{}}') ~ '^-?[0-9]+$' "
        f"THEN ({value} #>> '{{}}')::numeric + %(amount)s BETWEEN {INT64_MIN} AND {INT64_MAX} ELSE false END"
    )


class PostgresStatements(CacheStatements):
    vendor = "postgresql"
    value_text = "value::text"

    @property
    def key_range(self) -> str:
        return key_range_sql("key", self.connection, "%(lo)s", "%(hi)s")

    @contextlib.contextmanager
    def time_limit(self, seconds: float, pattern: str) -> Iterator[None]:
        """A statement timeout around the block, in a transaction (or a savepoint) of its own:
        ``set_config(..., true)`` is ``SET LOCAL``. Inside a caller's transaction the timeout
        it had is set back after the block (a released savepoint keeps a ``SET LOCAL``)."""
        if not seconds:
            yield
            return
        connection = self.connection
        inside = connection.in_atomic_block
        with transaction.atomic(using=connection.alias):
            row = self._one("SELECT current_setting('statement_timeout'), set_config('statement_timeout', "
                            "%(limit)s, true)", {"limit": f"{max(1, round(seconds * 1000))}ms"})
            assert row is not None, "a SELECT without FROM returns one row"
            try:
                yield
            except OperationalError as e:
                if isinstance(e.__cause__, psycopg.errors.QueryCanceled):
                    shown = pattern if len(pattern) <= 60 else pattern[:59] + "…"
                    raise SearchTimeout(
                        f"the search for keys matching {shown!r} took longer than KV['KEYS_TIMEOUT'] "
                        f"({seconds:g} s) and was cancelled; give a longer literal prefix (the "
                        "characters before the first wildcard) or fewer wildcards"
                    ) from e
                raise
            if inside:
                self._one("SELECT set_config('statement_timeout', %(previous)s, true)", {"previous": row[0]})

    def execute(self, sql: str, params: dict[str, Any]) -> None:
        if self.notify_with is not None:
            # one query string, two statements: one round trip and one commit for both, and
            # the notification leaves only if the write commits (client-side binding allows it)
            sql = sql + _NOTIFY
            params = {**params, "tc_channel": self.notify_with[0], "tc_message": self.notify_with[1]}
            self.notify_with = None
        super().execute(sql, params)

    def json_param(self, name: str) -> str:
        return f"%({name})s::jsonb"

    def pattern_condition(self, pattern: str) -> tuple[str, str] | None:
        return "key ~ %(pattern)s", glob_to_regex(pattern)

    def read_step(self, step: Step, count: int) -> tuple[list[str], str | None]:
        # one statement: the rows are numbered as they are read, in key order, and the reading
        # stops at the LIMIT; the count-th row comes back whether or not it matched
        where = f"WHERE {' AND '.join(step.where)} " if step.where else ""
        rows = self._all(
            f"SELECT key, hit, n FROM (SELECT key, {step.hit} AS hit, row_number() OVER (ORDER BY key) AS n "
            f"FROM (SELECT key, type, expire_at FROM _kv {where}ORDER BY key LIMIT %(count)s) AS examined) "
            "AS numbered WHERE hit OR n = %(count)s ORDER BY key" + (" LIMIT %(rows)s" if "rows" in step.params else ""),
            step.params,
        )
        keys = [key for key, hit, _ in rows if hit]
        return keys, rows[-1][0] if rows and rows[-1][2] == count else None

    # kv_incr, made by the migration kv 0003: a function keeps its statement's plan for the
    # connection's life, where the statement sent as text would be parsed and planned on every
    # call (Django binds on the client). Every argument is cast: CAST(... AS bigint), not
    # ...::bigint, since bound on the client -9223372036854775808 becomes that literal, and
    # "::" binds before the minus (9223372036854775808 is out of range)
    incr_statement = (
        "SELECT kv_incr(CAST(%(key)s AS text), CAST(%(amount)s AS bigint), CAST(%(now)s AS bigint), "
        "CAST(%(ts)s AS timestamptz), CAST(%(tc_channel)s AS text), CAST(%(tc_message)s AS text))"
    )

    def __init__(self, connection, cursor) -> None:
        super().__init__(connection, cursor)
        # where the site allows server-side prepared statements (``OPTIONS["prepare_threshold"]``
        # set: Django's default, None, turns them off, for poolers such as PgBouncer in
        # transaction mode), the hot statements run on a cursor that binds on the server and
        # are prepared once per connection: Django's cursors bind on the client, so PostgreSQL
        # parses and plans them on every call. A prepared statement is one statement, so the
        # NOTIFY that goes with a write rides in a CTE of it (sent when the write changed a
        # row). Only on the driver's own cursor: Django's, used while queries are logged,
        # keeps its logging.
        raw = isinstance(cursor, psycopg.Cursor) and cursor.connection.prepare_threshold is not None
        self.prepared = psycopg.Cursor(cursor.connection) if raw else None
        self._results = self.prepared if raw else cursor
        #: each statement of ``run_write`` as it runs with a NOTIFY (see ``_notifying``)
        self._with_notify: dict[str, str] = {}
        #: ``(node id, channel, sync channel, text before the key, text after it)`` of the
        #: message invalidating one key (see ``invalidation_of``)
        self._message_parts: tuple[str, str, str, str, str] | None = None

    def invalidation_of(self, key: str, node_id: str, channel: str, message: str) -> str:
        """The NOTIFY payload invalidating ``key``: ``encode(message, {"keys": [key]}, node_id)``
        put together from parts encoded once (one key always fits the size limit)."""
        parts = self._message_parts
        if parts is None or parts[0] != node_id or parts[1] != channel or parts[2] != message:
            head, tail = encode(message, {"keys": [_PLACE]}, node_id).split(json.dumps(_PLACE))
            parts = self._message_parts = (node_id, channel, message, head, tail)
        text = parts[3] + encode_basestring_ascii(key) + parts[4]  # ASCII: a character is a byte
        return text if len(text) <= MAX_MESSAGE_BYTES else encode(message, {"keys": [key]}, node_id)

    def run_write(self, native_sql: str, params: dict[str, Any]) -> None:
        if self.notify_with is not None:
            params["tc_channel"], params["tc_message"] = self.notify_with
            self.notify_with = None
            native_sql = self._with_notify.get(native_sql) or self._notifying(native_sql)
        self.run(native_sql, params)

    def _notifying(self, native_sql: str) -> str:
        """``native_sql`` with the NOTIFY: a prepared statement is one statement, so the NOTIFY
        rides in a CTE of it (sent when the write returned a row); otherwise one query string
        of two statements (client-side binding allows it). Either way its rows come first."""
        if self.prepared is None:
            notifying = native_sql + _NOTIFY
        elif " RETURNING " in native_sql:
            notifying = f"WITH w AS ({native_sql}) SELECT w.*, pg_notify(%(tc_channel)s, %(tc_message)s) FROM w"
        else:
            notifying = (f"WITH w AS ({native_sql} RETURNING 1) "
                         "SELECT pg_notify(%(tc_channel)s, %(tc_message)s) FROM w")
        self._with_notify[native_sql] = notifying
        return notifying

    def run(self, native_sql: str, params: dict[str, Any]) -> None:
        """The statements of every call, prepared (see ``__init__``); results on ``self.prepared``."""
        if self.prepared is None:
            return super().run(native_sql, params)
        connection = self.connection
        if connection.needs_rollback:
            connection.validate_no_broken_transaction()
        try:
            self.prepared.execute(native_sql, params, prepare=True)
        except Exception:
            with connection.wrap_database_errors:  # Django's error classes, as execute gives
                raise

    def incr(self, key: str, amount: int, now: int) -> int | None:
        """``kv_incr`` sends the NOTIFY itself, once the write is made: it takes ``notify_with``."""
        channel, message = self.notify_with or (None, None)
        self.notify_with = None
        self.run(self._incr_sql, {"key": key, "amount": amount, "now": now, "ts": self.timestamp(),
                                  "tc_channel": channel, "tc_message": message})
        return self._results.fetchall()[0][0]

    def hset(self, key: str, mapping: str, field_count: int, now: int, max_size: int) -> int | None:
        # must run in a transaction (the store opens one): two hsets creating the same hash
        # at once would both count every field as new, since a statement reads the state as
        # of its start; this lock makes the second one start after the first committed
        self.execute("SELECT pg_advisory_xact_lock(hashtextextended(%(key)s, 7173))", {"key": key})
        self.cursor.fetchall()
        # "old" is read (and its row locked) before the insert runs, so the fields it
        # reports are the ones this statement replaces
        row = self._one(
            f"WITH old AS MATERIALIZED (SELECT type, value FROM _kv WHERE key = %(key)s AND {ALIVE} FOR UPDATE) "
            "INSERT INTO _kv (key, type, value, expire_at, created, updated) "
            "SELECT %(key)s, 'hash', %(mapping)s::jsonb, NULL, %(ts)s, %(ts)s "
            "FROM (SELECT count(*) FROM old) AS locked_first "
            "ON CONFLICT (key) DO UPDATE SET "
            f"value = CASE WHEN {EXPIRED} THEN excluded.value ELSE _kv.value || excluded.value END, "
            f"{RESTART_IF_EXPIRED} "
            f"WHERE {EXPIRED} OR (_kv.type = 'hash' "
            "AND octet_length((_kv.value || excluded.value)::text) <= %(max)s) "
            "RETURNING (SELECT count(*) FROM jsonb_object_keys(%(mapping)s::jsonb) AS f(name) "
            "WHERE NOT EXISTS (SELECT 1 FROM old WHERE old.type = 'hash' AND old.value ? f.name))",
            {"key": key, "mapping": mapping, "now": now, "ts": self.timestamp(), "max": max_size},
        )
        return row[0] if row else None

    def hdel(self, key: str, fields: list[str], now: int) -> tuple[str, int] | None:
        row = self._one(
            f"WITH old AS (SELECT key, type, value FROM _kv WHERE key = %(key)s AND {ALIVE} FOR UPDATE), "
            "emptied AS (DELETE FROM _kv USING old WHERE _kv.key = old.key AND old.type = 'hash' "
            "AND old.value - %(fields)s::text[] = '{}'::jsonb RETURNING 1), "
            "kept AS (UPDATE _kv SET value = old.value - %(fields)s::text[], updated = %(ts)s FROM old "
            "WHERE _kv.key = old.key AND old.type = 'hash' AND old.value - %(fields)s::text[] <> '{}'::jsonb "
            "RETURNING 1) "
            "SELECT old.type, (SELECT count(DISTINCT f) FROM unnest(%(fields)s::text[]) AS f "
            "WHERE old.type = 'hash' AND old.value ? f) FROM old",
            {"key": key, "fields": fields, "now": now, "ts": self.timestamp()},
        )
        return (row[0], row[1]) if row else None

    def hincr(self, key: str, field: str, amount: int, now: int) -> int | None:
        current = "(_kv.value -> %(field)s)"
        row = self._one(
            "INSERT INTO _kv (key, type, value, expire_at, created, updated) "
            "VALUES (%(key)s, 'hash', jsonb_build_object(%(field)s::text, CAST(%(amount)s AS bigint)), NULL, %(ts)s, %(ts)s) "
            "ON CONFLICT (key) DO UPDATE SET "
            f"value = CASE WHEN {EXPIRED} THEN excluded.value "
            f"WHEN {current} IS NULL THEN _kv.value || excluded.value "
            "ELSE jsonb_set(_kv.value, ARRAY[%(field)s::text], "
            f"to_jsonb((({current} #>> '{{}}')::numeric + %(amount)s)::bigint)) END, "
            f"{RESTART_IF_EXPIRED} "
            f"WHERE {EXPIRED} OR (_kv.type = 'hash' AND ({current} IS NULL OR {_sum_fits(current)})) "
            "RETURNING (value -> %(field)s #>> '{}')::bigint",
            {"key": key, "field": field, "amount": amount, "now": now, "ts": self.timestamp()},
        )
        return row[0] if row else None

    def incr_existing(self, key: str, amount: int, now: int, type_: str) -> int | None:
        row = self._one(
            "UPDATE _kv SET value = to_jsonb(((_kv.value #>> '{}')::numeric + %(amount)s)::bigint), "
            f"updated = %(ts)s WHERE key = %(key)s AND {ALIVE} "
            f"AND _kv.type = %(type)s AND {_sum_fits('_kv.value')} RETURNING (value #>> '{{}}')::bigint",
            {"key": key, "amount": amount, "now": now, "ts": self.timestamp(), "type": type_},
        )
        return row[0] if row else None
