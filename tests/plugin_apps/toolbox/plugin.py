import threading
from typing import Any

import tachycore
from tachycore.context import current_plugin
from tachycore.instances import current_instance
from tachycore.plugins import Plugin
from tachycore.trace import current_trace_id

from .protocols import Identity

#: what the handler of ``toolbox.ping`` heard, one dict per event (tests/test_events.py clears it)
HEARD: list[dict] = []


class ToolboxPlugin(Plugin):
    """A built-in plugin of the test site: added, installed and enabled by migrate. Its
    services tell tests who runs them and on which instance (tests/test_services.py)."""

    name = "toolbox"
    version = "2.0.0"
    built_in = True
    description = "Built-in test plugin."
    urls = "tests.plugin_apps.toolbox.urls"
    provides = (Identity,)
    #: whether this instance's unload() ran
    unloaded = False

    def load(self):
        self.subscribe("toolbox.ping", self.heard)

    def unload(self) -> None:
        self.unloaded = True

    def heard(self, event):
        """Note the event, who the kernel says runs, and the instance the call is inside."""
        active = self._instances.active(self.name)
        HEARD.append({
            "payload": event.payload, "publisher": event.publisher, "plugin": current_plugin(),
            "instance": self, "inside": active is not None and active.plugin is self and active.calls > 0,
            "trace_id": current_trace_id(),
        })

    @tachycore.service
    def get_identity(self) -> dict[str, Any]:
        """READ (by its name): the plugin the call runs as, this instance (and whether the
        kernel says the call entered it), the trace."""
        return {"plugin": current_plugin(), "instance": id(self), "entered": current_instance() is self,
                "trace_id": current_trace_id()}

    @tachycore.service()
    def echo(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """EXECUTE (by its name): the arguments as they arrived."""
        return {"args": list(args), "kwargs": kwargs}

    @tachycore.service("stats", access="READ")
    def statistics(self) -> dict[str, Any]:
        """Published under another name than its method's."""
        return {"loaded": not self.unloaded}

    @tachycore.service
    def set_flag(self, value: Any) -> Any:
        """WRITE (by its name)."""
        return value

    @tachycore.service
    def hold(self, inside: threading.Event, release: threading.Event) -> dict[str, Any]:
        """EXECUTE: say it is inside, wait until released (5 s at most), then tell which
        instance ran it and whether that one was unloaded meanwhile."""
        inside.set()
        release.wait(5)
        return {"instance": id(self), "unloaded_while_inside": self.unloaded}

    @tachycore.service
    def fail_with(self, error: BaseException) -> None:
        """EXECUTE: raise ``error``."""
        raise error

    @tachycore.service
    def call(self, service_id: str, *args: Any) -> Any:
        """EXECUTE: call another service, as toolbox."""
        return tachycore.invoke(service_id, *args)
