"""``settings.JOBS`` with defaults; every key can be overridden by ``JOBS_<KEY>`` in the environment."""

from __future__ import annotations

import dataclasses
from typing import Any

from tachycore.conf import AppSettings, setting


@dataclasses.dataclass(frozen=True)
class JobsDefaults:
    #: turn the job queue off without removing it from INSTALLED_APPS: ``get_job_store()``
    #: returns ``None``, no dispatcher runs, the HTTP API answers 404, schedules do nothing
    DISABLED: bool = setting(False, "bool")
    #: threads that run jobs in each ``runjobs`` process
    WORKERS: int = setting(4, "int", minimum=1)
    #: the longest an idle dispatcher waits before looking for due jobs (PostgreSQL wakes it
    #: at once on a new job; the poll, with +-20% jitter, catches delayed and retried jobs)
    POLL_INTERVAL: float = setting(1.0, "duration", minimum=0.01)
    #: how long a claim lasts without renewal; a running job's lease is renewed every third of it,
    #: and a job whose lease ran out (its process died) is claimed again
    LOCK_DURATION: float = setting(60.0, "duration", minimum=1)
    #: the most jobs one claim statement takes
    BATCH_SIZE: int = setting(20, "int", minimum=1)
    #: retries after a failure, unless ``enqueue(max_retries=...)`` says otherwise
    MAX_RETRIES: int = setting(3, "int", minimum=0)
    #: the first retry waits about this long; each next one twice as long (with jitter)
    RETRY_DELAY: float = setting(2.0, "duration")
    #: the longest wait before a retry
    RETRY_DELAY_MAX: float = setting(3600.0, "duration")
    #: the largest payload, in bytes of its JSON form
    MAX_PAYLOAD_SIZE: int = setting(256 * 1024, "int", minimum=1)
    #: serve the HTTP API at /api/jobs/ (off by default)
    HTTP_ENABLED: bool = setting(False, "bool")
    #: topics that may be enqueued without a handler in this process (shell-style patterns);
    #: when set, the HTTP API accepts only these topics
    ALLOWED_TOPICS: Any = setting(None, "json")
    #: run a dispatcher thread inside each web process (a laptop set-up without ``runjobs``)
    AUTO_START: bool = setting(False, "bool")
    #: on SIGTERM, how long running jobs may take to finish before their claims are returned
    SHUTDOWN_TIMEOUT: float = setting(30.0, "duration")
    #: completed and failed jobs older than this are deleted by the scheduled prune
    RETENTION: float = setting(7 * 86400.0, "duration", minimum=0)
    #: how often ``runjobs`` prints its status line (0: never)
    STATUS_INTERVAL: float = setting(10.0, "duration")
    #: who may enqueue over HTTP: by default users with jobs.add_job
    ENQUEUE_PERMISSION_CLASSES: list = setting(
        ["rest_framework.permissions.IsAuthenticated", "jobs.api.permissions.CanAddJob"], "list")
    #: who may do the rest: by default jobs.view_job (or change_job) to list and read jobs and
    #: stats, jobs.change_job to requeue, jobs.delete_job to delete
    MANAGE_PERMISSION_CLASSES: list = setting(["jobs.api.permissions.HasJobPermission"], "list")
    #: the HTTP API's throttle rates per user ("enqueue", "read": list, get, stats, "manage":
    #: requeue, delete) and per IP ("anon": anonymous requests, and failed authentications);
    #: None turns a scope off
    THROTTLE_RATES: dict = setting(
        {"anon": "60/min", "enqueue": "300/min", "read": "600/min", "manage": "60/min"}, "rates",
        choices=("anon", "enqueue", "read", "manage"))


jobs_settings = AppSettings("JOBS", JobsDefaults)
