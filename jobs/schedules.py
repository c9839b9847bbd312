"""Cron entries through django-q2: ``jobs.schedule(...)`` and the maintenance schedules.

A schedule is a ``django_q.Schedule`` row. ``manage.py qcluster`` turns a due row
into a task under a row lock, so each run happens once across every process and
machine that shares the database; the run enqueues a job here, which ``runjobs``
executes like any other (with retries). The maintenance schedules (pruning
finished jobs) are written after every ``migrate``, idempotently.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps as global_apps
from django.db import router, transaction

from .conf import jobs_settings
from .errors import InvalidSchedule
from .registry import check_topic
from .validation import check_priority, payload_json

__all__ = ["PRUNE_SCHEDULE", "enqueue_scheduled", "register_maintenance_schedules", "schedule", "unschedule"]

ENQUEUE_FUNC = "jobs.schedules.enqueue_scheduled"
PRUNE_FUNC = "jobs.maintenance.prune_finished"
PRUNE_SCHEDULE = "jobs: prune finished jobs"
CRON = "C"  # django_q.models.Schedule.CRON
MINUTES = "I"  # django_q.models.Schedule.MINUTES


def _schedule_model(apps: Any = global_apps) -> Any:
    try:
        return apps.get_model("django_q", "Schedule")
    except LookupError:
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured("jobs.schedule() needs django_q in INSTALLED_APPS") from None


def check_cron(cron: Any) -> str:
    from croniter import croniter

    if not isinstance(cron, str) or not croniter.is_valid(cron):
        raise InvalidSchedule(f"not a cron line: {cron!r} (five fields, such as '*/5 * * * *')")
    return cron


def schedule(name: str, topic: str, cron: str, payload: Any = None, *, priority: int = 0,
             max_retries: int | None = None, dedupe: bool = True) -> Any:
    """Create or update the cron schedule ``name``: each time ``cron`` fires, one job of
    ``topic`` with ``payload`` is enqueued (with ``dedupe``, not while the previous one is
    still pending). Return the ``Schedule`` row. Safe to call at every start."""
    if not isinstance(name, str) or not name or len(name) > 100:
        raise InvalidSchedule(f"a schedule name must be a non-empty string of at most 100 characters, got {name!r}")
    check_topic(topic)
    check_cron(cron)
    check_priority(priority)
    payload_json({} if payload is None else payload, topic)
    options = {"topic": topic, "payload": payload, "priority": priority, "max_retries": max_retries,
               "dedupe_key": f"schedule:{name}" if dedupe else None}
    fields = {"func": ENQUEUE_FUNC, "schedule_type": CRON, "cron": cron, "repeats": -1,
              "kwargs": ", ".join(f"{key}={value!r}" for key, value in options.items())}
    return _keep(name, fields)


def unschedule(name: str) -> bool:
    """Delete the schedule ``name``; return whether it existed."""
    deleted, _ = _schedule_model()._default_manager.filter(name=name).delete()
    return bool(deleted)


def _keep(name: str, fields: dict[str, Any], using: str | None = None, apps: Any = global_apps) -> Any:
    model = _schedule_model(apps)
    using = using or router.db_for_write(model)
    rows = model._default_manager.db_manager(using)
    with transaction.atomic(using=using):
        existing = list(rows.select_for_update().filter(name=name).order_by("pk"))
        if not existing:
            row = model(name=name, **fields)
            row.save(using=using)  # save() works out next_run from the cron line
            return row
        row = existing[0]
        rows.filter(pk__in=[other.pk for other in existing[1:]]).delete()
        changed = [key for key, value in fields.items() if getattr(row, key) != value]
        if changed:
            for key in changed:
                setattr(row, key, fields[key])
            if "cron" in changed or "schedule_type" in changed:
                row.next_run = None  # worked out again from the new line
                changed.append("next_run")
            row.save(using=using)
        return row


def enqueue_scheduled(topic: str, payload: Any = None, priority: int = 0, max_retries: int | None = None,
                      dedupe_key: str | None = None) -> int:
    """What a schedule runs in ``qcluster``: enqueue the job; return its id."""
    from . import get_job_store

    job = get_job_store().enqueue(topic, payload, priority=priority, max_retries=max_retries,
                                  dedupe_key=dedupe_key)
    return job.id


def register_maintenance_schedules(using: str | None = None, apps: Any = global_apps) -> Any | None:
    """The prune of finished jobs, hourly; ``None`` when django_q is not installed."""
    try:
        apps.get_model("django_q", "Schedule")
    except LookupError:
        return None
    fields = {"func": PRUNE_FUNC, "schedule_type": MINUTES, "minutes": 60, "cron": None,
              "kwargs": None}
    if jobs_settings.RETENTION <= 0:
        fields["repeats"] = 0  # nothing is kept: the schedule stays but never runs
    return _keep(PRUNE_SCHEDULE, fields, using=using, apps=apps)
