from tachycore.plugins import Plugin


class ToolboxPlugin(Plugin):
    """A built-in plugin of the test site: added, installed and enabled by migrate."""

    name = "toolbox"
    version = "2.0.0"
    built_in = True
    description = "Built-in test plugin."
    urls = "tests.plugin_apps.toolbox.urls"
