"""``CachedTokenAuthentication``: DRF's token authentication without its queries on every request.

DRF's ``TokenAuthentication`` reads the token and its user (one query) on each request, and
the first permission check reads the user's permissions (two more). This class keeps, per
process, the user a token names with those permissions read, for at most
``TACHYCORE["API_TOKEN_CACHE_TTL"]`` seconds (1 by default; 0 turns the cache off). A
revocation takes effect:

- at once in the process that makes it, and in every other process as soon as the sync
  message arrives (PostgreSQL's LISTEN/NOTIFY: a few milliseconds): deleting or changing a
  token, saving or deleting a user (``is_active``, ``is_superuser``...), changing a user's
  groups or permissions or a group's permissions all empty the cache;
- within ``API_TOKEN_CACHE_TTL`` otherwise: on SQLite (no sync messages between processes),
  while the sync listener is down, or for a change the ORM sends no signal for
  (``QuerySet.update()``, raw SQL).

Only tokens that authenticated are kept: a wrong token is looked up every time (and counted
by the APIs' failed-authentication throttle). Each request gets its own copy of the user;
``request.auth``, the token, is shared by the requests that use it.
Use it in place of DRF's class in ``REST_FRAMEWORK["DEFAULT_AUTHENTICATION_CLASSES"]``.
"""

from __future__ import annotations

import copy
import threading
import time
from typing import Any

from django.db import transaction
from rest_framework.authentication import TokenAuthentication

from . import sync
from .conf import tachycore_settings

#: the sync channel whose messages empty every process's cache
CHANNEL = "tachycore.api_tokens"
#: the most tokens a process keeps; past it the oldest go first
MAX_TOKENS = 1000


class TokenCache:
    """Token key to ``(user, token, expires)``, emptied by every revocation.

    ``generation`` rises at each emptying: a fill whose database read began before one is
    dropped, so a request that read a token just before its revocation does not keep it.
    """

    def __init__(self, clock=time.monotonic) -> None:
        self.clock = clock
        self._entries: dict[str, tuple[Any, Any, float]] = {}
        self._lock = threading.Lock()
        self.generation = 0

    def get(self, key: str) -> tuple[Any, Any] | None:
        entry = self._entries.get(key)
        if entry is None or entry[2] <= self.clock():
            return None
        return entry[0], entry[1]

    def fill(self, key: str, user: Any, token: Any, ttl: float, generation: int) -> None:
        with self._lock:
            if generation != self.generation:
                return
            self._entries.pop(key, None)
            while len(self._entries) >= MAX_TOKENS:
                del self._entries[next(iter(self._entries))]
            self._entries[key] = (user, token, self.clock() + ttl)

    def clear(self, *args: Any) -> None:
        with self._lock:
            self.generation += 1
            self._entries.clear()


tokens = TokenCache()


class CachedTokenAuthentication(TokenAuthentication):
    """DRF's ``TokenAuthentication`` (``Authorization: Token <key>``), its users cached as the
    module says."""

    def authenticate_credentials(self, key: str) -> tuple[Any, Any]:
        ttl = tachycore_settings.API_TOKEN_CACHE_TTL
        if ttl <= 0:
            return super().authenticate_credentials(key)
        found = tokens.get(key)
        if found is None:
            generation = tokens.generation
            user, token = super().authenticate_credentials(key)
            user.get_all_permissions()  # read now, kept on the cached user (ModelBackend's caches)
            tokens.fill(key, user, token, ttl, generation)
            found = user, token
        return _clone(found[0]), found[1]  # the user a view may change; the token is read only


def _clone(user: Any) -> Any:
    """A copy of ``user`` for one request, as ``copy.copy`` makes it (its own ``_state``, the
    permission caches shared: they are replaced, never changed), without the pickling protocol
    ``copy.copy`` takes through ``Model.__reduce__``."""
    clone = object.__new__(type(user))
    clone.__dict__.update(user.__dict__)
    clone._state = copy.copy(user._state)
    return clone


def revoked(**kwargs: Any) -> None:
    """Empty the cache here, now and again after commit (a request of another thread may
    read the state committed before and keep it meanwhile), and in every other process
    after commit."""
    tokens.clear()
    transaction.on_commit(tokens.clear, using=kwargs.get("using"))
    sync.publish(CHANNEL)


def follow_revocations() -> None:
    """Connect the receivers that empty the cache (``TachycoreConfig.ready()``, in every
    process of a site with ``rest_framework.authtoken``: the one that revokes tells the others)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.db.models.signals import m2m_changed, post_delete, post_save
    from rest_framework.authtoken.models import Token

    User = get_user_model()
    for model in (Token, User, Group):
        post_save.connect(revoked, sender=model, dispatch_uid=f"{CHANNEL}.save.{model.__name__}")
        post_delete.connect(revoked, sender=model, dispatch_uid=f"{CHANNEL}.delete.{model.__name__}")
    for through in (User.groups.through, User.user_permissions.through, Group.permissions.through):
        m2m_changed.connect(revoked, sender=through, dispatch_uid=f"{CHANNEL}.m2m.{through.__name__}")
    sync.subscribe(CHANNEL, tokens.clear)
    sync.on_disconnect(tokens.clear)
