"""A registry in one JSON file: for sites without a database table for it."""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from django.utils import timezone

from tachycore.errors import PluginAlreadyExists, PluginNotFound, RegistryError

from .base import BasePluginRegistry, PluginRecord, check_changes, stamp_new


class JSONFileRegistry(BasePluginRegistry):
    """Records in ``{"version": n, "plugins": [...]}`` at ``path``.

    Writers of every process take an exclusive ``flock`` on ``<path>.lock``;
    the file is replaced atomically, so a reader never sees half a write.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def _read(self) -> tuple[int, dict[str, PluginRecord]]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return 0, {}
        except OSError as e:
            raise RegistryError(f"cannot read the plugin registry {self.path}: {e}") from e
        try:
            data = json.loads(text)
            records = [PluginRecord.from_json(item) for item in data["plugins"]]
            return int(data["version"]), {record.name: record for record in records}
        except (ValueError, KeyError, TypeError) as e:
            raise RegistryError(f"the plugin registry {self.path} is not valid: {e}") from e

    def _write(self, version: int, records: dict[str, PluginRecord]) -> None:
        data = {"version": version, "plugins": [records[name].to_json() for name in sorted(records)]}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f, indent=2)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    @contextlib.contextmanager
    def _locked(self):
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            lock = open(f"{self.path}.lock", "a")  # noqa: SIM115 (closed below, after the write)
        except OSError as e:
            raise RegistryError(f"cannot write the plugin registry {self.path}: {e}") from e
        with lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                version, records = self._read()
                yield records
                try:
                    self._write(version + 1, records)
                except OSError as e:
                    raise RegistryError(f"cannot write the plugin registry {self.path}: {e}") from e
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def list(self) -> list[PluginRecord]:
        records = self._read()[1]
        return [records[name] for name in sorted(records)]

    def get(self, name: str) -> PluginRecord | None:
        return self._read()[1].get(name)

    def add(self, record: PluginRecord) -> PluginRecord:
        with self._locked() as records:
            if record.name in records:
                raise PluginAlreadyExists(record.name)
            records[record.name] = stamp_new(record)
        return records[record.name].copy()

    def update(self, name: str, **changes: Any) -> PluginRecord:
        check_changes(name, changes)
        with self._locked() as records:
            if name not in records:
                raise PluginNotFound(name)
            records[name] = dataclasses.replace(records[name], **changes, updated=timezone.now())
        return records[name].copy()

    def remove(self, name: str) -> None:
        with self._locked() as records:
            if records.pop(name, None) is None:
                raise PluginNotFound(name)

    def restore(self, name: str, record: PluginRecord | None) -> None:
        """Put the record back exactly as given (``None``: absent)."""
        with self._locked() as records:
            if record is None:
                records.pop(name, None)
            else:
                records[name] = record.copy()

    def version(self) -> int:
        return self._read()[0]
