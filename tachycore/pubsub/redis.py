"""Sync messages over Redis pub/sub (for sites that run Redis anyway)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from .base import BasePubSub, MessageHandler, encode


def _retries_at_once(times: int) -> Any:
    """redis-py's retry policy of ``times`` retries without waiting between them."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return Retry(NoBackoff(), times)


class RedisPubSub(BasePubSub):
    """PUBLISH on a shared client; SUBSCRIBE on a dedicated connection.

    Needs the ``redis`` package (the ``redis`` extra). Options: ``URL``
    (default ``redis://127.0.0.1:6379/0``) and ``CHANNEL``. Its keepalive is a
    ``PING`` on the subscribed connection after each silent round.
    """

    def __init__(self, node_id: str, on_message: MessageHandler, on_reconnect: Callable[[], None],
                 url: str = "redis://127.0.0.1:6379/0", channel: str = "tachycore") -> None:
        super().__init__(node_id, on_message, on_reconnect)
        import redis

        self._redis = redis
        self.url = url
        self.channel = channel
        # a publish runs in a request after commit: it must not hang on an unreachable server
        # (redis-py's default retries back off for seconds); one retry at once replaces a
        # pooled connection that a restart of Redis closed
        self._client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2,
                                            retry=_retries_at_once(1))
        self._pubsub: Any = None
        self._listen_client: Any = None

    def publish(self, channel: str, payload: Any) -> None:
        self._client.publish(self.channel, encode(channel, payload, self.node_id))

    server_name = "Redis"

    def _connect(self) -> None:
        # kept on self: a garbage-collected client closes its pool, and the pubsub's socket with it;
        # no retries: redis-py would reconnect and subscribe again on its own, and the messages
        # sent meanwhile would be lost without on_disconnect or on_reconnect
        self._listen_client = self._redis.Redis.from_url(
            self.url, client_name=f"tachycore-listen-{self.node_id}", retry=_retries_at_once(0),
            socket_connect_timeout=2, socket_keepalive=True,
        )
        self._pubsub = self._listen_client.pubsub()
        self._pubsub.subscribe(self.channel)
        # listening only once the server confirmed: a message published before that is lost
        deadline = time.monotonic() + 5
        while (message := self._pubsub.get_message(timeout=1.0)) is None or message["type"] != "subscribe":
            if time.monotonic() > deadline:
                raise self._redis.ConnectionError("no SUBSCRIBE confirmation within 5 s")

    def _receive(self, timeout: float) -> list[str]:
        message = self._pubsub.get_message(timeout=timeout)
        if message and message["type"] == "pong":
            self._heard()
        if not message or message["type"] != "message":
            return []
        data = message["data"]
        # undecodable bytes become a malformed message, which _deliver drops
        return [data.decode(errors="replace") if isinstance(data, bytes) else data]

    def _ping(self) -> None:
        # sent, not awaited: the answer comes as a "pong" message through _receive
        self._pubsub.ping()

    def _close(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        client, self._listen_client = self._listen_client, None
        for closable in (pubsub, client):
            if closable is not None:
                with contextlib.suppress(Exception):  # closing a broken connection
                    closable.close()
