"""The django-q2 schedule of the expiry cleanup.

The schedule is a ``django_q.Schedule`` row: ``manage.py qcluster`` turns a due
row into a task under a row lock, so the cleanup runs once per interval however
many clusters share the database. It is written after every ``migrate`` (see
:func:`kv.receivers.register_cleanup_schedule`) and is idempotent: one row named
:data:`SCHEDULE_NAME`, brought in line with ``KV["CLEANUP_INTERVAL"]``, or none
while ``KV["DISABLED"]`` is true.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from django.apps import apps as global_apps

from tachycore.schedules import keep_schedule

from .conf import kv_settings

__all__ = ["CLEANUP_FUNC", "SCHEDULE_NAME", "register_cleanup_schedule", "schedule_fields"]

SCHEDULE_NAME = "kv: delete expired keys"
CLEANUP_FUNC = "kv.cleanup.cleanup_expired"
MINUTES = "I"  # django_q.models.Schedule.MINUTES, spelt out: django_q may not be installed


def schedule_fields(interval: float) -> dict[str, Any]:
    """The fields this module owns on the row, for an interval in seconds.

    django-q2 schedules in whole minutes (its scheduler looks every ~30 seconds),
    so the interval is rounded up to a whole number of minutes, at least one.
    Other fields (``repeats``, ``kwargs``, ``cluster``, ...) are left as an
    operator set them in the admin.
    """
    return {
        "func": CLEANUP_FUNC,
        "schedule_type": MINUTES,
        "minutes": max(1, math.ceil(interval / 60)),
        "cron": None,
    }


def register_cleanup_schedule(using: str | None = None, apps: Any = global_apps) -> Any | None:
    """Create or update the cleanup's ``Schedule`` row; return it, or ``None`` when
    django_q is not installed (or not migrated, in ``apps``: a migration state).

    Running it again changes nothing unless ``KV["CLEANUP_INTERVAL"]`` changed;
    rows left over from a concurrent first registration are deleted. While kv is
    disabled, the row is deleted (so that no cluster runs it) and ``None`` returned.
    """
    try:
        schedule_model = apps.get_model("django_q", "Schedule")
    except LookupError:
        return None
    if kv_settings.DISABLED:
        schedule_model._default_manager.db_manager(using).filter(name=SCHEDULE_NAME).delete()
        return None
    fields = schedule_fields(kv_settings.CLEANUP_INTERVAL)

    def next_run(row: Any, changed: list[str], now: datetime) -> datetime | None:
        if row is None:
            return None  # the model's default: now, so the first cleanup runs at once
        # a shorter interval takes effect now, not after the old, longer wait
        sooner = now + timedelta(minutes=fields["minutes"])
        return sooner if row.next_run is None or row.next_run > sooner else None

    return keep_schedule(schedule_model, SCHEDULE_NAME, fields, next_run, using=using)
