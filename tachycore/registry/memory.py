"""A registry kept in this process's memory: for tests and as the dual-write front."""

from __future__ import annotations

import builtins
import dataclasses
import threading
from typing import Any

from django.utils import timezone

from tachycore.errors import PluginAlreadyExists, PluginNotFound

from .base import BasePluginRegistry, PluginRecord, check_changes, stamp_new
from .validation import check_name


class MemoryRegistry(BasePluginRegistry):
    """Records in a dict; lost when the process ends."""

    def __init__(self, records: list[PluginRecord] | None = None) -> None:
        self._lock = threading.RLock()
        self._records: dict[str, PluginRecord] = {}
        self._version = 0
        self.replace_all(records or [])

    def list(self) -> list[PluginRecord]:
        with self._lock:
            return [self._records[name].copy() for name in sorted(self._records)]

    def get(self, name: str) -> PluginRecord | None:
        with self._lock:
            record = self._records.get(name) if isinstance(name, str) else None
            return record.copy() if record else None

    def add(self, record: PluginRecord) -> PluginRecord:
        record.check()
        with self._lock:
            if record.name in self._records:
                raise PluginAlreadyExists(record.name)
            self._records[record.name] = stamp_new(record)
            self._version += 1
            return self._records[record.name].copy()

    def update(self, name: str, **changes: Any) -> PluginRecord:
        check_changes(name, changes)
        with self._lock:
            if name not in self._records:
                raise PluginNotFound(name)
            record = dataclasses.replace(self._records[name].copy(), **changes)
            record.updated = timezone.now()
            self._records[name] = record
            self._version += 1
            return record.copy()

    def remove(self, name: str) -> None:
        check_name(name)
        with self._lock:
            if self._records.pop(name, None) is None:
                raise PluginNotFound(name)
            self._version += 1

    def version(self) -> int:
        with self._lock:
            return self._version

    def replace_all(self, records: builtins.list[PluginRecord]) -> None:
        """Replace every record at once (the dual-write driver hydrates with it)."""
        for record in records:
            record.check()
        with self._lock:
            self._records = {record.name: record.copy() for record in records}
            self._version += 1

    def restore(self, name: str, record: PluginRecord | None) -> None:
        check_name(name)
        if record is not None:
            record.check()
        with self._lock:
            if record is None:
                self._records.pop(name, None)
            else:
                self._records[name] = record.copy()
            self._version += 1
