"""OpenAPI (drf-spectacular): show the jobs API only while it is served."""

from __future__ import annotations

from typing import Any

from tachycore.rest import api_served, without_viewset


def served() -> bool:
    """Whether ``/api/jobs/`` answers now: ``JOBS["HTTP_ENABLED"]``, jobs not disabled, and the
    jobs plugin enabled."""
    from jobs.conf import jobs_settings

    return not jobs_settings.DISABLED and api_served(jobs_settings, "jobs")


def hide_jobs_api_when_off(endpoints: list[tuple[str, str, str, Any]], **kwargs: Any) -> list:
    """Add to ``SPECTACULAR_SETTINGS["PREPROCESSING_HOOKS"]``: drops the jobs endpoints while
    they answer 404, so the schema never lists an API the site does not serve."""
    from .views import JobViewSet

    return endpoints if served() else without_viewset(endpoints, JobViewSet)
