"""Pruning old finished jobs: what the hourly django-q2 schedule runs (see ``jobs.schedules``)."""

from __future__ import annotations


def prune_finished() -> int:
    """Delete completed and failed jobs older than ``JOBS["RETENTION"]``; return how many
    (none while jobs is not installed or is disabled: its rows are left as they are)."""
    from . import get_job_store

    store = get_job_store()
    if store is None:
        return 0
    return store.prune()
