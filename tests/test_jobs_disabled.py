"""JOBS["DISABLED"] (env JOBS_DISABLED): the queue is off and nothing fails.

No store, no dispatcher (runjobs, AUTO_START), no enqueue through django.tasks, no
scheduled work; the HTTP API's 404 is tested with the API (test_jobs_api.py).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

import jobs
from jobs import receivers
from jobs.dispatcher import Dispatcher
from jobs.errors import JobsDisabled
from jobs.models import Job, JobStatus
from jobs.prune import prune_finished
from jobs.schedules import enqueue_scheduled
from tests.helpers.processes import manage
from tests.plugin_apps.toolbox import tasks

OFF = {"DISABLED": True}


@pytest.fixture
def disabled(settings):
    settings.JOBS = dict(OFF)


@pytest.fixture
def pending_job(transactional_db) -> Job:
    """A job enqueued while the queue was on."""
    return jobs.get_job_store().enqueue("toolbox.echo", {"n": 1})


def test_get_job_store__none_when_disabled(disabled):
    assert jobs.get_job_store() is None


def test_get_job_store__none_when_disabled_by_the_environment(app_env):
    app_env.set("JOBS_DISABLED", "true")
    assert jobs.get_job_store() is None

    app_env.unset("JOBS_DISABLED")
    assert jobs.get_job_store() is not None


def test_dispatcher__refuses_to_start_when_disabled(disabled):
    with pytest.raises(JobsDisabled, match="disabled"):
        Dispatcher(burst=True)


def test_auto_start__starts_no_dispatcher_when_disabled(settings):
    settings.JOBS = {**OFF, "AUTO_START": True}

    receivers.start_embedded_dispatcher(kind="web", node_id="web-1")

    assert receivers._embedded == {}


@pytest.mark.django_db
def test_tasks_backend__enqueue_refused_with_a_jobs_error(disabled):
    with pytest.raises(JobsDisabled, match=r"jobs is disabled \(JOBS\['DISABLED'\]"):
        tasks.add.enqueue(1, 2)

    assert not Job.objects.exists()


@pytest.mark.django_db
def test_schedule__a_firing_enqueues_nothing_when_disabled(settings):
    settings.JOBS = OFF

    assert enqueue_scheduled("toolbox.echo", {"by": "cron"}, dedupe_key="schedule:nightly") is None

    assert not Job.objects.exists()


@pytest.mark.django_db
def test_prune__deletes_nothing_when_disabled(settings):
    old = Job.objects.create(topic="toolbox.echo", status=JobStatus.COMPLETED, run_at=timezone.now(),
                             created=timezone.now(), updated=timezone.now(),
                             finished_at=timezone.now() - timedelta(days=30))
    settings.JOBS = OFF

    assert prune_finished() == 0

    assert list(Job.objects.values_list("id", flat=True)) == [old.id]


def test_runjobs__exits_0_with_one_line_and_runs_nothing(subprocess_env, pending_job):
    result = manage({**subprocess_env, "JOBS_DISABLED": "true"}, "runjobs", "--burst")

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["runjobs: jobs is disabled (JOBS['DISABLED'] or JOBS_DISABLED); "
                                          "nothing to run"]
    assert Job.objects.get(pk=pending_job.id).status == JobStatus.PENDING


def test_check__passes_without_a_warning_when_disabled(subprocess_env):
    result = manage({**subprocess_env, "JOBS_DISABLED": "true", "JOBS_AUTO_START": "true",
                     "JOBS_HTTP_ENABLED": "true"}, "check", "--fail-level", "WARNING")

    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout
