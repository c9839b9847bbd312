"""Grants enforced in real processes: a server, ``runjobs`` and a plugin's command.

The probe plugin (tests/plugin_apps/probe) holds only ``storage:sql`` READ
(``TACHYCORE["GRANTS"]`` of tests/settings_probe.py, applied by ``migrate``) and tries, on
demand, one operation beyond it: writing its own table, reading another plugin's table,
setting a kv key, enqueueing a job. Only the processes these tests start know the probe:
the pytest process keeps tests.settings, and reads the probe's table with plain SQL.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from django.db import connection

import jobs
from jobs.models import Job
from kv.models import KVEntry
from tachycore.models import AuditEvent, CapabilityGrant
from tests.helpers.processes import ROOT, manage, wait_until

#: how soon a second process must follow a grant (DESIGN.md: "within a second")
PROPAGATION = 1.0
#: what the probe's grant (storage:sql READ) refuses: the capability and access each one needs
NEEDS = {
    "write": "storage:sql WRITE",
    "foreign": "storage:sql:notes_note READ",
    "kv": "kv WRITE",
    "enqueue": "jobs:enqueue EXECUTE",
}
#: what tests/plugin_apps/probe/operations.py writes when it is let through
WRITTEN_LABEL = "written by probe"
KV_KEY = "probe:key"


@pytest.fixture
def probe_env(subprocess_env):
    """The environment of processes that know the probe, migrated into this test's database
    (which applies its one grant, from TACHYCORE["GRANTS"]) and enabled."""
    env = {**subprocess_env, "DJANGO_SETTINGS_MODULE": "tests.settings_probe"}
    migrated = manage(env, "migrate", "probe", "--verbosity", "0")
    assert migrated.returncode == 0, migrated.stderr
    enabled = manage(env, "pm", "enable", "probe")
    assert enabled.returncode == 0, enabled.stderr
    return env


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], dict]:
    """GET ``url``; status, headers and the JSON body."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), json.loads(e.read())


def refusal(what: str) -> str:
    """The start of the message refusing ``what``."""
    capability, access = NEEDS[what].split()
    return f"plugin 'probe' may not use {capability} at {access}"


def traceparent() -> tuple[str, str]:
    """A fresh W3C ``traceparent`` header and its trace id."""
    trace_id = secrets.token_hex(16)
    return f"00-{trace_id}-{secrets.token_hex(8)}-01", trace_id


def trace_id_of(header: str) -> str:
    match = re.fullmatch(r"00-([0-9a-f]{32})-([0-9a-f]{16})-0[01]", header)
    assert match, header
    return match.group(1)


def rows_written_by_probe() -> int:
    """Rows in the probe's table that its write put there (plain SQL: the table is no model here)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM probe_items WHERE label = %s", [WRITTEN_LABEL])
        return cursor.fetchone()[0]


def assert_nothing_written(rows_before: int) -> None:
    assert rows_written_by_probe() == rows_before
    assert not KVEntry.objects.filter(key=KV_KEY).exists()
    assert not Job.objects.filter(topic__startswith="probe.").exists()


def seconds_until_status(url: str, expected: int, within: float) -> float | None:
    """Poll ``url`` until it answers ``expected``; the seconds it took, or None after ``within``."""
    start = time.monotonic()
    while True:
        status = get(url)[0]
        elapsed = time.monotonic() - start
        if status == expected:
            return elapsed
        if elapsed > within:
            return None
        time.sleep(0.01)


# -- read only: refused everything else, wherever its code runs ----------------------------------


@pytest.mark.django_db(transaction=True)
def test_read_grant__a_request_may_read_and_is_refused_the_rest_with_a_403(probe_env, live_server_process):
    base = live_server_process(probe_env) + "/api/probe/"
    before = rows_written_by_probe()

    status, _, body = get(base + "read/")
    assert (status, body["done"]) == (200, "read")

    for what in NEEDS:
        status, headers, body = get(base + f"{what}/")
        assert status == 403, (what, body)
        assert headers["Content-Type"] == "application/json"
        assert body["detail"].startswith(refusal(what)), body
        assert body["detail"].endswith(f"manage.py pm grant probe {NEEDS[what]}"), body
    assert_nothing_written(before)


@pytest.mark.django_db(transaction=True)
def test_read_grant__a_job_may_read_and_the_rest_fail_with_the_refusal(probe_env, settings):
    # the pytest process has no probe handlers: it enqueues the topics by pattern
    settings.JOBS = {**getattr(settings, "JOBS", {}), "ALLOWED_TOPICS": ["probe.*"]}
    store = jobs.get_job_store()
    ids = {what: store.enqueue("probe.do", {"what": what}, max_retries=0).id for what in ("read", *NEEDS)}
    before = rows_written_by_probe()

    ran = manage(probe_env, "runjobs", "--burst", "--workers", "1", "--topics", "probe.do")

    assert ran.returncode == 0, ran.stderr
    read = Job.objects.get(pk=ids.pop("read"))
    assert (read.status, read.result["done"]) == ("completed", "read"), read.last_error
    for what, job_id in ids.items():
        job = Job.objects.get(pk=job_id)
        assert (job.status, job.attempts) == ("failed", 1), (what, job.status)
        assert f"CapabilityDenied: {refusal(what)}" in job.last_error, job.last_error
    assert rows_written_by_probe() == before
    assert not KVEntry.objects.filter(key=KV_KEY).exists()
    assert not Job.objects.filter(topic="probe.noop").exists()


@pytest.mark.django_db(transaction=True)
def test_read_grant__a_command_may_read_and_is_refused_the_rest_in_one_line_and_exit_1(probe_env):
    before = rows_written_by_probe()

    read = manage(probe_env, "probe_do", "read")
    assert (read.returncode, read.stdout.split(":")[0]) == (0, "done read"), read.stderr

    for what in NEEDS:
        refused = manage(probe_env, "probe_do", what)
        assert refused.returncode == 1, (what, refused.stdout)
        assert refused.stderr.count("\n") == 1, refused.stderr
        assert refused.stderr.startswith(f"CommandError: {refusal(what)}"), refused.stderr
        assert refused.stdout == ""
    assert_nothing_written(before)


# -- grants reach a running server ------------------------------------------------------------------


def seconds_from_commit_to_status(env: dict[str, str], command: tuple[str, ...], committed, url: str,
                                  expected: int) -> float | None:
    """Run ``manage.py *command`` in another process; once ``committed()`` sees its change in
    the database, poll ``url`` until it answers ``expected``: the seconds from the one to the
    other, or None after ``PROPAGATION``."""
    proc = subprocess.Popen([sys.executable, str(ROOT / "manage.py"), *command], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_until(lambda: committed() or proc.poll() is not None, timeout=30, interval=0.002)
        took = seconds_until_status(url, expected, within=PROPAGATION) if committed() else None
    finally:
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    return took


@pytest.mark.django_db(transaction=True)
def test_pm_grant_and_revoke__reach_a_running_server_within_a_second(probe_env, live_server_process):
    url = live_server_process(probe_env) + "/api/probe/kv/"
    assert get(url)[0] == 403
    held = CapabilityGrant.objects.filter(plugin="probe", capability="kv").exists

    took_grant = seconds_from_commit_to_status(probe_env, ("pm", "grant", "probe", "kv", "WRITE"),
                                               held, url, 200)
    assert took_grant is not None, f"still refused {PROPAGATION}s after pm grant committed"
    assert KVEntry.objects.filter(key=KV_KEY).exists()

    took_revoke = seconds_from_commit_to_status(probe_env, ("pm", "revoke", "probe", "kv"),
                                                lambda: not held(), url, 403)
    assert took_revoke is not None, f"still allowed {PROPAGATION}s after pm revoke committed"
    print(f"\n{connection.vendor}: the server followed pm grant after {took_grant * 1000:.0f} ms, "
          f"pm revoke after {took_revoke * 1000:.0f} ms")


# -- the trace id of the request ----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_refused_request__answers_in_the_trace_it_was_sent(probe_env, live_server_process):
    url = live_server_process(probe_env) + "/api/probe/write/"
    header, trace_id = traceparent()

    status, headers, _ = get(url, {"traceparent": header})

    assert status == 403
    assert trace_id_of(headers["traceparent"]) == trace_id
    assert headers["traceparent"] != header  # the server's own span of that trace
    # the server's audit trail wrote the denial in that trace (its writer thread: soon after)
    assert wait_until(lambda: AuditEvent.objects.filter(
        plugin="probe", decision="denied", action="sql", trace_id=trace_id).exists(), timeout=5)


@pytest.mark.django_db(transaction=True)
def test_a_job_enqueued_by_a_request__is_refused_in_the_requests_trace(probe_env, live_server_process):
    granted = manage(probe_env, "pm", "grant", "probe", "jobs:enqueue", "EXECUTE")
    assert granted.returncode == 0, granted.stderr
    url = live_server_process(probe_env) + "/api/probe/enqueue/?then=write"
    header, trace_id = traceparent()

    status, _, body = get(url, {"traceparent": header})

    assert status == 200, body
    job = Job.objects.get(pk=body["result"])
    assert (job.topic, job.payload) == ("probe.do", {"what": "write"})
    assert trace_id_of(job.trace_context["traceparent"]) == trace_id

    ran = manage(probe_env, "runjobs", "--burst", "--workers", "1", "--topics", "probe.do")

    assert ran.returncode == 0, ran.stderr
    job.refresh_from_db()
    assert job.status == "failed"
    assert f"CapabilityDenied: {refusal('write')}" in job.last_error
    # runjobs flushed its audit trail before it exited: the job's denial, in the request's trace
    denial = AuditEvent.objects.get(plugin="probe", decision="denied")
    assert (denial.action, denial.trace_id) == ("sql", trace_id)
