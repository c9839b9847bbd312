"""Database settings that let several processes share one SQLite file, and a watcher of the
commits they make."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("tachycore.db")

#: WAL lets readers run beside the writer; ``synchronous=NORMAL`` is safe with WAL
SQLITE_INIT_COMMAND = "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;"


def configure_sqlite(database: dict[str, Any], timeout: float = 20) -> dict[str, Any]:
    """Return ``database`` (a ``DATABASES`` entry) fit for several processes, if it is SQLite.

    It adds a WAL journal, a busy timeout (a writer waits instead of failing with
    "database is locked") and ``IMMEDIATE`` transactions (a transaction takes the
    write lock when it starts, so it never has to upgrade a read lock and deadlock).
    Other engines are returned unchanged.
    """
    if not database.get("ENGINE", "").endswith("sqlite3"):
        return database
    options = dict(database.get("OPTIONS") or {})
    options.setdefault("timeout", timeout)
    options.setdefault("transaction_mode", "IMMEDIATE")
    options.setdefault("init_command", SQLITE_INIT_COMMAND)
    return {**database, "OPTIONS": options}


#: how often a commit watcher looks for commits of other connections (``PRAGMA data_version``)
SQLITE_WATCH_INTERVAL = 0.05


class CommitWatcher:
    """Calls ``wake()`` after another connection committed to the SQLite database of ``using``.

    SQLite has no notifications between processes. A thread reads ``PRAGMA data_version``
    every ``interval`` seconds on a connection of its own: the number changes when another
    connection (of any process, this one's included) commits, and reading it touches no
    disk. ``poll`` is one look; a subclass that must know more (which table changed) reads
    it there, on the watcher's connection. A look that fails (a locked or replaced file)
    goes to ``failed``; the next one compares with the last number read, so no commit is
    missed meanwhile.
    """

    def __init__(self, using: str, wake: Callable[[], None],
                 on_error: Callable[[str], None] = lambda message: None,
                 interval: float = SQLITE_WATCH_INTERVAL, name: str = "commit-watcher", timeout: float = 5) -> None:
        from django.db import connections

        self.path = str(connections[using].settings_dict["NAME"])
        self.wake = wake
        self.on_error = on_error
        self.interval = interval
        self.name = name
        self.timeout = timeout  # how long a statement of the watcher waits for a lock
        self._version: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @staticmethod
    def supported(using: str) -> bool:
        """Whether ``using`` is a SQLite file (an in-memory database has no other connection)."""
        from django.db import connections

        name = str(connections[using].settings_dict["NAME"])
        return bool(name) and ":memory:" not in name and "mode=memory" not in name

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)

    def poll(self, conn: sqlite3.Connection) -> None:
        """One look: ``wake()`` when another connection committed since the last look."""
        version = conn.execute("PRAGMA data_version").fetchone()[0]
        if self._version is not None and version != self._version:
            self.wake()
        self._version = version

    def failed(self, error: Exception) -> None:
        """A look failed; the next one tries again."""
        logger.debug("%s: %s", self.name, error)

    def _run(self) -> None:
        try:
            # autocommit: a statement of a subclass that writes commits at once
            conn = sqlite3.connect(self.path, timeout=self.timeout, check_same_thread=False, isolation_level=None)
        except sqlite3.Error as e:
            self.on_error(f"{self.name}: cannot watch {self.path} for commits: {e}")
            return
        try:
            while True:  # a first look at once: the number to compare with
                try:
                    self.poll(conn)
                except Exception as e:  # noqa: BLE001 - the next look tries again; the subclass decides
                    self.failed(e)
                if self._stop.wait(self.interval):
                    return
        finally:
            conn.close()
