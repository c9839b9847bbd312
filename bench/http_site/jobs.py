"""The topic the bench enqueues (autodiscovered by the jobs app: a module named ``jobs``).

No worker runs during the bench: the jobs stay pending."""

import jobs


@jobs.handler("bench.http")
def noop(job):
    return None
