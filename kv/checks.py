"""System checks of kv: its settings."""

from __future__ import annotations

from typing import Any

from django.core import checks

from tachycore.checks import settings_errors


def register() -> None:
    checks.register(check_settings, "kv")
    checks.register(check_permission_classes, "kv")


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    from .conf import kv_settings

    return settings_errors(kv_settings, hint="See docs/kv.md for the keys and their types.", id="kv.E001")


def check_permission_classes(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Every entry of KV["READ_PERMISSION_CLASSES"] and KV["WRITE_PERMISSION_CLASSES"] imports."""
    from tachycore.rest import permission_class_errors

    from .api.permissions import READ_SETTING, WRITE_SETTING
    from .conf import kv_settings

    return permission_class_errors(
        kv_settings, (READ_SETTING, WRITE_SETTING),
        hint="List dotted paths of DRF permission classes, such as "
             "'rest_framework.permissions.IsAdminUser' (see docs/kv-api.md).",
        id="kv.E002",
    )
