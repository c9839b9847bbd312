"""Database settings that let several processes share one SQLite file."""

from __future__ import annotations

from typing import Any

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
