from django.apps import AppConfig


class VersionedConfig(AppConfig):
    name = "tests.plugin_apps.versioned"
    label = "versioned"
