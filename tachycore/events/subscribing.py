"""Who listens to which event in this process: the subscriptions, and which instance each
belongs to (see the package's docstring)."""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Callable
from typing import Any

from ..errors import EventError
from ..instances import Instance, Instances, instances, loading_plugin


@dataclasses.dataclass(frozen=True, slots=True)
class Event:
    """What a handler gets: ``handler(event)``. Treat ``payload`` as read-only: the handlers
    of this process share the object the publisher passed (other processes get its JSON)."""

    name: str
    payload: Any
    #: the plugin whose code published it (``None``: the host site)
    publisher: str | None
    #: ``True`` when it was broadcast by another process
    remote: bool = False


Handler = Callable[[Event], Any]


@dataclasses.dataclass(frozen=True, slots=True, eq=False)
class Subscription:
    """One handler of one event name, and where it runs."""

    name: str
    handler: Handler
    #: the plugin it runs as (``None``: the host site)
    plugin: str | None
    #: where calls into the plugin take their reference (its manager's instances)
    instances: Instances
    #: asks the plugin's manager whether it is enabled (a state check when one is due)
    state_of: Callable[[str], bool] | None
    #: the plugin object whose ``load()`` subscribed: the handler runs only while that
    #: instance is the active one, and the subscription goes when it retires
    owner: Any = None


_lock = threading.Lock()
#: handlers by event name; a new tuple at each change, so that publishing reads without a lock
by_name: dict[str, tuple[Subscription, ...]] = {}
#: the site's ``plugin_manager.is_enabled``, for subscriptions that name their plugin
_site_state_of: Callable[[str], bool] | None = None


def know_states(is_enabled: Callable[[str], bool]) -> None:
    """Tell events how to ask whether a plugin is enabled (``TachycoreConfig.ready()``)."""
    global _site_state_of
    _site_state_of = is_enabled


# -- subscribing -------------------------------------------------------------------------


def subscribe(name: str, handler: Handler, *, plugin: Any = None) -> Subscription:
    """Run ``handler(event)`` for each event ``name`` published, as ``plugin`` (a plugin's
    name, or its ``Plugin`` object as ``Plugin.subscribe`` passes; ``None``: the host site).

    Made while that plugin's ``load()`` runs, the subscription belongs to the instance being
    loaded (see ``tachycore.events``). Subscribing the same handler twice changes nothing.
    """
    if not isinstance(name, str) or not name:
        raise EventError(f"an event name is a non-empty string, not {name!r}")
    if not callable(handler):
        raise EventError(f"the handler of event {name!r} is not callable: {handler!r}")
    subscription = _subscription(name, handler, plugin)
    with _lock:
        current = by_name.get(name, ())
        for existing in current:
            if _same(existing, subscription.plugin, handler) and existing.owner is subscription.owner:
                return existing
        by_name[name] = (*current, subscription)
    return subscription


def _subscription(name: str, handler: Handler, plugin: Any) -> Subscription:
    if plugin is None:
        return Subscription(name, handler, None, instances, None)
    plugin_name = plugin if isinstance(plugin, str) else plugin.name
    loaded = loading_plugin()
    if loaded is not None and loaded.name == plugin_name:
        plugin, owner = loaded, loaded
    else:
        owner = None
    if isinstance(plugin, str):
        return Subscription(name, handler, plugin_name, instances, _site_state_of)
    return Subscription(name, handler, plugin_name, plugin._instances, plugin._state_of or _site_state_of, owner)


def unsubscribe(name: str, handler: Handler, *, plugin: Any = None) -> bool:
    """Remove ``plugin``'s subscriptions of ``handler`` to ``name``; whether there was one."""
    plugin_name = plugin if plugin is None or isinstance(plugin, str) else plugin.name
    with _lock:
        current = by_name.get(name, ())
        kept = tuple(subscription for subscription in current
                     if not _same(subscription, plugin_name, handler))
        _keep(name, kept)
    return len(kept) < len(current)


def subscriptions(name: str) -> list[Subscription]:
    """The subscriptions to ``name`` in this process, in the order their handlers run."""
    return list(by_name.get(name, ()))


def _same(subscription: Subscription, plugin: str | None, handler: Handler) -> bool:
    # ==, not is: each ``self.method`` is a new bound method object, equal to the others
    return subscription.plugin == plugin and subscription.handler == handler


def _keep(name: str, kept: tuple[Subscription, ...]) -> None:
    """Store ``name``'s subscriptions (``_lock`` held); none: the name goes, publishing stays a miss."""
    if kept:
        by_name[name] = kept
    else:
        by_name.pop(name, None)


def forget_instance(instance: Instance) -> None:
    """An instance retired (``tachycore.instances.on_retire``): the subscriptions its
    ``load()`` made go, and so do those of any object of that plugin that never became
    active (a load that failed). Loads are serialised by the plugin manager, so no other
    instance of the plugin is loading now."""
    with _lock:
        for name, current in list(by_name.items()):
            kept = tuple(subscription for subscription in current if not _orphaned(subscription, instance.name))
            if len(kept) < len(current):
                _keep(name, kept)


def _orphaned(subscription: Subscription, plugin: str) -> bool:
    if subscription.owner is None or subscription.plugin != plugin:
        return False
    active = subscription.instances.active(plugin)
    return active is None or active.plugin is not subscription.owner


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()  # another thread may have held it at fork time


os.register_at_fork(after_in_child=_after_fork_in_child)
