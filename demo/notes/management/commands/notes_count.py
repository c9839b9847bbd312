"""``manage.py notes_count``: how many notes there are (it runs as the notes plugin)."""

from django.core.management.base import BaseCommand

from demo.notes.models import Note


class Command(BaseCommand):
    help = "Print how many notes there are."

    def handle(self, *args, **options):
        self.stdout.write(str(Note.objects.count()))
