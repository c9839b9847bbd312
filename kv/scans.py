"""The scan commands of ``KVStore`` (``scan``, ``scan_iter``) and their cursors.

``keys()`` returns every matching key at once, as Redis does: on a big table that is all of
them in memory. ``scan`` returns them a few at a time, as Redis's ``SCAN``: each call reads
the next ``count`` rows in key order (a keyset walk on the primary key, ``key > last key``)
and returns the live keys among them that match; a cursor says where the next call goes on.
Memory stays constant whatever the table holds, and every key that exists from the first
call to the last is returned exactly once, while other keys come and go.

A cursor is what a client hands back, over HTTP too: ``0`` starts a scan and ends one, as in
Redis; in between it is a string, ``"k"`` and the last key read in URL-safe base64 (UTF-8,
unpadded): ``"kdXNlcjox"`` goes on after ``user:1``. Any other value is
``kv.errors.InvalidCursor``.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import TYPE_CHECKING

from . import clock, governed
from .errors import InvalidCursor, InvalidValue
from .governed import current_plugin
from .sql.glob import check_pattern
from .validation import MAX_KEY_LENGTH, check_key

if TYPE_CHECKING:
    from .sql import CacheStatements

#: rows a call reads when ``count`` is not given, as in Redis
DEFAULT_COUNT = 10
#: the most rows a call reads, whatever ``count`` asks: a call's time and memory stay bounded
MAX_COUNT = 10_000
#: what every cursor but 0 starts with
CURSOR_PREFIX = "k"
#: the longest cursor: a key of MAX_KEY_LENGTH characters of 4 UTF-8 bytes each
MAX_CURSOR_LENGTH = len(CURSOR_PREFIX) + (MAX_KEY_LENGTH * 4 * 4 + 2) // 3
#: what ``_type`` may ask for, as ``type()`` names it
TYPES = ("value", "hash")


def cursor_after(key: str) -> str:
    """The cursor of a scan that goes on after ``key``."""
    return CURSOR_PREFIX + base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def key_after(cursor: object) -> str | None:
    """The key a scan goes on after for ``cursor`` (``None``: the first key, for ``0`` or
    ``"0"``); ``InvalidCursor`` unless ``cursor`` is one ``cursor_after`` made."""
    if (cursor == 0 and type(cursor) is int) or cursor == "0":
        return None
    if isinstance(cursor, str) and cursor.startswith(CURSOR_PREFIX) and len(cursor) <= MAX_CURSOR_LENGTH:
        encoded = cursor[len(CURSOR_PREFIX):]
        try:
            key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), altchars=b"-_", validate=True).decode()
            # one spelling per key: base64 can write the last bits of some keys several ways
            if cursor_after(key) == cursor:
                return check_key(key)
        except ValueError:  # not base64 (binascii.Error), not UTF-8, not a key (InvalidKey)
            pass
    shown = repr(cursor) if len(repr(cursor)) <= 60 else repr(cursor)[:59] + "…"
    raise InvalidCursor(
        f"cursor {shown} is not a scan cursor: give 0 to start a scan, or the cursor the previous call returned"
    )


class ScanCommands:
    """Keys a few at a time; mixed into ``KVStore``, whose statements it uses."""

    def statements(self) -> CacheStatements:
        raise NotImplementedError

    def scan(self, cursor: int | str = 0, match: str | None = None, count: int | None = None,
             _type: str | None = None, *, limit: int | None = None) -> tuple[int | str, list[str]]:
        """``(next cursor, keys)``, as redis-py's ``scan``: the live keys matching the glob
        ``match`` (every key when ``None``) among the next ``count`` keys after ``cursor``
        (10 by default, at most ``MAX_COUNT``), sorted. A cursor of ``0`` starts; a next
        cursor of ``0`` says the scan is done. ``_type``: ``"value"`` or ``"hash"`` keys only.

        Expired keys and keys the pattern refuses count toward ``count``, so a call may
        return fewer keys than ``count``, or none, before the scan is done. ``match`` takes
        the patterns and limits of ``keys()`` and, as there, reads only the keys under its
        literal prefix. With ``limit`` (not in redis-py), at most that many keys: the next
        cursor then goes on after the last key returned.
        """
        if current_plugin() is not None:
            governed.check(governed.READ, "scan", "*" if match is None else match)
        after = key_after(cursor)
        pattern = None if match is None else check_pattern(match)
        if count is None:
            count = DEFAULT_COUNT
        elif type(count) is not int or count < 1:
            raise InvalidValue(f"count must be a whole number of at least 1, got {count!r}")
        if limit is not None and (type(limit) is not int or limit < 1):
            raise InvalidValue(f"limit must be a whole number of at least 1, got {limit!r}")
        if _type is not None and _type not in TYPES:
            raise InvalidValue(f"_type must be one of {', '.join(map(repr, TYPES))} or None, got {_type!r}")
        keys, last = self.statements().scan(after, pattern, clock.now_ms(), min(count, MAX_COUNT), limit=limit,
                                            types=None if _type is None else (_type,))
        return (0 if last is None else cursor_after(last)), keys

    def scan_iter(self, match: str | None = None, count: int | None = None,
                  _type: str | None = None) -> Iterator[str]:
        """Every live key matching ``match``, in key order, through ``scan`` calls of ``count``
        rows: memory for ``count`` keys, however many there are."""
        cursor: int | str = 0
        while True:
            cursor, keys = self.scan(cursor, match, count, _type)
            yield from keys
            if cursor == 0:
                return
