"""The HTTP APIs against plain Django views making the same store call, under a real server.

    .venv/bin/pip install -e '.[dev,redis,bench]'                  # gunicorn
    .venv/bin/python bench/http_api.py                                   # SQLite (a temporary file)
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/tachy_bench .venv/bin/python bench/http_api.py

On PostgreSQL the run works in a scratch database ``<name>_http`` beside the one named
(created afresh, dropped at the end unless ``--keep``). The site is ``bench/http_site``: the
demo's settings (``DEBUG`` off, Django's default database configuration, every middleware
of the demo), both APIs on, and two plain views (``/plain/kv/<key>/``, ``/plain/jobs/``)
that call ``kv.get_store().get`` and ``jobs.get_job_store().enqueue`` and return a
``JsonResponse``, with no DRF and no authentication: the anchors.

gunicorn serves the site with ``--workers`` (2) sync workers; the load generator is this
process: ``--clients`` threads, each sending one request at a time on a new connection (a
sync worker closes each connection after its response) and timing it, for ``--duration``
seconds per round. The API requests carry ``Authorization: Token ...`` of a user who is
neither staff nor superuser and holds only ``kv.view_kventry`` and ``jobs.add_job``. Each
round visits the four endpoints in turn (plain kv read, API kv read, plain enqueue, API
enqueue), so that a load that comes and goes falls on all of them; a rate is the requests
of all rounds over their time, the latencies their percentiles, and the ratio that the goal
reads is the median over the rounds of the API's rate over its anchor's in the same round.

The machine's cores are shared by the server's workers, the database and this load
generator: figures compare within a run, not with another machine's.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
BENCH = str(ROOT / "bench")
# run as a script, this file's folder comes first on sys.path, and "http" would be this file
sys.path[:] = [str(ROOT)] + [p for p in sys.path if p not in (BENCH, str(ROOT))]
os.environ["DJANGO_SETTINGS_MODULE"] = "bench.http_site.settings"
from bench import demo_site  # noqa: E402 (after the path it is found on)
from bench.demo_site import debug_off  # noqa: E402

debug_off()
os.environ.setdefault("TACHYCORE_LOG_LEVEL", "WARNING")

LOGS = Path(tempfile.mkdtemp(prefix="bench-http-"))
KEY = "bench:http/object"
#: a 100-byte JSON object, as bench/kv.py reads
VALUE = {"name": "bench", "tags": ["a", "b", "c"], "count": 12345, "ratio": 0.5, "note": "x" * 38}
TOPIC = "bench.http"
GOAL = 0.7


# -- the database and the site ---------------------------------------------------------------

def scratch_database(keep: bool) -> Callable[[], None]:
    """Point DATABASE_URL at a fresh scratch database; return what drops it at the end."""
    return demo_site.scratch_database(keep, "http", str(LOGS))


def prepare_site() -> str:
    """Migrate, store the key, make the token user; the token."""
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    from django.contrib.auth.models import Permission, User
    from rest_framework.authtoken.models import Token

    import kv

    kv.get_store().set(KEY, VALUE)
    user = User.objects.create_user("bench-api", password=None)
    user.user_permissions.set(Permission.objects.filter(
        content_type__app_label__in=("kv", "jobs"), codename__in=("view_kventry", "add_job")))
    token = Token.objects.create(user=user).key
    from django.db import connections

    connections.close_all()
    return token


class Server:
    """gunicorn serving the bench site, stopped (SIGTERM, then SIGKILL) at the end."""

    def __init__(self, port: int, workers: int) -> None:
        self.port = port
        self.command = [sys.executable, "-m", "gunicorn", "--workers", str(workers),
                        "--bind", f"127.0.0.1:{port}", "--log-level", "warning", "demo.wsgi:application"]
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> Server:
        log = open(LOGS / "gunicorn.log", "ab")  # noqa: SIM115 - the child has its copy
        self.proc = subprocess.Popen(self.command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited ({self.proc.returncode}); see {LOGS}/gunicorn.log")
            with contextlib.suppress(OSError):
                if exchange(self.port, b"GET /plain/kv/x/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")[0]:
                    return self
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not answer within 30 s; see {LOGS}/gunicorn.log")

    def __exit__(self, *exc) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)  # the group this bench started for it
            self.proc.wait(5)


# -- the load generator ----------------------------------------------------------------------

def exchange(port: int, request: bytes) -> tuple[int, bytes]:
    """Send one request on a new connection and read the response to its end (the server
    closes the connection); its status and body."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    response = b"".join(chunks)
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head[9:12]) if head.startswith(b"HTTP/1.") else 0, body


def http_request(method: str, path: str, token: str | None = None, body: object = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Accept: application/json"]
    if token:
        lines.append(f"Authorization: Token {token}")
    data = b""
    if body is not None:
        data = json.dumps(body).encode()
        lines += ["Content-Type: application/json", f"Content-Length: {len(data)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + data


@dataclass
class Endpoint:
    name: str
    request: bytes
    status: int
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    #: the rate of each round
    rounds: list[float] = field(default_factory=list)

    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def percentile(self, pct: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))] if ordered else 0.0


def load(port: int, endpoint: Endpoint, clients: int, duration: float, record: bool = True) -> None:
    """``clients`` threads send ``endpoint``'s request back to back for ``duration`` seconds."""
    stop = time.perf_counter() + duration
    lock = threading.Lock()
    wrong: list[str] = []

    def client() -> None:
        mine = []
        while (started := time.perf_counter()) < stop:
            status, body = exchange(port, endpoint.request)
            if status == endpoint.status:
                mine.append(time.perf_counter() - started)
            else:
                wrong.append(f"{status} {body[:200]!r}")
        with lock:
            if record:
                endpoint.latencies += mine

    threads = [threading.Thread(target=client) for _ in range(clients)]
    before = len(endpoint.latencies)
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if record:
        seconds = time.perf_counter() - began
        endpoint.rounds.append((len(endpoint.latencies) - before) / seconds)
        endpoint.seconds += seconds
    if wrong:
        raise RuntimeError(f"{endpoint.name}: {len(wrong)} unexpected responses, first: {wrong[0]}")


# -- the run -----------------------------------------------------------------------------------

def endpoints(token: str) -> list[Endpoint]:
    key = quote(KEY, safe="")
    job = {"topic": TOPIC, "payload": {"n": 1}}
    return [
        Endpoint("plain kv get", http_request("GET", f"/plain/kv/{key}/"), 200),
        Endpoint("API GET /api/kv/keys/<key>/", http_request("GET", f"/api/kv/keys/{key}/", token), 200),
        Endpoint("plain enqueue", http_request("POST", "/plain/jobs/", body=job), 201),
        Endpoint("API POST /api/jobs/", http_request("POST", "/api/jobs/", token, job), 201),
    ]


def paired_ratio(anchor: Endpoint, api: Endpoint) -> float:
    """The median over the rounds of the API's rate over the anchor's in the same round: a
    load that comes and goes on the shared machine moves both figures of a round alike."""
    return statistics.median(b / a for a, b in zip(anchor.rounds, api.rounds, strict=True))


def report(args, points: list[Endpoint], vendor: str) -> None:
    load1, load5, _ = os.getloadavg()
    print(f"\n{vendor}: gunicorn {args.workers} sync workers; {args.clients} clients, a new connection "
          f"per request; {args.rounds} rounds of {args.duration:g} s per endpoint; load average "
          f"{load1:.2f} {load5:.2f}\n")
    print("| endpoint | requests | req/s | p50 | p99 | ratio to plain (all requests) | ratio, median of rounds |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for anchor, api in (points[0:2], points[2:4]):
        for point in (anchor, api):
            ratios = ("(anchor)", "") if point is anchor else (
                f"{point.rate() / anchor.rate():.2f}x", f"**{paired_ratio(anchor, point):.2f}x**")
            print(f"| {point.name} | {len(point.latencies):,} | {point.rate():,.0f} | "
                  f"{point.percentile(50) * 1000:.2f} ms | {point.percentile(99) * 1000:.2f} ms | "
                  f"{ratios[0]} | {ratios[1]} |")
    print()
    for anchor, api in (points[0:2], points[2:4]):
        ratio = paired_ratio(anchor, api)
        print(f"goal: {api.name} >= {GOAL}x {anchor.name}: {ratio:.2f}x (median of rounds), "
              f"{'met' if ratio >= GOAL else 'not met'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2, help="gunicorn's sync workers")
    parser.add_argument("--clients", type=int, default=4, help="concurrent client threads")
    parser.add_argument("--duration", type=float, default=1.5, help="seconds per endpoint per round")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds per endpoint before the rounds")
    parser.add_argument("--port", type=int, default=18100)
    parser.add_argument("--keep", action="store_true", help="keep the PostgreSQL scratch database")
    args = parser.parse_args()

    drop = scratch_database(args.keep)
    try:
        token = prepare_site()
        from django.db import connection

        points = endpoints(token)
        with Server(args.port, args.workers):
            for point in points:
                load(args.port, point, args.clients, args.warmup, record=False)
            for _ in range(args.rounds):
                for point in points:
                    load(args.port, point, args.clients, args.duration)
        report(args, points, connection.vendor)
    finally:
        drop()
        print(f"logs: {LOGS}")


if __name__ == "__main__":
    main()
