"""A test plugin whose instances say when they load, take calls and unload: the reload tests
check that no call runs in an instance after its ``unload()`` and that callers never go back
to an older instance.

Each instance gets a serial number at ``load()`` (rising in this process). ``HISTORY`` keeps
what happened in this process; with ``BLUEGREEN_LOG`` set (the tests' server processes), each
event is also appended to that file as ``<pid> <event> <serial> <calls inside>``.
"""

from __future__ import annotations

import itertools
import os
import threading
import time

import tachycore
from tachycore.plugins import Plugin

_serials = itertools.count(1)
_lock = threading.Lock()
#: (event, serial, calls inside the instance at that moment), in this process
HISTORY: list[tuple[str, int, int]] = []


def _log(event: str, serial: int, inside: int) -> None:
    with _lock:
        HISTORY.append((event, serial, inside))
        path = os.environ.get("BLUEGREEN_LOG")
        if path:
            with open(path, "a") as f:
                f.write(f"{os.getpid()} {event} {serial} {inside}\n")


class BlueGreenPlugin(Plugin):
    name = "bluegreen"
    version = "1.0.0"
    description = "Test plugin: instances that record their life."
    urls = "tests.plugin_apps.bluegreen.urls"
    default_options = {"colour": "blue"}

    def load(self) -> None:
        self.serial = next(_serials)
        self.live = True
        self.inside = 0
        self.inside_lock = threading.Lock()
        _log("load", self.serial, 0)

    def unload(self) -> None:
        self.live = False
        _log("unload", self.serial, self.inside)

    def after_disable(self) -> None:
        _log("after_disable", getattr(self, "serial", 0), getattr(self, "inside", 0))

    @tachycore.service
    def work(self, pause: float = 0.0, until: threading.Event | None = None) -> tuple[int, str]:
        """The service ``bluegreen:work``: a call inside this instance (``pause`` seconds, or
        until ``until`` is set); returns the instance's serial and colour. Raises when the
        instance was unloaded."""
        if not self.live:
            raise RuntimeError(f"instance {self.serial} called after its unload()")
        with self.inside_lock:
            self.inside += 1
        try:
            if until is not None:
                until.wait(30)
            elif pause:
                time.sleep(pause)
            if not self.live:
                raise RuntimeError(f"instance {self.serial} unloaded while a call was inside")
            return self.serial, self.options["colour"]
        finally:
            with self.inside_lock:
                self.inside -= 1
