"""Our handlers (autodiscovered by the jobs app: a module named ``jobs`` in an app)."""

import jobs

from .pickup import report


@jobs.handler("bench.noop")
def noop(job):
    return None


@jobs.handler("bench.pickup")
def pickup(job):
    report(job.payload["sample"])
