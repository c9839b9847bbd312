"""A registry that serves from memory and writes through to a persistent driver."""

from __future__ import annotations

import atexit
import builtins
import copy
import dataclasses
import logging
import threading
import time
import weakref
from typing import Any

from tachycore.errors import RegistryFlushError

from .base import BasePluginRegistry, PluginRecord
from .memory import MemoryRegistry

logger = logging.getLogger("tachycore.registry")


class DualWriteRegistry(BasePluginRegistry):
    """Reads from memory, writes memory first, then flushes to ``persistent``.

    Memory is hydrated from the persistent driver on first use, and again when
    the persistent version moves (another process wrote) while nothing is
    waiting to be flushed. A write whose flush fails stays pending: every later
    write and every :meth:`flush` tries again, ``flush()`` raises
    :class:`RegistryFlushError` while anything is still pending, and the
    process flushes once more at exit. Nothing is dropped silently.
    """

    def __init__(self, persistent: BasePluginRegistry, retries: int | None = None,
                 retry_delay: float = 0.05) -> None:
        self.persistent = persistent
        self.memory = MemoryRegistry()
        self.retries = retries
        self.retry_delay = retry_delay
        #: name -> ("put", record or None for absent) | ("fields", {field: value})
        self._pending: dict[str, tuple[str, Any]] = {}
        self._lock = threading.RLock()
        self._hydrated = False
        self._seen_version: int | None = None
        self.last_flush_error: BaseException | None = None
        _open_registries.add(self)

    # -- reads ---------------------------------------------------------------------------

    def _hydrate(self) -> None:
        with self._lock:
            if self._hydrated:
                return
            self._seen_version = self.persistent.version()
            self.memory.replace_all(self.persistent.list())
            self._hydrated = True

    def list(self) -> list[PluginRecord]:
        self._hydrate()
        return self.memory.list()

    def get(self, name: str) -> PluginRecord | None:
        self._hydrate()
        return self.memory.get(name)

    def invalid_records(self) -> builtins.list[tuple[str, str]]:
        return self.persistent.invalid_records()

    def version(self) -> int:
        with self._lock:
            self._hydrate()
            if not self._pending:
                current = self.persistent.version()
                if current != self._seen_version:
                    self._seen_version = current
                    self.memory.replace_all(self.persistent.list())
            return self.memory.version()

    # -- writes --------------------------------------------------------------------------

    def add(self, record: PluginRecord) -> PluginRecord:
        with self._lock:
            self._hydrate()
            added = self.memory.add(record)
            self._pending[added.name] = ("put", added.copy())
            self._try_flush()
            return added

    def update(self, name: str, **changes: Any) -> PluginRecord:
        with self._lock:
            self._hydrate()
            updated = self.memory.update(name, **changes)
            kind, pending = self._pending.get(name, ("fields", {}))
            # only the fields this process changed go out, so that a flush that comes late
            # does not overwrite what another process changed meanwhile
            self._pending[name] = ("put", updated.copy()) if kind == "put" else (
                "fields", {**pending, **copy.deepcopy(changes)})
            self._try_flush()
            return updated

    def remove(self, name: str) -> None:
        with self._lock:
            self._hydrate()
            self.memory.remove(name)
            self._pending[name] = ("put", None)
            self._try_flush()

    def restore(self, name: str, record: PluginRecord | None) -> None:
        with self._lock:
            self._hydrate()
            self.memory.restore(name, record)
            self._pending[name] = ("put", record.copy() if record else None)
            self._try_flush()

    def lock(self) -> None:
        self.persistent.lock()

    # -- flushing ------------------------------------------------------------------------

    @property
    def pending(self) -> builtins.list[str]:
        """Names whose last change has not reached the persistent driver yet."""
        with self._lock:
            return sorted(self._pending)

    def _flush_pending(self) -> None:
        for name, (kind, pending) in list(self._pending.items()):
            if kind == "put":
                self.persistent.restore(name, pending)
            else:
                stored, mine = self.persistent.get(name), self.memory.get(name)
                if stored is None or mine is None:
                    self.persistent.restore(name, mine)
                else:  # this process's fields over the stored record, with the time memory shows
                    self.persistent.restore(name, dataclasses.replace(stored, **pending, updated=mine.updated))
            del self._pending[name]

    def _try_flush(self) -> None:
        try:
            self._flush_pending()
            self.last_flush_error = None
        except Exception as e:
            self.last_flush_error = e
            logger.warning("plugin registry: flush to %s failed, will retry: %s",
                           type(self.persistent).__name__, e)

    def flush(self) -> None:
        """Persist everything pending, retrying; raise ``RegistryFlushError`` if it cannot."""
        from tachycore.conf import tachycore_settings

        retries = self.retries or tachycore_settings.FLUSH_RETRIES
        with self._lock:
            for attempt in range(retries):
                if not self._pending:
                    return
                self._try_flush()
                if not self._pending:
                    return
                time.sleep(self.retry_delay * (2**attempt))
            names = ", ".join(sorted(self._pending))
            raise RegistryFlushError(
                f"plugin registry changes to {names} could not be written to "
                f"{type(self.persistent).__name__} after {retries} tries: {self.last_flush_error}"
            ) from self.last_flush_error



_open_registries: weakref.WeakSet[DualWriteRegistry] = weakref.WeakSet()


@atexit.register
def _flush_at_exit() -> None:
    for registry in list(_open_registries):
        try:
            registry.flush()
        except RegistryFlushError as e:
            logger.error("%s", e)
