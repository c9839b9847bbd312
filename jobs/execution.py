"""Running one claimed job: call its handler (or task) and turn what happened into an outcome,
on database connections checked the way Django checks them between requests."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import random
import traceback
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from django.db import InterfaceError, OperationalError, close_old_connections, connections
from django.utils import timezone
from opentelemetry.trace import SpanKind

from tachycore import trace
from tachycore.context import acting_as
from tachycore.errors import PluginUnavailable
from tachycore.jsontext import json_fault

from .conf import jobs_settings
from .errors import UnknownTopic
from .handlers import handlers, owner_app_label
from .models import Job, JobStatus
from .signals import job_started

MAX_TRACEBACK = 20_000  # characters of a traceback kept per failed attempt

#: the status of an outcome that is no attempt: the job goes back to pending with its attempt
#: given back, because it never started (its lease could not be vouched for) or its database
#: went away under it (the job did nothing wrong; it runs again on a new connection)
RETURNED = "returned"


@dataclasses.dataclass
class Outcome:
    """What one attempt of a job came to."""

    job: Job
    #: "completed", "pending" (to be retried at ``retry_at``), "failed" or ``RETURNED``
    status: str
    result_json: str | None = None
    return_value: Any = None
    error: dict[str, Any] | None = None
    exception: BaseException | None = None
    retry_at: datetime | None = None


def describe_error(exc: BaseException, at: datetime) -> dict[str, Any]:
    # no NUL character (PostgreSQL's text and jsonb cannot hold one) and no lone surrogate
    # (no database can, and the API could not write it out): both shown escaped instead
    text = "".join(traceback.format_exception(exc)).replace("\x00", "\\x00")
    text = text.encode(errors="backslashreplace").decode()
    if len(text) > MAX_TRACEBACK:
        text = text[:MAX_TRACEBACK // 2] + "\n[...]\n" + text[-MAX_TRACEBACK // 2:]
    cls = type(exc)
    return {"exception_class_path": f"{cls.__module__}.{cls.__qualname__}", "traceback": text,
            "at": at.isoformat()}


def retry_delay(attempt: int) -> float:
    """Seconds before the next attempt: exponential from ``RETRY_DELAY``, capped at
    ``RETRY_DELAY_MAX``, spread by +-25% so that jobs that failed together do not
    come back together."""
    base = min(jobs_settings.RETRY_DELAY_MAX, jobs_settings.RETRY_DELAY * 2 ** max(0, attempt - 1))
    return base * random.uniform(0.75, 1.25)


def start(job: Job, sender: type) -> Outcome:
    """Send ``job_started`` (and the task's started signal), then :func:`execute` ``job``; a
    receiver that raises fails the attempt. Never raises."""
    try:
        if job_started.receivers:
            job_started.send(sender=sender, job=job)
        if job.task_backend:
            from .backends import send_task_started

            send_task_started(job)
        return execute(job)
    except BaseException as e:
        return Outcome(job, JobStatus.FAILED, error=describe_error(e, timezone.now()), exception=e)


def execute(job: Job) -> Outcome:
    """Run ``job`` in this thread, as the plugin its handler (or task) belongs to, in a span
    of the trace that enqueued it; never raises (but ``KeyboardInterrupt``/``SystemExit``)."""
    try:
        with trace.span(f"job {job.topic}", job.trace_context or {}, kind=SpanKind.CONSUMER):
            if job.task_backend:
                from .backends import run_task

                with _inside_plugin_of(owner_app_label(job.topic)):
                    value = run_task(job)
            else:
                entry = handlers.get(job.topic)
                if entry is None:
                    raise UnknownTopic(f"no handler for topic {job.topic!r} in this process")
                # who runs is the code's app, never anything the payload says
                with _inside_plugin_of(entry.app_label):
                    value = entry.func(job)
        try:
            result_json = None if value is None else json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise TypeError(f"the handler of {job.topic!r} returned a value that is not JSON: {e}") from e
        fault = None if result_json is None else json_fault(value, result_json)
        if fault is not None:  # the same rules as a payload's: storable alike on every database
            raise ValueError(f"the handler of {job.topic!r} returned a value that {fault}")
        return Outcome(job, JobStatus.COMPLETED, result_json=result_json, return_value=value)
    except NotEntered:
        # its plugin was disabled between the claim and the start: held, like the jobs it did
        # not claim (a ServiceUnavailable the handler met is the handler's failure, not this)
        return Outcome(job, RETURNED)
    except Exception as e:
        now = timezone.now()
        error = describe_error(e, now)
        if job.attempts <= job.max_retries:
            retry_at = now + timedelta(seconds=retry_delay(job.attempts))
            return Outcome(job, JobStatus.PENDING, error=error, exception=e, retry_at=retry_at)
        return Outcome(job, JobStatus.FAILED, error=error, exception=e)


@contextlib.contextmanager
def _inside_plugin_of(app_label: str | None) -> Iterator[None]:
    """Run the block as the plugin whose app is ``app_label``, inside its active instance
    (a reload waits for the job); as the host site for an app that is no plugin."""
    from tachycore.manager import plugin_manager

    plugin = plugin_manager.plugin_of_app(app_label)
    if plugin is None:
        with acting_as(None):
            yield
        return
    try:
        inside = plugin_manager.instances.entered(plugin)
    except PluginUnavailable:
        raise NotEntered(plugin) from None
    with inside:
        yield


class NotEntered(Exception):
    """The job's plugin has no active instance here (disabled since the claim)."""


def check_connections() -> None:
    """Before a job, in its worker thread: what Django does between two requests. A connection
    a handler broke or left in a transaction is closed, one past ``CONN_MAX_AGE`` too, and with
    ``CONN_HEALTH_CHECKS`` the next query first checks that the connection still works."""
    close_old_connections()


def lost_connection(outcome: Outcome) -> bool:
    """Whether ``outcome`` failed because a database went away (the connection is unusable
    now), not because of the job; such a connection is closed, so the next job gets a new one."""
    if outcome.exception is None or not _is_connection_error(outcome.exception):
        return False
    lost = False
    for connection in connections.all(initialized_only=True):
        if connection.connection is None:
            # closed already after an error of its own (a transaction that could not roll back)
            lost = lost or connection.errors_occurred
        elif not connection.is_usable():
            connection.close()
            lost = True
    return lost


def _is_connection_error(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:  # a handler may have wrapped it
        if isinstance(current, OperationalError | InterfaceError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False
