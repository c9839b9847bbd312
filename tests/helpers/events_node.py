"""A process of the test site that knows the herald plugin, driven by tests/test_events.py.

Run as ``python -m tests.helpers.events_node`` with ``DJANGO_SETTINGS_MODULE=tests.settings_events``
and herald enabled: it starts the kernel's runtime (a node that follows the registry and
listens for sync messages), subscribes a handler of the host site to ``herald.ping`` after
herald's own (so the host's line comes after herald's for each event), says ``{"ready": ...}``
and then answers one JSON command per line of standard input:

- ``["publish", name, payload]``: publish the event in this process; says ``{"ran": n}``
- ``["subscriptions", name]``: says ``{"subscriptions": [plugin, ...]}`` (``null``: the host)

Each handler says ``{"heard": name, "by": plugin, ...}`` (tests/plugin_apps/herald).
"""

from __future__ import annotations

import json
import sys


def main() -> None:
    import django

    django.setup()

    from tachycore import events
    from tachycore.context import current_plugin
    from tachycore.runtime import runtime
    from tests.plugin_apps.herald.output import say

    runtime.start(kind="command", name="events node")
    if runtime.pubsub.cross_process and not runtime.pubsub.wait_listening(10):
        raise SystemExit("the sync listener is not live")

    def host_heard(event):
        say({"heard": event.name, "by": current_plugin(), "payload": event.payload, "remote": event.remote})

    events.subscribe("herald.ping", host_heard)

    def plugins_of(name):
        return [subscription.plugin for subscription in events.subscriptions(name)]

    say({"ready": True, "subscriptions": plugins_of("herald.ping")})
    for line in sys.stdin:
        command, name, *rest = json.loads(line)
        if command == "publish":
            say({"ran": events.publish(name, rest[0])})
        elif command == "subscriptions":
            say({"subscriptions": plugins_of(name)})


if __name__ == "__main__":
    main()
