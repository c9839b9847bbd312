"""The audit trail: governance decisions, grant changes and plugin operations, as ``AuditEvent`` rows.

What is written:

- every denial and every ``would_deny`` (audit mode), every grant change (``grant``,
  ``revoke``) and every plugin manager operation (``pm.enable``...), refused or not;
- allowed checks per ``TACHYCORE["AUDIT_ALLOWED"]``: ``"none"`` (the default: a plugin's
  every statement would otherwise add a row, a write for each read), ``"writes"`` (allowed
  checks at WRITE or EXECUTE) or ``"all"``.

How: nothing is written on the caller's connection. Events go to this process's writer
thread, which inserts them in batches (``bulk_create``) on a connection of its own
(Django gives each thread its own), in autocommit. Why this and not the caller's
connection, ``on_commit`` or a second connection opened by the caller:

- a denial usually happens inside the plugin's transaction, which then rolls back: a row
  written on that connection would go with it, and Django has ``on_commit`` hooks but no
  hook after a rollback;
- on SQLite, the plugin's transaction holds the database's one write lock
  (``IMMEDIATE`` transactions, ``tachycore.db``): a second connection opened by the caller
  would wait for a lock the caller itself holds until the busy timeout, then fail. The
  writer thread waits for it instead, the caller never does; the row is written as soon
  as the plugin's transaction ends, committed or rolled back (measured in
  docs/governance.md). On PostgreSQL it is written at once.

Denials, grant changes and operations are kept in a queue of their own that is never
cut: when the database refuses a batch (locked for longer than the busy timeout, down),
it is put back and tried again. Allowed checks go through a queue bounded by
``AUDIT_QUEUE_SIZE``: when it is full they are dropped and counted; the count is shown by
``stats()``, recorded on the process's supervisor node and in the admin. At exit
(``atexit``, and when the runtime stops) the queues are flushed; a forked child starts
with empty queues (its parent writes what it had).
"""

from __future__ import annotations

import atexit
import contextvars
import functools
import getpass
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from django.db import connections, router
from django.utils import timezone

from .conf import tachycore_settings
from .context import acting_as
from .errors import CapabilityDenied, UngrantedCapabilities
from .governance import Decision
from .models import Access, AuditDecision, AuditEvent
from .runtime import runtime
from .trace import current_trace_id

__all__ = ["flush", "operation", "prune", "record_decision", "record_operation", "records_allowed",
           "request_user", "stats", "trail"]

logger = logging.getLogger("tachycore.audit")

#: the actions of grant changes, which governance reports as "allowed" decisions
GRANT_CHANGES = frozenset({"grant", "revoke"})
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

#: the request being served (``KernelMiddleware``); its user is read only when a row is written
_request: contextvars.ContextVar[Any] = contextvars.ContextVar("tachycore_audit_request", default=None)


@contextmanager
def request_user(request: Any) -> Iterator[None]:
    """Run the block with ``request``'s user as the one rows are attributed to. Cheap: the
    user is looked at only when a row is recorded."""
    token = _request.set(request)
    try:
        yield
    finally:
        _request.reset(token)


def _user_id() -> int | None:
    request = _request.get()
    if request is None:
        return None
    try:
        with acting_as(None):  # the session and user queries are the kernel's, not the plugin's
            user = getattr(request, "user", None)
            return user.pk if user is not None and user.is_authenticated else None
    except Exception:  # a broken session or database: the row is worth more than its user
        return None


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for the uid (containers)
        return str(os.getuid())


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


def _entry(plugin: str, capability: str, access: int, decision: str, action: str, target: str = "",
           detail: str = "", *, by_os_user: bool = False) -> Entry:
    user_id = _user_id()
    if by_os_user and user_id is None:
        detail = f"{detail} (os user {_os_user()})".lstrip()
    return Entry(timezone.now(), plugin[:100], capability[:200], int(access), decision, action[:50],
                 target[:255], detail, current_trace_id(), user_id)


# -- what is recorded ------------------------------------------------------------------------


def records_allowed() -> bool:
    """Whether allowed checks are recorded now (governance builds no decision otherwise)."""
    return tachycore_settings.AUDIT_ALLOWED != "none"


def record_decision(decision: Decision) -> None:
    """The governance observer (registered in ``TachycoreConfig.ready()``): keep denials,
    ``would_deny`` and grant changes; queue allowed checks per ``AUDIT_ALLOWED``."""
    if decision.decision == ALLOWED and decision.action not in GRANT_CHANGES:
        wanted = tachycore_settings.AUDIT_ALLOWED
        if wanted == "none" or (wanted == "writes" and decision.access < Access.WRITE):
            return  # the hot path: an allowed check nobody asked to record
        trail.offer(_entry(decision.plugin, decision.capability, decision.access, decision.decision,
                           decision.action, decision.target, decision.detail))
        return
    trail.keep(_entry(decision.plugin, decision.capability, decision.access, decision.decision,
                      decision.action, decision.target, decision.detail,
                      by_os_user=decision.action in GRANT_CHANGES))


def record_operation(action: str, plugins: list[str] | tuple[str, ...], decision: str, detail: str = "") -> None:
    """Keep a plugin manager operation: one row per plugin named (one without a plugin
    when none was), attributed to the request's user or, without one, the OS user."""
    for plugin in plugins or [""]:
        trail.keep(_entry(plugin, "", Access.NONE, decision, action, ", ".join(plugins), detail, by_os_user=True))


def operation[F: Callable[..., Any]](action: str) -> Callable[[F], F]:
    """Decorate a plugin manager method: once it returns (its transaction committed), or
    raised, record it as ``action`` for the plugin names among its arguments: ``allowed``,
    ``denied`` (governance refused it: ungranted capabilities) or ``failed``."""

    def decorate(method: F) -> F:
        @functools.wraps(method)
        def audited(self: Any, *args: Any, **kwargs: Any) -> Any:
            names = [arg for arg in args if isinstance(arg, str)]
            try:
                result = method(self, *args, **kwargs)
            except Exception as e:
                refused = isinstance(e, UngrantedCapabilities | CapabilityDenied)
                record_operation(action, names, AuditDecision.DENIED if refused else AuditDecision.FAILED,
                                 f"{type(e).__name__}: {e}")
                raise
            record_operation(action, names, AuditDecision.ALLOWED, _outcome(result))
            return result

        return audited  # type: ignore[return-value]

    return decorate


def _outcome(result: Any) -> str:
    if isinstance(result, list):  # enable, disable: the plugins whose state changed
        return f"changed: {', '.join(result)}" if result else "nothing to change"
    if isinstance(result, tuple) and len(result) == 2:  # upgrade: (from, to)
        return f"version {result[0]} -> {result[1]}"
    return ""


# -- the writer ------------------------------------------------------------------------------


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
                atexit.register(flush_at_exit)
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


def flush(timeout: float = 5.0) -> bool:
    """Write what this process has queued, waiting at most ``timeout`` seconds; whether all was."""
    return trail.flush(timeout)


def stats() -> dict[str, Any]:
    """This process's audit counts: ``queued``, ``written``, ``denials_written``, ``dropped``, ``last_error``."""
    return trail.stats()


def flush_at_stop(**kwargs: Any) -> None:
    """``process_stopping``: write what is queued before the process goes."""
    flush_at_exit()


def flush_at_exit() -> None:
    """At exit: write what is queued, waiting at most ``EXIT_FLUSH_TIMEOUT``, or until the
    database refuses a batch (then say how much is lost)."""
    if not trail.flush(EXIT_FLUSH_TIMEOUT, until_error=True):
        logger.error("audit: %d event(s) not written at exit: %s", stats()["queued"], stats()["last_error"])


def prune(now: datetime | None = None) -> int:
    """Delete the rows older than ``TACHYCORE["AUDIT_RETENTION"]``; how many (the hourly
    django-q2 schedule runs it)."""
    cutoff = (now or timezone.now()) - timedelta(seconds=tachycore_settings.AUDIT_RETENTION)
    deleted, _ = AuditEvent.objects.filter(at__lt=cutoff).delete()
    return deleted
