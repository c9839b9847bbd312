"""The statements of ``kv.cache.KVCache``: rows of one type under one key prefix."""

from __future__ import annotations

from typing import Any

from .base import ALIVE
from .scans import ScanStatements


class CacheStatements(ScanStatements):
    """The store's statements and those of the cache backend; each vendor class extends it."""

    @staticmethod
    def _prefix(prefix: str, type_: str) -> dict[str, Any]:
        """Parameters of ``key_range`` for the keys that start with ``prefix`` (no LIKE: its
        wildcards and SQLite's case-insensitive LIKE would reach other prefixes)."""
        return {"lo": prefix, "hi": prefix[:-1] + chr(ord(prefix[-1]) + 1), "type": type_}

    def count_prefix(self, prefix: str, type_: str) -> int:
        """How many rows of ``type_`` have a key starting with ``prefix``, expired ones included."""
        row = self._one(
            f"SELECT count(*) FROM _kv WHERE type = %(type)s AND {self.key_range}", self._prefix(prefix, type_)
        )
        assert row is not None, "count(*) without GROUP BY returns one row"
        return row[0]

    def delete_prefix(self, prefix: str, type_: str, expired_at: int | None = None) -> int:
        """Delete the rows of ``type_`` under ``prefix`` (with ``expired_at``, only those expired
        by then); return how many."""
        params = {**self._prefix(prefix, type_), "now": expired_at}
        expired = " AND expire_at <= %(now)s" if expired_at is not None else ""
        self.execute(f"DELETE FROM _kv WHERE type = %(type)s AND {self.key_range}{expired}", params)
        return self.cursor.rowcount

    def delete_oldest(self, prefix: str, type_: str, count: int) -> list[str]:
        """Delete the ``count`` least recently written rows of ``type_`` under ``prefix``; their keys."""
        rows = self._all(
            f"DELETE FROM _kv WHERE key IN (SELECT key FROM _kv WHERE type = %(type)s AND {self.key_range} "
            f"ORDER BY updated, key LIMIT %(count)s) RETURNING key",
            {**self._prefix(prefix, type_), "count": count},
        )
        return [row[0] for row in rows]

    def swap(self, key: str, old: str, new: str, now: int, type_: str) -> bool:
        """Replace the value of a live row of ``type_`` only while it is still ``old`` (JSON
        texts): a compare-and-set. The expiry is kept."""
        row = self._one(
            f"UPDATE _kv SET value = {self.json_param('new')}, updated = %(ts)s WHERE key = %(key)s "
            f"AND {ALIVE} AND type = %(type)s AND value = {self.json_param('old')} RETURNING 1",
            {"key": key, "old": old, "new": new, "now": now, "ts": self.timestamp(), "type": type_},
        )
        return row is not None

    def incr_existing(self, key: str, amount: int, now: int, type_: str) -> int | None:
        """Add ``amount`` to the JSON integer of a live row of ``type_``, keeping its expiry; the
        new value, or ``None`` when the row is absent, not an integer, or would leave int64."""
        raise NotImplementedError

