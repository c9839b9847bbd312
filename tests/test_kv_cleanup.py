"""Expiry cleanup: kv.cleanup, ``manage.py kv_cleanup`` and the django-q2 schedule."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from multiprocessing import Event, Queue, Value

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django.utils.module_loading import import_string

from kv import clock as kv_clock
from kv import get_store
from kv.cleanup import CleanupLoop, cleanup_expired
from kv.models import KVEntry
from kv.schedules import CLEANUP_FUNC, SCHEDULE_NAME, register_cleanup_schedule
from kv.sql import sqlite as sqlite_statements
from tachycore.models import Node
from tests.helpers.processes import ROOT, manage, wait_until


def put(key: str, expire_in_ms: int | None) -> None:
    """A row whose ``expire_at`` is ``expire_in_ms`` from now (negative: already expired)."""
    now = timezone.now()
    KVEntry.objects.create(key=key, value=key, created=now, updated=now,
                           expire_at=None if expire_in_ms is None else kv_clock.now_ms() + expire_in_ms)


def put_expired(count: int, prefix: str = "gone") -> None:
    now = timezone.now()
    KVEntry.objects.bulk_create(
        KVEntry(key=f"{prefix}:{i}", value=i, created=now, updated=now, expire_at=kv_clock.now_ms() - 1000)
        for i in range(count)
    )


def remaining() -> list[str]:
    return sorted(KVEntry.objects.values_list("key", flat=True))


def schedules():
    from django_q.models import Schedule

    return Schedule.objects.filter(name=SCHEDULE_NAME)


def delete_statements(queries) -> int:
    return sum("DELETE FROM _KV" in query["sql"].upper() for query in queries)


# -- kv.cleanup.cleanup_expired -----------------------------------------------------------


@pytest.mark.django_db
def test_cleanup_expired__deletes_expired_rows_and_keeps_live_ones():
    put("expired:a", -1)
    put("expired:b", -60_000)
    put("live:ttl", 60_000)
    put("live:forever", None)

    assert cleanup_expired() == 2

    assert remaining() == ["live:forever", "live:ttl"]


@pytest.mark.django_db
def test_cleanup_expired__removes_a_key_set_with_px_once_its_time_has_passed():
    store = get_store()
    store.set("short", "lived", px=150)
    store.set("long", "lived", ex=60)

    assert cleanup_expired() == 0
    assert remaining() == ["long", "short"]
    time.sleep(0.2)

    assert cleanup_expired() == 1
    assert remaining() == ["long"]
    assert store.get("long") == "lived"


@pytest.fixture
def slow_batches(monkeypatch):
    """SQLite's walk takes every batch for one that lasted too long: each has the batch size."""
    monkeypatch.setattr(sqlite_statements, "_BATCH_SECONDS", 0.0)


@pytest.fixture
def fast_batches(monkeypatch):
    """SQLite's walk takes every batch for a quick one: each next one has twice the rows."""
    monkeypatch.setattr(sqlite_statements, "_BATCH_SECONDS", 3600.0)


@pytest.mark.django_db
def test_cleanup_expired__removes_more_rows_than_a_batch_one_statement_per_batch(slow_batches):
    put_expired(25)
    put("live", None)

    with CaptureQueriesContext(connection) as queries:
        removed = cleanup_expired(batch_size=10)

    assert removed == 25
    assert remaining() == ["live"]
    assert delete_statements(queries) == 3  # 10 + 10 + 5


@pytest.mark.django_db
def test_cleanup_expired__quick_batches_grow_on_sqlite_from_the_batch_size(fast_batches):
    put_expired(25)
    put("live", None)

    with CaptureQueriesContext(connection) as queries:
        removed = cleanup_expired(batch_size=10)

    assert removed == 25
    assert remaining() == ["live"]
    # SQLite's walk: 10, then 15 of the 20 the next batch may take; elsewhere 10 + 10 + 5
    assert delete_statements(queries) == (2 if connection.vendor == "sqlite" else 3)


@pytest.mark.django_db
@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's walk only")
def test_cleanup_expired__sqlite_walk_leaves_the_connection_s_pragmas_as_they_were():
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA cache_size")
        cache = cursor.fetchone()[0]
        cursor.execute("PRAGMA wal_autocheckpoint")
        autocheckpoint = cursor.fetchone()[0]
    put_expired(30)

    assert cleanup_expired(batch_size=10) == 30

    with connection.cursor() as cursor:
        cursor.execute("PRAGMA cache_size")
        assert cursor.fetchone()[0] == cache
        cursor.execute("PRAGMA wal_autocheckpoint")
        assert cursor.fetchone()[0] == autocheckpoint


@pytest.mark.django_db
def test_cleanup_expired__batch_size_defaults_to_the_setting(settings, slow_batches):
    settings.KV = {"CLEANUP_BATCH_SIZE": 4}
    put_expired(9)

    with CaptureQueriesContext(connection) as queries:
        removed = cleanup_expired()

    assert removed == 9
    assert delete_statements(queries) == 3  # 4 + 4 + 1


@pytest.mark.django_db
def test_cleanup_expired__expired_rows_among_live_ones_go_and_the_live_ones_stay(slow_batches):
    # many expired rows (SQLite walks the table in storage order then), written between live ones
    for i in range(10):
        put(f"live:{i}", 60_000 if i % 2 else None)
        put(f"gone:{i}", -1000 - i)

    with CaptureQueriesContext(connection) as queries:
        assert cleanup_expired(batch_size=3) == 10

    assert remaining() == sorted(f"live:{i}" for i in range(10))
    assert delete_statements(queries) == 4  # 3 + 3 + 3 + 1


@pytest.mark.django_db
def test_cleanup_expired__a_few_expired_rows_among_many_live_ones_go():
    # few expired rows: the expiry index's order on both databases
    KVEntry.objects.bulk_create(
        KVEntry(key=f"live:{i:02d}", value=i, created=timezone.now(), updated=timezone.now())
        for i in range(60)
    )
    put("gone:a", -1)
    put("gone:b", -5000)

    assert cleanup_expired(batch_size=1) == 2
    assert remaining() == [f"live:{i:02d}" for i in range(60)]


@pytest.mark.django_db
def test_cleanup_expired__nothing_expired_removes_nothing():
    put("live", 60_000)

    assert cleanup_expired() == 0
    assert remaining() == ["live"]


def cleanup_while_a_set_holds_the_row(key: str, **options) -> int:
    """Run a cleanup pass in another thread while ``set(key)`` in this thread's transaction
    holds the row's lock; commit once the pass waits for it. The pass's count (PostgreSQL:
    SQLite locks the whole database, not a row)."""
    removed: list[int] = []
    errors: list[BaseException] = []

    def clean() -> None:
        try:
            removed.append(cleanup_expired(**options))
        except BaseException as e:  # reported below, not lost in the thread
            errors.append(e)
        finally:
            connection.close()

    with transaction.atomic():
        get_store().set(key, "fresh", ex=600)  # the row stays locked until commit
        cleaner = threading.Thread(target=clean)
        cleaner.start()
        with connection.cursor() as cursor:
            def cleaner_waits() -> bool:
                cursor.execute("SELECT pg_stat_clear_snapshot()")  # a fresh view inside this transaction
                cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                               "AND datname = current_database()")
                return cursor.fetchone()[0] == 1
            if not wait_until(cleaner_waits, timeout=10):
                pytest.fail("the cleanup never waited for the row lock")  # not the expected failure
    cleaner.join(10)
    assert not errors
    return removed[0]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_cleanup_expired__a_key_set_again_while_the_cleanup_waits_for_it_survives():
    put("k", -1000)

    cleanup_while_a_set_holds_the_row("k")

    assert list(KVEntry.objects.values_list("key", "value")) == [("k", "fresh")]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_cleanup_expired__a_batch_cut_short_by_a_concurrent_set_does_not_end_the_pass():
    """A ``set`` that gives new life to a row the first batch picked, while the batch waits
    for that row's lock, makes the batch one row short; the pass must go on to the rows
    still expired (it once stopped there, leaving them for the next pass)."""
    put("k", -60_000)  # expired first: the first batch (the expiry index's order) picks it
    put_expired(25)

    assert cleanup_while_a_set_holds_the_row("k", batch_size=10) == 25
    assert remaining() == ["k"]


@pytest.mark.django_db
def test_cleanup_expired__a_pass_ends_with_rows_expiring_behind_it():
    put_expired(5)
    put("later", 60_000)

    assert cleanup_expired(batch_size=2) == 5
    assert remaining() == ["later"]


# -- kv.cleanup.CleanupLoop ---------------------------------------------------------------


def _run_in_thread(loop: CleanupLoop) -> tuple[threading.Thread, list[int]]:
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(loop.run()), daemon=True)
    thread.start()
    return thread, result


@pytest.mark.django_db(transaction=True)
def test_cleanup_loop__removes_rows_that_expire_while_it_runs_until_stopped():
    passes: list[int] = []
    loop = CleanupLoop(0.05, on_pass=passes.append)
    thread, result = _run_in_thread(loop)
    assert wait_until(lambda: len(passes) >= 2, timeout=5)
    put("soon:1", 100)
    put("soon:2", 100)
    put("live", None)

    assert wait_until(lambda: remaining() == ["live"], timeout=5), remaining()
    loop.stop()
    thread.join(5)

    assert not thread.is_alive()
    assert result == [2]
    assert sum(passes) == 2 and loop.passes == len(passes)


def test_cleanup_loop__a_database_error_is_reported_and_the_next_pass_goes_on(monkeypatch):
    outcomes = iter([DatabaseError("server closed the connection"), 3, 0])

    def flaky(batch_size=None):
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    monkeypatch.setattr("kv.cleanup.cleanup_expired", flaky)
    monkeypatch.setattr("kv.cleanup.close_old_connections", lambda: None)
    errors: list[str] = []
    loop = CleanupLoop(0.01, on_error=lambda e: errors.append(str(e)),
                       on_pass=lambda removed: loop.stop() if loop.passes >= 3 else None)

    assert loop.run() == 3

    assert errors == ["server closed the connection"]
    assert loop.passes == 3


@pytest.mark.parametrize("interval", [0, -1])
def test_cleanup_loop__refuses_an_interval_that_is_not_positive(interval):
    with pytest.raises(ValueError, match="more than 0"):
        CleanupLoop(interval)


# -- manage.py kv_cleanup -----------------------------------------------------------------


@pytest.mark.django_db
def test_kv_cleanup__one_pass_prints_the_exact_count_and_keeps_live_rows():
    put_expired(7)
    put("live", 60_000)
    out = io.StringIO()

    call_command("kv_cleanup", "--batch-size", "3", stdout=out)

    assert out.getvalue() == "Removed 7 expired keys.\n"
    assert remaining() == ["live"]


@pytest.mark.django_db
def test_kv_cleanup__one_key_is_singular():
    put_expired(1)
    out = io.StringIO()

    call_command("kv_cleanup", stdout=out)

    assert out.getvalue() == "Removed 1 expired key.\n"


@pytest.mark.django_db(transaction=True)
def test_kv_cleanup__process_removes_expired_rows_exits_0_and_was_a_command_node(subprocess_env):
    put_expired(1200)
    put("live", None)

    result = manage(subprocess_env, "kv_cleanup", "--batch-size", "500")

    assert result.returncode == 0, result.stderr
    assert result.stdout == "Removed 1200 expired keys.\n"
    assert remaining() == ["live"]
    nodes = list(Node.objects.filter(kind="command", name="manage.py kv_cleanup").values_list("status", flat=True))
    assert nodes == ["stopped"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("args", "message"), [
    (["--loop", "--interval", "-5"], "CommandError: --interval cannot be negative, got '-5'"),
    (["--loop", "--interval=-0.5"], "CommandError: --interval cannot be negative, got '-0.5'"),
    (["--loop", "--interval", "soon"], "CommandError: --interval: cannot parse 'soon' as a duration"),
    (["--loop", "--interval", "0"], "CommandError: --interval must be more than 0, got '0'"),
    (["--batch-size", "0"], "CommandError: --batch-size must be at least 1, got '0'"),
    (["--batch-size", "many"], "CommandError: --batch-size must be a whole number, got 'many'"),
    (["--interval", "5s"], "CommandError: --interval needs --loop"),
], ids=["negative-interval", "negative-interval-equals", "unparsable-interval", "zero-interval",
        "zero-batch", "word-batch", "interval-without-loop"])
def test_kv_cleanup__bad_arguments_exit_1_with_one_line_and_delete_nothing(subprocess_env, args, message):
    put_expired(2)

    result = manage(subprocess_env, "kv_cleanup", *args)

    assert result.returncode == 1
    assert result.stderr.startswith(message), result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stdout == ""
    assert len(remaining()) == 2


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("args", [["--bogus"], ["--loop", "--interval"], ["--batch-size"]],
                         ids=["unknown-option", "interval-without-value", "batch-size-without-value"])
def test_kv_cleanup__usage_errors_exit_2_with_the_usage_and_delete_nothing(subprocess_env, args):
    put_expired(2)

    result = manage(subprocess_env, "kv_cleanup", *args)

    assert result.returncode == 2
    assert result.stderr.startswith("usage: manage.py kv_cleanup"), result.stderr
    assert "manage.py kv_cleanup: error: " in result.stderr
    assert result.stdout == ""
    assert len(remaining()) == 2


@pytest.mark.django_db
def test_kv_cleanup__unknown_option_through_call_command_is_a_command_error():
    with pytest.raises(CommandError, match="unrecognized arguments: --bogus"):
        call_command("kv_cleanup", "--bogus")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_kv_cleanup_loop__removes_rows_expiring_while_it_runs_and_exits_0_on_signal(subprocess_env, signum):
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "kv_cleanup", "--loop", "--interval", "100ms"],
        env=subprocess_env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        def looping() -> bool:
            return proc.poll() is not None or Node.objects.filter(
                pid=proc.pid, kind="command", status="commanding").exists()

        assert wait_until(looping, timeout=30, interval=0.05) and proc.poll() is None, (
            "the loop never showed up as a live command node"
        )
        put("soon:1", 300)
        put("soon:2", 300)
        put("soon:3", 300)
        put("live:ttl", 60_000)
        put("live:forever", None)
        assert wait_until(lambda: len(remaining()) == 2, timeout=10), remaining()

        proc.send_signal(signum)
        stdout, stderr = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()

    assert proc.returncode == 0, stderr
    assert stderr == ""
    assert stdout.splitlines()[-1] == "Removed 3 expired keys."
    assert remaining() == ["live:forever", "live:ttl"]


# -- the django-q2 schedule ---------------------------------------------------------------


@pytest.mark.django_db
def test_schedule__exists_once_after_migrate_and_runs_the_cleanup_every_minute():
    from django_q.models import Schedule

    [schedule] = schedules()

    assert schedule.func == CLEANUP_FUNC
    assert (schedule.schedule_type, schedule.minutes) == (Schedule.MINUTES, 1)
    assert schedule.repeats == -1
    assert import_string(schedule.func) is cleanup_expired


@pytest.mark.django_db(transaction=True)
def test_schedule__migrate_twice_and_registering_again_leave_one_row():
    first = schedules().get()

    call_command("migrate", verbosity=0)
    call_command("migrate", verbosity=0)
    register_cleanup_schedule()
    register_cleanup_schedule()

    [schedule] = schedules()
    assert schedule.pk == first.pk
    assert schedule.next_run == first.next_run  # re-registering postpones nothing


@pytest.mark.django_db
@pytest.mark.parametrize(("interval", "minutes"), [("5m", 5), (90, 2), ("30s", 1), ("1h", 60)])
def test_schedule__a_changed_interval_updates_the_row(settings, interval, minutes):
    first = schedules().get()
    # registered earlier with KV["CLEANUP_INTERVAL"] = "7m", due in a day
    schedules().update(minutes=7, next_run=timezone.now() + timedelta(days=1))
    settings.KV = {"CLEANUP_INTERVAL": interval}

    register_cleanup_schedule()

    [schedule] = schedules()
    assert schedule.pk == first.pk
    assert schedule.minutes == minutes
    assert schedule.next_run <= timezone.now() + timedelta(minutes=minutes)


@pytest.mark.django_db
def test_schedule__interval_from_the_environment_is_applied_by_migrate(monkeypatch):
    from kv.conf import kv_settings

    monkeypatch.setenv("KV_CLEANUP_INTERVAL", "10m")
    kv_settings.reset()
    try:
        call_command("migrate", verbosity=0)
    finally:
        monkeypatch.delenv("KV_CLEANUP_INTERVAL")
        kv_settings.reset()

    assert list(schedules().values_list("minutes", flat=True)) == [10]


@pytest.mark.django_db
def test_schedule__duplicate_rows_are_merged_into_the_oldest():
    first = schedules().get()
    schedules().model.objects.create(name=SCHEDULE_NAME, func=CLEANUP_FUNC, schedule_type="I", minutes=1)

    register_cleanup_schedule()

    assert list(schedules().values_list("pk", flat=True)) == [first.pk]


@pytest.mark.django_db
def test_schedule__operator_changes_outside_the_interval_are_kept():
    schedules().update(repeats=0, kwargs="batch_size=50")  # paused in the admin

    register_cleanup_schedule()

    assert list(schedules().values_list("repeats", "kwargs")) == [(0, "batch_size=50")]


@pytest.mark.django_db
def test_schedule__without_django_q_registration_does_nothing():
    from django.apps.registry import Apps

    before = list(schedules().values())

    assert register_cleanup_schedule(apps=Apps(installed_apps=[])) is None

    assert list(schedules().values()) == before


@pytest.mark.django_db
def test_schedule__func_run_through_django_q_deletes_expired_rows():
    from django_q.tasks import async_task, fetch

    put_expired(5)
    put("live", None)
    schedule = schedules().get()

    task_id = async_task(schedule.func, sync=True)

    task = fetch(task_id)
    assert task.success, task.result
    assert task.result == 5
    assert remaining() == ["live"]


@pytest.mark.django_db(transaction=True)
def test_schedule__scheduler_fires_it_once_and_a_cluster_worker_deletes_expired_rows():
    """The cluster's own pieces, in this process: scheduler -> ORM broker -> pusher ->
    worker -> monitor, as ``manage.py qcluster`` runs them in its processes."""
    from django_q.brokers import get_broker
    from django_q.models import OrmQ, Schedule, Success
    from django_q.monitor import monitor
    from django_q.pusher import pusher
    from django_q.scheduler import scheduler
    from django_q.worker import worker

    put_expired(4)
    put("live", None)
    schedules().update(next_run=timezone.now() - timedelta(seconds=1))
    # other apps' schedules (jobs' prune) are not what this test is about: not due
    Schedule.objects.exclude(name=SCHEDULE_NAME).update(next_run=timezone.now() + timedelta(days=1))
    broker = get_broker()

    scheduler(broker=broker)
    scheduler(broker=broker)  # a second look in the same interval fires nothing

    assert OrmQ.objects.count() == 1
    assert schedules().get().next_run > timezone.now() + timedelta(seconds=50)
    task_queue, result_queue, stop = Queue(), Queue(), Event()
    stop.set()  # one pull from the broker, then return
    pusher(task_queue, stop, broker=broker)
    task_queue.put("STOP")
    worker(task_queue, result_queue, Value("f", -1))
    result_queue.put("STOP")
    monitor(result_queue, broker=broker)

    assert remaining() == ["live"]
    [done] = Success.objects.filter(func=CLEANUP_FUNC)
    assert done.result == 4 and done.group == SCHEDULE_NAME
    assert OrmQ.objects.count() == 0  # acknowledged


@pytest.mark.skipif(os.environ.get("CI") != "true" and not os.environ.get("TEST_QCLUSTER"),
                    reason="about 35s (django-q2 looks at schedules every 30s): runs in CI or with TEST_QCLUSTER=1")
@pytest.mark.django_db(transaction=True)
def test_qcluster__runs_the_due_schedule_and_stops_on_sigterm(subprocess_env):
    put_expired(3)
    put("live", None)
    schedules().update(next_run=timezone.now() - timedelta(seconds=1))
    proc = subprocess.Popen([sys.executable, str(ROOT / "manage.py"), "qcluster"], env=subprocess_env,
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        gone = wait_until(lambda: remaining() == ["live"] or proc.poll() is not None, timeout=60, interval=0.5)
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()

    assert gone and remaining() == ["live"], output
    assert proc.returncode == 0, output
    assert "Processed 'kv.cleanup.cleanup_expired'" in output
    assert schedules().get().next_run > timezone.now()
