"""Find the ``Plugin`` subclass in each installed app's ``plugin.py``."""

from __future__ import annotations

import dataclasses
import inspect
import logging
from importlib import import_module

from django.apps import apps
from django.utils.module_loading import module_has_submodule

from .plugins import Plugin
from .registry.validation import NAME_RULE, is_valid_name

logger = logging.getLogger("tachycore.plugins")

MODULE_NAME = "plugin"


@dataclasses.dataclass
class Discovery:
    """What discovery found: plugins by name, and problems by app."""

    plugins: dict[str, Plugin]
    problems: list[tuple[str, str]]


def _plugin_classes(module) -> list[type[Plugin]]:
    return [
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj) and issubclass(obj, Plugin) and obj is not Plugin
        and obj.__module__ == module.__name__
    ]


def discover_plugins() -> Discovery:
    """Import ``<app>.plugin`` for every installed app and instantiate its plugin.

    A plugin module that fails to import is reported as a problem (and by the
    ``tachycore.W001`` check); the site still starts without that plugin.
    """
    plugins: dict[str, Plugin] = {}
    problems: list[tuple[str, str]] = []
    for app_config in apps.get_app_configs():
        if not module_has_submodule(app_config.module, MODULE_NAME):
            continue
        module_name = f"{app_config.name}.{MODULE_NAME}"
        try:
            module = import_module(module_name)
        except Exception as e:
            logger.exception("cannot import %s", module_name)
            problems.append((app_config.label, f"cannot import {module_name}: {type(e).__name__}: {e}"))
            continue
        classes = _plugin_classes(module)
        if len(classes) != 1:
            problems.append(
                (app_config.label, f"{module_name} must define exactly one Plugin subclass, found {len(classes)}")
            )
            continue
        plugin = classes[0](app_config)
        if not is_valid_name(plugin.name):
            problems.append((app_config.label, f"plugin name {plugin.name!r} is invalid: a plugin name is {NAME_RULE}"))
            continue
        if plugin.name in plugins:
            problems.append(
                (app_config.label, f"plugin name {plugin.name!r} is used by {plugins[plugin.name].package_name} too")
            )
            continue
        plugins[plugin.name] = plugin
    return Discovery(plugins, problems)
