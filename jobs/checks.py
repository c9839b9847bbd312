"""System checks of jobs: its settings."""

from __future__ import annotations

from typing import Any

from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from tachycore.checks import settings_errors


def register() -> None:
    checks.register(check_settings, "jobs")
    checks.register(check_allowed_topics, "jobs")
    checks.register(check_permission_classes, "jobs")


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    from .conf import jobs_settings

    return settings_errors(jobs_settings, hint="See docs/jobs.md for the keys and their types.", id="jobs.E001")


def check_allowed_topics(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """JOBS["ALLOWED_TOPICS"] is None or a list of non-empty strings."""
    from .conf import jobs_settings

    try:
        allowed = jobs_settings.ALLOWED_TOPICS
    except ImproperlyConfigured:
        return []  # jobs.E001 reports it
    if allowed is None or (isinstance(allowed, list) and all(isinstance(t, str) and t for t in allowed)):
        return []
    return [checks.Error(f'JOBS["ALLOWED_TOPICS"]: expected None or a list of topic patterns, got {allowed!r}',
                         hint='For example ["reports.*", "mail.send"].', id="jobs.E002")]


def check_permission_classes(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Every entry of JOBS["ENQUEUE_PERMISSION_CLASSES"] and JOBS["MANAGE_PERMISSION_CLASSES"] imports."""
    from tachycore.rest import permission_class_errors

    from .api.permissions import ENQUEUE_SETTING, MANAGE_SETTING
    from .conf import jobs_settings

    return permission_class_errors(
        jobs_settings, (ENQUEUE_SETTING, MANAGE_SETTING),
        hint="List dotted paths of DRF permission classes, such as "
             "'rest_framework.permissions.IsAdminUser' (see docs/jobs-api.md).",
        id="jobs.E003",
    )
