"""Edge cases of the job queue: dedupe keys meeting retries, a dispatcher getting its own
lapsed job back, bad characters and shapes, signals on dedupe hits, AUTO_START."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta

import pytest
from django.utils import timezone

import jobs
from jobs.dispatcher import Dispatcher
from jobs.errors import InvalidOption, InvalidPayload, InvalidSchedule, InvalidTopic
from jobs.models import Job, JobStatus
from jobs.signals import job_enqueued
from jobs.sql import statements_for
from tests.helpers.http import fetch
from tests.helpers.processes import ROOT, wait_until

pytestmark = pytest.mark.usefixtures("fast_jobs")

ERROR = {"exception_class_path": "builtins.RuntimeError", "traceback": "boom", "at": "now"}


@pytest.fixture
def store():
    return jobs.get_job_store()


def claim(worker: str, at, lease: float = 60.0) -> list[int]:
    rows = statements_for("default").claim(worker, at, at + timedelta(seconds=lease), 10, ["toolbox.echo"])
    return [row[0] for row in rows]


def a_job_running_while_a_newer_one_holds_its_key(store) -> tuple[Job, Job]:
    """Job A (key k) is claimed; then B is enqueued with k (A is not pending, so B is added)."""
    first = store.enqueue("toolbox.echo", {"n": 1}, dedupe_key="k", max_retries=3)
    assert claim("worker-a", timezone.now(), lease=1) == [first.id]
    second = store.enqueue("toolbox.echo", {"n": 2}, dedupe_key="k")
    assert second.id != first.id and not second.deduplicated
    return first, second


# -- dedupe keys and retries ----------------------------------------------------------------

@pytest.mark.django_db
def test_retry__gives_up_the_dedupe_key_held_by_a_newer_pending_job(store):
    first, second = a_job_running_while_a_newer_one_holds_its_key(store)
    retry_at = timezone.now() + timedelta(seconds=5)

    assert statements_for("default").fail("worker-a", timezone.now(), first.id, ERROR, retry_at) is True

    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, first.dedupe_key, first.retries) == (JobStatus.PENDING, None, 1)
    assert (second.status, second.dedupe_key) == (JobStatus.PENDING, "k")


@pytest.mark.django_db
def test_retry__keeps_its_dedupe_key_when_no_other_job_holds_it(store):
    job = store.enqueue("toolbox.echo", dedupe_key="mine", max_retries=3)
    claim("worker-a", timezone.now())
    statements_for("default").fail("worker-a", timezone.now(), job.id, ERROR, timezone.now())
    job.refresh_from_db()
    assert (job.status, job.dedupe_key) == (JobStatus.PENDING, "mine")
    assert store.enqueue("toolbox.echo", dedupe_key="mine").id == job.id  # it still dedupes


@pytest.mark.django_db
def test_recover__gives_up_the_dedupe_key_held_by_a_newer_pending_job(store):
    first, second = a_job_running_while_a_newer_one_holds_its_key(store)

    assert statements_for("default").recover(timezone.now() + timedelta(seconds=2)) == (1, 0)

    first.refresh_from_db()
    assert (first.status, first.dedupe_key) == (JobStatus.PENDING, None)
    assert Job.objects.get(pk=second.id).dedupe_key == "k"


@pytest.mark.django_db
def test_recover__two_lapsed_jobs_with_one_key_come_back_one_with_the_key(store):
    first = store.enqueue("toolbox.echo", dedupe_key="k", max_retries=3)
    assert claim("worker-a", timezone.now(), lease=1) == [first.id]
    second = store.enqueue("toolbox.echo", dedupe_key="k", max_retries=3)
    assert claim("worker-b", timezone.now(), lease=1) == [second.id]

    assert statements_for("default").recover(timezone.now() + timedelta(seconds=2)) == (2, 0)

    rows = Job.objects.filter(pk__in=[first.id, second.id])
    assert {row.status for row in rows} == {JobStatus.PENDING}
    assert sorted(row.dedupe_key or "" for row in rows) == ["", "k"]


@pytest.mark.django_db
def test_release__gives_up_the_dedupe_key_and_the_start_times_of_an_unstarted_job(store):
    first, second = a_job_running_while_a_newer_one_holds_its_key(store)

    assert statements_for("default").release("worker-a", timezone.now(), [(first.id, 1)], started=False) == 1

    first.refresh_from_db()
    assert (first.status, first.dedupe_key, first.attempts) == (JobStatus.PENDING, None, 0)
    assert (first.started_at, first.attempted_at) == (None, None)


@pytest.mark.django_db(transaction=True)
def test_dispatcher__a_failing_deduped_job_does_not_stop_the_queue(store):
    """The cron case: a scheduled job fails while the next firing is already pending."""
    failing = store.enqueue("toolbox.fail", dedupe_key="schedule:x", max_retries=2)
    claim_fail = statements_for("default").claim("worker-old", timezone.now(), timezone.now() + timedelta(hours=1),
                                             10, ["toolbox.fail"])
    assert [row[0] for row in claim_fail] == [failing.id]
    store.enqueue("toolbox.fail", dedupe_key="schedule:x", max_retries=2)
    Job.objects.filter(pk=failing.id).update(locked_until=timezone.now() - timedelta(seconds=1))
    other = store.enqueue("toolbox.echo", {"fine": True})

    counters = Dispatcher(burst=True, workers=2).run()

    assert Job.objects.get(pk=other.id).status == JobStatus.COMPLETED
    assert counters.recovered == 1 and counters.completed >= 1


# -- a dispatcher that gets its own lapsed job back ---------------------------------------

@pytest.mark.django_db
def test_complete__the_stale_run_of_a_reclaimed_job_is_not_written(store):
    job = store.enqueue("toolbox.echo", max_retries=3)
    sql = statements_for("default")
    now = timezone.now()
    claim("worker-a", now, lease=1)  # attempt 1
    sql.recover(now + timedelta(seconds=2))
    claim("worker-a", now + timedelta(seconds=2))  # attempt 2, same dispatcher

    stale = sql.complete("worker-a", now, [(job.id, json.dumps("run 1"), 1)])
    stale_fail = sql.fail("worker-a", now, job.id, ERROR, None, attempt=1)

    assert stale == set() and stale_fail is False
    job.refresh_from_db()
    assert (job.status, job.attempts, job.result) == (JobStatus.PROCESSING, 2, None)
    assert sql.complete("worker-a", now, [(job.id, json.dumps("run 2"), 2)]) == {job.id}
    job.refresh_from_db()
    assert (job.status, job.result) == (JobStatus.COMPLETED, "run 2")


# -- bad input ------------------------------------------------------------------------------

@pytest.mark.django_db
@pytest.mark.parametrize("arguments, error", [
    ({"topic": "toolbox.\x00echo"}, InvalidTopic),
    ({"topic": "toolbox.echo", "dedupe_key": "a\x00b"}, InvalidOption),
    ({"topic": "toolbox.echo", "queue_name": "q\x00"}, InvalidOption),
])
def test_enqueue__nul_characters_are_refused_on_every_database(store, arguments, error):
    with pytest.raises(error, match="NUL"):
        store.enqueue(**arguments)
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_enqueue__a_payload_nested_too_deeply_is_invalid(store):
    payload: list = []
    for _ in range(100_000):
        payload = [payload]
    with pytest.raises(InvalidPayload, match="nested too deeply"):
        store.enqueue("toolbox.echo", payload)
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_requeue__a_naive_run_at_is_refused(store):
    job = store.enqueue("toolbox.echo")
    Job.objects.filter(pk=job.id).update(status=JobStatus.FAILED)
    with pytest.raises(InvalidSchedule, match="aware"):
        store.requeue(job.id, run_at=timezone.now().replace(tzinfo=None))
    assert Job.objects.get(pk=job.id).status == JobStatus.FAILED


@pytest.mark.django_db
def test_enqueue__a_dedupe_hit_sends_no_job_enqueued_signal(store):
    sent = []

    def receiver(sender, job, **kwargs):
        sent.append(job.id)

    job_enqueued.connect(receiver)
    try:
        first = store.enqueue("toolbox.echo", dedupe_key="k")
        again = store.enqueue("toolbox.echo", dedupe_key="k")
    finally:
        job_enqueued.disconnect(receiver)
    assert again.id == first.id and again.deduplicated and not first.deduplicated
    assert sent == [first.id]


# -- AUTO_START -----------------------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_auto_start__a_web_process_runs_the_jobs_itself(subprocess_env, live_server_process):
    url = live_server_process({**subprocess_env, "JOBS_AUTO_START": "true", "JOBS_POLL_INTERVAL": "0.1s"})
    fetch(url + "/admin/login/")  # the first request starts the process's services
    job = jobs.get_job_store().enqueue("toolbox.echo", {"from": "web"})
    assert wait_until(lambda: Job.objects.get(pk=job.id).status == JobStatus.COMPLETED, 15)
    assert Job.objects.get(pk=job.id).result == {"from": "web"}


@pytest.mark.django_db(transaction=True)
def test_auto_start__off_by_default(subprocess_env, live_server_process):
    url = live_server_process()
    fetch(url + "/admin/login/")
    job = jobs.get_job_store().enqueue("toolbox.echo")
    wait_until(lambda: False, 1.5)
    assert Job.objects.get(pk=job.id).status == JobStatus.PENDING


def test_runjobs__warns_about_a_topic_it_cannot_run(subprocess_env):
    result = subprocess.run([sys.executable, str(ROOT / "manage.py"), "runjobs", "--burst", "--topics",
                             "toolbox.echo,no.such.topic"], env={**subprocess_env, "JOBS_STATUS_INTERVAL": "0"},
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "no.such.topic" in result.stderr and "no handler" in result.stderr
