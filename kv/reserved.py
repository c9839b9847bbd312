"""The key space the store's Redis-like writes refuse: ``cache:...``, where ``kv.cache.KVCache``
keeps its entries (``cache:<LOCATION>:<key>``, in rows of type ``cache``).

The cache's rows hold its own encoding (pickles, sessions when ``SESSION_ENGINE`` uses the
cache), so ``set``, ``delete``, ``expire``, ``incr``, ``hset``, ``lock``... of such a key raise
``kv.errors.ReservedKey`` (a 400 over HTTP) and write nothing. ``KVCache`` writes through
``KVStore.write`` and the statements, which this module does not guard; ``KVStore.delete_rows``
deletes any row, for the admin.
"""

from __future__ import annotations

from typing import Any

from .errors import ReservedKey
from .validation import check_key

#: the start of every key of kv.cache.KVCache's entries
CACHE_KEY_SPACE = "cache:"


def writable_key(key: Any) -> str:
    """``key``, checked as every key is (``check_key``), and outside the cache's key space."""
    key = check_key(key)
    if key.startswith(CACHE_KEY_SPACE):
        raise ReservedKey(
            f"key {key!r} is in the key space of kv.cache.KVCache (keys starting with "
            f"{CACHE_KEY_SPACE!r}); use another key, or change cache entries through the cache backend"
        )
    return key
