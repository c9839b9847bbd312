"""The job queue's queries read the partial indexes of ``_jobs`` on SQLite.

SQLite uses a partial index only when it can prove the index's condition from the
query's WHERE clause, with the status values written in the SQL (``status IN (%s, %s)``
with bound values proves nothing), and only when the table has statistics (without them
it takes the index of ``(status, topic)`` for any query by status). Each test runs one
query of the queue as the code sends it, on a table of a few thousand jobs shaped like a
queue that has run for a while (most jobs finished, a few pending and processing) and
analyzed as the prune leaves it, and asks SQLite for its plan: the intended index by
name, and no scan of the table.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from django.db import connection
from django.utils import timezone

import jobs
from jobs.gating import held_by_plugin
from jobs.models import FINISHED, Job, JobStatus, StatusLiteral
from jobs.sql import statements_for
from plugins_admin.charts import finished_per_minute

pytestmark = pytest.mark.django_db

sqlite_only = pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's query plans")

ROWS = 3000
TOPICS = [f"plans.topic{n}" for n in range(22)]
WORKER = "plans-worker"
#: between two jobs' ages: ROWS of them span ten days
SPACING = timedelta(minutes=5)


def fill() -> datetime:
    """``ROWS`` jobs: 93% completed and 5% failed over the last ten days (one every five
    minutes), 1% pending (half of them due), 1% processing (half of their leases lapsed).
    Return the time they were written."""
    now = timezone.now()
    rows = []
    for n in range(ROWS):
        kind = n % 100
        status = (JobStatus.COMPLETED if kind < 93 else JobStatus.FAILED if kind < 98
                  else JobStatus.PENDING if kind < 99 else JobStatus.PROCESSING)
        age = SPACING * n
        early = (n // 100) % 2 == 0  # every other hundred: a pending job due, a lease lapsed
        rows.append(Job(
            topic=TOPICS[n % len(TOPICS)], status=status, created=now - age, updated=now - age,
            run_at=now - age if early else now + timedelta(hours=1),
            finished_at=now - age if status in FINISHED else None,
            locked_by=WORKER if status == JobStatus.PROCESSING else "",
            locked_until=now + timedelta(seconds=-60 if early else 60) if status == JobStatus.PROCESSING else None,
        ))
    Job.objects.bulk_create(rows, batch_size=500)
    return now


@pytest.fixture
def queue() -> datetime:
    """The jobs of ``fill()``, and statistics of them (``ANALYZE``), as the prune leaves them."""
    now = fill()
    with connection.cursor() as cursor:
        cursor.execute('ANALYZE "_jobs"')
    return now


@pytest.fixture
def queue_without_statistics() -> datetime:
    """The jobs of ``fill()`` in a database without statistics, as SQLite starts
    (the test's transaction brings back what another test left)."""
    now = fill()
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS sqlite_stat1")
    return now


@contextlib.contextmanager
def statements() -> Iterator[list[tuple[str, tuple]]]:
    """The statements sent meanwhile on the default connection, as ``(sql, params)``."""
    seen: list[tuple[str, tuple]] = []

    def record(execute, sql, params, many, context):
        seen.append((sql, params))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        yield seen


def on_jobs(seen: list[tuple[str, tuple]], verb: str) -> list[tuple[str, tuple]]:
    """The statements among ``seen`` that start with ``verb`` and read ``_jobs``."""
    found = [(sql, params) for sql, params in seen
             if sql.lstrip().upper().startswith(verb) and '"_jobs"' in sql]
    assert found, f"no {verb} of _jobs among {[sql[:60] for sql, _ in seen]}"
    return found


def plan(sql: str, params: tuple) -> list[str]:
    """SQLite's plan for ``sql`` with its parameters bound (as the statement ran)."""
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN QUERY PLAN " + sql, params)
        return [row[3] for row in cursor.fetchall()]


def assert_reads(steps: list[str], index: str) -> None:
    """The plan reads ``_jobs`` through ``index`` (a pattern) and never walks the whole table."""
    assert any(re.search(rf"USING (?:COVERING )?INDEX (?:{index})(?: |$)", step) for step in steps), steps
    assert not [step for step in steps if re.match(r"SCAN (_jobs|other)\b", step) and "INDEX" not in step], steps


def assert_reads_only(steps: list[str], index: str) -> None:
    """Every read of ``_jobs`` in the plan goes through ``index`` or the primary key."""
    reads = [step for step in steps if re.match(r"(SCAN|SEARCH) (_jobs|j|next_key)\b", step)]
    assert reads, steps
    assert all(re.search(rf"USING (?:COVERING )?INDEX {index}\b|USING INTEGER PRIMARY KEY", step)
               for step in reads), "\n".join(steps)


@sqlite_only
@pytest.mark.parametrize(("topics", "task_backends", "blocked"), [
    pytest.param(TOPICS, (), (), id="every topic"),
    pytest.param(TOPICS[:1], (), (), id="one topic (runjobs --topics)"),
    pytest.param(TOPICS[:3], ("default",), ("plans.topic1",), id="handlers and tasks, a plugin blocked"),
])
def test_claim__takes_due_jobs_from_the_pending_index(queue, topics, task_backends, blocked):
    with statements() as seen:
        claimed = statements_for("default").claim(WORKER, queue, queue + timedelta(minutes=1), 20, topics,
                                                  task_backends, blocked)

    (claim,) = on_jobs(seen, "UPDATE")
    steps = plan(*claim)
    # the topics of the pending jobs one index probe each, then each kept topic's first due jobs
    assert_reads_only(steps, "jobs_pending_topic")
    assert any("(task_backend=? AND topic>?)" in step for step in steps), steps
    assert any("(task_backend=? AND topic=?)" in step for step in steps), steps
    claimed_topics = {row[1] for row in claimed}
    assert claimed_topics and claimed_topics <= set(topics)
    assert not [topic for topic in claimed_topics if topic.startswith(blocked)]


@sqlite_only
def test_idle_poll__reads_only_the_pending_index(queue):
    Job.objects.due(queue).filter(topic=TOPICS[0]).update(run_at=queue + timedelta(hours=2))
    with statements() as seen:
        claimed = statements_for("default").claim(WORKER, queue, queue + timedelta(minutes=1), 20, TOPICS[:1])

    (poll,) = on_jobs(seen, "UPDATE")
    assert_reads_only(plan(*poll), "jobs_pending_topic")
    assert claimed == []


#: an index that holds only pending jobs, or the pending ones of the index of (status, topic)
PENDING_ONLY = r"jobs_pending_topic|jobs_status_topic \(status=\?\)"


@sqlite_only
def test_stats__counts_due_jobs_from_the_pending_index(queue):
    with statements() as seen:
        stats = jobs.get_job_store().stats()

    (due,) = [s for s in on_jobs(seen, "SELECT") if "run_at" in s[0]]
    assert_reads(plan(*due), PENDING_ONLY)
    assert stats.due == ROWS // 100 // 2


@sqlite_only
def test_stats__counts_by_status_and_topic_from_an_index_alone(queue, monkeypatch):
    monkeypatch.setattr("jobs.store.EXACT_FINISHED", ROWS)  # every finished job counted
    with statements() as seen:
        stats = jobs.get_job_store().stats()

    grouped = [s for s in on_jobs(seen, "SELECT") if "GROUP BY" in s[0]]
    # the unfinished jobs, then the finished ones (up to a bound), each from the index of
    # (status, topic): no row of the table is read
    assert len(grouped) == 2
    for statement in grouped:
        assert_reads(plan(*statement), "jobs_status_topic")
        assert "COVERING INDEX" in " ".join(plan(*statement))
    assert sum(stats.by_status.values()) == ROWS
    assert not stats.finished_estimated


@sqlite_only
def test_stats__shares_out_an_estimate_of_many_finished_jobs_from_the_age_index(queue, monkeypatch):
    monkeypatch.setattr("jobs.store.EXACT_FINISHED", 100)
    monkeypatch.setattr("jobs.store.FINISHED_SAMPLE", 50)
    with statements() as seen:
        stats = jobs.get_job_store().stats()

    (sample,) = [s for s in on_jobs(seen, "SELECT") if "ORDER BY" in s[0]]
    assert_reads(plan(*sample), "jobs_finished_age")
    assert stats.finished_estimated
    # the estimate is the count of the last ANALYZE (the fixture's): every finished job
    finished = stats.by_status[JobStatus.COMPLETED] + stats.by_status[JobStatus.FAILED]
    assert abs(finished - ROWS * 98 // 100) <= len(TOPICS) * 2  # rounding, per topic and status


@sqlite_only
def test_stats_due__counts_from_the_pending_index(queue):
    with statements() as seen:
        due = jobs.get_job_store().stats_due()

    (count,) = on_jobs(seen, "SELECT")
    assert_reads(plan(*count), PENDING_ONLY)
    assert due == ROWS // 100 // 2


@sqlite_only
def test_held_by_plugin__counts_from_the_pending_index(queue):
    jobs.get_job_store().enqueue_many([{"topic": "notes.word_count", "payload": {"note": n}} for n in range(3)])
    with statements() as seen:
        held = held_by_plugin()

    (count,) = on_jobs(seen, "SELECT")
    assert_reads(plan(*count), "jobs_pending_topic")
    assert [(h.plugin, h.count) for h in held] == [("notes", 3)]


@sqlite_only
def test_lease_renewal__reads_only_processing_jobs(queue):
    with statements() as seen:
        renewed = statements_for("default").extend(WORKER, queue, queue + timedelta(minutes=1))

    (renewal,) = on_jobs(seen, "UPDATE")
    # no index holds processing jobs by worker: either index of the processing jobs will do
    assert_reads(plan(*renewal), r"jobs_processing_lease|jobs_status_topic \(status=\?\)")
    assert len(renewed) == ROWS // 100


@sqlite_only
def test_recovery__finds_lapsed_leases_in_the_lease_index(queue):
    with statements() as seen:
        requeued, failed = statements_for("default").recover(queue)

    (recovery,) = on_jobs(seen, "UPDATE")
    assert_reads(plan(*recovery), "jobs_processing_lease")
    assert requeued + failed == ROWS // 100 // 2


@sqlite_only
def test_prune__finds_old_finished_jobs_in_the_age_index(queue):
    nine_days = timedelta(days=9)
    old = Job.objects.filter(status__in=FINISHED, finished_at__lte=queue - nine_days).count()
    with statements() as seen:
        pruned = jobs.get_job_store().prune(older_than=nine_days.total_seconds(), batch_size=100)

    batches = on_jobs(seen, "SELECT")
    assert len(batches) > 2
    for batch in batches:
        assert_reads(plan(*batch), "jobs_finished_age")
    for delete in on_jobs(seen, "DELETE"):
        assert any("USING INTEGER PRIMARY KEY" in step for step in plan(*delete)), plan(*delete)
    assert pruned == old > 200


@sqlite_only
def test_prune__gives_sqlite_the_statistics_it_needs_to_choose_the_age_index(queue_without_statistics):
    old = Job.objects.finished().filter(finished_at__lt=queue_without_statistics - timedelta(days=9))
    # without statistics, SQLite takes the index of (status, topic) and reads every finished job
    assert "jobs_finished_age" not in " ".join(plan(*old.query.sql_with_params()))
    with statements() as seen:
        pruned = jobs.get_job_store().prune(older_than=timedelta(days=9).total_seconds(), batch_size=100)

    for batch in on_jobs(seen, "SELECT"):
        assert_reads(plan(*batch), "jobs_finished_age")
    assert pruned > 200


@sqlite_only
def test_dashboard_chart__counts_the_last_hour_from_the_age_index(queue):
    with statements() as seen:
        minutes = finished_per_minute(queue)

    (chart,) = on_jobs(seen, "SELECT")
    assert_reads(plan(*chart), "jobs_finished_age")
    assert sum(m.completed + m.failed for m in minutes) == 12  # one job every five minutes


@sqlite_only
def test_enqueue__finds_the_pending_job_holding_a_dedupe_key_in_its_index(queue):
    store = jobs.get_job_store()
    first = store.enqueue("toolbox.echo", dedupe_key="plans-key")
    with statements() as seen:
        again = store.enqueue("toolbox.echo", dedupe_key="plans-key")

    (lookup,) = on_jobs(seen, "SELECT")
    assert_reads(plan(*lookup), "jobs_pending_dedupe")
    assert (again.id, again.deduplicated) == (first.id, True)


@sqlite_only
def test_requeue__finds_the_pending_job_holding_its_dedupe_key_in_its_index(queue):
    store = jobs.get_job_store()
    done = Job.objects.filter(status=JobStatus.COMPLETED).first()
    Job.objects.filter(pk=done.pk).update(dedupe_key="plans-key")
    holder = store.enqueue("toolbox.echo", dedupe_key="plans-key")
    with statements() as seen, pytest.raises(jobs.errors.DedupeConflict, match=f"pending job {holder.id}"):
        store.requeue(done.pk)

    (lookup,) = [s for s in on_jobs(seen, "SELECT") if "dedupe_key" in s[0].split("WHERE")[-1]]
    assert_reads(plan(*lookup), "jobs_pending_dedupe")


@pytest.mark.parametrize("value", ["pending", JobStatus.FAILED])
def test_status_literal__writes_a_job_status_into_the_sql(value):
    assert Job.objects.filter(status=StatusLiteral(value)).query.sql_with_params()[1] == ()
    assert f"= '{JobStatus(value).value}'" in str(Job.objects.filter(status=StatusLiteral(value)).query)


@pytest.mark.parametrize("value", ["Pending", "pending'); DROP TABLE _jobs; --", "", None])
def test_status_literal__refuses_anything_but_a_job_status(value):
    with pytest.raises(ValueError):
        StatusLiteral(value)
