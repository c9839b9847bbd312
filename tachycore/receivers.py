"""Signal receivers and sync message subscribers, connected in ``TachycoreConfig.ready()``."""

from __future__ import annotations

import logging
from typing import Any

from django.db import router

logger = logging.getLogger("tachycore.plugins")


def sync_built_in_plugins(*, using: str, **kwargs: Any) -> None:
    """After ``migrate``: add, install and enable built-in plugins not recorded yet."""
    from .manager import plugin_manager
    from .models import ApplicationPlugin
    from .registry import DatabaseRegistry

    registry = plugin_manager.registry
    if plugin_manager.busy:
        return  # a plugin's own migrations, run by the manager mid-operation
    if isinstance(registry, DatabaseRegistry) and using != router.db_for_write(ApplicationPlugin):
        return
    from .errors import PluginError

    try:
        enabled = plugin_manager.ensure_built_ins()
    except PluginError as e:
        # migrate itself succeeded: report the plugin, do not fail the command
        logger.error("built-in plugins not enabled: %s (see manage.py pm list)", e)
        return
    if enabled and kwargs.get("verbosity", 1) >= 1:
        logger.info("enabled built-in plugins: %s", ", ".join(enabled))


def reset_plugin_manager(*, setting: str, **kwargs: Any) -> None:
    if setting == "TACHYCORE":
        from .manager import plugin_manager
        from .runtime import runtime

        plugin_manager.reset()
        runtime.reset_pubsub()


def follow_plugin_states(payload: Any) -> None:
    """A ``plugin-state-changed`` message from another process: re-read the registry."""
    from .manager import plugin_manager

    plugin_manager.refresh(force=True)


def follow_maintenance(payload: Any) -> None:
    """A ``maintenance-changed`` message from another process: re-read the site state."""
    from .maintenance import maintenance

    maintenance.refresh(force=True)


def follow_grants(payload: Any) -> None:
    """A ``grants-changed`` message from another process: re-read the grants."""
    from .governance import grants

    grants.refresh(force=True)


def apply_settings_grants(*, using: str, verbosity: int = 1, **kwargs: Any) -> None:
    """After ``migrate``: make the grants ``TACHYCORE["GRANTS"]`` gives match it."""
    from .conf import tachycore_settings
    from .governance import grants
    from .models import CapabilityGrant

    if using != router.db_for_write(CapabilityGrant):
        return
    changed, revoked = grants.apply_settings(tachycore_settings.GRANTS)
    if (changed or revoked) and verbosity >= 1:
        logger.info("TACHYCORE['GRANTS']: %d grant(s) given or changed, %d revoked", changed, revoked)


def report_code_versions(**kwargs: Any) -> None:
    """At the start of every process (web, command, dispatcher): its node reports the version
    of each plugin whose code it runs, which ``pm upgrade`` and the admin compare across the
    site (``tachycore.versions``), and its plugin instances (active, draining)."""
    from .manager import plugin_manager
    from .runtime import runtime

    supervisor = runtime.supervisor
    supervisor.code_versions = {name: plugin.version for name, plugin in plugin_manager.plugins.items()}
    supervisor.instances_report = plugin_manager.instances.report
    supervisor.wake()


def warn_of_plugins_not_added(*, kind: str, **kwargs: Any) -> None:
    """At the start of a web or worker process, log each plugin whose code is installed but
    that is not added (``tachycore.W003``): runserver and gunicorn run no database checks."""
    from .checks import not_added_plugins

    if kind == "command":
        return
    for message in not_added_plugins():
        logger.warning("%s %s", message.msg, message.hint)


#: the django-q2 schedule that deletes node rows older than ``TACHYCORE["NODE_RETENTION"]``
NODE_PRUNE_SCHEDULE = "tachycore: prune old node rows"
NODE_PRUNE_FUNC = "tachycore.supervisor.prune_nodes"


def keep_node_prune_schedule(*, using: str, apps: Any = None, verbosity: int = 1, stdout: Any = None,
                             **kwargs: Any) -> None:
    """After ``migrate``: the hourly schedule that prunes old node rows (each command leaves
    one), when django_q is installed."""
    from .schedules import keep_schedule, keep_schedule_after_migrate

    def register(*, using: str, apps: Any) -> Any:
        fields = {"func": NODE_PRUNE_FUNC, "schedule_type": "H", "minutes": None, "cron": None}
        return keep_schedule(apps.get_model("django_q", "Schedule"), NODE_PRUNE_SCHEDULE, fields,
                             lambda row, changed, now: None, using=using)

    keep_schedule_after_migrate(register, using=using, apps=apps, verbosity=verbosity, stdout=stdout)


#: the django-q2 schedule that deletes audit rows older than ``TACHYCORE["AUDIT_RETENTION"]``
AUDIT_PRUNE_SCHEDULE = "tachycore: prune old audit rows"
AUDIT_PRUNE_FUNC = "tachycore.audit.prune"


def keep_audit_prune_schedule(*, using: str, apps: Any = None, verbosity: int = 1, stdout: Any = None,
                              **kwargs: Any) -> None:
    """After ``migrate``: the hourly schedule that prunes old audit rows, when django_q is installed."""
    from .schedules import keep_schedule, keep_schedule_after_migrate

    def register(*, using: str, apps: Any) -> Any:
        fields = {"func": AUDIT_PRUNE_FUNC, "schedule_type": "H", "minutes": None, "cron": None}
        return keep_schedule(apps.get_model("django_q", "Schedule"), AUDIT_PRUNE_SCHEDULE, fields,
                             lambda row, changed, now: None, using=using)

    keep_schedule_after_migrate(register, using=using, apps=apps, verbosity=verbosity, stdout=stdout)
