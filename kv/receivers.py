"""Signal and sync-message receivers, connected in ``KvConfig.ready()``."""

from __future__ import annotations

from typing import Any

__all__ = [
    "flush_l1",
    "invalidate_from_elsewhere",
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
    """The sync listener reconnected: messages may have been lost, so forget everything."""
    from . import get_store

    store = get_store()
    if store is not None and store.l1 is not None:
        store.l1.clear()


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
