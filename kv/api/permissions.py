"""Who may use the API: the permission classes named in ``KV["READ_PERMISSION_CLASSES"]``
(safe methods) and ``KV["WRITE_PERMISSION_CLASSES"]`` (everything else).

By default they are the model permissions of ``kv.KVEntry``, as the admin's key browser asks
them, so that the API and the admin agree on who may do what:

- reading keys (GET, HEAD, OPTIONS) needs ``kv.view_kventry`` or ``kv.change_kventry``;
- setting, incrementing, expiring and hash updates (PUT, POST, PATCH) need ``kv.change_kventry``;
- deleting (DELETE, and an expire of 0 seconds or less, which deletes) needs ``kv.delete_kventry``.

Staff status is neither needed nor enough: ``is_staff`` lets a user sign in to the admin, the
permissions say what the user may do with the keys, there and here. A service account calling
the API with a token holds the permissions and is not staff. Superusers may do everything.
"""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import SAFE_METHODS

from tachycore import rest
from tachycore.rest import Needs

READ_SETTING = "READ_PERMISSION_CLASSES"
WRITE_SETTING = "WRITE_PERMISSION_CLASSES"

VIEW = "kv.view_kventry"
CHANGE = "kv.change_kventry"
DELETE = "kv.delete_kventry"

READ = Needs("read keys", ((VIEW,), (CHANGE,)))
WRITE = Needs("change keys", ((CHANGE,),))
REMOVE = Needs("delete keys", ((DELETE,),))
EXPIRE_NOW = Needs("delete keys (an expire of 0 seconds or less deletes the key)", ((CHANGE, DELETE),))


def load_permission_classes(setting_name: str) -> list[type]:
    """Import the classes listed in ``KV[setting_name]``; ``PermissionClassError`` names the bad one."""
    from kv.conf import kv_settings

    return rest.load_permission_classes(kv_settings, setting_name)


class KVPermission(rest.EveryClassPermission):
    """Grant a request when every configured class grants it: the read classes for GET, HEAD
    and OPTIONS, the write classes for the other methods. An empty list grants everyone."""

    def get_permission_classes(self, request: Any) -> list[type]:
        return load_permission_classes(READ_SETTING if request.method in SAFE_METHODS else WRITE_SETTING)


class CanReadKeys(rest.ModelPermission):
    """``kv.view_kventry`` or ``kv.change_kventry`` (the default read class)."""

    def needs(self, request: Any, view: Any) -> Needs:
        return READ


class CanWriteKeys(rest.ModelPermission):
    """``kv.change_kventry`` to change keys, ``kv.delete_kventry`` to delete them (the
    default write class)."""

    def needs(self, request: Any, view: Any) -> Needs:
        if request.method == "DELETE":
            return REMOVE
        if request.method == "POST" and getattr(view, "action", None) == "expire" and _expires_now(request):
            return EXPIRE_NOW
        return WRITE


def _expires_now(request: Any) -> bool:
    """Whether an expire's body asks for a TTL of 0 or less (a bad body is the view's 400)."""
    data = request.data  # a body that is not JSON is a 400 here already, as in the view
    ttl = data.get("ttl") if isinstance(data, dict) else None
    return isinstance(ttl, int | float) and not isinstance(ttl, bool) and ttl <= 0
