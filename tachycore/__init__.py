"""tachycore: the plugin kernel.

Public API: ``tachycore.plugin_manager`` (alias ``tachycore.pm``),
``tachycore.plugins.Plugin``, and the services plugins publish and call through the
kernel: ``tachycore.service``, ``tachycore.invoke``, ``tachycore.get_service``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["get_service", "invoke", "plugin_manager", "pm", "service"]

_SERVICES = ("service", "invoke", "get_service")


def __getattr__(name: str) -> Any:
    # imported on first use so that ``import tachycore`` works before Django is set up
    if name in ("plugin_manager", "pm"):
        from .manager import plugin_manager

        return plugin_manager
    if name in _SERVICES:
        from . import services

        value = getattr(services, name)
        globals()[name] = value  # found directly from now on: ``tachycore.invoke`` is a hot path
        return value
    raise AttributeError(f"module 'tachycore' has no attribute {name!r}")
