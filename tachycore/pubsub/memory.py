"""In-process delivery: for a single process, and for tests of several nodes in one process."""

from __future__ import annotations

import math
import threading
import weakref
from typing import Any

from .base import BasePubSub, encode


class MemoryPubSub(BasePubSub):
    """Delivers to the other adapters of this Python process only.

    One process has one node, so in production it delivers nothing: it is the
    default where no cross-process channel exists (SQLite), and processes then
    rely on the version check (``STATE_CHECK_INTERVAL``). Tests create several
    adapters with different node ids to stand for several processes.
    """

    cross_process = False
    #: no server to hear from: live from start() to stop()
    stall_after = math.inf
    _hub: weakref.WeakSet[MemoryPubSub] = weakref.WeakSet()
    _hub_lock = threading.Lock()

    @property
    def has_audience(self) -> bool:
        hub = self._hub
        size = len(hub)  # a WeakSet's len() runs Python code: once, as every kv write asks
        # one process, one adapter (production): nobody else to tell, decided by the size alone
        return size > 1 or (size == 1 and self not in hub)

    def publish(self, channel: str, payload: Any) -> None:
        text = encode(channel, payload, self.node_id)
        with self._hub_lock:
            receivers = [adapter for adapter in self._hub if adapter is not self] if len(self._hub) > 1 else ()
        for adapter in receivers:
            if adapter.listening:
                adapter._deliver(text)

    def start(self) -> None:
        with self._hub_lock:
            self._hub.add(self)
        self._listening.set()

    def stop(self, timeout: float = 5) -> None:
        with self._hub_lock:
            self._hub.discard(self)
        self._listening.clear()
