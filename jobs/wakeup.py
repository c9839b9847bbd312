"""Waking an idle dispatcher when a job is enqueued.

On PostgreSQL every enqueue sends ``NOTIFY tachy_jobs`` in its transaction, so it is
delivered at commit. A dispatcher listens on a dedicated autocommit connection (not
one of Django's: it stays in ``LISTEN`` for the process's life) and sets its wake
event; the main loop then claims once, however many notifications arrived. A lost
connection is re-opened with backoff; meanwhile the dispatcher polls.

SQLite has no notifications between processes. There the kernel's commit watcher
(``tachycore.db.CommitWatcher``) reads ``PRAGMA data_version`` every 50 ms: it changes
when another connection commits, and reading it touches no disk. Any commit wakes the
loop, which then claims once (a cheap query on the index of pending jobs).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from django.db import connections

from tachycore.db import CommitWatcher

from .sql import NOTIFY_CHANNEL

if TYPE_CHECKING:
    import psycopg

logger = logging.getLogger("jobs.dispatcher")


def wakeup_for(using: str, name: str, wake: Callable[[], None],
               on_error: Callable[[str], None] = lambda message: None) -> Listener | CommitWatcher | None:
    """What wakes a dispatcher on this database (``None``: only its poll)."""
    vendor = connections[using].vendor
    if vendor == "postgresql":
        return Listener(using, name, wake, on_error)
    if vendor == "sqlite" and CommitWatcher.supported(using):
        return CommitWatcher(using, wake, on_error, name="jobs-commit-watcher")
    return None


class Listener:
    """Listens for enqueue notifications in a thread; ``wake()`` is called for each burst."""

    def __init__(self, using: str, name: str, wake: Callable[[], None],
                 on_error: Callable[[str], None] = lambda message: None) -> None:
        self.using = using
        self.name = name
        self.wake = wake
        self.on_error = on_error
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: psycopg.Connection | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="jobs-listener", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()
        if self._thread is not None:
            self._thread.join(5)

    def _connect(self) -> psycopg.Connection:
        from tachycore.pubsub.postgres import listen_connection

        return listen_connection(self.using, NOTIFY_CHANNEL, f"jobs-listen {self.name}")

    def _run(self) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            try:
                listening = self._conn = self._connect()
                self.wake()  # jobs may have come while we were not listening
                backoff = 0.1
                while not self._stop.is_set():
                    woke = False
                    for _ in listening.notifies(timeout=1.0, stop_after=1):
                        woke = True
                    if woke:
                        self.wake()
            except Exception as e:
                if self._stop.is_set():
                    return
                logger.warning("jobs listener: %s; reconnecting in %.1fs", e, backoff)
                self.on_error(f"jobs listener lost its connection: {type(e).__name__}: {e}")
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                conn, self._conn = self._conn, None
                if conn is not None:
                    with contextlib.suppress(Exception):
                        conn.close()
