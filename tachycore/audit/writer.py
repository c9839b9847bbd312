"""The audit trail's writer: this process's queues and the thread that empties them.

Events are written in batches (``bulk_create``) by one daemon thread per process, on
the thread's own database connection in autocommit, closed when the queues are empty
(no idle session left on the server). Why a thread and not the caller's connection:
see ``tachycore.audit``.
"""

from __future__ import annotations

import atexit
import contextvars
import logging
import os
import threading
import time
from collections import deque
from datetime import datetime
from typing import Any, NamedTuple

from django.db import connections, router

from ..conf import tachycore_settings
from ..models import AuditEvent
from ..runtime import runtime

__all__ = ["ALLOWED", "Entry", "Trail", "trail"]

logger = logging.getLogger("tachycore.audit")

#: the decision of a check that let the call through (a plain string: compared on every check)
ALLOWED = "allowed"
#: rows per INSERT of the writer
BATCH_SIZE = 500
#: how long an allowed check waits at most for its batch
WRITE_INTERVAL = 1.0
#: the longest pause between two tries after the database refused a batch
MAX_BACKOFF = 5.0
#: how often the drop count is recorded again on the node while drops go on
DROP_REPORT_INTERVAL = 60.0
#: how long the flush at exit waits for the writer
EXIT_FLUSH_TIMEOUT = 10.0


class Entry(NamedTuple):
    """One row to write (``AuditEvent``'s fields, the node added by the writer)."""

    at: datetime
    plugin: str
    capability: str
    access: int
    decision: str
    action: str
    target: str
    detail: str
    trace_id: str
    user_id: int | None


class Trail:
    """This process's two queues (kept events, offered allowed checks) and its writer thread."""

    def __init__(self) -> None:
        self._start_over()
        self._atexit = False

    def _start_over(self) -> None:
        self._lock = threading.Lock()
        self._progress = threading.Condition(self._lock)
        self._wake = threading.Event()
        self._kept: deque[Entry] = deque()
        self._offered: deque[Entry] = deque()
        #: events taken by the writer and not yet written (or put back)
        self._in_flight = 0
        #: the writer is in a round: writing, or closing its connection after
        self._busy = False
        self._thread: threading.Thread | None = None
        self.written = self.denials_written = self.dropped = 0
        self.last_error = ""
        self._failures = 0
        self._reported_drops = 0
        self._reported_at = 0.0

    # -- the callers' side ---------------------------------------------------------------

    def keep(self, entry: Entry) -> None:
        """Queue an event that is never dropped, and wake the writer."""
        with self._lock:
            self._kept.append(entry)
            self._ensure_writer()
        self._wake.set()

    def offer(self, entry: Entry) -> None:
        """Queue an allowed check, or drop and count it when the queue is full."""
        with self._lock:
            if len(self._offered) >= tachycore_settings.AUDIT_QUEUE_SIZE:
                self.dropped += 1
                return
            self._offered.append(entry)
            self._ensure_writer()
            full_batch = len(self._offered) >= BATCH_SIZE
        if full_batch:
            self._wake.set()

    def flush(self, timeout: float = 5.0, *, until_error: bool = False) -> bool:
        """Wait until every queued event is written (at most ``timeout`` seconds); whether
        it was. ``until_error``: give up at the first batch the database refuses (at exit,
        rather than trying until the timeout). Written in this thread when no writer can
        run (at interpreter shutdown)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            writer = self._ensure_writer()
            failures = self._failures
        if writer is None:
            contextvars.Context().run(self._write_here, deadline)
        self._wake.set()
        with self._progress:
            while self._kept or self._offered or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (until_error and self._failures > failures):
                    return False
                self._progress.wait(min(remaining, 0.1))
                self._wake.set()
        return True

    def reset(self, timeout: float = 5.0) -> None:
        """Forget what is queued, once the batch being written is (tests: what one test
        recorded is not written into the next one's database)."""
        deadline = time.monotonic() + timeout
        with self._progress:
            self._kept.clear()
            self._offered.clear()
            while self._busy and time.monotonic() < deadline:
                self._progress.wait(0.1)

    def stats(self) -> dict[str, Any]:
        """Counts of this process since it started: queued (waiting, both queues), written,
        denials_written (denials and would_deny), dropped (allowed checks), last_error."""
        with self._lock:
            return {"queued": len(self._kept) + len(self._offered) + self._in_flight, "written": self.written,
                    "denials_written": self.denials_written, "dropped": self.dropped,
                    "last_error": self.last_error}

    def _ensure_writer(self) -> threading.Thread | None:
        if self._thread is None:
            thread = threading.Thread(target=self._run, name="tachycore-audit", daemon=True)
            try:
                thread.start()
            except RuntimeError:  # interpreter shutdown: flush() writes in its caller's thread
                return None
            self._thread = thread
            if not self._atexit:
                atexit.register(self.flush_at_exit)
                self._atexit = True
        return self._thread

    # -- the writer's side ---------------------------------------------------------------

    def _run(self) -> None:
        while True:
            self._wake.wait(WRITE_INTERVAL)
            self._wake.clear()
            try:
                while self._write_batch():
                    pass
                self._report_drops()
            except Exception:  # never let the thread die: the queues would only grow
                logger.exception("audit writer")
            finally:
                self._end_round()
            if self._failures:  # the database refused the last batch: wait before the next try
                time.sleep(min(MAX_BACKOFF, 0.05 * 2 ** self._failures))

    def _end_round(self) -> None:
        if not self._busy:
            return
        connections.close_all()  # this thread's own: no idle session left on the server
        with self._lock:
            self._busy = False
            self._progress.notify_all()

    def _write_here(self, deadline: float) -> None:
        while (self._kept or self._offered) and time.monotonic() < deadline and self._write_batch():
            pass
        with self._lock:
            self._busy = False

    def _write_batch(self) -> bool:
        """Write one batch; whether there may be more to write."""
        with self._lock:
            kept = [self._kept.popleft() for _ in range(min(BATCH_SIZE, len(self._kept)))]
            offered = [self._offered.popleft() for _ in range(min(BATCH_SIZE - len(kept), len(self._offered)))]
            if not kept and not offered:
                return False
            self._in_flight = len(kept) + len(offered)
            self._busy = True
        try:
            _insert(kept + offered)
        except Exception as e:
            self._put_back(kept, offered, e)
            return False
        with self._lock:
            self._in_flight = 0
            self._failures = 0
            self.written += len(kept) + len(offered)
            self.denials_written += sum(1 for entry in kept if entry.decision != ALLOWED)
        return True

    def _put_back(self, kept: list[Entry], offered: list[Entry], error: Exception) -> None:
        with self._lock:
            self._kept.extendleft(reversed(kept))  # never dropped: tried again, in order
            room = max(0, tachycore_settings.AUDIT_QUEUE_SIZE - len(self._offered))
            self._offered.extendleft(reversed(offered[:room]))
            self.dropped += len(offered) - min(room, len(offered))
            self._in_flight = 0
            self._failures += 1
            self.last_error = f"{type(error).__name__}: {error}"
            failures = self._failures
            self._progress.notify_all()
        if failures == 1:
            logger.warning("audit rows not written, trying again: %s", self.last_error)

    def _report_drops(self) -> None:
        """Record on the node (and log) that allowed checks are being dropped: when it starts,
        then at most once a minute while it goes on."""
        dropped = self.dropped
        now = time.monotonic()
        if dropped == self._reported_drops or (self._reported_drops and now - self._reported_at < DROP_REPORT_INTERVAL):
            return
        self._reported_drops, self._reported_at = dropped, now
        message = (f"audit: {dropped} allowed check(s) dropped, the queue being full "
                   f"(raise TACHYCORE['AUDIT_QUEUE_SIZE'] or record fewer with AUDIT_ALLOWED)")
        logger.warning("%s", message)
        runtime.supervisor.record_error(message)

    def flush_at_exit(self) -> None:
        """At exit: write what is queued, waiting at most ``EXIT_FLUSH_TIMEOUT``, or until the
        database refuses a batch (then say how much is lost)."""
        if not self.flush(EXIT_FLUSH_TIMEOUT, until_error=True):
            stats = self.stats()
            logger.error("audit: %d event(s) not written at exit: %s", stats["queued"], stats["last_error"])

    def _after_fork_in_child(self) -> None:
        atexit_registered = self._atexit
        self._start_over()  # the parent writes what was queued; its thread is not here
        self._atexit = atexit_registered


def _insert(entries: list[Entry]) -> None:
    node = runtime.node_id
    alias = router.db_for_write(AuditEvent)
    connections[alias].close_if_unusable_or_obsolete()
    AuditEvent.objects.using(alias).bulk_create([AuditEvent(node=node, **entry._asdict()) for entry in entries])


trail = Trail()
os.register_at_fork(after_in_child=trail._after_fork_in_child)
