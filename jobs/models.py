"""The ``_jobs`` table: one row per job, from enqueue until it is pruned."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.db import models
from django.db.models import F, Q, Value
from django.db.models.base import ModelState
from django.db.models.signals import post_init, pre_init

if TYPE_CHECKING:
    from django.tasks import TaskResult


class JobStatus(models.TextChoices):
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"


#: in the order of the ``jobs_finished_age`` index's condition: SQLite matches an IN list
#: against an index's condition item by item
FINISHED = (JobStatus.COMPLETED, JobStatus.FAILED)


class StatusLiteral(Value):
    """A job status written into the SQL text (``'pending'``) instead of bound as a parameter.

    SQLite uses a partial index only when it can prove the index's condition from the
    query's WHERE clause, and it does not look into a list of bound parameters:
    ``status IN (%s, %s)`` never selects ``jobs_finished_age``, whose condition is
    ``status IN ('completed', 'failed')``. Only ``JobStatus`` values are taken (a fixed set
    of lowercase words), so nothing a caller typed reaches the SQL text. PostgreSQL gets
    the same text: Django binds parameters on the client there unless told otherwise, and
    with server-side binding a literal lets a generic plan use the partial index too.
    """

    def __init__(self, status: str) -> None:
        super().__init__(JobStatus(status).value, output_field=models.CharField())

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, tuple[str | int, ...]]:
        return f"'{self.value}'", ()


class JobQuerySet(models.QuerySet):
    """Jobs by state; each method names the status literally, so that the partial index of
    that state can serve the query on SQLite as on PostgreSQL (see ``StatusLiteral``)."""

    def pending(self) -> JobQuerySet:
        """Pending jobs, due or not."""
        return self.filter(status=StatusLiteral(JobStatus.PENDING))

    def due(self, now) -> JobQuerySet:
        """Pending jobs whose ``run_at`` has come."""
        return self.pending().filter(run_at__lte=now)

    def unfinished(self) -> JobQuerySet:
        """Pending and processing jobs."""
        return self.filter(status__in=[StatusLiteral(JobStatus.PENDING), StatusLiteral(JobStatus.PROCESSING)])

    def finished(self) -> JobQuerySet:
        """Completed and failed jobs."""
        return self.filter(status__in=[StatusLiteral(status) for status in FINISHED])


class Job(models.Model):
    """A unit of work for the handler of its ``topic`` (or a ``django.tasks`` task).

    ``attempts`` counts the times a worker started the job; ``retries`` the times it
    went back to pending after a failure or a lost worker.
    """

    id = models.BigAutoField(primary_key=True)
    topic = models.CharField(max_length=255)
    payload = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=12, choices=JobStatus.choices, default=JobStatus.PENDING)
    #: from -100 to 100; higher runs first
    priority = models.SmallIntegerField(default=0)
    queue_name = models.CharField(max_length=100, default="default")
    run_at = models.DateTimeField()
    locked_until = models.DateTimeField(null=True, blank=True)
    locked_by = models.CharField(max_length=100, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    retries = models.PositiveIntegerField(default=0)
    max_retries = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    #: one entry per failed attempt: {"exception_class_path", "traceback", "at"}
    errors = models.JSONField(default=list, blank=True)
    #: the handler's return value (JSON), once completed
    result = models.JSONField(null=True, blank=True)
    #: while a pending job has this key, enqueueing another with it returns that job
    # NULL, not "": the partial unique constraint must ignore jobs without a key
    dedupe_key = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    #: the ``TASKS`` alias for a ``django.tasks`` task ("" for a handler's job)
    task_backend = models.CharField(max_length=100, blank=True)
    #: the node ids of the workers that started it, oldest first
    workers = models.JSONField(default=list, blank=True)
    created = models.DateTimeField()
    updated = models.DateTimeField()
    #: the first start
    started_at = models.DateTimeField(null=True, blank=True)
    #: the latest start
    attempted_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    #: the W3C trace context of the code that enqueued it (``{"traceparent": ...}``, ``{}``
    #: outside any trace): the handler runs in a span of that trace
    trace_context = models.JSONField(default=dict, blank=True)

    objects = JobQuerySet.as_manager()

    #: set by ``enqueue``: true when the job returned is an existing pending job that holds
    #: the dedupe key asked for (nothing was added)
    deduplicated = False
    #: set by the store between preparing a job and inserting it: its payload as JSON text
    _payload_json: str
    #: set on a claimed task's job before it runs: the ``TaskResult`` its context hands out
    _task_result: TaskResult

    class Meta:
        db_table = "_jobs"
        ordering = ["-id"]
        indexes = [
            # the claim: the pending jobs of each topic in the order they are taken (finished
            # rows are not in it); the topics first, so that a claim reads only the topics it
            # takes (jobs.sql.base.PENDING_KEYS)
            models.Index("task_backend", "topic", F("priority").desc(), "run_at", name="jobs_pending_topic",
                         condition=Q(status="pending")),
            # crash recovery: leases that ran out
            models.Index("locked_until", name="jobs_processing_lease", condition=Q(status="processing")),
            # pruning and the dashboard's chart: finished jobs by age (the values in FINISHED's order)
            models.Index("finished_at", name="jobs_finished_age",
                         condition=Q(status__in=["completed", "failed"])),
            # list filters and the stats
            models.Index("status", "topic", name="jobs_status_topic"),
        ]
        constraints = [
            models.UniqueConstraint("dedupe_key", name="jobs_pending_dedupe",
                                    condition=Q(status="pending", dedupe_key__isnull=False)),
        ]

    def __str__(self) -> str:
        return f"job {self.id} {self.topic} ({self.status})"


@functools.cache
def _field_defaults() -> tuple[dict[str, Any], tuple[tuple[str, Callable[[], Any]], ...]]:
    """The defaults of ``Job``'s fields: the fixed ones by attribute, and ``(attribute,
    factory)`` for those made anew for each instance (``dict``, ``list``)."""
    fixed, made = {}, []
    for field in Job._meta.concrete_fields:
        if field.has_default() and callable(field.default):
            made.append((field.attname, field.default))
        else:
            fixed[field.attname] = field.get_default()
    return fixed, tuple(made)


def new_job(**values: Any) -> Job:
    """``Job(**values)``, made the way ``Model.__init__`` makes it (the other fields at their
    defaults) without its work per field: the instance an enqueue returns and a claim hands
    to its handler, where ``Model.__init__`` cost as much as the rest of the Python of an
    enqueue. ``values`` are field attributes (``Job`` has no relation). With a receiver of
    ``pre_init`` or ``post_init`` for ``Job``, ``Job(**values)`` itself, so that it sees
    every instance."""
    if pre_init.has_listeners(Job) or post_init.has_listeners(Job):
        return Job(**values)
    fixed, made = _field_defaults()
    job = Job.__new__(Job)
    fields = job.__dict__
    fields["_state"] = ModelState()
    fields.update(fixed)
    for name, factory in made:
        if name not in values:
            fields[name] = factory()
    fields.update(values)
    return job
