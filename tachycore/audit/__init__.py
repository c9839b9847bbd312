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

import contextvars
import functools
import getpass
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from ..conf import tachycore_settings
from ..context import acting_as
from ..errors import CapabilityDenied, UngrantedCapabilities
from ..governance import Decision
from ..models import Access, AuditDecision, AuditEvent
from ..trace import current_trace_id
from .writer import ALLOWED, Entry, trail

__all__ = ["flush", "operation", "prune", "record_decision", "record_operation", "records_allowed",
           "request_user", "stats", "trail"]

#: the actions of grant changes, which governance reports as "allowed" decisions
GRANT_CHANGES = frozenset({"grant", "revoke"})

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


# -- the queues ------------------------------------------------------------------------------


def flush(timeout: float = 5.0) -> bool:
    """Write what this process has queued, waiting at most ``timeout`` seconds; whether all was."""
    return trail.flush(timeout)


def stats() -> dict[str, Any]:
    """This process's audit counts: ``queued``, ``written``, ``denials_written``, ``dropped``, ``last_error``."""
    return trail.stats()


def flush_at_stop(**kwargs: Any) -> None:
    """``process_stopping``: write what is queued before the process goes."""
    trail.flush_at_exit()


def prune(now: datetime | None = None) -> int:
    """Delete the rows older than ``TACHYCORE["AUDIT_RETENTION"]``; how many (the hourly
    django-q2 schedule runs it)."""
    cutoff = (now or timezone.now()) - timedelta(seconds=tachycore_settings.AUDIT_RETENTION)
    deleted, _ = AuditEvent.objects.filter(at__lt=cutoff).delete()
    return deleted
