"""Broadcast events from other processes: handed by the sync listener to a thread of their
own, so that a slow handler holds up no other sync message (nor makes the listener look
stalled), and delivered there one after another in the order they arrived."""

from __future__ import annotations

import logging
import os
import queue
import threading
from typing import Any

from django.db import connections

from ..runtime import runtime
from .publishing import deliver

logger = logging.getLogger("tachycore.events")

#: events from other processes waiting here for their handlers; one more is dropped (recorded)
INBOX_SIZE = 1000


class Inbox:
    """Broadcast events from other processes, handed from the sync listener to a thread of
    their own and delivered there in the order they arrived."""

    def __init__(self) -> None:
        self._start_over()

    def _start_over(self) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(INBOX_SIZE)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def put(self, message: Any) -> None:
        """Queue ``message`` (the listener calls it, through :func:`receive`); dropped and
        recorded on the node when ``INBOX_SIZE`` events are waiting already."""
        self._ensure_thread()
        try:
            self._queue.put_nowait(message)
        except queue.Full:
            name = message.get("name") if isinstance(message, dict) else None
            text = (f"event {name!r} from another process dropped: {INBOX_SIZE} events are waiting "
                    "for their handlers here")
            logger.error("%s", text)
            runtime.supervisor.record_error(text)

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                # a plain thread: each handler runs as its own plugin, never as the listener
                self._thread = threading.Thread(target=self._work, name="tachycore-events", daemon=True)
                self._thread.start()

    def _work(self) -> None:
        while True:
            message = self._queue.get()
            try:
                deliver(message)
            except Exception as e:  # a state check that could not read the database...
                logger.exception("event message not delivered")
                runtime.supervisor.record_error(f"event message not delivered: {type(e).__name__}: {e}")
                connections.close_all()
            finally:
                self._queue.task_done()
            if self._queue.empty():
                connections.close_all()  # hold no idle connection between events

    def wait_empty(self) -> None:
        """Return once every event queued so far was delivered (tests)."""
        self._queue.join()

    def _after_fork_in_child(self) -> None:
        # the thread does not exist in the child, and the events waiting are the parent's
        self._start_over()


inbox = Inbox()


def receive(message: Any) -> None:
    """A broadcast event from another process: the sync listener hands it to :data:`inbox`
    (subscribed to :data:`CHANNEL` in ``TachycoreConfig.ready()``)."""
    inbox.put(message)


os.register_at_fork(after_in_child=inbox._after_fork_in_child)
