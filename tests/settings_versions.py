"""The test settings plus the versioned plugin, at the version the environment gives
(``TESTS_VERSIONED_VERSION``, 1.0.0 by default), with the migrations of that release.

Only the processes started by tests/test_versions.py use it: the pytest process keeps
tests.settings, whose installed plugins other tests list exactly.
"""

import os

from .settings import *  # noqa: F403
from .settings import INSTALLED_APPS, TACHYCORE

INSTALLED_APPS = [*INSTALLED_APPS, "tests.plugin_apps.versioned"]

TACHYCORE = {**TACHYCORE, "GRANTS": {**TACHYCORE["GRANTS"], "versioned": {"storage:sql": "WRITE"}}}

# release 1.1.0 brings a migration that 1.0.0 does not have
if os.environ.get("TESTS_VERSIONED_VERSION", "1.0.0") != "1.0.0":
    MIGRATION_MODULES = {"versioned": "tests.plugin_apps.versioned.migrations_1_1"}
