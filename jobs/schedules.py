"""Cron entries through django-q2: ``jobs.schedule(...)`` and the prune schedule.

A schedule is a ``django_q.Schedule`` row. ``manage.py qcluster`` turns a due row
into a task under a row lock, so each run happens once across every process and
machine that shares the database; the run enqueues a job here, which ``runjobs``
executes like any other (with retries). The prune schedule (deleting old
finished jobs) is written after every ``migrate``, idempotently: a row that names
the prune's former path (``jobs.maintenance.prune_finished``) is brought in line then.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.apps import apps as global_apps
from django.utils import timezone

from tachycore.schedules import keep_schedule

from .conf import jobs_settings
from .errors import InvalidSchedule, UnknownTopic
from .handlers import allowed_without_handler, check_topic, handlers
from .validation import check_max_retries, check_priority, payload_json

__all__ = ["PRUNE_SCHEDULE", "enqueue_scheduled", "register_prune_schedule", "schedule", "unschedule"]

ENQUEUE_FUNC = "jobs.schedules.enqueue_scheduled"
PRUNE_FUNC = "jobs.prune.prune_finished"
PRUNE_SCHEDULE = "jobs: prune finished jobs"
PRUNE_MINUTES = 60
CRON = "C"  # django_q.models.Schedule.CRON
MINUTES = "I"  # django_q.models.Schedule.MINUTES
MAX_NAME_LENGTH = 100  # django_q.models.Schedule.name
#: the fields that say when a row runs: a change to one of them works out next_run again
TIMING_FIELDS = ("schedule_type", "cron", "minutes")


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


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_LENGTH:
        raise InvalidSchedule(f"a schedule name must be a non-empty string of at most {MAX_NAME_LENGTH} "
                              f"characters, got {name!r}")
    return name


def check_known_topic(topic: Any) -> str:
    """Refuse a topic every firing would fail to enqueue (see ``JobStore.enqueue``)."""
    check_topic(topic)
    if topic not in handlers and not allowed_without_handler(topic, jobs_settings.ALLOWED_TOPICS):
        raise UnknownTopic(f"no handler for topic {topic!r} (register one with @jobs.handler, "
                           "or list the topic in JOBS['ALLOWED_TOPICS'])")
    return topic


def schedule(name: str, topic: str, cron: str, payload: Any = None, *, priority: int = 0,
             max_retries: int | None = None, dedupe: bool = True) -> Any:
    """Create or update the cron schedule ``name``: each time ``cron`` fires, one job of
    ``topic`` with ``payload`` is enqueued (with ``dedupe``, not while the previous one is
    still pending). Return the ``Schedule`` row. Safe to call at every start: an unchanged
    call writes nothing, and ``repeats`` is left as an operator set it in the admin.

    Every argument is checked before anything is written.
    """
    check_name(name)
    check_known_topic(topic)
    check_cron(cron)
    check_priority(priority)
    if max_retries is not None:
        check_max_retries(max_retries)
    payload_json({} if payload is None else payload, topic)
    options = {"topic": topic, "payload": payload, "priority": priority, "max_retries": max_retries,
               "dedupe_key": f"schedule:{name}" if dedupe else None}
    # kwargs in django-q2's "key=value" form (its admin shows it); repr of JSON values is
    # what the scheduler's ast.literal_eval reads back
    fields = {"func": ENQUEUE_FUNC, "schedule_type": CRON, "cron": cron, "minutes": None,
              "kwargs": ", ".join(f"{key}={value!r}" for key, value in options.items())}
    return _keep(name, fields)


def unschedule(name: str) -> bool:
    """Delete the schedule ``name``; return whether it existed."""
    deleted, _ = _schedule_model()._default_manager.filter(name=name).delete()
    return bool(deleted)


def next_run_of(fields: dict[str, Any], now: datetime) -> datetime:
    """The first run after ``now`` of a row with these fields."""
    if fields["schedule_type"] == CRON:
        from croniter import croniter

        # django-q2 reads cron lines in the site's time zone (Schedule.calculate_next_run)
        return croniter(fields["cron"], timezone.localtime(now)).get_next(datetime)
    return now + timedelta(minutes=fields["minutes"] or 1)


def _keep(name: str, fields: dict[str, Any], using: str | None = None, apps: Any = global_apps,
          repeats: int = -1) -> Any:
    """Create the row ``name`` with ``fields``, or bring the existing one in line; leave
    ``next_run`` alone unless the timing changed, and keep the other fields as they are."""

    def next_run(row: Any, changed: list[str], now: datetime) -> datetime | None:
        return next_run_of(fields, now) if row is None or set(changed) & set(TIMING_FIELDS) else None

    return keep_schedule(_schedule_model(apps), name, fields, next_run, using=using, repeats=repeats)


def enqueue_scheduled(topic: str, payload: Any = None, priority: int = 0, max_retries: int | None = None,
                      dedupe_key: str | None = None) -> int | None:
    """What a schedule runs in ``qcluster``: enqueue the job; return its id (the pending
    job's id when one with ``dedupe_key`` is still waiting), or ``None`` while jobs is not
    installed or is disabled (the row stays, and fires again once jobs is back)."""
    from . import get_job_store

    store = get_job_store()
    if store is None:
        return None
    job = store.enqueue(topic, payload, priority=priority, max_retries=max_retries, dedupe_key=dedupe_key)
    return job.id


def register_prune_schedule(using: str | None = None, apps: Any = global_apps) -> Any | None:
    """Keep the hourly prune of finished jobs (``JOBS["RETENTION"]``); return its row, or
    ``None`` when django_q is not installed (or not migrated, in ``apps``: a migration state).

    The first run is one interval after the row is created; registering again changes
    nothing. ``repeats`` and ``kwargs`` are left as an operator set them (``repeats=0``
    pauses the prune).
    """
    try:
        apps.get_model("django_q", "Schedule")
    except LookupError:
        return None
    fields = {"func": PRUNE_FUNC, "schedule_type": MINUTES, "minutes": PRUNE_MINUTES, "cron": None}
    return _keep(PRUNE_SCHEDULE, fields, using=using, apps=apps)
