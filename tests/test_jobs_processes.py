"""The dispatcher as real ``runjobs`` processes: crashes, shutdown, several at once, wake-up."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from django.db import connection

from jobs import get_job_store
from jobs.models import Job, JobStatus
from kv.models import KVEntry
from tachycore.models import Node
from tests.helpers.processes import ROOT, manage, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def start_runjobs(env: dict[str, str], *args: str, **overrides: str) -> subprocess.Popen:
    env = {**env, "JOBS_STATUS_INTERVAL": "0", **overrides}
    return subprocess.Popen([sys.executable, str(ROOT / "manage.py"), "runjobs", *args], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stop(proc: subprocess.Popen) -> tuple[str, str]:
    if proc.poll() is None:
        proc.kill()
    return proc.communicate(timeout=30)


def count(status: str, topic: str | None = None) -> int:
    jobs = Job.objects.filter(status=status)
    return (jobs.filter(topic=topic) if topic else jobs).count()


def runs() -> dict[str, int]:
    """How many times each job id ran (the toolbox handlers count in kv)."""
    entry = KVEntry.objects.filter(key="toolbox:runs").first()
    return {} if entry is None else {field: int(n) for field, n in entry.value.items()}


def test_runjobs__a_killed_dispatcher_loses_no_job(subprocess_env):
    store = get_job_store()
    jobs = store.enqueue_many([{"topic": "toolbox.sleep", "payload": {"seconds": 0.02}} for _ in range(300)])
    first = start_runjobs(subprocess_env, "--workers", "4", JOBS_LOCK_DURATION="2s")
    try:
        assert wait_until(lambda: count(JobStatus.COMPLETED) >= 40, 60), stop(first)
        held = count(JobStatus.PROCESSING)
        first.send_signal(signal.SIGKILL)  # in the middle of a batch: no chance to return its claims
        first.wait(10)
        assert held > 0
        assert count(JobStatus.PROCESSING) > 0  # the dead process's claims are still there
    finally:
        stop(first)
    second = start_runjobs(subprocess_env, "--workers", "4", JOBS_LOCK_DURATION="2s")
    try:
        assert wait_until(lambda: count(JobStatus.COMPLETED) == len(jobs), 90), (
            Job.objects.values("status").order_by().distinct(), stop(second))
    finally:
        stop(second)
    assert count(JobStatus.FAILED) == 0
    ran = runs()
    assert set(ran) == {str(job.id) for job in jobs}  # every job ran
    # only jobs that were running when the first process died ran twice
    assert sum(n - 1 for n in ran.values()) <= held
    recovered = Job.objects.filter(retries__gt=0)
    assert recovered.exists()
    assert all("lease expired" in job.last_error for job in recovered)


def test_runjobs__four_processes_run_each_job_once(subprocess_env):
    store = get_job_store()
    jobs = store.enqueue_many([{"topic": "toolbox.record"} for _ in range(600)])
    procs = [start_runjobs(subprocess_env, "--workers", "2", "--burst") for _ in range(4)]
    try:
        for proc in procs:
            proc.wait(120)
    finally:
        outputs = [stop(proc) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0, 0, 0], outputs
    assert count(JobStatus.COMPLETED) == len(jobs)
    ran = runs()
    assert len(ran) == len(jobs)
    assert set(ran.values()) == {1}
    # the work was shared: every dispatcher ran some (their node ids are in locked_by)
    assert len(set(Job.objects.values_list("locked_by", flat=True))) >= 2


def test_runjobs__sigterm_lets_running_jobs_finish_and_returns_the_rest(subprocess_env):
    store = get_job_store()
    jobs = store.enqueue_many([{"topic": "toolbox.sleep", "payload": {"seconds": 1.5}} for _ in range(10)])
    proc = start_runjobs(subprocess_env, "--workers", "2", JOBS_BATCH_SIZE="4", JOBS_SHUTDOWN_TIMEOUT="20s")
    try:
        assert wait_until(lambda: len(runs()) == 2, 30), stop(proc)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        stop(proc)
    assert proc.returncode == 0, err
    assert "finishing running jobs" in out
    started = {int(job_id) for job_id in runs()}
    assert len(started) == 2
    for job in Job.objects.filter(pk__in=[job.id for job in jobs]):
        if job.id in started:
            assert job.status == JobStatus.COMPLETED
        else:  # claimed (prefetched) or not, never started: back in the queue with its attempt returned
            assert (job.status, job.attempts, job.locked_by) == (JobStatus.PENDING, 0, "")
    assert Node.objects.get(kind="dispatcher").status == "stopped"


def test_runjobs__shutdown_timeout_returns_a_job_that_runs_too_long(subprocess_env):
    job = get_job_store().enqueue("toolbox.sleep", {"seconds": 30})
    proc = start_runjobs(subprocess_env, JOBS_SHUTDOWN_TIMEOUT="1s")
    try:
        assert wait_until(lambda: runs(), 30), stop(proc)
        began = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)
        took = time.monotonic() - began
    finally:
        stop(proc)
    assert proc.returncode == 0
    assert took < 10
    job.refresh_from_db()
    # interrupted: back in the queue, and the attempt it made counts
    assert (job.status, job.attempts, job.locked_by) == (JobStatus.PENDING, 1, "")


def test_runjobs__a_second_signal_exits_at_once(subprocess_env):
    get_job_store().enqueue("toolbox.sleep", {"seconds": 30})
    proc = start_runjobs(subprocess_env, JOBS_SHUTDOWN_TIMEOUT="60s")
    try:
        assert wait_until(lambda: runs(), 30), stop(proc)
        proc.send_signal(signal.SIGINT)
        time.sleep(0.5)
        began = time.monotonic()
        proc.send_signal(signal.SIGINT)
        proc.wait(10)
        took = time.monotonic() - began
    finally:
        stop(proc)
    assert proc.returncode == 128 + signal.SIGINT
    assert took < 3


def test_runjobs__burst_runs_what_is_due_and_exits(subprocess_env):
    store = get_job_store()
    due = store.enqueue_many([{"topic": "toolbox.echo", "payload": n} for n in range(20)])
    later = store.enqueue("toolbox.echo", {}, delay=3600)
    result = manage({**subprocess_env, "JOBS_STATUS_INTERVAL": "0"}, "runjobs", "--burst", "--workers", "3")
    assert result.returncode == 0, result.stderr
    assert "20 completed" in result.stdout
    assert list(Job.objects.filter(pk__in=[j.id for j in due]).values_list("result", flat=True)) == list(
        range(19, -1, -1))
    later.refresh_from_db()
    assert later.status == JobStatus.PENDING


def test_runjobs__topics_limits_what_it_takes(subprocess_env):
    store = get_job_store()
    echo = store.enqueue("toolbox.echo", 1)
    record = store.enqueue("toolbox.record")
    result = manage({**subprocess_env, "JOBS_STATUS_INTERVAL": "0"}, "runjobs", "--burst", "--topics", "toolbox.echo")
    assert result.returncode == 0, result.stderr
    echo.refresh_from_db()
    record.refresh_from_db()
    assert (echo.status, record.status) == (JobStatus.COMPLETED, JobStatus.PENDING)


@pytest.mark.parametrize("args, message", [
    (["--workers", "0"], "--workers must be at least 1"),
    (["--workers", "many"], "--workers must be a whole number"),
    (["--topics", " , "], "--topics needs at least one topic"),
])
def test_runjobs__bad_arguments_exit_1_with_one_line(subprocess_env, args, message):
    result = manage(subprocess_env, "runjobs", "--burst", *args)
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def status_lines_of_runjobs(env: dict[str, str], *args: str, interval: str, until=lambda: True,
                            linger: float = 0.8) -> list[str]:
    """Run ``runjobs`` until it is a live dispatcher node and ``until()`` holds, ``linger``
    seconds more, then stop it with SIGTERM; return the status lines it printed."""
    proc = start_runjobs(env, *args, JOBS_STATUS_INTERVAL=interval)
    try:
        assert wait_until(lambda: Node.objects.filter(kind="dispatcher", status="running").exists(), 30)
        assert wait_until(until, 30)
        time.sleep(linger)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    finally:
        stop(proc)
    lines = [line for line in out.splitlines() if "jobs/s" in line]
    assert lines, out
    return lines


def test_runjobs__prints_a_status_line_and_is_a_supervisor_node(subprocess_env):
    get_job_store().enqueue_many([{"topic": "toolbox.echo"} for _ in range(5)])
    status_lines = status_lines_of_runjobs(subprocess_env, "--workers", "2", interval="0.3s",
                                           until=lambda: count(JobStatus.COMPLETED) == 5)
    assert "5 completed, 0 failed" in status_lines[-1]
    assert "0 due" in status_lines[-1]


HELD_NOTES = "2 held: 2 for notes (not added: manage.py pm enable notes)"


def enqueue_word_counts(n: int) -> None:
    """Jobs of the demo's notes plugin, which is not added in the test database."""
    get_job_store().enqueue_many([{"topic": "notes.word_count", "payload": {"note": i}} for i in range(n)])


def test_runjobs__the_summary_counts_jobs_held_by_a_plugin_not_added(subprocess_env):
    enqueue_word_counts(2)
    get_job_store().enqueue("toolbox.echo")

    result = manage({**subprocess_env, "JOBS_STATUS_INTERVAL": "0"}, "runjobs", "--burst")

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].endswith(f"stopped; 1 completed, 0 failed, 0 retried, {HELD_NOTES}")
    assert count(JobStatus.PENDING, "notes.word_count") == 2


def test_runjobs__the_status_line_counts_jobs_held_by_a_plugin_not_added(subprocess_env):
    enqueue_word_counts(2)
    status_lines = status_lines_of_runjobs(subprocess_env, interval="0.2s", linger=0.6)
    assert status_lines[-1].endswith(f"2 due, {HELD_NOTES}, 0 claimed")


def test_runjobs__warns_once_at_start_naming_the_topics_held(subprocess_env):
    result = manage({**subprocess_env, "JOBS_STATUS_INTERVAL": "0"}, "runjobs", "--burst")

    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "notes.word_count" in line]
    assert warnings == ["jobs: the jobs of notes.word_count wait until plugin 'notes' is enabled "
                        "(manage.py pm enable notes)"]


def test_runjobs__one_worker_is_said_in_the_singular(subprocess_env):
    result = manage({**subprocess_env, "JOBS_STATUS_INTERVAL": "0"}, "runjobs", "--burst", "--workers", "1")

    assert result.returncode == 0, result.stderr
    assert ": 1 worker, topics: all" in result.stdout.splitlines()[0]
    assert Node.objects.get(kind="dispatcher").name == "runjobs (1 worker)"


@pytest.mark.postgres
def test_runjobs__an_idle_dispatcher_wakes_on_notify(subprocess_env):
    # the poll is 60 s: only LISTEN/NOTIFY can bring the job in within a second
    proc = start_runjobs(subprocess_env, JOBS_POLL_INTERVAL="60s")
    try:
        assert wait_until(lambda: Node.objects.filter(kind="dispatcher").exists(), 30)
        time.sleep(1.5)  # idle: waiting on its poll
        latencies = []
        for _ in range(5):
            began = time.monotonic()
            job = get_job_store().enqueue("toolbox.record")
            assert wait_until(lambda job=job: str(job.id) in runs(), 5, interval=0.005)
            latencies.append(time.monotonic() - began)
    finally:
        stop(proc)
    assert max(latencies) < 1.0, latencies


def test_runjobs__an_idle_dispatcher_picks_a_new_job_up_within_a_poll(subprocess_env):
    # the poll is 60 s: PostgreSQL's NOTIFY or SQLite's commit watcher must bring it in
    proc = start_runjobs(subprocess_env, JOBS_POLL_INTERVAL="60s")
    try:
        assert wait_until(lambda: Node.objects.filter(kind="dispatcher").exists(), 30)
        time.sleep(1.0)
        began = time.monotonic()
        job = get_job_store().enqueue("toolbox.record")
        assert wait_until(lambda: str(job.id) in runs(), 5, interval=0.005), stop(proc)
        assert time.monotonic() - began < 1.0
    finally:
        stop(proc)


# -- faults: a stalled dispatcher, a database that went away --------------------------------

def starts() -> dict[tuple[int, int], int]:
    """How many times each job started in each process: ``(job id, pid) -> starts``
    (``toolbox.stamp`` counts them)."""
    entry = KVEntry.objects.filter(key="toolbox:starts").first()
    fields = {} if entry is None else entry.value
    return {tuple(map(int, field.split(":"))): int(n) for field, n in fields.items()}


def pause(proc: subprocess.Popen) -> None:
    """SIGSTOP ``proc`` at a moment it holds no SQLite write lock (stopped holding one, it
    would stop the other dispatcher too, which is not the fault under test)."""
    while True:
        proc.send_signal(signal.SIGSTOP)
        if connection.vendor != "sqlite":
            return
        probe = sqlite3.connect(connection.settings_dict["NAME"], timeout=0.5)
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.rollback()
            return
        except sqlite3.OperationalError:
            proc.send_signal(signal.SIGCONT)
            time.sleep(0.05)
        finally:
            probe.close()


def test_runjobs__a_stalled_dispatcher_starts_no_job_it_lost(subprocess_env):
    jobs = get_job_store().enqueue_many([{"topic": "toolbox.stamp", "payload": {"seconds": 1}} for _ in range(12)])
    lease = {"JOBS_LOCK_DURATION": "2s", "JOBS_BATCH_SIZE": "10"}
    stalled = start_runjobs(subprocess_env, "--workers", "2", **lease)
    other = None
    try:
        # two jobs running, ten claimed ahead in its buffer
        assert wait_until(lambda: len(starts()) == 2 and count(JobStatus.PROCESSING) == 12, 30), stop(stalled)
        pause(stalled)
        time.sleep(0.3)  # a start it sent just before it stopped is committed by now
        before = {job_id for job_id, pid in starts()}
        other = start_runjobs(subprocess_env, "--workers", "4", **lease)
        # the other one takes every job over once the stalled one's leases run out
        assert wait_until(lambda: count(JobStatus.COMPLETED) == len(jobs), 40), stop(other)
        stalled.send_signal(signal.SIGCONT)
        time.sleep(3)  # its workers finish the jobs they ran and look at the ones claimed ahead
        stalled.send_signal(signal.SIGTERM)
        out, err = stalled.communicate(timeout=20)
    finally:
        if stalled.poll() is None:
            stalled.send_signal(signal.SIGCONT)
        stop(stalled)
        if other is not None:
            stop(other)
    ran = starts()
    by_stalled = {job_id for job_id, pid in ran if pid == stalled.pid}
    assert len(before) == 2 and by_stalled == before, err
    per_job: dict[int, int] = {}
    for (job_id, _pid), n in ran.items():
        per_job[job_id] = per_job.get(job_id, 0) + n
    assert set(per_job) == {job.id for job in jobs}
    assert sum(n - 1 for job_id, n in per_job.items() if job_id not in before) == 0  # no duplicate start
    assert "were lost" in err or "lease could run out" in err or "not run here" in err, err
    errors = Node.objects.get(pid=stalled.pid).last_errors
    assert any("lease" in error["message"] for error in errors), errors


def terminate_backends(application_name: str) -> int:
    """End every PostgreSQL backend of the processes that connect as ``application_name``, as a
    restart of the server would; return how many."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = %s",
                       [application_name])
        return cursor.fetchone()[0]


@pytest.mark.postgres
@pytest.mark.parametrize("conn_max_age", ["0", "60"])
def test_runjobs__a_database_that_went_away_fails_no_job(subprocess_env, conn_max_age):
    name = f"runjobs-test-{conn_max_age}-{time.monotonic_ns()}"
    env = {**subprocess_env,
           "DATABASE_URL": f"{subprocess_env['DATABASE_URL']}?application_name={name}&conn_max_age={conn_max_age}"}
    store = get_job_store()
    warm = store.enqueue_many([{"topic": "toolbox.sleep", "payload": {"seconds": 0.05}} for _ in range(40)])
    proc = start_runjobs(env, "--workers", "4")
    try:
        # every worker thread has run jobs (and, unless CONN_MAX_AGE is 0, kept its connection)
        assert wait_until(lambda: count(JobStatus.COMPLETED) == len(warm), 30), stop(proc)
        assert terminate_backends(name) > 0
        time.sleep(2)  # the database has been back for a while when the jobs come
        jobs = store.enqueue_many([{"topic": "toolbox.record", "max_retries": 0} for _ in range(8)])
        assert wait_until(lambda: count(JobStatus.PENDING) + count(JobStatus.PROCESSING) == 0, 30), stop(proc)
    finally:
        stop(proc)
    rows = list(Job.objects.filter(pk__in=[job.id for job in jobs]).values("status", "retries", "errors",
                                                                             "last_error"))
    assert [(row["status"], row["retries"], row["errors"], row["last_error"]) for row in rows] == (
        [(JobStatus.COMPLETED, 0, [], "")] * len(jobs)), rows
