"""The versioned plugin's own table."""

from __future__ import annotations

from django.db import models


class Upgrade(models.Model):
    """One run of the plugin's ``upgrade(from_version)`` hook, by the process that ran it."""

    from_version = models.CharField(max_length=50)
    to_version = models.CharField(max_length=50)
    pid = models.IntegerField()

    class Meta:
        db_table = "versioned_upgrades"

    def __str__(self) -> str:
        return f"{self.from_version} -> {self.to_version}"
