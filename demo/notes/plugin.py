from tachycore.plugins import Plugin

WELCOME_TITLE = "Welcome to notes"


class NotesPlugin(Plugin):
    """A small business plugin: notes at /api/notes/, with an audit trail."""

    name = "notes"
    version = "1.0.0"
    description = "Notes with a JSON API at /api/notes/; logs its lifecycle to the audit plugin."
    depends_on = ("audit",)
    urls = "demo.notes.urls"
    default_options = {"page_size": 20}
    # its own tables; the audit plugin's table, which it writes through demo.audit.models
    # (until the audit plugin offers a service); the job queue, for the word counts
    capabilities = {
        "storage:sql": "WRITE",
        "storage:sql:audit_auditevent": "WRITE",
        "jobs:enqueue": "EXECUTE",
    }

    def validate_options(self, options):
        page_size = options.get("page_size", 20)
        if not isinstance(page_size, int) or isinstance(page_size, bool) or not 1 <= page_size <= 100:
            raise ValueError(f"page_size must be a whole number from 1 to 100, got {page_size!r}")
        return options

    def install(self) -> None:
        from .jobs import enqueue_word_count
        from .models import Note

        # idempotent: a second install finds the note and adds nothing, not even a job
        note, created = Note.objects.get_or_create(title=WELCOME_TITLE,
                                                   defaults={"body": "Created by install()."})
        if created:
            # counted like every other note; in install's transaction, so a failed
            # install leaves neither the note nor its job
            enqueue_word_count(note)

    def after_enable(self) -> None:
        from demo.audit.models import record

        record(self.name, "enabled")

    def after_disable(self) -> None:
        from demo.audit.models import record

        record(self.name, "disabled")
