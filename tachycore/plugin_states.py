"""What this process knows of the plugins: their code, their registry rows, which are loaded."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Any

from django.db import DatabaseError, router

from .conf import tachycore_settings
from .context import acting_as
from .dependencies import Dependencies
from .discovery import discover_plugins
from .errors import HookFailed, PluginNotFound, PluginUnavailable, RegistryError
from .info import PluginInfo, status_of
from .instances import Instance, Instances, loading
from .models import ApplicationPlugin, NodeStatus
from .plugins import Plugin
from .registry import BasePluginRegistry, PluginRecord, load_registry
from .runtime import runtime
from .state import WatchedState

logger = logging.getLogger("tachycore.plugins")

#: the sync message every other process gets after a plugin state change commits
STATE_CHANNEL = "plugin-state-changed"
#: sync messages to one plugin go on ``plugin:<name>`` (``Plugin.publish``)
PLUGIN_CHANNEL_PREFIX = "plugin:"


class PluginStates(WatchedState):
    """The plugins whose code is installed, and the registry as this process last read it.

    The registry is the truth; each process keeps the states it last read.
    After a change commits, a ``plugin-state-changed`` sync message tells the
    other processes to re-read; they also compare the registry's version with
    theirs on requests (see ``tachycore.state.check_interval``) and in the
    runtime's periodic reconcile, so a lost message is repaired.
    """

    def __init__(self, registry: BasePluginRegistry | None = None,
                 plugins: Iterable[Plugin] | None = None, *, own_instances: Instances | None = None) -> None:
        super().__init__()
        self._registry = registry
        #: the instances of this manager's plugins in this process (the site's manager keeps
        #: them in ``tachycore.instances.instances``, which every entry into a plugin uses)
        self.instances = own_instances if own_instances is not None else Instances()
        self._plugins = self._attached(plugins) if plugins is not None else None
        self._discovery_problems: list[tuple[str, str]] = []
        self._state: dict[str, PluginRecord] = {}
        self._busy = threading.local()
        #: the last registry error logged (each is logged once, until a read succeeds)
        self._registry_error = ""

    # -- configuration -------------------------------------------------------------------

    @property
    def registry(self) -> BasePluginRegistry:
        if self._registry is None:
            self._registry = load_registry(tachycore_settings.REGISTRY)
        return self._registry

    @property
    def plugins(self) -> dict[str, Plugin]:
        """The plugins whose code is installed, by name (discovered on first use)."""
        if self._plugins is None:
            with self._lock:  # once: two threads must not end up with two sets of plugin objects
                if self._plugins is None:
                    found = discover_plugins()
                    self._discovery_problems = found.problems
                    self._plugins = self._attached(found.plugins.values())
        return self._plugins

    def is_known(self, name: str) -> bool:
        """Whether ``name`` is a plugin whose code is installed or that the registry records."""
        return name in self.plugins or self.registry.get(name) is not None

    def app_label_of(self, name: str) -> str | None:
        plugin = self.plugins.get(name)
        return plugin.app_label if plugin is not None else None

    def is_built_in(self, name: str) -> bool:
        plugin = self.plugins.get(name)
        return plugin is not None and plugin.built_in

    def plugin_of_app(self, app_label: str | None) -> str | None:
        """The name of the plugin whose app is ``app_label`` (``None``: an app that is no plugin)."""
        if app_label is None:
            return None
        for name, plugin in self.plugins.items():
            if plugin.app_label == app_label:
                return name
        return None

    @property
    def dependencies(self) -> Dependencies:
        """The dependency rules over the discovered plugins."""
        return Dependencies(self.plugins, lambda name: self.registry.get(name) is not None)

    def _attached(self, plugins: Iterable[Plugin]) -> dict[str, Plugin]:
        """Take ``plugins``: each asks this manager whether it is enabled."""
        taken = {}
        for plugin in plugins:
            plugin.attach(self.is_enabled, self.instances)
            taken[plugin.name] = plugin
        return taken

    @property
    def discovery_problems(self) -> list[tuple[str, str]]:
        self.plugins  # noqa: B018 (discovers)
        return list(self._discovery_problems)

    def reset(self) -> None:
        """Forget the registry driver and the loaded state (after a settings change)."""
        with self._lock:
            self._registry = None
            self._state = {}
            self.instances.reset()
            self.forget()

    @property
    def busy(self) -> bool:
        """Whether this thread is inside a lifecycle operation."""
        return getattr(self._busy, "value", False)

    # -- state of this process ------------------------------------------------------------

    def refresh(self, force: bool = False) -> bool:
        """Re-read the registry if its version moved; return whether the state changed."""
        try:
            return super().refresh(force)
        except DatabaseError as e:
            # before the first migrate the table does not exist: nothing is enabled yet
            logger.debug("plugin registry unreadable: %s", e)
            return False
        except RegistryError as e:
            # a registry file someone broke: serve on with the last state read (nothing
            # enabled if there was none) and say so, once per error, rather than fail every
            # request; the commands report it to whoever runs them
            if str(e) != self._registry_error:
                self._registry_error = str(e)
                runtime.supervisor.record_error(f"plugin registry unreadable: {e}")
                # a command says it in its own one line when it reads the registry
                level = logging.DEBUG if runtime.supervisor.kind == "command" else logging.ERROR
                logger.log(level, "plugin registry unreadable, serving the last state read: %s", e)
            return False

    def _read_version(self) -> int:
        return self.registry.version()

    def _database(self) -> str:
        return router.db_for_write(ApplicationPlugin)

    def _load(self, version: int) -> None:
        self._apply({record.name: record for record in self.registry.list()}, version)
        self._registry_error = ""

    def _apply(self, records: dict[str, PluginRecord], version: int) -> None:
        """Make this process follow ``records``: retire the instances of plugins no longer
        enabled, load the newly enabled ones, and switch to a new instance where the
        registry's generation or the options moved (a reload).

        Inside a lifecycle operation of this thread (a hook asking whether a plugin is
        enabled reads the uncommitted state) only the state is taken: the operation builds
        its own instances, and the instances follow when it ends."""
        self._state, self._version = records, version
        if self.busy:
            self._version = None  # read mid-operation: the next reader reads again
            return
        enabled = {name for name, record in records.items() if record.enabled and name in self.plugins}
        for name in self.instances.names():
            if name not in enabled:
                self.instances.retire(name)
        for name, record in records.items():
            if name in self.plugins and name not in enabled:
                self.plugins[name].options = self._options_of(name, record)
        newcomers, renewed = [], []
        for name in self.dependencies.order(enabled):
            current = self.instances.active(name)
            if current is None:
                newcomers.append(name)
            elif current.generation != records[name].generation or \
                    current.options != self._options_of(name, records[name]):
                renewed.append(name)
        fresh = {name: self._fresh(name, records[name]) for name in newcomers}
        for hook in ("before_load", "load"):  # each hook for all, dependencies first
            for name in newcomers:
                try:
                    with loading(fresh[name]):
                        getattr(fresh[name], hook)()
                except Exception as e:
                    self._load_failed(name, hook, e)
        for name in newcomers:
            self._start(name, fresh[name], records[name])
        for name in renewed:
            self._renew(name, records[name])

    def _options_of(self, name: str, record: PluginRecord) -> dict[str, Any]:
        return {**self.plugins[name].default_options, **record.options}

    def _fresh(self, name: str, record: PluginRecord | None = None) -> Plugin:
        """The object to load as ``name``'s next instance: the discovered one the first time,
        a new one after (``Plugin.new_instance``); it becomes ``plugins[name]``."""
        plugin = self.plugins[name]
        if plugin._instance_used:
            plugin = plugin.new_instance()
            self.plugins[name] = plugin
        plugin._instance_used = True
        if record is not None:
            plugin.options = self._options_of(name, record)
        return plugin

    def _start(self, name: str, plugin: Plugin, record: PluginRecord) -> Instance:
        """``plugin`` (loaded from ``record``) takes the new calls into ``name`` from now on."""
        self.plugins[name] = plugin
        return self.instances.activate(name, plugin, record.generation, self._options_of(name, record))

    def _renew(self, name: str, record: PluginRecord) -> None:
        """Blue-green: load a new instance beside the active one, then switch; the old one
        drains. A new instance that fails to load is dropped and the old one serves on."""
        plugin = self.plugins[name].new_instance()
        plugin._instance_used = True
        plugin.options = self._options_of(name, record)
        for hook in ("before_load", "load"):
            try:
                with loading(plugin):
                    getattr(plugin, hook)()
            except Exception as e:
                self._load_failed(name, f"{hook} of a new instance (the old one serves on)", e)
                return
        self._start(name, plugin, record)

    def _load_failed(self, name: str, hook: str, error: Exception) -> None:
        """A plugin could not load in this process: the node shows it (status ``error``)."""
        logger.exception("plugin %r: %s() failed in this process", name, hook)
        runtime.supervisor.record_error(f"plugin {name!r}: {hook}() failed: {type(error).__name__}: {error}")
        runtime.supervisor.set_status(NodeStatus.ERROR)

    def is_enabled(self, name: str) -> bool:
        """Whether ``name`` is enabled (and its code installed), as of the last state check."""
        self.refresh()
        record = self._state.get(name)
        return bool(record and record.enabled and name in self.plugins)

    def deliver(self, name: str, payload: Any) -> None:
        """A sync message on ``plugin:<name>`` from another process: to the plugin's
        ``handle_sync_message``, inside its active instance, while it is enabled here (the
        runtime routes it)."""
        if name not in self.plugins or not self.is_enabled(name):
            return
        try:
            inside = self.instances.entered(name)
        except PluginUnavailable:
            return  # disabled meanwhile
        with inside as plugin:
            self._hook(plugin, "handle_sync_message", payload)

    # -- reading -------------------------------------------------------------------------

    def list(self) -> list[PluginInfo]:
        """Every plugin, discovered or recorded, sorted by name."""
        records = self._records()
        names = sorted(set(records) | set(self.plugins))
        return [self._info(name, records.get(name)) for name in names]

    def get(self, name: str) -> PluginInfo:
        """One plugin; ``PluginNotFound`` if it is neither discovered nor recorded."""
        record = self.registry.get(name)
        if record is None and name not in self.plugins:
            raise PluginNotFound(name)
        return self._info(name, record)

    def _info(self, name: str, record: PluginRecord | None) -> PluginInfo:
        plugin = self.plugins.get(name)
        return PluginInfo(
            name=name,
            status=status_of(record, plugin),
            version=plugin.version if plugin else (record.version if record else ""),
            installed_version=record.version if record and record.installed else "",
            description=plugin.description if plugin else "",
            package_name=plugin.package_name if plugin else (record.package_name if record else ""),
            added=record is not None,
            installed=bool(record and record.installed),
            enabled=bool(record and record.enabled),
            built_in=plugin.built_in if plugin else bool(record and record.built_in),
            missing=plugin is None,
            depends_on=tuple(plugin.depends_on) if plugin else (),
            dependents=tuple(self.dependencies.dependents_of(name)),
            options=dict(record.options) if record else dict(plugin.default_options if plugin else {}),
            last_error=record.last_error if record else "",
            urls=plugin.urls if plugin else None,
        )

    def _hook(self, plugin: Plugin, hook: str, *args: Any) -> None:
        try:
            with acting_as(plugin.name):
                getattr(plugin, hook)(*args)
        except Exception as e:
            raise HookFailed(plugin.name, hook, e) from e

    def _records(self) -> dict[str, PluginRecord]:
        return {record.name: record for record in self.registry.list()}
