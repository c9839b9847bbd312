from __future__ import annotations

from django.apps import AppConfig
from django.core.signals import setting_changed
from django.db.models.signals import post_migrate


class TachycoreConfig(AppConfig):
    name = "tachycore"
    verbose_name = "Plugin kernel"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks, handlers, runtime, sync
        from .maintenance import CHANNEL as MAINTENANCE_CHANNEL
        from .manager import STATE_CHANNEL

        checks.register()
        runtime.exit_on_sigterm()
        sync.subscribe(STATE_CHANNEL, handlers.follow_plugin_states)
        sync.subscribe(MAINTENANCE_CHANNEL, handlers.follow_maintenance)
        post_migrate.connect(handlers.sync_built_in_plugins, sender=self,
                             dispatch_uid="tachycore.sync_built_in_plugins")
        setting_changed.connect(handlers.reset_plugin_manager,
                                dispatch_uid="tachycore.reset_plugin_manager")
