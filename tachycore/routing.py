"""Plugin URLs: mounted at ``api/<name>/``, answering 404 while the plugin is disabled, and
running their views as the plugin (``tachycore.context.current_plugin()``)."""

from __future__ import annotations

from importlib import import_module

from django.urls import URLResolver
from django.urls.exceptions import Resolver404
from django.urls.resolvers import RoutePattern

from .context import entered_as


class PluginURLResolver(URLResolver):
    """A resolver that matches only while its plugin is enabled in the registry."""

    def __init__(self, plugin_name: str, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.plugin_name = plugin_name

    def resolve(self, path: str):
        from .manager import plugin_manager

        if not plugin_manager.is_enabled(self.plugin_name):
            raise Resolver404({"path": path, "tried": []})
        match = super().resolve(path)
        match.func = entered_as(self.plugin_name, match.func)
        return match

    def __repr__(self) -> str:
        return f"<PluginURLResolver {self.plugin_name} ({self.pattern.describe()})>"


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
