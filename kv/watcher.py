"""SQLite: other processes' kv writes reach this process's L1 through a commit watcher.

SQLite carries no message between processes (the in-process pub/sub delivers none), so a
write elsewhere would stay hidden behind L1 for up to ``L1_TTL``. Instead an update or
delete of a ``_kv`` row raises a counter, ``_kv_changes.counter``, and sets its ``pending``
flag, in the writing statement itself (triggers made by migration 0004): the same
transaction, whatever wrote it (the store, the cache backend, the admin, a ``sqlite3``
shell). While ``pending`` is set, writes leave the counter alone: its page is not written
again with each commit.

The kernel's commit watcher (``tachycore.db.CommitWatcher``) looks at ``PRAGMA
data_version`` every ``WATCH_INTERVAL``. When another connection has committed, it reads
the counter and the flag, and drops all of L1 if the counter moved or the flag is set (a
write may have come and left the counter as it was); then, if the flag is set, it clears it
and raises the counter (an acknowledgement, one write), so that every other watcher drops
its L1 once more for the writes it may not have seen, and the next write raises the counter
again. Every write that commits after a look is so seen at the next look or the one after.
A write of this process counts too (the watcher cannot tell whose it was): a busy writer
costs a refill of L1 at most once per look.

L1 fills only while the watcher is live (``changes_arrive``): started by the first read that
would fill L1 (one per process: after a fork the child starts its own), and no longer live
when a look fails or the triggers are missing, which empties L1 as well.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Callable

from django.db import connections

from tachycore.db import CommitWatcher

logger = logging.getLogger("kv")

#: how often the watcher looks for commits: a write elsewhere leaves L1 within about this
WATCH_INTERVAL = 0.02
#: the triggers that raise the counter (kv/migrations/0004_sqlite_change_counter.py)
TRIGGERS = ("_kv_changed_by_update", "_kv_changed_by_delete")


class ChangeWatcher(CommitWatcher):
    """Calls ``drop()`` when another connection committed a change to ``_kv``."""

    def __init__(self, using: str, drop: Callable[[], None], interval: float = WATCH_INTERVAL) -> None:
        # its acknowledgement waits little for the write lock: the next look tries again
        super().__init__(using, drop, interval=interval, name="kv-l1-watcher", timeout=0.1)
        self.pid = os.getpid()
        #: the last looks succeeded and the triggers are there: L1 may be filled
        self.live = False
        self._counter: int | None = None
        self._schema: int | None = None  # PRAGMA schema_version when the triggers were seen
        self._warned = False  # a failed look is logged as a warning when it ends L1, or once

    def poll(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA data_version").fetchall()[0][0]
        if version != self._version:  # the first look too: L1 starts empty
            schema = conn.execute("PRAGMA schema_version").fetchall()[0][0]
            if schema != self._schema:  # the first look, or a migration ran since the last
                self._check_triggers(conn)
                self._schema = schema
            counter, pending = conn.execute("SELECT counter, pending FROM _kv_changes").fetchall()[0]
            if counter != self._counter or pending:
                self.wake()
                self._counter = counter
            if pending:
                self._acknowledge(conn)
            self._version = version
        self.live = True

    def _acknowledge(self, conn: sqlite3.Connection) -> None:
        """Clear ``pending``, raising the counter: writes raise it again from now on. Its own
        commit does not change this connection's ``data_version``, hence the counter kept
        here and L1 dropped once more (for a write committed since the look)."""
        try:
            rows = conn.execute("UPDATE _kv_changes SET counter = counter + 1, pending = 0 "
                                "WHERE pending = 1 RETURNING counter").fetchall()
        except sqlite3.OperationalError as e:  # busy: a later look acknowledges
            logger.debug("kv: L1 watcher cannot acknowledge now: %s", e)
            return
        if rows:  # else another watcher did
            self._counter = rows[0][0]
            self.wake()

    def _check_triggers(self, conn: sqlite3.Connection) -> None:
        names = {row[0] for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = '_kv'")}
        missing = [name for name in TRIGGERS if name not in names]
        if missing:
            raise LookupError(f"the triggers {', '.join(missing)} on _kv are missing: run migrate "
                              "(kv/migrations/0004_sqlite_change_counter.py makes them)")

    def failed(self, error: Exception) -> None:
        """A look failed: writes elsewhere may go unseen, so L1 is emptied and not filled
        until a look succeeds (it starts over from an unknown counter)."""
        if self.live or not self._warned:
            logger.warning("kv: L1 is off until the commit watcher of %s can look again: %s", self.path, error)
            self._warned = True
        else:
            super().failed(error)
        was_live, self.live = self.live, False
        self._counter = self._version = self._schema = None
        if was_live:
            self.wake()

    def stop(self) -> None:
        super().stop()
        self.live = False
        self.wake()


class Unwatched:
    """Where no watcher is needed: a database other than a SQLite file (PostgreSQL with the
    in-process adapter, an in-memory SQLite database: one process), where an L1 entry is
    trusted for its ``L1_TTL``."""

    live = True

    def __init__(self) -> None:
        self.pid = os.getpid()

    def stop(self) -> None:
        pass


_watcher: ChangeWatcher | Unwatched | None = None
_lock = threading.Lock()


def changes_arrive(drop: Callable[[], None]) -> bool:
    """Whether other processes' writes to the store's SQLite file reach L1 now (``drop()``
    is called at each): the watcher of this process is live. Starts it on first use, and
    again in a forked child. Runs on an L1 miss, beside a database read: two attribute
    reads and ``os.getpid()`` once started."""
    watcher = _watcher
    if watcher is None or watcher.pid != os.getpid():
        watcher = _start(drop)
    return watcher.live


def _start(drop: Callable[[], None]) -> ChangeWatcher | Unwatched:
    global _watcher
    from . import get_store

    with _lock:
        watcher = _watcher
        if watcher is None or watcher.pid != os.getpid():
            store = get_store()
            using = store.using if store is not None else None
            if using is None or connections[using].vendor != "sqlite" or not ChangeWatcher.supported(using):
                watcher = _watcher = Unwatched()
            else:
                watcher = _watcher = ChangeWatcher(using, drop)
                watcher.start()
        return watcher


def stop() -> None:
    """Stop this process's watcher: the next L1 miss starts one again (tests; otherwise a
    watcher runs as long as its process)."""
    global _watcher
    with _lock:
        watcher, _watcher = _watcher, None
    if watcher is not None and watcher.pid == os.getpid():
        watcher.stop()


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()  # another thread may have held it at fork time: the child's is free


os.register_at_fork(after_in_child=_after_fork_in_child)
