"""URLs of the key-value API, mounted by the kernel at ``/api/kv/`` while the kv plugin is
enabled, and answering 404 while ``KV["HTTP_ENABLED"]`` is false or ``KV["DISABLED"]`` true
(read on each request)."""

from __future__ import annotations

from django.urls import register_converter
from django.urls.converters import get_converters
from rest_framework.routers import DynamicRoute, SimpleRouter

from kv.conf import kv_settings

from . import views


class KeyConverter:
    """Any non-empty string, "/" and newlines included: the path as Django decoded it."""

    regex = r"[\s\S]+"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value  # reverse() percent-encodes it


class KeyRouter(SimpleRouter):
    """SimpleRouter with the detail actions tried before the detail route: a key may contain
    "/", so ``keys/<key>/`` would otherwise swallow ``keys/<key>/incr/``."""

    routes = [
        *(route for route in SimpleRouter.routes if not route.detail),
        *(route for route in SimpleRouter.routes if route.detail and isinstance(route, DynamicRoute)),
        *(route for route in SimpleRouter.routes if route.detail and not isinstance(route, DynamicRoute)),
    ]


def served() -> bool:
    """Whether the URLs resolve (``tachycore.routing.PluginURLResolver`` asks on each request):
    while ``KV["HTTP_ENABLED"]`` is true and kv is not disabled."""
    return kv_settings.HTTP_ENABLED and not kv_settings.DISABLED


if "kvkey" not in get_converters():
    register_converter(KeyConverter, "kvkey")

router = KeyRouter(use_regex_path=False)
router.register("keys", views.KeyViewSet, basename="key")

app_name = "kv"
urlpatterns = router.urls
