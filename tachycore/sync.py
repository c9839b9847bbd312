"""Sync messages between the processes of a site.

``publish(channel, payload)`` sends after the current transaction commits (at
once outside one); ``subscribe(channel, callback)`` receives what every *other*
process publishes. A message can be lost (a listener reconnecting), so a
receiver should treat it as a hint to re-read the truth from the database,
and also re-read after :func:`on_reconnect`; one that caches should stop trusting
its copy at :func:`on_disconnect`. Plugins get the messages of the
channel ``plugin:<name>`` in ``Plugin.handle_sync_message``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import transaction

from .pubsub.base import encode
from .runtime import runtime

__all__ = ["on_disconnect", "on_reconnect", "publish", "subscribe", "unsubscribe"]


def publish(channel: str, payload: Any = None, *, using: str | None = None) -> None:
    """Send ``payload`` (JSON) on ``channel`` to every other process, after commit.

    Raises ``SyncMessageError`` at once for a payload that is not JSON or too large.
    """
    encode(channel, payload, "")  # refuse bad payloads now, not after commit
    transaction.on_commit(lambda: runtime.publish(channel, payload), using=using)


def subscribe(channel: str, callback: Callable[[Any], None]) -> None:
    """Call ``callback(payload)`` on the listener thread for each message from another process."""
    runtime.subscribe(channel, callback)


def unsubscribe(channel: str, callback: Callable[[Any], None]) -> None:
    runtime.unsubscribe(channel, callback)


def on_reconnect(callback: Callable[[], None]) -> None:
    """Call ``callback()`` after the listener got its connection back (messages may be lost)."""
    runtime.on_reconnect(callback)


def on_disconnect(callback: Callable[[], None]) -> None:
    """Call ``callback()`` as soon as the listener is not live any more: from then until
    :func:`on_reconnect`, messages of other processes may not arrive."""
    runtime.on_disconnect(callback)
