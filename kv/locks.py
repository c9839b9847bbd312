"""The lock commands of ``KVStore`` (``lock``, ``unlock``, ``locked``): a key holding a token."""

from __future__ import annotations

import contextlib
import random
import secrets
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from . import clock, governed
from .errors import InvalidValue, LockTimeout
from .governed import current_plugin
from .reserved import writable_key
from .validation import expire_at, to_seconds

if TYPE_CHECKING:
    from .sql import CacheStatements

T = TypeVar("T")


class LockCommands:
    """Locks that only their owner's token releases; mixed into ``KVStore``."""

    def write(self, keys: tuple[str, ...] | list[str], statements: Callable[..., T], *args: Any) -> T:
        raise NotImplementedError

    def lock(self, key: str, ttl: Any) -> str | None:
        """Take the lock ``key`` for ``ttl`` seconds: a fresh token, or ``None`` if it is held."""
        if current_plugin() is not None:
            governed.check(governed.WRITE, "lock", key)
        key = writable_key(key)
        seconds = to_seconds(ttl, "ttl")
        if seconds <= 0:
            raise InvalidValue(f"a lock's ttl must be positive, got {ttl!r}")
        token = secrets.token_urlsafe(16)
        now = clock.now_ms()
        taken = self.write((key,), _lock, key, token, expire_at(now, seconds * 1000), now)
        return token if taken else None

    def unlock(self, key: str, token: str) -> bool:
        """Release the lock if ``token`` still holds it (and it has not expired)."""
        if current_plugin() is not None:
            governed.check(governed.WRITE, "unlock", key)
        key = writable_key(key)
        if not isinstance(token, str):
            raise InvalidValue(f"a lock token is a string, got {token!r}")
        return self.write((key,), _unlock, key, token, clock.now_ms())

    @contextlib.contextmanager
    def locked(self, key: str, ttl: Any, timeout: Any = None) -> Iterator[str]:
        """Hold the lock ``key`` inside the block, waiting up to ``timeout`` seconds for it
        (``None``: as long as it takes). Raises ``LockTimeout`` when it cannot."""
        deadline = None if timeout is None else time.monotonic() + to_seconds(timeout, "timeout")
        delay = 0.005
        while (token := self.lock(key, ttl)) is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise LockTimeout(f"lock {key!r} is still held after {timeout} s")
            pause = delay * (1 + random.random())
            if deadline is not None:
                pause = min(pause, max(0.0, deadline - time.monotonic()))
            time.sleep(pause)
            delay = min(delay * 2, 0.1)
        try:
            yield token
        finally:
            self.unlock(key, token)


def _lock(sql: CacheStatements, key: str, token: str, expire_at: int, now: int) -> bool:
    return sql.lock(key, token, expire_at, now)


def _unlock(sql: CacheStatements, key: str, token: str, now: int) -> bool:
    return sql.unlock(key, token, now)
