"""The plugin manager's lifecycle: hook order, dependencies, rollback, missing packages."""

from __future__ import annotations

import asyncio

import pytest
from django.dispatch import Signal

from demo.audit.models import AuditEvent
from tachycore.errors import (
    BuiltInPlugin,
    DependencyError,
    HookFailed,
    InvalidOptions,
    PluginMissing,
    PluginNotFound,
    PluginStateError,
)
from tachycore.manager import PluginManager
from tachycore.plugins import Plugin
from tachycore.registry import DatabaseRegistry, MemoryRegistry, PluginRecord
from tests.helpers.processes import wait_until

HOOKS = ("before_load", "load", "install", "after_add", "before_enable", "after_enable",
         "before_disable", "after_disable", "before_remove", "after_remove")


class Recorder(Plugin):
    """A plugin that writes each hook call into a shared list, and can fail on demand."""

    def __init__(self, name, calls, depends_on=(), version="1.0", fail=(), built_in=False, writes=False):
        self.name = name
        self.depends_on = tuple(depends_on)
        self.version = version
        self.built_in = built_in
        self.calls = calls
        self.fail = set(fail)
        self.writes = writes
        super().__init__(None)

    def _hook(self, hook, *args):
        self.calls.append((self.name, hook, *args))
        if self.writes:
            AuditEvent.objects.create(plugin=self.name, event=hook)
        if hook in self.fail:
            raise RuntimeError(f"{hook} broke")

    def validate_options(self, options):
        if options.get("size", 1) < 1:
            raise ValueError("size must be positive")
        return options

    def upgrade(self, from_version):
        self._hook("upgrade", from_version)


for _hook_name in HOOKS:
    setattr(Recorder, _hook_name, lambda self, _h=_hook_name: self._hook(_h))


@pytest.fixture
def calls():
    return []


@pytest.fixture
def make(calls, db, settings):
    """Build a manager over a fresh memory registry from ``name: depends_on`` pairs.

    Its plugins are none of the site's: governance (which asks the site's manager about
    plugins and grants) is off, these tests are about the lifecycle."""
    settings.TACHYCORE = {**settings.TACHYCORE, "GOVERNANCE": "off"}

    def build(registry=None, **spec):
        plugins = [Recorder(name, calls, **options) for name, options in spec.items()]
        return PluginManager(registry=registry or MemoryRegistry(), plugins=plugins)

    return build


def states(manager):
    return {r.name: (r.installed, r.enabled) for r in manager.registry.list()}


def test_enable__runs_hooks_in_documented_order(make, calls):
    manager = make(a={}, b={"depends_on": ["a"]})

    assert manager.enable("b") == ["a", "b"]

    per_plugin = ["after_add", "install", "before_enable", "before_load", "load", "after_enable"]
    assert calls == [("a", hook) for hook in per_plugin] + [("b", hook) for hook in per_plugin]
    assert states(manager) == {"a": (True, True), "b": (True, True)}


def test_disable__runs_dependents_first_whatever_the_order_given(make, calls):
    manager = make(a={}, b={"depends_on": ["a"]})
    manager.enable("b")
    calls.clear()

    assert manager.disable("a", "b") == ["b", "a"]

    # after_disable once the disable committed and the calls inside have returned
    assert calls == [("b", "before_disable"), ("a", "before_disable"),
                     ("b", "after_disable"), ("a", "after_disable")]
    assert states(manager) == {"a": (True, False), "b": (True, False)}


def test_remove__force_disables_then_removes(make, calls):
    manager = make(a={})
    manager.enable("a")
    calls.clear()

    manager.remove("a", force=True)

    assert calls == [("a", "before_disable"), ("a", "after_disable"),
                     ("a", "before_remove"), ("a", "after_remove")]
    assert manager.registry.get("a") is None
    assert manager.get("a").status == "not added"


def test_remove__enabled_plugin_needs_force(make):
    manager = make(a={})
    manager.enable("a")

    with pytest.raises(PluginStateError, match="--force"):
        manager.remove("a")

    assert states(manager) == {"a": (True, True)}


@pytest.mark.parametrize("force", [False, True])
def test_remove__built_in_plugin_is_refused(make, force):
    manager = make(core={"built_in": True})
    manager.enable("core")

    with pytest.raises(PluginStateError, match="plugin 'core' is built in and cannot be removed"):
        manager.remove("core", force=force)

    assert manager.registry.get("core").enabled


def test_disable__built_in_plugin_is_refused_with_its_off_switch(make, calls):
    manager = make(core={"built_in": True}, other={})
    manager.plugins["core"].off_switch = 'set CORE = {"DISABLED": True}'
    manager.enable("core", "other")
    calls.clear()

    with pytest.raises(BuiltInPlugin) as refused:
        manager.disable("other", "core")

    assert str(refused.value) == (
        "plugin 'core' is built in and cannot be disabled; to turn it off, set CORE = {\"DISABLED\": True}")
    assert manager.is_enabled("core") and manager.is_enabled("other")  # nothing of the call happened
    assert calls == []


def test_add__records_without_installing(make, calls):
    manager = make(a={})

    info = manager.add("a", options={"size": 3})

    assert (info.status, info.installed, info.enabled, info.options) == ("added", False, False, {"size": 3})
    assert calls == [("a", "after_add")]


def test_install__runs_install_once(make, calls):
    manager = make(a={})

    manager.install("a")
    manager.install("a")
    manager.enable("a")
    manager.disable("a")
    manager.enable("a")

    assert calls.count(("a", "install")) == 1
    assert manager.get("a").installed


def test_upgrade__passes_the_stored_version_and_records_the_new_one(make, calls):
    manager = make(a={"version": "1.0"})
    manager.enable("a")
    manager.plugins["a"].version = "1.1"
    assert manager.get("a").upgradable

    assert manager.upgrade("a") == ("1.0", "1.1")

    assert ("a", "upgrade", "1.0") in calls
    assert manager.registry.get("a").version == "1.1"
    assert not manager.get("a").upgradable


def test_upgrade__same_version_runs_nothing(make, calls):
    manager = make(a={})
    manager.enable("a")
    calls.clear()

    assert manager.upgrade("a") == ("1.0", "1.0")
    assert calls == []


def test_upgrade__not_installed_is_refused(make):
    manager = make(a={})
    manager.add("a")

    with pytest.raises(PluginStateError, match="not installed"):
        manager.upgrade("a")


def test_boot__before_load_for_all_then_load_for_all(make, calls):
    registry = MemoryRegistry()
    make(registry=registry, a={}, b={"depends_on": ["a"]}).enable("b")
    calls.clear()

    fresh = make(registry=registry, a={}, b={"depends_on": ["a"]})
    fresh.refresh(force=True)

    assert calls == [("a", "before_load"), ("b", "before_load"), ("a", "load"), ("b", "load")]


def test_enable__resolves_a_diamond_dependencies_first(make):
    manager = make(d={"depends_on": ["b", "c"]}, c={"depends_on": ["a"]}, b={"depends_on": ["a"]}, a={})

    order = manager.enable("d")

    assert order[0] == "a" and order[-1] == "d" and sorted(order[1:3]) == ["b", "c"]


def test_enable__already_enabled_dependency_is_not_enabled_again(make, calls):
    manager = make(a={}, b={"depends_on": ["a"]})
    manager.enable("a")
    calls.clear()

    assert manager.enable("b") == ["b"]
    assert [c for c in calls if c[0] == "a"] == []


def test_enable__failing_hook_rolls_back_every_plugin_and_the_hooks_writes(make, calls):
    manager = make(registry=DatabaseRegistry(), a={"writes": True},
                   b={"depends_on": ["a"], "fail": ["after_enable"], "writes": True})
    before = states(manager)

    with pytest.raises(HookFailed, match="after_enable"):
        manager.enable("b")

    assert states(manager) == before
    assert "a" not in before and "b" not in before
    assert AuditEvent.objects.count() == 0
    assert not manager.is_enabled("a")


def test_enable__failing_hook_records_the_error_on_an_added_plugin(make):
    manager = make(a={}, b={"depends_on": ["a"], "fail": ["before_enable"]})
    manager.add("b")

    with pytest.raises(HookFailed) as raised:
        manager.enable("b")

    assert raised.value.name == "b"
    assert states(manager) == {"b": (False, False)}
    assert "before_enable() failed: RuntimeError: before_enable broke" in manager.get("b").last_error


def test_enable__success_clears_the_last_error(make):
    manager = make(a={"fail": ["install"]})
    manager.add("a")
    with pytest.raises(HookFailed):
        manager.enable("a")
    manager.plugins["a"].fail.clear()

    manager.enable("a")

    assert manager.get("a").last_error == ""


def test_enable__with_the_dual_write_registry_rolls_back_memory_too(make):
    from tachycore.registry import DualWriteRegistry

    registry = DualWriteRegistry(persistent=DatabaseRegistry())
    manager = make(registry=registry, a={}, b={"depends_on": ["a"], "fail": ["load"]})
    before = registry.persistent.list()

    with pytest.raises(HookFailed):
        manager.enable("b")

    assert registry.list() == before
    assert registry.persistent.list() == before


def test_disable__refused_while_an_enabled_plugin_depends_on_it(make):
    manager = make(a={}, b={"depends_on": ["a"]}, c={"depends_on": ["a"]})
    manager.enable("b", "c")

    with pytest.raises(DependencyError, match="depend on it: b, c"):
        manager.disable("a")

    assert states(manager) == {"a": (True, True), "b": (True, True), "c": (True, True)}


def test_disable__a_disabled_dependent_does_not_block(make):
    manager = make(a={}, b={"depends_on": ["a"]})
    manager.enable("b")
    manager.disable("b")

    assert manager.disable("a") == ["a"]


def test_remove__force_refused_while_an_enabled_plugin_depends_on_it(make):
    manager = make(a={}, b={"depends_on": ["a"]})
    manager.enable("b")

    with pytest.raises(DependencyError, match="b"):
        manager.remove("a", force=True)

    assert states(manager) == {"a": (True, True), "b": (True, True)}


def test_enable__cycle_is_refused_and_changes_nothing(make, calls):
    manager = make(a={"depends_on": ["b"]}, b={"depends_on": ["c"]}, c={"depends_on": ["a"]})

    with pytest.raises(DependencyError, match="cycle: a -> b -> c -> a"):
        manager.enable("a")

    assert states(manager) == {} and calls == []


def test_enable__unknown_dependency_is_refused(make):
    manager = make(a={"depends_on": ["nowhere"]})

    with pytest.raises(DependencyError, match="'a' depends on 'nowhere', which is not installed"):
        manager.enable("a")

    assert states(manager) == {}


@pytest.mark.parametrize("operation", ["add", "install", "enable", "upgrade", "disable", "remove", "get"])
def test_unknown_name__is_refused(make, operation):
    manager = make(a={})

    with pytest.raises(PluginNotFound, match="unknown plugin 'zzz'"):
        getattr(manager, operation)("zzz")


@pytest.mark.parametrize("options", [{"size": 0}, ["not", "a", "dict"], "text"])
def test_options__bad_options_are_refused_and_nothing_is_stored(make, options):
    manager = make(a={})

    with pytest.raises(InvalidOptions):
        manager.add("a", options=options)
    with pytest.raises(InvalidOptions):
        manager.enable("a", options=options)

    assert states(manager) == {}


def test_options__given_at_enable_reach_the_plugin(make):
    manager = make(a={})

    manager.enable("a", options={"size": 5})

    assert manager.get("a").options == {"size": 5}
    assert manager.plugins["a"].options == {"size": 5}


@pytest.fixture
def with_ghost(make):
    registry = MemoryRegistry([PluginRecord(name="ghost", package_name="gone.ghost", version="3.0",
                                            installed=True, enabled=True)])
    return make(registry=registry, a={})


def test_missing__is_listed_as_missing(with_ghost):
    info = with_ghost.get("ghost")

    assert (info.status, info.missing, info.version, info.package_name) == ("missing", True, "3.0", "gone.ghost")
    assert not with_ghost.is_enabled("ghost")
    assert [i.name for i in with_ghost.list()] == ["a", "ghost"]


def test_missing__enable_is_refused(with_ghost):
    with pytest.raises(PluginMissing, match="package is missing"):
        with_ghost.enable("ghost")


def test_missing__disable_then_remove_work(with_ghost):
    assert with_ghost.disable("ghost") == ["ghost"]
    with_ghost.remove("ghost")

    assert with_ghost.registry.get("ghost") is None
    with pytest.raises(PluginNotFound):
        with_ghost.get("ghost")


def test_missing__does_not_stop_the_others(with_ghost):
    assert with_ghost.enable("a") == ["a"]
    assert with_ghost.is_enabled("a")


def test_ensure_built_ins__adds_installs_and_enables_them_once(make, calls):
    manager = make(core={"built_in": True}, extra={})

    assert manager.ensure_built_ins() == ["core"]
    assert manager.ensure_built_ins() == []

    assert states(manager) == {"core": (True, True)}
    assert manager.get("core").built_in


def test_is_enabled__follows_another_process_without_restart(make, calls):
    registry = MemoryRegistry()
    here = make(registry=registry, a={})
    elsewhere = make(registry=registry, a={})
    assert not here.is_enabled("a")

    elsewhere.enable("a")
    calls.clear()

    assert wait_until(lambda: here.is_enabled("a"), timeout=1)
    assert calls == [("a", "before_load"), ("a", "load")]
    elsewhere.disable("a")
    assert wait_until(lambda: not here.is_enabled("a"), timeout=1)


@pytest.mark.django_db(transaction=True)
def test_is_enabled__works_inside_an_event_loop(calls):
    manager = PluginManager(registry=DatabaseRegistry(), plugins=[Recorder("a", calls)])
    manager.enable("a")
    manager.reset()
    manager._registry = DatabaseRegistry()

    async def ask():
        return manager.is_enabled("a")

    assert asyncio.run(ask()) is True


def test_connect__receiver_runs_only_while_enabled(make):
    manager = make(a={})
    plugin = manager.plugins["a"]
    plugin.is_enabled = lambda: manager.is_enabled("a")
    signal = Signal()
    received = []
    plugin.connect(signal, lambda sender, **kw: received.append(sender))

    signal.send("off")
    manager.enable("a")
    signal.send("on")
    manager.disable("a")
    signal.send("off again")

    assert received == ["on"]


def test_boot__a_failing_load_marks_this_node_in_error_and_the_others_still_load(make, calls):
    from tachycore.runtime import runtime

    registry = MemoryRegistry()
    make(registry=registry, a={}, b={}).enable("a", "b")
    fresh = make(registry=registry, a={"fail": ["load"]}, b={})

    fresh.refresh(force=True)

    assert ("b", "load") in calls[-2:]
    assert runtime.supervisor.status == "error"
    assert "plugin 'a': load() failed: RuntimeError: load broke" in runtime.supervisor.errors[0]["message"]


@pytest.mark.django_db(transaction=True)
def test_enable__inside_a_transaction_that_rolls_back_leaves_the_process_unchanged():
    from django.db import transaction

    from tachycore.manager import plugin_manager

    class Rollback(Exception):
        pass

    with pytest.raises(Rollback), transaction.atomic():
        plugin_manager.enable("notes")
        assert plugin_manager.is_enabled("notes")  # this transaction sees its own change
        raise Rollback

    assert not plugin_manager.is_enabled("notes")
    assert not plugin_manager.is_enabled("audit")
