from django.db import models


class AuditEvent(models.Model):
    """Something a plugin did, for people to read later."""

    plugin = models.CharField(max_length=100)
    event = models.CharField(max_length=200)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created", "-id"]

    def __str__(self) -> str:
        return f"{self.plugin}: {self.event}"


def record(plugin: str, event: str) -> AuditEvent:
    """Write one audit event (inside the caller's transaction)."""
    return AuditEvent.objects.create(plugin=plugin, event=event)
