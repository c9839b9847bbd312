"""The store's way to its database: this thread's connection, the statements kept on it, and
the word a write sends other processes so that they drop the keys from their L1.

On PostgreSQL, when this process's sync messages travel by LISTEN/NOTIFY on the store's own
database, the word is a NOTIFY carried by the write's statement (one round trip, one commit,
sent only if the write commits); otherwise it is a sync message published after commit.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from django.db import connections, router, transaction

from tachycore import governance
from tachycore.pubsub.base import encode

from ..conf import kv_settings, site_settings
from . import CacheStatements, Statements, statements_for

if TYPE_CHECKING:
    from ..l1 import L1Cache

#: the sync channel of L1 invalidations (``kv.receivers.invalidate_from_elsewhere`` listens)
INVALIDATE_CHANNEL = "kv-invalidate"
_INVALIDATE_ALL_OVER = 6000  # bytes of key names: past this, tell other processes to drop everything

T = TypeVar("T")


def invalidation(keys: Sequence[str] | None) -> dict[str, Any]:
    """The sync message that drops ``keys`` (``None``: every key) from other processes' L1
    (all of it past a size; one key always fits)."""
    if keys is None or (len(keys) > 1 and sum(len(key) + 4 for key in keys) > _INVALIDATE_ALL_OVER):
        return {"all": True}
    return {"keys": list(keys)}


@functools.cache
def _runtime():
    from tachycore.runtime import runtime  # imported late: it needs the apps loaded

    return runtime


class Session:
    """One store's access to its database alias, from any thread."""

    def __init__(self, using: str | None = None) -> None:
        self._using = using
        self._local = threading.local()

    @property
    def using(self) -> str:
        if self._using is None:
            from ..models import KVEntry

            self._using = router.db_for_write(KVEntry)
        return self._using

    def connection(self):
        """This thread's connection (kept per thread: the handler's lookup costs more than an L1 hit)."""
        try:
            return self._local.connection
        except AttributeError:
            connection = self._local.connection = connections[self.using]
            return connection

    def in_transaction(self) -> bool:
        return self.connection().in_atomic_block

    def statements(self, connection=None) -> CacheStatements:
        """Statements on this thread's connection (or ``connection``, which is it): on the
        driver's own cursor, kept for the connection's life (Django's wrapper and a new cursor
        each time would cost more than the query), or on a new Django cursor while queries
        are logged (DEBUG, a test capturing queries), so that they are logged too."""
        if connection is None:
            connection = self.connection()
        sql = connection.__dict__.get("_kv_statements")
        if (sql is None or sql.cursor.connection is not connection.connection
                or connection.force_debug_cursor or site_settings().DEBUG):
            if connection.force_debug_cursor or site_settings().DEBUG:
                # the store's own statements: the SQL guard leaves them (kv checked its grant)
                return statements_for(connection, governance.builtin_cursor(connection.cursor()))
            connection.ensure_connection()
            sql = connection._kv_statements = statements_for(connection, connection.connection.cursor())
        return sql

    def write(self, keys: Sequence[str], l1: L1Cache | None, statements: Callable[..., T], *args: Any) -> T:
        """``statements(sql, *args)``: one write of ``keys``, and its result; every write of
        the store runs through here.

        The keys leave ``l1`` at once (a reader that started before cannot fill it back) and
        again once the write commits, here and, through ``announce``, in every process. On
        PostgreSQL the NOTIFY goes with the write's statement, in a transaction of its own
        with ``synchronous_commit`` off for ``KV["DURABILITY"] = "fast"``. A function, not a
        context manager (no object to build per write), and the common case inline: SQLite,
        committed at once (autocommit).
        """
        if l1 is not None:
            l1.invalidate(*keys)
        connection = self.connection()
        if connection.vendor == "postgresql":
            result, notified = self._write_postgresql(connection, keys, statements, args)
        else:  # SQLite: no NOTIFY, and DURABILITY is not read
            result, notified = statements(self.statements(connection), *args), False
        if connection.in_atomic_block:
            self.announce(keys, l1, notified)
            return result
        # committed already (autocommit): announce's first branch, inline
        if l1 is not None:
            l1.invalidate(*keys)
        if not notified:
            runtime = _runtime()
            if runtime.has_audience:
                runtime.publish(INVALIDATE_CHANNEL, invalidation(keys))
        return result

    def _write_postgresql(self, connection, keys: Sequence[str], statements: Callable[..., T],
                          args: tuple) -> tuple[T, bool]:
        """``write``'s statements on PostgreSQL, and whether one of them carried the NOTIFY."""
        if kv_settings.DURABILITY == "fast" and not connection.in_atomic_block:
            with transaction.atomic(using=self.using):
                sql = self.statements(connection)
                sql.execute("SET LOCAL synchronous_commit = off", {})
                return self._notifying(sql, keys, statements, args)
        return self._notifying(self.statements(connection), keys, statements, args)

    def _notifying(self, sql: CacheStatements, keys: Sequence[str], statements: Callable[..., T],
                   args: tuple) -> tuple[T, bool]:
        notify = sql.notify_with = self._notice(sql, keys)
        try:
            result = statements(sql, *args)
        finally:
            notified = notify is not None and sql.notify_with is None  # a statement took it
            sql.notify_with = None
        return result, notified

    def announce(self, keys: Sequence[str] | None, l1: L1Cache | None, notified: bool = False) -> None:
        """After a write of ``keys`` (``None``: of any key): drop them from ``l1`` and tell
        other processes (unless the write's statement ``notified`` them), at once when the
        write has committed (autocommit), else when the caller's transaction commits."""
        if not self.connection().in_atomic_block:  # committed already: no on_commit machinery
            if l1 is not None:
                _drop(l1, keys)
            if not notified and _runtime().has_audience:
                _runtime().publish(INVALIDATE_CHANNEL, invalidation(keys))
            return
        if l1 is not None:
            transaction.on_commit(functools.partial(_drop, l1, keys), using=self.using)
        if not notified:
            from tachycore import sync

            sync.publish(INVALIDATE_CHANNEL, invalidation(keys), using=self.using)

    def _notice(self, sql: Statements, keys: Sequence[str]) -> tuple[str, str] | None:
        """``(channel, message)`` of a NOTIFY carried by a write of ``keys`` on PostgreSQL, or ``None`` when
        sync messages do not travel through PostgreSQL on this database (or the statements
        are logged: a NOTIFY would hide in the logged query)."""
        if sql.connection.force_debug_cursor or site_settings().DEBUG:
            return None
        adapter = _runtime().pubsub
        if getattr(adapter, "using", None) != self.using or not hasattr(adapter, "channel"):
            return None
        if len(keys) == 1:
            return adapter.channel, sql.invalidation_of(keys[0], adapter.node_id, adapter.channel,
                                                        INVALIDATE_CHANNEL)
        return adapter.channel, encode(INVALIDATE_CHANNEL, invalidation(keys), adapter.node_id)


def _drop(l1: L1Cache, keys: Sequence[str] | None) -> None:
    l1.clear() if keys is None else l1.invalidate(*keys)
