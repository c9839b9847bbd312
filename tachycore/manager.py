"""The plugin manager: the lifecycle of every plugin, over the registry."""

from __future__ import annotations

import builtins
import contextlib
import dataclasses
import logging
import time
from collections.abc import Iterator
from typing import Any

from django.core.management import call_command
from django.db import router, transaction
from django.utils.module_loading import module_has_submodule

from . import audit, governance, sync, versions
from .conf import tachycore_settings
from .errors import (
    BuiltInPlugin,
    HookFailed,
    InvalidOptions,
    PluginAlreadyExists,
    PluginError,
    PluginMissing,
    PluginNotFound,
    PluginStateError,
    TooManyDraining,
    UngrantedCapabilities,
)
from .info import PluginInfo
from .instances import DRAINED, TIMED_OUT, Instance, instances, loading
from .models import Access, ApplicationPlugin
from .plugin_states import STATE_CHANNEL, PluginStates
from .plugins import Plugin
from .registry import PluginRecord
from .runtime import runtime

logger = logging.getLogger("tachycore.plugins")


@dataclasses.dataclass(frozen=True)
class Drain:
    """How the calls inside a disabled plugin's instance (in the disabling process) ended."""

    name: str
    #: calls inside the instance when it was retired
    calls: int
    #: ``True``: they all returned; ``False``: ``DRAIN_TIMEOUT`` came first
    drained: bool
    #: seconds waited
    waited: float

    def describe(self) -> str:
        if not self.calls:
            return f"{self.name}: no call was inside; after_disable and unload ran at once"
        if self.drained:
            return (f"{self.name}: after_disable and unload ran once the {self.calls} call(s) inside "
                    f"had returned ({self.waited:g} s)")
        return (f"{self.name}: after_disable and unload ran at DRAIN_TIMEOUT ({self.waited:g} s) "
                f"with call(s) still inside (recorded on the node and in the audit trail)")


class PluginManager(PluginStates):
    """Adds, installs, enables, disables, upgrades and removes plugins.

    Each operation runs under the registry's lock in one transaction with its
    hooks' writes; after it commits, a ``plugin-state-changed`` sync message
    tells the other processes to re-read (see :class:`PluginStates`).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: how the last disable of each plugin drained in this process (``pm disable`` says it)
        self.drains: dict[str, Drain] = {}

    # -- lifecycle -----------------------------------------------------------------------

    @audit.operation("pm.add")
    def add(self, name: str, options: dict[str, Any] | None = None) -> PluginInfo:
        """Record a discovered plugin in the registry (neither installed nor enabled)."""
        plugin = self._code(name, "add")
        options = self._validated_options(plugin, options)
        with self._changing():
            if self.registry.get(name) is not None:
                raise PluginAlreadyExists(name)
            self._add(plugin, options)
        return self.get(name)

    @audit.operation("pm.install")
    def install(self, name: str) -> PluginInfo:
        """Run the plugin's migrations and ``install()``; adds it first when needed."""
        plugin = self._code(name, "install")
        record = self.registry.get(name)
        if record is None or not record.installed:
            self._migrate([plugin])
            with self._changing():
                self._install(plugin, record)
        return self.get(name)

    @audit.operation("pm.enable")
    def enable(self, *names: str, options: dict[str, Any] | None = None, grant_requested: bool = False,
               granted_by: str = "") -> builtins.list[str]:
        """Enable plugins and their dependencies (first); return the names newly enabled.

        Installs what is not installed yet. All of it commits at once, or, when a
        hook fails, nothing does and the error is recorded on the plugin.

        A plugin that asks for capabilities (``Plugin.capabilities``) nobody granted is
        refused with ``UngrantedCapabilities`` (naming them and the commands that grant
        them) while ``TACHYCORE["GOVERNANCE"]`` enforces; ``grant_requested`` grants them
        in the same transaction (recorded as given by ``granted_by``).
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
        if options is not None and names[0] in before and before[names[0]].enabled:
            self._refuse_draining(names[0], "its options are not changed")
        if not grant_requested:
            self._refuse_ungranted([n for n in order if not (n in before and before[n].enabled)])
        self._migrate([self.plugins[n] for n in order if not (n in before and before[n].installed)])
        with self._changing():
            records = self._records()  # again, under the registry lock: another process may have acted
            todo = [name for name in order if not (name in records and records[name].enabled)]
            if options is not None and names[0] in records:
                records[names[0]] = self.registry.update(names[0], options=options)
            for name in todo:
                plugin = self._fresh(name, records.get(name))
                if grant_requested:  # first: its hooks (install...) run under these grants
                    self._grant_requested(plugin, granted_by or "pm enable --grant-requested")
                record = records.get(name)
                if record is None:
                    record = self._add(plugin, options if name == names[0] else None)
                if not record.installed:
                    self._install(plugin, record)
                self._hook(plugin, "before_enable")
                record = self.registry.update(name, enabled=True, last_error="")
                with loading(plugin):
                    self._hook(plugin, "before_load")
                    self._hook(plugin, "load")
                self._start(name, plugin, record)  # takes calls, after_enable's too
                self._hook(plugin, "after_enable")
        return todo

    @audit.operation("pm.disable")
    def disable(self, *names: str) -> builtins.list[str]:
        """Disable plugins (dependents named in the same call first); return those disabled.

        Refused, naming them, while an enabled plugin outside ``names`` depends on one,
        and for a built-in plugin. Works on a missing plugin (no hooks run: its code is gone).

        New calls into a plugin are refused from the commit on (in every process as it
        follows); ``after_disable`` and ``unload`` run here once the calls inside this process
        have returned, or at ``DRAIN_TIMEOUT`` (:attr:`drains` tells which).
        """
        self._require_names(names, "disable")
        retired: dict[str, Instance] = {}
        try:
            with self._changing():
                records = self._records()
                for name in names:
                    self._recorded(name, records, "disable")
                    self._refuse_built_in(name, "disable")
                self.dependencies.refuse_if_needed(names, records, "disable")
                todo = [name for name in self.dependencies.teardown_order(names) if records[name].enabled]
                for name in todo:
                    self._disable(name)
                    instance = self.instances.retire(name, unload_here=False)  # no new call from now
                    if instance is not None:
                        retired[name] = instance
        except BaseException:
            for instance in retired.values():
                self.instances.release(instance)  # rolled back: it drains and unloads as after a reload
            raise
        self._finish_disable(todo, retired)
        return todo

    @audit.operation("pm.upgrade")
    def upgrade(self, name: str, force: bool = False) -> tuple[str, str]:
        """Run new migrations and ``upgrade(from_version)`` once; return ``(from, to)`` versions.

        Refused with ``OlderCodeRunning`` while live nodes run other code of the plugin (a
        rolling restart under way), unless ``force``."""
        plugin = self._code(name, "upgrade")
        record = self._recorded(name, None, "upgrade")
        if not record.installed:
            raise PluginStateError(f"plugin {name!r} is not installed: install it before upgrading")
        if record.version == plugin.version:
            return record.version, plugin.version
        if not force:
            versions.refuse_other_code(name, plugin.version)
        self._migrate([plugin])
        with self._changing():
            record = self._recorded(name, None, "upgrade")  # again, under the lock: it may be done already
            if record.version != plugin.version:
                self._hook(plugin, "upgrade", record.version)
                self.registry.update(name, version=plugin.version, last_error="")
        return record.version, plugin.version

    @audit.operation("pm.remove")
    def remove(self, name: str, force: bool = False) -> None:
        """Delete the plugin's registry row (its tables stay).

        Built-in plugins cannot be removed (unless their code is gone); an
        enabled plugin needs ``force=True``, which disables it first.
        """
        plugin = self.plugins.get(name)
        record = self._recorded(name, None, "remove")
        self._refuse_built_in(name, "remove")
        if record.enabled:
            if not force:
                raise PluginStateError(f"plugin {name!r} is enabled: disable it first, or remove it with --force")
            self.dependencies.refuse_if_needed([name], self._records(), "remove")
            self.disable(name)  # drains and runs after_disable
        with self._changing():
            record = self._recorded(name, None, "remove")
            if record.enabled:
                raise PluginStateError(f"plugin {name!r} was enabled again meanwhile: not removed")
            if plugin:
                self._hook(plugin, "before_remove")
            self.registry.remove(name)
            if plugin:
                self._hook(plugin, "after_remove")

    @audit.operation("pm.reload")
    def reload(self, name: str) -> int:
        """Blue-green: every process builds a new instance of ``name``, ``load()``s it and
        switches to it; calls already inside finish on the old one, which ``unload()``s after
        its last call. Returns the new generation. ``TooManyDraining`` while ``MAX_DRAINING``
        old instances are still draining here."""
        self._code(name, "reload")
        with self._changing():
            record = self._recorded(name, None, "reload")
            if not record.enabled:
                raise PluginStateError(f"plugin {name!r} is not enabled: there is no instance to reload")
            self._refuse_draining(name)
            return self.registry.update(name, generation=record.generation + 1).generation

    def ensure_built_ins(self) -> builtins.list[str]:
        """Add, install and enable every built-in plugin not recorded yet; return their names."""
        recorded = {record.name for record in self.registry.list()}
        missing = [name for name, plugin in self.plugins.items() if plugin.built_in and name not in recorded]
        return self.enable(*missing) if missing else []

    # -- steps ---------------------------------------------------------------------------

    def ungranted(self, name: str) -> dict[str, dict[str, Access]]:
        """What enabling ``name`` (and the plugins it needs that are not enabled yet) asks
        for and no live grant covers, by plugin; empty unless governance enforces.
        ``DependencyError`` when ``name`` cannot be enabled for its dependencies."""
        return self._ungranted([n for n in self.dependencies.resolve([name]) if not self.is_enabled(n)])

    def _ungranted(self, names: builtins.list[str]) -> dict[str, dict[str, Access]]:
        if tachycore_settings.GOVERNANCE != "enforce":
            return {}
        return {name: found for name in names if not self.plugins[name].built_in
                and (found := governance.ungranted(name, self.plugins[name].capabilities))}

    def _refuse_ungranted(self, names: builtins.list[str]) -> None:
        if tachycore_settings.GOVERNANCE == "enforce" and tachycore_settings.GRANTS:
            # settings as code hold from the first enable, migrate or not
            governance.grants.apply_settings(tachycore_settings.GRANTS)
        missing = self._ungranted(names)
        if missing:
            asks = "; ".join(f"{name} asks for {', '.join(f'{c} {a.name}' for c, a in found.items())}"
                             for name, found in missing.items())
            commands = [line for name, found in missing.items() for line in governance.grant_commands(name, found)]
            raise UngrantedCapabilities(
                f"not enabled: {asks}, and no grant allows it. Grant with: {'; '.join(commands)} "
                f"(or enable with --grant-requested)")

    def _grant_requested(self, plugin: Plugin, granted_by: str) -> None:
        if plugin.built_in:
            return
        for capability, level in governance.ungranted(plugin.name, plugin.capabilities).items():
            governance.grants.grant(plugin.name, capability, level, granted_by=granted_by)

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

    def _finish_disable(self, names: builtins.list[str], retired: dict[str, Instance]) -> None:
        """After a disable committed: wait (one ``DRAIN_TIMEOUT`` for all) for the calls inside
        each instance to return, then ``after_disable`` and ``unload``, dependents first. A
        failing ``after_disable`` is recorded on the plugin and raised once all are done;
        interrupted, the instances not reached yet unload here when their calls return."""
        started = time.monotonic()
        deadline = started + tachycore_settings.DRAIN_TIMEOUT
        failed: builtins.list[HookFailed] = []
        waiting = dict(retired)
        try:
            for name in names:
                instance = waiting.pop(name, None)
                calls = instance.calls if instance is not None else 0
                drained = instance is None or instance.drained.wait(max(0.0, deadline - time.monotonic()))
                self.drains[name] = Drain(name, calls, drained, round(time.monotonic() - started, 3))
                try:
                    self._after_disable(name, instance)
                except HookFailed as e:
                    failed.append(e)
                finally:
                    if instance is not None:
                        self.instances.unload(instance, DRAINED if drained else TIMED_OUT)
        finally:
            for instance in waiting.values():
                self.instances.release(instance)
        if failed:
            raise failed[0]

    def _after_disable(self, name: str, instance: Instance | None) -> None:
        """Run ``after_disable`` in its own transaction, under the registry's lock, if the plugin
        is still disabled (enabled again or removed meanwhile, it is not: its cleanup would
        undo the newer state). A failure rolls back the hook's writes and is recorded."""
        plugin = instance.plugin if instance is not None else self.plugins.get(name)
        if plugin is None:
            return  # its code is gone
        try:
            with self._lock, transaction.atomic(using=router.db_for_write(ApplicationPlugin)):
                self.registry.lock()
                record = self.registry.get(name)
                if record is None or record.enabled:
                    logger.info("plugin %r: after_disable() not run: enabled again or removed meanwhile", name)
                    return
                self._hook(plugin, "after_disable")
        except HookFailed as e:
            message = f"plugin {name!r} is disabled, but its after_disable() failed (its writes were rolled back): {e.error}"
            self.registry.update(name, last_error=message)
            logger.warning("%s", message)
            runtime.supervisor.record_error(message)
            raise

    def _refuse_draining(self, name: str, what: str = "it is not reloaded") -> None:
        """``TooManyDraining`` while ``MAX_DRAINING`` old instances of ``name`` are draining,
        here or in another live process (as its node row last reported)."""
        limit = tachycore_settings.MAX_DRAINING
        waiting, where = len(self.instances.draining(name)), "in this process"
        if waiting < limit:
            elsewhere, node = versions.most_draining(name)
            if node is not None and elsewhere >= limit:
                waiting, where = elsewhere, f"on {versions.describe(node)}"
        if waiting >= limit:
            raise TooManyDraining(
                f"plugin {name!r}: {what}: {waiting} old instance(s) are still draining {where} (at "
                f"most MAX_DRAINING = {limit}); try again when their calls have returned, at the latest "
                f"after DRAIN_TIMEOUT ({tachycore_settings.DRAIN_TIMEOUT:g} s)")

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
                self.reread()

    def _record_failure(self, error: HookFailed) -> None:
        message = f"plugin operation rolled back: {error}"
        logger.warning("%s", message)
        runtime.supervisor.record_error(message)

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

    def _refuse_built_in(self, name: str, operation: str) -> None:
        """Built-in plugins stay enabled while their code is installed: a site turns one off by
        its setting (``off_switch``), so that no process serves it half-way."""
        plugin = self.plugins.get(name)
        if plugin is not None and plugin.built_in:
            raise BuiltInPlugin(name, operation, plugin.off_switch)

    def _validated_options(self, plugin: Plugin, options: Any) -> dict[str, Any]:
        if options is None:
            return {}
        if not isinstance(options, dict):
            raise InvalidOptions(f"options of plugin {plugin.name!r} must be a JSON object, got {options!r}")
        try:
            return plugin.validate_options(dict(options))
        except (ValueError, TypeError) as e:
            raise InvalidOptions(f"options of plugin {plugin.name!r} refused: {e}") from e


plugin_manager = PluginManager(own_instances=instances)
pm = plugin_manager
