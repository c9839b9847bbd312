"""Helpers for apps that keep django-q2 ``Schedule`` rows (kv's cleanup, jobs' schedules)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

#: ``next_run(row, changed, now)``: when a new row (``row`` None) or a row whose fields
#: ``changed`` runs next; ``None`` leaves ``next_run`` as it is (the model's default for a new row)
NextRun = Callable[[Any, list[str], datetime], datetime | None]


def keep_schedule(model: Any, name: str, fields: dict[str, Any], next_run: NextRun, *,
                  using: str | None = None, **create: Any) -> Any:
    """Create the ``Schedule`` row ``name`` with ``fields`` (and ``create`` on creation), or
    bring the existing one in line with ``fields``, leaving every other field as an
    operator set it in the admin; return the row. Writes nothing when nothing changed.

    The row is read under a row lock, and rows left over from two first registrations at
    once are deleted. ``model`` may be a historical model (``post_migrate``), which has no
    ``Schedule.save()``: ``next_run`` is set here, not by django-q2.
    """
    from django.db import router, transaction
    from django.utils import timezone

    using = using or router.db_for_write(model)
    rows = model._default_manager.db_manager(using)
    now = timezone.now()
    with transaction.atomic(using=using):
        existing = list(rows.select_for_update().filter(name=name).order_by("pk"))
        if not existing:
            first = next_run(None, list(fields), now)
            return rows.create(name=name, **fields, **create, **({"next_run": first} if first else {}))
        row = existing[0]
        rows.filter(pk__in=[other.pk for other in existing[1:]]).delete()
        changed = [key for key, value in fields.items() if getattr(row, key) != value]
        if changed:
            for key in changed:
                setattr(row, key, fields[key])
            when = next_run(row, changed, now)
            if when is not None:
                row.next_run = when
                changed.append("next_run")
            row.save(using=using, update_fields=changed)
        return row


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
