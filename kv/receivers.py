"""Signal and sync-message receivers, connected in ``KvConfig.ready()``."""

from __future__ import annotations

from typing import Any

__all__ = [
    "flush_l1",
    "invalidate_from_elsewhere",
    "invalidations_arrive",
    "register_cleanup_schedule",
    "register_sqlite_functions",
]


def invalidate_from_elsewhere(payload: Any) -> None:
    """Another process wrote keys: drop them (or everything) from this process's L1."""
    from . import get_store

    store = get_store()
    l1 = store.l1 if store is not None else None
    if l1 is None:
        return
    if isinstance(payload, dict) and isinstance(payload.get("keys"), list):
        l1.invalidate(*[key for key in payload["keys"] if isinstance(key, str)])
    else:
        l1.clear()


def flush_l1() -> None:
    """The sync listener lost its connection (invalidations stop arriving) or got it back
    (some may have been lost meanwhile): forget everything. While it is down, L1 is not
    filled again (``invalidations_arrive``), so reads go to the database."""
    from . import get_store

    store = get_store()
    if store is not None and store.l1 is not None:
        store.l1.clear()


def invalidations_arrive() -> bool:
    """Whether other processes' writes reach this process's L1 now: as sync messages, while
    the cross-process listener is live (``runtime.push_live``); with the in-process adapter
    (SQLite's default), through the commit watcher of the store's SQLite file while it is
    live (``kv.watcher``, started here at first use). Elsewhere (an in-memory SQLite
    database, PostgreSQL with the in-process adapter: one process) an L1 entry is trusted
    for its ``L1_TTL``."""
    from tachycore.runtime import runtime

    from . import watcher

    try:
        adapter = runtime.pubsub
    except Exception:  # a broken PUBSUB setting (tachycore.E003 says so): no messages
        return False
    if adapter.cross_process:
        return runtime.push_live
    return watcher.changes_arrive(flush_l1)


def register_sqlite_functions(sender: Any, connection: Any, **kwargs: Any) -> None:
    if connection.vendor == "sqlite":
        from .sql.sqlite import register_functions

        register_functions(connection)


def register_cleanup_schedule(*, using: str, apps: Any = None, verbosity: int = 1, stdout: Any = None,
                              **kwargs: Any) -> None:
    """After ``migrate``: create, or bring in line with the settings, the django-q2
    schedule of the expiry cleanup (nothing when django_q is not installed)."""
    from tachycore.schedules import keep_schedule_after_migrate

    from .schedules import register_cleanup_schedule as register

    keep_schedule_after_migrate(register, using=using, apps=apps, verbosity=verbosity, stdout=stdout)
