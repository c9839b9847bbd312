from __future__ import annotations

from django.apps import AppConfig
from django.core.signals import setting_changed
from django.db.backends.signals import connection_created
from django.db.models.signals import post_migrate


class KvConfig(AppConfig):
    name = "kv"
    verbose_name = "Key-value store"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from tachycore import sql_classifier, sync

        from . import checks, conf, l1, receivers
        from .sql.session import INVALIDATE_CHANNEL

        checks.register()
        # the function of migration 0003: a plugin's SELECT kv_incr(...) writes _kv, and its
        # SQL guard asks for that grant (the store's own call runs past the guard)
        sql_classifier.declare_writing_function("kv_incr", ["_kv"])
        setting_changed.connect(conf.reset_site_settings, dispatch_uid="kv.site_settings")
        connection_created.connect(receivers.register_sqlite_functions, dispatch_uid="kv.sqlite_functions")
        sync.subscribe(INVALIDATE_CHANNEL, receivers.invalidate_from_elsewhere)
        # L1 answers only while invalidations arrive: emptied when the listener goes down
        # and when it comes back, filled only while it is live (kv/l1.py)
        sync.on_disconnect(receivers.flush_l1)
        sync.on_reconnect(receivers.flush_l1)
        l1.follow_invalidations(receivers.invalidations_arrive)
        post_migrate.connect(receivers.register_cleanup_schedule, sender=self,
                             dispatch_uid="kv.register_cleanup_schedule")
