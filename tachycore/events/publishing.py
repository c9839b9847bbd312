"""Running the handlers of an event: here at once, and in the other processes after commit
(see the package's docstring)."""

from __future__ import annotations

import json
import logging
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from opentelemetry.trace import SpanKind

from .. import sync, trace
from ..context import acting_as, current_plugin
from ..errors import EventError, PluginUnavailable, SyncMessageError
from ..instances import loading_plugin
from ..runtime import runtime
from .subscribing import Event, Subscription, by_name

logger = logging.getLogger("tachycore.events")

#: the sync channel broadcast events travel on
CHANNEL = "events"


def publish(name: str, payload: Any = None, *, broadcast: bool = False) -> int:
    """Run the handlers of event ``name`` in this process now; return how many ran (one
    that raised counts; one whose plugin is not enabled does not).

    ``broadcast=True`` also sends it to every other process after the current transaction
    commits; the payload must then be JSON (``EventError`` at once, before any handler ran).
    """
    if broadcast:
        _send(name, payload)
    found = by_name.get(name)
    if not found:
        return 0  # the common case: a dict lookup
    # no span of its own: the handlers run in the publisher's, as code it calls would
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
    # inside the publisher's transaction, each handler runs in a savepoint: one that fails
    # leaves no write behind and the transaction usable (PostgreSQL aborts a transaction at
    # its first error) for the publisher and the handlers after it
    savepoints = connections[DEFAULT_DB_ALIAS].in_atomic_block
    ran = 0
    for subscription in found:
        if _run(subscription, event, savepoints):
            ran += 1
    return ran


def _run(subscription: Subscription, event: Event, savepoints: bool) -> bool:
    """Run one handler as its plugin, inside its active instance; whether it ran."""
    plugin = subscription.plugin
    if plugin is None:
        with acting_as(None):
            _call(subscription, event, savepoints)
        return True
    if subscription.state_of is not None and loading_plugin() is None:
        # a state check when one is due; not from inside a load(), which may run in the middle
        # of a lifecycle operation: a check there would load the plugin a second time
        subscription.state_of(plugin)
    try:
        inside = subscription.instances.entered(plugin)
    except PluginUnavailable:
        return False  # disabled, or draining out
    with inside as live:
        if subscription.owner is not None and live is not subscription.owner:
            return False  # another instance's: a new one not switched to yet, or a retired one
        _call(subscription, event, savepoints)
    return True


def _call(subscription: Subscription, event: Event, savepoints: bool) -> None:
    try:
        if savepoints:
            with transaction.atomic(using=DEFAULT_DB_ALIAS):
                subscription.handler(event)
        else:
            subscription.handler(event)
    except Exception as e:
        who = f"plugin {subscription.plugin!r}" if subscription.plugin else "the host site"
        handler = subscription.handler
        described = f"{getattr(handler, '__module__', '?')}.{getattr(handler, '__qualname__', repr(handler))}"
        message = f"event {event.name!r}: handler {described} of {who} failed: {type(e).__name__}: {e}"
        logger.exception("%s", message)
        runtime.supervisor.record_error(message)


# -- events from other processes ---------------------------------------------------------


def deliver(message: Any) -> int:
    """Run this process's handlers of a broadcast event (``message`` as sent on
    :data:`CHANNEL`) in the publisher's trace; return how many ran."""
    try:
        name, payload, publisher = message["name"], message.get("payload"), message.get("publisher")
        carrier = message.get("trace") or {}
    except (TypeError, KeyError, AttributeError):
        name = None
    if not isinstance(name, str):
        logger.warning("ignored a malformed event message: %.200r", message)
        return 0
    found = by_name.get(name)
    if not found:
        return 0
    with trace.span(f"event {name}", carrier, kind=SpanKind.CONSUMER):
        return _run_all(found, Event(name, payload, publisher, remote=True))
