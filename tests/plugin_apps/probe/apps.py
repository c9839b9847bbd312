from django.apps import AppConfig


class ProbeConfig(AppConfig):
    name = "tests.plugin_apps.probe"
    label = "probe"
