"""A test plugin whose code says which version it is from the environment, so that two
processes of one test can run two releases of it (a rolling restart half done)."""

import os

from tachycore.plugins import Plugin

#: the environment variable that gives the version of this plugin's code in a process
VERSION_VARIABLE = "TESTS_VERSIONED_VERSION"


class VersionedPlugin(Plugin):
    """Records each run of its ``upgrade`` hook in its own table (tests/test_versions.py)."""

    name = "versioned"
    version = os.environ.get(VERSION_VARIABLE, "1.0.0")
    description = "Its version comes from the environment; each upgrade() leaves a row."
    capabilities = {"storage:sql": "WRITE"}

    def upgrade(self, from_version: str) -> None:
        from .models import Upgrade

        Upgrade.objects.create(from_version=from_version, to_version=self.version, pid=os.getpid())
