"""The ``_kv`` table."""

from __future__ import annotations

from django.db import models


class ValueType(models.TextChoices):
    VALUE = "value"  # any JSON value (strings, numbers, lists, objects, locks)
    HASH = "hash"  # a JSON object of fields, written with hset/hdel/hincrby
    CACHE = "cache"  # an entry of kv.cache.KVCache


class KVEntry(models.Model):
    """One key. ``expire_at`` is in epoch milliseconds (UTC); a row past it counts as absent."""

    key = models.CharField(max_length=512, primary_key=True)
    type = models.CharField(max_length=10, choices=ValueType.choices, default=ValueType.VALUE)
    value = models.JSONField()
    expire_at = models.BigIntegerField(null=True, blank=True)
    created = models.DateTimeField()
    updated = models.DateTimeField()

    class Meta:
        db_table = "_kv"
        verbose_name = "key"
        verbose_name_plural = "keys"
        indexes = [
            # only keys with a TTL: the cleanup's "expire_at <= now" needs no other, and a
            # write of a key without one then changes no index entry (on SQLite a write that
            # sets an indexed column rewrites the entry even when the value stays the same)
            models.Index("expire_at", name="kv_expiring", condition=models.Q(expire_at__isnull=False)),
        ]

    def __str__(self) -> str:
        return self.key
