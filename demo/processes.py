"""``ProcessGroup``: run a few commands side by side, as one, until a signal or until one dies.

``manage.py rundemo`` (``make run``) uses it for the web server, ``runjobs`` and
``qcluster``. How the children are stopped, whatever happens to this process:

- Each child runs in its own session, so a Ctrl-C or a closed terminal reaches this
  process only and each child gets exactly one signal, forwarded from here (SIGHUP
  as SIGTERM); a second Ctrl-C is forwarded too (``runjobs`` then stops at once).
- A child still running ``grace`` seconds (5 by default) after the stop signal is
  killed with SIGKILL, with its whole process group (qcluster's sentinel and workers,
  the server run by runserver's autoreloader).
- If this process dies without stopping them (SIGKILL), Linux sends each child SIGTERM
  (``PR_SET_PDEATHSIG``), and a watchdog process kills what is left of their process
  groups ``grace`` seconds later.

This module is also the watchdog's program (``python -I demo/processes.py GRACE``), so
it imports nothing but the standard library.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TextIO

__all__ = ["Child", "ChildDied", "ProcessGroup"]

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
#: a closed terminal stops the children like SIGTERM: none of them handles SIGHUP
FORWARDED = {signal.SIGHUP: signal.SIGTERM}
SENT_SIGNALS = (signal.SIGINT, signal.SIGTERM)
#: how a child may end after a forwarded signal: 0, killed by it, or exit 128 + signal
CLEAN_EXITS = frozenset([0, *(-s for s in SENT_SIGNALS), *(128 + s for s in SENT_SIGNALS)])
#: the grace period, in seconds, after which a child still running is killed with its
#: process group: the demo's children stop within about 2 s of being told (qcluster is
#: the slowest: its pusher sleeps Q_CLUSTER["poll"] between polls and its sentinel
#: waits for it), so 5 s leaves room on a busy machine and still stops promptly
GRACE = 5.0
#: how often a child with ``repeat`` is told again while it runs: longer than a normal
#: stop of qcluster, so that it is told twice only when the first signal was lost
REPEAT_INTERVAL = 2.5
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class ChildDied(Exception):
    """A child exited while the group was running, failed while stopping, or had to be killed."""


@dataclasses.dataclass
class Child:
    """One command of the group."""

    name: str
    argv: Sequence[str]
    #: signal the child's whole process group (a server whose autoreloader runs the real
    #: server in a second process); otherwise only the child, which stops its own helpers
    #: (qcluster's sentinel dies at once on SIGTERM, cutting a running task short, where
    #: the cluster's own stop lets the task finish)
    signal_group: bool = False
    #: tell the child again every REPEAT_INTERVAL until it exits: django-q2's qcluster
    #: loses a signal that comes while it starts its sentinel (its handler finds no
    #: sentinel running yet and returns), and would then run on until killed
    repeat: bool = False
    process: subprocess.Popen | None = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, env: dict[str, str]) -> None:
        """Start the command in a new session (so its own process group), its output in a pipe."""
        self.process = subprocess.Popen(
            list(self.argv), env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, bufsize=1, start_new_session=True,
            preexec_fn=_sigterm_when_parent_dies(os.getpid()))

    def send(self, signum: int) -> None:
        """Send ``signum`` to the child (or its group), if it still runs."""
        if not self.running:
            return
        with contextlib.suppress(ProcessLookupError):  # exited meanwhile
            if self.signal_group:
                os.killpg(self.process.pid, signum)
            else:
                self.process.send_signal(signum)

    def kill(self) -> None:
        """SIGKILL the child's whole process group (what is left of it), and reap the child."""
        if self.process is None:
            return
        _kill_group(self.process.pid)
        self.process.wait()


def _sigterm_when_parent_dies(parent: int) -> Callable[[], None] | None:
    """A ``preexec_fn`` that asks Linux to send the child SIGTERM when its parent dies
    (strictly, the thread that forked it: start children from the main thread); None
    where there is no ``prctl``."""
    prctl = getattr(ctypes.CDLL(None, use_errno=True), "prctl", None)
    if prctl is None:
        return None

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))
        if os.getppid() != parent:  # it died before prctl: no signal will come
            os._exit(1)

    return preexec


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # nothing left in it
        os.killpg(pgid, signal.SIGKILL)


def _group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


class Watchdog:
    """A process that stops the children if this one dies without doing it (SIGKILL).

    It reads the children's process group ids from a pipe; the end of the pipe (this
    process exited, however it exited) is its cue: it gives the groups ``grace`` seconds to exit (the
    children got SIGTERM from Linux) and kills what is left. It runs in its own session,
    so a Ctrl-C or a closed terminal does not end it first.
    """

    def __init__(self, grace: float) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-I", __file__, str(grace)], stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True, start_new_session=True)

    def watch(self, pgid: int) -> None:
        with contextlib.suppress(BrokenPipeError):  # it died: the group runs without it
            self.process.stdin.write(f"{pgid}\n")
            self.process.stdin.flush()

    def close(self) -> None:
        """Tell it this process is done (the groups are gone by now) and wait for it."""
        with contextlib.suppress(BrokenPipeError):
            self.process.stdin.close()
        self.process.wait()


def watch(grace: float, lines: Iterable[str]) -> None:
    """The watchdog's program: read process group ids until the end of ``lines``, then
    wait up to ``grace`` seconds for those groups to be gone and SIGKILL the rest."""
    groups = [int(line) for line in lines]
    deadline = time.monotonic() + grace
    while any(_group_exists(pgid) for pgid in groups) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pgid in groups:
        _kill_group(pgid)


class ProcessGroup:
    """Start every child, copy their output with a name in front of each line, stop them
    all on SIGINT, SIGTERM or SIGHUP, and stop the others when one exits.

    ``run()`` returns when every child has exited after a signal, each one stopped by it
    or exiting 0. It raises ``ChildDied`` when a child exited on its own (the others are
    stopped first), failed while stopping, or had to be killed after ``grace`` seconds.
    """

    def __init__(self, children: Sequence[Child], *, grace: float = GRACE, out: TextIO | None = None,
                 env: dict[str, str] | None = None, poll_interval: float = 0.1) -> None:
        self.children = list(children)
        self.grace = grace
        self.out = out or sys.stdout
        self.env = {**(env if env is not None else os.environ), "PYTHONUNBUFFERED": "1"}
        self.poll_interval = poll_interval
        self.stop_signal: int | None = None
        self._stop_started = 0.0
        self._write_lock = threading.Lock()
        self._readers: list[threading.Thread] = []
        self._width = max(len(child.name) for child in self.children)

    def run(self) -> None:
        """Run the children until a stop signal or until one of them exits."""
        previous = {signum: signal.signal(signum, self._on_signal) for signum in STOP_SIGNALS}
        watchdog = Watchdog(self.grace)
        try:
            self._start(watchdog)
            died = self._wait_for_a_stop()
            killed = self._wait_for_exits()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            for child in self.children:  # and whatever a child left in its group
                child.kill()
            watchdog.close()
            for reader in self._readers:
                reader.join(timeout=2)
        self._raise_for(died, killed)

    def stop(self, signum: int = signal.SIGTERM) -> None:
        """Forward ``signum`` to every running child; the group stops once they have exited."""
        if self.stop_signal is None:
            self.stop_signal = FORWARDED.get(signum, signum)
            self._stop_started = time.monotonic()
        for child in self.children:
            child.send(FORWARDED.get(signum, signum))

    # -- inside ------------------------------------------------------------------------------

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.stop(signum)

    def _start(self, watchdog: Watchdog) -> None:
        for child in self.children:
            child.start(self.env)
            watchdog.watch(child.process.pid)
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
        with self._write_lock, contextlib.suppress(OSError):
            # a closed terminal (EIO): keep reading the children's output all the same, so
            # none of them blocks on a full pipe while it stops
            self.out.write(line + "\n")
            self.out.flush()

    def _wait_for_a_stop(self) -> Child | None:
        """Wait for a stop signal or for a child to exit; return that child, the others told to stop."""
        while self.stop_signal is None:
            died = next((child for child in self.children if not child.running), None)
            if died is not None:
                self._write(f"{died.name} exited with status {died.process.returncode}; stopping the others")
                self.stop(signal.SIGTERM)
                return died
            time.sleep(self.poll_interval)
        return None

    def _wait_for_exits(self) -> list[Child]:
        """Wait for every child to exit, telling the ``repeat`` ones again; kill those still
        running ``grace`` seconds after the stop signal and return them."""
        next_repeat = self._stop_started + REPEAT_INTERVAL
        while running := [child for child in self.children if child.running]:
            now = time.monotonic()
            if now - self._stop_started > self.grace:
                for child in running:
                    child.kill()
                self._write(self._killed_message(running))
                return running
            if now >= next_repeat:
                for child in running:
                    if child.repeat:
                        child.send(self.stop_signal)
                next_repeat = now + REPEAT_INTERVAL
            time.sleep(self.poll_interval)
        return []

    def _raise_for(self, died: Child | None, killed: list[Child]) -> None:
        if died is not None:  # the cause, whatever happened to the others after it
            raise ChildDied(f"{died.name} exited with status {died.process.returncode}")
        if killed:
            raise ChildDied(self._killed_message(killed))
        failed = [child for child in self.children if child.process.returncode not in CLEAN_EXITS]
        if failed:
            raise ChildDied(", ".join(f"{child.name} exited with status {child.process.returncode}"
                                      for child in failed))

    def _killed_message(self, killed: list[Child]) -> str:
        return (f"{', '.join(child.name for child in killed)} did not stop within {self.grace:g}s "
                f"of {signal.Signals(self.stop_signal).name}: killed")


if __name__ == "__main__":  # the watchdog
    watch(float(sys.argv[1]), sys.stdin)
