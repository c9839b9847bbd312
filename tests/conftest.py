from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent


def _vendor() -> str:
    return "postgresql" if "postgresql" in settings.DATABASES["default"]["ENGINE"] else "sqlite"


def pytest_collection_modifyitems(config, items):
    if _vendor() == "postgresql":
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL (runs in the PostgreSQL pass of make test)")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The Redis used by tests; skipped when unreachable, except in CI where that fails."""
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except (redis.RedisError, OSError) as e:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and Redis is not reachable at {REDIS_URL}: {e}")
        pytest.skip(f"Redis is not reachable at {REDIS_URL}: {e}")
    return REDIS_URL


@pytest.fixture(autouse=True)
def _fresh_plugin_manager():
    """Each test starts with a manager that has read nothing yet."""
    from tachycore.maintenance import maintenance
    from tachycore.manager import plugin_manager
    from tachycore.runtime import runtime

    plugin_manager.reset()
    maintenance.forget()
    yield
    runtime.reset()
    plugin_manager.reset()
    maintenance.forget()


@pytest.fixture
def fast_jobs(settings):
    """Retries and polling in milliseconds, so dispatcher tests do not wait on defaults."""
    settings.JOBS = {"RETRY_DELAY": "10ms", "RETRY_DELAY_MAX": "1s", "POLL_INTERVAL": "10ms"}


@pytest.fixture
def subprocess_env(transactional_db) -> dict[str, str]:
    """Environment for a subprocess that uses this test's database (committed data only)."""
    from django.db import connection

    db = connection.settings_dict
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST")}
    env["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    env["TACHYCORE_START_RUNTIME"] = "true"
    env["PYTHONPATH"] = str(ROOT)
    if connection.vendor == "sqlite":
        env["DATABASE_URL"] = f"sqlite:///{db['NAME']}"
    else:
        env["DATABASE_URL"] = (
            f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
        )
    return env


def manage(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run ``manage.py`` in a new process; return the finished process with text output."""
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout: float, interval: float = 0.02):
    """Call ``predicate`` until it returns a true value; return it, or the last value at timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def fetch(url: str, accept: str | None = None) -> tuple[int, dict[str, str], str]:
    """GET ``url`` without following redirects; return status, headers and body."""
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    try:
        with _opener.open(request, timeout=2) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def status_of(url: str) -> int:
    return fetch(url)[0]


def make_node(node_id: str, *, kind: str = "web", status: str = "running", age: float = 0.0,
              maintenance: bool = False, errors: list[dict[str, str]] | None = None,
              name: str = "gunicorn"):
    """A supervisor node row whose last heartbeat was ``age`` seconds ago."""
    from datetime import timedelta

    from django.utils import timezone

    from tachycore.models import Node

    now = timezone.now()
    return Node.objects.create(
        id=node_id, kind=kind, name=name, hostname="host-a", pid=4242, status=status,
        started=now - timedelta(seconds=age + 60), heartbeat=now - timedelta(seconds=age),
        maintenance=maintenance, last_errors=errors or [],
    )


def start_server(env: dict[str, str]) -> tuple[str, subprocess.Popen]:
    """Start ``manage.py runserver`` on a free port; return its base URL and process once it answers."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "runserver", f"127.0.0.1:{port}", "--noreload"],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            urllib.request.urlopen(url + "/admin/login/", timeout=1).close()
            return True
        except OSError:
            return proc.poll() is not None

    wait_until(up, timeout=30, interval=0.1)
    if proc.poll() is not None:
        raise RuntimeError(f"runserver exited: {proc.stderr.read().decode()}")
    return url, proc


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if proc.stderr:
        proc.stderr.close()


@pytest.fixture
def server_processes(subprocess_env):
    """``start(env=None) -> (url, Popen)``: real servers on this test's database, stopped after."""
    procs: list[subprocess.Popen] = []

    def start(env: dict[str, str] | None = None) -> tuple[str, subprocess.Popen]:
        url, proc = start_server(env or subprocess_env)
        procs.append(proc)
        return url, proc

    yield start
    for proc in procs:
        stop_server(proc)


@pytest.fixture
def live_server_process(server_processes):
    """``start(env=None) -> url``: a real ``runserver`` on this test's database, stopped after."""
    return lambda env=None: server_processes(env)[0]


class FrozenClock:
    """kv's clocks (``kv.clock``: epoch milliseconds and L1's monotonic seconds), standing
    still until ``advance`` moves both."""

    def __init__(self) -> None:
        self.now = self._start = int(time.time() * 1000)

    def now_ms(self) -> int:
        return self.now

    def monotonic(self) -> float:
        # from 0, so that a lifetime ends exactly where the key's TTL does (small floats add exactly)
        return (self.now - self._start) / 1000

    def advance(self, seconds: float) -> None:
        self.now += round(seconds * 1000)


@pytest.fixture
def clock(monkeypatch) -> FrozenClock:
    """Stop kv's clocks (the store, the cache backend, L1, the key admin): TTLs become exact,
    and tests move time with ``advance``."""
    from kv import clock as kv_clock

    frozen = FrozenClock()
    monkeypatch.setattr(kv_clock, "now_ms", frozen.now_ms)
    monkeypatch.setattr(kv_clock, "monotonic", frozen.monotonic)
    return frozen


def run_together(procs: list[subprocess.Popen], timeout: float = 120) -> list[tuple[str, str]]:
    """Let processes that print "ready" and wait for "go" on stdin start at the same moment,
    so that their work overlaps; return each one's ``(stdout, stderr)``. They are killed on failure."""
    import select

    try:
        deadline = time.monotonic() + 30
        for proc in procs:
            ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
            assert ready, "a process did not start within 30 s"
            line = proc.stdout.readline().strip()
            assert line == "ready", f"{line!r} {proc.stderr.read() if proc.poll() is not None else ''}"
        for proc in procs:
            proc.stdin.write("go\n")
            proc.stdin.flush()
        return [proc.communicate(timeout=timeout) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


CHROMIUM = os.environ.get("TEST_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="module")
def chromium():
    """Debian's headless Chromium driven by Playwright (never a downloaded browser); skipped
    when it is not installed, except in CI where that fails (.ci/run installs it)."""
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
        pytest.skip(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium chromium-driver)")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread while it is open (so only for
    # one module: later tests may run their own loop); the test's own ORM calls are plain
    # synchronous code all the same
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def browser_page(chromium):
    """A fresh browser context (no cookies) and page, 1280x800."""
    context = chromium.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


@pytest.fixture
def admin_site(live_server_process):
    """A real ``runserver`` on this test's database and a superuser ``admin`` / ``secret-pw``;
    returns ``(url, login(page))``."""
    from django.contrib.auth.models import User

    User.objects.create_superuser("admin", "admin@example.com", "secret-pw")
    url = live_server_process()

    def login(page) -> None:
        page.goto(url + "/admin/login/?next=/admin/")
        page.fill("#id_username", "admin")
        page.fill("#id_password", "secret-pw")
        page.click("input[type=submit]")
        page.wait_for_url(url + "/admin/")

    return url, login
