"""How often the API answers one client: ``KV["THROTTLE_RATES"]``, per user in the scopes
``read`` (GET, HEAD, OPTIONS) and ``write`` (the other methods), per IP in ``anon``
(anonymous requests, and failed authentications). Over the rate: 429 with ``Retry-After``."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import SAFE_METHODS

from kv.conf import kv_settings
from tachycore import rest
from tachycore.conf import AppSettings


class KVThrottle(rest.AppRateThrottle):
    """The kv API's throttle (see the module's docstring)."""

    prefix = "kv"

    def app_settings(self) -> AppSettings:
        return kv_settings

    def scope_of(self, request: Any, view: Any) -> str:
        return "read" if request.method in SAFE_METHODS else "write"
