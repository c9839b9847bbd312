"""The persisted plugin registry."""

from __future__ import annotations

from django.db import models


class ApplicationPlugin(models.Model):
    """One plugin known to the site: its package, version and lifecycle state."""

    name = models.CharField(max_length=100, unique=True)
    package_name = models.CharField(max_length=255, blank=True)
    version = models.CharField(max_length=50, blank=True)
    enabled = models.BooleanField(default=False)
    installed = models.BooleanField(default=False)
    built_in = models.BooleanField(default=False)
    options = models.JSONField(default=dict, blank=True)
    last_error = models.TextField(blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "applicationPlugins"
        ordering = ["name"]
        verbose_name = "plugin"

    def __str__(self) -> str:
        return self.name


class RegistryState(models.Model):
    """A single row whose ``version`` rises with every registry write.

    Processes compare it with the version they loaded to learn, with one cheap
    query, that plugin state changed elsewhere.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    version = models.BigIntegerField(default=0)

    class Meta:
        db_table = "tachycore_registry_state"

    def __str__(self) -> str:
        return f"registry version {self.version}"
