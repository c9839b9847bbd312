"""OpenAPI (drf-spectacular): the viewset's schema class, and a preprocessing hook that shows
the kv API only while it is served."""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema


class KVSchema(AutoSchema):
    """Every kv response is one JSON object: ``GET /keys/`` too, though its action is ``list``."""

    def _is_list_view(self, serializer: Any = None) -> bool:
        return False


def served() -> bool:
    """Whether ``/api/kv/`` answers now: ``KV["HTTP_ENABLED"]`` and the kv plugin enabled."""
    from kv.conf import kv_settings
    from tachycore.manager import plugin_manager

    return kv_settings.HTTP_ENABLED and plugin_manager.is_enabled("kv")


def hide_kv_api_when_off(endpoints: list[tuple[str, str, str, Any]], **kwargs: Any) -> list:
    """Add to ``SPECTACULAR_SETTINGS["PREPROCESSING_HOOKS"]``: drops the kv endpoints while
    they answer 404, so the schema never lists an API the site does not serve."""
    from .views import KeyViewSet

    if served():
        return endpoints
    return [
        endpoint for endpoint in endpoints
        if not issubclass(getattr(endpoint[3], "cls", type(None)), KeyViewSet)
    ]
