"""django.tasks tasks of the test site (run by the JobsBackend through runjobs)."""

from __future__ import annotations

from django.tasks import task


@task
def whoami():
    from tachycore.context import current_plugin

    return current_plugin()


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


#: labels of ``record`` runs, in the order they ran (in-process dispatchers only)
RECORDED: list[str] = []


@task
def record(label):
    RECORDED.append(label)
    return label


@task
def shape():
    """A value that JSON turns into another one: tuples become lists, bytes text."""
    return {"pair": (1, 2), "raw": b"bytes", "nothing": None}


@task
def unserialisable():
    return {1, 2}
