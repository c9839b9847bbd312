"""The dispatcher in this process: running, ordering, retries with backoff, plugin and
topic gating, lease ownership, recovery of lost leases, release and extension."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta

import pytest
from django.db import connections
from django.utils import timezone

import jobs
from jobs.dispatcher import Dispatcher
from jobs.execution import retry_delay
from jobs.leases import ClaimBuffer, Leases
from jobs.models import Job, JobStatus
from jobs.sql import statements_for
from tachycore.manager import plugin_manager
from tests.helpers.processes import wait_until
from tests.helpers.rows import disable_in_registry
from tests.plugin_apps.toolbox import jobs as toolbox_jobs

pytestmark = pytest.mark.usefixtures("fast_jobs")

transactional = pytest.mark.django_db(transaction=True)


@pytest.fixture
def store():
    return jobs.get_job_store()


def stored(job_id: int) -> Job:
    return Job.objects.get(pk=job_id)


def burst(**options):
    return Dispatcher(burst=True, **{"workers": 2, **options}).run()


def past(**delta) -> datetime:
    return timezone.now() - timedelta(**delta)


# -- running ------------------------------------------------------------------------------

@transactional
def test_dispatcher__runs_due_jobs_and_stores_results(store):
    created = store.enqueue_many([{"topic": "toolbox.echo", "payload": {"n": n}} for n in range(30)])

    counters = burst()

    assert (counters.completed, counters.failed, counters.retried, counters.lost) == (30, 0, 0, 0)
    for job in created:
        row = stored(job.id)
        assert (row.status, row.result, row.attempts, row.retries) == ("completed", {"n": job.payload["n"]}, 1, 0)
        assert (row.locked_until, row.last_error, row.errors) == (None, "", [])
        assert row.started_at <= row.finished_at
        assert len(row.workers) == 1


@transactional
def test_dispatcher__higher_priority_first_then_older_run_at(store):
    toolbox_jobs.ORDER.clear()
    for label, priority, age in [("low-old", 0, 180), ("high-new", 5, 1), ("high-old", 5, 120), ("mid", 1, 10),
                                 ("low-new", 0, 60), ("negative", -5, 300)]:
        store.enqueue("toolbox.order", {"label": label}, priority=priority, run_at=past(minutes=age))

    counters = burst(workers=1, batch_size=1)

    assert counters.completed == 6
    assert toolbox_jobs.ORDER == ["high-old", "high-new", "mid", "low-old", "low-new", "negative"]


@transactional
def test_dispatcher__a_future_job_is_not_run_in_burst(store):
    due = store.enqueue("toolbox.echo", {"n": 1})
    later = store.enqueue("toolbox.echo", {"n": 2}, delay=3600)

    counters = burst()

    assert counters.completed == 1
    assert stored(due.id).status == "completed"
    row = stored(later.id)
    assert (row.status, row.attempts, row.started_at, row.result) == ("pending", 0, None, None)


@transactional
def test_dispatcher__only_the_given_topics(store):
    echo = store.enqueue("toolbox.echo", {"n": 1})
    fail = store.enqueue("toolbox.fail")

    counters = burst(topics=["toolbox.echo"])

    assert counters.processed == 1
    assert stored(echo.id).status == "completed"
    row = stored(fail.id)
    assert (row.status, row.attempts, row.last_error) == ("pending", 0, "")


@transactional
def test_dispatcher__handler_returning_non_json_fails_the_attempt(store):
    job = store.enqueue("toolbox.unserialisable", max_retries=0)

    counters = burst()

    assert (counters.completed, counters.failed) == (0, 1)
    row = stored(job.id)
    assert (row.status, row.result, row.attempts) == ("failed", None, 1)
    assert "not JSON" in row.last_error
    assert [e["exception_class_path"] for e in row.errors] == ["builtins.TypeError"]
    assert row.finished_at is not None


# -- retries ------------------------------------------------------------------------------

@transactional
def test_dispatcher__failure_is_retried_with_backoff_then_failed(store):
    job = store.enqueue("toolbox.fail", {"why": "test"}, max_retries=2)
    enqueued_at = stored(job.id).run_at

    first = burst()

    row = stored(job.id)
    assert (first.retried, first.failed) == (1, 0)
    assert (row.status, row.attempts, row.retries, row.locked_until, row.finished_at) == (
        "pending", 1, 1, None, None)
    assert row.run_at > row.attempted_at > enqueued_at
    assert "toolbox.fail was asked to fail" in row.last_error
    assert [e["exception_class_path"] for e in row.errors] == ["builtins.RuntimeError"]

    def run_until_finished():
        burst()
        return stored(job.id).status == "failed"

    assert wait_until(run_until_finished, timeout=10, interval=0.05)
    row = stored(job.id)
    assert (row.attempts, row.retries) == (3, 2)
    assert len(row.errors) == 3
    assert all("toolbox.fail was asked to fail" in e["traceback"] for e in row.errors)
    assert "toolbox.fail was asked to fail" in row.last_error
    assert row.finished_at is not None

    again = burst()
    assert again.processed == 0
    assert stored(job.id).status == "failed"


@transactional
def test_dispatcher__retry_waits_longer_each_time(store, settings):
    settings.JOBS = {"RETRY_DELAY": "100s", "RETRY_DELAY_MAX": "1h", "POLL_INTERVAL": "10ms"}
    job = store.enqueue("toolbox.fail", max_retries=5)

    burst()
    row = stored(job.id)
    first_wait = (row.run_at - row.attempted_at).total_seconds()
    Job.objects.filter(pk=job.id).update(run_at=timezone.now())  # time passes
    burst()
    row = stored(job.id)
    second_wait = (row.run_at - row.attempted_at).total_seconds()

    assert row.status == "pending" and row.retries == 2
    assert 75 <= first_wait <= 126
    assert 150 <= second_wait <= 251


@transactional
def test_dispatcher__flaky_job_completes_on_a_later_attempt(store):
    job = store.enqueue("toolbox.flaky", {"succeed_on": 3}, max_retries=3)

    def run_until_finished():
        burst()
        return stored(job.id).status == "completed"

    assert wait_until(run_until_finished, timeout=10, interval=0.05)
    row = stored(job.id)
    assert (row.result, row.attempts, row.retries, len(row.errors)) == ({"attempts": 3}, 3, 2, 2)


@pytest.mark.parametrize(("attempt", "base"), [(1, 1.0), (2, 2.0), (3, 4.0), (4, 5.0), (10, 5.0), (60, 5.0)])
def test_retry_delay__exponential_and_capped(settings, monkeypatch, attempt, base):
    settings.JOBS = {"RETRY_DELAY": 1, "RETRY_DELAY_MAX": 5}

    monkeypatch.setattr("jobs.execution.random.uniform", lambda low, high: 1.0)
    middle = retry_delay(attempt)
    monkeypatch.setattr("jobs.execution.random.uniform", lambda low, high: low)
    lowest = retry_delay(attempt)
    monkeypatch.setattr("jobs.execution.random.uniform", lambda low, high: high)
    highest = retry_delay(attempt)

    assert middle == pytest.approx(base)
    assert lowest == pytest.approx(base * 0.75)
    assert highest == pytest.approx(base * 1.25)


def test_retry_delay__jitter_spreads_retries(settings):
    settings.JOBS = {"RETRY_DELAY": 1, "RETRY_DELAY_MAX": 100}

    delays = [retry_delay(3) for _ in range(200)]

    assert all(3.0 <= delay <= 5.0 for delay in delays)
    assert len(set(delays)) > 100
    assert min(delays) < 3.5 and max(delays) > 4.5


# -- plugins ------------------------------------------------------------------------------

@transactional
def test_dispatcher__job_of_a_disabled_plugin_waits_until_it_is_enabled(store):
    job = store.enqueue("toolbox.echo", {"n": 1})
    disable_in_registry("toolbox")

    while_disabled = burst()

    row = stored(job.id)
    assert while_disabled.processed == 0
    assert (row.status, row.attempts, row.locked_by) == ("pending", 0, "")

    plugin_manager.enable("toolbox")
    after = burst()

    assert after.completed == 1
    row = stored(job.id)
    assert (row.status, row.result, row.attempts) == ("completed", {"n": 1}, 1)


def claimed_by(dispatcher: Dispatcher, limit: int = 10) -> list[int]:
    """The ids of one claim of ``dispatcher``'s (what it takes now), in the order chosen."""
    topics, backends, task_topics, blocked = dispatcher.runnable()
    now = timezone.now()
    rows = statements_for("default").claim(dispatcher.name, now, now + timedelta(minutes=1), limit, topics,
                                           backends, blocked, task_topics)
    return [row[0] for row in rows]


@pytest.mark.django_db
def test_claim__passes_over_due_jobs_of_other_topics_and_of_plugins_not_enabled(store):
    due = past(minutes=5)
    # first in the queue's order: a plugin's not added, then another worker's topic
    held = store.enqueue_many([{"topic": "bluegreen.work", "priority": 100, "run_at": due}] * 3)
    others = store.enqueue_many([{"topic": "toolbox.record", "priority": 50, "run_at": due}] * 3)
    mine = store.enqueue_many([{"topic": "toolbox.echo", "priority": priority, "run_at": due}
                               for priority in (0, 1, 2)])

    claimed = claimed_by(Dispatcher(topics=["toolbox.echo", "bluegreen.work"]), limit=2)

    assert claimed == [mine[2].id, mine[1].id]
    untouched = Job.objects.filter(pk__in=[job.id for job in held + others])
    assert {(row.status, row.attempts) for row in untouched} == {("pending", 0)}


@pytest.mark.django_db
def test_claim__takes_a_plugins_held_jobs_in_order_once_it_is_enabled(store):
    due = past(minutes=5)
    disable_in_registry("toolbox")
    late = store.enqueue("toolbox.record", run_at=due)
    first, second = store.enqueue_many([{"topic": "toolbox.echo", "priority": 10, "run_at": due - timedelta(seconds=n)}
                                        for n in (2, 1)])
    dispatcher = Dispatcher()

    assert claimed_by(dispatcher) == []  # the idle poll while it is disabled

    plugin_manager.enable("toolbox")

    assert claimed_by(dispatcher) == [first.id, second.id, late.id]
    assert {stored(job.id).status for job in (first, second, late)} == {"processing"}


# -- ownership of a claim -----------------------------------------------------------------

def _claim(worker: str, at, lease: float = 60.0, topic: str = "toolbox.echo") -> list[int]:
    rows = statements_for("default").claim(worker, at, at + timedelta(seconds=lease), 10, [topic])
    return [row[0] for row in rows]


@pytest.mark.django_db
def test_claims__lost_lease_outcome_is_not_written(store):
    job = store.enqueue("toolbox.echo", {"n": 1}, max_retries=3)
    sql = statements_for("default")
    t0 = timezone.now()
    assert _claim("worker-a", t0, lease=1) == [job.id]

    assert sql.recover(t0 + timedelta(seconds=2)) == (1, 0)
    assert _claim("worker-b", t0 + timedelta(seconds=2)) == [job.id]
    written_by_a = sql.complete("worker-a", t0 + timedelta(seconds=3), [(job.id, json.dumps("from a"))])
    failed_by_a = sql.fail("worker-a", t0 + timedelta(seconds=3), job.id,
                              {"exception_class_path": "builtins.RuntimeError", "traceback": "a", "at": "x"},
                              None)

    assert written_by_a == set() and failed_by_a is False
    row = stored(job.id)
    assert (row.status, row.locked_by, row.result, row.attempts) == ("processing", "worker-b", None, 2)

    written_by_b = sql.complete("worker-b", t0 + timedelta(seconds=4), [(job.id, json.dumps("from b"))])

    assert written_by_b == {job.id}
    row = stored(job.id)
    assert (row.status, row.result, row.locked_until) == ("completed", "from b", None)
    assert row.workers == ["worker-a", "worker-b"]
    assert sql.complete("worker-a", t0 + timedelta(seconds=5), [(job.id, json.dumps("late"))]) == set()
    assert stored(job.id).result == "from b"


@transactional
def test_dispatcher__outcome_of_a_lost_lease_is_not_written(store, registered):
    def stolen(job):
        # meanwhile the lease ran out and another worker claimed the job
        Job.objects.filter(pk=job.id).update(locked_by="worker-b", attempts=2)
        return "from a"

    registered("tests.stolen", stolen)
    job = store.enqueue("tests.stolen", max_retries=0)

    counters = burst()

    assert (counters.lost, counters.completed, counters.failed) == (1, 0, 0)
    row = stored(job.id)
    assert (row.status, row.locked_by, row.result, row.finished_at) == ("processing", "worker-b", None, None)


@pytest.mark.django_db
def test_claims__recover_requeues_expired_leases_and_fails_used_up_jobs(store):
    sql = statements_for("default")
    retryable = store.enqueue("toolbox.echo", max_retries=1)
    used_up = store.enqueue("toolbox.echo", max_retries=0)
    healthy = store.enqueue("toolbox.record", max_retries=0)
    t0 = timezone.now()
    assert set(_claim("dead-worker", t0, lease=1)) == {retryable.id, used_up.id}
    assert _claim("live-worker", t0, lease=3600, topic="toolbox.record") == [healthy.id]

    assert sql.recover(t0 + timedelta(seconds=2)) == (1, 1)

    row = stored(retryable.id)
    assert (row.status, row.retries, row.locked_until, row.finished_at) == ("pending", 1, None, None)
    assert "lease expired" in row.last_error
    assert [e["exception_class_path"] for e in row.errors] == ["jobs.errors.WorkerLost"]
    row = stored(used_up.id)
    assert (row.status, row.retries, row.locked_until) == ("failed", 0, None)
    assert row.finished_at is not None and "lease expired" in row.last_error
    row = stored(healthy.id)
    assert (row.status, row.locked_by, row.errors) == ("processing", "live-worker", [])
    assert sql.recover(t0 + timedelta(seconds=2)) == (0, 0)


@transactional
def test_dispatcher__runs_a_job_whose_worker_died(store):
    job = store.enqueue("toolbox.echo", {"n": 1}, max_retries=1, run_at=past(minutes=10))
    t0 = timezone.now() - timedelta(minutes=5)
    assert _claim("dead-worker", t0, lease=1) == [job.id]

    dispatcher = Dispatcher(burst=True, workers=1)
    counters = dispatcher.run()

    assert (counters.recovered, counters.completed) == (1, 1)
    row = stored(job.id)
    assert (row.status, row.result, row.attempts, row.retries) == ("completed", {"n": 1}, 2, 1)
    assert row.workers == ["dead-worker", dispatcher.name]


@pytest.mark.django_db
def test_claims__release_returns_claims_to_pending(store):
    sql = statements_for("default")
    waiting, interrupted, others = (store.enqueue("toolbox.echo", {"n": n}) for n in range(3))
    t0 = timezone.now()
    assert set(_claim("worker-a", t0)) == {waiting.id, interrupted.id, others.id}

    assert sql.release("worker-a", t0, [(waiting.id, 1)], started=False) == 1
    assert sql.release("worker-a", t0, [(interrupted.id, 1)], started=True) == 1
    assert sql.release("worker-b", t0, [(others.id, 1)], started=True) == 0
    assert sql.release("worker-a", t0, [], started=True) == 0

    row = stored(waiting.id)
    assert (row.status, row.attempts, row.workers, row.locked_by, row.locked_until) == ("pending", 0, [], "", None)
    row = stored(interrupted.id)
    assert (row.status, row.attempts, row.workers, row.locked_by) == ("pending", 1, ["worker-a"], "")
    row = stored(others.id)
    assert (row.status, row.locked_by) == ("processing", "worker-a")
    assert _claim("worker-c", t0) == [waiting.id, interrupted.id]


@pytest.mark.django_db
def test_claims__extend_moves_the_lease_of_the_owner_only(store):
    sql = statements_for("default")
    mine = store.enqueue("toolbox.echo")
    theirs = store.enqueue("toolbox.record")
    t0 = timezone.now()
    assert _claim("worker-a", t0, lease=60) == [mine.id]
    assert _claim("worker-b", t0, lease=60, topic="toolbox.record") == [theirs.id]

    assert sql.extend("worker-a", t0, t0 + timedelta(minutes=10)) == {(mine.id, 1)}

    assert stored(mine.id).locked_until == t0 + timedelta(minutes=10)
    assert stored(theirs.id).locked_until == t0 + timedelta(seconds=60)
    assert sql.extend("worker-z", t0, t0 + timedelta(minutes=10)) == set()


@pytest.mark.django_db
def test_claims__release_leaves_a_later_claim_of_the_same_job_alone(store):
    sql = statements_for("default")
    job = store.enqueue("toolbox.echo")
    t0 = timezone.now()
    assert _claim("worker-a", t0, lease=1) == [job.id]
    assert sql.recover(t0 + timedelta(seconds=2)) == (1, 0)  # its lease ran out
    assert _claim("worker-a", t0 + timedelta(seconds=2)) == [job.id]  # attempt 2, the same worker

    assert sql.release("worker-a", t0, [(job.id, 1)], started=False) == 0

    row = stored(job.id)
    assert (row.status, row.attempts, row.locked_by) == ("processing", 2, "worker-a")


@transactional
def test_dispatcher__long_job_keeps_its_lease(store):
    from kv import get_store

    job = store.enqueue("toolbox.sleep", {"seconds": 1.2}, max_retries=3)

    counters = burst(workers=1, lock_duration=0.3)

    row = stored(job.id)
    assert (counters.completed, counters.recovered, counters.lost) == (1, 0, 0)
    assert (row.status, row.attempts, row.retries) == ("completed", 1, 0)
    assert get_store().hgetall("toolbox:runs") == {str(job.id): 1}


# -- shutdown -----------------------------------------------------------------------------

@transactional
def test_dispatcher__stop_returns_unfinished_claims(store, registered):
    started, release = threading.Event(), threading.Event()

    def block(job):
        started.set()
        release.wait(10)
        connections.close_all()

    registered("tests.block", block)
    running, waiting = (store.enqueue("tests.block", {"n": n}, run_at=past(seconds=10 - n)) for n in range(2))
    dispatcher = Dispatcher(workers=1, batch_size=2, shutdown_timeout=0.2)
    result = {}
    thread = threading.Thread(target=lambda: result.update(counters=dispatcher.run()))
    thread.start()
    try:
        assert started.wait(10)
        dispatcher.stop()
        thread.join(10)
    finally:
        release.set()

    assert not thread.is_alive()
    assert result["counters"].processed == 0
    row = stored(running.id)
    assert (row.status, row.attempts, row.locked_by, row.locked_until) == ("pending", 1, "", None)
    row = stored(waiting.id)
    assert (row.status, row.attempts, row.workers, row.locked_by) == ("pending", 0, [], "")


# -- leases as the dispatcher knows them -----------------------------------------------------

class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr("jobs.leases.time.monotonic", fake)
    return fake


def test_leases__a_claim_starts_only_while_more_than_the_margin_is_left(clock):
    leases = Leases(3.0)
    leases.claimed([(1, 1)], since=clock.now)
    clock.now += 1.9
    assert leases.wait_startable((1, 1))
    clock.now += 0.2  # 0.9 s left, under the margin (1 s)
    assert not leases.wait_startable((1, 1))


def test_leases__a_stall_longer_than_the_lease_starts_nothing_even_before_a_renewal(clock):
    leases = Leases(3.0)
    leases.claimed([(1, 1), (2, 1)], since=clock.now)
    clock.now += 9  # SIGSTOP, then SIGCONT: the monotonic clock moved on
    assert [leases.wait_startable(claim) for claim in [(1, 1), (2, 1)]] == [False, False]


def test_leases__a_claim_the_renewal_does_not_return_is_lost(clock):
    leases = Leases(3.0)
    leases.claimed([(1, 1), (2, 1)], since=clock.now)
    assert leases.renewed({(2, 1), (3, 1)}, since=clock.now) == [(1, 1)]
    assert (leases.expired((1, 1)), leases.expired((2, 1)), leases.expired((3, 1))) == (True, False, True)


def test_leases__the_same_job_claimed_again_is_another_claim(clock):
    leases = Leases(3.0)
    leases.claimed([(1, 2)], since=clock.now)
    assert leases.expired((1, 1)) and not leases.expired((1, 2))


def test_leases__after_a_failed_renewal_nothing_starts_before_the_margin_is_reached():
    leases = Leases(0.3)
    leases.claimed([(1, 1)], since=time.monotonic())
    assert leases.unconfirmed() and not leases.unconfirmed()  # news once
    began = time.monotonic()
    assert not leases.wait_startable((1, 1))  # no renewal came: not started
    assert 0.1 < time.monotonic() - began < 1.0


def test_leases__after_a_failed_renewal_a_worker_waits_for_the_next():
    leases = Leases(3.0)
    leases.claimed([(1, 1)], since=time.monotonic())
    leases.unconfirmed()
    threading.Timer(0.05, leases.renewed, [{(1, 1)}, time.monotonic()]).start()
    assert leases.wait_startable((1, 1))


def test_claim_buffer__takes_back_only_what_is_asked_in_order():
    buffer = ClaimBuffer()
    jobs = [Job(id=n, attempts=1) for n in range(4)]
    for job in jobs:
        buffer.put(job)
    buffer.put(None)
    assert buffer.take_back(lambda job: job.id % 2 == 1) == [jobs[1], jobs[3]]
    assert [buffer.take(), buffer.take(), buffer.take()] == [jobs[0], jobs[2], None]


@pytest.mark.django_db(transaction=True)
def test_lost_connection__a_connection_closed_after_its_error_is_lost_not_the_jobs_fault():
    from django.db import OperationalError, connection

    from jobs.execution import Outcome, lost_connection

    connection.ensure_connection()
    connection.errors_occurred = True  # what Django's error wrapper sets, before it closes
    connection.close()
    outcome = Outcome(Job(topic="t"), JobStatus.FAILED, exception=OperationalError("server closed the connection"))

    assert lost_connection(outcome)


@pytest.mark.django_db(transaction=True)
def test_lost_connection__an_error_on_a_working_connection_is_the_jobs():
    from django.db import OperationalError, connection

    from jobs.execution import Outcome, lost_connection

    connection.ensure_connection()
    outcome = Outcome(Job(topic="t"), JobStatus.FAILED, exception=OperationalError("deadlock detected"))

    assert not lost_connection(outcome)
