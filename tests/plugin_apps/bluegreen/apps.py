from django.apps import AppConfig


class BlueGreenConfig(AppConfig):
    name = "tests.plugin_apps.bluegreen"
    label = "bluegreen"
