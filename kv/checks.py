"""System checks of kv: its settings."""

from __future__ import annotations

from typing import Any

from django.core import checks


def register() -> None:
    checks.register(check_settings, "kv")


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    from .conf import kv_settings

    return [
        checks.Error(f'KV["{key}"]: {message}' if key else message,
                     hint="See docs/kv.md for the keys and their types.", id="kv.E001")
        for key, message in kv_settings.errors()
    ]
