"""Scheduled work through django-q2: jobs.schedule, the prune schedule, qcluster."""

from __future__ import annotations

import signal
import subprocess
import sys
from datetime import timedelta
from multiprocessing import Event, Queue, Value

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone
from django.utils.module_loading import import_string

import jobs
from jobs.errors import InvalidPayload, InvalidPriority, InvalidSchedule, InvalidTopic, UnknownTopic
from jobs.models import Job, JobStatus
from jobs.prune import prune_finished
from jobs.receivers import register_prune_schedule as on_post_migrate
from jobs.schedules import (
    ENQUEUE_FUNC,
    PRUNE_FUNC,
    PRUNE_SCHEDULE,
    enqueue_scheduled,
    register_prune_schedule,
    unschedule,
)
from tests.helpers.processes import ROOT, wait_until

TOPIC = "toolbox.echo"  # a handler in every process of the test site (tests/plugin_apps/toolbox/jobs.py)


def schedule_rows(name: str):
    from django_q.models import Schedule

    return Schedule.objects.filter(name=name)


def row_values(name: str) -> list[dict]:
    return list(schedule_rows(name).values())


def fire(name: str) -> None:
    """Let django-q2 run the schedule ``name`` now, with the cluster's own pieces in this
    process: scheduler -> ORM broker -> pusher -> worker -> monitor (as ``qcluster`` does)."""
    from django_q.brokers import get_broker
    from django_q.models import OrmQ, Schedule
    from django_q.monitor import monitor
    from django_q.pusher import pusher
    from django_q.scheduler import scheduler
    from django_q.worker import worker

    OrmQ.objects.all().delete()  # a failed task stays in the broker, to be retried later
    now = timezone.now()
    Schedule.objects.exclude(name=name).update(next_run=now + timedelta(days=1))  # only this one is due
    schedule_rows(name).update(next_run=now - timedelta(seconds=1))
    broker = get_broker()
    scheduler(broker=broker)
    assert OrmQ.objects.count() == 1
    task_queue, result_queue, stop = Queue(), Queue(), Event()
    stop.set()  # one pull from the broker, then return
    pusher(task_queue, stop, broker=broker)
    task_queue.put("STOP")
    worker(task_queue, result_queue, Value("f", -1))
    result_queue.put("STOP")
    monitor(result_queue, broker=broker)


def results_of(name: str) -> list:
    from django_q.models import Task

    return [(task.success, task.result) for task in Task.objects.filter(group=name).order_by("started")]


def finished_job(status: str, age: timedelta, topic: str = TOPIC) -> Job:
    """A job that reached ``status`` ``age`` ago (created a minute before that)."""
    now = timezone.now()
    finished = now - age
    return Job.objects.create(topic=topic, status=status, run_at=finished - timedelta(minutes=1),
                              created=finished - timedelta(minutes=1), updated=finished,
                              finished_at=finished if status in ("completed", "failed") else None)


# -- jobs.schedule ------------------------------------------------------------------------


@pytest.mark.django_db
def test_schedule__creates_one_cron_row_that_enqueues_the_topic():
    from django_q.models import Schedule

    row = jobs.schedule("nightly echo", TOPIC, "30 2 * * *", payload={"n": 1, "ok": True, "none": None})

    [stored] = schedule_rows("nightly echo")
    assert stored.pk == row.pk
    assert (stored.func, stored.schedule_type, stored.cron, stored.repeats) == (
        ENQUEUE_FUNC, Schedule.CRON, "30 2 * * *", -1)
    assert import_string(stored.func) is enqueue_scheduled
    assert stored.kwargs == ("topic='toolbox.echo', payload={'n': 1, 'ok': True, 'none': None}, priority=0, "
                             "max_retries=None, dedupe_key='schedule:nightly echo'")
    next_run = timezone.localtime(stored.next_run)
    assert stored.next_run > timezone.now()
    assert (next_run.hour, next_run.minute, next_run.second) == (2, 30, 0)


@pytest.mark.django_db
def test_schedule__calling_it_again_with_the_same_arguments_changes_nothing():
    jobs.schedule("every five", TOPIC, "*/5 * * * *", payload=[1, 2])
    before = row_values("every five")

    again = jobs.schedule("every five", TOPIC, "*/5 * * * *", payload=[1, 2])

    assert row_values("every five") == before
    assert again.pk == before[0]["id"]


@pytest.mark.django_db
def test_schedule__a_changed_cron_updates_the_row_and_works_out_its_next_run():
    first = jobs.schedule("report", TOPIC, "0 0 1 1 *")  # once a year
    assert first.next_run > timezone.now() + timedelta(days=1) or timezone.now().month == 12

    jobs.schedule("report", TOPIC, "*/5 * * * *")

    [row] = schedule_rows("report")
    assert row.pk == first.pk
    assert row.cron == "*/5 * * * *"
    assert row.next_run is not None  # a row without next_run would never run again
    assert timezone.now() < row.next_run <= timezone.now() + timedelta(minutes=5)
    assert row.next_run.minute % 5 == 0


@pytest.mark.django_db
def test_schedule__a_changed_payload_updates_kwargs_and_keeps_next_run():
    first = jobs.schedule("digest", TOPIC, "0 * * * *", payload={"to": "a"})

    jobs.schedule("digest", TOPIC, "0 * * * *", payload={"to": "b"}, priority=5)

    [row] = schedule_rows("digest")
    assert row.next_run == first.next_run
    assert "payload={'to': 'b'}" in row.kwargs and "priority=5" in row.kwargs


@pytest.mark.django_db
def test_schedule__a_pause_set_in_the_admin_survives_registering_again():
    jobs.schedule("paused", TOPIC, "* * * * *")
    schedule_rows("paused").update(repeats=0)

    jobs.schedule("paused", TOPIC, "* * * * *")

    assert list(schedule_rows("paused").values_list("repeats", flat=True)) == [0]


@pytest.mark.django_db
def test_schedule__duplicate_rows_are_merged_into_the_oldest():
    first = jobs.schedule("twice", TOPIC, "* * * * *")
    schedule_rows("twice").model.objects.create(name="twice", func=ENQUEUE_FUNC, schedule_type="C",
                                                cron="* * * * *")

    jobs.schedule("twice", TOPIC, "* * * * *")

    assert list(schedule_rows("twice").values_list("pk", flat=True)) == [first.pk]


@pytest.mark.django_db
def test_unschedule__deletes_the_row_and_says_whether_it_existed():
    jobs.schedule("gone soon", TOPIC, "* * * * *")

    assert unschedule("gone soon") is True
    assert unschedule("gone soon") is False
    assert not schedule_rows("gone soon").exists()


@pytest.mark.django_db
@pytest.mark.parametrize(("arguments", "error", "message"), [
    (("bad cron", TOPIC, "every day"), InvalidSchedule, "not a cron line: 'every day'"),
    (("bad cron", TOPIC, "61 * * * *"), InvalidSchedule, "not a cron line: '61 * * * *'"),
    (("bad cron", TOPIC, ""), InvalidSchedule, "not a cron line: ''"),
    (("bad cron", TOPIC, None), InvalidSchedule, "not a cron line: None"),
    (("bad topic", "", "* * * * *"), InvalidTopic, "a topic must be a non-empty string"),
    (("bad topic", 42, "* * * * *"), InvalidTopic, "got 42"),
    (("bad topic", "t" * 256, "* * * * *"), InvalidTopic, "at most 255 characters"),
    (("bad topic", "no.such.topic", "* * * * *"), UnknownTopic, "no handler for topic 'no.such.topic'"),
    (("", TOPIC, "* * * * *"), InvalidSchedule, "a schedule name must be a non-empty string"),
    (("   ", TOPIC, "* * * * *"), InvalidSchedule, "got '   '"),
    ((None, TOPIC, "* * * * *"), InvalidSchedule, "got None"),
    (("n" * 101, TOPIC, "* * * * *"), InvalidSchedule, "at most 100 characters"),
], ids=["words", "minute-61", "empty-cron", "no-cron", "empty-topic", "number-topic", "long-topic",
        "unknown-topic", "empty-name", "blank-name", "no-name", "long-name"])
def test_schedule__bad_input_raises_and_writes_nothing(arguments, error, message):
    before = list(schedule_rows(None).model.objects.values())

    with pytest.raises(error, match=message.replace("*", r"\*")):
        jobs.schedule(*arguments)

    assert list(schedule_rows(None).model.objects.values()) == before


@pytest.mark.django_db
@pytest.mark.parametrize(("options", "error"), [
    ({"payload": {"when": timezone.now}}, InvalidPayload),
    ({"payload": float("nan")}, InvalidPayload),
    ({"priority": 101}, InvalidPriority),
    ({"max_retries": -1}, jobs.errors.InvalidOption),
], ids=["function-payload", "nan-payload", "priority", "max-retries"])
def test_schedule__bad_options_raise_and_write_nothing(options, error):
    jobs.schedule("kept", TOPIC, "* * * * *", payload={"v": 1})
    before = list(schedule_rows(None).model.objects.values())

    with pytest.raises(error):
        jobs.schedule("kept", TOPIC, "*/2 * * * *", **options)

    assert list(schedule_rows(None).model.objects.values()) == before


@pytest.mark.django_db
def test_schedule__a_topic_in_allowed_topics_needs_no_handler(settings):
    settings.JOBS = {"ALLOWED_TOPICS": ["remote.*"]}

    jobs.schedule("remote", "remote.sync", "* * * * *")

    assert schedule_rows("remote").count() == 1


# -- a schedule's run ---------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_run__django_q_turns_the_schedule_into_one_job_and_a_second_firing_while_pending_adds_none():
    jobs.schedule("echo", TOPIC, "* * * * *", payload={"greeting": "hi", "list": [1, None, True]}, priority=7)

    fire("echo")
    fire("echo")

    [job] = Job.objects.all()
    assert (job.topic, job.status, job.priority) == (TOPIC, JobStatus.PENDING, 7)
    assert job.payload == {"greeting": "hi", "list": [1, None, True]}
    assert job.dedupe_key == "schedule:echo"
    assert results_of("echo") == [(True, job.id), (True, job.id)]


@pytest.mark.django_db(transaction=True)
def test_run__once_the_job_is_no_longer_pending_the_next_firing_enqueues_a_new_one():
    jobs.schedule("echo", TOPIC, "* * * * *")
    fire("echo")
    Job.objects.update(status=JobStatus.COMPLETED, finished_at=timezone.now())

    fire("echo")

    assert list(Job.objects.order_by("id").values_list("status", "dedupe_key")) == [
        ("completed", "schedule:echo"), ("pending", "schedule:echo")]


@pytest.mark.django_db(transaction=True)
def test_run__without_dedupe_every_firing_enqueues_a_job():
    jobs.schedule("echo", TOPIC, "* * * * *", dedupe=False)

    fire("echo")
    fire("echo")

    assert list(Job.objects.values_list("status", "dedupe_key")) == [("pending", None)] * 2


@pytest.mark.django_db(transaction=True)
def test_run__a_handler_gone_since_registration_fails_the_task_and_writes_no_job():
    from jobs.handlers import handlers

    @jobs.handler("schedules.temporary")
    def temporary(job):
        return None

    try:
        jobs.schedule("orphan", "schedules.temporary", "* * * * *")
    finally:
        handlers.unregister("schedules.temporary")

    fire("orphan")

    [(success, result)] = results_of("orphan")
    assert success is False and "no handler for topic 'schedules.temporary'" in result
    assert not Job.objects.exists()


# -- the prune schedule, registered after migrate ------------------------------------------


@pytest.mark.django_db
def test_prune_schedule__exists_once_after_migrate_hourly_and_first_runs_an_hour_later():
    from django_q.models import Schedule

    [row] = schedule_rows(PRUNE_SCHEDULE)

    assert (row.func, row.schedule_type, row.minutes, row.repeats) == (PRUNE_FUNC, Schedule.MINUTES, 60, -1)
    assert import_string(row.func) is prune_finished
    assert row.next_run > timezone.now() + timedelta(minutes=50)


@pytest.mark.django_db(transaction=True)
def test_prune_schedule__migrate_twice_and_the_receiver_twice_leave_the_same_row():
    first = schedule_rows(PRUNE_SCHEDULE).get()

    call_command("migrate", verbosity=0)
    call_command("migrate", verbosity=0)
    on_post_migrate(using="default")
    on_post_migrate(using="default")

    [row] = schedule_rows(PRUNE_SCHEDULE)
    assert (row.pk, row.next_run) == (first.pk, first.next_run)


@pytest.mark.django_db
def test_prune_schedule__is_created_through_a_migration_state_with_a_next_run():
    """post_migrate hands receivers the historical models, which have no Schedule.save()."""
    schedule_rows(PRUNE_SCHEDULE).delete()
    state_apps = MigrationExecutor(connection).loader.project_state().apps

    on_post_migrate(using="default", apps=state_apps)

    [row] = schedule_rows(PRUNE_SCHEDULE)
    assert row.func == PRUNE_FUNC
    assert timezone.now() + timedelta(minutes=59) < row.next_run <= timezone.now() + timedelta(minutes=60)


@pytest.mark.django_db(transaction=True)
def test_prune_schedule__a_row_with_the_former_path_runs_the_prune_after_migrate():
    """Sites that migrated before the prune moved out of jobs.maintenance keep one working row."""
    schedule_rows(PRUNE_SCHEDULE).update(func="jobs.maintenance.prune_finished", repeats=5)
    before = schedule_rows(PRUNE_SCHEDULE).get()

    call_command("migrate", verbosity=0)

    [row] = schedule_rows(PRUNE_SCHEDULE)
    assert (row.pk, row.func, row.repeats, row.next_run) == (before.pk, PRUNE_FUNC, 5, before.next_run)
    assert import_string(row.func) is prune_finished


@pytest.mark.django_db
def test_prune_schedule__a_pause_and_kwargs_set_in_the_admin_survive_migrate():
    schedule_rows(PRUNE_SCHEDULE).update(repeats=0, kwargs="")

    call_command("migrate", verbosity=0)

    assert list(schedule_rows(PRUNE_SCHEDULE).values_list("repeats", "kwargs")) == [(0, "")]


@pytest.mark.django_db
def test_prune_schedule__a_changed_interval_is_put_back_and_due_within_the_hour():
    schedule_rows(PRUNE_SCHEDULE).update(minutes=5, next_run=timezone.now() + timedelta(days=3))

    register_prune_schedule()

    [row] = schedule_rows(PRUNE_SCHEDULE)
    assert row.minutes == 60 and row.next_run <= timezone.now() + timedelta(minutes=60)


@pytest.mark.django_db
@pytest.mark.parametrize("retention", ["0", "0s"])
def test_prune_schedule__stays_active_when_retention_is_zero(monkeypatch, retention):
    from jobs.conf import jobs_settings

    monkeypatch.setenv("JOBS_RETENTION", retention)
    jobs_settings.reset()
    try:
        call_command("migrate", verbosity=0)
    finally:
        monkeypatch.delenv("JOBS_RETENTION")
        jobs_settings.reset()

    assert list(schedule_rows(PRUNE_SCHEDULE).values_list("repeats", flat=True)) == [-1]


@pytest.mark.django_db
def test_prune_schedule__without_django_q_registration_does_nothing():
    from django.apps.registry import Apps

    before = row_values(PRUNE_SCHEDULE)

    assert register_prune_schedule(apps=Apps(installed_apps=[])) is None
    on_post_migrate(using="default", apps=Apps(installed_apps=[]))

    assert row_values(PRUNE_SCHEDULE) == before


# -- the prune ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_prune__deletes_only_finished_jobs_older_than_retention(settings):
    settings.JOBS = {"RETENTION": "1h"}
    old_completed = finished_job("completed", timedelta(hours=2))
    old_failed = finished_job("failed", timedelta(hours=1, minutes=1))
    kept = {
        finished_job("completed", timedelta(minutes=59)).pk,
        finished_job("failed", timedelta(minutes=1)).pk,
        finished_job("pending", timedelta(days=30)).pk,
        finished_job("processing", timedelta(days=30)).pk,
    }

    removed = prune_finished()

    assert removed == 2
    assert set(Job.objects.values_list("pk", flat=True)) == kept
    assert not Job.objects.filter(pk__in=[old_completed.pk, old_failed.pk]).exists()


@pytest.mark.django_db
def test_prune__follows_retention_from_the_environment(app_env):
    week_old = finished_job("completed", timedelta(days=8))
    day_old = finished_job("completed", timedelta(days=1, minutes=1))
    app_env.set("JOBS_RETENTION", "1d")

    removed = prune_finished()

    assert removed == 2
    assert not Job.objects.filter(pk__in=[week_old.pk, day_old.pk]).exists()


@pytest.mark.django_db
def test_prune__default_retention_keeps_a_six_day_old_job_and_deletes_an_eight_day_old_one():
    six = finished_job("completed", timedelta(days=6))
    finished_job("failed", timedelta(days=8))

    assert prune_finished() == 1

    assert list(Job.objects.values_list("pk", flat=True)) == [six.pk]


@pytest.mark.django_db(transaction=True)
def test_prune__run_by_its_schedule_through_django_q(settings):
    settings.JOBS = {"RETENTION": "1h"}
    finished_job("completed", timedelta(hours=3))
    live = finished_job("pending", timedelta(hours=3))

    fire(PRUNE_SCHEDULE)

    assert results_of(PRUNE_SCHEDULE) == [(True, 1)]
    assert list(Job.objects.values_list("pk", flat=True)) == [live.pk]


# -- manage.py qcluster -------------------------------------------------------------------

# django-q2's sentinel calls the scheduler when a counter, raised by guard_cycle (0.5 s) at
# each pass of its guard loop, reaches 30: about 30 s after start. With guard_cycle = 30 the
# first pass already looks at the schedules, so the test takes seconds; the scheduler,
# the broker, the pusher and the workers are django-q2's own, unchanged.
QCLUSTER_SETTINGS = """\
from tests.settings import *  # noqa: F403
from tests.settings import Q_CLUSTER

Q_CLUSTER = {**Q_CLUSTER, "guard_cycle": 30}
"""


@pytest.mark.django_db(transaction=True)
def test_qcluster__runs_a_due_schedule_and_the_job_appears_in_the_queue(subprocess_env, tmp_path):
    (tmp_path / "qcluster_settings.py").write_text(QCLUSTER_SETTINGS)
    env = {**subprocess_env, "DJANGO_SETTINGS_MODULE": "qcluster_settings",
           "PYTHONPATH": f"{ROOT}:{tmp_path}"}
    jobs.schedule("from qcluster", TOPIC, "* * * * *", payload={"by": "qcluster"})
    started = timezone.now()
    schedule_rows("from qcluster").update(next_run=started - timedelta(seconds=1))
    proc = subprocess.Popen([sys.executable, str(ROOT / "manage.py"), "qcluster"], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        appeared = wait_until(lambda: Job.objects.filter(dedupe_key="schedule:from qcluster").exists()
                              or proc.poll() is not None, timeout=30, interval=0.2)
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()

    assert appeared and proc.returncode == 0, output
    [job] = Job.objects.all()
    assert (job.topic, job.payload, job.status) == (TOPIC, {"by": "qcluster"}, JobStatus.PENDING)
    assert "Processed 'jobs.schedules.enqueue_scheduled'" in output
    # moved on past the run (the next whole minute: on a busy machine that may be past already)
    assert schedule_rows("from qcluster").get().next_run > started
