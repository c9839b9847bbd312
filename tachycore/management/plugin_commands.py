"""A plugin's management commands run as that plugin.

Django gives no hook around a command, so the kernel wraps ``BaseCommand.execute`` once, in
``TachycoreConfig.ready()``: ``manage.py <command>`` and ``call_command()`` both go through
it. A plugin's command runs inside ``acting_as(<plugin>)``; a command of an app that is no
plugin (Django's own, the kernel's, the host site's) keeps its caller's context: run by
``manage.py``, the host site's; called by a plugin, that plugin's (so that a plugin cannot
shed its name by calling another app's command).
"""

from __future__ import annotations

import functools
from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError

from tachycore.context import acting_as
from tachycore.errors import CapabilityDenied

_WRAPPED = "_tachycore_runs_as_plugin"


def plugin_of_command(command: BaseCommand) -> str | None:
    """The plugin whose app defines ``command``'s class (``None``: no plugin's)."""
    from tachycore.manager import plugin_manager

    app_config = apps.get_containing_app_config(type(command).__module__)
    return plugin_manager.plugin_of_app(app_config.label) if app_config else None


def run_commands_as_their_plugin() -> None:
    """Wrap ``BaseCommand.execute`` (once, however often it is called)."""
    execute = BaseCommand.execute
    if getattr(execute, _WRAPPED, False):
        return

    @functools.wraps(execute)
    def execute_as_plugin(self: BaseCommand, *args: Any, **options: Any) -> Any:
        plugin = plugin_of_command(self)
        if plugin is None:
            return execute(self, *args, **options)
        with acting_as(plugin):
            try:
                return execute(self, *args, **options)
            except CapabilityDenied as e:  # one line and exit status 1, as any command error
                raise CommandError(str(e)) from e

    setattr(execute_as_plugin, _WRAPPED, True)
    BaseCommand.execute = execute_as_plugin  # type: ignore[method-assign]
