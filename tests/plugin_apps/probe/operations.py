"""What the probe plugin can be asked to try, the same in a request, a job and a command.

Each operation needs one capability: ``read`` its own table (``storage:sql`` READ, which the
tests grant), ``write`` its own table (``storage:sql`` WRITE), ``foreign`` another plugin's
table (``storage:sql:notes_note`` READ), ``kv`` a key (``kv`` WRITE), ``enqueue`` a job
(``jobs:enqueue`` EXECUTE).
"""

from __future__ import annotations

from typing import Any

#: the key the ``kv`` operation sets
KV_KEY = "probe:key"
#: the label of the row the ``write`` operation inserts
WRITTEN = "written by probe"
NOOP = "probe.noop"


def read(then: str = "") -> Any:
    from .models import Item

    return Item.objects.count()


def write(then: str = "") -> Any:
    from .models import Item

    return Item.objects.create(label=WRITTEN).pk


def foreign(then: str = "") -> Any:
    from demo.notes.models import Note

    return Note.objects.count()


def kv(then: str = "") -> Any:
    from kv import get_store

    get_store().set(KV_KEY, "set by probe")
    return KV_KEY


def enqueue(then: str = "") -> Any:
    """Enqueue ``probe.noop``, or with ``then``, a ``probe.do`` job that tries ``then``."""
    import jobs

    store = jobs.get_job_store()
    job = store.enqueue("probe.do", {"what": then}, max_retries=0) if then else store.enqueue(NOOP, {})
    return job.id


OPERATIONS = {"read": read, "write": write, "foreign": foreign, "kv": kv, "enqueue": enqueue}


def run(what: str, then: str = "") -> Any:
    """Try operation ``what``; ``CapabilityDenied`` when the grants refuse it."""
    return OPERATIONS[what](then)
