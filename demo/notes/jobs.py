"""Job handlers of the notes plugin (autodiscovered by ``jobs``, as every app's ``jobs.py``).

They run in ``manage.py runjobs``, and only while the notes plugin is enabled: a job
enqueued meanwhile waits, pending, until the plugin is enabled again.
"""

from __future__ import annotations

from typing import Any

import jobs

WORD_COUNT = "notes.word_count"


def count_words(text: str) -> int:
    return len(text.split())


@jobs.handler(WORD_COUNT)
def word_count(job: Any) -> dict[str, int] | None:
    """Count the words of a note's title and body, store the count on the note and
    return it; a note deleted since the job was enqueued is left alone (``None``)."""
    from .models import Note

    note = Note.objects.filter(pk=job.payload["note"]).values("title", "body").first()
    if note is None:
        return None
    words = count_words(note["title"]) + count_words(note["body"])
    Note.objects.filter(pk=job.payload["note"]).update(word_count=words)
    return {"note": job.payload["note"], "words": words}


def enqueue_word_count(note: Any) -> Any:
    """Enqueue the count of ``note``'s words, in the caller's transaction; ``None`` (the
    note keeps no count) while the site runs without the queue (``JOBS_DISABLED``)."""
    store = jobs.get_job_store()
    return store.enqueue(WORD_COUNT, {"note": note.pk}) if store is not None else None
