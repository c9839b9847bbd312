"""Sync messages over PostgreSQL LISTEN/NOTIFY."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
from django.db import connections
from psycopg import sql

from ..context import builtin_statements
from .base import BasePubSub, MessageHandler, encode

CHANNEL = "tachycore"
#: Django's connection parameters that are not libpq's
_DJANGO_ONLY = ("cursor_factory", "context", "prepare_threshold")


def listen_connection(using: str, channel: str, application_name: str) -> psycopg.Connection:
    """A new autocommit connection to the database ``using`` (not one of Django's: it stays
    in ``LISTEN`` for its life), listening on ``channel``."""
    params = connections[using].get_connection_params()
    for key in _DJANGO_ONLY:
        params.pop(key, None)
    params["application_name"] = application_name[:63]
    # a partitioned network must end in an error, not in a wait of many minutes: the
    # listener then reconnects by itself (its watchdog has declared it lost already)
    params.setdefault("connect_timeout", 5)
    params.setdefault("tcp_user_timeout", 5000)
    conn = psycopg.connect(**params, autocommit=True)
    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
    return conn


class PostgresPubSub(BasePubSub):
    """NOTIFY through the site's own connection; LISTEN on a dedicated one.

    ``NOTIFY`` is sent by ``tachycore.sync.publish`` after commit, so it is
    delivered only if the change it announces is visible. The listener holds its
    own autocommit connection (``application_name`` ``tachycore-listen <node>``),
    and reconnects with backoff when it drops; ``on_reconnect`` then lets
    receivers re-read what they may have missed. Its keepalive is a ``SELECT 1``
    on that connection after each silent round.
    """

    def __init__(self, node_id: str, on_message: MessageHandler, on_reconnect: Callable[[], None],
                 using: str = "default", channel: str = CHANNEL) -> None:
        super().__init__(node_id, on_message, on_reconnect)
        self.using = using
        self.channel = channel
        self._conn: psycopg.Connection | None = None

    def publish(self, channel: str, payload: Any) -> None:
        text = encode(channel, payload, self.node_id)
        with builtin_statements(), connections[self.using].cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", [self.channel, text])

    server_name = "PostgreSQL"

    def _connect(self) -> None:
        self._conn = listen_connection(self.using, self.channel, f"tachycore-listen {self.node_id}")

    def _receive(self, timeout: float) -> Iterator[str]:
        # a generator: each notification is handed over as it arrives, not at the timeout
        conn = self._conn
        assert conn is not None, "_receive() before _connect()"
        return (notify.payload for notify in conn.notifies(timeout=timeout))

    def _ping(self) -> None:
        # notifications that arrive meanwhile wait in psycopg's backlog for the next round
        conn = self._conn
        assert conn is not None, "_ping() before _connect()"
        conn.execute("SELECT 1")
        self._heard()

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()
