"""Typed, cached access to the per-app settings dicts (``TACHYCORE``, ``KV``, ``JOBS``).

Each app declares its keys once, as a frozen dataclass of defaults. A value comes
from, in order of precedence: the environment variable ``<APP>_<KEY>``, the
settings dict, the default. Values are coerced to the declared kind; a bad value
is reported by a system check naming the key (see :meth:`AppSettings.errors`)
and raises ``ImproperlyConfigured`` if the code reads it anyway.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import os
import re
from collections.abc import Mapping
from typing import Any

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}
_RATE_RE = re.compile(r"^\s*(\d+)\s*/\s*(s|sec|second|m|min|minute|h|hour|d|day)\s*$")
_RATE_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def parse_duration(value: Any) -> float:
    """Return seconds from a number or a string such as ``"500ms"``, ``"5s"``, ``"2m"``."""
    if isinstance(value, bool):
        raise ValueError("expected a duration, got a boolean")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION_RE.match(value)):
        seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    else:
        raise ValueError(f"cannot parse {value!r} as a duration (use seconds or '5s', '2m', '1h')")
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative ({value!r})")
    return seconds


def parse_rate(value: Any) -> tuple[int, int]:
    """``(requests, seconds)`` of a throttle rate in DRF's notation: ``"100/min"``, ``"5/s"``,
    ``"1000/hour"``, ``"10000/day"``."""
    if isinstance(value, str):
        return _parse_rate_text(value)  # the throttles parse their rates at each request
    return _parse_rate(value)


@functools.lru_cache(maxsize=64)
def _parse_rate_text(value: str) -> tuple[int, int]:
    return _parse_rate(value)


def _parse_rate(value: Any) -> tuple[int, int]:
    match = _RATE_RE.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"cannot parse {value!r} as a rate (use 'requests/period' such as '100/min', "
                         "'5/s', '1000/hour', '10000/day')")
    requests = int(match.group(1))
    if requests < 1:
        raise ValueError(f"a rate allows at least one request ({value!r}); None turns the scope off")
    return requests, _RATE_PERIODS[match.group(2)[0]]


def setting(default: Any, kind: str, *, minimum: float | None = None, choices=None):
    """Declare one settings key: its default, its kind and simple bounds.

    Kinds: ``bool``, ``int``, ``float``, ``duration`` (seconds), ``str``, ``list``,
    ``json`` (any JSON value, a dict or list in the environment), ``dotted`` (an
    import path or a dict with ``BACKEND``), ``rates`` (a dict of throttle scope to rate or
    ``None``, the scopes named in ``choices``; scopes left out keep their default rate).
    """
    meta = {"kind": kind, "minimum": minimum, "choices": choices}
    if isinstance(default, list | dict):
        return dataclasses.field(default_factory=lambda: json.loads(json.dumps(default)), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _coerce(value: Any, kind: str, from_env: bool) -> Any:
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise ValueError(f"expected true or false, got {value!r}")
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ValueError(f"expected a whole number, got {value!r}")
        try:
            return int(value)
        except ValueError:
            raise ValueError(f"expected a whole number, got {value!r}") from None
    if kind == "float":
        if isinstance(value, bool):
            raise ValueError(f"expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ValueError(f"expected a number, got {value!r}") from None
    if kind == "duration":
        return parse_duration(value)
    if kind == "str":
        if not isinstance(value, str):
            raise ValueError(f"expected a string, got {value!r}")
        return value
    if kind == "list":
        if from_env and isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        if not isinstance(value, list | tuple):
            raise ValueError(f"expected a list, got {value!r}")
        return list(value)
    if kind in ("json", "dotted", "rates"):
        if from_env and isinstance(value, str) and value.strip()[:1] in ("{", "["):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as e:
                raise ValueError(f"invalid JSON: {e}") from None
        if kind == "dotted" and not (isinstance(value, str) or (isinstance(value, dict) and "BACKEND" in value)):
            raise ValueError(f"expected a dotted path or a dict with 'BACKEND', got {value!r}")
        if kind == "rates" and not isinstance(value, dict):
            raise ValueError(f"expected a dict of scope: rate (such as {{'write': '100/min'}}), got {value!r}")
        return value
    raise AssertionError(f"unknown setting kind {kind!r}")


def _check_bounds(value: Any, meta: Mapping[str, Any]) -> None:
    if meta["kind"] == "rates":
        for scope, rate in value.items():
            if scope not in meta["choices"]:
                raise ValueError(f"unknown scope {scope!r} (scopes: {', '.join(meta['choices'])})")
            if rate is not None:
                parse_rate(rate)
        return
    if meta["minimum"] is not None and value < meta["minimum"]:
        raise ValueError(f"must be at least {meta['minimum']}, got {value!r}")
    if meta["choices"] is not None and value not in meta["choices"]:
        raise ValueError(f"must be one of {', '.join(map(repr, meta['choices']))}, got {value!r}")


#: every app's settings, for the kernel's check of the environment (``tachycore.W030``)
_all: list[AppSettings] = []


def all_app_settings() -> list[AppSettings]:
    """The settings of every app that declared them (tachycore, kv, jobs, ...)."""
    return list(_all)


class AppSettings:
    """The settings of one app, read lazily, cached, and reset on ``setting_changed``."""

    def __init__(self, setting_name: str, defaults: type) -> None:
        self.setting_name = setting_name
        self.defaults = defaults
        self._names = frozenset(f.name for f in dataclasses.fields(defaults))
        self._cached: tuple[Any, dict[str, str]] | None = None
        setting_changed.connect(self._reset, weak=False)
        _all.append(self)

    def _reset(self, *, setting: str, **kwargs: Any) -> None:
        if setting == self.setting_name:
            self.reset()

    def reset(self) -> None:
        """Forget the cached values (environment variables are read again)."""
        self._cached = None
        for name in self._names:
            self.__dict__.pop(name, None)

    def _load(self) -> tuple[Any, dict[str, str]]:
        if self._cached is not None:
            return self._cached
        user = getattr(django_settings, self.setting_name, {}) or {}
        errors: dict[str, str] = {}
        if not isinstance(user, dict):
            errors[""] = f"settings.{self.setting_name} must be a dict"
            user = {}
        fields = {f.name: f for f in dataclasses.fields(self.defaults)}
        errors.update({key: "unknown key" for key in user if key not in fields})
        values = {}
        for name, field in fields.items():
            env_name = f"{self.setting_name}_{name}"
            from_env = env_name in os.environ
            if not from_env and name not in user:
                continue
            raw = os.environ[env_name] if from_env else user[name]
            try:
                value = _coerce(raw, field.metadata["kind"], from_env)
                _check_bounds(value, field.metadata)
                if field.metadata["kind"] == "rates" and callable(field.default_factory):
                    value = {**field.default_factory(), **value}  # scopes left out keep their default
            except ValueError as e:
                source = f"environment variable {env_name}" if from_env else f"{self.setting_name}[{name!r}]"
                errors[name] = f"{source}: {e}"
                continue
            values[name] = value
        self._cached = (self.defaults(**values), errors)
        # each good value also becomes an attribute: read without __getattr__ from now on
        # (the hot paths read settings on every call); reset() takes them away
        for name in self._names - errors.keys():
            self.__dict__[name] = getattr(self._cached[0], name)
        return self._cached

    def errors(self) -> list[tuple[str, str]]:
        """Return ``(key, message)`` for every unknown key or bad value."""
        return list(self._load()[1].items())

    def unknown_environment(self) -> list[tuple[str, str | None]]:
        """Environment variables named ``<APP>_...`` that match no key (a typo such as
        ``JOBS_WORKER``), each with the closest key's variable, or ``None``."""
        prefix = f"{self.setting_name}_"
        found = []
        for variable in sorted(os.environ):
            key = variable[len(prefix):]
            if variable.startswith(prefix) and key not in self._names:
                close = difflib.get_close_matches(key, sorted(self._names), n=1)
                found.append((variable, prefix + close[0] if close else None))
        return found

    def __getattr__(self, name: str) -> Any:
        # hot path: one tuple from the cache and one attribute read
        values, errors = self._cached or self._load()
        if errors and name in errors:
            raise ImproperlyConfigured(errors[name])
        if name not in self._names:
            raise AttributeError(name)
        return getattr(values, name)


@dataclasses.dataclass(frozen=True)
class TachycoreDefaults:
    """``settings.TACHYCORE`` keys and their defaults (env ``TACHYCORE_<KEY>``)."""

    #: the registry driver: a dotted path, or ``{"BACKEND": path, "OPTIONS": {...}}``
    REGISTRY: Any = setting("tachycore.registry.DatabaseRegistry", "dotted")
    #: how often a request compares this process's state with the database while no
    #: cross-process sync adapter is listening (SQLite, or a lost listener connection)
    STATE_CHECK_INTERVAL: float = setting(0.5, "duration")
    #: how many times the dual-write driver tries a flush before reporting it failed
    FLUSH_RETRIES: int = setting(3, "int", minimum=1)
    #: start the process services (supervisor node, sync listener, heartbeat, reconcile) in
    #: web processes at their first request and in the kernel's commands
    START_RUNTIME: bool = setting(True, "bool")
    #: the sync message adapter: "auto" (PostgreSQL LISTEN/NOTIFY on PostgreSQL, in-process
    #: memory otherwise), a dotted path, or {"BACKEND": path, "OPTIONS": {...}}
    PUBSUB: Any = setting("auto", "dotted")
    #: the slow periodic check that repairs lost sync messages
    RECONCILE_INTERVAL: float = setting(5.0, "duration")
    #: how often a process writes its supervisor heartbeat
    HEARTBEAT_INTERVAL: float = setting(5.0, "duration")
    #: a node whose heartbeat is older than this is stale
    NODE_TIMEOUT: float = setting(30.0, "duration")
    #: stopped and stale node rows older than this are deleted
    NODE_RETENTION: float = setting(86400.0, "duration")
    #: paths (prefixes) served during maintenance to everyone, so that staff can sign in
    MAINTENANCE_EXEMPT_PATHS: list = setting(["/admin/login/", "/admin/logout/", "/static/"], "list")
    #: "enforce" (a plugin's call beyond its grants raises CapabilityDenied), "audit" (allowed,
    #: recorded as would_deny) or "off"
    GOVERNANCE: str = setting("enforce", "str", choices=("enforce", "audit", "off"))
    #: grants as code, applied at migrate: {"plugin": {"capability": "READ" | "WRITE" | "EXECUTE"}};
    #: a grant this setting gave and no longer lists is revoked at the next migrate
    GRANTS: dict = setting({}, "json")
    #: tables any plugin may read without a grant: what Django and DRF read to authenticate
    #: a request inside a plugin's view (sessions, users, groups, permissions, tokens)
    READABLE_TABLES: list = setting([
        "django_session", "auth_user", "auth_group", "auth_permission", "auth_user_groups",
        "auth_user_user_permissions", "auth_group_permissions", "authtoken_token", "django_content_type",
    ], "list")
    #: which allowed checks the audit trail records: "none" (denials, grant changes and plugin
    #: operations only), "writes" (also allowed WRITE and EXECUTE checks) or "all"
    AUDIT_ALLOWED: str = setting("none", "str", choices=("none", "writes", "all"))
    #: allowed checks waiting to be written; beyond it they are dropped (and counted), denials never
    AUDIT_QUEUE_SIZE: int = setting(10000, "int", minimum=1)
    #: audit rows older than this are deleted by an hourly django-q2 schedule
    AUDIT_RETENTION: float = setting(30 * 86400.0, "duration")
    #: old instances of one plugin a process keeps while their calls finish (blue-green
    #: reloads); a reload beyond it is refused until one has drained
    MAX_DRAINING: int = setting(3, "int", minimum=1)
    #: how long an old instance (or a disabled plugin's) may keep calls inside before it is
    #: unloaded anyway, recorded on the node and in the audit trail
    DRAIN_TIMEOUT: float = setting(30.0, "duration")
    #: how long a process keeps the user an API token names (``tachycore.authentication``);
    #: a revocation the ORM signals reaches every process at once on PostgreSQL; 0: no cache
    API_TOKEN_CACHE_TTL: float = setting(1.0, "duration")


tachycore_settings = AppSettings("TACHYCORE", TachycoreDefaults)
