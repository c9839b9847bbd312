"""OpenAPI (drf-spectacular): the viewset's schema class, and a preprocessing hook that shows
the kv API only while it is served."""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema

from tachycore.rest import api_served, without_viewset


class KVSchema(AutoSchema):
    """Every kv response is one JSON object: ``GET /keys/`` too, though its action is ``list``."""

    def _is_list_view(self, serializer: Any = None) -> bool:
        return False


def served() -> bool:
    """Whether ``/api/kv/`` answers now: ``KV["HTTP_ENABLED"]`` and the kv plugin enabled."""
    from kv.conf import kv_settings

    return api_served(kv_settings, "kv")


def hide_kv_api_when_off(endpoints: list[tuple[str, str, str, Any]], **kwargs: Any) -> list:
    """Add to ``SPECTACULAR_SETTINGS["PREPROCESSING_HOOKS"]``: drops the kv endpoints while
    they answer 404, so the schema never lists an API the site does not serve."""
    from .views import KeyViewSet

    return endpoints if served() else without_viewset(endpoints, KeyViewSet)
