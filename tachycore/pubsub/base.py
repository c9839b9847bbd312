"""The sync message adapter interface: how processes of one site tell each other things."""

from __future__ import annotations

import abc
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from tachycore.errors import SyncMessageError

logger = logging.getLogger("tachycore.sync")

#: PostgreSQL refuses NOTIFY payloads of 8000 bytes or more; every adapter keeps to it
MAX_MESSAGE_BYTES = 7900

MessageHandler = Callable[[str, Any, str], None]


def encode(channel: str, payload: Any, origin: str) -> str:
    """The wire form of a message: JSON with the channel, the sender's node id and the payload."""
    try:
        text = json.dumps({"c": channel, "o": origin, "p": payload}, separators=(",", ":"))
    except (TypeError, ValueError) as e:
        raise SyncMessageError(f"sync message on {channel!r} is not JSON-serialisable: {e}") from None
    if len(text.encode()) > MAX_MESSAGE_BYTES:
        raise SyncMessageError(
            f"sync message on {channel!r} is {len(text.encode())} bytes; the limit is {MAX_MESSAGE_BYTES}"
            " (send a key and let receivers read the data)"
        )
    return text


def _nothing() -> None:
    pass


class ListenerStalled(Exception):
    """The listener heard nothing from its server for ``stall_after`` seconds."""


def decode(text: str) -> tuple[str, Any, str] | None:
    try:
        data = json.loads(text)
        return data["c"], data.get("p"), data["o"]
    except (ValueError, KeyError, TypeError):
        logger.warning("ignored a malformed sync message: %.200s", text)
        return None


class BasePubSub(abc.ABC):
    """Publishes messages and delivers the messages of every other process to ``on_message``.

    ``on_message(channel, payload, origin)`` runs on the adapter's listener
    thread; ``on_reconnect()`` runs after the listener lost its connection and
    got it back (messages may have been lost meanwhile: receivers reconcile);
    ``on_disconnect()`` runs as soon as it is known to be lost (set by the runtime
    after construction; a no-op by default).

    Liveness: the listener is live (:attr:`listening`) while it is connected and
    has heard from its server within ``stall_after`` seconds. It receives in
    rounds of ``keepalive_interval`` seconds and, after a silent one, sends the
    server a keepalive (:meth:`_ping`) whose answer counts as hearing from it, so a
    healthy idle listener hears about every ``keepalive_interval`` seconds. A
    watchdog thread declares a listener that went quiet (a network partition, a
    thread stuck in a handler) lost within ``stall_after`` plus half a
    ``keepalive_interval``, even while the listener thread itself is blocked.
    """

    #: messages reach other processes (the in-process adapter reaches none)
    cross_process: bool = True
    #: seconds of one receive round, and of silence before a keepalive is sent
    keepalive_interval: float = 0.5
    #: seconds without hearing from the server after which the listener is not live
    stall_after: float = 2.0

    def __init__(self, node_id: str, on_message: MessageHandler, on_reconnect: Callable[[], None]) -> None:
        self.node_id = node_id
        self.on_message = on_message
        self.on_reconnect = on_reconnect
        self.on_disconnect: Callable[[], None] = _nothing
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._watchdog: threading.Thread | None = None
        self._listening = threading.Event()
        self._live_lock = threading.Lock()
        self._heard_at = 0.0

    @abc.abstractmethod
    def publish(self, channel: str, payload: Any) -> None:
        """Send one message now (``tachycore.sync.publish`` calls it after commit)."""

    def _connect(self) -> None:
        """Open the listening connection and subscribe (cross-process adapters)."""
        raise NotImplementedError

    def _receive(self, timeout: float) -> Iterable[str]:
        """Wait up to ``timeout`` seconds, yielding each raw message as it arrives."""
        raise NotImplementedError

    def _ping(self) -> None:  # noqa: B027 (an adapter without a keepalive relies on its messages)
        """Ask the server for a sign of life; its answer calls :meth:`_heard` (now, or when
        a later ``_receive`` reads it)."""

    def _heard(self) -> None:
        """The server answered: the connection carries messages now."""
        self._heard_at = time.monotonic()

    #: what the log calls the server when the connection drops
    server_name = "the server"

    def _listen(self) -> None:
        """Connect, receive until stopped, reconnect with jittered backoff after any
        error or stall (then ``on_reconnect``: messages may have been lost meanwhile)."""
        delay, first = 0.1, True
        while not self._stop.is_set():
            try:
                self._connect()
                if not first:
                    self._reconnected()  # before live: what it reconciles may be read meanwhile
                first, delay = False, 0.1
                self._heard()
                self._listening.set()
                while not self._stop.is_set():
                    for text in self._receive(self.keepalive_interval):
                        self._heard()
                        self._deliver(text)
                    self._keep_alive()
            except Exception as e:  # noqa: BLE001 - drivers raise several kinds when a socket dies
                self._lost()
                if self._stop.is_set():
                    break
                logger.warning("sync listener lost its connection to %s (%s); reconnecting", self.server_name, e)
                first = False
                self._stop.wait(delay * (1 + random.random()))
                delay = min(delay * 2, 5.0)
            finally:
                self._lost()
                self._close()

    def _keep_alive(self) -> None:
        """Between receive rounds: give up a connection the watchdog declared lost or that
        stayed silent too long (raising, to reconnect), else ping after a silent round."""
        silent = time.monotonic() - self._heard_at
        if not self._listening.is_set() or silent >= self.stall_after:
            raise ListenerStalled(f"nothing heard from {self.server_name} for {silent:.1f} s")
        if silent >= self.keepalive_interval:
            self._ping()

    def _lost(self) -> None:
        """The listener is not live any more: say so once (``on_disconnect``)."""
        with self._live_lock:
            if not self._listening.is_set():
                return
            self._listening.clear()
            try:
                self.on_disconnect()
            except Exception:
                logger.exception("sync disconnect handler failed")

    def _watch(self) -> None:
        """The watchdog: declare lost a listener that has gone quiet, even one whose thread
        is blocked (a partition leaves a socket open and silent; a handler may hang)."""
        while not self._stop.wait(self.keepalive_interval / 2):
            if self._listening.is_set() and not self.listening:
                logger.warning("sync listener heard nothing from %s for %.1f s; not live until it reconnects",
                               self.server_name, time.monotonic() - self._heard_at)
                self._lost()

    @property
    def has_audience(self) -> bool:
        """Whether a message sent now can reach anyone (else publishing skips the work)."""
        return True

    @property
    def listening(self) -> bool:
        """Whether the listener is live: connected, and heard from its server within
        ``stall_after`` seconds (a change elsewhere reaches this process)."""
        return self._listening.is_set() and time.monotonic() - self._heard_at < self.stall_after

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._listen, name=f"tachycore-{type(self).__name__}",
                                        daemon=True)
        self._thread.start()
        self._watchdog = threading.Thread(target=self._watch, name=f"tachycore-{type(self).__name__}-watchdog",
                                          daemon=True)
        self._watchdog.start()

    def stop(self, timeout: float = 5) -> None:
        self._stop.set()
        self._close()
        for thread in (self._thread, self._watchdog):
            if thread is not None:
                thread.join(timeout)
        self._thread = self._watchdog = None
        self._lost()

    def _close(self) -> None:  # noqa: B027 (adapters without a connection close nothing)
        """Interrupt the listener's blocking wait."""

    def wait_listening(self, timeout: float) -> bool:
        return self._listening.wait(timeout)

    def _deliver(self, text: str) -> None:
        message = decode(text)
        if message is None:
            return
        channel, payload, origin = message
        if origin == self.node_id:
            return  # a process does not get its own messages
        try:
            self.on_message(channel, payload, origin)
        except Exception:
            logger.exception("sync message handler failed for %r", channel)

    def _reconnected(self) -> None:
        try:
            self.on_reconnect()
        except Exception:
            logger.exception("sync reconnect handler failed")
