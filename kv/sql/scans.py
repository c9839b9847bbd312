"""The walk of ``KVStore.scan``: the keys in key order, a bounded number of rows a step.

How a step reads its rows is the database's (``read_step``): PostgreSQL numbers the rows as
it reads them and stops at the step's ``LIMIT``, in one statement; SQLite numbers a window's
rows only once it has read them all, so it first finds the last row the step may read, then
reads up to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .base import ALIVE, Statements
from .glob import key_bounds, length_bounds


@dataclass
class Step:
    """The SQL of a step: ``where`` picks the rows it may read (``key > after``, the pattern's
    literal prefix), ``hit`` says which of them it returns; ``params`` has ``count`` (the rows
    it reads at most) and, with a limit, ``rows`` (``limit`` + 1)."""

    where: list[str]
    hit: str
    params: dict[str, Any]


class ScanStatements(Statements):
    """The statements of the store with its scan; ``CacheStatements`` extends it."""

    #: rows a step of ``all_keys`` reads (``kv.scans.MAX_COUNT``, the most a ``scan`` call reads)
    all_keys_step = 10_000

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
        step = self._step(after, pattern, now, count, types)
        if step is None:
            return [], None
        if limit is not None:
            step.params["rows"] = limit + 1
        keys, last = self.read_step(step, count)
        if limit is not None and len(keys) > limit:
            return keys[:limit], keys[limit - 1]
        return keys, last

    def all_keys(self, pattern: str | None, now: int) -> list[str]:
        """Every live key matching ``pattern``, in key order, read in steps of ``scan`` of
        ``all_keys_step`` rows: the database sorts nothing (the primary key index is in key
        order) and never holds a result of every key, and only the keys found stay in memory.
        Each step as ``read_step_to_last`` reads it: only the keys found come back (at a
        million keys on PostgreSQL, numbering the rows as its ``read_step`` does, or returning
        every row read, cost twice as much)."""
        keys: list[str] = []
        after = None
        while True:
            step = self._step(after, pattern, now, self.all_keys_step, None)
            if step is None:
                return keys
            found, after = self.read_step_to_last(step, self.all_keys_step)
            keys.extend(found)
            if after is None:
                return keys

    def read_step_to_last(self, step: Step, count: int) -> tuple[list[str], str | None]:
        """``read_step`` in two statements: the ``count``-th key first (the key index alone
        answers it), then the rows up to it that ``step.hit`` takes. A key present throughout
        is read either way: whatever changes between the two statements, the next step starts
        after that same key."""
        where = list(step.where)
        last_row = self._one(
            f"SELECT key FROM _kv {'WHERE ' + ' AND '.join(where) if where else ''} "
            "ORDER BY key LIMIT 1 OFFSET %(count)s - 1", step.params,
        )
        last = last_row[0] if last_row else None
        if last is not None:
            where.append("key <= %(last)s")
        rows = self._all(
            f"SELECT key FROM _kv WHERE {' AND '.join([*where, step.hit])} ORDER BY key"
            + (" LIMIT %(rows)s" if "rows" in step.params else ""),
            {**step.params, "last": last},
        )
        return [row[0] for row in rows], last

    def read_step(self, step: Step, count: int) -> tuple[list[str], str | None]:
        """``(keys, last)``: the keys of ``step.hit`` among the first ``count`` rows of
        ``step.where`` in key order (the first ``rows`` of them, with ``rows``), and the
        ``count``-th row's key (``None`` when fewer rows are left: the walk is done)."""
        raise NotImplementedError

    def _step(self, after: str | None, pattern: str | None, now: int, count: int,
              types: tuple[str, ...] | None) -> Step | None:
        """The SQL of a step; ``None`` when no key can match."""
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
            return None
        if pattern is not None:
            match = self.pattern_condition(pattern)
            params["length"], exact = length_bounds(pattern)
            if match is None or (exact and params["length"] == 0):
                return None
            condition, params["pattern"] = match
            bounds = key_bounds(pattern)
            if bounds is not None:
                where.append(self.key_range)
                params["lo"], params["hi"] = bounds
            # a CASE, not AND: see Statements.keys()
            hit.append(f"CASE WHEN length(key) {'=' if exact else '>='} %(length)s THEN {condition} ELSE false END")
        return Step(where, " AND ".join(hit), params)
