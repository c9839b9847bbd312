from django.apps import AppConfig


class NotesConfig(AppConfig):
    name = "demo.notes"
    label = "notes"
    verbose_name = "Notes (demo plugin)"
