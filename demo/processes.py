"""``ProcessGroup``: run a few commands side by side, as one, until a signal or until one dies.

``manage.py rundemo`` (``make run``) uses it for the web server, ``runjobs`` and
``qcluster``. Each child runs in its own session, so a Ctrl-C in the terminal
reaches this process only and each child gets exactly one signal, forwarded
here; a second Ctrl-C is forwarded too (``runjobs`` then stops at once).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any, TextIO

__all__ = ["Child", "ChildDied", "ProcessGroup"]

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
#: how a child may end after a forwarded signal: 0, killed by it, or exit 128 + signal
CLEAN_EXITS = frozenset([0, *(-s for s in STOP_SIGNALS), *(128 + s for s in STOP_SIGNALS)])


class ChildDied(Exception):
    """A child exited while the group was running, or did not stop within the grace period."""


@dataclasses.dataclass
class Child:
    """One command of the group."""

    name: str
    argv: Sequence[str]
    #: signal the child's whole process group (a server whose autoreloader runs the real
    #: server in a second process); otherwise only the child, which stops its own helpers
    #: (qcluster's sentinel must not get SIGTERM itself)
    signal_group: bool = False
    process: subprocess.Popen | None = None

    def send(self, signum: int) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):  # exited meanwhile
            if self.signal_group:
                os.killpg(self.process.pid, signum)
            else:
                self.process.send_signal(signum)


class ProcessGroup:
    """Start every child, copy their output with a name in front of each line, forward
    SIGINT and SIGTERM, and stop them all when one exits.

    ``run()`` returns when every child has exited after a signal, each one stopped by it
    or exiting 0. It raises ``ChildDied`` when a child exited on its own (the others are
    stopped first), failed while stopping, or had to be killed after ``grace`` seconds.
    """

    def __init__(self, children: Sequence[Child], *, grace: float = 45.0, out: TextIO | None = None,
                 env: dict[str, str] | None = None, poll_interval: float = 0.1) -> None:
        self.children = list(children)
        self.grace = grace
        self.out = out or sys.stdout
        self.env = {**(env if env is not None else os.environ), "PYTHONUNBUFFERED": "1"}
        self.poll_interval = poll_interval
        self.stop_signal: int | None = None
        self._stop_started: float | None = None
        self._write_lock = threading.Lock()
        self._readers: list[threading.Thread] = []
        self._width = max(len(child.name) for child in self.children)

    def run(self) -> None:
        previous = {signum: signal.signal(signum, self._on_signal) for signum in STOP_SIGNALS}
        try:
            self._start()
            self._wait()
            failed = [child for child in self.children if child.process.returncode not in CLEAN_EXITS]
            if failed:
                raise ChildDied(", ".join(f"{child.name} exited with status {child.process.returncode}"
                                          for child in failed))
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            self._kill_all()
            for reader in self._readers:
                reader.join(timeout=2)

    def stop(self, signum: int = signal.SIGTERM) -> None:
        """Forward ``signum`` to every running child; the group stops once they have exited."""
        if self.stop_signal is None:
            self.stop_signal = signum
            self._stop_started = time.monotonic()
        for child in self.children:
            child.send(signum)

    # -- inside ------------------------------------------------------------------------------

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.stop(signum)

    def _start(self) -> None:
        for child in self.children:
            child.process = subprocess.Popen(
                list(child.argv), env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, text=True, bufsize=1, start_new_session=True)
            if self.stop_signal is not None:  # a signal came while the others were starting
                child.send(self.stop_signal)
        for child in self.children:
            reader = threading.Thread(target=self._copy_output, args=(child,), name=f"output-{child.name}",
                                      daemon=True)
            reader.start()
            self._readers.append(reader)

    def _copy_output(self, child: Child) -> None:
        prefix = f"{child.name:<{self._width}} | "
        for line in child.process.stdout:
            self._write(prefix + line.rstrip("\n"))
        child.process.stdout.close()

    def _write(self, line: str) -> None:
        with self._write_lock:
            self.out.write(line + "\n")
            self.out.flush()

    def _wait(self) -> None:
        while True:
            running = [child for child in self.children if child.process.poll() is None]
            if not running:
                break
            if self.stop_signal is None:
                died = next((child for child in self.children if child.process.poll() is not None), None)
                if died is not None:
                    self._write(f"{died.name} exited with status {died.process.returncode}; stopping the others")
                    self.stop(signal.SIGTERM)
                    self._wait()
                    raise ChildDied(f"{died.name} exited with status {died.process.returncode}")
            elif time.monotonic() - self._stop_started > self.grace:
                names = ", ".join(child.name for child in running)
                self._kill_all()
                raise ChildDied(f"{names} did not stop within {self.grace:.0f}s after "
                                f"{signal.Signals(self.stop_signal).name}: killed")
            time.sleep(self.poll_interval)

    def _kill_all(self) -> None:
        for child in self.children:
            if child.process is None:
                continue
            if child.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.process.pid, signal.SIGKILL)
            child.process.wait()
