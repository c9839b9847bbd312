"""The job queue's SQL, one module per database (chosen by ``connection.vendor``).

``statements_for(using)`` gives the statements the store and the dispatcher send on
one connection alias: insert, claim, complete, fail, extend, release, recover, and
the upkeep of the planner's statistics.
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured
from django.db import connections

from .base import CLAIMED_COLUMNS, INSERT_COLUMNS, NOTIFY_CHANNEL, Statements
from .postgresql import PostgresStatements
from .sqlite import SQLiteStatements

__all__ = ["CLAIMED_COLUMNS", "INSERT_COLUMNS", "NOTIFY_CHANNEL", "Statements", "statements_for"]

# imported up front, not inside statements_for: the store asks for its statements at every enqueue
_VENDORS: dict[str, type[Statements]] = {"postgresql": PostgresStatements, "sqlite": SQLiteStatements}


def statements_for(using: str) -> Statements:
    """The statements for the database behind ``using``; ``ImproperlyConfigured`` for a
    database other than PostgreSQL and SQLite."""
    connection = connections[using]
    try:
        return _VENDORS[connection.vendor](using, connection)
    except KeyError:
        raise ImproperlyConfigured(f"jobs supports PostgreSQL and SQLite, not {connection.vendor}") from None
