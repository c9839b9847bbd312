"""``manage.py probe_do WHAT``: try one operation as the probe plugin."""

from django.core.management.base import BaseCommand

from tests.plugin_apps.probe.operations import OPERATIONS, run


class Command(BaseCommand):
    help = "Try one operation (read, write, foreign, kv, enqueue) as the probe plugin."

    def add_arguments(self, parser):
        parser.add_argument("what", choices=sorted(OPERATIONS))

    def handle(self, *, what, **options):
        self.stdout.write(f"done {what}: {run(what)}")
