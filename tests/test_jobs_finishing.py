"""Finishing jobs in batches: the dispatcher keeps completed outcomes until a batch is due
and writes them in one statement, each job still signalled on its own; an outcome not
written when its dispatcher dies leaves the job to run again after its lease."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta

import pytest
from django.utils import timezone

import jobs
from jobs import dispatcher as dispatcher_module
from jobs.dispatcher import Dispatcher
from jobs.models import Job
from jobs.signals import job_finished
from jobs.sql import statements_for
from tests.helpers.processes import wait_until

pytestmark = [pytest.mark.usefixtures("fast_jobs"), pytest.mark.django_db(transaction=True)]


@pytest.fixture
def store():
    return jobs.get_job_store()


@pytest.fixture
def completions(monkeypatch):
    """The ids of each batch the dispatchers write as completed, one list per statement."""
    batches: list[list[int]] = []
    statements = type(statements_for("default"))
    complete = statements.complete

    def spy(self, worker, now, outcomes):
        batches.append(sorted(outcome[0] for outcome in outcomes))
        return complete(self, worker, now, outcomes)

    monkeypatch.setattr(statements, "complete", spy)
    return batches


def running(dispatcher: Dispatcher) -> threading.Thread:
    thread = threading.Thread(target=dispatcher.run)
    thread.start()
    return thread


def test_outcomes__wait_for_the_jobs_still_running_then_are_written_in_one_statement(
        store, registered, completions, monkeypatch):
    monkeypatch.setattr(dispatcher_module, "FINISH_DELAY", 60.0)
    release = threading.Event()
    registered("tests.hold", lambda job: release.wait(10) and "held")
    quick = store.enqueue("toolbox.echo", {"n": 1})
    held = store.enqueue("tests.hold")
    dispatcher = Dispatcher(workers=2, burst=True)
    thread = running(dispatcher)
    try:
        assert wait_until(lambda: dispatcher.counters.processed == 0 and len(dispatcher._done) == 1, timeout=10)
        # the quick job's handler is done; its outcome waits for the other running job
        assert Job.objects.get(pk=quick.id).status == "processing"
    finally:
        release.set()
        thread.join(10)

    assert completions == [sorted([quick.id, held.id])]
    assert [(job.status, job.result) for job in Job.objects.filter(pk__in=[quick.id, held.id]).order_by("id")] \
        == [("completed", {"n": 1}), ("completed", "held")]


def test_outcomes__are_written_after_finish_delay_while_other_jobs_run(store, registered, monkeypatch):
    monkeypatch.setattr(dispatcher_module, "FINISH_DELAY", 0.05)
    release = threading.Event()
    registered("tests.hold", lambda job: release.wait(10))
    quick = store.enqueue("toolbox.echo", {"n": 1})
    store.enqueue("tests.hold")
    dispatcher = Dispatcher(workers=2, burst=True)
    thread = running(dispatcher)
    try:
        assert wait_until(lambda: Job.objects.get(pk=quick.id).status == "completed", timeout=10)
    finally:
        release.set()
        thread.join(10)
    assert dispatcher.counters.completed == 2


def test_outcomes__each_job_is_signalled_once_after_its_outcome_is_written(store, completions):
    seen: list[tuple[int, str, str]] = []

    def finished(sender, job, status, error, **kwargs):
        seen.append((job.id, status, Job.objects.get(pk=job.id).status))

    created = store.enqueue_many([{"topic": "toolbox.echo", "payload": {"n": n}} for n in range(6)])
    job_finished.connect(finished)
    try:
        Dispatcher(workers=2, burst=True).run()
    finally:
        job_finished.disconnect(finished)

    assert sorted(seen) == [(job.id, "completed", "completed") for job in created]
    assert len(completions) < len(created)  # in batches, not a statement per job


def test_outcomes__not_written_before_the_dispatcher_died_run_again_after_the_lease(
        store, registered, monkeypatch):
    runs: list[int] = []
    registered("tests.count", lambda job: runs.append(job.id) or len(runs))
    job = store.enqueue("tests.count", max_retries=3)
    died = Dispatcher(workers=1, lock_duration=1, shutdown_timeout=0, name="died")
    monkeypatch.setattr(died, "_flush", lambda sql: None)  # it dies before it writes anything
    thread = running(died)
    assert wait_until(lambda: runs == [job.id], timeout=10)
    died.stop()
    thread.join(10)
    row = Job.objects.get(pk=job.id)
    assert (row.status, row.locked_by, row.result) == ("processing", "died", None)

    time.sleep(1.1)  # its lease runs out
    counters = Dispatcher(workers=1, burst=True).run()

    assert runs == [job.id, job.id]
    row = Job.objects.get(pk=job.id)
    assert (counters.recovered, row.status, row.result, row.attempts, row.retries) == (1, "completed", 2, 2, 1)


def test_complete__writes_only_the_jobs_still_owned_at_their_attempt(store):
    sql = statements_for("default")
    owned, other_attempt, without_result = (store.enqueue("toolbox.echo", {"n": n}) for n in range(3))
    now = timezone.now()
    sql.claim("worker-a", now, now + timedelta(minutes=1), 10, ["toolbox.echo"])

    written = sql.complete("worker-a", now, [(owned.id, json.dumps({"ok": 1}), 1),
                                              (other_attempt.id, json.dumps("stale"), 2),
                                              (without_result.id, None, 1)])

    assert written == {owned.id, without_result.id}
    rows = {job.id: job for job in Job.objects.all()}
    assert (rows[owned.id].status, rows[owned.id].result) == ("completed", {"ok": 1})
    assert (rows[other_attempt.id].status, rows[other_attempt.id].result) == ("processing", None)
    assert (rows[without_result.id].status, rows[without_result.id].result) == ("completed", None)
