from tachycore.plugins import Plugin


class AuditPlugin(Plugin):
    """Keeps a log of what the other demo plugins do; `notes` depends on it."""

    name = "audit"
    version = "1.0.0"
    description = "An audit log of plugin events, readable at /api/audit/."
    urls = "demo.audit.urls"
    capabilities = {"storage:sql": "WRITE"}  # its own table

    def after_enable(self) -> None:
        from .models import record

        record(self.name, "enabled")
