"""Who may use the API: ``JOBS["ENQUEUE_PERMISSION_CLASSES"]`` for ``POST /api/jobs/``,
``JOBS["MANAGE_PERMISSION_CLASSES"]`` for everything else."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission

from tachycore import rest

ENQUEUE_SETTING = "ENQUEUE_PERMISSION_CLASSES"
MANAGE_SETTING = "MANAGE_PERMISSION_CLASSES"


def load_permission_classes(setting_name: str) -> list[type]:
    """Import the classes listed in ``JOBS[setting_name]``; ``PermissionClassError`` names the bad one."""
    from jobs.conf import jobs_settings

    return rest.load_permission_classes(jobs_settings, setting_name)


class CanAddJob(BasePermission):
    """The user has the ``jobs.add_job`` model permission."""

    message = "You need the jobs.add_job permission to enqueue jobs."

    def has_permission(self, request: Any, view: Any) -> bool:
        return bool(request.user and request.user.has_perm("jobs.add_job"))


class _Configured(rest.EveryClassPermission):
    setting_name = ""

    def get_permission_classes(self, request: Any) -> list[type]:
        return load_permission_classes(self.setting_name)


class CanEnqueue(_Configured):
    """Every class of ``JOBS["ENQUEUE_PERMISSION_CLASSES"]`` grants the request."""

    setting_name = ENQUEUE_SETTING


class CanManage(_Configured):
    """Every class of ``JOBS["MANAGE_PERMISSION_CLASSES"]`` grants the request."""

    setting_name = MANAGE_SETTING
