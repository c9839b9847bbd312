"""The ``django.tasks`` tasks run by django-tasks-db, and the django-q2 functions."""

from django.tasks import task

from .pickup import report


@task(backend="db")
def db_noop(i: int) -> None:
    return None


@task(backend="db")
def db_pickup(sample: int) -> None:
    report(sample)


def q_noop(i: int) -> None:
    return None


def q_pickup(sample: int) -> None:
    report(sample)
