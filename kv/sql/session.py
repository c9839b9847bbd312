"""The store's way to its database: this thread's connection, the statements kept on it, and
the word a write sends other processes so that they drop the keys from their L1.

On PostgreSQL, when this process's sync messages travel by LISTEN/NOTIFY on the store's own
database, the word is a NOTIFY carried by the write's statement (one round trip, one commit,
sent only if the write commits); otherwise it is a sync message published after commit.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from django.db import connections, router, transaction

from tachycore.pubsub.base import encode

from ..conf import kv_settings, site_settings
from . import CacheStatements, Statements, statements_for

if TYPE_CHECKING:
    from ..l1 import L1Cache

#: the sync channel of L1 invalidations (``kv.receivers.invalidate_from_elsewhere`` listens)
INVALIDATE_CHANNEL = "kv-invalidate"
_INVALIDATE_ALL_OVER = 6000  # bytes of key names: past this, tell other processes to drop everything



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
                return statements_for(connection, connection.cursor())
            connection.ensure_connection()
            sql = connection._kv_statements = statements_for(connection, connection.connection.cursor())
        return sql

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


class Write:
    """One write of ``keys``, around its statements: ``with Write(session, keys, l1) as sql:``.

    The keys leave ``l1`` at once (a reader that started before cannot fill it back) and
    again once the write commits, here and, through ``Session.announce``, in every process.
    On enter: the statements, with the NOTIFY that goes with the write (PostgreSQL), in a
    transaction of its own with ``synchronous_commit`` off for ``KV["DURABILITY"] = "fast"``.
    A class, not a generator, and the committed case inline: it runs around every write.
    """

    __slots__ = ("_atomic", "_connection", "_keys", "_l1", "_notify", "_session", "_sql")

    def __init__(self, session: Session, keys: Sequence[str], l1: L1Cache | None) -> None:
        if l1 is not None:
            l1.invalidate(*keys)
        self._session = session
        self._keys = keys
        self._l1 = l1
    def __enter__(self) -> CacheStatements:
        session = self._session
        connection = self._connection = session.connection()
        self._atomic = self._notify = None
        if connection.vendor != "postgresql":  # SQLite: no NOTIFY, and DURABILITY is not read
            sql = self._sql = session.statements(connection)
            return sql
        if kv_settings.DURABILITY == "fast" and not connection.in_atomic_block:
            self._atomic = transaction.atomic(using=session.using)
            self._atomic.__enter__()
            try:
                sql = session.statements(connection)
                sql.execute("SET LOCAL synchronous_commit = off", {})
            except BaseException as e:  # no __exit__ follows a failed __enter__
                self._atomic.__exit__(type(e), e, e.__traceback__)
                raise
        else:
            sql = session.statements(connection)
        self._sql = sql
        self._notify = sql.notify_with = session._notice(sql, self._keys)
        return sql

    def __exit__(self, exc_type, exc, traceback) -> None:
        notified = False
        if self._notify is not None:
            notified = self._sql.notify_with is None  # a statement took it
            self._sql.notify_with = None
        if self._atomic is not None:
            self._atomic.__exit__(exc_type, exc, traceback)
        if exc_type is None:
            if self._connection.in_atomic_block:
                self._session.announce(self._keys, self._l1, notified)
                return
            # committed already (autocommit): Session.announce's first branch, inline
            if self._l1 is not None:
                self._l1.invalidate(*self._keys)
            if not notified and _runtime().has_audience:
                _runtime().publish(INVALIDATE_CHANNEL, invalidation(self._keys))
