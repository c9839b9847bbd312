from tachycore.context import current_plugin
from tachycore.plugins import Plugin
from tachycore.trace import current_trace_id

#: what the handler of ``toolbox.ping`` heard, one dict per event (tests/test_events.py clears it)
HEARD: list[dict] = []


class ToolboxPlugin(Plugin):
    """A built-in plugin of the test site: added, installed and enabled by migrate."""

    name = "toolbox"
    version = "2.0.0"
    built_in = True
    description = "Built-in test plugin."
    urls = "tests.plugin_apps.toolbox.urls"

    def load(self):
        self.subscribe("toolbox.ping", self.heard)

    def heard(self, event):
        """Note the event, who the kernel says runs, and the instance the call is inside."""
        active = self._instances.active(self.name)
        HEARD.append({
            "payload": event.payload, "publisher": event.publisher, "plugin": current_plugin(),
            "instance": self, "inside": active is not None and active.plugin is self and active.calls > 0,
            "trace_id": current_trace_id(),
        })
