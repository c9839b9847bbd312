"""Job handlers of the probe plugin (autodiscovered by jobs, as every app's jobs.py)."""

from __future__ import annotations

import jobs

from .operations import NOOP, run


@jobs.handler("probe.do")
def do(job):
    """Try ``payload["what"]``."""
    return {"done": job.payload["what"], "result": run(job.payload["what"])}


@jobs.handler(NOOP)
def noop(job):
    """Do nothing: the job the ``enqueue`` operation adds."""
    return None
