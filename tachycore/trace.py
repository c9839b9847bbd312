"""The W3C trace context of what runs now: from the request into the jobs it enqueues.

Built on OpenTelemetry's API (``opentelemetry-api``), not its SDK. A site without the SDK
still gets trace ids: each request honours an incoming ``traceparent`` (or starts a new
trace), runs in a span of its own that records nothing, and answers with its
``traceparent``; a job carries the context of the code that enqueued it and runs in a span
of that trace. A site that installs and configures the SDK (and, for requests,
``opentelemetry-instrumentation-django``) gets real spans instead, and every id the kernel
shows (``current_trace_id()``, the ``trace_id`` of log records, the audit rows) is theirs.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags, format_trace_id

__all__ = ["TraceIdFilter", "current_trace_id", "inject", "span", "traceparent"]

TRACER_NAME = "tachycore"
#: a proxy: once the site sets a tracer provider, it hands out that provider's tracer
_tracer = trace.get_tracer(TRACER_NAME)


def current_trace_id() -> str:
    """The id (32 hex digits) of the trace the code runs in now; ``""`` outside any trace."""
    span_context = trace.get_current_span().get_span_context()
    return format_trace_id(span_context.trace_id) if span_context.is_valid else ""


def traceparent() -> str:
    """The ``traceparent`` header of the span running now (``""`` outside any trace)."""
    return inject().get("traceparent", "")


def inject() -> dict[str, str]:
    """The propagation headers of the span running now (``traceparent`` and what the site's
    propagators add), ready to store with a job or to send to another service.

    Outside any span and baggage (nothing attached to OpenTelemetry's context) there is
    nothing to propagate: no propagator is asked (a twentieth of the Python of an enqueue)."""
    carrier: dict[str, str] = {}
    if not otel_context.get_current():
        return carrier
    propagate.inject(carrier)
    return carrier


@contextmanager
def span(name: str, carrier: Mapping[str, Any] | None = None, *, kind: SpanKind = SpanKind.INTERNAL,
         ) -> Iterator[trace.Span]:
    """Run the block in a new span: a child of the context in ``carrier`` (headers such as
    ``traceparent``; a bad or missing one starts a new trace), or of the span running now
    when ``carrier`` is ``None``."""
    parent = otel_context.get_current() if carrier is None else propagate.extract(carrier)
    parent_span = trace.get_current_span(parent).get_span_context()
    current = _tracer.start_span(name, context=parent, kind=kind)
    made = current.get_span_context()
    if not made.is_valid or (parent_span.is_valid and made.span_id == parent_span.span_id):
        # no SDK: OpenTelemetry's default tracer makes no span of its own; make the ids here
        current = NonRecordingSpan(_child_of(parent_span))
    token = otel_context.attach(trace.set_span_in_context(current, parent))
    try:
        yield current
    finally:
        current.end()
        otel_context.detach(token)


def _child_of(parent: SpanContext) -> SpanContext:
    if parent.is_valid:
        return SpanContext(trace_id=parent.trace_id, span_id=_random_id(64), is_remote=False,
                           trace_flags=parent.trace_flags, trace_state=parent.trace_state)
    return SpanContext(trace_id=_random_id(128), span_id=_random_id(64), is_remote=False,
                       trace_flags=TraceFlags(TraceFlags.DEFAULT))


def _random_id(bits: int) -> int:
    # ids are unique, not secret: the SDK's own generator uses random too
    while True:
        value = random.getrandbits(bits)
        if value:  # all zeros is the invalid id
            return value


class TraceIdFilter(logging.Filter):
    """Adds ``trace_id`` (``"-"`` outside any trace) to every record of the handler or
    logger it is attached to, for a format such as ``"%(trace_id)s %(message)s"``."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.trace_id = current_trace_id() or "-"
        return True
