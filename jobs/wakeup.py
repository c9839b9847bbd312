"""Waking an idle dispatcher when a job is enqueued.

On PostgreSQL every enqueue sends ``NOTIFY tachy_jobs`` in its transaction, so it is
delivered at commit. A dispatcher listens on a dedicated autocommit connection (not
one of Django's: it stays in ``LISTEN`` for the process's life) and sets its wake
event; the main loop then claims once, however many notifications arrived. A lost
connection is re-opened with backoff; meanwhile the dispatcher polls.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable

from django.db import connections

from .claims import NOTIFY_CHANNEL

logger = logging.getLogger("jobs.dispatcher")

_DJANGO_ONLY = ("cursor_factory", "context", "prepare_threshold")


class Listener:
    """Listens for enqueue notifications in a thread; ``wake()`` is called for each burst."""

    def __init__(self, using: str, name: str, wake: Callable[[], None],
                 on_error: Callable[[str], None] = lambda message: None) -> None:
        self.using = using
        self.name = name
        self.wake = wake
        self.on_error = on_error
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn = None
        self.listening = threading.Event()

    @staticmethod
    def supported(using: str) -> bool:
        return connections[using].vendor == "postgresql"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="jobs-listener", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()
        if self._thread is not None:
            self._thread.join(5)

    def _connect(self):
        import psycopg

        params = connections[self.using].get_connection_params()
        for key in _DJANGO_ONLY:
            params.pop(key, None)
        params["application_name"] = f"jobs-listen {self.name}"[:63]
        conn = psycopg.connect(**params, autocommit=True)
        conn.execute(f'LISTEN "{NOTIFY_CHANNEL}"')
        return conn

    def _run(self) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            try:
                self._conn = self._connect()
                self.listening.set()
                self.wake()  # jobs may have come while we were not listening
                backoff = 0.1
                while not self._stop.is_set():
                    woke = False
                    for _ in self._conn.notifies(timeout=1.0, stop_after=1):
                        woke = True
                    if woke:
                        self.wake()
            except Exception as e:
                self.listening.clear()
                if self._stop.is_set():
                    return
                logger.warning("jobs listener: %s; reconnecting in %.1fs", e, backoff)
                self.on_error(f"jobs listener lost its connection: {type(e).__name__}: {e}")
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                conn, self._conn = self._conn, None
                if conn is not None:
                    with contextlib.suppress(Exception):
                        conn.close()
