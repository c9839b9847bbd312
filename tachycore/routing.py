"""Plugin URLs: mounted at ``api/<name>/``, answering 404 while the plugin is disabled, and
running their views as the plugin (``tachycore.context.current_plugin()``)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from importlib import import_module
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import Http404
from django.urls import URLResolver
from django.urls.exceptions import Resolver404
from django.urls.resolvers import RoutePattern

from .errors import PluginUnavailable
from .instances import Inside, Instances


class PluginURLResolver(URLResolver):
    """A resolver that matches only while its plugin is enabled in the registry, and while the
    ``served()`` function of the plugin's urlconf, when it has one, returns true (a switch of
    the plugin's own settings, such as ``KV["HTTP_ENABLED"]``, read on each request)."""

    def __init__(self, plugin_name: str, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.plugin_name = plugin_name
        #: each view of the plugin, wrapped by ``inside()`` once per instances object
        self._wrapped: dict[tuple[Instances, Callable[..., Any]], Callable[..., Any]] = {}

    def resolve(self, path: str):
        from .manager import plugin_manager

        # the prefix first: it is cheaper than the state check, which every other plugin's
        # URL would otherwise pay here
        if not self.pattern.match(path) or not plugin_manager.is_enabled(self.plugin_name):
            raise Resolver404({"path": path, "tried": []})
        served = getattr(self.urlconf_module, "served", None)
        if served is not None and not served():
            raise Resolver404({"path": path, "tried": []})
        match = super().resolve(path)
        match.func = self._inside(plugin_manager.instances, match.func)
        return match

    def _inside(self, entries: Instances, view: Callable[..., Any]) -> Callable[..., Any]:
        key = (entries, view)
        wrapped = self._wrapped.get(key)
        if wrapped is None:
            wrapped = self._wrapped[key] = inside(entries, self.plugin_name, view)
        return wrapped

    def __repr__(self) -> str:
        return f"<PluginURLResolver {self.plugin_name} ({self.pattern.describe()})>"


def inside[F: Callable[..., Any]](entries: Instances, name: str, view: F) -> F:
    """``view`` wrapped so that each request runs inside plugin ``name``'s active instance
    (holding it until the view returns, so that a reload waits for it) and as that plugin;
    404 when the plugin has no active instance any more (disabled meanwhile). Sync or async
    alike, with the view's name and attributes (``csrf_exempt``, DRF's ``cls``...) kept."""
    if iscoroutinefunction(view):

        async def entered_async(*args: Any, **kwargs: Any) -> Any:
            with _enter(entries, name):
                return await view(*args, **kwargs)

        wrapper: Callable[..., Any] = markcoroutinefunction(functools.wraps(view)(entered_async))
    else:

        def entered(*args: Any, **kwargs: Any) -> Any:
            with _enter(entries, name):
                return view(*args, **kwargs)

        wrapper = functools.wraps(view)(entered)
    wrapper.tachycore_plugin = name  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


def _enter(entries: Instances, name: str) -> Inside:
    try:
        return entries.entered(name)
    except PluginUnavailable:
        raise Http404(f"plugin {name!r} is not enabled") from None


def plugin_urlpatterns(prefix: str = "api/") -> list[URLResolver]:
    """A resolver for every discovered plugin that declares ``urls``."""
    from .manager import plugin_manager

    patterns: list[URLResolver] = []
    for name, plugin in sorted(plugin_manager.plugins.items()):
        if not plugin.urls:
            continue
        module = import_module(plugin.urls)
        patterns.append(PluginURLResolver(
            name,
            RoutePattern(f"{prefix}{name}/", is_endpoint=False),
            module,
            app_name=getattr(module, "app_name", name),
            namespace=name,
        ))
    return patterns
