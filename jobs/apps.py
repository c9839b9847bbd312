from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Jobs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks, receivers, registry

        checks.register()
        registry.autodiscover()
        post_migrate.connect(receivers.register_maintenance_schedules, sender=self,
                             dispatch_uid="jobs.register_maintenance_schedules")
