"""A helper for apps that keep django-q2 ``Schedule`` rows (kv's cleanup, jobs' prune)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def keep_schedule_after_migrate(register: Callable[..., Any], *, using: str, apps: Any = None,
                                verbosity: int = 1, stdout: Any = None) -> Any | None:
    """For a ``post_migrate`` receiver: call ``register(using=..., apps=...)`` when
    django_q's ``Schedule`` is installed (and migrated, in ``apps``) and may be written on
    ``using``; report the row at verbosity 2. Return the row, or ``None``."""
    from django.apps import apps as global_apps
    from django.db import router

    apps = apps or global_apps
    try:
        schedule_model = apps.get_model("django_q", "Schedule")
    except LookupError:  # django_q is not installed, or migrated back to zero
        return None
    if not router.allow_migrate_model(using, schedule_model):
        return None
    schedule = register(using=using, apps=apps)
    if schedule is not None and verbosity >= 2 and stdout is not None:
        timing = f"cron {schedule.cron!r}" if schedule.cron else f"every {schedule.minutes} min"
        stdout.write(f"Schedule {schedule.name!r}: {schedule.func} {timing}.")
    return schedule
