"""The sync message adapter interface: how processes of one site tell each other things."""

from __future__ import annotations

import abc
import json
import logging
import random
import threading
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
    got it back (messages may have been lost meanwhile: receivers reconcile).
    """

    #: messages reach other processes (the in-process adapter reaches none)
    cross_process: bool = True

    def __init__(self, node_id: str, on_message: MessageHandler, on_reconnect: Callable[[], None]) -> None:
        self.node_id = node_id
        self.on_message = on_message
        self.on_reconnect = on_reconnect
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._listening = threading.Event()

    @abc.abstractmethod
    def publish(self, channel: str, payload: Any) -> None:
        """Send one message now (``tachycore.sync.publish`` calls it after commit)."""

    def _connect(self) -> None:
        """Open the listening connection and subscribe (cross-process adapters)."""
        raise NotImplementedError

    def _receive(self, timeout: float) -> Iterable[str]:
        """Wait up to ``timeout`` seconds, yielding each raw message as it arrives."""
        raise NotImplementedError

    #: what the log calls the server when the connection drops
    server_name = "the server"

    def _listen(self) -> None:
        """Connect, receive until stopped, reconnect with jittered backoff after any
        error (then ``on_reconnect``: messages may have been lost meanwhile)."""
        delay, first = 0.1, True
        while not self._stop.is_set():
            try:
                self._connect()
                self._listening.set()
                if not first:
                    self._reconnected()
                first, delay = False, 0.1
                while not self._stop.is_set():
                    for text in self._receive(1.0):
                        self._deliver(text)
            except Exception as e:  # noqa: BLE001 - drivers raise several kinds when a socket dies
                self._listening.clear()
                if self._stop.is_set():
                    break
                logger.warning("sync listener lost its connection to %s (%s); reconnecting", self.server_name, e)
                first = False
                self._stop.wait(delay * (1 + random.random()))
                delay = min(delay * 2, 5.0)
            finally:
                self._listening.clear()
                self._close()

    @property
    def has_audience(self) -> bool:
        """Whether a message sent now can reach anyone (else publishing skips the work)."""
        return True

    @property
    def listening(self) -> bool:
        """Whether the listener is connected now (a change elsewhere reaches this process)."""
        return self._listening.is_set()

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._listen, name=f"tachycore-{type(self).__name__}",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5) -> None:
        self._stop.set()
        self._close()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._listening.clear()

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
