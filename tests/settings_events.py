"""The test settings plus the herald plugin (tests/plugin_apps/herald).

Only the processes started by tests/test_events.py use it: the pytest process keeps
tests.settings, whose installed plugins other tests list exactly.
"""

from .settings import *  # noqa: F403
from .settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.plugin_apps.herald"]
