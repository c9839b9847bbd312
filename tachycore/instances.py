"""Plugin instances in this process: one active instance per enabled plugin, and the old ones
draining (blue-green).

Every entry into a plugin (a request to its URLs, a job handler, a service call, an event
handler, a signal receiver connected with ``Plugin.connect``) holds a reference to the active
instance while it runs (:meth:`Instances.entered`). A switch is atomic: new calls go to the
new instance at once, calls already inside finish on the old one, and the old one's
``unload()`` runs when its last call has returned, or at ``TACHYCORE["DRAIN_TIMEOUT"]``
anyway (recorded on the node and in the audit trail).

This module keeps count; the plugin states (``plugin_states``) decide which instance is
active, following the registry, and the plugin manager drains a disabled plugin.
"""

from __future__ import annotations

import collections
import contextvars
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from . import audit
from .conf import tachycore_settings
from .context import acting_as
from .errors import PluginUnavailable
from .models import AuditDecision

logger = logging.getLogger("tachycore.instances")

ACTIVE = "active"
DRAINING = "draining"
UNLOADED = "unloaded"

#: how a draining instance ended: its calls returned, the timeout, or a newer reload pushed
#: it out while ``MAX_DRAINING`` others were draining
DRAINED, TIMED_OUT, EVICTED = "drained", "timeout", "evicted"


#: the plugin object of the instance the running call entered (a view, a job handler)
_entered: contextvars.ContextVar[Any] = contextvars.ContextVar("tachycore_instance", default=None)


def current_instance() -> Any:
    """The plugin object whose instance the code running now was entered in (a request to the
    plugin's URLs, its job handler, ``Instances.entered``); ``None`` outside one. Use it in a
    view instead of looking the plugin up: after a reload, the manager already names the new
    object while this call finishes on the old one."""
    return _entered.get()


class Inside:
    """What ``Instances.entered`` returns: ``inside = instances.entered(name)`` holds the
    active instance (or raises ``PluginUnavailable``); ``with inside as plugin:`` runs the
    block as the plugin and gives the reference back at its end. A class rather than a
    generator: every request to a plugin's URLs and every job enters one."""

    __slots__ = ("_acting", "_entries", "_instance", "_token")

    def __init__(self, entries: Instances, name: str) -> None:
        self._entries = entries
        self._instance = entries.enter(name)
        self._acting = acting_as(name)

    def __enter__(self) -> Any:
        self._token = _entered.set(self._instance.plugin)
        self._acting.__enter__()
        return self._instance.plugin

    def __exit__(self, *exc_info: object) -> None:
        self._acting.__exit__(*exc_info)
        _entered.reset(self._token)
        self._entries.leave(self._instance)


class Instance:
    """One object of a plugin's class in this process, and the calls inside it now."""

    __slots__ = ("_lock", "calls", "deadline", "drained", "generation", "name", "options",
                 "plugin", "state", "unload_here")

    def __init__(self, name: str, plugin: Any, generation: int, options: dict[str, Any] | None = None) -> None:
        self.name = name
        self.plugin = plugin
        self.generation = generation
        #: the options it was built with, as the registry gave them (a change builds a new one)
        self.options = dict(plugin.options if options is None else options)
        self.calls = 0
        self.state = ACTIVE
        self.deadline = 0.0
        #: whether this process's drain runs ``unload()`` (``False``: whoever retired it does,
        #: as ``pm disable`` does after ``after_disable``)
        self.unload_here = True
        #: set when the last call inside has returned after the instance was retired
        self.drained = threading.Event()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<Instance {self.name} #{self.generation} {self.state}, {self.calls} call(s) inside>"

    def report(self) -> dict[str, Any]:
        return {"generation": self.generation, "calls": self.calls, "state": self.state}


class Instances:
    """The instances of every plugin in this process (one object per process: ``instances``)."""

    def __init__(self) -> None:
        self._active: dict[str, Instance] = {}
        self._draining: dict[str, list[Instance]] = collections.defaultdict(list)
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._due: collections.deque[Instance] = collections.deque()
        self._reaper: threading.Thread | None = None
        #: told whenever an instance starts, retires or ends (the runtime writes the node row)
        self.on_change: Callable[[], None] = _nothing
        #: told of what an operator should see (the supervisor's ``record_error``)
        self.on_problem: Callable[[str], None] = _nothing_said

    # -- entering ------------------------------------------------------------------------

    def active(self, name: str) -> Instance | None:
        """The instance new calls into ``name`` go to (``None``: disabled or not loaded here)."""
        return self._active.get(name)

    def entering(self, instance: Instance) -> contextvars.Token[Any]:
        """Mark ``instance`` (entered) as the one the code running now is in (``current_instance``)."""
        return _entered.set(instance.plugin)

    @staticmethod
    def left(token: contextvars.Token[Any]) -> None:
        _entered.reset(token)

    def enter(self, name: str) -> Instance:
        """Hold a reference to ``name``'s active instance (give it back with :meth:`leave`);
        ``PluginUnavailable`` when it has none."""
        while True:
            instance = self._active.get(name)
            if instance is None:
                raise PluginUnavailable(name)
            with instance._lock:
                if instance.state is ACTIVE:
                    instance.calls += 1
                    return instance
            # switched between the lookup and the lock: the new one is in _active already

    def leave(self, instance: Instance) -> None:
        with instance._lock:
            instance.calls -= 1
            drained = instance.calls == 0 and instance.state is DRAINING
        if drained:
            self._drained(instance)

    def entered(self, name: str) -> Inside:
        """A call inside ``name``'s active instance: the reference is taken now
        (``PluginUnavailable`` when there is none) and given back when the ``with`` block
        ends; the block runs as that plugin, with ``current_instance()`` set. Yields the
        plugin object."""
        return Inside(self, name)

    # -- switching -----------------------------------------------------------------------

    def activate(self, name: str, plugin: Any, generation: int, options: dict[str, Any] | None = None) -> Instance:
        """Make ``plugin`` (loaded already) the active instance of ``name``: new calls go to it
        from now on; the instance it replaces drains. While ``MAX_DRAINING`` old instances are
        still draining here, the oldest is unloaded at once (recorded)."""
        instance = Instance(name, plugin, generation, options)
        evicted: list[Instance] = []
        with self._lock:
            old = self._active.get(name)
            self._active[name] = instance
            if old is not None:
                waiting = self._draining[name]
                while len(waiting) >= tachycore_settings.MAX_DRAINING:
                    evicted.append(waiting.pop(0))
                self._retire(old)
        if old is not None:
            _tell_retired(old)
        for victim in evicted:
            self._end(victim, EVICTED)
        self.on_change()
        return instance

    def retire(self, name: str, *, unload_here: bool = True) -> Instance | None:
        """Take ``name``'s active instance out of service (disabled): new calls are refused at
        once, calls inside finish. Returns it (``None``: there was none)."""
        with self._lock:
            instance = self._active.pop(name, None)
            if instance is not None:
                instance.unload_here = unload_here
                self._retire(instance)
        if instance is not None:
            _tell_retired(instance)
            self.on_change()
        return instance

    def release(self, instance: Instance) -> None:
        """Hand an instance retired with ``unload_here=False`` back to the drain here (its
        retirer will not unload it: a disable rolled back)."""
        instance.unload_here = True
        with self._lock:
            if instance.drained.is_set():
                self._due.append(instance)
            self._ensure_reaper()
            self._wake.notify()  # its deadline counts again

    def _retire(self, instance: Instance) -> None:
        """Mark ``instance`` draining (``self._lock`` held)."""
        with instance._lock:
            instance.state = DRAINING
            instance.deadline = time.monotonic() + tachycore_settings.DRAIN_TIMEOUT
            idle = instance.calls == 0
        self._draining[instance.name].append(instance)
        if idle:
            instance.drained.set()
            self._due.append(instance)
        self._ensure_reaper()
        self._wake.notify()

    def draining(self, name: str) -> list[Instance]:
        """The old instances of ``name`` not unloaded yet, oldest first."""
        with self._lock:
            return list(self._draining.get(name, ()))

    def names(self) -> list[str]:
        """The plugins with an active instance here."""
        return list(self._active)

    def report(self) -> dict[str, Any]:
        """What the node row shows: each plugin's active instance and those draining."""
        with self._lock:
            names = set(self._active) | {name for name, waiting in self._draining.items() if waiting}
            return {name: {
                **(self._active[name].report() if name in self._active else {"state": "retired"}),
                "draining": [old.report() for old in self._draining.get(name, ())],
            } for name in sorted(names)}

    # -- draining ------------------------------------------------------------------------

    def _drained(self, instance: Instance) -> None:
        instance.drained.set()
        with self._lock:
            self._due.append(instance)
            self._ensure_reaper()
            self._wake.notify()

    def _ensure_reaper(self) -> None:
        if self._reaper is None or not self._reaper.is_alive():
            # a plain thread: what it unloads runs as its plugin, never as who retired it
            self._reaper = threading.Thread(target=self._reap, name="tachycore-drain", daemon=True)
            self._reaper.start()

    def _reap(self) -> None:
        """Unload each instance whose calls have returned, and each past its deadline; end
        when nothing is left to wait for (the next retire starts a new one)."""
        while True:
            with self._lock:
                due = self._next_due()
                while due is None:
                    if not self._due and not any(self._draining.values()):
                        self._reaper = None
                        return
                    self._wake.wait(self._next_deadline())
                    due = self._next_due()
            self._end(*due)

    def _next_due(self) -> tuple[Instance, str] | None:
        while self._due:
            instance = self._due.popleft()
            if instance.unload_here and instance.state is DRAINING:
                return instance, DRAINED
        now = time.monotonic()
        for waiting in self._draining.values():
            for instance in waiting:
                if instance.unload_here and instance.deadline <= now and not instance.drained.is_set():
                    return instance, TIMED_OUT
        return None

    def _next_deadline(self) -> float | None:
        deadlines = [instance.deadline for waiting in self._draining.values() for instance in waiting
                     if instance.unload_here and not instance.drained.is_set()]
        return max(0.01, min(deadlines) - time.monotonic()) if deadlines else None

    def _end(self, instance: Instance, outcome: str) -> None:
        """Unload ``instance`` (as its plugin) and forget it; a timeout or an eviction with calls
        still inside is recorded on the node and in the audit trail."""
        with instance._lock:
            if instance.state is UNLOADED:
                return
            instance.state = UNLOADED
            calls = instance.calls
        with self._lock:
            waiting = self._draining.get(instance.name, [])
            if instance in waiting:
                waiting.remove(instance)
            self._wake.notify()  # the reaper may have nothing left to wait for
        if calls:
            self._record_forced(instance, outcome, calls)
        try:
            with acting_as(instance.name):
                instance.plugin.unload()
        except Exception as e:
            logger.exception("plugin %r: unload() failed", instance.name)
            self.on_problem(f"plugin {instance.name!r}: unload() of instance #{instance.generation} "
                            f"failed: {type(e).__name__}: {e}")
        finally:
            self.on_change()

    def unload(self, instance: Instance, outcome: str = DRAINED) -> None:
        """Unload an instance retired with ``unload_here=False`` now (``pm disable``, once its
        ``after_disable`` has run)."""
        self._end(instance, outcome)

    def _record_forced(self, instance: Instance, outcome: str, calls: int) -> None:
        why = (f"still busy after DRAIN_TIMEOUT ({tachycore_settings.DRAIN_TIMEOUT:g} s)" if outcome == TIMED_OUT
               else f"pushed out by a newer reload (MAX_DRAINING {tachycore_settings.MAX_DRAINING})")
        message = (f"plugin {instance.name!r}: instance #{instance.generation} unloaded with {calls} "
                   f"call(s) inside, {why}")
        logger.warning("%s", message)
        self.on_problem(message)
        audit.record_operation("instance.unload", [instance.name], AuditDecision.FAILED, message)

    def reset(self) -> None:
        """Retire every active instance (a settings change: the states are read again and
        loaded anew); each unloads here once its calls have returned."""
        for name in self.names():
            self.retire(name)

    def _after_fork_in_child(self) -> None:
        # the reaper does not exist in the child, and another thread's locks would stay held
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._reaper = None
        for instance in [*self._active.values(), *(i for w in self._draining.values() for i in w)]:
            instance._lock = threading.Lock()


#: told of each instance that takes no new call any more (a reload switched to a newer one, the
#: plugin was disabled, or the instances were forgotten), whichever manager keeps it:
#: ``tachycore.events`` drops the subscriptions that instance's ``load()`` made
_retire_listeners: list[Callable[[Instance], None]] = []


def on_retire(listener: Callable[[Instance], None]) -> None:
    """Call ``listener(instance)`` each time an instance retires (``TachycoreConfig.ready()``)."""
    if listener not in _retire_listeners:
        _retire_listeners.append(listener)


def _tell_retired(instance: Instance) -> None:
    for listener in list(_retire_listeners):
        try:
            listener(instance)
        except Exception:
            logger.exception("plugin %r: a listener of retired instances failed", instance.name)


#: the plugin object whose ``before_load`` or ``load`` runs now (what it binds to itself, such
#: as its event subscriptions, belongs to that instance)
_loading: contextvars.ContextVar[Any] = contextvars.ContextVar("tachycore_loading", default=None)


@contextmanager
def loading(plugin: Any) -> Iterator[None]:
    """Run the block (a new instance's ``before_load`` or ``load``) as ``plugin``, noting that
    this object is the instance being loaded (:func:`loading_plugin`)."""
    token = _loading.set(plugin)
    try:
        with acting_as(plugin.name):
            yield
    finally:
        _loading.reset(token)


def loading_plugin() -> Any:
    """The plugin object whose ``before_load`` or ``load`` runs now (``None``: none)."""
    return _loading.get()


def _nothing() -> None:
    return None


def _nothing_said(message: str) -> None:
    return None


instances = Instances()
os.register_at_fork(after_in_child=instances._after_fork_in_child)
