"""Plugin registry drivers and the loader for ``TACHYCORE["REGISTRY"]``."""

from __future__ import annotations

from typing import Any

from django.utils.module_loading import import_string

from tachycore.errors import RegistryConfigurationError

from .base import BasePluginRegistry, PluginRecord
from .database import DatabaseRegistry
from .dualwrite import DualWriteRegistry
from .jsonfile import JSONFileRegistry
from .memory import MemoryRegistry

__all__ = [
    "BasePluginRegistry",
    "DatabaseRegistry",
    "DualWriteRegistry",
    "JSONFileRegistry",
    "MemoryRegistry",
    "PluginRecord",
    "load_registry",
]


def load_registry(config: Any) -> BasePluginRegistry:
    """Build a registry from a dotted path or ``{"BACKEND": path, "OPTIONS": {...}}``.

    A dual-write driver takes ``OPTIONS={"PERSISTENT": <another config>}``.
    """
    if isinstance(config, str):
        backend, options = config, {}
    else:
        backend, options = config["BACKEND"], dict(config.get("OPTIONS") or {})
    try:
        cls = import_string(backend)
    except ImportError as e:
        raise RegistryConfigurationError(
            f'TACHYCORE["REGISTRY"]: cannot import registry driver {backend!r}: {e}'
        ) from e
    if not (isinstance(cls, type) and issubclass(cls, BasePluginRegistry)):
        raise RegistryConfigurationError(
            f'TACHYCORE["REGISTRY"]: {backend!r} is not a BasePluginRegistry subclass'
        )
    if "PERSISTENT" in options:
        options["persistent"] = load_registry(options.pop("PERSISTENT"))
    elif issubclass(cls, DualWriteRegistry):
        raise RegistryConfigurationError(
            'TACHYCORE["REGISTRY"]: the dual-write driver needs OPTIONS["PERSISTENT"]'
        )
    try:
        return cls(**{key.lower(): value for key, value in options.items()})
    except TypeError as e:
        raise RegistryConfigurationError(f'TACHYCORE["REGISTRY"]: bad OPTIONS for {backend}: {e}') from e
