"""Maintenance mode: the whole site answers 503 with a message, to everyone but staff."""

from __future__ import annotations

import contextlib
import dataclasses
from datetime import datetime

from django.db import DatabaseError, transaction
from django.db.models import F
from django.utils import timezone

from . import sync
from .models import SiteState
from .runtime import runtime
from .state import WatchedState

CHANNEL = "maintenance-changed"


@dataclasses.dataclass(frozen=True)
class MaintenanceState:
    enabled: bool = False
    message: str = ""
    changed: datetime | None = None


class MaintenanceMode(WatchedState):
    """This process's view of ``tachycore_site_state``; followed like plugin states."""

    def __init__(self) -> None:
        super().__init__()
        self._state = MaintenanceState()

    def _read_version(self) -> int:
        return SiteState.objects.filter(pk=1).values_list("version", flat=True).first() or 0

    def _load(self, version: int) -> None:
        row = SiteState.objects.filter(pk=1).first()
        state = MaintenanceState(row.maintenance, row.message, row.changed) if row else MaintenanceState()
        picked_up = state.enabled != self._state.enabled
        self._state, self._version = state, version
        if picked_up:
            runtime.supervisor.set_maintenance(state.enabled)

    def current(self) -> MaintenanceState:
        """The maintenance state as of the last check (see ``check_interval``)."""
        with contextlib.suppress(DatabaseError):  # before migrate: no maintenance
            self.refresh()
        return self._state

    def turn_on(self, message: str = "") -> MaintenanceState:
        """Put the whole site in maintenance; every process follows."""
        return self._set(True, message)

    def turn_off(self) -> MaintenanceState:
        return self._set(False, "")

    def _set(self, enabled: bool, message: str) -> MaintenanceState:
        with transaction.atomic():
            now = timezone.now()
            values = {"maintenance": enabled, "message": message, "changed": now}
            SiteState.objects.bulk_create([SiteState(pk=1)], ignore_conflicts=True)
            SiteState.objects.filter(pk=1).update(version=F("version") + 1, **values)
            sync.publish(CHANNEL, {"enabled": enabled})
        self.reread()
        return self._state


maintenance = MaintenanceMode()
