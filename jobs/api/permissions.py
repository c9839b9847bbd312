"""Who may use the API: ``JOBS["ENQUEUE_PERMISSION_CLASSES"]`` for ``POST /api/jobs/``,
``JOBS["MANAGE_PERMISSION_CLASSES"]`` for everything else."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string
from rest_framework.permissions import BasePermission

ENQUEUE_SETTING = "ENQUEUE_PERMISSION_CLASSES"
MANAGE_SETTING = "MANAGE_PERMISSION_CLASSES"


class PermissionClassError(ImproperlyConfigured):
    """A ``JOBS[...PERMISSION_CLASSES]`` entry that does not name an importable permission class."""


def load_permission_classes(setting_name: str) -> list[type]:
    """Import the classes listed in ``JOBS[setting_name]``; ``PermissionClassError`` names the bad one."""
    from jobs.conf import jobs_settings

    classes = []
    for path in getattr(jobs_settings, setting_name):
        if not isinstance(path, str):
            raise PermissionClassError(f'JOBS["{setting_name}"]: {path!r} is not a dotted path')
        try:
            permission_class = import_string(path)
        except ImportError as e:
            raise PermissionClassError(f'JOBS["{setting_name}"]: cannot import {path!r}: {e}') from e
        if not isinstance(permission_class, type) or not hasattr(permission_class, "has_permission"):
            raise PermissionClassError(f'JOBS["{setting_name}"]: {path!r} is not a permission class '
                                       "(no has_permission())")
        classes.append(permission_class)
    return classes


class CanAddJob(BasePermission):
    """The user has the ``jobs.add_job`` model permission."""

    message = "You need the jobs.add_job permission to enqueue jobs."

    def has_permission(self, request: Any, view: Any) -> bool:
        return bool(request.user and request.user.has_perm("jobs.add_job"))


class _Configured(BasePermission):
    setting_name = ""

    def has_permission(self, request: Any, view: Any) -> bool:
        for permission_class in load_permission_classes(self.setting_name):
            permission = permission_class()
            if not permission.has_permission(request, view):
                self.message = getattr(permission, "message", None)
                self.code = getattr(permission, "code", None)
                return False
        return True

    def has_object_permission(self, request: Any, view: Any, obj: Any) -> bool:
        for permission_class in load_permission_classes(self.setting_name):
            permission = permission_class()
            if not permission.has_object_permission(request, view, obj):
                self.message = getattr(permission, "message", None)
                self.code = getattr(permission, "code", None)
                return False
        return True


class CanEnqueue(_Configured):
    """Every class of ``JOBS["ENQUEUE_PERMISSION_CLASSES"]`` grants the request."""

    setting_name = ENQUEUE_SETTING


class CanManage(_Configured):
    """Every class of ``JOBS["MANAGE_PERMISSION_CLASSES"]`` grants the request."""

    setting_name = MANAGE_SETTING
