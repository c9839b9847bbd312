"""The plugin registry interface: where each plugin's persisted state lives."""

from __future__ import annotations

import abc
import builtins
import copy
import dataclasses
from datetime import datetime
from typing import Any

from asgiref.sync import sync_to_async
from django.utils import timezone

from tachycore.errors import InvalidRecord

from .validation import check_fields, check_name, fields_from_json

#: record fields a caller may change through ``update``
UPDATABLE_FIELDS = frozenset(
    {"package_name", "version", "enabled", "installed", "built_in", "options", "last_error", "generation"}
)


@dataclasses.dataclass
class PluginRecord:
    """One row of the registry (``applicationPlugins``), independent of the driver."""

    name: str
    package_name: str = ""
    version: str = ""
    enabled: bool = False
    installed: bool = False
    built_in: bool = False
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    last_error: str = ""
    #: raised by a reload or an options change: processes switch to a new instance
    generation: int = 0
    created: datetime | None = None
    updated: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict (datetimes as ISO 8601)."""
        data = dataclasses.asdict(self)
        for key in ("created", "updated"):
            data[key] = data[key].isoformat() if data[key] else None
        return data

    @classmethod
    def from_json(cls, data: Any) -> PluginRecord:
        """Build a record from :meth:`to_json` output, checking every field (``InvalidRecord``
        or ``InvalidPluginName`` names the one at fault)."""
        return cls(**fields_from_json(data))

    def check(self) -> None:
        """Raise ``InvalidPluginName`` or ``InvalidRecord`` unless every field holds its type."""
        check_name(self.name)
        check_fields(self.name, {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                                 if f.name != "name"})

    def copy(self) -> PluginRecord:
        return copy.deepcopy(self)


def check_changes(name: str, changes: dict[str, Any]) -> None:
    """Refuse changes to fields that do not exist or may not change, and values of the wrong
    type (``InvalidRecord``, a ``ValueError``)."""
    check_name(name)
    unknown = set(changes) - UPDATABLE_FIELDS
    if unknown:
        raise InvalidRecord(f"cannot update {', '.join(sorted(unknown))} of plugin {name!r}")
    check_fields(name, changes)


class BasePluginRegistry(abc.ABC):
    """Stores :class:`PluginRecord` rows by name.

    Every method returns copies: changing a returned record changes nothing
    stored. ``version()`` grows with every write, so another process can tell
    cheaply that it must read the registry again.
    """

    @abc.abstractmethod
    def list(self) -> list[PluginRecord]:
        """Every record, sorted by name."""

    @abc.abstractmethod
    def get(self, name: str) -> PluginRecord | None:
        """The record called ``name``, or ``None``."""

    @abc.abstractmethod
    def add(self, record: PluginRecord) -> PluginRecord:
        """Store a new record; raise ``PluginAlreadyExists`` if the name is taken."""

    @abc.abstractmethod
    def update(self, name: str, **changes: Any) -> PluginRecord:
        """Change fields of a record; raise ``PluginNotFound`` if there is none."""

    @abc.abstractmethod
    def remove(self, name: str) -> None:
        """Delete a record; raise ``PluginNotFound`` if there is none."""

    @abc.abstractmethod
    def version(self) -> int:
        """A number that changes whenever any record changes."""

    def invalid_records(self) -> builtins.list[tuple[str, str]]:
        """Records of the store that ``list()`` and ``get()`` leave out because they break the
        rules (a row inserted by hand): ``[(name, why)]``, read afresh. Drivers that refuse
        such a store as a whole, or cannot hold one, have none."""
        return []

    def lock(self) -> None:  # noqa: B027 (drivers without a shared store have nothing to lock)
        """Inside a transaction: hold the registry until it ends, so that operations of
        several processes run one after the other."""

    def flush(self) -> None:  # noqa: B027 (most drivers buffer nothing)
        """Persist buffered writes (only buffering drivers have any)."""

    def close(self) -> None:
        """Release what the driver holds; flushes first."""
        self.flush()

    def restore(self, name: str, record: PluginRecord | None) -> None:
        """Put ``name`` back as ``record`` (``None``: absent); the manager's rollback."""
        current = self.get(name)
        if record is None:
            if current is not None:
                self.remove(name)
        elif current is None:
            self.add(record)
        else:
            self.update(name, **{field: getattr(record, field) for field in UPDATABLE_FIELDS})

    async def alist(self) -> builtins.list[PluginRecord]:
        return await sync_to_async(self.list)()

    async def aget(self, name: str) -> PluginRecord | None:
        return await sync_to_async(self.get)(name)

    async def aadd(self, record: PluginRecord) -> PluginRecord:
        return await sync_to_async(self.add)(record)

    async def aupdate(self, name: str, **changes: Any) -> PluginRecord:
        return await sync_to_async(self.update)(name, **changes)

    async def aremove(self, name: str) -> None:
        await sync_to_async(self.remove)(name)

    async def aflush(self) -> None:
        await sync_to_async(self.flush)()


def stamp_new(record: PluginRecord) -> PluginRecord:
    """Return a copy of ``record`` with ``created`` and ``updated`` set to now."""
    record = record.copy()
    now = timezone.now()
    record.created = record.created or now
    record.updated = now
    return record
