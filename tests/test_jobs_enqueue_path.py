"""The lean enqueue: the ``Job`` it builds is the one ``Job(**values)`` builds, and its
insert is seen by whatever watches Django's queries (a test counting them, an
``execute_wrapper``) while it runs on the driver's own cursor otherwise."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.db.models.signals import post_init
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

import jobs
from jobs.models import Job, new_job

pytestmark = pytest.mark.django_db


def is_enqueue(sql: str) -> bool:
    """Whether ``sql`` is an enqueue's insert (on PostgreSQL, the call of its function)."""
    return 'INSERT INTO "_jobs"' in sql or "tachy_jobs_enqueue(" in sql


def fields(job: Job) -> dict:
    return {field.attname: getattr(job, field.attname) for field in Job._meta.concrete_fields}


def test_new_job__is_the_job_the_model_makes():
    now = timezone.now()
    values = dict(topic="toolbox.echo", payload={"n": 1}, run_at=now, created=now, updated=now, max_retries=2)

    made, expected = new_job(**values), Job(**values)

    assert fields(made) == fields(expected)
    assert (made._state.adding, made._state.db) == (True, None)
    # the mutable defaults are the instance's own
    made.errors.append("x")
    assert new_job(**values).errors == []


def test_new_job__a_post_init_receiver_sees_every_instance():
    seen = []

    def receiver(sender, instance, **kwargs):
        seen.append(instance.topic)

    post_init.connect(receiver, sender=Job)
    try:
        job = jobs.get_job_store().enqueue("toolbox.echo", {"n": 1})
    finally:
        post_init.disconnect(receiver, sender=Job)
    assert seen == ["toolbox.echo"] and job.id


def test_enqueue__the_insert_is_in_captured_queries():
    with CaptureQueriesContext(connection) as captured:
        job = jobs.get_job_store().enqueue("toolbox.echo", {"n": 1})

    assert [query["sql"] for query in captured.captured_queries if is_enqueue(query["sql"])]
    assert Job.objects.get(pk=job.id).payload == {"n": 1}


def test_enqueue__an_execute_wrapper_sees_the_insert():
    statements = []

    def wrapper(execute, sql, params, many, context):
        statements.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        job = jobs.get_job_store().enqueue("toolbox.echo", {"n": 1}, delay=timedelta(seconds=5))

    assert any(is_enqueue(sql) for sql in statements)
    assert Job.objects.get(pk=job.id).run_at > job.created


def test_enqueue__on_the_driver_cursor_writes_what_is_returned():
    store = jobs.get_job_store()
    assert store.sql.driver_cursor() is not None  # no query captured, no wrapper but the guard
    job = store.enqueue("toolbox.echo", {"n": 1}, priority=5, queue_name="q", dedupe_key="k")
    again = store.enqueue("toolbox.echo", {"n": 2}, dedupe_key="k")

    row = Job.objects.get(pk=job.id)
    assert (row.topic, row.payload, row.priority, row.queue_name, row.dedupe_key, row.status) \
        == ("toolbox.echo", {"n": 1}, 5, "q", "k", "pending")
    assert (row.run_at, row.created) == (job.run_at, job.created)
    assert (again.id, again.deduplicated, job.deduplicated) == (job.id, True, False)
