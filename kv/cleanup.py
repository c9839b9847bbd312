"""Expiry cleanup: delete the rows of ``_kv`` whose ``expire_at`` has passed.

Reads already treat an expired row as absent; the cleanup gives the space back.
It runs in one of three ways (docs/kv-cleanup.md):

- :func:`cleanup_expired`, the function of the django-q2 schedule
  ``"kv: delete expired keys"`` (see :mod:`kv.schedules`), run by ``manage.py qcluster``;
- ``manage.py kv_cleanup``: one pass;
- ``manage.py kv_cleanup --loop``: a :class:`CleanupLoop` in a process of its own.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator

from django.db import DatabaseError, close_old_connections

__all__ = ["CleanupLoop", "cleanup_expired"]


def cleanup_expired(batch_size: int | None = None) -> int:
    """Delete every expired key, ``batch_size`` rows per statement (default
    ``KV["CLEANUP_BATCH_SIZE"]``); return how many rows were deleted.

    Each batch is its own statement and, outside a transaction, commits on its
    own: a pass that is interrupted leaves nothing half done. On SQLite, when the
    pass walks the table, ``batch_size`` is the first batch's and the smallest: the
    next ones grow to last about 30 ms (docs/kv-cleanup.md).
    """
    from . import get_store

    store = get_store()
    if store is None:  # kv left INSTALLED_APPS while its schedule row stayed behind
        return 0
    return store.delete_expired(batch_size)


class CleanupLoop:
    """Run :func:`cleanup_expired` every ``interval`` seconds until :meth:`stop`.

    A pass that fails with a database error is reported to ``on_error`` and the
    loop goes on: a database that restarts must not end a long-running cleanup
    process, the next pass simply tries again.
    """

    def __init__(self, interval: float, batch_size: int | None = None, *,
                 on_pass: Callable[[int], None] | None = None,
                 on_error: Callable[[DatabaseError], None] | None = None) -> None:
        if interval <= 0:
            raise ValueError(f"the interval must be more than 0 seconds, got {interval!r}")
        self.interval = interval
        self.batch_size = batch_size
        self.on_pass = on_pass
        self.on_error = on_error
        self.passes = 0
        self.removed = 0
        self._stop = threading.Event()

    def stop(self) -> None:
        """Stop after the pass under way (or at once, while waiting for the next one)."""
        self._stop.set()

    def run(self) -> int:
        """Pass, wait ``interval``, pass, ... until stopped; return the keys removed in all."""
        while not self._stop.is_set():
            self.run_pass()
            self._stop.wait(self.interval)
        return self.removed

    def run_pass(self) -> int:
        """One pass; the number of keys it removed (0 when it failed)."""
        self.passes += 1
        try:
            removed = cleanup_expired(self.batch_size)
        except DatabaseError as e:
            # a broken connection is dropped so that the next pass opens a new one
            close_old_connections()
            if self.on_error is not None:
                self.on_error(e)
            return 0
        self.removed += removed
        if self.on_pass is not None:
            self.on_pass(removed)
        return removed

    @contextlib.contextmanager
    def stopping_on_signals(self, signums: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)) -> Iterator[None]:
        """Inside the block, the first SIGINT or SIGTERM stops the loop after the pass
        under way; a second one ends the process at once (each batch has committed
        on its own, so nothing is lost). Call from the main thread."""

        def handle(signum: int, frame: object) -> None:
            if self._stop.is_set():
                raise SystemExit(128 + signum)
            self.stop()

        previous = {signum: signal.signal(signum, handle) for signum in signums}
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
