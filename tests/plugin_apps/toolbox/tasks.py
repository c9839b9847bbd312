"""django.tasks tasks of the test site (run by the JobsBackend through runjobs)."""

from __future__ import annotations

from django.tasks import task


@task
def add(a, b):
    return a + b


@task(priority=10, queue_name="default")
def explode(message):
    raise ValueError(message)


@task
async def async_double(value):
    return value * 2


@task(takes_context=True)
def attempt_of(context):
    return {"attempt": context.attempt, "id": context.task_result.id}
