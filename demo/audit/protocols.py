"""What the audit plugin offers other plugins, as a Protocol (``AuditPlugin.provides``).

A plugin that writes to the audit log calls its services through the kernel, by id
(``tachycore.invoke("audit:record", "notes", "enabled")``) or with this Protocol
(``tachycore.get_service(AuditLog).record("notes", "enabled")``), never its models.
"""

from __future__ import annotations

from typing import Any, Protocol


class AuditLog(Protocol):
    def record(self, plugin: str, event: str) -> dict[str, Any]:
        """Write one event (in the caller's transaction); return it."""
        ...

    def list_recent(self, limit: int = 20) -> list[dict[str, Any]]:
        """The latest events, newest first."""
        ...
