"""kv's settings: ``settings.KV`` with defaults (every key can be overridden by ``KV_<KEY>``
in the environment), and the few Django settings kv reads on its hot paths."""

from __future__ import annotations

import dataclasses
from typing import Any

from django.conf import settings

from tachycore.conf import AppSettings, setting


@dataclasses.dataclass(frozen=True)
class KVDefaults:
    #: turn kv off without leaving INSTALLED_APPS: get_store() returns None, the HTTP API
    #: answers 404, the cleanup does not run and KVCache raises kv.errors.KVDisabled
    DISABLED: bool = setting(False, "bool")
    #: keep recently read values in this process
    L1_ENABLED: bool = setting(True, "bool")
    #: the longest an L1 entry lives (a key's own TTL shortens it)
    L1_TTL: float = setting(5.0, "duration")
    #: the most bytes L1 holds (serialised values and keys); least recently used go first
    L1_MAX_SIZE: int = setting(16 * 1024 * 1024, "int", minimum=0)
    #: the largest value, in bytes of its JSON form
    MAX_VALUE_SIZE: int = setting(1024 * 1024, "int", minimum=1)
    #: "full": every write is durable at commit; "fast": on PostgreSQL, kv writes outside a
    #: transaction commit with synchronous_commit off (a crash of the server can lose the last ones)
    DURABILITY: str = setting("full", "str", choices=("full", "fast"))
    #: how often the scheduled cleanup deletes expired rows
    CLEANUP_INTERVAL: float = setting(60.0, "duration", minimum=1)
    #: rows deleted per statement by the cleanup
    CLEANUP_BATCH_SIZE: int = setting(1000, "int", minimum=1)
    #: on PostgreSQL, how long a search of keys by pattern (keys(), a page of GET /api/kv/keys/
    #: or of the admin's key search) may run before it is cancelled; 0: no limit. scan() reads
    #: at most kv.scans.MAX_COUNT rows a call and is not timed
    KEYS_TIMEOUT: float = setting(5.0, "duration")
    #: serve the HTTP API at /api/kv/ (off by default)
    HTTP_ENABLED: bool = setting(False, "bool")
    #: who may read keys over HTTP: by default users with kv.view_kventry or kv.change_kventry
    READ_PERMISSION_CLASSES: list = setting(["kv.api.permissions.CanReadKeys"], "list")
    #: who may write over HTTP: by default kv.change_kventry (set, incr, expire, hash fields)
    #: and kv.delete_kventry (DELETE, and an expire that deletes)
    WRITE_PERMISSION_CLASSES: list = setting(["kv.api.permissions.CanWriteKeys"], "list")
    #: the HTTP API's throttle rates per user ("read": GET/HEAD/OPTIONS, "write": the rest) and
    #: per IP ("anon": anonymous requests, and failed authentications); None turns a scope off
    THROTTLE_RATES: dict = setting({"anon": "60/min", "read": "600/min", "write": "300/min"}, "rates",
                                   choices=("anon", "read", "write"))


kv_settings = AppSettings("KV", KVDefaults)


@dataclasses.dataclass(frozen=True)
class SiteSettings:
    """Django's own settings that kv reads on every call (``LazySettings`` costs a method
    call per attribute read: more than an L1 hit)."""

    DEBUG: bool
    USE_TZ: bool


_site: SiteSettings | None = None


def site_settings() -> SiteSettings:
    """``DEBUG`` and ``USE_TZ``, read once and again after ``setting_changed`` for either."""
    return _site or _load_site()


def _load_site() -> SiteSettings:
    global _site
    _site = SiteSettings(DEBUG=settings.DEBUG, USE_TZ=settings.USE_TZ)
    return _site


def reset_site_settings(*, setting: str, **kwargs: Any) -> None:
    """``setting_changed`` receiver (connected in ``KvConfig.ready()``)."""
    global _site
    if setting in ("DEBUG", "USE_TZ"):
        _site = None

