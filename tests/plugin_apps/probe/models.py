"""The probe plugin's own table."""

from __future__ import annotations

from django.db import models


class Item(models.Model):
    """A row the probe writes when asked to (and reads when asked to read)."""

    label = models.CharField(max_length=200)

    class Meta:
        db_table = "probe_items"

    def __str__(self) -> str:
        return self.label
