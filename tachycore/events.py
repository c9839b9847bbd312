"""Events: plugins tell each other what happened, through the kernel.

``publish(name, payload)`` runs every handler subscribed to ``name`` in this process at once,
in order of subscription, each as its own plugin (``tachycore.context.current_plugin()``),
inside that plugin's active instance (a reload waits for it) and only while that plugin is
enabled; a handler of the host site (``plugin=None``) runs as the host. A handler that
raises is logged (logger ``tachycore.events``) and recorded on the node; the others still
run and ``publish`` returns normally. Handlers run in the publisher's trace.

``broadcast=True`` also sends the event, after the current transaction commits, to the
subscribers of every other process of the site (a sync message on the ``events`` channel;
nothing is sent when the transaction rolls back, while the handlers of this process ran at
once). There the handlers run on a thread of their own (``tachycore-events``), one event
after another in the order they arrived, so that a slow handler holds up no other sync
message, and continue the publisher's trace.

A plugin subscribes in its ``load()``: such a subscription belongs to the instance being
loaded and goes when that instance retires (a reload switched to a new one, whose own
``load()`` subscribes again, or the plugin was disabled, in every process as it follows the
registry). A subscription made anywhere else stays until :func:`unsubscribe`, and its
handler is skipped while its plugin is not enabled.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import queue
import threading
from collections.abc import Callable
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from opentelemetry.trace import SpanKind

from . import sync, trace
from .context import acting_as, current_plugin
from .errors import EventError, PluginUnavailable, SyncMessageError
from .instances import Instance, Instances, instances, loading_plugin
from .runtime import runtime

__all__ = ["CHANNEL", "Event", "Subscription", "publish", "subscribe", "subscriptions", "unsubscribe"]

logger = logging.getLogger("tachycore.events")

#: the sync channel broadcast events travel on
CHANNEL = "events"
#: events from other processes waiting here for their handlers; one more is dropped (recorded)
INBOX_SIZE = 1000


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
_subscriptions: dict[str, tuple[Subscription, ...]] = {}
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
    loaded (see the module's docstring). Subscribing the same handler twice changes nothing.
    """
    if not isinstance(name, str) or not name:
        raise EventError(f"an event name is a non-empty string, not {name!r}")
    if not callable(handler):
        raise EventError(f"the handler of event {name!r} is not callable: {handler!r}")
    subscription = _subscription(name, handler, plugin)
    with _lock:
        current = _subscriptions.get(name, ())
        for existing in current:
            if _same(existing, subscription.plugin, handler) and existing.owner is subscription.owner:
                return existing
        _subscriptions[name] = (*current, subscription)
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
        current = _subscriptions.get(name, ())
        kept = tuple(subscription for subscription in current
                     if not _same(subscription, plugin_name, handler))
        _keep(name, kept)
    return len(kept) < len(current)


def subscriptions(name: str) -> list[Subscription]:
    """The subscriptions to ``name`` in this process, in the order their handlers run."""
    return list(_subscriptions.get(name, ()))


def _same(subscription: Subscription, plugin: str | None, handler: Handler) -> bool:
    # ==, not is: each ``self.method`` is a new bound method object, equal to the others
    return subscription.plugin == plugin and subscription.handler == handler


def _keep(name: str, kept: tuple[Subscription, ...]) -> None:
    """Store ``name``'s subscriptions (``_lock`` held); none: the name goes, publishing stays a miss."""
    if kept:
        _subscriptions[name] = kept
    else:
        _subscriptions.pop(name, None)


def forget_instance(instance: Instance) -> None:
    """An instance retired (``tachycore.instances.on_retire``): the subscriptions its
    ``load()`` made go, and so do those of any object of that plugin that never became
    active (a load that failed). Loads are serialised by the plugin manager, so no other
    instance of the plugin is loading now."""
    with _lock:
        for name, current in list(_subscriptions.items()):
            kept = tuple(subscription for subscription in current if not _orphaned(subscription, instance.name))
            if len(kept) < len(current):
                _keep(name, kept)


def _orphaned(subscription: Subscription, plugin: str) -> bool:
    if subscription.owner is None or subscription.plugin != plugin:
        return False
    active = subscription.instances.active(plugin)
    return active is None or active.plugin is not subscription.owner


# -- publishing --------------------------------------------------------------------------


def publish(name: str, payload: Any = None, *, broadcast: bool = False) -> int:
    """Run the handlers of event ``name`` in this process now; return how many ran (one
    that raised counts; one whose plugin is not enabled does not).

    ``broadcast=True`` also sends it to every other process after the current transaction
    commits; the payload must then be JSON (``EventError`` at once, before any handler ran).
    """
    if broadcast:
        _send(name, payload)
    found = _subscriptions.get(name)
    if not found:
        return 0  # the common case: a dict lookup
    with trace.span(f"event {name}"):
        return _run_all(found, Event(name, payload, current_plugin()))


def _send(name: str, payload: Any) -> None:
    if not isinstance(name, str) or not name:
        raise EventError(f"an event name is a non-empty string, not {name!r}")
    try:
        json.dumps(payload)
    except (TypeError, ValueError) as e:
        raise EventError(f"event {name!r}: a broadcast payload must be JSON: {e}") from None
    message = {"name": name, "payload": payload, "publisher": current_plugin(), "trace": trace.inject()}
    try:
        sync.publish(CHANNEL, message)  # after commit
    except SyncMessageError as e:
        raise EventError(f"event {name!r} cannot be broadcast: {e}") from None


def _run_all(found: tuple[Subscription, ...], event: Event) -> int:
    ran = 0
    for subscription in found:
        if _run(subscription, event):
            ran += 1
    return ran


def _run(subscription: Subscription, event: Event) -> bool:
    """Run one handler as its plugin, inside its active instance; whether it ran."""
    plugin = subscription.plugin
    if plugin is None:
        with acting_as(None):
            _call(subscription, event)
        return True
    if subscription.state_of is not None and loading_plugin() is None:
        # a state check when one is due; not from inside a load(), which may run in the middle
        # of a lifecycle operation: a check there would load the plugin a second time
        subscription.state_of(plugin)
    entries = subscription.instances
    try:
        instance = entries.enter(plugin)
    except PluginUnavailable:
        return False  # disabled, or draining out
    try:
        if subscription.owner is not None and instance.plugin is not subscription.owner:
            return False  # another instance's: a new one not switched to yet, or a retired one
        with acting_as(plugin):
            _call(subscription, event)
        return True
    finally:
        entries.leave(instance)


def _call(subscription: Subscription, event: Event) -> None:
    try:
        with _isolated():
            subscription.handler(event)
    except Exception as e:
        who = f"plugin {subscription.plugin!r}" if subscription.plugin else "the host site"
        handler = subscription.handler
        described = f"{getattr(handler, '__module__', '?')}.{getattr(handler, '__qualname__', repr(handler))}"
        message = f"event {event.name!r}: handler {described} of {who} failed: {type(e).__name__}: {e}"
        logger.exception("%s", message)
        runtime.supervisor.record_error(message)


def _isolated() -> contextlib.AbstractContextManager[Any]:
    """Inside the publisher's transaction, a savepoint around the handler: one that fails
    leaves no write behind and the transaction usable (PostgreSQL aborts a transaction at
    its first error), for the publisher and the handlers after it."""
    if connections[DEFAULT_DB_ALIAS].in_atomic_block:
        return transaction.atomic(using=DEFAULT_DB_ALIAS)
    return contextlib.nullcontext()


# -- events from other processes ---------------------------------------------------------


def deliver(message: Any) -> int:
    """Run this process's handlers of a broadcast event (``message`` as sent on
    :data:`CHANNEL`) in the publisher's trace; return how many ran."""
    try:
        name, payload, publisher = message["name"], message.get("payload"), message.get("publisher")
        carrier = message.get("trace") or {}
    except (TypeError, KeyError, AttributeError):
        logger.warning("ignored a malformed event message: %.200r", message)
        return 0
    found = _subscriptions.get(name)
    if not found:
        return 0
    with trace.span(f"event {name}", carrier, kind=SpanKind.CONSUMER):
        return _run_all(found, Event(name, payload, publisher, remote=True))


class Inbox:
    """Broadcast events from other processes, handed from the sync listener to a thread of
    their own and delivered there in the order they arrived."""

    def __init__(self) -> None:
        self._start_over()

    def _start_over(self) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(INBOX_SIZE)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def put(self, message: Any) -> None:
        """Queue ``message`` (the listener calls it, through :func:`receive`); dropped and
        recorded on the node when ``INBOX_SIZE`` events are waiting already."""
        self._ensure_thread()
        try:
            self._queue.put_nowait(message)
        except queue.Full:
            name = message.get("name") if isinstance(message, dict) else None
            text = (f"event {name!r} from another process dropped: {INBOX_SIZE} events are waiting "
                    "for their handlers here")
            logger.error("%s", text)
            runtime.supervisor.record_error(text)

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                # a plain thread: each handler runs as its own plugin, never as the listener
                self._thread = threading.Thread(target=self._work, name="tachycore-events", daemon=True)
                self._thread.start()

    def _work(self) -> None:
        while True:
            message = self._queue.get()
            try:
                deliver(message)
            except Exception as e:  # a state check that could not read the database...
                logger.exception("event message not delivered")
                runtime.supervisor.record_error(f"event message not delivered: {type(e).__name__}: {e}")
                connections.close_all()
            finally:
                self._queue.task_done()
            if self._queue.empty():
                connections.close_all()  # hold no idle connection between events

    def wait_empty(self) -> None:
        """Return once every event queued so far was delivered (tests)."""
        self._queue.join()

    def _after_fork_in_child(self) -> None:
        # the thread does not exist in the child, and the events waiting are the parent's
        self._start_over()


inbox = Inbox()


def receive(message: Any) -> None:
    """A broadcast event from another process: the sync listener hands it to :data:`inbox`
    (subscribed to :data:`CHANNEL` in ``TachycoreConfig.ready()``)."""
    inbox.put(message)


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()  # another thread may have held it at fork time
    inbox._after_fork_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)
