"""Exceptions of the job queue; each message names the topic, field or value at fault."""

from __future__ import annotations


class JobsError(Exception):
    """Base class of every error the job queue raises."""


class JobsDisabled(JobsError):
    """The job queue is turned off (``JOBS["DISABLED"]``, env ``JOBS_DISABLED``), or ``jobs`` is
    not in ``INSTALLED_APPS``: nothing can be enqueued or run."""


class UnknownTopic(JobsError, ValueError):
    """A topic with no handler in this process and not in ``JOBS["ALLOWED_TOPICS"]``."""


class InvalidTopic(JobsError, ValueError):
    """A topic that is not a non-empty string of at most 255 characters."""


class InvalidPayload(JobsError, ValueError):
    """A payload that is not JSON-serialisable."""


class PayloadTooLarge(InvalidPayload):
    """A payload whose JSON form is larger than ``JOBS["MAX_PAYLOAD_SIZE"]`` bytes."""


class InvalidSchedule(JobsError, ValueError):
    """A negative delay, both ``run_at`` and ``delay``, a naive ``run_at``, a bad cron line."""


class InvalidPriority(JobsError, ValueError):
    """A priority that is not a whole number from -100 to 100."""


class InvalidOption(JobsError, ValueError):
    """Another bad argument: ``max_retries``, ``dedupe_key``, ``queue_name``."""


class JobNotFound(JobsError, LookupError):
    """No job has this id."""


class JobRunning(JobsError):
    """The job is being processed: it cannot be deleted or requeued now."""


class DedupeConflict(JobsError):
    """A requeue that would make a second pending job with one ``dedupe_key``."""


class WorkerLost(JobsError):
    """Recorded, not raised: the worker that ran the job stopped without finishing it (its
    lease ran out), so the attempt counts as failed. The name is what ``Job.errors`` and a
    task's ``TaskError.exception_class_path`` hold for such an attempt."""


class HandlerAlreadyRegistered(JobsError):
    """Two functions registered for one topic."""
