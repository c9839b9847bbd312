"""A test plugin that says on its process's standard output each ``herald.ping`` it hears.

Only processes started by tests/test_events.py know it (tests/settings_events.py, driven by
tests/helpers/events_node.py); it asks for nothing, so it can be enabled anywhere.
"""

from __future__ import annotations

import threading

from tachycore.context import current_plugin
from tachycore.plugins import Plugin
from tachycore.trace import current_trace_id

from .output import say


class HeraldPlugin(Plugin):
    name = "herald"
    version = "1.0.0"
    description = "Says each herald.ping it hears (tests of events across processes)."

    def load(self):
        self.subscribe("herald.ping", self.heard)

    def heard(self, event):
        say({"heard": event.name, "by": current_plugin(), "payload": event.payload,
             "publisher": event.publisher, "remote": event.remote, "trace_id": current_trace_id(),
             "thread": threading.current_thread().name})
