"""Who may use the API: the permission classes named in ``KV["READ_PERMISSION_CLASSES"]``
(safe methods) and ``KV["WRITE_PERMISSION_CLASSES"]`` (everything else)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string
from rest_framework.permissions import SAFE_METHODS, BasePermission

READ_SETTING = "READ_PERMISSION_CLASSES"
WRITE_SETTING = "WRITE_PERMISSION_CLASSES"


class PermissionClassError(ImproperlyConfigured):
    """A ``KV[...PERMISSION_CLASSES]`` entry that does not name an importable permission class."""


def load_permission_classes(setting_name: str) -> list[type]:
    """Import the classes listed in ``KV[setting_name]``; ``PermissionClassError`` names the bad one."""
    from kv.conf import kv_settings

    classes = []
    for path in getattr(kv_settings, setting_name):
        if not isinstance(path, str):
            raise PermissionClassError(f'KV["{setting_name}"]: {path!r} is not a dotted path')
        try:
            permission_class = import_string(path)
        except ImportError as e:
            raise PermissionClassError(f'KV["{setting_name}"]: cannot import {path!r}: {e}') from e
        if not isinstance(permission_class, type) or not hasattr(permission_class, "has_permission"):
            raise PermissionClassError(
                f'KV["{setting_name}"]: {path!r} is not a permission class (no has_permission())'
            )
        classes.append(permission_class)
    return classes


class KVPermission(BasePermission):
    """Grant a request when every configured class grants it: the read classes for GET, HEAD
    and OPTIONS, the write classes for the other methods. An empty list grants everyone."""

    def has_permission(self, request: Any, view: Any) -> bool:
        setting_name = READ_SETTING if request.method in SAFE_METHODS else WRITE_SETTING
        for permission_class in load_permission_classes(setting_name):
            permission = permission_class()
            if not permission.has_permission(request, view):
                # DRF reads the refusal's message and code from the class that refused
                self.message = getattr(permission, "message", None)
                self.code = getattr(permission, "code", None)
                return False
        return True
