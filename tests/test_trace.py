"""The W3C trace context: from the request's traceparent into the response, the logs and the jobs."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest

import jobs
from jobs.dispatcher import Dispatcher
from jobs.models import Job
from tachycore import trace
from tachycore.trace import TraceIdFilter, current_trace_id

ROOT = Path(__file__).resolve().parent.parent
TRACEPARENT = re.compile(r"^00-(?P<trace>[0-9a-f]{32})-(?P<span>[0-9a-f]{16})-(?P<flags>[0-9a-f]{2})$")
INCOMING = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def parts(header: str) -> dict[str, str]:
    found = TRACEPARENT.match(header)
    assert found, header
    return found.groupdict()


def test_current_trace_id__is_empty_outside_any_trace():
    assert current_trace_id() == ""


@pytest.mark.django_db
def test_request_without_traceparent__starts_a_trace_the_view_and_the_response_share(client):
    response = client.get("/api/toolbox/trace/")

    header = parts(response.headers["traceparent"])
    assert header["trace"] != "0" * 32
    assert response.json()["trace_id"] == header["trace"]
    assert response.json()["traceparent"] == response.headers["traceparent"]
    assert current_trace_id() == ""  # nothing leaks out of the request


@pytest.mark.django_db
def test_requests_without_traceparent__each_start_their_own_trace(client):
    first = parts(client.get("/api/toolbox/trace/").headers["traceparent"])
    second = parts(client.get("/api/toolbox/trace/").headers["traceparent"])

    assert first["trace"] != second["trace"]


@pytest.mark.django_db
def test_request_with_traceparent__continues_that_trace_in_a_span_of_its_own(client):
    response = client.get("/api/toolbox/trace/", headers={"traceparent": INCOMING})

    header = parts(response.headers["traceparent"])
    assert header["trace"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert header["span"] != "00f067aa0ba902b7"  # the server's span is a child of the caller's
    assert header["flags"] == "01"
    assert response.json()["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.mark.django_db
@pytest.mark.parametrize("bad", [
    "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # the invalid trace id
    "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # the invalid span id
    "not a traceparent",
    "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",  # upper case is not W3C
    "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # version ff is forbidden
])
def test_request_with_a_bad_traceparent__starts_a_new_trace(client, bad):
    response = client.get("/api/toolbox/trace/", headers={"traceparent": bad})

    header = parts(response.headers["traceparent"])
    assert header["trace"] not in ("4bf92f3577b34da6a3ce929d0e0e4736", "0" * 32)
    assert response.status_code == 200


@pytest.mark.django_db
def test_every_response__carries_a_traceparent_even_a_404(client):
    response = client.get("/nowhere/", headers={"traceparent": INCOMING})

    assert response.status_code == 404
    assert parts(response.headers["traceparent"])["trace"] == "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.mark.django_db(transaction=True)
def test_job_enqueued_in_a_request__runs_in_the_requests_trace(client):
    response = client.get("/api/toolbox/trace/?enqueue=1", headers={"traceparent": INCOMING})
    job_id = response.json()["job"]

    stored = Job.objects.get(pk=job_id)
    assert parts(stored.trace_context["traceparent"])["trace"] == "4bf92f3577b34da6a3ce929d0e0e4736"

    Dispatcher(burst=True, workers=1).run()

    assert Job.objects.get(pk=job_id).result == {"plugin": "toolbox",
                                                 "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"}


@pytest.mark.django_db(transaction=True)
def test_job_enqueued_outside_any_trace__runs_in_a_new_trace_of_its_own():
    job = jobs.get_job_store().enqueue("toolbox.whoami", {"trace": True})
    assert Job.objects.get(pk=job.id).trace_context == {}

    Dispatcher(burst=True, workers=1).run()

    assert re.fullmatch(r"[0-9a-f]{32}", Job.objects.get(pk=job.id).result["trace_id"])


@pytest.mark.django_db(transaction=True)
def test_job_enqueued_by_a_job__stays_in_the_trace():
    with trace.span("a test", {"traceparent": INCOMING}):
        first = jobs.get_job_store().enqueue("toolbox.whoami", {"trace": True})
        assert current_trace_id() == "4bf92f3577b34da6a3ce929d0e0e4736"

    Dispatcher(burst=True, workers=1).run()

    assert Job.objects.get(pk=first.id).result["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"


def test_trace_id_filter__adds_the_trace_id_to_log_records(caplog):
    logger = logging.getLogger("tests.trace")
    trace_filter = TraceIdFilter()
    logger.addFilter(trace_filter)
    try:
        with caplog.at_level(logging.INFO, logger="tests.trace"):
            logger.info("outside")
            with trace.span("a test", {"traceparent": INCOMING}):
                logger.info("inside")
    finally:
        logger.removeFilter(trace_filter)

    assert [(r.getMessage(), r.trace_id) for r in caplog.records] == [
        ("outside", "-"), ("inside", "4bf92f3577b34da6a3ce929d0e0e4736")]


# -- with the OpenTelemetry SDK and the Django instrumentation (the `telemetry` extra, which
# `make install` installs; the script configures them in a process of its own) -----------------

WITH_SDK = """
import json, os
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)

from opentelemetry.instrumentation.django import DjangoInstrumentor
DjangoInstrumentor().instrument()

import django
django.setup()
from django.test import Client
from django.test.utils import setup_test_environment
setup_test_environment()
response = Client().get("/api/toolbox/trace/", headers={"traceparent": os.environ["INCOMING"]})
spans = [{"name": s.name, "trace": format(s.context.trace_id, "032x"), "span": format(s.context.span_id, "016x"),
          "parent": format(s.parent.span_id, "016x") if s.parent else None}
         for s in exporter.get_finished_spans()]
print(json.dumps({"status": response.status_code, "body": response.json(),
                  "header": response.headers.get("traceparent"), "spans": spans}))
"""


def test_with_the_sdk_and_django_instrumentation__the_kernels_ids_are_the_real_spans(subprocess_env):
    import json

    env = {**subprocess_env, "INCOMING": INCOMING, "TACHYCORE_START_RUNTIME": "false"}
    result = subprocess.run([sys.executable, "-c", WITH_SDK], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=60)

    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.splitlines()[-1])
    assert seen["status"] == 200
    (server,) = [s for s in seen["spans"] if s["parent"] == "00f067aa0ba902b7"]
    assert server["trace"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    # the view, its response and the kernel see the instrumentation's span, not one of their own
    assert seen["body"]["trace_id"] == server["trace"]
    assert parts(seen["body"]["traceparent"])["span"] == server["span"]
    assert parts(seen["header"])["span"] == server["span"]
