"""Signals of the job queue (sent in the process where the event happens)."""

from django.dispatch import Signal

#: after ``enqueue``/``enqueue_many`` wrote a job (the caller's transaction may still roll back);
#: ``sender`` is the store, ``job`` the ``Job``
job_enqueued = Signal()
#: in the dispatcher, before the handler runs; ``job``
job_started = Signal()
#: in the dispatcher, after an attempt: ``job``, ``status`` ("completed", "pending" for a
#: retry, "failed"), ``error`` (the exception or ``None``)
job_finished = Signal()
