"""Periodic maintenance run by django-q2 (see ``jobs.schedules``)."""

from __future__ import annotations


def prune_finished() -> int:
    """Delete completed and failed jobs older than ``JOBS["RETENTION"]``; return how many."""
    from . import get_job_store

    return get_job_store().prune()
