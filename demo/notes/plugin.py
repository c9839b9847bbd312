import logging

import tachycore
from tachycore.errors import CapabilityDenied, ServiceUnavailable
from tachycore.plugins import Plugin

logger = logging.getLogger("demo.notes")

WELCOME_TITLE = "Welcome to notes"


class NotesPlugin(Plugin):
    """A small business plugin: notes at /api/notes/, with an audit trail."""

    name = "notes"
    version = "1.0.0"
    description = "Notes with a JSON API at /api/notes/; logs its lifecycle to the audit plugin."
    depends_on = ("audit",)
    urls = "demo.notes.urls"
    default_options = {"page_size": 20}
    # its own tables; the audit plugin's service that writes an event (notes never touches
    # audit's table or imports its code); the job queue, for the word counts
    capabilities = {
        "storage:sql": "WRITE",
        "service:audit:record": "WRITE",
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
        # in the enable's transaction: the event is written if and only if the enable commits
        tachycore.invoke("audit:record", self.name, "enabled")

    def before_disable(self) -> None:
        # here rather than in after_disable, which runs once the disable has committed and the
        # calls inside notes have returned: by then audit may be gone too (pm disable notes
        # audit), and the event would no longer be part of the disable's transaction. Not being
        # able to record it does not keep notes from being disabled.
        try:
            tachycore.invoke("audit:record", self.name, "disabled")
        except (ServiceUnavailable, CapabilityDenied) as e:
            logger.warning("notes: disabled without an audit event: %s", e)
