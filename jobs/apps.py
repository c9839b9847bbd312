from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Jobs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from tachycore import sql_classifier
        from tachycore.signals import process_started, process_stopping

        from . import checks, handlers, receivers

        checks.register()
        # the function of migration 0004: a plugin's SELECT tachy_jobs_enqueue(...) writes
        # _jobs, and its SQL guard asks for that grant (the store's own call runs past it)
        sql_classifier.declare_writing_function("tachy_jobs_enqueue", ["_jobs"])
        handlers.autodiscover()
        post_migrate.connect(receivers.register_prune_schedule, sender=self,
                             dispatch_uid="jobs.register_prune_schedule")
        process_started.connect(receivers.start_embedded_dispatcher, dispatch_uid="jobs.auto_start")
        process_stopping.connect(receivers.stop_embedded_dispatcher, dispatch_uid="jobs.auto_stop")
