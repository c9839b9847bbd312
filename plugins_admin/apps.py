from __future__ import annotations

from django.apps import AppConfig


class PluginsAdminConfig(AppConfig):
    name = "plugins_admin"
    verbose_name = "Platform admin"
    default_auto_field = "django.db.models.BigAutoField"
