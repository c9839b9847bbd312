"""Sync messages over Redis pub/sub (for sites that run Redis anyway)."""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import Callable
from typing import Any

from .base import BasePubSub, MessageHandler, encode

logger = logging.getLogger("tachycore.sync")


class RedisPubSub(BasePubSub):
    """PUBLISH on a shared client; SUBSCRIBE on a dedicated connection.

    Needs the ``redis`` package (the ``redis`` extra). Options: ``URL``
    (default ``redis://127.0.0.1:6379/0``) and ``CHANNEL``.
    """

    def __init__(self, node_id: str, on_message: MessageHandler, on_reconnect: Callable[[], None],
                 url: str = "redis://127.0.0.1:6379/0", channel: str = "tachycore") -> None:
        super().__init__(node_id, on_message, on_reconnect)
        import redis

        self._redis = redis
        self.url = url
        self.channel = channel
        self._client = redis.Redis.from_url(url)
        self._pubsub = None

    def publish(self, channel: str, payload: Any) -> None:
        self._client.publish(self.channel, encode(channel, payload, self.node_id))

    def _listen(self) -> None:
        delay = 0.1
        first = True
        while not self._stop.is_set():
            try:
                client = self._redis.Redis.from_url(self.url, client_name=f"tachycore-listen-{self.node_id}")
                self._pubsub = client.pubsub(ignore_subscribe_messages=True)
                self._pubsub.subscribe(self.channel)
                self._listening.set()
                if not first:
                    self._reconnected()
                first, delay = False, 0.1
                while not self._stop.is_set():
                    message = self._pubsub.get_message(timeout=1.0)
                    if message and message["type"] == "message":
                        data = message["data"]
                        # undecodable bytes become a malformed message, dropped by _deliver
                        self._deliver(data.decode(errors="replace") if isinstance(data, bytes) else data)
            except Exception as e:  # noqa: BLE001 - redis-py raises several kinds when stop() closes the socket
                self._listening.clear()
                if self._stop.is_set():
                    break
                logger.warning("sync listener lost its Redis connection (%s); reconnecting", e)
                first = False
                self._stop.wait(delay * (1 + random.random()))
                delay = min(delay * 2, 5.0)
            finally:
                self._listening.clear()
                self._close()

    def _close(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(Exception):  # closing a broken connection
                pubsub.close()
