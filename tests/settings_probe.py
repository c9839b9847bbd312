"""The test settings plus the probe plugin, granted only ``storage:sql`` READ.

Only the processes started by tests/test_governance_processes.py use it: the pytest process
keeps tests.settings, whose installed plugins other tests list exactly.
"""

from .settings import *  # noqa: F403
from .settings import INSTALLED_APPS, TACHYCORE

INSTALLED_APPS = [*INSTALLED_APPS, "tests.plugin_apps.probe"]

TACHYCORE = {**TACHYCORE, "GRANTS": {**TACHYCORE["GRANTS"], "probe": {"storage:sql": "READ"}}}
