"""``manage.py whoami``: print the plugin the kernel runs this command as."""

from django.core.management.base import BaseCommand

from tachycore.context import current_plugin


class Command(BaseCommand):
    help = "Print the plugin this command runs as."

    def handle(self, *args, **options):
        self.stdout.write(str(current_plugin()))
