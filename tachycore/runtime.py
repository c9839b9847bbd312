"""The kernel's per-process services: the sync listener, the node heartbeat, the reconcile loop.

A little over 300 lines on purpose: ``Runtime`` is one object per process whose start,
stop, background loop and message routing share one lock and one rule for a forked
child (nothing is inherited); the drivers it runs are in ``pubsub`` and ``supervisor``.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from django.db import DatabaseError, connections

from . import state
from .conf import tachycore_settings
from .models import NodeStatus
from .pubsub import BasePubSub, load_pubsub
from .signals import process_started, process_stopping
from .state import WatchedState
from .supervisor import Supervisor, new_node_id

logger = logging.getLogger("tachycore.runtime")



class Runtime:
    """Started once per process (and again in a forked child): by the first request
    through ``KernelMiddleware``, by the kernel's commands, by ``runjobs``.

    It registers the process as a supervisor node, listens for sync messages
    from other processes, and runs one background thread that writes the
    heartbeat and re-checks shared state every ``RECONCILE_INTERVAL`` (repairing
    lost messages).

    The layers above register with it in ``AppConfig.ready()``: the states it
    reconciles (:meth:`watch`), the channels they follow (:meth:`subscribe`) and
    the channel families they route by prefix (:meth:`route`).
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._pid: int | None = None
        self._started = False
        self._subscribers: dict[str, list[Callable[[Any], None]]] = defaultdict(list)
        self._routes: dict[str, Callable[[str, Any], None]] = {}
        self._reconnect_callbacks: list[Callable[[], None]] = []
        self._disconnect_callbacks: list[Callable[[], None]] = []
        self._states: list[WatchedState] = []
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pubsub: BasePubSub | None = None
        self._supervisor = Supervisor(new_node_id())  # made again in each process (_ensure_process)
        self._atexit = False

    # -- per-process identity -------------------------------------------------------------

    def _ensure_process(self) -> None:
        if self._pid != os.getpid():  # first use, or a forked child: nothing is inherited
            self._pid = os.getpid()
            self._started = False
            self._thread = None
            self._stop = threading.Event()
            self._wake = threading.Event()
            self._supervisor = Supervisor(new_node_id())
            self._supervisor.wake = self._wake.set
            self._pubsub = None

    @property
    def supervisor(self) -> Supervisor:
        with self._lock:
            self._ensure_process()
            return self._supervisor

    @property
    def node_id(self) -> str:
        return self.supervisor.node_id

    @property
    def pubsub(self) -> BasePubSub:
        with self._lock:
            self._ensure_process()
            if self._pubsub is None:
                self._pubsub = load_pubsub(tachycore_settings.PUBSUB, self._supervisor.node_id,
                                           self._dispatch, self._reconnected)
                self._pubsub.on_disconnect = self._disconnected
            return self._pubsub

    def reset(self) -> None:
        """Stop, and start over with a new node id at next use (tests)."""
        self.stop()
        with self._lock:
            self._pid = None

    def reset_pubsub(self) -> None:
        """Forget the adapter (after ``TACHYCORE`` changed); refused while it listens."""
        with self._lock:
            if not self.started:
                self._pubsub = None

    @property
    def started(self) -> bool:
        # _pid(): a global kept after fork, not a getpid() system call on every state check
        return self._pid == _pid() and self._started

    @property
    def push_live(self) -> bool:
        """Whether changes made by other processes reach this one as messages now."""
        return self.started and self._pubsub is not None and self._pubsub.cross_process and self._pubsub.listening

    # -- lifecycle ------------------------------------------------------------------------

    def start(self, kind: str = "web", name: str = "", status: str = NodeStatus.RUNNING,
              listen: bool = True) -> None:
        """Register this process as a node and start its background work (once)."""
        with self._lock:
            self._ensure_process()
            if self._started:
                return
            self._started = True
            if not self._atexit:
                atexit.register(self.stop)
                self._atexit = True
            if listen:
                try:
                    self.pubsub.start()
                except Exception as e:
                    # serve anyway: without messages, processes follow by polling the version rows
                    logger.error("sync listener not started: %s", e)
                    self._supervisor.record_error(f"sync listener not started: {type(e).__name__}: {e}")
                    listen = False
            self._supervisor.register(kind, name or _process_name(), status)
            self._thread = threading.Thread(target=self._loop, name="tachycore-runtime", daemon=True)
            self._thread.start()
        if listen and self._pubsub is not None and self._pubsub.cross_process:
            self._pubsub.wait_listening(2.0)
        self._reconcile()
        for receiver, error in process_started.send_robust(type(self), kind=kind, node_id=self.node_id):
            if error is not None:
                self._supervisor.record_error(f"process_started receiver {receiver!r} failed: {error}")

    def stop(self) -> None:
        """Stop the background work; the thread marks the node stopped as it ends."""
        if self.started:
            process_stopping.send_robust(type(self), node_id=self.node_id)
        with self._lock:
            if not self.started:
                return
            self._started = False
            self._stop.set()
            self._wake.set()
            if self._pubsub is not None:
                self._pubsub.stop()
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(10)

    def _loop(self) -> None:
        """Write the node row when asked and on each heartbeat; reconcile periodically
        (every ``RECONCILE_INTERVAL`` while messages arrive, every ``STATE_CHECK_INTERVAL``
        while no cross-process listener is connected, as on SQLite)."""
        check_interval = state.check_interval
        heartbeat = tachycore_settings.HEARTBEAT_INTERVAL
        next_beat = time.monotonic()
        next_reconcile = next_beat + check_interval()  # start() reconciled already
        supervisor = self._supervisor
        try:
            while not self._stop.is_set():
                self._wake.wait(max(0.0, min(next_beat, next_reconcile) - time.monotonic()))
                woken = self._wake.is_set()
                self._wake.clear()
                now = time.monotonic()
                if now >= next_reconcile:
                    self._reconcile()
                    next_reconcile = now + check_interval()
                if woken or now >= next_beat:
                    supervisor.write()
                    next_beat = now + heartbeat
                connections.close_all()  # hold no idle connection between rounds
        finally:
            supervisor.status = NodeStatus.STOPPED
            supervisor.write()
            supervisor.registered = False
            connections.close_all()

    def watch(self, watched: WatchedState) -> None:
        """Re-check ``watched`` against the database at start, in the reconcile loop and
        after the listener reconnects (the kernel registers its states in ``ready()``)."""
        with self._lock:
            if watched not in self._states:
                self._states.append(watched)

    def _reconcile(self) -> None:
        """Compare every watched state with the database (repairs lost messages)."""
        for watched in list(self._states):
            try:
                watched.refresh(force=True)
            except DatabaseError as e:
                logger.debug("reconcile: %s", e)
            except Exception as e:
                self.supervisor.record_error(f"reconcile of {type(watched).__name__} failed: {e}")

    # -- messages -------------------------------------------------------------------------

    @property
    def has_audience(self) -> bool:
        """Whether a message published now could reach another process (a cheap test for
        hot paths that would otherwise build a message nobody gets; ``publish`` asks again).
        The adapter is read without the lock: ``True`` when this process has none yet."""
        adapter = self._pubsub if self._pid == _pid() else None
        return adapter is None or adapter.has_audience

    def publish(self, channel: str, payload: Any) -> None:
        """Send now (``tachycore.sync.publish`` calls this after commit). A failure is
        recorded, not raised: the change is committed, and the reconcile repairs."""
        try:
            adapter = self.pubsub
            if adapter.has_audience:
                adapter.publish(channel, payload)
        except Exception as e:
            self.supervisor.record_error(f"sync message on {channel!r} not sent: {type(e).__name__}: {e}")

    def route(self, prefix: str, handler: Callable[[str, Any], None]) -> None:
        """Send every message of a channel starting with ``prefix`` to ``handler(rest, payload)``,
        where ``rest`` is the channel name after the prefix (``plugin:<name>`` channels)."""
        with self._lock:
            self._routes[prefix] = handler

    def subscribe(self, channel: str, callback: Callable[[Any], None]) -> None:
        with self._lock:
            if callback not in self._subscribers[channel]:
                self._subscribers[channel].append(callback)

    def unsubscribe(self, channel: str, callback: Callable[[Any], None]) -> None:
        with self._lock:
            if callback in self._subscribers[channel]:
                self._subscribers[channel].remove(callback)

    def on_reconnect(self, callback: Callable[[], None]) -> None:
        with self._lock:
            if callback not in self._reconnect_callbacks:
                self._reconnect_callbacks.append(callback)

    def on_disconnect(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` as soon as the listener is not live (lost its connection, went
        quiet past the adapter's ``stall_after``, or stopped): until ``on_reconnect``, what
        other processes publish may not arrive. It runs on the listener or watchdog thread."""
        with self._lock:
            if callback not in self._disconnect_callbacks:
                self._disconnect_callbacks.append(callback)

    def _dispatch(self, channel: str, payload: Any, origin: str) -> None:
        # the listener thread keeps its database connection between messages (a new
        # connection would cost more than the rest of the work); a broken one is dropped
        _drop_broken_connections()
        receivers: list[tuple[Callable[..., None], tuple[Any, ...]]] = [
            (callback, (payload,)) for callback in self._subscribers.get(channel, ())
        ]
        receivers += [
            (handler, (channel[len(prefix):], payload))
            for prefix, handler in self._routes.items() if channel.startswith(prefix)
        ]
        failed = False
        for receiver, args in receivers:
            try:
                receiver(*args)
            except Exception as e:
                failed = True
                self.supervisor.record_error(f"sync subscriber of {channel!r} failed: {type(e).__name__}: {e}")
        if failed:
            connections.close_all()

    def _disconnected(self) -> None:
        for watched in list(self._states):  # their copies were trusted for RECONCILE_INTERVAL
            watched.check_soon()
        for callback in list(self._disconnect_callbacks):
            try:
                callback()
            except Exception as e:
                self.supervisor.record_error(f"sync disconnect callback failed: {e}")

    def _reconnected(self) -> None:
        connections.close_all()  # the server may have restarted: old connections are dead
        self._reconcile()
        for callback in list(self._reconnect_callbacks):
            try:
                callback()
            except Exception as e:
                self.supervisor.record_error(f"sync reconnect callback failed: {e}")
        connections.close_all()


_process_id = os.getpid()


def _pid() -> int:
    """This process's id, kept in a global refreshed after fork (``os.getpid()`` is a syscall)."""
    return _process_id


def _drop_broken_connections() -> None:
    for connection in connections.all(initialized_only=True):
        if connection.connection is not None and (connection.errors_occurred or not connection.is_usable()):
            connection.close()


def exit_on_sigterm() -> None:
    """Turn SIGTERM into a normal exit (``SystemExit``), so that ``atexit`` marks the
    node stopped. Only where nothing else handles SIGTERM (a bare ``runserver
    --noreload``, a command); servers such as gunicorn keep their own handler."""
    import signal

    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _exit_now)


def _exit_now(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def _process_name() -> str:
    import sys

    return " ".join(os.path.basename(arg) if i == 0 else arg for i, arg in enumerate(sys.argv[:3]))


runtime = Runtime()
state.follow_push(lambda: runtime.push_live)


def _after_fork_in_child() -> None:
    global _process_id
    # locks held by another thread at fork time would stay held forever in the child
    runtime._lock = threading.RLock()
    _process_id = os.getpid()


os.register_at_fork(after_in_child=_after_fork_in_child)
