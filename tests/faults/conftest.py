"""Fixtures of the fault suite: servers the test owns (PostgreSQL, Redis), a second host in a
network namespace, and the site's processes (web, runjobs), all stopped and removed at
teardown, even when the test fails.

The suite needs root (initdb runs as ``postgres`` through ``runuser``; namespaces need
CAP_NET_ADMIN), PostgreSQL's server programs and ``redis-server``. Without them a test is
skipped with the reason, unless ``CI=true``: then it fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.helpers.fault_site import DATABASE, SiteProcesses, site_env
from tests.helpers.netns import NetnsHost, ip
from tests.helpers.private_servers import PG_BIN, PrivatePostgres, PrivateRedis
from tests.helpers.processes import manage


def need(condition: bool, reason: str) -> None:
    """Skip the test when ``condition`` is false, or fail it under ``CI=true``."""
    if condition:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and the fault suite cannot run: {reason}")
    pytest.skip(reason)


def _netns_works() -> bool:
    if shutil.which("ip") is None:
        return False
    return ip("netns", "list", check=False).returncode == 0


@pytest.fixture
def private_postgres(tmp_path):
    """``start(listen=..., trusted=...) -> PrivatePostgres``: a cluster of the test's own with a
    migrated database ``faults`` (the test settings' apps); stopped and deleted after."""
    need(os.geteuid() == 0, "the fault suite runs PostgreSQL as the postgres user: it needs root")
    need((PG_BIN / "initdb").exists(), f"no PostgreSQL server programs in {PG_BIN} (TEST_PG_BIN)")
    clusters: list[PrivatePostgres] = []

    def start(listen: tuple[str, ...] = ("127.0.0.1",), trusted: tuple[str, ...] = ()) -> PrivatePostgres:
        cluster = PrivatePostgres(listen=listen, trusted=trusted)
        clusters.append(cluster)
        cluster.init()
        cluster.start()
        cluster.execute("postgres", f"CREATE DATABASE {DATABASE}")
        migrated = manage(site_env(cluster.url(DATABASE)), "migrate", "--noinput", timeout=120)
        assert migrated.returncode == 0, migrated.stderr
        return cluster

    yield start
    for cluster in clusters:
        cluster.remove()


@pytest.fixture
def private_redis():
    """A started ``redis-server`` of the test's own; stopped after."""
    need(shutil.which("redis-server") is not None, "redis-server is not installed")
    server = PrivateRedis()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def netns_host():
    """A created ``NetnsHost``; deleted after."""
    need(os.geteuid() == 0, "network namespaces need root")
    need(_netns_works(), "`ip netns` is not available")
    host = NetnsHost()
    try:
        host.create()
    except subprocess.CalledProcessError as e:
        host.delete()
        need(False, f"cannot create a network namespace: {e.stderr.strip()}")
    yield host
    host.delete()


@pytest.fixture
def site_processes(tmp_path):
    """The site's processes the test starts (``SiteProcesses``); stopped after, stopped ones too."""
    processes = SiteProcesses(tmp_path)
    yield processes
    processes.stop_all()

