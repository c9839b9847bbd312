"""PostgreSQL restarted twice, then stopped for 20 s, under load: two web processes take
enqueues and kv increments, two ``runjobs`` run the jobs. Nothing acknowledged is lost or
done twice, and every process comes back by itself."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import UTC, datetime

import pytest

from tests.helpers.fault_site import DATABASE, site_env, start_web
from tests.helpers.faults import executions, jobs_with_connection_errors, post_json
from tests.helpers.http import status_of
from tests.helpers.processes import manage, wait_until

pytestmark = pytest.mark.faults

COUNTER = "faults:counter"


class Load:
    """Enqueues and increments, in turn, at about 20 requests a second, spread over the servers;
    keeps what was acknowledged (a 2xx answer) and when."""

    def __init__(self, servers: list[str]) -> None:
        self.servers = servers
        self.jobs: list[int] = []
        self.increments = 0
        self.answered: list[float] = []  # monotonic times of acknowledged requests
        self.refused = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            server = self.servers[n % len(self.servers)]
            if n % 2 == 0:
                code, body = post_json(server + "/api/jobs/", {"topic": "toolbox.execution", "payload": {}})
                if code == 201:
                    self.jobs.append(body["id"])
            else:
                code, body = post_json(server + f"/api/kv/keys/{COUNTER}/incr/", {"amount": 1})
                if code == 200:
                    self.increments += 1
            if 200 <= code < 300:
                self.answered.append(time.monotonic())
            else:
                self.refused += 1
            n += 1
            self._stop.wait(0.05)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)


def all_answer(servers: list[str], path: str, code: int, timeout: float) -> bool:
    return bool(wait_until(lambda: all(status_of(s + path) == code for s in servers), timeout=timeout))


def test_postgres_restarts_and_a_20s_stop__nothing_acknowledged_is_lost_or_run_twice(
        private_postgres, site_processes):
    cluster = private_postgres()
    env = site_env(cluster.url(DATABASE),
                   JOBS_HTTP_ENABLED="true", KV_HTTP_ENABLED="true",
                   JOBS_ENQUEUE_PERMISSION_CLASSES="rest_framework.permissions.AllowAny",
                   KV_READ_PERMISSION_CLASSES="rest_framework.permissions.AllowAny",
                   KV_WRITE_PERMISSION_CLASSES="rest_framework.permissions.AllowAny",
                   # only the sync channel can bring a change within a second (no periodic reconcile)
                   TACHYCORE_RECONCILE_INTERVAL="60s", TACHYCORE_STATE_CHECK_INTERVAL="60s",
                   # the lease outlives the 20 s stop: what is looked at is the database going away,
                   # not a lease running out (test_stalled_worker does that)
                   JOBS_LOCK_DURATION="30s", JOBS_POLL_INTERVAL="1s", JOBS_MAX_RETRIES="3",
                   JOBS_RETRY_DELAY="100ms")
    assert manage(env, "pm", "enable", "notes").returncode == 0
    servers = [start_web(site_processes, env)[0] for _ in range(2)]
    dispatchers = [site_processes.start(env, "runjobs", "--workers", "4") for _ in range(2)]
    assert all_answer(servers, "/api/notes/", 200, timeout=5)

    load = Load(servers)
    load.start()
    try:
        # every worker thread has a connection open before the first restart
        assert wait_until(lambda: len(load.jobs) >= 20, 30)
        assert wait_until(lambda: len(executions(cluster, DATABASE)) >= 15, 30)
        for _ in range(2):
            cluster.restart()
            time.sleep(4)
        cluster.stop()
        time.sleep(20)
        cluster.start()
        back = time.monotonic()
        back_at = datetime.now(UTC)
        time.sleep(6)
    finally:
        load.stop()

    def all_completed() -> bool:
        rows = cluster.execute(DATABASE, "SELECT count(*) FROM _jobs WHERE id = ANY(%s) AND status = 'completed'",
                               (load.jobs,))
        return rows[0][0] == len(load.jobs)

    completed = wait_until(all_completed, 60, interval=0.5)
    unfinished = cluster.execute(
        DATABASE, "SELECT id, status, attempts, locked_until, left(last_error, 300) FROM _jobs "
                  "WHERE id = ANY(%s) AND status <> 'completed'", (load.jobs,))
    ran = executions(cluster, DATABASE)
    runs = Counter(job_id for job_id, *_ in ran)
    twice = {job_id: n for job_id, n in runs.items() if n > 1}
    web_back = min((t for t in load.answered if t > back), default=None)
    workers_back = {worker: min(began for _, w, _, began in ran if w == worker and began > back_at)
                    for worker in {w for _, w, _, began in ran if began > back_at}}
    report = (f"acknowledged: {len(load.jobs)} jobs, {load.increments} increments, {load.refused} refused; "
              f"executions: {len(ran)}, run twice: {twice}; web answered "
              f"{None if web_back is None else round(web_back - back, 2)} s after the restart; "
              f"dispatchers ran again after: "
              f"{ {w: round((t - back_at).total_seconds(), 2) for w, t in workers_back.items()} }; "
              f"not completed: {unfinished}")
    print(report)

    assert completed, report
    assert all(runs[job_id] == 1 for job_id in load.jobs), report
    assert not twice, report
    counter = cluster.execute(DATABASE, "SELECT value FROM _kv WHERE key = %s", (COUNTER,))
    assert counter[0][0] == load.increments, report
    # the web processes answer again without a restart, and so do the dispatchers
    assert web_back is not None, report
    assert all(proc.poll() is None for proc in dispatchers)
    fresh = cluster.execute(DATABASE, "SELECT count(*) FROM tachycore_nodes WHERE kind = 'dispatcher' "
                                      "AND heartbeat > now() - interval '3 seconds'")
    assert fresh[0][0] == 2, report
    assert len(workers_back) == 2, report
    # the sync channel came back in both web processes
    for _ in range(2):
        assert manage(env, "pm", "disable", "notes").returncode == 0
        assert all_answer(servers, "/api/notes/", 404, timeout=1.0), report
        assert manage(env, "pm", "enable", "notes").returncode == 0
        assert all_answer(servers, "/api/notes/", 200, timeout=1.0), report
    # no attempt was charged with the database's absence
    charged = jobs_with_connection_errors(cluster, DATABASE)
    assert charged == [], f"{len(charged)} job(s) charged with a connection error: {charged[:5]}; {report}"
