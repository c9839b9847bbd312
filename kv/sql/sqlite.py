"""SQLite statements: JSON1 functions, GLOB for patterns, and small functions of ours
registered on each connection for the hash updates SQLite's JSON paths cannot express
(a field name may hold any character)."""

from __future__ import annotations

import contextlib
import datetime
import functools
import json
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from typing import Any

from django.utils import timezone

from ..conf import site_settings
from .base import ALIVE, EXPIRED, RESTART_IF_EXPIRED
from .cache import CacheStatements
from .glob import glob_to_sqlite
from .scans import Step

#: ``get``'s statement
_GET = f"SELECT type, value, expire_at FROM _kv WHERE key = ? AND {ALIVE.replace('%(now)s', '?')}"
#: SQLite's cleanup walks the table in storage order once one row in this many has expired
_DENSE_EXPIRY = 20
#: how long one batch of SQLite's cleanup walk should take (writers wait for it as long)
_BATCH_SECONDS = 0.030
#: the page cache of the cleanup's connection during a walk, in KiB (64 MiB)
_CLEANUP_CACHE_KIB = 65536
#: during a walk, the WAL may hold one page per this many rows of the table before a checkpoint
_ROWS_PER_WAL_PAGE = 100
#: ... and at most this many pages (200 MiB of 4 KiB pages)
_MOST_WAL_PAGES = 50_000
_results = threading.local()  # what a hash function computed, read right after its statement
#: the last second formatted by utc_text: (its start in epoch nanoseconds, its text, the text and ".")
_second: tuple[int, str, str] = (0, "", "")


def utc_text() -> str:
    """Now in UTC as Django's SQLite backend stores an aware datetime (``str()`` of it, naive):
    the same text as ``str(timezone.now().replace(tzinfo=None))`` at half the cost. It runs
    on every write: nanoseconds into the cached second are a small int (no big-int division),
    and the microseconds are padded by a string slice (a ``:06d`` format costs more)."""
    global _second
    nanoseconds = time.time_ns()
    cached = _second
    fraction = nanoseconds - cached[0]
    if not 0 <= fraction < 1_000_000_000:
        second = nanoseconds // 1_000_000_000
        text = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(second))
        cached = _second = (second * 1_000_000_000, text, text + ".")
        fraction = nanoseconds - cached[0]
    microsecond = fraction // 1000
    return cached[2] + str(1_000_000 + microsecond)[1:] if microsecond else cached[1]


def _hset(old: str | None, mapping: str) -> str:
    current = json.loads(old) if old else {}
    new = json.loads(mapping)
    _results.new_fields = sum(1 for field in new if field not in current)
    current.update(new)
    return json.dumps(current, ensure_ascii=False, separators=(",", ":"))


def _hdel(old: str, fields: str) -> str:
    current = json.loads(old)
    removed = {field for field in json.loads(fields) if field in current}
    _results.removed = len(removed)
    for field in removed:
        del current[field]
    return json.dumps(current)


def _hincr_ok(old: str, field: str, amount: int) -> int:
    value = json.loads(old).get(field, 0)
    return int(type(value) is int and -(2**63) <= value + amount <= 2**63 - 1)


def _hincr(old: str | None, field: str, amount: int) -> str:
    current = json.loads(old) if old else {}
    current[field] = current.get(field, 0) + amount
    return json.dumps(current)


def _next_batch_size(size: int, smallest: int, elapsed: float) -> int:
    """The rows of the next batch of the cleanup walk: ``size`` scaled so that a batch takes
    about ``_BATCH_SECONDS`` (by ``elapsed``, what the last one took), at most doubled or
    halved at a time, never fewer than ``smallest``."""
    if elapsed <= 0:
        return size * 2
    scaled = int(size * _BATCH_SECONDS / elapsed)
    return max(smallest, size // 2, min(size * 2, scaled))


def register_functions(connection) -> None:
    """Add the kv functions to a new SQLite connection (``connection_created``)."""
    raw = connection.connection
    raw.create_function("kv_hset", 2, _hset, deterministic=True)
    raw.create_function("kv_hdel", 2, _hdel, deterministic=True)
    raw.create_function("kv_hincr_ok", 3, _hincr_ok, deterministic=True)
    raw.create_function("kv_hincr", 3, _hincr, deterministic=True)


@functools.lru_cache(maxsize=512)
def _named(sql: str) -> str:
    return _PARAM.sub(r":\1", sql)


_PARAM = re.compile(r"%\((\w+)\)s")


class SQLiteStatements(CacheStatements):
    vendor = "sqlite"

    def __init__(self, connection, cursor) -> None:
        super().__init__(connection, cursor)
        # positional parameters on the driver's cursor: sqlite3 binds a tuple for less than a
        # dict of names (0.3 µs of the 5 a read costs); Django's, while queries are logged,
        # formats the logged query with "%" and takes names
        if isinstance(cursor, sqlite3.Cursor):
            self._get_positional = _GET

    def native(self, sql: str) -> str:
        return _named(sql)

    def adapt(self, params: dict[str, Any]) -> dict[str, Any]:
        # the driver's cursor skips Django's adapters: datetimes become Django's text form here
        for name, value in params.items():
            if isinstance(value, datetime.datetime):
                params[name] = (
                    str(value.replace(tzinfo=None)) if value.tzinfo is datetime.UTC  # timezone.now()
                    else self.connection.ops.adapt_datetimefield_value(value)
                )
        return params

    def pattern_condition(self, pattern: str) -> tuple[str, str] | None:
        glob = glob_to_sqlite(pattern)
        return None if glob is None else ("key GLOB %(pattern)s", glob)

    def read_step(self, step: Step, count: int) -> tuple[list[str], str | None]:
        # SQLite would read every row of the step before numbering them (10,000 rows, 20 ms)
        return self.read_step_to_last(step, count)

    @contextlib.contextmanager
    def _walk_pragmas(self, rows: int) -> Iterator[None]:
        """Inside the block, the connection's page cache holds ``_CLEANUP_CACHE_KIB`` KiB and
        its commits checkpoint the WAL only once it holds ``_walk_checkpoint_pages()`` pages;
        after it, both as before, and, when the WAL was let grow past its usual limit, one
        passive checkpoint of what the pass wrote (it waits for no reader or writer).

        Each batch rewrites the expiry index pages of its rows, spread over the whole index;
        a checkpoint after every commit (SQLite's default: once the WAL holds 1,000 pages)
        copies them into the database file and syncs it, batch after batch: on a table of a
        million keys that costs more than the deletions. Fewer checkpoints copy each such
        page once for many batches. The larger cache keeps a batch's pages in memory until
        its commit instead of spilling them to the WAL mid-batch."""
        cache, autocheckpoint = self._one("PRAGMA cache_size", {}), self._one("PRAGMA wal_autocheckpoint", {})
        if cache is None or autocheckpoint is None:  # not a SQLite build that has them
            yield
            return
        usual = int(autocheckpoint[0])
        pages = self._walk_checkpoint_pages(rows, usual)
        self.execute(f"PRAGMA cache_size = -{_CLEANUP_CACHE_KIB}", {})
        self.execute(f"PRAGMA wal_autocheckpoint = {pages}", {})
        try:
            yield
        finally:
            self.execute(f"PRAGMA cache_size = {int(cache[0])}", {})
            self.execute(f"PRAGMA wal_autocheckpoint = {usual}", {})
            if pages > usual and self.connection.get_autocommit():
                # what the WAL holds past the usual limit: not left to the next writer's commit
                self._one("PRAGMA wal_checkpoint(PASSIVE)", {})

    def _walk_checkpoint_pages(self, rows: int, usual: int) -> int:
        """How many pages the WAL may hold during a cleanup walk of a table of about ``rows``
        rows before a commit checkpoints it: more as the expiry index grows (one of its pages
        holds about 250 rows), so that a checkpoint comes once per a few rewrites of the whole
        index, not once per batch; never fewer than ``usual``, the connection's own setting."""
        return max(usual, min(rows // _ROWS_PER_WAL_PAGE, _MOST_WAL_PAGES))

    def expired_deletions(self, now: int, batch_size: int) -> Iterator[int]:
        """Many expired rows: a walk through the table in rowid order (storage order), each
        batch the next expired rows after the last one's rowid; few: the expiry index's order
        (``Statements.expired_deletions``). The walk's first batch has ``batch_size`` rows;
        each next one as many as make a batch last about ``_BATCH_SECONDS`` (never fewer than
        ``batch_size``): the expiry index pages a batch rewrites are spread over the whole
        index, and a larger batch rewrites each of them for more rows (see ``_walk_pragmas``).

        Expiry order deletes rows scattered over the whole table, so each batch rewrites
        about one table page and one key index page per row (29 µs a row at 100,000 keys,
        48 µs at a million, against 4 and 16 µs in storage order: docs/BENCHMARKS.md);
        storage order rewrites each table page about once per pass. The walk
        reads the live rows too, so it is taken only when at least one row in
        ``_DENSE_EXPIRY`` has expired (counted on the expiry index, up to that many). A row
        given a new life after the walk picked it stays; a row written during the pass gets a
        rowid past the last one (or a reused one, with a TTL that runs past ``now``); an
        expired row left behind all the same goes in expiry order after the walk."""
        rows = self._one("SELECT max(rowid) FROM _kv", {})
        highest = rows[0] if rows and rows[0] is not None else 0
        wanted = highest // _DENSE_EXPIRY + 1
        expired = self._one("SELECT count(*) FROM (SELECT 1 FROM _kv WHERE expire_at <= %(now)s LIMIT %(wanted)s)",
                            {"now": now, "wanted": wanted})
        if expired is None or expired[0] < wanted:
            yield from super().expired_deletions(now, batch_size)
            return
        after = None
        size = batch_size
        with self._walk_pragmas(highest):
            while True:
                # +expire_at: not through the expiry index, whose order is the one avoided here
                batch = self._one(
                    "SELECT count(*), max(rowid) FROM (SELECT rowid FROM _kv WHERE +expire_at <= %(now)s"
                    + ("" if after is None else " AND rowid > %(after)s") + " ORDER BY rowid LIMIT %(limit)s)",
                    {"now": now, "after": after, "limit": size},
                )
                if batch is None or not batch[0]:
                    break
                started = time.perf_counter()
                # the expiry is checked again: a key set anew since the SELECT stays
                self.execute(
                    "DELETE FROM _kv WHERE rowid <= %(last)s AND +expire_at <= %(now)s"
                    + ("" if after is None else " AND rowid > %(after)s"),
                    {"now": now, "after": after, "last": batch[1]},
                )
                deleted, elapsed = self.cursor.rowcount, time.perf_counter() - started
                yield deleted
                after = batch[1]
                size = _next_batch_size(size, batch_size, elapsed)
        if self.any_expired(now):  # left behind the walk (written by a process whose clock is behind)
            yield from super().expired_deletions(now, batch_size)

    incr_statement = (
        "INSERT INTO _kv (key, type, value, expire_at, created, updated) "
        "VALUES (%(key)s, 'value', %(text)s, NULL, %(ts)s, %(ts)s) "
        "ON CONFLICT (key) DO UPDATE SET "
        f"value = CASE WHEN {EXPIRED} THEN excluded.value "
        "ELSE CAST(CAST(_kv.value AS INTEGER) + %(amount)s AS TEXT) END, "
        f"{RESTART_IF_EXPIRED} "
        # the stored text is compact JSON: it is an integer exactly when it reads back the same
        # through INTEGER ('"12"', '12.0', 'true', '1e3' and out-of-range digits do not)
        f"WHERE {EXPIRED} OR (_kv.type = 'value' AND CAST(CAST(_kv.value AS INTEGER) AS TEXT) = _kv.value "
        # an int64 overflow makes SQLite's sum a REAL
        "AND typeof(CAST(_kv.value AS INTEGER) + %(amount)s) = 'integer') "
        "RETURNING CAST(value AS INTEGER)"
    )

    def timestamp(self):
        if site_settings().USE_TZ:
            return utc_text()
        return self.connection.ops.adapt_datetimefield_value(timezone.now())

    def hset(self, key: str, mapping: str, field_count: int, now: int, max_size: int) -> int | None:
        _results.new_fields = field_count  # when the key is new, every field is
        row = self._one(
            "INSERT INTO _kv (key, type, value, expire_at, created, updated) "
            "VALUES (%(key)s, 'hash', %(mapping)s, NULL, %(ts)s, %(ts)s) "
            "ON CONFLICT (key) DO UPDATE SET "
            f"value = CASE WHEN {EXPIRED} THEN kv_hset(NULL, excluded.value) "
            "ELSE kv_hset(_kv.value, excluded.value) END, "
            f"{RESTART_IF_EXPIRED} "
            f"WHERE {EXPIRED} OR (_kv.type = 'hash' "
            "AND length(CAST(kv_hset(_kv.value, excluded.value) AS BLOB)) <= %(max)s) RETURNING 1",
            {"key": key, "mapping": mapping, "now": now, "ts": self.timestamp(), "max": max_size},
        )
        return _results.new_fields if row else None

    def hdel(self, key: str, fields: list[str], now: int) -> tuple[str, int] | None:
        # SQLite has no data-modifying CTEs: the update and the removal of an emptied hash
        # are two statements, in one transaction (a SQLite transaction holds the write lock)
        found = self.row(key, now)
        if found is None or found[0] != "hash":
            return (found[0], 0) if found else None
        _results.removed = 0
        self._one(
            f"UPDATE _kv SET value = kv_hdel(value, %(fields)s), updated = %(ts)s "
            f"WHERE key = %(key)s AND {ALIVE} AND type = 'hash' RETURNING 1",
            {"key": key, "fields": json.dumps(fields), "now": now, "ts": self.timestamp()},
        )
        removed = _results.removed
        self.execute("DELETE FROM _kv WHERE key = %(key)s AND type = 'hash' AND value = '{}'", {"key": key})
        return "hash", removed

    def hincr(self, key: str, field: str, amount: int, now: int) -> int | None:
        row = self._one(
            "INSERT INTO _kv (key, type, value, expire_at, created, updated) "
            "VALUES (%(key)s, 'hash', json_object(%(field)s, %(amount)s), NULL, %(ts)s, %(ts)s) "
            "ON CONFLICT (key) DO UPDATE SET "
            f"value = CASE WHEN {EXPIRED} THEN excluded.value "
            "ELSE kv_hincr(_kv.value, %(field)s, %(amount)s) END, "
            f"{RESTART_IF_EXPIRED} "
            f"WHERE {EXPIRED} OR (_kv.type = 'hash' AND kv_hincr_ok(_kv.value, %(field)s, %(amount)s)) "
            "RETURNING value",
            {"key": key, "field": field, "amount": amount, "now": now, "ts": self.timestamp()},
        )
        return json.loads(row[0])[field] if row else None

    def incr_existing(self, key: str, amount: int, now: int, type_: str) -> int | None:
        row = self._one(
            "UPDATE _kv SET value = CAST(CAST(value AS INTEGER) + %(amount)s AS TEXT), updated = %(ts)s "
            f"WHERE key = %(key)s AND {ALIVE} AND type = %(type)s AND json_valid(value) "
            "AND json_type(value) = 'integer' AND CAST(CAST(value AS INTEGER) AS TEXT) = value "
            # an int64 overflow makes SQLite's sum a REAL
            "AND typeof(CAST(value AS INTEGER) + %(amount)s) = 'integer' "
            "RETURNING CAST(value AS INTEGER)",
            {"key": key, "amount": amount, "now": now, "ts": self.timestamp(), "type": type_},
        )
        return row[0] if row else None
