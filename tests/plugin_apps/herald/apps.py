from django.apps import AppConfig


class HeraldConfig(AppConfig):
    name = "tests.plugin_apps.herald"
    label = "herald"
