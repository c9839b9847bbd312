"""The job store: enqueue (fields, transactions, bulk, dedupe, bad input), get, list,
delete, requeue, stats, prune, and the topic-to-handler map."""

from __future__ import annotations

import math
import threading
from datetime import datetime, timedelta

import pytest
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

import jobs
from jobs import errors
from jobs.handlers import handlers
from jobs.models import Job, JobStatus
from jobs.sql import statements_for
from jobs.store import JobStore
from tachycore.jsontext import MAX_JSON_DEPTH
from tests.helpers.json_values import SURROGATES, nested_list
from tests.plugin_apps.toolbox import tasks

pytestmark = pytest.mark.django_db


@pytest.fixture
def store() -> JobStore:
    return jobs.get_job_store()


def stored(job_id: int) -> Job:
    return Job.objects.get(pk=job_id)


def claim(topic: str = "toolbox.echo", worker: str = "worker-a") -> list[tuple]:
    """Claim every due job of ``topic`` as ``worker`` (a lease of one minute)."""
    now = timezone.now()
    return statements_for("default").claim(worker, now, now + timedelta(minutes=1), 100, [topic])


def finish(job_id: int, status: str, age: timedelta = timedelta(0)) -> None:
    """Mark a job finished ``age`` ago, as a dispatcher would."""
    Job.objects.filter(pk=job_id).update(status=status, finished_at=timezone.now() - age)


# -- enqueue ------------------------------------------------------------------------------

def test_enqueue__stores_every_field(store):
    run_at = timezone.now() + timedelta(hours=1)

    job = store.enqueue("toolbox.echo", {"to": "ann", "n": [1, 2.5, None, True]}, run_at=run_at, priority=7,
                        max_retries=5, dedupe_key="mail:ann")

    row = stored(job.id)
    assert (row.topic, row.payload, row.status) == ("toolbox.echo", {"to": "ann", "n": [1, 2.5, None, True]},
                                                    JobStatus.PENDING)
    assert (row.priority, row.max_retries, row.dedupe_key, row.run_at) == (7, 5, "mail:ann", run_at)
    assert (row.attempts, row.retries, row.last_error, row.errors, row.result) == (0, 0, "", [], None)
    assert (row.locked_by, row.locked_until, row.finished_at) == ("", None, None)
    assert job.id == row.id and job.payload == row.payload and job.run_at == row.run_at


def test_enqueue__defaults(store, settings):
    settings.JOBS = {"MAX_RETRIES": 6}
    before = timezone.now()

    job = store.enqueue("toolbox.echo")

    after = timezone.now()
    row = stored(job.id)
    assert row.payload == {}
    assert row.priority == 0
    assert row.max_retries == 6
    assert row.dedupe_key is None
    assert before <= row.run_at <= after
    assert before <= row.created <= after


def test_enqueue__delay_runs_later(store):
    before = timezone.now()

    in_seconds = store.enqueue("toolbox.echo", delay=90)
    in_timedelta = store.enqueue("toolbox.echo", delay=timedelta(hours=2))

    after = timezone.now()
    assert before + timedelta(seconds=90) <= stored(in_seconds.id).run_at <= after + timedelta(seconds=90)
    assert before + timedelta(hours=2) <= stored(in_timedelta.id).run_at <= after + timedelta(hours=2)


def test_enqueue__rolled_back_with_the_callers_transaction(store):
    with pytest.raises(RuntimeError), transaction.atomic():
        job = store.enqueue("toolbox.echo", {"n": 1})
        assert Job.objects.filter(pk=job.id).exists()
        raise RuntimeError("the caller's work failed")

    assert not Job.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_enqueue__invisible_to_other_connections_until_commit(store):
    seen = {}

    def look(when: str, job_id: int) -> None:
        try:
            seen[when] = Job.objects.filter(pk=job_id).exists()
        finally:
            connections.close_all()

    with transaction.atomic():
        job = store.enqueue("toolbox.echo")
        reader = threading.Thread(target=look, args=("before commit", job.id))
        reader.start()
        reader.join()
    reader = threading.Thread(target=look, args=("after commit", job.id))
    reader.start()
    reader.join()

    assert seen == {"before commit": False, "after commit": True}


def test_enqueue_many__inserts_all_in_one_statement(store):
    items = [{"topic": "toolbox.echo", "payload": {"n": n}, "priority": n % 3} for n in range(50)]

    with CaptureQueriesContext(connection) as queries:
        created = store.enqueue_many(items)

    inserts = [q["sql"] for q in queries.captured_queries if 'INSERT INTO "_jobs"' in q["sql"]]
    assert len(inserts) == 1
    assert [job.payload for job in created] == [{"n": n} for n in range(50)]
    assert len({job.id for job in created}) == 50
    rows = {row.id: row for row in Job.objects.all()}
    assert {(rows[job.id].payload["n"], rows[job.id].priority) for job in created} == {
        (n, n % 3) for n in range(50)}


def test_enqueue_many__nothing_for_nothing(store):
    assert store.enqueue_many([]) == []
    assert not Job.objects.exists()


@pytest.mark.parametrize("bad", [
    {"topic": "no.such.topic"},
    {"topic": "toolbox.echo", "payload": {"when": datetime(2020, 1, 1)}},
    {"topic": "toolbox.echo", "priority": 101},
    {"topic": "toolbox.echo", "delay": -1},
])
def test_enqueue_many__one_bad_item_writes_nothing(store, bad):
    items = [{"topic": "toolbox.echo", "payload": {"n": 1}}, bad, {"topic": "toolbox.echo", "payload": {"n": 3}}]

    with pytest.raises(errors.JobsError):
        store.enqueue_many(items)

    assert not Job.objects.exists()


def test_enqueue__dedupe_key_returns_the_pending_job(store):
    first = store.enqueue("toolbox.echo", {"n": 1}, dedupe_key="report:42")

    again = store.enqueue("toolbox.echo", {"n": 2}, dedupe_key="report:42")

    assert again.id == first.id
    assert again.payload == {"n": 1}
    assert Job.objects.count() == 1


def test_enqueue__dedupe_key_in_one_bulk_call_keeps_one_job(store):
    created = store.enqueue_many([{"topic": "toolbox.echo", "payload": {"n": n}, "dedupe_key": "same"}
                                  for n in range(3)])

    assert len({job.id for job in created}) == 1
    assert Job.objects.count() == 1


def test_enqueue__dedupe_key_other_keys_are_separate_jobs(store):
    a = store.enqueue("toolbox.echo", dedupe_key="a")
    b = store.enqueue("toolbox.echo", dedupe_key="b")
    plain = [store.enqueue("toolbox.echo"), store.enqueue("toolbox.echo")]

    assert len({a.id, b.id, *(job.id for job in plain)}) == 4
    assert Job.objects.count() == 4


@pytest.mark.parametrize("status", [JobStatus.PROCESSING, JobStatus.COMPLETED, JobStatus.FAILED])
def test_enqueue__dedupe_key_new_job_once_the_old_is_not_pending(store, status):
    old = store.enqueue("toolbox.echo", {"n": 1}, dedupe_key="report:42")
    if status == JobStatus.PROCESSING:
        assert len(claim()) == 1
    else:
        finish(old.id, status)

    new = store.enqueue("toolbox.echo", {"n": 2}, dedupe_key="report:42")

    assert new.id != old.id
    assert stored(new.id).status == JobStatus.PENDING
    assert stored(new.id).payload == {"n": 2}
    assert stored(old.id).status == status
    assert store.enqueue("toolbox.echo", {"n": 3}, dedupe_key="report:42").id == new.id


# -- bad input ----------------------------------------------------------------------------

@pytest.mark.parametrize(("kwargs", "error", "names"), [
    ({"topic": "no.such.topic"}, errors.UnknownTopic, "no.such.topic"),
    ({"topic": ""}, errors.InvalidTopic, "topic"),
    ({"topic": 42}, errors.InvalidTopic, "topic"),
    ({"topic": "t" * 256}, errors.InvalidTopic, "topic"),
    ({"payload": {"when": datetime(2020, 1, 1)}}, errors.InvalidPayload, "JSON"),
    ({"payload": {1, 2}}, errors.InvalidPayload, "JSON"),
    ({"payload": {"x": math.nan}}, errors.InvalidPayload, "JSON"),
    ({"payload": [math.inf]}, errors.InvalidPayload, "JSON"),
    ({"delay": -1}, errors.InvalidSchedule, "negative"),
    ({"delay": timedelta(seconds=-5)}, errors.InvalidSchedule, "negative"),
    ({"delay": math.nan}, errors.InvalidSchedule, "delay"),
    ({"delay": "soon"}, errors.InvalidSchedule, "delay"),
    ({"delay": 5, "run_at": timezone.now()}, errors.InvalidSchedule, "run_at or delay"),
    ({"run_at": datetime(2030, 1, 1)}, errors.InvalidSchedule, "aware"),
    ({"run_at": "2030-01-01T00:00:00Z"}, errors.InvalidSchedule, "run_at"),
    ({"priority": 101}, errors.InvalidPriority, "101"),
    ({"priority": -101}, errors.InvalidPriority, "-101"),
    ({"priority": True}, errors.InvalidPriority, "True"),
    ({"priority": 1.5}, errors.InvalidPriority, "1.5"),
    ({"priority": "5"}, errors.InvalidPriority, "priority"),
    ({"max_retries": -1}, errors.InvalidOption, "max_retries"),
    ({"max_retries": 2.0}, errors.InvalidOption, "max_retries"),
    ({"max_retries": True}, errors.InvalidOption, "max_retries"),
    ({"dedupe_key": ""}, errors.InvalidOption, "dedupe_key"),
    ({"dedupe_key": 42}, errors.InvalidOption, "dedupe_key"),
    ({"dedupe_key": "k" * 256}, errors.InvalidOption, "dedupe_key"),
])
def test_enqueue__bad_input_raises_and_writes_nothing(store, kwargs, error, names):
    kwargs = {"topic": "toolbox.echo", **kwargs}

    with pytest.raises(error) as raised:
        store.enqueue(**kwargs)

    assert names in str(raised.value)
    assert isinstance(raised.value, errors.JobsError)
    assert not Job.objects.exists()


def test_enqueue__priority_bounds_are_accepted(store):
    low = store.enqueue("toolbox.echo", priority=-100)
    high = store.enqueue("toolbox.echo", priority=100)

    assert (stored(low.id).priority, stored(high.id).priority) == (-100, 100)


def test_enqueue__payload_over_max_payload_size(store, settings):
    settings.JOBS = {"MAX_PAYLOAD_SIZE": 100}
    # {"x":"..."} is 8 bytes of JSON around the string
    fits = {"x": "a" * 92}

    job = store.enqueue("toolbox.echo", fits)
    with pytest.raises(errors.PayloadTooLarge) as raised:
        store.enqueue("toolbox.echo", {"x": "a" * 93})

    assert "101 bytes" in str(raised.value) and "MAX_PAYLOAD_SIZE" in str(raised.value)
    assert list(Job.objects.values_list("id", flat=True)) == [job.id]


def test_enqueue__allowed_topics_patterns_allow_a_topic_without_handler(store, settings):
    settings.JOBS = {"ALLOWED_TOPICS": ["reports.*", "mail.send"]}

    daily = store.enqueue("reports.daily", {"day": "2024-05-01"})
    mail = store.enqueue("mail.send")
    echo = store.enqueue("toolbox.echo")  # a topic with a handler is still allowed
    with pytest.raises(errors.UnknownTopic, match="mail.receive"):
        store.enqueue("mail.receive")

    assert set(Job.objects.values_list("topic", flat=True)) == {"reports.daily", "mail.send", "toolbox.echo"}
    assert {daily.id, mail.id, echo.id} == set(Job.objects.values_list("id", flat=True))


def test_enqueue__unknown_topic_names_the_way_out(store):
    with pytest.raises(errors.UnknownTopic) as raised:
        store.enqueue("reports.daily")

    assert "reports.daily" in str(raised.value)
    assert "ALLOWED_TOPICS" in str(raised.value)


# -- bad input: lone surrogates, deep nesting, "\u0000" written out --------------------------

@pytest.mark.parametrize("payload", SURROGATES.values(), ids=SURROGATES.keys())
def test_enqueue__a_lone_surrogate_in_the_payload_is_invalid_and_the_list_still_reads(store, payload):
    kept = store.enqueue("toolbox.echo", {"kept": True})

    with pytest.raises(errors.InvalidPayload, match=r"'toolbox.echo'.*lone surrogate"):
        store.enqueue("toolbox.echo", payload)
    with pytest.raises(errors.InvalidPayload, match="lone surrogate"):
        store.enqueue_many([{"topic": "toolbox.echo"}, {"topic": "toolbox.echo", "payload": payload}])

    assert [job.id for job in store.list()] == [kept.id]
    assert stored(kept.id).payload == {"kept": True}


def test_enqueue__a_surrogate_pair_written_as_one_character_is_stored(store):
    job = store.enqueue("toolbox.echo", {"\U0001f600": "\U0001f600"})

    assert stored(job.id).payload == {"\U0001f600": "\U0001f600"}


@pytest.mark.parametrize("kwargs, error", [
    ({"topic": "toolbox.\ud800"}, errors.InvalidTopic),
    ({"topic": "toolbox.echo", "dedupe_key": "a\udc00"}, errors.InvalidOption),
    ({"topic": "toolbox.echo", "queue_name": "\ud800"}, errors.InvalidOption),
], ids=["topic", "dedupe_key", "queue_name"])
def test_enqueue__a_lone_surrogate_in_a_name_is_refused(store, settings, kwargs, error):
    settings.JOBS = {"ALLOWED_TOPICS": ["*"]}  # the topic check, not the missing handler

    with pytest.raises(error, match="lone surrogate"):
        store.enqueue(**kwargs)

    assert not Job.objects.exists()


def test_enqueue__a_payload_at_max_json_depth_is_stored(store):
    job = store.enqueue("toolbox.echo", nested_list(MAX_JSON_DEPTH))

    assert stored(job.id).payload == nested_list(MAX_JSON_DEPTH)


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 1_000, 100_000])
def test_enqueue__a_payload_deeper_than_max_json_depth_is_invalid(store, depth):
    with pytest.raises(errors.InvalidPayload, match=rf"'toolbox.echo'.*nested too deeply.*{MAX_JSON_DEPTH}"):
        store.enqueue("toolbox.echo", nested_list(depth))
    with pytest.raises(errors.InvalidPayload, match="nested too deeply"):
        store.enqueue_many([{"topic": "toolbox.echo"}, {"topic": "toolbox.echo", "payload": nested_list(depth)}])

    assert not Job.objects.exists()


def test_enqueue__brackets_inside_strings_do_not_count_as_nesting(store):
    payload = {"text": "[" * 500, "keys": {"{" * 200: "]]"}}

    assert stored(store.enqueue("toolbox.echo", payload).id).payload == payload


@pytest.mark.parametrize("topic", ["remote.\\u0000", "remote.a\\u0000b"], ids=repr)
def test_enqueue__a_topic_with_backslash_u0000_written_out_is_a_plain_topic(store, settings, topic):
    settings.JOBS = {"ALLOWED_TOPICS": ["remote.*"]}

    job = store.enqueue(topic, {"\\u0000": "\\u0000"}, dedupe_key="\\u0000", queue_name="\\u0000")

    row = stored(job.id)
    assert (row.topic, row.payload, row.dedupe_key, row.queue_name) == (
        topic, {"\\u0000": "\\u0000"}, "\\u0000", "\\u0000")
    assert [found.id for found in store.list(topic=topic)] == [job.id]


def test_tasks__a_lone_surrogate_in_a_tasks_arguments_is_invalid(store):
    with pytest.raises(errors.InvalidPayload, match="lone surrogate"):
        tasks.record.enqueue("\ud800")
    with pytest.raises(errors.InvalidPayload, match="nested too deeply"):
        tasks.record.enqueue(nested_list(MAX_JSON_DEPTH))  # {"args": [...]} adds two levels

    assert not Job.objects.exists()


# -- get, list, delete, requeue, stats ----------------------------------------------------

def test_get__returns_the_stored_job(store):
    job = store.enqueue("toolbox.echo", {"n": 1})

    found = store.get(job.id)

    assert (found.id, found.topic, found.payload, found.status) == (job.id, "toolbox.echo", {"n": 1}, "pending")


@pytest.mark.parametrize("job_id", [987654, "abc", None])
def test_get__unknown_id_is_job_not_found(store, job_id):
    with pytest.raises(errors.JobNotFound, match="no job"):
        store.get(job_id)


def test_list__newest_first_filtered_and_paged(store):
    a = store.enqueue("toolbox.echo")
    b = store.enqueue("toolbox.fail")
    c = store.enqueue("toolbox.echo")
    d = store.enqueue("toolbox.echo")
    finish(c.id, JobStatus.COMPLETED)

    assert [job.id for job in store.list()] == [d.id, c.id, b.id, a.id]
    assert [job.id for job in store.list(topic="toolbox.echo")] == [d.id, c.id, a.id]
    assert [job.id for job in store.list(status="pending")] == [d.id, b.id, a.id]
    assert [job.id for job in store.list(status="pending", topic="toolbox.echo")] == [d.id, a.id]
    assert [job.id for job in store.list(limit=2, offset=1)] == [c.id, b.id]
    assert store.list(status="failed") == []


@pytest.mark.parametrize("status", [JobStatus.PENDING, JobStatus.COMPLETED, JobStatus.FAILED])
def test_delete__removes_a_job_that_is_not_running(store, status):
    job = store.enqueue("toolbox.echo")
    other = store.enqueue("toolbox.echo")
    if status != JobStatus.PENDING:
        finish(job.id, status)

    store.delete(job.id)

    assert list(Job.objects.values_list("id", flat=True)) == [other.id]


def test_delete__processing_job_is_job_running_and_unchanged(store):
    job = store.enqueue("toolbox.echo", {"n": 1})
    claim(worker="worker-a")
    before = stored(job.id)

    with pytest.raises(errors.JobRunning) as raised:
        store.delete(job.id)

    assert str(job.id) in str(raised.value) and "worker-a" in str(raised.value)
    after = stored(job.id)
    assert (after.status, after.locked_by, after.locked_until, after.updated) == (
        "processing", "worker-a", before.locked_until, before.updated)


@pytest.mark.parametrize("job_id", [987654, "abc"])
def test_delete__unknown_id_is_job_not_found(store, job_id):
    store.enqueue("toolbox.echo")

    with pytest.raises(errors.JobNotFound):
        store.delete(job_id)

    assert Job.objects.count() == 1


def test_requeue__a_failed_job_is_pending_and_due_again_with_its_history(store):
    job = store.enqueue("toolbox.echo", run_at=timezone.now() - timedelta(hours=1))
    Job.objects.filter(pk=job.id).update(
        status=JobStatus.FAILED, attempts=4, retries=3, last_error="boom", result=None,
        errors=[{"exception_class_path": "builtins.RuntimeError", "traceback": "boom", "at": "x"}],
        finished_at=timezone.now(), locked_by="worker-a")
    before = timezone.now()

    returned = store.requeue(job.id)

    row = stored(job.id)
    assert returned.id == job.id and returned.status == JobStatus.PENDING
    assert (row.status, row.attempts, row.finished_at, row.locked_by, row.locked_until) == (
        "pending", 0, None, "", None)
    assert before <= row.run_at <= timezone.now()
    assert row.last_error == "boom"
    assert len(row.errors) == 1


def test_requeue__at_a_given_time(store):
    job = store.enqueue("toolbox.echo")
    finish(job.id, JobStatus.COMPLETED)
    later = timezone.now() + timedelta(days=1)

    store.requeue(job.id, run_at=later)

    row = stored(job.id)
    assert (row.status, row.run_at, row.result) == ("pending", later, None)


def test_requeue__processing_job_is_job_running_and_unchanged(store):
    job = store.enqueue("toolbox.echo")
    claim(worker="worker-a")
    before = stored(job.id)

    with pytest.raises(errors.JobRunning):
        store.requeue(job.id)

    after = stored(job.id)
    assert (after.status, after.attempts, after.locked_by, after.run_at, after.updated) == (
        "processing", 1, "worker-a", before.run_at, before.updated)


@pytest.mark.parametrize("job_id", [987654, "abc"])
def test_requeue__unknown_id_is_job_not_found(store, job_id):
    with pytest.raises(errors.JobNotFound):
        store.requeue(job_id)


def test_requeue__dedupe_key_held_by_a_pending_job_is_a_jobs_error(store):
    now = timezone.now()
    rows = {status: Job.objects.create(topic="toolbox.echo", status=status, dedupe_key="report:42", run_at=now,
                                       created=now, updated=now)
            for status in (JobStatus.FAILED, JobStatus.PENDING)}

    with pytest.raises(errors.JobsError, match="report:42"), transaction.atomic():
        store.requeue(rows[JobStatus.FAILED].id)

    assert stored(rows[JobStatus.FAILED].id).status == JobStatus.FAILED
    assert stored(rows[JobStatus.PENDING].id).status == JobStatus.PENDING


def test_stats__counts_by_status_and_topic_and_lateness(store):
    now = timezone.now()
    store.enqueue("toolbox.echo", run_at=now - timedelta(seconds=120))
    store.enqueue("toolbox.echo", run_at=now - timedelta(seconds=10))
    store.enqueue("toolbox.echo", delay=3600)  # pending, not due
    done = store.enqueue("toolbox.fail")
    finish(done.id, JobStatus.FAILED)
    running = store.enqueue("toolbox.record")
    claim("toolbox.record")

    stats = store.stats()

    assert stats.by_status == {"pending": 3, "processing": 1, "completed": 0, "failed": 1}
    assert stats.by_topic == {"toolbox.echo": {"pending": 3}, "toolbox.fail": {"failed": 1},
                              "toolbox.record": {"processing": 1}}
    assert stats.due == 2
    assert 120 <= stats.oldest_due_age < 180
    assert stats.to_json()["due"] == 2
    assert stored(running.id).status == "processing"


def test_stats__beyond_the_bound_estimates_finished_jobs_and_still_counts_the_others(store, monkeypatch):
    monkeypatch.setattr("jobs.store.EXACT_FINISHED", 5)
    monkeypatch.setattr("jobs.store.FINISHED_SAMPLE", 4)
    now = timezone.now()
    store.enqueue("toolbox.echo", run_at=now - timedelta(seconds=60))
    store.enqueue("toolbox.echo", delay=3600)
    claim(store.enqueue("toolbox.record").topic)
    # ten finished: the oldest six completed echoes, the last four two completed, two failed
    for n, (topic, status) in enumerate([("toolbox.echo", JobStatus.COMPLETED)] * 6
                                        + [("toolbox.echo", JobStatus.COMPLETED), ("toolbox.fail", JobStatus.FAILED)] * 2):
        finish(store.enqueue(topic).id, status, age=timedelta(minutes=10 - n))
    with connection.cursor() as cursor:  # the statistics the estimate reads, as autovacuum or the prune leave them
        cursor.execute('ANALYZE "_jobs"')

    stats = store.stats()

    assert stats.finished_estimated
    # counted: pending, processing, due
    assert (stats.by_status["pending"], stats.by_status["processing"], stats.due) == (2, 1, 1)
    assert stats.by_topic["toolbox.record"] == {"processing": 1}
    # estimated: the ten finished jobs shared out as the last four finished
    assert (stats.by_status["completed"], stats.by_status["failed"]) == (5, 5)
    assert stats.by_topic["toolbox.fail"] == {"failed": 5}
    assert stats.to_json()["finished_estimated"] is True


def test_stats__empty_queue(store):
    stats = store.stats()

    assert stats.by_status == {"pending": 0, "processing": 0, "completed": 0, "failed": 0}
    assert (stats.by_topic, stats.due, stats.oldest_due_age) == ({}, 0, 0.0)


# -- prune --------------------------------------------------------------------------------

def test_prune__deletes_old_finished_jobs_only(store):
    old_done = store.enqueue("toolbox.echo")
    old_failed = store.enqueue("toolbox.echo")
    recent_done = store.enqueue("toolbox.echo")
    old_pending = store.enqueue("toolbox.echo", run_at=timezone.now() - timedelta(days=30))
    old_running = store.enqueue("toolbox.record", run_at=timezone.now() - timedelta(days=30))
    finish(old_done.id, JobStatus.COMPLETED, age=timedelta(hours=2))
    finish(old_failed.id, JobStatus.FAILED, age=timedelta(hours=2))
    finish(recent_done.id, JobStatus.COMPLETED, age=timedelta(minutes=10))
    claim("toolbox.record")

    pruned = store.prune(older_than=3600)

    assert pruned == 2
    assert set(Job.objects.values_list("id", flat=True)) == {recent_done.id, old_pending.id, old_running.id}


def test_prune__uses_retention_and_batches(store, settings):
    settings.JOBS = {"RETENTION": "1d"}
    created = store.enqueue_many([{"topic": "toolbox.echo"} for _ in range(7)])
    for job in created[:5]:
        finish(job.id, JobStatus.COMPLETED, age=timedelta(days=2))
    for job in created[5:]:
        finish(job.id, JobStatus.COMPLETED, age=timedelta(hours=23))

    pruned = store.prune(batch_size=2)

    assert pruned == 5
    assert set(Job.objects.values_list("id", flat=True)) == {job.id for job in created[5:]}


# -- handlers -----------------------------------------------------------------------------

def test_handlers__autodiscovered_from_each_apps_jobs_module():
    from tests.plugin_apps.toolbox import jobs as toolbox_jobs

    entry = handlers.get("toolbox.echo")

    assert entry is not None
    assert entry.func is toolbox_jobs.echo
    assert entry.app_label == "toolbox"
    assert {"toolbox.echo", "toolbox.fail", "toolbox.flaky"} <= set(handlers.topics())


def test_handlers__a_second_function_for_a_topic_is_refused():
    from tests.plugin_apps.toolbox import jobs as toolbox_jobs

    def another_echo(job):
        return None

    with pytest.raises(errors.HandlerAlreadyRegistered, match="toolbox.echo"):
        jobs.handler("toolbox.echo")(another_echo)

    assert handlers.get("toolbox.echo").func is toolbox_jobs.echo


def test_handlers__registering_the_same_function_again_is_harmless():
    from tests.plugin_apps.toolbox import jobs as toolbox_jobs

    jobs.handler("toolbox.echo")(toolbox_jobs.echo)

    assert handlers.get("toolbox.echo").func is toolbox_jobs.echo


def test_handlers__a_new_topic_can_be_enqueued_once_registered(store):
    def shout(job):
        return job.payload["text"].upper()

    with pytest.raises(errors.UnknownTopic):
        store.enqueue("tests.shout", {"text": "hi"})
    jobs.handler("tests.shout")(shout)
    try:
        job = store.enqueue("tests.shout", {"text": "hi"})
    finally:
        handlers.unregister("tests.shout")

    assert stored(job.id).topic == "tests.shout"
    assert handlers.get("tests.shout") is None


def test_get_job_store__none_without_the_app(settings):
    settings.INSTALLED_APPS = [app for app in settings.INSTALLED_APPS if app != "jobs"]

    assert jobs.get_job_store() is None
