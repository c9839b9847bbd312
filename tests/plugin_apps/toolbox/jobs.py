"""Job handlers of the test site (autodiscovered by jobs, as every app's jobs.py)."""

from __future__ import annotations

import os
import time

import jobs


@jobs.handler("toolbox.whoami")
def whoami(job):
    """Return the plugin the kernel runs this handler as (and, asked, the trace id)."""
    from tachycore.context import current_plugin
    from tachycore.trace import current_trace_id

    if job.payload.get("trace"):
        return {"plugin": current_plugin(), "trace_id": current_trace_id()}
    return {"plugin": current_plugin()}


@jobs.handler("toolbox.echo")
def echo(job):
    """Return the payload."""
    return job.payload


@jobs.handler("toolbox.fail")
def fail(job):
    """Raise, always."""
    raise RuntimeError(f"toolbox.fail was asked to fail: {job.payload!r}")


@jobs.handler("toolbox.flaky")
def flaky(job):
    """Fail until the job's ``payload["succeed_on"]``-th attempt."""
    if job.attempts < job.payload.get("succeed_on", 2):
        raise ValueError(f"attempt {job.attempts} fails")
    return {"attempts": job.attempts}


@jobs.handler("toolbox.sleep")
def sleep(job):
    """Sleep ``payload["seconds"]``; record the run in kv (``runs:<id>`` counts executions)."""
    from kv import get_store

    get_store().hincrby("toolbox:runs", str(job.id), 1)
    time.sleep(job.payload.get("seconds", 0.1))
    return {"pid": os.getpid()}


@jobs.handler("toolbox.stamp")
def stamp(job):
    """Count the start in kv (``toolbox:starts`` hash, field ``<job id>:<pid>``: starts per job and
    per process), then sleep ``payload["seconds"]``."""
    from kv import get_store

    get_store().hincrby("toolbox:starts", f"{job.id}:{os.getpid()}", 1)
    time.sleep(job.payload.get("seconds", 0.1))
    return None


@jobs.handler("toolbox.record")
def record(job):
    """Count each execution of the job in kv (``toolbox:runs`` hash, field = job id)."""
    from kv import get_store

    get_store().hincrby("toolbox:runs", str(job.id), 1)
    return None


#: ``payload["label"]`` of each ``toolbox.order`` run, in the order they ran (in-process dispatchers only)
ORDER: list[str] = []


@jobs.handler("toolbox.order")
def order(job):
    """Append the job's label to ``ORDER``."""
    ORDER.append(job.payload["label"])
    return job.payload["label"]


@jobs.handler("toolbox.unserialisable")
def unserialisable(job):
    """Return a value that JSON cannot hold."""
    return {1, 2}


@jobs.handler("toolbox.execution")
def execution(job):
    """Record this execution (a row in ``toolbox_executions``), then sleep ``payload["seconds"]``."""
    from django.utils import timezone

    from .models import Execution

    began = timezone.now()
    Execution.objects.create(job_id=job.id, attempt=job.attempts, worker=job.locked_by, pid=os.getpid(),
                             began=began)
    time.sleep(job.payload.get("seconds", 0))
    return None
