"""``JobsBackend``: a ``django.tasks`` backend on the job queue.

A task becomes a job whose topic is the task's dotted path, with ``task_backend``
set to the ``TASKS`` alias; ``runjobs`` executes it like any job. The result
(status, return value, errors with tracebacks, attempts, timestamps) is the
job's row, so ``get_result()`` works from any process.

    TASKS = {"default": {"BACKEND": "jobs.backends.JobsBackend",
                         "QUEUES": ["default"],
                         "OPTIONS": {"MAX_RETRIES": 0}}}
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.tasks import TaskContext, TaskResult, TaskResultStatus
from django.tasks.backends.base import BaseTaskBackend
from django.tasks.base import Task, TaskError
from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist
from django.tasks.signals import task_enqueued, task_finished, task_started
from django.utils.json import normalize_json
from django.utils.module_loading import import_string

from .errors import JobNotFound, JobsDisabled
from .models import Job, JobStatus

__all__ = ["JobsBackend", "jobs_task_backends"]

logger = logging.getLogger("jobs.backends")

#: the keys ``OPTIONS`` may hold
OPTIONS = ("MAX_RETRIES",)
MAX_RETRIES_LIMIT = 1000  # as the store's check_max_retries

#: keyed by ``Job.status`` (text: a ``JobStatus`` is equal to its value)
STATUS: dict[str, TaskResultStatus] = {
    JobStatus.PENDING: TaskResultStatus.READY,
    JobStatus.PROCESSING: TaskResultStatus.RUNNING,
    JobStatus.COMPLETED: TaskResultStatus.SUCCESSFUL,
    JobStatus.FAILED: TaskResultStatus.FAILED,
}


class JobsBackend(BaseTaskBackend):
    """Stores tasks as jobs; ``manage.py runjobs`` runs them.

    ``OPTIONS``: ``MAX_RETRIES`` (default 0: a task that raises is ``FAILED``, as
    Django's contract expects; more retries it with backoff first).
    """

    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        self.max_retries = self.options.get("MAX_RETRIES", 0)

    def enqueue(self, task: Task, args: Any, kwargs: Any) -> TaskResult:
        """Store the task as a job; ``JobsDisabled`` while jobs is disabled or not installed."""
        self.validate_task(task)
        store = _store()
        # as Django's own backends do: tuples become lists, bytes text, other types a TypeError
        payload = {"args": normalize_json(list(args)), "kwargs": normalize_json(dict(kwargs))}
        [job] = store._enqueue_tasks([{
            "topic": task.module_path, "payload": payload,
            "run_at": task.run_after, "priority": task.priority, "queue_name": task.queue_name,
            "max_retries": self.max_retries,
        }], self.alias)
        result = task_result(job, task)
        task_enqueued.send(type(self), task_result=result)
        return result

    def get_result(self, result_id: str) -> TaskResult:
        try:
            job = _store().get(int(result_id))
        except (JobNotFound, ValueError, TypeError):
            raise TaskResultDoesNotExist(result_id) from None
        if job.task_backend != self.alias:
            raise TaskResultDoesNotExist(result_id)
        return task_result(job)

    def check(self, **kwargs: Any) -> list:
        from django.apps import apps
        from django.core import checks

        errors = []
        if not apps.is_installed("jobs"):
            errors.append(checks.Error(
                f"TASKS[{self.alias!r}] uses jobs.backends.JobsBackend, but 'jobs' is not in INSTALLED_APPS",
                hint="Add 'jobs' to INSTALLED_APPS.", id="jobs.E004"))
        for key in sorted(set(self.options) - set(OPTIONS)):
            errors.append(checks.Error(
                f"TASKS[{self.alias!r}]['OPTIONS'] has an unknown key {key!r}",
                hint=f"JobsBackend takes: {', '.join(OPTIONS)}.", id="jobs.E005"))
        retries = self.max_retries
        if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= MAX_RETRIES_LIMIT:
            errors.append(checks.Error(
                f"TASKS[{self.alias!r}]['OPTIONS']['MAX_RETRIES'] must be a whole number from 0 to "
                f"{MAX_RETRIES_LIMIT}, got {retries!r}", hint="Use 0 for no retries.", id="jobs.E006"))
        return errors


def _store() -> Any:
    """The job store; ``JobsDisabled``, saying why, when there is none."""
    from . import get_job_store
    from .conf import jobs_settings

    store = get_job_store()
    if store is None:
        why = ("jobs is disabled (JOBS['DISABLED'] or the environment variable JOBS_DISABLED)"
               if jobs_settings.DISABLED else "'jobs' is not in INSTALLED_APPS")
        raise JobsDisabled(f"jobs.backends.JobsBackend cannot enqueue or read tasks: {why}")
    return store


def jobs_task_backends() -> list[str]:
    """The ``TASKS`` aliases whose backend is a ``JobsBackend``."""
    aliases = []
    for alias, params in (getattr(settings, "TASKS", None) or {}).items():
        path = params.get("BACKEND", "")
        try:
            backend = import_string(path)
        except ImportError:
            continue
        if isinstance(backend, type) and issubclass(backend, JobsBackend):
            aliases.append(alias)
    return aliases


def load_task(job: Job) -> Task:
    """The ``Task`` a job runs (its topic is the task's dotted path)."""
    try:
        task = import_string(job.topic)
    except ImportError as e:
        raise InvalidTask(f"cannot import task {job.topic!r}: {e}") from e
    if not isinstance(task, Task):
        raise InvalidTask(f"{job.topic!r} is not a task (decorate it with @django.tasks.task)")
    return task


def task_result(job: Job, task: Task | None = None) -> TaskResult:
    """The ``TaskResult`` a job stands for."""
    task = task or load_task(job)
    if task.backend != job.task_backend or task.queue_name != job.queue_name or task.priority != job.priority:
        task = task.using(backend=job.task_backend, queue_name=job.queue_name, priority=job.priority)
    payload = job.payload if isinstance(job.payload, dict) else {}
    result: TaskResult = TaskResult(
        task=task, id=str(job.id), status=STATUS[job.status], enqueued_at=job.created,
        started_at=job.started_at, finished_at=job.finished_at, last_attempted_at=job.attempted_at,
        args=payload.get("args", []), kwargs=payload.get("kwargs", {}), backend=job.task_backend,
        errors=[TaskError(exception_class_path=error.get("exception_class_path", ""),
                          traceback=error.get("traceback", "")) for error in job.errors or []],
        worker_ids=list(job.workers or []),
    )
    object.__setattr__(result, "_return_value", job.result)
    return result


def run_task(job: Job) -> Any:
    """Run the task of a claimed job in this thread; return its value as JSON data."""
    task = load_task(job)
    payload = job.payload if isinstance(job.payload, dict) else {}
    args, kwargs = payload.get("args", []), payload.get("kwargs", {})
    if task.takes_context:
        value = task.call(TaskContext(task_result=job._task_result), *args, **kwargs)
    else:
        value = task.call(*args, **kwargs)
    return normalize_json(value)


def send_task_started(job: Job) -> None:
    """Send ``task_started`` for a claimed job (in the worker thread, before the task runs).

    A receiver that raises fails the attempt, as the task itself would."""
    job._task_result = result = task_result(job)
    task_started.send(JobsBackend, task_result=result)


def send_task_finished(job: Job, outcome: Any) -> None:
    """Send ``task_finished`` once a job's outcome is written, unless it waits for a retry."""
    if outcome.status == JobStatus.PENDING:
        return  # to be retried: not finished
    if outcome.error is not None:
        job.errors = [*(job.errors or []), outcome.error]
    job.result = outcome.return_value if outcome.status == JobStatus.COMPLETED else None
    try:
        result = task_result(job)
    except InvalidTask:
        return
    # the dispatcher's loop sends this: a failing receiver is logged, it must not stop the loop
    # (the outcome is written already, and the other jobs of the batch still need theirs)
    for receiver, response in task_finished.send_robust(JobsBackend, task_result=result):
        if isinstance(response, Exception):
            logger.error("task_finished receiver %r failed for task %s", receiver, result.id, exc_info=response)
