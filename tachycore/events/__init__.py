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

from .inbox import INBOX_SIZE, inbox, receive
from .publishing import CHANNEL, deliver, publish
from .subscribing import (
    Event,
    Subscription,
    forget_instance,
    know_states,
    subscribe,
    subscriptions,
    unsubscribe,
)

__all__ = [
    "CHANNEL", "INBOX_SIZE", "Event", "Subscription", "deliver", "forget_instance", "inbox", "know_states",
    "publish", "receive", "subscribe", "subscriptions", "unsubscribe",
]
