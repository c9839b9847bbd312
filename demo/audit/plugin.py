from typing import Any

import tachycore
from tachycore.plugins import Plugin

from .protocols import AuditLog

#: the most events ``list_recent`` returns
MAX_RECENT = 100


class AuditPlugin(Plugin):
    """Keeps a log of what the other demo plugins do; `notes` depends on it and writes to it
    through the kernel (the service ``audit:record``)."""

    name = "audit"
    version = "1.0.0"
    description = "An audit log of plugin events, readable at /api/audit/; services audit:record, audit:list_recent."
    urls = "demo.audit.urls"
    capabilities = {"storage:sql": "WRITE"}  # its own table
    provides = (AuditLog,)

    def after_enable(self) -> None:
        self.record(self.name, "enabled")

    @tachycore.service(access="WRITE")
    def record(self, plugin: str, event: str) -> dict[str, Any]:
        """``audit:record`` (WRITE): write one event, in the caller's transaction; return it."""
        from .models import record

        for field, value, most in (("plugin", plugin, 100), ("event", event, 200)):
            if not isinstance(value, str) or not value or len(value) > most:
                raise ValueError(f"audit:record: {field} must be a text of 1 to {most} characters, got {value!r}")
        return _as_dict(record(plugin, event))

    @tachycore.service
    def list_recent(self, limit: int = 20) -> list[dict[str, Any]]:
        """``audit:list_recent`` (READ, by its name): the latest events, newest first."""
        from .models import AuditEvent

        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_RECENT:
            raise ValueError(f"audit:list_recent: limit must be a whole number from 1 to {MAX_RECENT}, got {limit!r}")
        return [_as_dict(event) for event in AuditEvent.objects.all()[:limit]]


def _as_dict(event: Any) -> dict[str, Any]:
    return {"id": event.pk, "plugin": event.plugin, "event": event.event, "created": event.created.isoformat()}
