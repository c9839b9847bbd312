"""How often the API answers one client: ``JOBS["THROTTLE_RATES"]``, per user in the scopes
``enqueue`` (POST /api/jobs/), ``read`` (list, get, stats) and ``manage`` (requeue, delete),
per IP in ``anon`` (anonymous requests, and failed authentications). Over the rate: 429 with
``Retry-After``."""

from __future__ import annotations

from typing import Any

from jobs.conf import jobs_settings
from tachycore import rest
from tachycore.conf import AppSettings

#: the scope of each action of the viewset; any other is "manage"
SCOPES = {"create": "enqueue", "list": "read", "retrieve": "read", "stats": "read", "metadata": "read"}


class JobsThrottle(rest.AppRateThrottle):
    """The jobs API's throttle (see the module's docstring)."""

    prefix = "jobs"

    def app_settings(self) -> AppSettings:
        return jobs_settings

    def scope_of(self, request: Any, view: Any) -> str:
        return SCOPES.get(getattr(view, "action", None) or "", "manage")
