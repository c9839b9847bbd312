"""The in-process L1 cache: bounded in bytes, least recently used out first, short-lived."""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from . import clock

#: values of these types cannot be changed by the caller: L1 hands out the object itself
IMMUTABLE = (str, int, float, bool, type(None))
ENTRY_OVERHEAD = 100  # bytes counted per entry beyond its key and JSON text


def _always() -> bool:
    return True


#: whether other processes' invalidations reach this one now; ``KvConfig.ready()`` installs
#: ``kv.receivers.invalidations_arrive`` (``follow_invalidations``)
_invalidations_arrive: Callable[[], bool] = _always


def follow_invalidations(probe: Callable[[], bool]) -> None:
    """Fill L1 only while ``probe()`` says invalidations from other processes arrive.

    The other half of the switch is event-driven: whoever loses the invalidations
    clears every L1 at once (``kv.receivers.flush_l1`` on the sync listener's
    disconnect), so a hit costs nothing more; the probe runs on a miss only, beside
    the database read it follows.
    """
    global _invalidations_arrive
    _invalidations_arrive = probe


class L1Cache:
    """Maps a key to its type and value for at most ``ttl`` seconds.

    A hit returns an immutable value as it is, and a list or dict rebuilt from
    its JSON text, so a caller can change what it got without changing the
    cache. ``generation`` rises with every invalidation: a fill that began (its
    database read) before an invalidation is dropped, so a slow reader never
    puts back a value a writer has just replaced.
    """

    def __init__(self, max_bytes: int, ttl: float) -> None:
        self.max_bytes = max_bytes
        self.ttl = ttl
        # type, value (immutable) or JSON text, monotonic end, size, the key's expire_at (or None)
        self._entries: OrderedDict[str, tuple[str, Any, str | None, float, int, int | None]] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()
        self.generation = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size(self) -> int:
        return self._size

    def get(self, key: str) -> tuple[str, Any] | None:
        """``(type, value)`` on a hit, ``None`` on a miss."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        type_, value, text, expires, _, _ = entry
        if expires <= clock.monotonic():
            self.invalidate(key, bump=False)
            return None
        try:  # noqa: SIM105 (faster than contextlib.suppress on this hot path)
            self._entries.move_to_end(key)
        except KeyError:  # dropped by another thread meanwhile: still a valid read
            pass
        if text is not None:
            return type_, json.loads(text)
        return type_, value

    def read(self, key: str) -> tuple[str, Any, int | None] | None:
        """``(type, value, expire_at)`` on a hit, ``expire_at`` the key's own (epoch
        milliseconds, ``None`` without expiry), as ``fill`` was told; ``None`` on a miss."""
        entry = self._entries.get(key)
        if entry is None or entry[3] <= clock.monotonic():
            return None  # an expired entry is left to get() to drop
        type_, value, text, _, _, expire_at = entry
        return type_, value if text is None else json.loads(text), expire_at

    def fill(self, key: str, type_: str, value: Any, text: str, ttl: float | None, generation: int,
             expire_at: int | None = None) -> None:
        """Keep ``key`` for ``min(self.ttl, ttl)`` seconds unless it was invalidated since
        ``generation``; ``expire_at`` is the key's expiry as the row holds it (for ``read``)."""
        lifetime = self.ttl if ttl is None else min(self.ttl, ttl)
        size = len(key.encode()) + len(text.encode()) + ENTRY_OVERHEAD
        if lifetime <= 0 or size > self.max_bytes or not _invalidations_arrive():
            return
        entry = (type_, value if isinstance(value, IMMUTABLE) else None,
                 None if isinstance(value, IMMUTABLE) else text, clock.monotonic() + lifetime, size, expire_at)
        with self._lock:
            if generation != self.generation:
                return
            old = self._entries.pop(key, None)
            if old is not None:
                self._size -= old[4]
            self._entries[key] = entry
            self._size += size
            while self._size > self.max_bytes:
                _, dropped = self._entries.popitem(last=False)
                self._size -= dropped[4]

    def invalidate(self, *keys: str, bump: bool = True) -> None:
        with self._lock:
            if bump:
                self.generation += 1
            for key in keys:
                old = self._entries.pop(key, None)
                if old is not None:
                    self._size -= old[4]

    def clear(self) -> None:
        with self._lock:
            self.generation += 1
            self._entries.clear()
            self._size = 0
