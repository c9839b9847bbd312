"""The registry on the site's database: the ``applicationPlugins`` table."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, router, transaction
from django.db.models import F
from django.utils import timezone

from tachycore.errors import PluginAlreadyExists, PluginNotFound

from .base import BasePluginRegistry, PluginRecord, check_changes

_FIELDS = ("name", "package_name", "version", "enabled", "installed", "built_in", "options",
           "last_error", "created", "updated")


def _to_record(row: Any) -> PluginRecord:
    return PluginRecord(**{field: getattr(row, field) for field in _FIELDS})


class DatabaseRegistry(BasePluginRegistry):
    """Records as ``ApplicationPlugin`` rows; writes join the caller's transaction.

    A one-row table holds the registry version, raised in the same transaction
    as every write, so other processes can poll one integer.
    """

    def __init__(self, using: str | None = None) -> None:
        self.using = using

    def _db(self, write: bool = False) -> str:
        from tachycore.models import ApplicationPlugin

        if self.using:
            return self.using
        route = router.db_for_write if write else router.db_for_read
        return route(ApplicationPlugin)

    def _manager(self, write: bool = False):
        from tachycore.models import ApplicationPlugin

        return ApplicationPlugin.objects.using(self._db(write))

    def list(self) -> list[PluginRecord]:
        return [_to_record(row) for row in self._manager().order_by("name")]

    def get(self, name: str) -> PluginRecord | None:
        row = self._manager().filter(name=name).first()
        return _to_record(row) if row else None

    def add(self, record: PluginRecord) -> PluginRecord:
        values = {field: getattr(record, field) for field in _FIELDS[1:-2]}
        try:
            with transaction.atomic(using=self._db(write=True)):
                row = self._manager(write=True).create(name=record.name, **values)
                self._bump()
        except IntegrityError:
            raise PluginAlreadyExists(record.name) from None
        return _to_record(row)

    def update(self, name: str, **changes: Any) -> PluginRecord:
        check_changes(name, changes)
        with transaction.atomic(using=self._db(write=True)):
            row = self._manager(write=True).select_for_update().filter(name=name).first()
            if row is None:
                raise PluginNotFound(name)
            for field, value in changes.items():
                setattr(row, field, value)
            row.save()
            self._bump()
        return _to_record(row)

    def remove(self, name: str) -> None:
        with transaction.atomic(using=self._db(write=True)):
            deleted, _ = self._manager(write=True).filter(name=name).delete()
            if not deleted:
                raise PluginNotFound(name)
            self._bump()

    def restore(self, name: str, record: PluginRecord | None) -> None:
        """Put the row back exactly as ``record``, timestamps included."""
        with transaction.atomic(using=self._db(write=True)):
            rows = self._manager(write=True).filter(name=name)
            if record is None:
                rows.delete()
            else:
                values = {field: getattr(record, field) for field in _FIELDS[1:-2]}
                stamps = {"created": record.created or timezone.now(), "updated": record.updated or timezone.now()}
                # QuerySet.update() leaves auto_now alone, so the timestamps are kept as given
                if not rows.update(**values, **stamps):
                    self._manager(write=True).create(name=name, **values)
                    rows.update(**stamps)
            self._bump()

    def version(self) -> int:
        from tachycore.models import RegistryState

        value = (
            RegistryState.objects.using(self._db()).filter(pk=1).values_list("version", flat=True).first()
        )
        return value or 0

    def lock(self) -> None:
        """Lock the version row until the transaction ends (SQLite's write lock does it there)."""
        from tachycore.models import RegistryState

        db = self._db(write=True)
        RegistryState.objects.using(db).bulk_create([RegistryState(pk=1)], ignore_conflicts=True)
        list(RegistryState.objects.using(db).select_for_update().filter(pk=1))

    def _bump(self) -> None:
        from tachycore.models import RegistryState

        db = self._db(write=True)
        if not RegistryState.objects.using(db).filter(pk=1).update(version=F("version") + 1):
            RegistryState.objects.using(db).bulk_create([RegistryState(pk=1)], ignore_conflicts=True)
            RegistryState.objects.using(db).filter(pk=1).update(version=F("version") + 1)
