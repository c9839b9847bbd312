"""Who may use the API: the permission classes named in ``KV["READ_PERMISSION_CLASSES"]``
(safe methods) and ``KV["WRITE_PERMISSION_CLASSES"]`` (everything else)."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import SAFE_METHODS

from tachycore import rest

READ_SETTING = "READ_PERMISSION_CLASSES"
WRITE_SETTING = "WRITE_PERMISSION_CLASSES"


def load_permission_classes(setting_name: str) -> list[type]:
    """Import the classes listed in ``KV[setting_name]``; ``PermissionClassError`` names the bad one."""
    from kv.conf import kv_settings

    return rest.load_permission_classes(kv_settings, setting_name)


class KVPermission(rest.EveryClassPermission):
    """Grant a request when every configured class grants it: the read classes for GET, HEAD
    and OPTIONS, the write classes for the other methods. An empty list grants everyone."""

    def get_permission_classes(self, request: Any) -> list[type]:
        return load_permission_classes(READ_SETTING if request.method in SAFE_METHODS else WRITE_SETTING)
