"""A worker that loses its leases starts none of the jobs it lost.

One ``runjobs`` (A: 4 workers, 12 jobs of 4 s claimed, 4 of them running) is taken
away for longer than the 3 s lease, stopped with SIGSTOP or, in a network namespace,
cut off from PostgreSQL; a second one (B) takes the jobs over and runs them; then A
comes back. A job A was in the middle of may run twice (handlers are idempotent); a job
A had not started must run once, by B: A must not start it after it lost it.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from tests.helpers.fault_site import DATABASE, SiteProcesses, site_env
from tests.helpers.faults import executions
from tests.helpers.processes import manage, wait_until

pytestmark = pytest.mark.faults

LEASE = 3.0
JOBS = 12
SECONDS = 4  # longer than the lease: the second round of A's workers would begin after it ran out
AWAY = 8.0  # how long A is gone: more than twice the lease

ENQUEUE = ("from jobs import get_job_store; "
           f"get_job_store().enqueue_many([{{'topic': 'toolbox.execution', 'payload': {{'seconds': {SECONDS}}}}}] * {JOBS})")


def lease_env(database_url: str, **overrides: str) -> dict[str, str]:
    return site_env(database_url, JOBS_LOCK_DURATION=f"{LEASE}s", JOBS_POLL_INTERVAL="200ms", **overrides)


def held_by(cluster, worker: str) -> int:
    return cluster.execute(DATABASE, "SELECT count(*) FROM _jobs WHERE locked_by = %s AND status = 'processing'",
                           (worker,))[0][0]


def run_lost_lease(cluster, processes: SiteProcesses, start_a: Callable, away: Callable[[], None],
                   back: Callable[[], None], a_is_back: Callable[[str, datetime], bool]) -> dict:
    """Take A away while it holds every job, let B take them over, bring A back; what ran."""
    env = lease_env(cluster.url(DATABASE))
    assert manage(env, "shell", "-c", ENQUEUE).returncode == 0
    a = start_a()
    assert wait_until(lambda: len(executions(cluster, DATABASE)) == 4, 30), processes.output(a)
    name = executions(cluster, DATABASE)[0][1]
    assert wait_until(lambda: held_by(cluster, name) == JOBS, 10), "A claimed every job ahead"
    time.sleep(0.3)  # in the middle of the first four jobs

    fault = datetime.now(UTC)
    away()
    b = processes.start(env | {"JOBS_BATCH_SIZE": str(JOBS)}, "runjobs", "--workers", str(JOBS))
    taken_over = wait_until(lambda: held_by(cluster, name) == 0, 20, interval=0.1)
    time.sleep(max(0.0, AWAY - (datetime.now(UTC) - fault).total_seconds()))
    healed = datetime.now(UTC)
    back()
    assert taken_over, f"B took A's jobs over: {processes.output(b)}"

    done = wait_until(lambda: cluster.execute(
        DATABASE, "SELECT count(*) FROM _jobs WHERE status = 'completed'")[0][0] == JOBS, 30, interval=0.2)
    # A is back (its heartbeat goes through again): whatever it starts from its buffer, it starts now
    a_back = wait_until(lambda: a_is_back(name, healed), 30, interval=0.2)
    time.sleep(SECONDS + 1.5)  # long enough for A's workers to go through two rounds of its buffer
    ran = executions(cluster, DATABASE)

    by_a = [(job_id, began) for job_id, worker, _, began in ran if worker == name]
    begun_before = {job_id for job_id, began in by_a if began < fault}
    runs = Counter(job_id for job_id, *_ in ran)
    measured = {
        "completed": done,
        "a_came_back": bool(a_back),
        "executions": len(ran),
        "started_before_the_fault": len(begun_before),
        "run_twice_in_the_middle": sum(1 for job_id in begun_before if runs[job_id] > 1),
        "run_twice_not_started_before": sum(1 for job_id, n in runs.items() if n > 1 and job_id not in begun_before),
        "started_by_a_after_its_lease_ended": [
            round((began - fault).total_seconds(), 2) for _, began in by_a if began > fault + timedelta(seconds=LEASE)],
        "never_ran": JOBS - len(runs),
        "a_log": processes.output(a)[-2000:],
    }
    print({key: value for key, value in measured.items() if key != "a_log"})
    return measured


def assert_nothing_started_after_the_lease(measured: dict) -> None:
    summary = {key: value for key, value in measured.items() if key != "a_log"}
    assert measured["completed"], measured
    assert measured["never_ran"] == 0, summary
    assert measured["started_by_a_after_its_lease_ended"] == [], summary
    assert measured["run_twice_not_started_before"] == 0, summary


def node_heartbeat_after(cluster) -> Callable[[str, datetime], bool]:
    def back(name: str, since: datetime) -> bool:
        rows = cluster.execute(DATABASE, "SELECT heartbeat FROM tachycore_nodes WHERE id = %s", (name,))
        return bool(rows) and rows[0][0] > since
    return back


def test_stalled_worker__starts_no_job_it_lost(private_postgres, site_processes):
    cluster = private_postgres()
    env = lease_env(cluster.url(DATABASE), JOBS_BATCH_SIZE=str(JOBS - 4))
    a = None

    def start_a():
        nonlocal a
        a = site_processes.start(env, "runjobs", "--workers", "4")
        return a

    measured = run_lost_lease(cluster, site_processes, start_a,
                              away=lambda: a.send_signal(signal.SIGSTOP),
                              back=lambda: a.send_signal(signal.SIGCONT),
                              a_is_back=node_heartbeat_after(cluster))
    assert_nothing_started_after_the_lease(measured)


def test_cut_off_host__starts_no_job_it_lost(netns_host, private_postgres, site_processes):
    cluster = private_postgres(listen=("127.0.0.1", netns_host.host_address), trusted=(netns_host.network,))
    # A runs on the other host: it reaches PostgreSQL over the veth pair only
    env = lease_env(cluster.url(DATABASE, host=netns_host.host_address), JOBS_BATCH_SIZE=str(JOBS - 4))

    def start_a():
        return site_processes.start(env, "runjobs", "--workers", "4", netns=netns_host)

    measured = run_lost_lease(cluster, site_processes, start_a, away=netns_host.cut, back=netns_host.restore,
                              a_is_back=node_heartbeat_after(cluster))
    assert_nothing_started_after_the_lease(measured)
