from django.apps import AppConfig


class ToolboxConfig(AppConfig):
    name = "tests.plugin_apps.toolbox"
    label = "toolbox"
