"""System checks of the kernel: settings, the registry driver, plugins, SQLite."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core import checks

if TYPE_CHECKING:
    from .conf import AppSettings


def register() -> None:
    checks.register(check_settings, "tachycore")
    checks.register(check_registry, "tachycore")
    checks.register(check_plugins, "tachycore")
    checks.register(check_pubsub, "tachycore")
    checks.register(check_middleware, "tachycore")
    checks.register(check_sqlite, checks.Tags.database)


def settings_errors(app_settings: AppSettings, *, hint: str, id: str) -> list[checks.CheckMessage]:
    """``app_settings.errors()`` as system check errors, each naming its key as users write it
    (``KV["TTL"]: ...``); the apps' settings checks (``kv.E001``, ``jobs.E001``) return these."""
    return [
        checks.Error(f'{app_settings.setting_name}["{key}"]: {message}' if key else message, hint=hint, id=id)
        for key, message in app_settings.errors()
    ]


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    from .conf import tachycore_settings

    return settings_errors(tachycore_settings, hint="See docs/configuration.md for the keys and their types.",
                           id="tachycore.E001")


def check_registry(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    from django.core.exceptions import ImproperlyConfigured

    from .conf import tachycore_settings
    from .registry import load_registry

    if tachycore_settings.errors():
        return []
    try:
        load_registry(tachycore_settings.REGISTRY)
    except (ImproperlyConfigured, KeyError, TypeError) as e:
        return [checks.Error(str(e), hint='Name a BasePluginRegistry subclass, e.g. '
                             '"tachycore.registry.DatabaseRegistry".', id="tachycore.E002")]
    return []


def check_pubsub(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    from django.core.exceptions import ImproperlyConfigured

    from .conf import tachycore_settings
    from .pubsub import load_pubsub

    if tachycore_settings.errors() or tachycore_settings.PUBSUB == "auto":
        return []
    try:
        # built, not started: a bad path, option or URL shows here, not at the first request
        load_pubsub(tachycore_settings.PUBSUB, "check", lambda *args: None, lambda: None)
    except ImproperlyConfigured as e:
        return [checks.Error(str(e), hint='Use "auto", or tachycore.pubsub.memory.MemoryPubSub, '
                             "tachycore.pubsub.postgres.PostgresPubSub, tachycore.pubsub.redis.RedisPubSub "
                             '(with OPTIONS={"URL": "redis://host:6379/0"}).', id="tachycore.E003")]
    return []


def check_middleware(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    middleware = list(settings.MIDDLEWARE)
    kernel = "tachycore.middleware.KernelMiddleware"
    auth = "django.contrib.auth.middleware.AuthenticationMiddleware"
    if kernel not in middleware:
        return [checks.Warning(
            f"{kernel} is not in MIDDLEWARE: web processes do not register as nodes, do not listen "
            "for sync messages and do not serve maintenance mode.",
            hint=f"Add {kernel!r} after {auth!r}.", id="tachycore.W020")]
    if auth in middleware and middleware.index(kernel) < middleware.index(auth):
        return [checks.Warning(
            f"{kernel} comes before {auth}: staff cannot pass maintenance mode.",
            hint=f"Move it after {auth!r}.", id="tachycore.W021")]
    return []


def check_plugins(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    from .errors import DependencyError
    from .manager import plugin_manager

    messages: list[checks.CheckMessage] = [
        checks.Warning(f"app {label!r}: {problem}", hint="The site runs without this plugin.",
                       id="tachycore.W001")
        for label, problem in plugin_manager.discovery_problems
    ]
    for name in sorted(plugin_manager.plugins):
        try:
            plugin_manager._resolve([name])
        except DependencyError as e:
            messages.append(checks.Warning(
                f"plugin {name!r}: {e}", hint="Enabling it will be refused until depends_on is fixed.",
                id="tachycore.W002"))
    return messages


def check_sqlite(app_configs: Any = None, databases: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    return sqlite_problems(settings.DATABASES)


def sqlite_problems(databases: dict[str, dict[str, Any]]) -> list[checks.CheckMessage]:
    """Warnings for SQLite entries of ``databases`` not set up for several processes."""
    messages = []
    for alias, database in databases.items():
        if not database.get("ENGINE", "").endswith("sqlite3"):
            continue
        options = database.get("OPTIONS") or {}
        if options.get("transaction_mode") != "IMMEDIATE" or "wal" not in options.get("init_command", "").lower():
            messages.append(checks.Warning(
                f"SQLite database {alias!r} is not set up for several processes: concurrent writers "
                "(web workers, runjobs) may fail with 'database is locked'.",
                hint="Wrap the entry with tachycore.db.configure_sqlite() (WAL, busy timeout, "
                "IMMEDIATE transactions).", id="tachycore.W010"))
    return messages
