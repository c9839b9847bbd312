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
from typing import Any

from django.db import connections, router, transaction

from tachycore.pubsub.base import encode

from ..conf import kv_settings, site_settings
from . import Statements, statements_for

#: the sync channel of L1 invalidations (``kv.receivers.invalidate_from_elsewhere`` listens)
INVALIDATE_CHANNEL = "kv-invalidate"
_INVALIDATE_ALL_OVER = 6000  # bytes of key names: past this, tell other processes to drop everything

#: what the store does with the keys of a committed write (``None``: every key)
Dropped = Callable[[Sequence[str] | None], None]


def invalidation(keys: Sequence[str] | None) -> dict[str, Any]:
    """The sync message that drops ``keys`` (``None``: every key) from other processes' L1
    (all of it past a size)."""
    if keys is None or sum(len(key) + 4 for key in keys) > _INVALIDATE_ALL_OVER:
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

    def statements(self) -> Statements:
        """Statements on this thread's connection: on the driver's own cursor, kept for the
        connection's life (Django's wrapper and a new cursor each time would cost more than
        the query), or on a new Django cursor while queries are logged (DEBUG, a test
        capturing queries), so that they are logged too."""
        connection = self.connection()
        sql = connection.__dict__.get("_kv_statements")
        if (sql is None or sql.cursor.connection is not connection.connection
                or connection.force_debug_cursor or site_settings().DEBUG):
            if connection.force_debug_cursor or site_settings().DEBUG:
                return statements_for(connection, connection.cursor())
            connection.ensure_connection()
            sql = connection._kv_statements = statements_for(connection, connection.connection.cursor())
        return sql

    def write(self, keys: Sequence[str], dropped: Dropped) -> Write:
        """``with session.write(keys, dropped) as sql:`` around the statements of one write."""
        return Write(self, keys, dropped)

    def announce(self, keys: Sequence[str] | None, dropped: Dropped, notified: bool = False) -> None:
        """After a write of ``keys`` (``None``: of any key): ``dropped(keys)`` and a sync
        message to other processes (unless the write's statement ``notified`` them), at once
        when it has committed (autocommit), else when the caller's transaction commits."""
        if not self.connection().in_atomic_block:  # committed already: no on_commit machinery
            dropped(keys)
            if not notified and _runtime().has_audience:
                _runtime().publish(INVALIDATE_CHANNEL, invalidation(keys))
            return
        transaction.on_commit(functools.partial(dropped, keys), using=self.using)
        if not notified:
            from tachycore import sync

            sync.publish(INVALIDATE_CHANNEL, invalidation(keys), using=self.using)

    def _notice(self, sql: Statements, keys: Sequence[str]) -> tuple[str, str] | None:
        """``(channel, message)`` of a NOTIFY carried by a write of ``keys``, or ``None`` when
        sync messages do not travel through PostgreSQL on this database (or the statements
        are logged: a NOTIFY would hide in the logged query)."""
        if sql.vendor != "postgresql" or sql.connection.force_debug_cursor or site_settings().DEBUG:
            return None
        adapter = _runtime().pubsub
        if getattr(adapter, "using", None) != self.using or not hasattr(adapter, "channel"):
            return None
        if len(keys) == 1:
            return adapter.channel, sql.invalidation_of(keys[0], adapter.node_id, adapter.channel,
                                                        INVALIDATE_CHANNEL)
        return adapter.channel, encode(INVALIDATE_CHANNEL, invalidation(keys), adapter.node_id)


class Write:
    """The statements of one write, and what follows them.

    On enter: the statements, with the NOTIFY that goes with the write (PostgreSQL), in a
    transaction of its own with ``synchronous_commit`` off for ``KV["DURABILITY"] = "fast"``.
    On a clean exit: ``Session.announce``. A class, not a generator: it runs around every write.
    """

    __slots__ = ("_atomic", "_dropped", "_keys", "_notify", "_session", "_sql")

    def __init__(self, session: Session, keys: Sequence[str], dropped: Dropped) -> None:
        self._session = session
        self._keys = keys
        self._dropped = dropped
        self._atomic = None

    def __enter__(self) -> Statements:
        session = self._session
        connection = session.connection()
        if (connection.vendor == "postgresql" and kv_settings.DURABILITY == "fast"
                and not connection.in_atomic_block):
            self._atomic = transaction.atomic(using=session.using)
            self._atomic.__enter__()
            try:
                sql = session.statements()
                sql.execute("SET LOCAL synchronous_commit = off", {})
            except BaseException as e:  # no __exit__ follows a failed __enter__
                self._atomic.__exit__(type(e), e, e.__traceback__)
                raise
        else:
            sql = session.statements()
        self._sql = sql
        self._notify = sql.notify_with = session._notice(sql, self._keys)
        return sql

    def __exit__(self, exc_type, exc, traceback) -> None:
        sql = self._sql
        notified = self._notify is not None and sql.notify_with is None
        sql.notify_with = None
        if self._atomic is not None:
            self._atomic.__exit__(exc_type, exc, traceback)
        if exc_type is None:
            self._session.announce(self._keys, self._dropped, notified)
