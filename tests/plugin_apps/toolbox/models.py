"""Rows the test site's handlers write."""

from __future__ import annotations

from django.db import models


class Execution(models.Model):
    """One execution of a ``toolbox.execution`` job: the fault tests count them per job."""

    job_id = models.BigIntegerField(db_index=True)
    attempt = models.IntegerField()
    #: the dispatcher (node name) that ran it, and its process
    worker = models.CharField(max_length=200)
    pid = models.IntegerField()
    #: when the handler began, by this machine's clock (taken before the insert, which may wait)
    began = models.DateTimeField()

    class Meta:
        db_table = "toolbox_executions"

    def __str__(self) -> str:
        return f"job {self.job_id} attempt {self.attempt} on {self.worker}"
