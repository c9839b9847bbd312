"""tachycore: the plugin kernel.

Public API: ``tachycore.plugin_manager`` (alias ``tachycore.pm``) and
``tachycore.plugins.Plugin``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["plugin_manager", "pm"]


def __getattr__(name: str) -> Any:
    # imported on first use so that ``import tachycore`` works before Django is set up
    if name in ("plugin_manager", "pm"):
        from .manager import plugin_manager

        return plugin_manager
    raise AttributeError(f"module 'tachycore' has no attribute {name!r}")
