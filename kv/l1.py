"""The in-process L1 cache: bounded in bytes, least recently used out first, short-lived."""

from __future__ import annotations

import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from . import clock

#: values of these types cannot be changed by the caller: L1 hands out the object itself
IMMUTABLE = (str, int, float, bool, type(None))
ENTRY_OVERHEAD = 100  # bytes counted per entry beyond its key and JSON text


#: how to copy a list or dict of JSON: for each item that is itself a list or dict, its index
#: or key and the plan of that item (an empty tuple: a shallow copy is a whole copy)
CopyPlan = tuple[tuple[Any, "CopyPlan"], ...]


def copy_plan(value: dict | list) -> CopyPlan:
    """The plan ``copy_json`` follows to copy ``value``, made once when L1 keeps it."""
    items = value.items() if value.__class__ is dict else enumerate(value)
    return tuple((name, copy_plan(item)) for name, item in items if item.__class__ in (dict, list))


def copy_json(value: Any, plan: CopyPlan) -> Any:
    """A deep copy of ``value``, a list or dict as ``json.loads`` makes them, along ``plan``:
    a shallow copy of each container, the strings, numbers and booleans shared (they cannot
    change). Several times cheaper than ``json.loads`` or ``copy.deepcopy``, which look at
    every item on each call."""
    copied = value.copy()
    for name, inner in plan:  # a flat list or dict inside (the common case) without a call
        copied[name] = copy_json(value[name], inner) if inner else value[name].copy()
    return copied


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

    A hit returns an immutable value as it is, and a fresh copy of a list or dict
    (``copy_json``; L1 keeps a copy of its own from the fill), so a caller can
    change what it got without changing the cache. ``generation`` rises with
    every invalidation: a fill that began (its database read) before an
    invalidation is dropped, so a slow reader never puts back a value a writer
    has just replaced.
    """

    def __init__(self, max_bytes: int, ttl: float) -> None:
        self.max_bytes = max_bytes
        self.ttl = ttl
        #: key -> (type, value, its copy plan or ``None`` for an immutable value, expiry, size,
        #: the key's own expire_at in epoch milliseconds or ``None``)
        self._entries: OrderedDict[str, tuple[str, Any, CopyPlan | None, float, int, int | None]] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()
        self.generation = 0
        _caches.add(self)

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
        type_, value, plan, expires, _, _ = entry
        if expires <= clock.monotonic():
            self.invalidate(key, bump=False)
            return None
        try:  # noqa: SIM105 (faster than contextlib.suppress on this hot path)
            self._entries.move_to_end(key)
        except KeyError:  # dropped by another thread meanwhile: still a valid read
            pass
        if plan is None:
            return type_, value
        return type_, copy_json(value, plan)

    def read(self, key: str) -> tuple[str, Any, int | None] | None:
        """``(type, value, expire_at)`` on a hit, ``expire_at`` the key's own (epoch
        milliseconds, ``None`` without expiry), as ``fill`` was told; ``None`` on a miss.
        The value is safe to change, as ``get``'s is."""
        entry = self._entries.get(key)
        if entry is None or entry[3] <= clock.monotonic():
            return None  # an expired entry is left to get() to drop
        type_, value, plan, _, _, expire_at = entry
        return type_, value if plan is None else copy_json(value, plan), expire_at

    def fill(self, key: str, type_: str, value: Any, text: str, ttl: float | None, generation: int,
             expire_at: int | None = None) -> None:
        """Keep ``key`` for ``min(self.ttl, ttl)`` seconds unless it was invalidated since ``generation``.

        ``value`` is what ``text`` (its JSON) decodes to; L1 keeps a copy of a list or dict,
        so the caller may go on changing ``value``. The bound counts ``text``'s bytes.
        ``expire_at`` is the key's expiry as the row holds it (for ``read``)."""
        lifetime = self.ttl if ttl is None else min(self.ttl, ttl)
        size = len(key.encode()) + len(text.encode()) + ENTRY_OVERHEAD
        if lifetime <= 0 or size > self.max_bytes or not _invalidations_arrive():
            return
        plan = None if isinstance(value, IMMUTABLE) else copy_plan(value)
        entry = (type_, value if plan is None else copy_json(value, plan), plan, clock.monotonic() + lifetime,
                 size, expire_at)
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

    def _forget_after_fork(self) -> None:
        """In a forked child: start empty, with a lock of its own. What the parent kept was
        kept while the parent's invalidations arrived; the child's own start only with its
        first miss (its watcher, its listener), and another thread of the parent may have
        held the lock at the fork."""
        self._lock = threading.Lock()
        self.generation += 1
        self._entries = OrderedDict()
        self._size = 0


#: every L1 of this process, emptied in a forked child (gunicorn --preload, multiprocessing)
_caches: weakref.WeakSet[L1Cache] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for cache in list(_caches):
        cache._forget_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)
