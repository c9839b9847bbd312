"""Sync message adapters and the loader for ``TACHYCORE["PUBSUB"]``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import connections
from django.utils.module_loading import import_string

from tachycore.errors import PubSubConfigurationError

from .base import BasePubSub, MessageHandler
from .memory import MemoryPubSub

__all__ = ["BasePubSub", "MemoryPubSub", "load_pubsub", "resolve_pubsub_config"]


def resolve_pubsub_config(config: Any) -> tuple[str, dict[str, Any]]:
    """``(dotted path, options)`` for a setting value; ``"auto"`` picks by database vendor."""
    if config == "auto":
        if connections["default"].vendor == "postgresql":
            return "tachycore.pubsub.postgres.PostgresPubSub", {}
        return "tachycore.pubsub.memory.MemoryPubSub", {}
    if isinstance(config, str):
        return config, {}
    return config["BACKEND"], {key.lower(): value for key, value in (config.get("OPTIONS") or {}).items()}


def load_pubsub(config: Any, node_id: str, on_message: MessageHandler,
                on_reconnect: Callable[[], None]) -> BasePubSub:
    """Build the adapter named by ``TACHYCORE["PUBSUB"]``."""
    backend, options = resolve_pubsub_config(config)
    try:
        cls = import_string(backend)
    except ImportError as e:
        raise PubSubConfigurationError(f'TACHYCORE["PUBSUB"]: cannot import {backend!r}: {e}') from e
    if not (isinstance(cls, type) and issubclass(cls, BasePubSub)):
        raise PubSubConfigurationError(f'TACHYCORE["PUBSUB"]: {backend!r} is not a BasePubSub subclass')
    try:
        return cls(node_id, on_message, on_reconnect, **options)
    except Exception as e:  # a bad option, a bad URL, a missing client library
        raise PubSubConfigurationError(f'TACHYCORE["PUBSUB"]: cannot build {backend}: {e}') from e
