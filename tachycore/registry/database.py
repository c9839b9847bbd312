"""The registry on the site's database: the ``applicationPlugins`` table."""

from __future__ import annotations

import builtins
import logging
from typing import Any

from django.db import IntegrityError, router, transaction
from django.db.models import F
from django.utils import timezone

from tachycore.errors import InvalidPluginName, InvalidRecord, PluginAlreadyExists, PluginNotFound

from .base import BasePluginRegistry, PluginRecord, check_changes
from .validation import check_name, is_valid_name

logger = logging.getLogger("tachycore.registry")

_FIELDS = ("name", "package_name", "version", "enabled", "installed", "built_in", "options",
           "last_error", "generation", "created", "updated")


def _to_record(row: Any) -> PluginRecord:
    return PluginRecord(**{field: getattr(row, field) for field in _FIELDS})


class DatabaseRegistry(BasePluginRegistry):
    """Records as ``ApplicationPlugin`` rows; writes join the caller's transaction.

    A one-row table holds the registry version, raised in the same transaction
    as every write, so other processes can poll one integer.

    A row that breaks the record rules (a name with a ``/``, options that are no
    JSON object: only a hand-made row can) is left out of ``list()`` and ``get()``
    with a logged warning, so that the pages and commands over the registry keep
    working; :meth:`invalid_records` names such rows.
    """

    def __init__(self, using: str | None = None) -> None:
        self.using = using
        self._reported: set[tuple[str, str]] = set()

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
        records = [self._valid(row) for row in self._manager().order_by("name")]
        return [record for record in records if record is not None]

    def get(self, name: str) -> PluginRecord | None:
        if not is_valid_name(name):
            return None  # no plugin can have it: no query
        row = self._manager().filter(name=name).first()
        return self._valid(row) if row else None

    def invalid_records(self) -> builtins.list[tuple[str, str]]:
        found = []
        for row in self._manager().order_by("name"):
            try:
                _to_record(row).check()
            except (InvalidPluginName, InvalidRecord) as e:
                found.append((row.name, str(e)))
        return found

    def _valid(self, row: Any) -> PluginRecord | None:
        """The row as a record, or ``None`` (logged once per process) if it breaks the rules."""
        record = _to_record(row)
        try:
            record.check()
        except (InvalidPluginName, InvalidRecord) as e:
            if (row.name, str(e)) not in self._reported:
                self._reported.add((row.name, str(e)))
                logger.warning("plugin registry: row %r of table %s is skipped: %s",
                               row.name, row._meta.db_table, e)
            return None
        return record

    def add(self, record: PluginRecord) -> PluginRecord:
        record.check()
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
        check_name(name)
        with transaction.atomic(using=self._db(write=True)):
            deleted, _ = self._manager(write=True).filter(name=name).delete()
            if not deleted:
                raise PluginNotFound(name)
            self._bump()

    def restore(self, name: str, record: PluginRecord | None) -> None:
        """Put the row back exactly as ``record``, timestamps included."""
        check_name(name)
        if record is not None:
            record.check()
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
