"""Test settings: the demo site plus test plugin apps, on SQLite unless DATABASE_URL says otherwise."""

import json
import os
import tempfile

import environ

from demo.settings import *  # noqa: F403
from demo.settings import INSTALLED_APPS
from tachycore.db import configure_sqlite

env = environ.Env()

# a file, not :memory:, so that subprocesses started by tests share the test database
_SQLITE_PATH = os.path.join(tempfile.gettempdir(), "tachybundle-tests.sqlite3")

DATABASES = {
    "default": configure_sqlite(env.db("DATABASE_URL", default=f"sqlite:///{_SQLITE_PATH}")),
}
# one test database per test run, so that two runs on one machine do not collide;
# subprocesses started by the tests get the test database's name in DATABASE_URL
_RUN = os.getpid()
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    DATABASES["default"]["TEST"] = {
        "NAME": os.path.join(tempfile.gettempdir(), f"tachybundle-test-{_RUN}.sqlite3")
    }
else:
    DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}_{_RUN}"}
    # TEST_PREPARE_THRESHOLD=5: server-side prepared statements on (Django's default is off),
    # the set-up under which kv and jobs prepare their hot statements
    if os.environ.get("TEST_PREPARE_THRESHOLD"):
        DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = int(os.environ["TEST_PREPARE_THRESHOLD"])

INSTALLED_APPS = [*INSTALLED_APPS, "tests.plugin_apps.toolbox", "tests.plugin_apps.bluegreen"]

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

TACHYCORE = {
    # tests wait for other processes' changes: check often
    "STATE_CHECK_INTERVAL": "50ms",
    "RECONCILE_INTERVAL": "1s",
    "HEARTBEAT_INTERVAL": "1s",
    # the pytest process is no node (its test transactions would block the node writes);
    # subprocesses started by tests are: tests.fixtures.site.subprocess_env turns it on
    "START_RUNTIME": False,
    # what the demo plugins ask for, granted as code (tests of refusals revoke or override it)
    "GRANTS": {
        "audit": {"storage:sql": "WRITE"},
        "notes": {"storage:sql": "WRITE", "service:audit:record": "WRITE", "jobs:enqueue": "EXECUTE"},
    },
}
LOGGING = {"version": 1, "disable_existing_loggers": False}

# the APIs' throttles stay on, at rates the suite never reaches (their counts live in the
# process's LocMemCache across tests); in the environment, which comes before the KV and JOBS
# dicts that tests replace. tests/test_api_throttle.py sets low rates with app_env.
_NEVER_REACHED = "100000/s"
os.environ.setdefault("KV_THROTTLE_RATES", json.dumps(dict.fromkeys(("anon", "read", "write"), _NEVER_REACHED)))
os.environ.setdefault("JOBS_THROTTLE_RATES",
                      json.dumps(dict.fromkeys(("anon", "enqueue", "read", "manage"), _NEVER_REACHED)))
