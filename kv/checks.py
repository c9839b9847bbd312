"""System checks of kv: its settings."""

from __future__ import annotations

from typing import Any

from django.core import checks
from django.core.exceptions import ImproperlyConfigured


def register() -> None:
    checks.register(check_settings, "kv")
    checks.register(check_permission_classes, "kv")


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    from .conf import kv_settings

    return [
        checks.Error(f'KV["{key}"]: {message}' if key else message,
                     hint="See docs/kv.md for the keys and their types.", id="kv.E001")
        for key, message in kv_settings.errors()
    ]


def check_permission_classes(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Every entry of KV["READ_PERMISSION_CLASSES"] and KV["WRITE_PERMISSION_CLASSES"] imports."""
    from .api.permissions import (
        READ_SETTING,
        WRITE_SETTING,
        PermissionClassError,
        load_permission_classes,
    )

    errors = []
    for setting_name in (READ_SETTING, WRITE_SETTING):
        try:
            load_permission_classes(setting_name)
        except PermissionClassError as e:
            errors.append(checks.Error(
                str(e),
                hint="List dotted paths of DRF permission classes, such as "
                     "'rest_framework.permissions.IsAdminUser' (see docs/kv-api.md).",
                id="kv.E002",
            ))
        except ImproperlyConfigured:
            pass  # not a list at all: kv.E001 reports it
    return errors
