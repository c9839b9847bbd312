"""The plugin manager: the lifecycle of every plugin, over the registry."""

from __future__ import annotations

import builtins
import contextlib
import logging
import threading
from collections.abc import Iterable, Iterator
from typing import Any

from django.core.management import call_command
from django.db import DatabaseError, router, transaction
from django.utils.module_loading import module_has_submodule

from . import sync
from .conf import tachycore_settings
from .dependencies import Dependencies
from .discovery import discover_plugins
from .errors import (
    HookFailed,
    InvalidOptions,
    PluginAlreadyExists,
    PluginError,
    PluginMissing,
    PluginNotFound,
    PluginStateError,
)
from .info import PluginInfo, status_of
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


class PluginManager(WatchedState):
    """Adds, installs, enables, disables, upgrades and removes plugins.

    The registry is the truth; each process keeps the states it last read.
    After a change commits, a ``plugin-state-changed`` sync message tells the
    other processes to re-read; they also compare the registry's version with
    theirs on requests (see ``tachycore.state.check_interval``) and in the
    runtime's periodic reconcile, so a lost message is repaired.
    """

    def __init__(self, registry: BasePluginRegistry | None = None,
                 plugins: Iterable[Plugin] | None = None) -> None:
        super().__init__()
        self._registry = registry
        self._plugins = self._attached(plugins) if plugins is not None else None
        self._discovery_problems: list[tuple[str, str]] = []
        self._state: dict[str, PluginRecord] = {}
        self._loaded: set[str] = set()
        self._busy = threading.local()

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

    @property
    def dependencies(self) -> Dependencies:
        """The dependency rules over the discovered plugins."""
        return Dependencies(self.plugins, lambda name: self.registry.get(name) is not None)

    def _attached(self, plugins: Iterable[Plugin]) -> dict[str, Plugin]:
        """Take ``plugins``: each asks this manager whether it is enabled."""
        taken = {}
        for plugin in plugins:
            plugin.attach(self.is_enabled)
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
            self._state, self._loaded = {}, set()
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

    def _read_version(self) -> int:
        return self.registry.version()

    def _database(self) -> str:
        return router.db_for_write(ApplicationPlugin)

    def _load(self, version: int) -> None:
        self._apply({record.name: record for record in self.registry.list()}, version)

    def _apply(self, records: dict[str, PluginRecord], version: int) -> None:
        self._state, self._version = records, version
        for name, record in records.items():
            if name in self.plugins:
                self.plugins[name].options = {**self.plugins[name].default_options, **record.options}
        enabled = {name for name, record in records.items() if record.enabled and name in self.plugins}
        self._loaded &= enabled
        newcomers = [name for name in self.dependencies.order(enabled) if name not in self._loaded]
        for hook in ("before_load", "load"):
            for name in newcomers:
                try:
                    getattr(self.plugins[name], hook)()
                except Exception as e:
                    self._load_failed(name, hook, e)
        self._loaded.update(newcomers)

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
        ``handle_sync_message`` while it is enabled here (the runtime routes it)."""
        plugin = self.plugins.get(name)
        if plugin is not None and self.is_enabled(name):
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

    # -- lifecycle -----------------------------------------------------------------------

    def add(self, name: str, options: dict[str, Any] | None = None) -> PluginInfo:
        """Record a discovered plugin in the registry (neither installed nor enabled)."""
        plugin = self._code(name, "add")
        options = self._validated_options(plugin, options)
        with self._changing():
            if self.registry.get(name) is not None:
                raise PluginAlreadyExists(name)
            self._add(plugin, options)
        return self.get(name)

    def install(self, name: str) -> PluginInfo:
        """Run the plugin's migrations and ``install()``; adds it first when needed."""
        plugin = self._code(name, "install")
        record = self.registry.get(name)
        if record is None or not record.installed:
            self._migrate([plugin])
            with self._changing():
                self._install(plugin, record)
        return self.get(name)

    def enable(self, *names: str, options: dict[str, Any] | None = None) -> builtins.list[str]:
        """Enable plugins and their dependencies (first); return the names newly enabled.

        Installs what is not installed yet. All of it commits at once, or, when a
        hook fails, nothing does and the error is recorded on the plugin.
        """
        self._require_names(names, "enable")
        if options is not None and len(names) != 1:
            raise InvalidOptions("options can be given when enabling one plugin only")
        for name in names:
            self._code(name, "enable")
        if options is not None:
            options = self._validated_options(self.plugins[names[0]], options)
        order = self.dependencies.resolve(names)
        before = self._records()
        self._migrate([self.plugins[n] for n in order if not (n in before and before[n].installed)])
        with self._changing():
            records = self._records()  # again, under the registry lock: another process may have acted
            todo = [name for name in order if not (name in records and records[name].enabled)]
            if options is not None and names[0] in records:
                self.registry.update(names[0], options=options)
            for name in todo:
                plugin = self.plugins[name]
                record = records.get(name)
                if record is None:
                    record = self._add(plugin, options if name == names[0] else None)
                if not record.installed:
                    self._install(plugin, record)
                self._hook(plugin, "before_enable")
                self.registry.update(name, enabled=True, last_error="")
                self._hook(plugin, "before_load")
                self._hook(plugin, "load")
                self._loaded.add(name)
                self._hook(plugin, "after_enable")
        return todo

    def disable(self, *names: str) -> builtins.list[str]:
        """Disable plugins (dependents named in the same call first); return those disabled.

        Refused, naming them, while an enabled plugin outside ``names`` depends on one.
        Works on a missing plugin (no hooks run: its code is gone).
        """
        self._require_names(names, "disable")
        with self._changing():
            records = self._records()
            for name in names:
                self._recorded(name, records, "disable")
            self.dependencies.refuse_if_needed(names, records, "disable")
            todo = [name for name in self.dependencies.teardown_order(names) if records[name].enabled]
            for name in todo:
                self._disable(name)
        return todo

    def upgrade(self, name: str) -> tuple[str, str]:
        """Run new migrations and ``upgrade(from_version)``; return ``(from, to)`` versions."""
        plugin = self._code(name, "upgrade")
        record = self._recorded(name, None, "upgrade")
        if not record.installed:
            raise PluginStateError(f"plugin {name!r} is not installed: install it before upgrading")
        if record.version == plugin.version:
            return record.version, plugin.version
        self._migrate([plugin])
        with self._changing():
            self._hook(plugin, "upgrade", record.version)
            self.registry.update(name, version=plugin.version, last_error="")
        return record.version, plugin.version

    def remove(self, name: str, force: bool = False) -> None:
        """Delete the plugin's registry row (its tables stay).

        Built-in plugins cannot be removed (unless their code is gone); an
        enabled plugin needs ``force=True``, which disables it first.
        """
        plugin = self.plugins.get(name)
        with self._changing():
            records = self._records()
            record = self._recorded(name, records, "remove")
            if record.built_in and plugin is not None:
                raise PluginStateError(f"plugin {name!r} is built in and cannot be removed (disable it instead)")
            if record.enabled and not force:
                raise PluginStateError(f"plugin {name!r} is enabled: disable it first, or remove it with --force")
            if record.enabled:
                self.dependencies.refuse_if_needed([name], records, "remove")
                self._disable(name)
            if plugin:
                self._hook(plugin, "before_remove")
            self.registry.remove(name)
            self._loaded.discard(name)
            if plugin:
                self._hook(plugin, "after_remove")

    def ensure_built_ins(self) -> builtins.list[str]:
        """Add, install and enable every built-in plugin not recorded yet; return their names."""
        recorded = {record.name for record in self.registry.list()}
        missing = [name for name, plugin in self.plugins.items() if plugin.built_in and name not in recorded]
        return self.enable(*missing) if missing else []

    # -- steps ---------------------------------------------------------------------------

    def _add(self, plugin: Plugin, options: dict[str, Any] | None) -> PluginRecord:
        record = self.registry.add(PluginRecord(
            name=plugin.name, package_name=plugin.package_name, version=plugin.version,
            built_in=plugin.built_in, options=options or {},
        ))
        plugin.options = {**plugin.default_options, **record.options}
        self._hook(plugin, "after_add")
        return record

    def _install(self, plugin: Plugin, record: PluginRecord | None) -> None:
        if record is None:
            record = self._add(plugin, None)
        self._hook(plugin, "install")
        self.registry.update(plugin.name, installed=True, version=plugin.version)

    def _disable(self, name: str) -> None:
        plugin = self.plugins.get(name)
        if plugin:
            self._hook(plugin, "before_disable")
        self.registry.update(name, enabled=False)
        self._loaded.discard(name)
        if plugin:
            self._hook(plugin, "after_disable")

    def _migrate(self, plugins: builtins.list[Plugin]) -> None:
        """Apply the migrations of these plugins' apps (outside the state transaction:
        SQLite cannot alter tables inside one)."""
        for plugin in plugins:
            app = plugin.app_config
            if app is not None and module_has_submodule(app.module, "migrations"):
                self._busy.value = True
                try:
                    call_command("migrate", app.label, verbosity=0, interactive=False)
                except Exception as e:
                    raise HookFailed(plugin.name, "migrate", e) from e
                finally:
                    self._busy.value = False

    def _hook(self, plugin: Plugin, hook: str, *args: Any) -> None:
        try:
            getattr(plugin, hook)(*args)
        except Exception as e:
            raise HookFailed(plugin.name, hook, e) from e

    @contextlib.contextmanager
    def _changing(self) -> Iterator[None]:
        """One transaction for the state and the hooks' writes, holding the registry's lock
        (one operation at a time across processes); on failure, put every record back as
        it was (drivers outside the database too) and record a hook's error."""
        using = router.db_for_write(ApplicationPlugin)
        with self._lock:
            self._busy.value = True
            try:
                with transaction.atomic(using=using):
                    self.registry.lock()
                    snapshot = self._records()
                    try:
                        yield
                    except BaseException:
                        self._restore(snapshot)  # drivers outside the transaction; the database rolls back
                        raise
                    sync.publish(STATE_CHANNEL, {"version": self.registry.version()}, using=using)
            except HookFailed as e:
                if self.registry.get(e.name) is not None:
                    self.registry.update(e.name, last_error=str(e))
                self._record_failure(e)
                raise
            finally:
                self._busy.value = False
                self.reload()

    def _record_failure(self, error: HookFailed) -> None:
        message = f"plugin operation rolled back: {error}"
        logger.warning("%s", message)
        runtime.supervisor.record_error(message)

    def _records(self) -> dict[str, PluginRecord]:
        return {record.name: record for record in self.registry.list()}

    def _restore(self, snapshot: dict[str, PluginRecord]) -> None:
        current = self._records()
        for name in set(snapshot) | set(current):
            if current.get(name) != snapshot.get(name):
                self.registry.restore(name, snapshot.get(name))

    # -- rules ---------------------------------------------------------------------------

    def _require_names(self, names: tuple[str, ...], operation: str) -> None:
        if not names:
            raise PluginError(f"name at least one plugin to {operation}")

    def _code(self, name: str, operation: str) -> Plugin:
        plugin = self.plugins.get(name)
        if plugin is None:
            if self.registry.get(name) is not None:
                raise PluginMissing(name, operation)
            raise PluginNotFound(name)
        return plugin

    def _recorded(self, name: str, records: dict[str, PluginRecord] | None, operation: str) -> PluginRecord:
        record = records.get(name) if records is not None else self.registry.get(name)
        if record is None:
            if name in self.plugins:
                raise PluginStateError(f"cannot {operation} plugin {name!r}: it is not added")
            raise PluginNotFound(name)
        return record

    def _validated_options(self, plugin: Plugin, options: Any) -> dict[str, Any]:
        if options is None:
            return {}
        if not isinstance(options, dict):
            raise InvalidOptions(f"options of plugin {plugin.name!r} must be a JSON object, got {options!r}")
        try:
            return plugin.validate_options(dict(options))
        except (ValueError, TypeError) as e:
            raise InvalidOptions(f"options of plugin {plugin.name!r} refused: {e}") from e


plugin_manager = PluginManager()
pm = plugin_manager
