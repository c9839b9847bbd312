"""The store's SQL, one module per database (chosen by ``connection.vendor``)."""

from __future__ import annotations

from django.db.backends.base.base import BaseDatabaseWrapper

from .base import Statements
from .cache import CacheStatements

__all__ = ["CacheStatements", "Statements", "statements_for"]


def statements_for(connection: BaseDatabaseWrapper, cursor) -> CacheStatements:
    """The statements of ``connection``'s database on ``cursor``."""
    if connection.vendor == "postgresql":
        from .postgresql import PostgresStatements

        return PostgresStatements(connection, cursor)
    if connection.vendor == "sqlite":
        from .sqlite import SQLiteStatements

        return SQLiteStatements(connection, cursor)
    raise NotImplementedError(f"kv supports PostgreSQL and SQLite, not {connection.vendor}")
