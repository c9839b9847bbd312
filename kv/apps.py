from __future__ import annotations

from django.apps import AppConfig
from django.db.backends.signals import connection_created
from django.db.models.signals import post_migrate


class KvConfig(AppConfig):
    name = "kv"
    verbose_name = "Key-value store"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from tachycore import sync

        from . import checks, handlers

        checks.register()
        connection_created.connect(handlers.register_sqlite_functions, dispatch_uid="kv.sqlite_functions")
        sync.subscribe(handlers.INVALIDATE_CHANNEL, handlers.invalidate_from_elsewhere)
        sync.on_reconnect(handlers.flush_l1)
        post_migrate.connect(handlers.register_cleanup_schedule, sender=self,
                             dispatch_uid="kv.register_cleanup_schedule")
