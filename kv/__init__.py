"""kv: a Redis-like key-value store on the site's database.

``kv.get_store()`` returns the store (``None`` when ``kv`` is not installed, or is turned
off by ``KV["DISABLED"]``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .store import KVStore

__all__ = ["get_store"]

_store: KVStore | None = None


def get_store() -> KVStore | None:
    """The process's key-value store, or ``None`` when ``kv`` is not in ``INSTALLED_APPS``
    or ``KV["DISABLED"]`` is true."""
    global _store
    from django.apps import apps

    if not apps.is_installed("kv"):
        return None
    from .conf import kv_settings

    if kv_settings.DISABLED:
        return None
    if _store is None:
        from django.core.signals import setting_changed

        from .store import KVStore

        _store = KVStore()
        setting_changed.connect(_store.reset_l1, weak=False)
    return _store
