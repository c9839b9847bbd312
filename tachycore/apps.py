from __future__ import annotations

from django.apps import AppConfig, apps
from django.core.signals import setting_changed
from django.db.models.signals import post_migrate


class TachycoreConfig(AppConfig):
    name = "tachycore"
    verbose_name = "Plugin kernel"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Wire the layers: the per-process services learn here what the kernel above them
        keeps (the states to reconcile, the channels to follow); nothing reaches up."""
        from django.db import connections
        from django.db.backends.signals import connection_created

        from . import audit, checks, events, governance, receivers, services, sql_guard
        from .instances import instances, on_retire
        from .maintenance import CHANNEL as MAINTENANCE_CHANNEL
        from .maintenance import maintenance
        from .management.plugin_commands import run_commands_as_their_plugin
        from .manager import plugin_manager
        from .plugin_states import PLUGIN_CHANNEL_PREFIX, STATE_CHANNEL
        from .runtime import exit_on_sigterm, runtime
        from .signals import process_started, process_stopping

        checks.register()
        if apps.is_installed("rest_framework.authtoken"):
            from . import authentication

            authentication.follow_revocations()  # API tokens: revocations empty every process's cache
        run_commands_as_their_plugin()
        exit_on_sigterm()
        runtime.watch(plugin_manager)
        runtime.watch(maintenance)
        runtime.watch(governance.grants)
        governance.know_plugins(plugin_manager)
        services.know_plugins(plugin_manager)
        governance.observe(audit.record_decision, allowed=audit.records_allowed)
        connection_created.connect(sql_guard.install, dispatch_uid="tachycore.sql_guard")
        for connection in connections.all(initialized_only=True):  # opened before ready()
            sql_guard.install(connection=connection)
        # the node row shows this process's instances, and what went wrong with one
        instances.on_change = lambda: runtime.supervisor.wake()
        instances.on_problem = lambda message: runtime.supervisor.record_error(message)
        # events: handlers run while their plugin is enabled, those a retired instance's load()
        # subscribed go, and events broadcast by other processes arrive
        events.know_states(plugin_manager.is_enabled)
        on_retire(events.forget_instance)
        runtime.subscribe(events.CHANNEL, events.receive)
        runtime.route(PLUGIN_CHANNEL_PREFIX, plugin_manager.deliver)
        runtime.subscribe(STATE_CHANNEL, receivers.follow_plugin_states)
        runtime.subscribe(MAINTENANCE_CHANNEL, receivers.follow_maintenance)
        runtime.subscribe(governance.CHANNEL, receivers.follow_grants)
        post_migrate.connect(receivers.sync_built_in_plugins, sender=self,
                             dispatch_uid="tachycore.sync_built_in_plugins")
        post_migrate.connect(receivers.apply_settings_grants, sender=self,
                             dispatch_uid="tachycore.apply_settings_grants")
        post_migrate.connect(receivers.keep_node_prune_schedule, sender=self,
                             dispatch_uid="tachycore.keep_node_prune_schedule")
        post_migrate.connect(receivers.keep_audit_prune_schedule, sender=self,
                             dispatch_uid="tachycore.keep_audit_prune_schedule")
        process_stopping.connect(audit.flush_at_stop, dispatch_uid="tachycore.audit.flush_at_stop")
        setting_changed.connect(receivers.reset_plugin_manager,
                                dispatch_uid="tachycore.reset_plugin_manager")
        process_started.connect(receivers.report_code_versions,
                                dispatch_uid="tachycore.report_code_versions")
        process_started.connect(receivers.warn_of_plugins_not_added,
                                dispatch_uid="tachycore.warn_of_plugins_not_added")
