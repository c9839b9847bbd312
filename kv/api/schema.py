"""OpenAPI (drf-spectacular): a preprocessing hook that shows the kv API only while it is
served. (The viewset's own schema class is in ``views``: this module imports the viewset.)"""

from __future__ import annotations

from typing import Any

from tachycore.rest import api_served, without_viewset


def served() -> bool:
    """Whether ``/api/kv/`` answers now: ``KV["HTTP_ENABLED"]``, kv not disabled and the kv
    plugin enabled."""
    from kv.conf import kv_settings

    return not kv_settings.DISABLED and api_served(kv_settings, "kv")


def hide_kv_api_when_off(endpoints: list[tuple[str, str, str, Any]], **kwargs: Any) -> list:
    """Add to ``SPECTACULAR_SETTINGS["PREPROCESSING_HOOKS"]``: drops the kv endpoints while
    they answer 404, so the schema never lists an API the site does not serve."""
    from .views import KeyViewSet

    return endpoints if served() else without_viewset(endpoints, KeyViewSet)
