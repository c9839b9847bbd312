"""jobs: a durable job queue on the site's database.

``jobs.get_job_store()`` returns the store (``None`` when ``jobs`` is not installed or
``JOBS["DISABLED"]`` is set);
``@jobs.handler("topic")`` registers a handler; ``jobs.schedule(...)`` keeps a cron
entry that enqueues a job; ``jobs.errors`` holds the exceptions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import errors
from .conf import jobs_settings
from .handlers import handler

if TYPE_CHECKING:
    from .store import JobStore

__all__ = ["errors", "get_job_store", "handler", "schedule"]

_store: JobStore | None = None


def get_job_store() -> JobStore | None:
    """The job store, or ``None`` when ``jobs`` is not in ``INSTALLED_APPS`` or is disabled
    (``JOBS["DISABLED"]``, env ``JOBS_DISABLED``)."""
    global _store
    from django.apps import apps

    if not apps.is_installed("jobs") or jobs_settings.DISABLED:
        return None
    if _store is None:
        from .store import JobStore

        _store = JobStore()
    return _store


def schedule(name: str, topic: str, cron: str, payload: Any = None, **options: Any):
    """Keep a django-q2 cron ``Schedule`` named ``name`` whose every run enqueues ``topic``
    (see :func:`jobs.schedules.schedule`)."""
    from .schedules import schedule as keep

    return keep(name, topic, cron, payload, **options)
