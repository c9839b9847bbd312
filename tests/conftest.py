from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
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


@pytest.fixture
def live_server_process(subprocess_env):
    """Start ``manage.py runserver`` in a new process; yield its base URL; stop it after."""
    servers = []

    def start(env: dict[str, str] | None = None) -> str:
        import urllib.request

        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "runserver", f"127.0.0.1:{port}", "--noreload"],
            env=env or subprocess_env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        servers.append(proc)
        url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            try:
                urllib.request.urlopen(url + "/admin/login/", timeout=1)
                return True
            except OSError:
                return proc.poll() is not None

        wait_until(up, timeout=30, interval=0.1)
        if proc.poll() is not None:
            raise RuntimeError(f"runserver exited: {proc.stderr.read().decode()}")
        return url

    yield start
    for proc in servers:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
