"""OpenAPI (drf-spectacular): show the jobs API only while it is served."""

from __future__ import annotations

from typing import Any


def served() -> bool:
    """Whether ``/api/jobs/`` answers now: ``JOBS["HTTP_ENABLED"]`` and the jobs plugin enabled."""
    from jobs.conf import jobs_settings
    from tachycore.manager import plugin_manager

    return jobs_settings.HTTP_ENABLED and plugin_manager.is_enabled("jobs")


def hide_jobs_api_when_off(endpoints: list[tuple[str, str, str, Any]], **kwargs: Any) -> list:
    """Add to ``SPECTACULAR_SETTINGS["PREPROCESSING_HOOKS"]``: drops the jobs endpoints while
    they answer 404, so the schema never lists an API the site does not serve."""
    from .views import JobViewSet

    if served():
        return endpoints
    return [endpoint for endpoint in endpoints
            if not issubclass(getattr(endpoint[3], "cls", type(None)), JobViewSet)]
