"""Several processes writing to one database at once: no "database is locked", nothing lost.

The SQLite set-up checks are skipped on PostgreSQL; the two-writer test runs on both
(on PostgreSQL it checks the same promise: concurrent writers, every write kept).
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from django.conf import settings
from django.db import connection

from demo.audit.models import AuditEvent
from tachycore.models import ApplicationPlugin
from tests.helpers.processes import ROOT, run_together

sqlite_only = pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite set-up")

WRITES_PER_PROCESS = 300

#: one writer: set Django up, say "ready", wait for "go" on stdin, then write.
#: Each transaction reads the registry row before writing it: with SQLite's default
#: (deferred) transactions that read lock cannot be upgraded while the other process
#: writes, and the write fails with "database is locked" at once, whatever the timeout.
WRITER = r"""
import sys
import time

import django

django.setup()

from django.db import transaction

from demo.audit.models import AuditEvent
from tachycore.models import ApplicationPlugin

tag, count = sys.argv[1], int(sys.argv[2])
print("ready", flush=True)
assert sys.stdin.readline().strip() == "go"
started = time.time()
for i in range(count):
    with transaction.atomic():
        row = ApplicationPlugin.objects.select_for_update().get(name="toolbox")
        AuditEvent.objects.create(plugin=f"writer-{tag}", event=str(i))
        row.options = {**row.options, "writes": row.options.get("writes", 0) + 1}
        row.save(update_fields=["options", "updated"])
print("done", started, time.time(), flush=True)
"""


def start_writer(env: dict[str, str], tag: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, tag, str(WRITES_PER_PROCESS)],
        env=env,
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.django_db(transaction=True)
def test_two_processes__write_at_once_without_lock_errors_or_lost_writes(subprocess_env):
    writers = [start_writer(subprocess_env, tag) for tag in ("a", "b")]
    outputs = run_together(writers)  # set up before either writes, so their writes overlap

    for writer, (stdout, stderr) in zip(writers, outputs, strict=True):
        assert "database is locked" not in stdout + stderr
        assert writer.returncode == 0, stderr
    # "done <first write attempt> <last commit>" (wall clock, shared by both processes)
    windows = [tuple(float(x) for x in stdout.split()[1:]) for stdout, _ in outputs]
    # both were writing at the same time, else the test proved nothing (SQLite need not
    # interleave them: a waiting writer may only get the lock when the other is done)
    assert max(start for start, _ in windows) < min(end for _, end in windows)
    total = 2 * WRITES_PER_PROCESS
    assert AuditEvent.objects.filter(plugin__startswith="writer-").count() == total
    for tag in ("a", "b"):
        events = AuditEvent.objects.filter(plugin=f"writer-{tag}")
        assert sorted(int(event) for event in events.values_list("event", flat=True)) == list(
            range(WRITES_PER_PROCESS)
        )
    # each transaction read the counter and wrote it back: a lost update shows here
    assert ApplicationPlugin.objects.get(name="toolbox").options["writes"] == total


@sqlite_only
@pytest.mark.django_db
def test_sqlite__connection_uses_wal():
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode")
        assert cursor.fetchone()[0].lower() == "wal"


@sqlite_only
@pytest.mark.django_db
def test_sqlite__connection_waits_for_the_write_lock():
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA busy_timeout")
        assert cursor.fetchone()[0] >= 1000  # milliseconds


@sqlite_only
def test_sqlite__settings_take_the_write_lock_at_begin_and_wait_for_it():
    options = settings.DATABASES["default"]["OPTIONS"]

    assert options["transaction_mode"] == "IMMEDIATE"
    assert options["timeout"] >= 1
    assert "journal_mode=wal" in options["init_command"].lower()


@sqlite_only
def test_sqlite__demo_site_settings_are_set_up_for_several_processes():
    from demo import settings as demo_settings

    options = demo_settings.DATABASES["default"]["OPTIONS"]

    assert options["transaction_mode"] == "IMMEDIATE"
    assert options["timeout"] >= 1
    assert "journal_mode=wal" in options["init_command"].lower()
