"""``JobStore``: enqueue jobs and look after them (the dispatcher runs them)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from django.db import IntegrityError, router, transaction
from django.db.models import Count, Min
from django.utils import timezone

from tachycore import governance, trace
from tachycore.context import current_plugin
from tachycore.models import Access

from .conf import jobs_settings
from .errors import DedupeConflict, InvalidOption, JobNotFound, JobRunning, UnknownTopic
from .handlers import allowed_without_handler, check_topic, handlers
from .models import Job, JobStatus, new_job
from .signals import job_enqueued
from .sql import Statements, statements_for
from .validation import (
    check_dedupe_key,
    check_max_retries,
    check_priority,
    check_queue_name,
    payload_json,
    run_time,
)

__all__ = ["JobStore", "Stats"]

_ENQUEUE_ARGUMENTS = frozenset({"topic", "payload", "run_at", "delay", "priority", "max_retries",
                                "dedupe_key", "queue_name"})


#: up to this many completed and failed jobs, ``stats()`` counts them; beyond, it estimates them
EXACT_FINISHED = 10_000
#: the jobs finished last, whose statuses and topics share out the estimate of finished jobs
FINISHED_SAMPLE = 1_000


@dataclasses.dataclass(frozen=True)
class Stats:
    """What ``JobStore.stats()`` counts. Pending, processing and due jobs are counted
    exactly; completed and failed ones too, unless ``finished_estimated``."""

    by_status: dict[str, int]
    #: topic -> status -> count
    by_topic: dict[str, dict[str, int]]
    #: seconds since the oldest due pending job became due (0 when none is due)
    oldest_due_age: float
    #: pending jobs that are due now
    due: int
    #: the completed and failed counts (in ``by_status`` and ``by_topic``) are estimates:
    #: there are more than ``EXACT_FINISHED`` of them
    finished_estimated: bool = False

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class JobStore:
    """The job queue's Python API.

    ``enqueue`` writes on the caller's connection and inside the caller's
    transaction: the job exists only if that transaction commits, and no
    dispatcher sees it before.
    """

    def __init__(self, using: str | None = None) -> None:
        self._using = using
        self._local_wakers: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    @property
    def using(self) -> str:
        return self._using or router.db_for_write(Job)

    @property
    def sql(self) -> Statements:
        """The statements for this store's database."""
        return statements_for(self.using)

    # -- enqueue --------------------------------------------------------------------------

    def enqueue(self, topic: str, payload: Any = None, *, run_at: datetime | None = None, delay: Any = None,
                priority: int = 0, max_retries: int | None = None, dedupe_key: str | None = None,
                queue_name: str = "default") -> Job:
        """Add one job; return it. With a ``dedupe_key`` that a pending job has already,
        return that job and add nothing (``job.deduplicated`` is then true).

        ``payload`` is any JSON value (``{}`` when omitted); ``run_at`` (aware) or ``delay``
        (seconds or a timedelta) defers it; higher ``priority`` (-100..100) runs first;
        ``max_retries`` defaults to ``JOBS["MAX_RETRIES"]``.
        """
        now = timezone.now()
        job = self._prepare(now, topic, payload, run_at=run_at, delay=delay, priority=priority,
                            max_retries=max_retries, dedupe_key=dedupe_key, queue_name=queue_name)
        return self._insert(now, [job])[0]

    def enqueue_many(self, jobs: Iterable[Mapping[str, Any]]) -> list[Job]:
        """Add many jobs in bulk (all or none); each item holds ``enqueue``'s arguments.

        Every item is checked before anything is written.
        """
        now = timezone.now()
        prepared = []
        for item in jobs:
            unknown = set(item) - _ENQUEUE_ARGUMENTS
            if unknown or "topic" not in item:
                raise InvalidOption(f"an enqueue_many item takes {', '.join(sorted(_ENQUEUE_ARGUMENTS))}; "
                                    + (f"unknown: {', '.join(sorted(unknown))}" if unknown else "topic is missing"))
            prepared.append(self._prepare(now, **item))
        return self._insert(now, prepared) if prepared else []

    def _enqueue_tasks(self, items: Iterable[Mapping[str, Any]], task_backend: str) -> list[Job]:
        """Enqueue ``django.tasks`` tasks (for ``jobs.backends.JobsBackend``): topics are task paths."""
        now = timezone.now()
        return self._insert(now, [self._prepare(now, **item, task_backend=task_backend) for item in items])

    def _prepare(self, now: datetime, topic: str, payload: Any = None, *, run_at: datetime | None = None,
                 delay: Any = None, priority: int = 0, max_retries: int | None = None,
                 dedupe_key: str | None = None, queue_name: str = "default", task_backend: str = "") -> Job:
        check_topic(topic)
        if not task_backend and topic not in handlers and not allowed_without_handler(
                topic, jobs_settings.ALLOWED_TOPICS):
            raise UnknownTopic(f"no handler for topic {topic!r} (register one with @jobs.handler, "
                               "or list the topic in JOBS['ALLOWED_TOPICS'])")
        if payload is None:
            payload = {}
        job = new_job(topic=topic, payload=payload, status=JobStatus.PENDING, priority=check_priority(priority),
                      queue_name=check_queue_name(queue_name), run_at=run_time(now, run_at, delay),
                      max_retries=check_max_retries(max_retries), dedupe_key=check_dedupe_key(dedupe_key),
                      task_backend=task_backend, created=now, updated=now, trace_context=trace.inject())
        job._payload_json = payload_json(payload, topic)
        return job

    @staticmethod
    def _row(sql: Statements, job: Job, at: Any = None) -> list[Any]:
        """The job's values in ``INSERT_COLUMNS`` order; ``at``: ``sql.dt(job.created)``, if
        known (a job due at once runs at it: not converted twice)."""
        # outside any trace the context is empty: its text needs no encoder
        context = json.dumps(job.trace_context) if job.trace_context else "{}"
        run_at = at if at is not None and job.run_at is job.created else sql.dt(job.run_at)
        return [job.topic, job._payload_json, job.priority, job.queue_name, run_at,
                job.max_retries, job.dedupe_key, job.task_backend, context]

    def _insert(self, now: datetime, prepared: list[Job]) -> list[Job]:
        if current_plugin() is not None:  # a plugin's code: it needs jobs:enqueue
            topics = ", ".join(sorted({job.topic for job in prepared}))
            governance.check("jobs:enqueue", Access.EXECUTE, target=topics[:200], action="jobs.enqueue")
        using = self.using
        sql = statements_for(using)
        at = sql.dt(now)  # every job's created and updated, and run_at when due at once
        rows = [self._row(sql, job, at) for job in prepared]
        deduped = any(job.dedupe_key for job in prepared)
        # the queue's own statements: checked above by jobs:enqueue, not by the SQL guard
        with governance.builtin_statements():
            if len(rows) == 1:  # one statement, atomic by itself: an enqueue
                ids = [sql.insert_one(now, rows[0], deduped, at)]
            else:  # more (large batches, dedupe keys) share a transaction
                with (contextlib.nullcontext() if sql.insert_statements(len(rows), deduped) == 1
                      else transaction.atomic(using=using, savepoint=False)):
                    ids = sql.insert(now, rows, dedupe=deduped)
            result = []
            for job, job_id in zip(prepared, ids, strict=True):
                if job_id is None:
                    job = self._existing(job, sql)
                else:
                    job.id = job_id
                    job._state.adding = False
                    job._state.db = using
                result.append(job)
        for job in result:
            job.__dict__.pop("_payload_json", None)
            if job_enqueued.receivers and not job.deduplicated:  # a dedupe hit enqueued nothing
                job_enqueued.send(sender=type(self), job=job)
        if self._local_wakers:
            transaction.on_commit(self._wake_local, using=using)
        return result

    def _existing(self, job: Job, sql: Statements) -> Job:
        """The pending job that holds ``job.dedupe_key`` (inserting ``job`` if it went meanwhile)."""
        for _ in range(5):
            found = Job.objects.using(self.using).pending().filter(dedupe_key=job.dedupe_key).first()
            if found is not None:
                found.deduplicated = True  # the job returned is not the one asked for
                return found
            # it was claimed between our insert and this read: try the insert again
            (job_id,) = sql.insert(job.created, [self._row(sql, job)], dedupe=True)
            if job_id is not None:
                job.id = job_id
                job.deduplicated = False
                job._state.adding = False
                job._state.db = self.using
                return job
        raise RuntimeError(f"could not enqueue {job.topic!r} with dedupe key {job.dedupe_key!r}")

    def add_local_waker(self, wake: Callable[[], None]) -> None:
        """Call ``wake()`` after each commit that enqueued jobs in this process (a dispatcher
        running in this process picks the jobs up without waiting for its poll)."""
        with self._lock:
            self._local_wakers.append(wake)

    def remove_local_waker(self, wake: Callable[[], None]) -> None:
        with self._lock:
            if wake in self._local_wakers:
                self._local_wakers.remove(wake)

    def _wake_local(self) -> None:
        for wake in list(self._local_wakers):
            wake()

    # -- look after them -----------------------------------------------------------------

    @staticmethod
    def _id(job_id: Any) -> int:
        """A job id as the database takes it; ``JobNotFound`` for anything that cannot be one."""
        if isinstance(job_id, bool):
            raise JobNotFound(f"no job with id {job_id!r}")
        try:
            number = int(job_id)
        except (TypeError, ValueError):
            raise JobNotFound(f"no job with id {job_id!r}") from None
        if not 0 < number < 2**63 or (isinstance(job_id, float) and job_id != number):
            raise JobNotFound(f"no job with id {job_id!r}")
        return number

    def get(self, job_id: int) -> Job:
        """The job with this id; ``JobNotFound`` when there is none."""
        try:
            return Job.objects.using(self.using).get(pk=self._id(job_id))
        except Job.DoesNotExist:
            raise JobNotFound(f"no job with id {job_id!r}") from None

    def list(self, status: str | None = None, topic: str | None = None, limit: int = 100,
             offset: int = 0) -> list[Job]:
        """Jobs, newest first, filtered by status and topic."""
        jobs = Job.objects.using(self.using).all()
        if status is not None:
            jobs = jobs.filter(status=status)
        if topic is not None:
            jobs = jobs.filter(topic=topic)
        return list(jobs.order_by("-id")[offset:offset + limit])

    def delete(self, job_id: int) -> None:
        """Delete a job that is not being processed (``JobRunning`` for one that is)."""
        job_id = self._id(job_id)
        deleted, _ = (Job.objects.using(self.using).filter(pk=job_id)
                      .exclude(status=JobStatus.PROCESSING).delete())
        if not deleted:
            self._explain(job_id, "deleted")

    def requeue(self, job_id: int, *, run_at: datetime | None = None) -> Job:
        """Put a failed, completed or pending job back in the queue, due now (or at ``run_at``),
        with its attempts reset; its error history is kept. ``JobRunning`` while it is being
        processed; ``DedupeConflict`` when another pending job holds its ``dedupe_key``."""
        job_id = self._id(job_id)
        now = timezone.now()
        run_at = run_time(now, run_at, None)
        jobs = Job.objects.using(self.using)
        try:
            # a savepoint: the unique index refusing the update must not spoil the caller's transaction
            with transaction.atomic(using=self.using):
                updated = (jobs.filter(pk=job_id).exclude(status=JobStatus.PROCESSING)
                           .update(status=JobStatus.PENDING, run_at=run_at, attempts=0, locked_by="",
                                   locked_until=None, finished_at=None, result=None, updated=now))
        except IntegrityError:
            job = self.get(job_id)
            holder = jobs.pending().filter(dedupe_key=job.dedupe_key).exclude(pk=job.pk).first()
            held = f"pending job {holder.id}" if holder is not None else "another pending job"
            raise DedupeConflict(f"job {job.id} cannot be requeued: {held} has its dedupe_key "
                                 f"{job.dedupe_key!r}") from None
        if not updated:
            self._explain(job_id, "requeued")
        self.sql.notify()
        if self._local_wakers:
            transaction.on_commit(self._wake_local, using=self.using)
        return self.get(job_id)

    def _explain(self, job_id: int, verb: str) -> None:
        job = self.get(job_id)  # raises JobNotFound
        raise JobRunning(f"job {job.id} ({job.topic}) is being processed by {job.locked_by}: "
                         f"it cannot be {verb} now")

    def stats(self) -> Stats:
        """Counts by status and by topic, and how late the queue is.

        Its cost does not grow with the finished jobs: pending and processing jobs are
        counted from their indexes, and so are completed and failed ones up to
        ``EXACT_FINISHED``; beyond, their total is the database's estimate (PostgreSQL's
        planner; on SQLite the last ``ANALYZE``, which each prune runs) shared out among
        statuses and topics as in the ``FINISHED_SAMPLE`` jobs finished last, and
        ``finished_estimated`` says so."""
        jobs = Job.objects.using(self.using)
        by_status = {status: 0 for status in JobStatus.values}
        by_topic: dict[str, dict[str, int]] = {}
        # COUNT(*), not of the id: the indexes of (status, topic) and of pending jobs answer
        # alone (an index-only scan on PostgreSQL, a covering index on SQLite)
        unfinished = list(jobs.unfinished().values_list("status", "topic").annotate(n=Count("*")).order_by())
        finished, estimated = self._count_finished(sum(n for _, _, n in unfinished))
        for status, topic, n in [*unfinished, *finished]:
            if n:
                by_status[status] = by_status.get(status, 0) + n
                by_topic.setdefault(topic, {})[status] = n
        now = timezone.now()
        due = jobs.due(now).aggregate(n=Count("*"), oldest=Min("run_at"))
        age = (now - due["oldest"]).total_seconds() if due["oldest"] else 0.0
        return Stats(by_status=by_status, by_topic=dict(sorted(by_topic.items())),
                     oldest_due_age=round(max(age, 0.0), 3), due=due["n"], finished_estimated=estimated)

    def _count_finished(self, unfinished: int) -> tuple[Sequence[tuple[str, str, int]], bool]:
        """``(status, topic, count)`` of the completed and failed jobs, and whether the counts
        are estimates. ``unfinished``: the pending and processing jobs."""
        sql = self.sql
        with governance.builtin_statements():  # the queue's own reads of its statistics
            estimate = sql.finished_estimate()
        if estimate is None or estimate <= EXACT_FINISHED:  # few (or unknown): count them, up to a bound
            counted = sql.count_finished(EXACT_FINISHED + 1)
            if sum(n for _, _, n in counted) <= EXACT_FINISHED:
                return counted, False
            # the statistics are behind (or missing): the ids tell how many jobs there are
            estimate = max(estimate or 0, sql.id_span() - unfinished, EXACT_FINISHED + 1)
        sample = sql.recently_finished(FINISHED_SAMPLE)
        sampled = sum(n for _, _, n in sample)
        if sampled < FINISHED_SAMPLE:  # the statistics were wrong: these are all of them
            return sample, False
        return [(status, topic, round(estimate * n / sampled)) for status, topic, n in sample], True

    def prune(self, older_than: float | None = None, batch_size: int = 1000) -> int:
        """Delete completed and failed jobs finished more than ``older_than`` seconds ago
        (``JOBS["RETENTION"]``), in batches; return how many. On SQLite it first refreshes
        the table's statistics (``ANALYZE``), which its query planner needs to choose the
        partial indexes."""
        from datetime import timedelta

        seconds = jobs_settings.RETENTION if older_than is None else older_than
        cutoff = timezone.now() - timedelta(seconds=seconds)
        # the planner's statistics first (SQLite keeps none by itself), so that the batches
        # below find old jobs through the index of finished jobs by age
        with governance.builtin_statements():
            self.sql.refresh_statistics()
        total = 0
        while True:
            ids = list(Job.objects.using(self.using).finished().filter(finished_at__lt=cutoff)
                       .order_by().values_list("id", flat=True)[:batch_size])
            if not ids:
                return total
            deleted, _ = Job.objects.using(self.using).filter(pk__in=ids).finished().delete()
            total += deleted

    def stats_due(self) -> int:
        """How many pending jobs are due now (the queue depth)."""
        return Job.objects.using(self.using).due(timezone.now()).count()
