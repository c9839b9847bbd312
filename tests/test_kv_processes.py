"""The key-value store across real processes on one database.

Counters and hash updates are single statements, so processes updating one key
at once lose nothing; a lock is held by one process at a time; and a write in
one process reaches the L1 cache of another within a second. Workers are ``python -c`` scripts on this test's database; each sets
Django up, says "ready", waits for "go" (so that their work overlaps), and
prints what it saw.
"""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import sys
import threading
import time

import pytest
from django.db import connection, connections, transaction

import kv
from kv.models import KVEntry
from tachycore.runtime import runtime
from tests.helpers.processes import ROOT, free_port, run_together, wait_until

WORKER = r"""
import json
import sys
import time

import django

django.setup()

import kv

store = kv.get_store()
mode, key, count, tag = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
print("ready", flush=True)
assert sys.stdin.readline().strip() == "go"
started = time.monotonic()
if mode == "incr":
    print("values", json.dumps([store.incr(key) for _ in range(count)]), flush=True)
elif mode == "hash":
    new_common = 0
    for i in range(count):
        new_common += store.hset(key, f"common-{i}", tag)
        store.hset(key, f"own-{tag}-{i}", i)
        store.hincrby(key, "total")
        store.hincrby(key, f"shared-{i % 5}", 2)
    print("new-common", new_common, flush=True)
elif mode == "lock":
    for i in range(count):
        with store.locked(key, 10, timeout=30) as token:
            entered = time.monotonic()  # CLOCK_MONOTONIC: one clock for all processes
            # a read-modify-write that only the lock keeps whole
            store.set(key + ":counter", (store.get(key + ":counter") or 0) + 1)
            forged = store.unlock(key, "not-" + token)
            still_held = store.lock(key, 10) is None
            time.sleep(0.002)
            left = time.monotonic()
        print("held", json.dumps([entered, left, forged, still_held]), flush=True)
print("done", started, time.monotonic(), flush=True)
"""

#: caches ``key`` in L1 for a minute and prints what ``get`` returns, every 10 ms
READER = r"""
import json
import sys
import time

import django

django.setup()

import kv
from tachycore.runtime import runtime

runtime.start(kind="command")
store = kv.get_store()
key, seconds = sys.argv[1], float(sys.argv[2])
deadline = time.monotonic() + seconds
while time.monotonic() < deadline:
    value = store.get(key)
    print(json.dumps([value, store.l1.get(key) is not None]), flush=True)
    time.sleep(0.01)
"""

PROCESSES = 4
#: PostgreSQL sessions of the workers commit without waiting for the disk: what these
#: tests check (atomicity, locking, visibility between sessions) does not depend on it,
#: and waiting for an fsync at each commit makes 8000 increments take 18 s instead of 6
FAST_COMMITS = {"PGOPTIONS": "-c synchronous_commit=off"}


def run_workers(env: dict[str, str], mode: str, key: str, count: int, timeout: float = 60) -> list[list[str]]:
    """Start the workers, let them go at once, and return each one's output lines."""
    env = {**env, **FAST_COMMITS}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, mode, key, str(count), str(tag)],
            env=env, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for tag in range(PROCESSES)
    ]
    outputs = run_together(workers, timeout)
    for worker, (_, stderr) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, stderr
    lines = [stdout.splitlines() for stdout, _ in outputs]
    # "done <first operation> <last operation>": the workers' busy times overlapped,
    # else nothing raced and the test proved nothing
    windows = [[float(x) for x in output[-1].split()[1:]] for output in lines]
    assert max(start for start, _ in windows) < min(end for _, end in windows)
    return lines


def field(lines: list[str], name: str) -> str:
    return next(line.split(" ", 1)[1] for line in lines if line.startswith(name + " "))


@pytest.mark.django_db(transaction=True)
def test_incr__four_processes_lose_no_increment(subprocess_env):
    count = 2000

    outputs = run_workers(subprocess_env, "incr", "counter", count)

    assert kv.get_store().get("counter") == PROCESSES * count
    # every increment saw a different total: none read a value another had already used
    seen = [value for lines in outputs for value in json.loads(field(lines, "values"))]
    assert sorted(seen) == list(range(1, PROCESSES * count + 1))


@pytest.mark.django_db(transaction=True)
def test_hash__four_processes_lose_no_field_or_increment(subprocess_env):
    count = 150
    # the hash exists before they start: test_hset__field_a_concurrent_transaction_created_is_not_new
    # covers the race to create it
    kv.get_store().hset("h", "seed", 0)

    outputs = run_workers(subprocess_env, "hash", "h", count)

    found = kv.get_store().hgetall("h")
    for tag in range(PROCESSES):
        for i in range(count):
            assert found[f"own-{tag}-{i}"] == i
    assert found["total"] == PROCESSES * count
    assert [found[f"shared-{j}"] for j in range(5)] == [2 * PROCESSES * count // 5] * 5
    assert all(found[f"common-{i}"] in {str(tag) for tag in range(PROCESSES)} for i in range(count))
    assert len(found) == 1 + PROCESSES * count + 1 + 5 + count
    # each common field was new to exactly one of the processes that set it
    assert sum(int(field(lines, "new-common")) for lines in outputs) == count


@pytest.mark.django_db(transaction=True)
def test_hset__field_a_concurrent_transaction_created_is_not_new():
    # two sessions (a thread has its own connection): the second hset waits for the
    # first one's transaction, which creates the hash, then must see the field as old
    store = kv.get_store()
    results: dict[str, int] = {}

    def hset_meanwhile() -> None:
        try:
            results["second"] = store.hset("h", "f", "second")
        finally:
            connections.close_all()

    second = threading.Thread(target=hset_meanwhile)
    with transaction.atomic():
        results["first"] = store.hset("h", "f", "first")
        second.start()
        time.sleep(0.3)  # the second session is now waiting for this transaction
    second.join(10)

    assert results == {"first": 1, "second": 0}
    assert store.hgetall("h") == {"f": "second"}


@pytest.mark.django_db(transaction=True)
def test_lock__four_processes_never_hold_it_at_once(subprocess_env):
    count = 25
    env = {**subprocess_env, "KV_L1_ENABLED": "false"}  # the counter must be read from the database

    outputs = run_workers(env, "lock", "the-lock", count)

    held = [json.loads(line.split(" ", 1)[1]) for lines in outputs for line in lines if line.startswith("held ")]
    assert len(held) == PROCESSES * count
    spans = sorted((entered, left) for entered, left, _, _ in held)
    for (_, previous_left), (entered, _) in zip(spans, spans[1:], strict=False):
        assert entered >= previous_left, "two processes held the lock at the same time"
    assert kv.get_store().get("the-lock:counter") == PROCESSES * count
    # a wrong token never released the lock, which stayed held
    assert [forged for _, _, forged, _ in held] == [False] * len(held)
    assert [still for _, _, _, still in held] == [True] * len(held)
    assert not KVEntry.objects.filter(key="the-lock").exists()


UNLOCKER = r"""
import json
import sys

import django

django.setup()

import kv

store = kv.get_store()
key, token = sys.argv[1], sys.argv[2]
print(json.dumps([store.lock(key, 30), store.unlock(key, "forged"), store.unlock(key, token + "x")]))
"""


@pytest.mark.django_db(transaction=True)
def test_unlock__another_process_with_a_wrong_token_cannot_release_the_lock(subprocess_env):
    store = kv.get_store()
    token = store.lock("L", 30)

    other = subprocess.run(
        [sys.executable, "-c", UNLOCKER, "L", token],
        env=subprocess_env, cwd=ROOT, capture_output=True, text=True, timeout=60,
    )

    assert other.returncode == 0, other.stderr
    assert json.loads(other.stdout) == [None, False, False]
    assert store.unlock("L", token) is True


class LineReader:
    """The output lines of a process, read on a thread so that waits stay bounded."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            self.lines.put(line)

    def wait_for(self, predicate, timeout: float) -> tuple[list, float]:
        """Read until a line satisfies ``predicate``; return the lines read and when it came."""
        deadline = time.monotonic() + timeout
        read = []
        while time.monotonic() < deadline:
            try:
                line = json.loads(self.lines.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                break
            read.append(line)
            if predicate(line):
                return read, time.monotonic()
        raise AssertionError(f"no matching line within {timeout} s; last lines: {read[-5:]}")

    def drain(self, seconds: float) -> list:
        time.sleep(seconds)
        read = []
        while not self.lines.empty():
            read.append(json.loads(self.lines.get()))
        return read


@pytest.mark.django_db(transaction=True)
def test_l1__write_reaches_the_l1_of_another_process_within_a_second(subprocess_env, tmp_path):
    """On PostgreSQL through the write's NOTIFY; on SQLite, which carries no message between
    processes, through the reader's commit watcher and the change counter (``kv.watcher``)."""
    store = kv.get_store()
    store.set("shared", "v1")
    errors = tmp_path / "reader.err"  # a file: a full pipe would stall the reader
    with errors.open("w") as stderr:
        reader = subprocess.Popen(
            [sys.executable, "-c", READER, "shared", "45"],
            env={**subprocess_env, "KV_L1_TTL": "60"}, cwd=ROOT, stdout=subprocess.PIPE, stderr=stderr, text=True,
        )
    try:
        lines = LineReader(reader)
        lines.wait_for(lambda line: line == ["v1", True], timeout=20)
        writes = [
            (lambda: store.set("shared", "v2"), "v2"),
            # so many keys at once that the message says "drop everything"
            (lambda: store.mset({"shared": "v3", **{f"filler-{i:02}-" + "x" * 100: i for i in range(60)}}), "v3"),
            (lambda: store.delete("shared"), None),
        ]
        if connection.vendor == "postgresql":
            # a change nobody announces stays hidden behind the reader's L1 ...
            behind_its_back = KVEntry.objects.filter(key="shared").update(value="unannounced")
            assert behind_its_back == 1
            assert {tuple(line) for line in lines.drain(0.5)} == {("v1", True)}
        else:
            # while nothing is written, the reader keeps serving its L1 ...
            assert {tuple(line) for line in lines.drain(0.5)} == {("v1", True)}
            # ... and on SQLite any writer moves the change counter, the ORM's too
            writes.insert(2, (lambda: KVEntry.objects.filter(key="shared").update(value="v4"), "v4"))

        # ... and each write through the store reaches it within a second
        for write, expected in writes:
            written = time.monotonic()
            write()
            _, seen = lines.wait_for(lambda line, value=expected: line[0] == value, timeout=5)
            assert seen - written < 1.0, f"{expected!r} took {seen - written:.2f} s to reach the other process"
    finally:
        reader.kill()
        reader.wait()
        reader.stdout.close()
    assert "Traceback" not in errors.read_text(), errors.read_text()


#: like READER, with whether this process's sync listener is live: ``[value, in L1, live]``
LIVE_READER = READER.replace(
    "print(json.dumps([value, store.l1.get(key) is not None]), flush=True)",
    "print(json.dumps([value, store.l1.get(key) is not None, runtime.push_live]), flush=True)",
)


class RedisServer:
    """A redis-server of this test alone, on a free port, that the test stops and starts."""

    def __init__(self, directory) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.directory = directory
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        assert wait_until(self._answers, timeout=10), "redis-server did not start"

    def _answers(self) -> bool:
        import redis

        try:
            return bool(redis.Redis.from_url(self.url, socket_connect_timeout=0.5).ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None


@pytest.fixture
def redis_server(tmp_path):
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.mark.django_db(transaction=True)
def test_l1__another_process_stops_trusting_its_l1_while_redis_is_down(subprocess_env, tmp_path, settings,
                                                                       redis_server):
    pubsub = {"BACKEND": "tachycore.pubsub.redis.RedisPubSub", "OPTIONS": {"URL": redis_server.url}}
    settings.TACHYCORE = {**settings.TACHYCORE, "PUBSUB": pubsub}  # this process writes, as A
    runtime.reset_pubsub()
    store = kv.get_store()
    store.set("shared", "v1")
    errors = tmp_path / "reader.err"  # a file: a full pipe would stall the reader
    with errors.open("w") as stderr:
        reader = subprocess.Popen(  # B: its L1 keeps a value for a minute unless told otherwise
            [sys.executable, "-c", LIVE_READER, "shared", "60"],
            env={**subprocess_env, "KV_L1_TTL": "60", "TACHYCORE_PUBSUB": json.dumps(pubsub)},
            cwd=ROOT, stdout=subprocess.PIPE, stderr=stderr, text=True,
        )
    try:
        lines = LineReader(reader)
        lines.wait_for(lambda line: line == ["v1", True, True], timeout=20)

        redis_server.stop()
        store.set("shared", "v2")  # the message is lost: nobody listens
        written = time.monotonic()
        _, seen = lines.wait_for(lambda line: line[0] == "v2", timeout=10)
        assert seen - written < 0.5, f"B served the old value from L1 for {seen - written:.2f} s"
        # while Redis is down B reads the database: nothing lands in its L1
        down = lines.drain(0.5)
        assert down and {tuple(line) for line in down} == {("v2", False, False)}

        redis_server.start()
        lines.wait_for(lambda line: line == ["v2", True, True], timeout=20)  # live, and L1 in use
        for value in ("v3", "v4"):
            store.set("shared", value)
            written = time.monotonic()
            _, seen = lines.wait_for(lambda line, value=value: line[0] == value, timeout=5)
            assert seen - written < 1.0, f"{value!r} took {seen - written:.2f} s to reach B after the restart"
            lines.wait_for(lambda line, value=value: line == [value, True, True], timeout=5)
    finally:
        reader.kill()
        reader.wait()
        reader.stdout.close()
    assert "Traceback" not in errors.read_text(), errors.read_text()
