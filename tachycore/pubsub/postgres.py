"""Sync messages over PostgreSQL LISTEN/NOTIFY."""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import Callable
from typing import Any

import psycopg
from django.db import connections

from .base import BasePubSub, MessageHandler, encode

logger = logging.getLogger("tachycore.sync")

CHANNEL = "tachycore"
#: Django's connection parameters that are not libpq's
_DJANGO_ONLY = ("cursor_factory", "context", "prepare_threshold")


class PostgresPubSub(BasePubSub):
    """NOTIFY through the site's own connection; LISTEN on a dedicated one.

    ``NOTIFY`` is sent by ``tachycore.sync.publish`` after commit, so it is
    delivered only if the change it announces is visible. The listener holds its
    own autocommit connection (``application_name`` ``tachycore-listen <node>``),
    and reconnects with backoff when it drops; ``on_reconnect`` then lets
    receivers re-read what they may have missed.
    """

    def __init__(self, node_id: str, on_message: MessageHandler, on_reconnect: Callable[[], None],
                 using: str = "default", channel: str = CHANNEL) -> None:
        super().__init__(node_id, on_message, on_reconnect)
        self.using = using
        self.channel = channel
        self._conn: psycopg.Connection | None = None

    def publish(self, channel: str, payload: Any) -> None:
        text = encode(channel, payload, self.node_id)
        with connections[self.using].cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", [self.channel, text])

    def _connect(self) -> psycopg.Connection:
        params = connections[self.using].get_connection_params()
        for key in _DJANGO_ONLY:
            params.pop(key, None)
        params["application_name"] = f"tachycore-listen {self.node_id}"[:63]
        conn = psycopg.connect(**params, autocommit=True)
        conn.execute(f'LISTEN "{self.channel}"')
        return conn

    def _listen(self) -> None:
        delay = 0.1
        first = True
        while not self._stop.is_set():
            try:
                self._conn = self._connect()
                self._listening.set()
                if not first:
                    self._reconnected()
                first, delay = False, 0.1
                while not self._stop.is_set():
                    for notify in self._conn.notifies(timeout=1.0):
                        self._deliver(notify.payload)
            except psycopg.Error as e:
                self._listening.clear()
                if self._stop.is_set():
                    break
                logger.warning("sync listener lost its PostgreSQL connection (%s); reconnecting", e)
                first = False
                self._stop.wait(delay * (1 + random.random()))
                delay = min(delay * 2, 5.0)
            finally:
                self._listening.clear()
                self._close()

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()
