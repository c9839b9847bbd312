"""What each plugin may do: the capabilities it asks for, the grants an operator gave, the check.

A plugin declares what it needs in ``Plugin.capabilities``; asking grants nothing. Grants
(``CapabilityGrant`` rows) are given by ``manage.py pm grant``, the admin, ``pm enable
--grant-requested`` or ``TACHYCORE["GRANTS"]``; every process keeps a copy, followed like
plugin states (a sync message after each change, the reconcile loop behind it). ``check()``
asks the copy about the plugin running now (``tachycore.context.current_plugin()``): no
query. The host site (no plugin) and built-in plugins are trusted.

This guards plugins that cooperate against mistakes; it is not a sandbox (see
docs/governance.md for what code in the same interpreter can still reach).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, Protocol

from django.db import DatabaseError, transaction
from django.db.models import F
from django.utils import timezone

from . import sync
from .conf import tachycore_settings
from .context import builtin_statements, current_plugin
from .errors import CapabilityDenied, InvalidGrant
from .models import Access, CapabilityGrant, GrantsState
from .state import WatchedState

__all__ = ["Access", "Decision", "Grant", "builtin_statements", "check", "enforce", "grants", "is_allowed",
           "observe", "parse_access", "requires"]

CHANNEL = "grants-changed"
MAX_CAPABILITY_LENGTH = 200
#: a family (``kv``, ``storage``, ``jobs``, ``service``) and colon-separated parts; ``*``
#: as the last part stands for any
_CAPABILITY = re.compile(r"^[a-z][a-z0-9_-]*(?::[^\s:]+)*$")


def parse_access(value: Any) -> Access:
    """``Access`` from a name (``"WRITE"``, ``"write"``), a number or an ``Access``."""
    if isinstance(value, Access):
        return value
    if isinstance(value, str):
        try:
            return Access[value.strip().upper()]
        except KeyError:
            pass
    elif isinstance(value, int) and not isinstance(value, bool) and value in Access.values:
        return Access(value)
    raise InvalidGrant(f"access must be one of {', '.join(a.name for a in Access if a)}, got {value!r}")


def check_capability(capability: Any) -> str:
    if (not isinstance(capability, str) or len(capability) > MAX_CAPABILITY_LENGTH
            or not _CAPABILITY.match(capability)):
        raise InvalidGrant(f"a capability is a family and parts separated by ':' (storage:sql, kv, "
                           f"jobs:enqueue, service:audit), at most {MAX_CAPABILITY_LENGTH} characters, "
                           f"got {capability!r}")
    return capability


def covers(granted: str, asked: str) -> bool:
    """Whether a grant of ``granted`` speaks for ``asked``: the same capability, a ``...:*``
    whose prefix ``asked`` is or continues, or ``service:<plugin>`` for each of its services."""
    if granted == asked:
        return True
    if granted.endswith(":*"):  # "storage:sql:*": every table, the plugin's own too
        return asked == granted[:-2] or asked.startswith(granted[:-1])
    return granted.startswith("service:") and granted.count(":") == 1 and asked.startswith(granted + ":")


def highest(held: Iterable[Grant], capability: str, now: datetime) -> Access:
    """The highest access that the live grants among ``held`` give for ``capability``."""
    return max((grant.access for grant in held if covers(grant.capability, capability) and grant.live(now)),
               default=Access.NONE)


@dataclasses.dataclass(frozen=True)
class Grant:
    plugin: str
    capability: str
    access: Access
    granted_by: str = ""
    created: datetime | None = None
    expires_at: datetime | None = None

    def live(self, now: datetime) -> bool:
        return self.expires_at is None or self.expires_at > now

    def to_json(self) -> dict[str, Any]:
        return {"plugin": self.plugin, "capability": self.capability, "access": self.access.name,
                "granted_by": self.granted_by,
                "created": self.created.isoformat() if self.created else None,
                "expires_at": self.expires_at.isoformat() if self.expires_at else None}

    @classmethod
    def of(cls, row: CapabilityGrant) -> Grant:
        return cls(row.plugin, row.capability, Access(row.access), row.granted_by, row.created, row.expires_at)


#: answers ``Grants.access`` remembers at most (capabilities name tables and services: a
#: site has a bounded number; past it the memo starts over)
MAX_ANSWERS = 10_000


class Grants(WatchedState):
    """This process's copy of ``tachycore_grants``, and the operations that change it."""

    def __init__(self) -> None:
        super().__init__()
        self._by_plugin: dict[str, tuple[Grant, ...]] = {}
        #: the grants by plugin and the answers of ``access`` worked out from them, replaced
        #: together: an answer is only ever kept beside the copy it was read from (a reload
        #: racing a check cannot leave a revoked grant's answer in the new copy). An answer
        #: is (plugin, capability) -> (highest access, until when it holds, as a UNIX time).
        self._snapshot: tuple[dict[str, tuple[Grant, ...]], dict[tuple[str, str], tuple[Access, float]]] = ({}, {})

    # -- the copy --------------------------------------------------------------------------

    def _read_version(self) -> int:
        return GrantsState.objects.filter(pk=1).values_list("version", flat=True).first() or 0

    def _load(self, version: int) -> None:
        by_plugin: dict[str, list[Grant]] = {}
        for row in CapabilityGrant.objects.all():
            by_plugin.setdefault(row.plugin, []).append(Grant.of(row))
        self._by_plugin = {plugin: tuple(found) for plugin, found in by_plugin.items()}
        self._snapshot = (self._by_plugin, {})
        self._version = version

    def of(self, plugin: str) -> tuple[Grant, ...]:
        """The grants of ``plugin`` as of the last check (expired ones included)."""
        with contextlib.suppress(DatabaseError):  # before migrate: no grants
            self.refresh()
        return self._by_plugin.get(plugin, ())

    def access(self, plugin: str, capability: str) -> Access:
        """The highest live access ``plugin`` holds for ``capability`` (remembered until the
        grants change or one that gives it expires: the hot path of every check)."""
        try:  # noqa: SIM105 (contextlib.suppress costs a third of this method)
            self.refresh()
        except DatabaseError:  # before migrate: no grants
            pass
        by_plugin, answers = self._snapshot  # one copy for the whole check
        key = (plugin, capability)
        answer = answers.get(key)
        if answer is not None and answer[1] > time.time():
            return answer[0]
        now = timezone.now()
        covering = [grant for grant in by_plugin.get(plugin, ())
                    if covers(grant.capability, capability) and grant.live(now)]
        level = max((grant.access for grant in covering), default=Access.NONE)
        expiries = [grant.expires_at.timestamp() for grant in covering if grant.expires_at is not None]
        if len(answers) >= MAX_ANSWERS:
            answers.clear()
        answers[key] = (level, min(expiries, default=math.inf))
        return level

    # -- changes ---------------------------------------------------------------------------

    def grant(self, plugin: str, capability: str, access: Any, *, granted_by: str = "",
              expires_at: datetime | None = None) -> Grant:
        """Give ``plugin`` ``capability`` at ``access`` (replacing a grant it had for it)."""
        level = parse_access(access)
        if level == Access.NONE:
            raise InvalidGrant("access NONE grants nothing: revoke the capability instead")
        check_capability(capability)
        _known_plugin(plugin)
        with transaction.atomic():
            row, _ = CapabilityGrant.objects.update_or_create(
                plugin=plugin, capability=capability,
                defaults={"access": level, "granted_by": granted_by[:200], "expires_at": expires_at})
            self._changed()
            _tell_on_commit(Decision(plugin, capability, level, "allowed", "grant", detail=_given(
                granted_by, expires_at)))
        return Grant.of(row)

    def revoke(self, plugin: str, capability: str) -> bool:
        """Take ``capability`` away from ``plugin``; whether it had a grant for it."""
        with transaction.atomic():
            deleted, _ = CapabilityGrant.objects.filter(plugin=plugin, capability=capability).delete()
            if deleted:
                self._changed()
                _tell_on_commit(Decision(plugin, capability, Access.NONE, "allowed", "revoke"))
        return bool(deleted)

    def list(self, plugin: str | None = None) -> list[Grant]:
        """Every grant (of ``plugin``), read from the database."""
        rows = CapabilityGrant.objects.all()
        if plugin is not None:
            rows = rows.filter(plugin=plugin)
        return [Grant.of(row) for row in rows]

    def apply_settings(self, wanted: Mapping[str, Mapping[str, Any]]) -> tuple[int, int]:
        """Make the grants ``TACHYCORE["GRANTS"]`` gives exactly ``wanted``: grant what it
        lists, revoke what an earlier version of it gave and it no longer lists. Returns
        (granted or changed, revoked)."""
        parsed = {(plugin, check_capability(capability)): parse_access(access)
                  for plugin, capabilities in wanted.items() for capability, access in capabilities.items()}
        changed = revoked = 0
        with transaction.atomic():
            existing = {(row.plugin, row.capability): row for row in CapabilityGrant.objects.select_for_update()}
            for key, level in parsed.items():
                row = existing.get(key)
                if row is None or row.access != level or row.granted_by != SETTINGS or row.expires_at:
                    CapabilityGrant.objects.update_or_create(
                        plugin=key[0], capability=key[1],
                        defaults={"access": level, "granted_by": SETTINGS, "expires_at": None})
                    changed += 1
                    _tell_on_commit(Decision(key[0], key[1], level, "allowed", "grant", detail=_given(SETTINGS)))
            for key, row in existing.items():
                if row.granted_by == SETTINGS and key not in parsed:
                    row.delete()
                    revoked += 1
                    _tell_on_commit(Decision(key[0], key[1], Access.NONE, "allowed", "revoke",
                                             detail="no longer in TACHYCORE['GRANTS']"))
            if changed or revoked:
                self._changed()
        return changed, revoked

    def _changed(self) -> None:
        GrantsState.objects.bulk_create([GrantsState(pk=1)], ignore_conflicts=True)
        GrantsState.objects.filter(pk=1).update(version=F("version") + 1)
        sync.publish(CHANNEL, {})
        # the next check reads again: in this transaction it sees the change (a plugin's
        # install hook right after pm enable --grant-requested), and again after the commit
        self.forget()
        transaction.on_commit(self.forget)


#: ``granted_by`` of the grants ``TACHYCORE["GRANTS"]`` gives
SETTINGS = "settings"

grants = Grants()


class PluginDirectory(Protocol):
    """What governance asks of the plugin manager (which registers itself in ``ready()``)."""

    def is_known(self, name: str) -> bool: ...

    def is_built_in(self, name: str) -> bool: ...

    def app_label_of(self, name: str) -> str | None: ...


class _NoPlugins:
    def is_known(self, name: str) -> bool:
        return False

    def is_built_in(self, name: str) -> bool:
        return False

    def app_label_of(self, name: str) -> str | None:
        return None


_directory: PluginDirectory = _NoPlugins()


def know_plugins(directory: PluginDirectory) -> None:
    """Tell governance where to look plugins up (``TachycoreConfig.ready()``)."""
    global _directory
    _directory = directory


def _known_plugin(plugin: str) -> None:
    if not _directory.is_known(plugin):
        raise InvalidGrant(f"no plugin named {plugin!r} (manage.py pm list shows them)")


def app_label_of(plugin: str) -> str | None:
    """The label of ``plugin``'s app (``None``: a plugin without an app, or no such plugin)."""
    return _directory.app_label_of(plugin)


def trusted(plugin: str | None) -> bool:
    """The host site and built-in plugins need no grant."""
    return plugin is None or _directory.is_built_in(plugin)


def is_allowed(plugin: str | None, capability: str, access: Any) -> bool:
    """Whether ``plugin`` may use ``capability`` at ``access`` (whatever the mode)."""
    level = parse_access(access)
    return trusted(plugin) or grants.access(plugin, capability) >= level  # type: ignore[arg-type]


@dataclasses.dataclass(frozen=True)
class Decision:
    """One answer of the check, or one change of the grants (``action`` ``"grant"`` or
    ``"revoke"``, decision ``"allowed"``, told once it is committed), as the audit trail
    records it."""

    plugin: str
    capability: str
    access: Access
    #: "allowed", "denied" or "would_deny" (audit mode)
    decision: str
    #: what was attempted: "sql", "kv.set", "jobs.enqueue", the capability otherwise
    action: str
    target: str = ""
    detail: str = ""


#: called with each ``Decision`` (the audit trail registers itself in ``ready()``)
_observers: list[Callable[[Decision], None]] = []
#: asked before an allowed decision is built: the observers are told it when one says yes
_allowed_wanted: list[Callable[[], bool]] = []


def _always() -> bool:
    return True


def observe(observer: Callable[[Decision], None], *, allowed: Callable[[], bool] = _always) -> None:
    """Have ``observer`` called with every decision of the check (once per observer).

    ``allowed`` says whether the observer wants the allowed decisions now (the audit trail
    records them per ``AUDIT_ALLOWED``): when no observer does, an allowed check builds no
    ``Decision`` at all, the cost of the hot path.
    """
    if observer not in _observers:
        _observers.append(observer)
        _allowed_wanted.append(allowed)


def check(capability: str, access: Any, target: str = "", *, action: str = "") -> None:
    """Refuse, with ``CapabilityDenied``, what the plugin running now may not do.

    ``TACHYCORE["GOVERNANCE"]``: ``"enforce"`` raises, ``"audit"`` lets it through (the
    audit trail records it as ``would_deny``), ``"off"`` checks nothing.
    """
    plugin = current_plugin()
    if plugin is None:
        return  # the host site: nothing to look up
    enforce(plugin, capability, parse_access(access), action=action or capability, target=target)


def enforce(plugin: str, capability: str, access: Access, *, action: str, target: str = "",
            detail: str = "") -> None:
    """``check`` for a given plugin: raise ``CapabilityDenied`` (enforce mode) when no
    grant of ``plugin`` covers ``capability`` at ``access``; tell the observers."""
    mode = tachycore_settings.GOVERNANCE
    if mode == "off":
        return
    if trusted(plugin) or grants.access(plugin, capability) >= access:
        for wanted in _allowed_wanted:
            if wanted():
                _tell(Decision(plugin, capability, access, "allowed", action, target, detail))
                break
        return
    if mode == "audit":
        _tell(Decision(plugin, capability, access, "would_deny", action, target, detail))
        return
    _tell(Decision(plugin, capability, access, "denied", action, target, detail))
    raise CapabilityDenied(denial_message(plugin, capability, access, target), plugin=plugin,
                           capability=capability, access=access, target=target)


def _tell(decision: Decision) -> None:
    for observer in _observers:
        observer(decision)


def _tell_on_commit(change: Decision) -> None:
    """A grant change is told once it is committed: one rolled back never happened."""
    if _observers:
        transaction.on_commit(functools.partial(_tell, change), robust=True)


def _given(granted_by: str, expires_at: datetime | None = None) -> str:
    until = f", until {expires_at.isoformat()}" if expires_at else ""
    return f"granted by {granted_by or '-'}{until}"


def denial_message(plugin: str, capability: str, access: Access, target: str = "") -> str:
    on = f" ({target})" if target else ""
    return (f"plugin {plugin!r} may not use {capability} at {access.name}{on}: no grant allows it; "
            f"an operator can give it with: manage.py pm grant {plugin} {capability} {access.name}")


#: the attribute that marks a Django cursor as a built-in's own (``builtin_cursor``)
_BUILTIN_CURSOR = "tachycore_builtin"


def builtin_cursor(cursor: Any) -> Any:
    """Mark a Django cursor whose statements are a built-in's own (kv's, while Django logs
    queries): the SQL guard lets them through without parsing. Returns the cursor."""
    setattr(cursor, _BUILTIN_CURSOR, True)
    return cursor


def is_builtin_cursor(cursor: Any) -> bool:
    return getattr(cursor, _BUILTIN_CURSOR, False)


def requires(capability: str, access: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a plugin's function: each call first checks ``capability`` at ``access``."""
    level = parse_access(access)

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def checked(*args: Any, **kwargs: Any) -> Any:
            check(capability, level, target=getattr(func, "__qualname__", ""))
            return func(*args, **kwargs)

        return checked

    return decorate


def requested(capabilities: Mapping[str, Any]) -> dict[str, Access]:
    """A plugin's ``capabilities`` with their access levels parsed (``InvalidGrant`` names a bad one)."""
    return {check_capability(capability): parse_access(access) for capability, access in capabilities.items()}


def ungranted(plugin: str, capabilities: Mapping[str, Any]) -> dict[str, Access]:
    """What ``plugin`` asks for and holds no live grant for, read from the database."""
    now = timezone.now()
    held = [Grant.of(row) for row in CapabilityGrant.objects.filter(plugin=plugin)]
    return {capability: level for capability, level in requested(capabilities).items()
            if highest(held, capability, now) < level}


def grant_commands(plugin: str, missing: Mapping[str, Access]) -> Iterable[str]:
    for capability, level in missing.items():
        yield f"manage.py pm grant {plugin} {capability} {level.name}"
