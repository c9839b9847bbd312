"""The walk of ``KVStore.scan``: the keys in key order, a bounded number of rows a step."""

from __future__ import annotations

from typing import Any

from .base import ALIVE, Statements
from .glob import key_bounds, length_bounds


class ScanStatements(Statements):
    """The statements of the store with its scan; ``CacheStatements`` extends it."""

    def scan(self, after: str | None, pattern: str | None, now: int, count: int, *, limit: int | None = None,
             types: tuple[str, ...] | None = None) -> tuple[list[str], str | None]:
        """One step of a walk through the keys in key order: the live keys of ``types`` matching
        ``pattern`` among the ``count`` rows after the key ``after``, at most ``limit`` of them;
        and the key the next step goes on after, ``None`` once the walk is done.

        ``after`` ``None``: from the first key; ``pattern`` ``None``: every key; ``types``
        ``None``: the store's own rows, not the cache's. A step reads rows by the primary key
        index, ``key > after`` within the pattern's literal prefix, so it costs ``count`` rows
        whatever the table holds, and a key present from the first step to the last is returned
        by exactly one step. Expiry, type, length and pattern are tried on the rows read: a row
        they refuse counts toward ``count`` (as in Redis's SCAN, a step may return no key and
        still not be the last). The database stops reading once ``limit`` + 1 keys matched;
        the next step then goes on after the ``limit``-th.
        """
        if pattern is not None and pattern.strip("*") == "":
            pattern = None if pattern else ""  # "*", "**": every key; "": none (no key is empty)
        params: dict[str, Any] = {"now": now, "count": count}
        where, hit = [], [ALIVE]
        if after is not None:
            where.append("key > %(after)s")
            params["after"] = after
        if types is None:
            hit.append("type <> 'cache'")
        elif types:
            hit.append(f"type IN ({self._in('t', list(types), params)})")
        else:
            return [], None
        if pattern is not None:
            match = self.pattern_condition(pattern)
            params["length"], exact = length_bounds(pattern)
            if match is None or (exact and params["length"] == 0):
                return [], None
            condition, params["pattern"] = match
            bounds = key_bounds(pattern)
            if bounds is not None:
                where.append(self.key_range)
                params["lo"], params["hi"] = bounds
            # a CASE, not AND: see Statements.keys()
            hit.append(f"CASE WHEN length(key) {'=' if exact else '>='} %(length)s THEN {condition} ELSE false END")
        if limit is not None:
            params["rows"] = limit + 1
        # the row_number of the last row a step may read, whether or not it matched, says where
        # the next step starts; the rows run through in key order, and stop at the LIMIT
        rows = self._all(
            f"SELECT key, hit, n FROM (SELECT key, {' AND '.join(hit)} AS hit, row_number() OVER (ORDER BY key) AS n "
            f"FROM (SELECT key, type, expire_at FROM _kv {'WHERE ' + ' AND '.join(where) if where else ''} "
            "ORDER BY key LIMIT %(count)s) AS examined) AS numbered WHERE hit OR n = %(count)s ORDER BY key"
            + (" LIMIT %(rows)s" if limit is not None else ""),
            params,
        )
        keys = [key for key, matched, _ in rows if matched]
        if limit is not None and len(keys) > limit:
            return keys[:limit], keys[limit - 1]
        if rows and rows[-1][2] == count:
            return keys, rows[-1][0]
        return keys, None
