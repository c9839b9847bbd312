from tachycore.plugins import Plugin


class ProbePlugin(Plugin):
    """A test plugin that reads its own table and asks for nothing more; the tests of
    tests/test_governance_processes.py have it try more (only under tests.settings_probe)."""

    name = "probe"
    version = "1.0.0"
    description = "Tries one operation per request, job or command, to show what its grants allow."
    urls = "tests.plugin_apps.probe.urls"
    capabilities = {"storage:sql": "READ"}
