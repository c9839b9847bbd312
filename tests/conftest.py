"""Fixtures for every test (defined by concern in tests/fixtures/) and the PostgreSQL marker."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from django.conf import settings

from tests.fixtures.browser import admin_site, browser_page, chromium  # noqa: F401
from tests.fixtures.clock import clock  # noqa: F401
from tests.fixtures.servers import live_server_process, server_processes  # noqa: F401
from tests.fixtures.site import (  # noqa: F401
    _fresh_plugin_manager,
    app_env,
    fast_jobs,
    no_grants,
    redis_url,
    registered,
    subprocess_env,
)


def _vendor() -> str:
    return "postgresql" if "postgresql" in settings.DATABASES["default"]["ENGINE"] else "sqlite"


def pytest_collection_modifyitems(config, items):
    if _vendor() == "postgresql":
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL (runs in the PostgreSQL pass of make test)")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


def pytest_sessionfinish(session, exitstatus):
    """``bench/governance.py --suite``: the SQL classifier's cache hits and misses over the run."""
    path = os.environ.get("TACHY_CLASSIFIER_STATS")
    if path:
        from tachycore.sql_classifier import cache_info

        info = cache_info()
        Path(path).write_text(json.dumps({"hits": info.hits, "misses": info.misses}))


@pytest.fixture(autouse=True)
def _audit_queue_emptied():
    """What a test recorded and did not flush is not written into the next test's database
    (nor, after the last test, into no database at all while the test database is dropped)."""
    yield
    from tachycore import audit

    audit.trail.reset()


@pytest.fixture(autouse=True)
def _kv_watcher_stopped():
    """A commit watcher of kv's L1 (SQLite, ``kv.watcher``) that a test started ends with it:
    left running, it would empty L1 under later tests at each of their commits (its job)."""
    yield
    from kv import watcher

    watcher.stop()
