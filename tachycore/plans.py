"""What a plugin operation would do, worked out without doing it (the admin's confirmation pages).

``plan(operation, name)`` returns a :class:`Plan`: the steps in order (dependencies
enabled first, migrations to run, hooks), or the reason the manager would refuse.
It reads the registry and the migration graph only; the operation itself re-checks
everything under the registry lock, so a plan that went stale is refused then, not
half applied.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.loader import MigrationLoader

from . import versions
from .conf import tachycore_settings
from .errors import BuiltInPlugin, OlderCodeRunning, PluginError
from .manager import PluginManager, plugin_manager

__all__ = ["OPERATIONS", "Plan", "pending_migrations", "plan"]

OPERATIONS = ("add", "install", "enable", "disable", "reload", "upgrade", "remove")


@dataclasses.dataclass(frozen=True)
class Plan:
    operation: str
    name: str
    #: what will happen, in order, in words
    steps: list[str]
    #: why the manager would refuse ("" when it would not)
    refused: str = ""
    #: migrations that will run, as "app.0002_name"
    migrations: list[str] = dataclasses.field(default_factory=list)
    #: other plugins the operation changes too (dependencies enabled first)
    also: list[str] = dataclasses.field(default_factory=list)

    @property
    def allowed(self) -> bool:
        return not self.refused

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "allowed": self.allowed}


def pending_migrations(app_label: str | None, using: str = DEFAULT_DB_ALIAS) -> list[str]:
    """The migrations of ``app_label`` not applied yet on ``using``, in order."""
    if not app_label:
        return []
    loader = MigrationLoader(connections[using], ignore_no_migrations=True)
    applied = set(loader.applied_migrations)
    plan: list[str] = []
    for leaf in loader.graph.leaf_nodes(app_label):
        for key in loader.graph.forwards_plan(leaf):
            if key[0] == app_label and key not in applied and f"{key[0]}.{key[1]}" not in plan:
                plan.append(f"{key[0]}.{key[1]}")
    return plan


def plan(operation: str, name: str, manager: PluginManager = plugin_manager) -> Plan:
    """What ``manager.<operation>(name)`` would do now."""
    if operation not in OPERATIONS:
        raise ValueError(f"unknown operation {operation!r}; one of {', '.join(OPERATIONS)}")
    try:
        info = manager.get(name)
    except PluginError as e:
        return Plan(operation, name, [], refused=str(e))
    return _PLANNERS[operation](manager, info)


def _add(manager: PluginManager, info: Any) -> Plan:
    if info.missing:
        return Plan("add", info.name, [], refused=f"the code of plugin {info.name!r} is not installed")
    if info.added:
        return Plan("add", info.name, [], refused=f"plugin {info.name!r} is in the registry already")
    return Plan("add", info.name, [f"record {info.name} {info.version} in the registry (not installed, not enabled)",
                                   f"run {info.name}.after_add()"])


def _install_steps(manager: PluginManager, name: str) -> tuple[list[str], list[str]]:
    plugin = manager.plugins[name]
    migrations = pending_migrations(plugin.app_label)
    steps = [f"apply migration {migration}" for migration in migrations]
    steps.append(f"run {name}.install()")
    return steps, migrations


def _install(manager: PluginManager, info: Any) -> Plan:
    if info.missing:
        return Plan("install", info.name, [], refused=f"the code of plugin {info.name!r} is not installed")
    if info.installed:
        return Plan("install", info.name, [], refused=f"plugin {info.name!r} is installed already")
    steps, migrations = _install_steps(manager, info.name)
    if not info.added:
        steps.insert(0, f"record {info.name} in the registry")
    return Plan("install", info.name, steps, migrations=migrations)


def _enable(manager: PluginManager, info: Any) -> Plan:
    if info.missing:
        return Plan("enable", info.name, [], refused=f"the code of plugin {info.name!r} is not installed")
    if info.enabled:
        return Plan("enable", info.name, [], refused=f"plugin {info.name!r} is enabled already")
    try:
        order = manager.dependencies.resolve([info.name])
    except PluginError as e:
        return Plan("enable", info.name, [], refused=str(e))
    steps, migrations, also = [], [], []
    for name in order:
        other = manager.get(name)
        if other.enabled:
            continue
        if name != info.name:
            also.append(name)
        if not other.added:
            steps.append(f"record {name} in the registry")
        if not other.installed:
            more_steps, more_migrations = _install_steps(manager, name)
            steps += more_steps
            migrations += more_migrations
        steps.append(f"enable {name}" + (f" (needed by {info.name})" if name != info.name else "")
                     + ": run before_enable(), load() and after_enable()")
    steps.append(f"every process of the site follows within a second; {info.name}'s URLs and jobs come back")
    return Plan("enable", info.name, steps, migrations=migrations, also=also)


def _disable(manager: PluginManager, info: Any) -> Plan:
    if not info.added:
        return Plan("disable", info.name, [], refused=f"plugin {info.name!r} is not in the registry")
    if not info.enabled:
        return Plan("disable", info.name, [], refused=f"plugin {info.name!r} is disabled already")
    if info.built_in and not info.missing:
        off_switch = manager.plugins[info.name].off_switch
        return Plan("disable", info.name, [], refused=str(BuiltInPlugin(info.name, "disable", off_switch)))
    blockers = [name for name in info.dependents if manager.is_enabled(name)]
    if blockers:
        return Plan("disable", info.name, [], refused=(
            f"enabled plugins depend on {info.name!r}: {', '.join(blockers)} (disable them first)"))
    if info.missing:
        return Plan("disable", info.name, [f"mark {info.name} disabled",
                                           "its URLs answer 404 and its jobs wait, in every process within a second"])
    return Plan("disable", info.name, [
        f"run {info.name}.before_disable() and mark {info.name} disabled",
        "no new call enters it: its URLs answer 404, its jobs wait, its services are unavailable, "
        "in every process within a second",
        f"once the calls inside have returned (at most {tachycore_settings.DRAIN_TIMEOUT:g} s): "
        f"run {info.name}.after_disable() and unload()",
    ])


def _reload(manager: PluginManager, info: Any) -> Plan:
    if info.missing:
        return Plan("reload", info.name, [], refused=f"the code of plugin {info.name!r} is not installed")
    if not info.enabled:
        return Plan("reload", info.name, [], refused=f"plugin {info.name!r} is not enabled: there is no instance to reload")
    waiting = len(manager.instances.draining(info.name))
    if waiting >= tachycore_settings.MAX_DRAINING:
        return Plan("reload", info.name, [], refused=(
            f"{waiting} old instance(s) of {info.name!r} are still draining (at most MAX_DRAINING = "
            f"{tachycore_settings.MAX_DRAINING}); try again when their calls have returned"))
    return Plan("reload", info.name, [
        f"every process builds a new instance of {info.name} and runs its before_load() and load()",
        "new calls go to the new instance at once; calls inside the old one finish there",
        f"the old instance's unload() runs after its last call (at most {tachycore_settings.DRAIN_TIMEOUT:g} s)",
    ])


def _upgrade(manager: PluginManager, info: Any) -> Plan:
    if info.missing:
        return Plan("upgrade", info.name, [], refused=f"the code of plugin {info.name!r} is not installed")
    if not info.installed:
        return Plan("upgrade", info.name, [], refused=f"plugin {info.name!r} is not installed: install it first")
    if not info.upgradable:
        return Plan("upgrade", info.name, [], refused=f"plugin {info.name!r} is at {info.version} already")
    try:
        versions.refuse_other_code(info.name, info.version)
    except OlderCodeRunning as e:
        return Plan("upgrade", info.name, [], refused=str(e))
    migrations = pending_migrations(manager.plugins[info.name].app_label)
    steps = [f"apply migration {migration}" for migration in migrations]
    steps.append(f"run {info.name}.upgrade({info.installed_version!r}) and record version {info.version}")
    return Plan("upgrade", info.name, steps, migrations=migrations)


def _remove(manager: PluginManager, info: Any) -> Plan:
    if not info.added:
        return Plan("remove", info.name, [], refused=f"plugin {info.name!r} is not in the registry")
    if info.built_in and not info.missing:
        off_switch = manager.plugins[info.name].off_switch
        return Plan("remove", info.name, [], refused=str(BuiltInPlugin(info.name, "remove", off_switch)))
    if info.enabled:
        return Plan("remove", info.name, [], refused=f"plugin {info.name!r} is enabled: disable it first")
    hooks = [] if info.missing else [f"run {info.name}.before_remove() and after_remove()"]
    return Plan("remove", info.name, [*hooks, f"delete {info.name}'s registry row (its tables are kept)"])


_PLANNERS = {"add": _add, "install": _install, "enable": _enable, "disable": _disable,
             "reload": _reload, "upgrade": _upgrade, "remove": _remove}
