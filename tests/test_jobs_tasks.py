"""The django.tasks backend (``jobs.backends.JobsBackend``): Django's backend contract on the job queue."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest
from asgiref.sync import sync_to_async
from django.db import connections, transaction
from django.tasks import TaskResultStatus, default_task_backend, task_backends
from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist, TaskResultMismatch
from django.tasks.signals import task_enqueued, task_finished, task_started
from django.utils import timezone

from jobs import get_job_store
from jobs.backends import JobsBackend
from jobs.dispatcher import Dispatcher
from jobs.errors import WorkerLost
from jobs.models import Job, JobStatus
from jobs.sql import statements_for
from tests.helpers.processes import manage
from tests.helpers.rows import disable_in_registry
from tests.plugin_apps.toolbox import tasks

BACKEND = "jobs.backends.JobsBackend"
# two JobsBackend aliases, the default one with a second queue
TWO_BACKENDS = {
    "default": {"BACKEND": BACKEND, "QUEUES": ["default", "emails"]},
    "other": {"BACKEND": BACKEND},
}

run_db = pytest.mark.django_db(transaction=True)


def run_due(**options) -> Dispatcher:
    """Run every due job in this process (a burst dispatcher); return the dispatcher."""
    dispatcher = Dispatcher(burst=True, **options)
    dispatcher.run()
    return dispatcher


@pytest.fixture
def received():
    """``(signal name, task path, status)`` of every task signal sent during the test."""
    events: list[tuple[str, str, TaskResultStatus]] = []
    receivers = {}
    for name, signal in (("enqueued", task_enqueued), ("started", task_started), ("finished", task_finished)):
        def receiver(sender, task_result, _name=name, **kwargs):
            events.append((_name, task_result.task.module_path, task_result.status))

        receivers[signal] = receiver
        signal.connect(receiver, weak=False)
    yield events
    for signal, receiver in receivers.items():
        signal.disconnect(receiver)


# -- the backend and enqueue ---------------------------------------------------------------


def test_backend__is_the_default_and_supports_every_feature():
    backend = task_backends["default"]
    assert isinstance(backend, JobsBackend)
    assert backend.alias == "default"
    assert backend.supports_defer is True
    assert backend.supports_priority is True
    assert backend.supports_get_result is True
    assert backend.supports_async_task is True


@pytest.mark.django_db
def test_enqueue__stores_a_job_for_the_task_and_returns_a_ready_result(settings):
    settings.TASKS = TWO_BACKENDS
    run_after = timezone.now() + timedelta(hours=1)
    task = tasks.add.using(queue_name="emails", priority=7, run_after=run_after)

    result = task.enqueue(2, b=3)

    job = Job.objects.get()
    assert result.id == str(job.id)
    assert (job.topic, job.task_backend, job.queue_name, job.priority) == (
        "tests.plugin_apps.toolbox.tasks.add", "default", "emails", 7)
    assert job.run_at == run_after
    assert job.status == JobStatus.PENDING
    assert job.payload == {"args": [2], "kwargs": {"b": 3}}
    assert job.max_retries == 0
    assert result.status == TaskResultStatus.READY
    assert result.task == task
    assert (result.args, result.kwargs, result.backend) == ([2], {"b": 3}, "default")
    assert result.enqueued_at == job.created
    assert (result.started_at, result.finished_at, result.last_attempted_at) == (None, None, None)
    assert (result.errors, result.worker_ids, result.attempts) == ([], [], 0)
    with pytest.raises(ValueError, match="not finished"):
        _ = result.return_value


@pytest.mark.django_db
def test_enqueue__uses_the_alias_of_the_tasks_backend(settings):
    settings.TASKS = TWO_BACKENDS

    result = tasks.add.using(backend="other").enqueue(1, 1)

    assert Job.objects.get().task_backend == "other"
    assert result.backend == "other"


@pytest.mark.django_db
def test_enqueue__arguments_are_stored_as_json_the_way_django_normalises_them():
    result = tasks.add.enqueue((1, 2), b"text")

    assert Job.objects.get().payload == {"args": [[1, 2], "text"], "kwargs": {}}
    assert result.args == [[1, 2], "text"]


@pytest.mark.django_db
def test_enqueue__an_argument_that_is_not_json_is_refused_and_nothing_is_written():
    with pytest.raises(TypeError):
        tasks.add.enqueue(object(), 1)

    assert not Job.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("change", [
    {"queue_name": "nowhere"},
    {"priority": 101},
    {"priority": -101},
    {"run_after": datetime(2030, 1, 1, 12, 0)},  # naive
], ids=["unknown-queue", "priority-over", "priority-under", "naive-run-after"])
def test_enqueue__a_task_django_finds_invalid_raises_invalid_task_and_writes_nothing(change):
    with pytest.raises(InvalidTask):
        tasks.add.using(**change).enqueue(1, 2)

    assert not Job.objects.exists()


@pytest.mark.django_db
def test_enqueue__the_backend_validates_the_task_it_is_given(settings):
    settings.TASKS = TWO_BACKENDS
    # valid for "default" (which has the "emails" queue), not for "other"
    task = tasks.add.using(queue_name="emails")

    with pytest.raises(InvalidTask, match="emails"):
        task_backends["other"].enqueue(task, (1, 2), {})

    assert not Job.objects.exists()


@pytest.mark.django_db
def test_enqueue__inside_a_transaction_that_rolls_back_leaves_nothing():
    with pytest.raises(RuntimeError), transaction.atomic():
        result = tasks.add.enqueue(1, 2)
        assert Job.objects.filter(pk=result.id).exists()
        raise RuntimeError("roll back")

    assert not Job.objects.exists()
    with pytest.raises(TaskResultDoesNotExist):
        tasks.add.get_result(result.id)


@run_db
def test_enqueue__async_enqueue_and_get_result_work():
    async def enqueue_and_read():
        try:
            result = await tasks.add.aenqueue(4, 5)
            return result, await tasks.add.aget_result(result.id)
        finally:
            # the backend ran in asgiref's thread: its connection must not outlive the test
            await sync_to_async(connections.close_all, thread_sensitive=True)()

    enqueued, read = asyncio.run(enqueue_and_read())

    assert read.id == enqueued.id
    assert read.status == TaskResultStatus.READY
    assert read.args == [4, 5]


# -- get_result ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_get_result__reads_the_stored_job():
    enqueued = tasks.add.enqueue(1, 2)

    result = default_task_backend.get_result(enqueued.id)

    assert result.task == tasks.add
    assert (result.id, result.status, result.args) == (enqueued.id, TaskResultStatus.READY, [1, 2])
    assert result.enqueued_at == enqueued.enqueued_at


@pytest.mark.django_db
@pytest.mark.parametrize("result_id", ["987654", "0", "-1", "not-a-number", "", "9" * 30])
def test_get_result__an_unknown_id_raises_task_result_does_not_exist(result_id):
    tasks.add.enqueue(1, 2)

    with pytest.raises(TaskResultDoesNotExist):
        default_task_backend.get_result(result_id)


@pytest.mark.django_db
def test_get_result__a_job_of_another_backend_does_not_exist_here(settings):
    settings.TASKS = TWO_BACKENDS
    enqueued = tasks.add.using(backend="other").enqueue(1, 2)

    with pytest.raises(TaskResultDoesNotExist):
        task_backends["default"].get_result(enqueued.id)
    assert task_backends["other"].get_result(enqueued.id).backend == "other"


@pytest.mark.django_db
def test_get_result__a_plain_job_is_no_task_result():
    job = get_job_store().enqueue("toolbox.echo", {"a": 1})

    with pytest.raises(TaskResultDoesNotExist):
        default_task_backend.get_result(str(job.id))


@pytest.mark.django_db
def test_get_result__of_another_task_raises_task_result_mismatch():
    enqueued = tasks.add.enqueue(1, 2)

    with pytest.raises(TaskResultMismatch):
        tasks.async_double.get_result(enqueued.id)
    assert tasks.add.get_result(enqueued.id).id == enqueued.id


# -- running: the dispatcher ----------------------------------------------------------------


@run_db
def test_run__a_sync_task_succeeds_with_its_value_timestamps_and_worker():
    enqueued = tasks.add.enqueue(2, 3)

    dispatcher = run_due()

    result = tasks.add.get_result(enqueued.id)
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.is_finished
    assert result.return_value == 5
    assert result.errors == []
    assert result.worker_ids == [dispatcher.name]
    assert result.attempts == 1
    assert result.enqueued_at <= result.started_at <= result.finished_at
    assert result.last_attempted_at == result.started_at
    assert Job.objects.get(pk=enqueued.id).status == JobStatus.COMPLETED


@run_db
def test_run__refresh_updates_the_enqueued_result():
    enqueued = tasks.add.enqueue(20, 22)

    run_due()
    enqueued.refresh()

    assert enqueued.status == TaskResultStatus.SUCCESSFUL
    assert enqueued.return_value == 42


@run_db
def test_run__an_async_task_succeeds():
    enqueued = tasks.async_double.enqueue(21)

    run_due()

    result = tasks.async_double.get_result(enqueued.id)
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 42


@run_db
def test_run__the_return_value_is_normalised_to_json():
    enqueued = tasks.shape.enqueue()

    run_due()

    result = tasks.shape.get_result(enqueued.id)
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == {"pair": [1, 2], "raw": "bytes", "nothing": None}


@run_db
def test_run__a_return_value_that_is_not_json_fails_the_task():
    enqueued = tasks.unserialisable.enqueue()

    run_due()

    result = tasks.unserialisable.get_result(enqueued.id)
    assert result.status == TaskResultStatus.FAILED
    assert result.errors[0].exception_class_path == "builtins.TypeError"


@run_db
def test_run__a_task_that_raises_fails_with_its_error_and_traceback():
    enqueued = tasks.explode.enqueue("kaboom")

    run_due()

    result = tasks.explode.get_result(enqueued.id)
    assert result.status == TaskResultStatus.FAILED
    assert result.is_finished
    assert len(result.errors) == 1
    error = result.errors[0]
    assert error.exception_class_path == "builtins.ValueError"
    assert error.exception_class is ValueError
    assert "Traceback (most recent call last)" in error.traceback
    assert "ValueError: kaboom" in error.traceback
    assert "in explode" in error.traceback  # the frame of the task's function
    assert result.attempts == 1
    assert result.finished_at is not None
    with pytest.raises(ValueError, match="Task failed"):
        _ = result.return_value
    assert Job.objects.get(pk=enqueued.id).status == JobStatus.FAILED


@pytest.mark.django_db
def test_run__a_task_whose_worker_was_lost_fails_with_an_importable_worker_lost():
    enqueued = tasks.add.enqueue(1, 2)
    now = timezone.now()
    statements_for("default").claim("worker-gone", now, now + timedelta(seconds=1), 10, [],
                                    task_backends=["default"])

    assert statements_for("default").recover(now + timedelta(seconds=2)) == (0, 1)

    result = tasks.add.get_result(enqueued.id)
    assert result.status == TaskResultStatus.FAILED
    [error] = result.errors
    assert error.exception_class is WorkerLost
    assert "lease expired" in error.traceback


@run_db
def test_run__max_retries_option_retries_a_failed_task_before_it_fails(settings):
    settings.TASKS = {"default": {"BACKEND": BACKEND, "OPTIONS": {"MAX_RETRIES": 1}}}
    enqueued = tasks.explode.enqueue("again")
    assert Job.objects.get(pk=enqueued.id).max_retries == 1

    run_due()

    result = tasks.explode.get_result(enqueued.id)
    assert result.status == TaskResultStatus.READY  # waiting for its retry
    assert len(result.errors) == 1
    Job.objects.filter(pk=enqueued.id).update(run_at=timezone.now())  # the retry is due now
    run_due()
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert len(result.errors) == 2
    assert result.attempts == 2


@run_db
def test_run__takes_context_gets_the_result_and_the_attempt():
    enqueued = tasks.attempt_of.enqueue()

    run_due()

    result = tasks.attempt_of.get_result(enqueued.id)
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == {"attempt": 1, "id": enqueued.id}


@run_db
def test_run__a_deferred_task_waits_for_its_run_after():
    enqueued = tasks.add.using(run_after=timezone.now() + timedelta(hours=1)).enqueue(1, 2)

    run_due()

    assert tasks.add.get_result(enqueued.id).status == TaskResultStatus.READY


@run_db
def test_run__higher_priority_runs_first():
    tasks.RECORDED.clear()
    tasks.record.using(priority=-5).enqueue("low")
    tasks.record.enqueue("middle")
    tasks.record.using(priority=50).enqueue("high")

    run_due(workers=1)

    assert tasks.RECORDED == ["high", "middle", "low"]


@run_db
def test_run__signals_fire_with_the_status_of_each_step(received):
    tasks.add.enqueue(1, 2)
    tasks.explode.enqueue("no")

    run_due()

    add, explode = "tests.plugin_apps.toolbox.tasks.add", "tests.plugin_apps.toolbox.tasks.explode"
    assert [e for e in received if e[0] == "enqueued"] == [
        ("enqueued", add, TaskResultStatus.READY), ("enqueued", explode, TaskResultStatus.READY)]
    assert sorted(e for e in received if e[0] == "started") == [
        ("started", add, TaskResultStatus.RUNNING), ("started", explode, TaskResultStatus.RUNNING)]
    assert sorted(e for e in received if e[0] == "finished") == [
        ("finished", add, TaskResultStatus.SUCCESSFUL), ("finished", explode, TaskResultStatus.FAILED)]


@run_db
def test_run__a_retried_task_does_not_send_task_finished(settings, received):
    settings.TASKS = {"default": {"BACKEND": BACKEND, "OPTIONS": {"MAX_RETRIES": 2}}}
    tasks.explode.enqueue("later")

    run_due()

    assert [e[0] for e in received] == ["enqueued", "started"]


@run_db
def test_run__task_finished_carries_the_return_value_and_errors():
    seen = {}

    def receiver(sender, task_result, **kwargs):
        seen[task_result.task.module_path] = task_result

    task_finished.connect(receiver)
    try:
        tasks.add.enqueue(3, 4)
        tasks.explode.enqueue("bad")
        run_due()
    finally:
        task_finished.disconnect(receiver)

    assert seen["tests.plugin_apps.toolbox.tasks.add"].return_value == 7
    assert seen["tests.plugin_apps.toolbox.tasks.add"].finished_at is not None
    failed = seen["tests.plugin_apps.toolbox.tasks.explode"]
    assert [e.exception_class_path for e in failed.errors] == ["builtins.ValueError"]


@run_db
def test_run__a_failing_task_finished_receiver_stops_neither_the_dispatcher_nor_the_other_signals():
    finished = []

    def broken(sender, task_result, **kwargs):
        finished.append(task_result.id)
        raise RuntimeError("receiver broke")

    task_finished.connect(broken)
    try:
        first, second = tasks.add.enqueue(1, 2), tasks.add.enqueue(3, 4)
        run_due()
    finally:
        task_finished.disconnect(broken)

    assert sorted(finished) == sorted([first.id, second.id])
    assert tasks.add.get_result(first.id).status == TaskResultStatus.SUCCESSFUL
    assert tasks.add.get_result(second.id).status == TaskResultStatus.SUCCESSFUL


@run_db
def test_run__a_failing_task_started_receiver_fails_the_attempt():
    def broken(sender, task_result, **kwargs):
        raise RuntimeError("receiver broke")

    task_started.connect(broken)
    try:
        enqueued = tasks.add.enqueue(1, 2)
        run_due()
    finally:
        task_started.disconnect(broken)

    result = tasks.add.get_result(enqueued.id)
    assert result.status == TaskResultStatus.FAILED
    assert result.errors[0].exception_class_path == "builtins.RuntimeError"


@run_db
def test_run__a_dispatcher_limited_to_topics_runs_only_those_tasks():
    wanted = tasks.add.enqueue(1, 2)
    other = tasks.async_double.enqueue(2)

    run_due(topics=[tasks.add.module_path])

    assert tasks.add.get_result(wanted.id).status == TaskResultStatus.SUCCESSFUL
    assert tasks.async_double.get_result(other.id).status == TaskResultStatus.READY


@run_db
def test_run__a_task_of_a_disabled_plugin_waits_until_it_is_enabled():
    from tachycore.manager import plugin_manager

    disable_in_registry("toolbox")
    enqueued = tasks.add.enqueue(1, 2)

    run_due()

    assert tasks.add.get_result(enqueued.id).status == TaskResultStatus.READY
    plugin_manager.enable("toolbox")
    run_due()
    assert tasks.add.get_result(enqueued.id).status == TaskResultStatus.SUCCESSFUL


# -- other processes -----------------------------------------------------------------------


@run_db
def test_get_result__sees_what_runjobs_did_in_another_process(subprocess_env):
    ok = tasks.add.enqueue(5, 6)
    failed = tasks.explode.enqueue("elsewhere")

    process = manage(subprocess_env, "runjobs", "--burst", "--workers", "2")

    assert process.returncode == 0, process.stderr
    result = tasks.add.get_result(ok.id)
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 11
    assert result.attempts == 1
    assert result.started_at is not None and result.finished_at is not None
    error = tasks.explode.get_result(failed.id)
    assert error.status == TaskResultStatus.FAILED
    assert error.errors[0].exception_class_path == "builtins.ValueError"
    assert "ValueError: elsewhere" in error.errors[0].traceback


@run_db
def test_get_result__reads_a_task_enqueued_in_another_process(subprocess_env):
    code = ("from tests.plugin_apps.toolbox.tasks import add; "
            "print(add.using(priority=3).enqueue(8, 9).id)")

    process = manage(subprocess_env, "shell", "-c", code)

    assert process.returncode == 0, process.stderr
    result = tasks.add.get_result(process.stdout.split()[-1])  # after the shell's banner
    assert (result.status, result.args, result.task.priority) == (TaskResultStatus.READY, [8, 9], 3)
    run_due()
    assert tasks.add.get_result(result.id).return_value == 17


# -- configuration -------------------------------------------------------------------------


@pytest.mark.parametrize(("options", "error_id"), [
    ({"MAX_RETRIES": -1}, "jobs.E006"),
    ({"MAX_RETRIES": "3"}, "jobs.E006"),
    ({"MAX_RETRIES": True}, "jobs.E006"),
    ({"RETRIES": 1}, "jobs.E005"),
])
def test_check__bad_options_are_errors_that_name_the_key(settings, options, error_id):
    settings.TASKS = {"default": {"BACKEND": BACKEND, "OPTIONS": options}}

    errors = default_task_backend.check()

    assert [e.id for e in errors] == [error_id]
    assert next(iter(options)) in errors[0].msg


def test_check__good_options_pass(settings):
    settings.TASKS = {"default": {"BACKEND": BACKEND, "OPTIONS": {"MAX_RETRIES": 5}}}

    assert default_task_backend.check() == []
    assert default_task_backend.max_retries == 5


@pytest.mark.django_db  # other apps' checks read the database
def test_check__manage_py_check_reports_bad_options(settings):
    from django.core.management import call_command
    from django.core.management.base import SystemCheckError

    settings.TASKS = {"default": {"BACKEND": BACKEND, "OPTIONS": {"MAX_RETRIES": -1}}}

    with pytest.raises(SystemCheckError, match=r"jobs\.E006"):
        call_command("check")
