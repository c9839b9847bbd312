"""System checks of the kernel: settings, the registry driver, plugins, SQLite."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core import checks

if TYPE_CHECKING:
    from .conf import AppSettings


def register() -> None:
    checks.register(check_settings, "tachycore")
    checks.register(check_environment, "tachycore")
    checks.register(check_django_q, "tachycore")
    checks.register(check_registry, "tachycore")
    checks.register(check_plugins, "tachycore")
    checks.register(check_pubsub, "tachycore")
    checks.register(check_middleware, "tachycore")
    checks.register(check_governance, "tachycore")
    checks.register(check_services, "tachycore")
    checks.register(check_sqlite, checks.Tags.database)
    # reads the registry: run by migrate and `check --database default`, not by every command
    checks.register(check_not_added, checks.Tags.database)
    checks.register(check_registry_records, checks.Tags.database)


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


def check_environment(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Environment variables that look like a setting of an app but name no key."""
    from .conf import all_app_settings

    messages: list[checks.CheckMessage] = []
    for app_settings in all_app_settings():
        for variable, close in app_settings.unknown_environment():
            hint = f"Did you mean {close}?" if close else "See docs/configuration.md for the keys."
            messages.append(checks.Warning(
                f"environment variable {variable} names no key of {app_settings.setting_name}: "
                "it is ignored.", hint=hint, id="tachycore.W030"))
    return messages


#: the Q_CLUSTER keys that choose a django-q2 broker; without one it uses Redis on localhost
DJANGO_Q_BROKER_KEYS = ("orm", "redis", "django_redis", "sqs", "ironmq", "mongo", "broker_class",
                        "disque_nodes")
DJANGO_Q_SETTING = 'Q_CLUSTER = {"name": "site", "orm": "default", "timeout": 300, "retry": 360}'


def check_django_q(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """django-q2 runs the bundle's schedules: its broker must be set, the site's database by default."""
    from django.apps import apps

    if not apps.is_installed("django_q"):
        return []
    cluster = getattr(settings, "Q_CLUSTER", None)
    if cluster is None:
        return [checks.Error(
            "Q_CLUSTER is not set: django-q2, which runs the schedules of kv and jobs, would "
            "fall back to a Redis broker on localhost.",
            hint=f"Add to your settings (the ORM broker on the site's database): {DJANGO_Q_SETTING}",
            id="tachycore.E004")]
    if isinstance(cluster, dict) and not any(key in cluster for key in DJANGO_Q_BROKER_KEYS):
        return [checks.Warning(
            "Q_CLUSTER names no broker: django-q2 uses Redis on localhost.",
            hint='Add "orm": "default" for the site\'s database, or name the broker you run.',
            id="tachycore.W004")]
    return []


def check_registry(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    from django.core.exceptions import ImproperlyConfigured

    from .conf import tachycore_settings
    from .errors import RegistryPathError
    from .registry import load_registry

    if tachycore_settings.errors():
        return []
    try:
        load_registry(tachycore_settings.REGISTRY)
    except RegistryPathError as e:
        return [checks.Error(str(e), hint='Give an absolute path, e.g. "OPTIONS": {"PATH": '
                             'str(BASE_DIR / "plugins.json")}.', id="tachycore.E005")]
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
            plugin_manager.dependencies.resolve([name])
        except DependencyError as e:
            messages.append(checks.Warning(
                f"plugin {name!r}: {e}", hint="Enabling it will be refused until depends_on is fixed.",
                id="tachycore.W002"))
    return messages


def check_not_added(app_configs: Any = None, databases: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """A database check: run when ``databases`` are given (migrate, ``check --database``)."""
    return not_added_plugins() if databases else []


def not_added_plugins() -> list[checks.CheckMessage]:
    """Plugins whose code is installed but that the registry does not know: nothing of theirs
    runs (URLs, job handlers, receivers), and nothing else says so."""
    from django.db import DatabaseError

    from .errors import RegistryError
    from .manager import plugin_manager

    try:
        plugins = plugin_manager.list()
    except (DatabaseError, RegistryError):
        return []  # before migrate, or the database is away: other commands say so
    return [
        checks.Warning(
            f"plugin {info.name!r} ({info.package_name}) is installed but not added: its URLs, job "
            "handlers and signal receivers stay off, and its jobs wait.",
            hint=f"Run: manage.py pm enable {info.name}", id="tachycore.W003")
        for info in plugins if info.status == "not added"
    ]


def check_registry_records(app_configs: Any = None, databases: Any = None,
                           **kwargs: Any) -> list[checks.CheckMessage]:
    """A database check: registry rows the drivers skip because they break the record rules
    (only a row written by hand can: the drivers refuse to write one)."""
    if not databases:
        return []
    from django.core.exceptions import ImproperlyConfigured
    from django.db import DatabaseError

    from .errors import RegistryError
    from .manager import plugin_manager

    try:
        invalid = plugin_manager.registry.invalid_records()
    except (DatabaseError, RegistryError, ImproperlyConfigured):
        return []  # before migrate, the store is away, or the setting is wrong: others say so
    return [
        checks.Warning(
            f"plugin registry row {name!r} is skipped: {why}. No page or command shows or changes it.",
            hint="It was not written by the plugin manager, which refuses it: delete or fix it by "
            "hand (the table applicationPlugins, e.g. ApplicationPlugin.objects.filter(name=...)"
            ".delete() in manage.py shell).", id="tachycore.W005")
        for name, why in invalid
    ]


def check_sqlite(app_configs: Any = None, databases: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    return sqlite_problems(settings.DATABASES)


def sqlite_problems(databases: dict[str, dict[str, Any]]) -> list[checks.CheckMessage]:
    """Warnings for SQLite entries of ``databases`` not set up for several processes."""
    messages: list[checks.CheckMessage] = []
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


def check_governance(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """The grants the settings give and the capabilities plugins ask for parse; the audit
    mode, which refuses nothing, is meant for trying grants out, not for production."""
    from django.conf import settings

    from .conf import tachycore_settings
    from .errors import InvalidGrant
    from .governance import requested
    from .manager import plugin_manager

    if tachycore_settings.errors():
        return []  # check_settings reports them
    messages: list[checks.CheckMessage] = []
    wanted = tachycore_settings.GRANTS
    if not isinstance(wanted, dict) or not all(isinstance(v, dict) for v in wanted.values()):
        messages.append(checks.Error(
            f'TACHYCORE["GRANTS"] must map plugin names to {{capability: access}} dicts, got {wanted!r}',
            hint='For example {"notes": {"storage:sql": "WRITE", "jobs:enqueue": "EXECUTE"}}.',
            id="tachycore.E006"))
    else:
        for plugin, capabilities in wanted.items():
            try:
                requested(capabilities)
            except InvalidGrant as e:
                messages.append(checks.Error(f'TACHYCORE["GRANTS"]["{plugin}"]: {e}', id="tachycore.E006"))
    for name, plugin in sorted(plugin_manager.plugins.items()):
        try:
            requested(plugin.capabilities)
        except InvalidGrant as e:
            messages.append(checks.Error(f"plugin {name!r}: capabilities: {e}",
                                         hint=f"Fix {type(plugin).__qualname__}.capabilities in its plugin.py.",
                                         id="tachycore.E007"))
    if tachycore_settings.GOVERNANCE == "audit" and not settings.DEBUG:
        messages.append(checks.Warning(
            'TACHYCORE["GOVERNANCE"] is "audit" with DEBUG off: plugins are allowed whatever they '
            "hold; what grants would refuse is only recorded (would_deny).",
            hint='Use "enforce" in production once the audit trail shows no would_deny.',
            id="tachycore.W040"))
    return messages


def check_services(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Each plugin publishes each service name once (``@tachycore.service``) and names
    classes in ``provides``."""
    from django.core.exceptions import ImproperlyConfigured

    from .manager import plugin_manager
    from .services import provided, published

    messages: list[checks.CheckMessage] = []
    for name, plugin in sorted(plugin_manager.plugins.items()):
        where = f"{type(plugin).__module__}.{type(plugin).__qualname__}"
        try:
            published(type(plugin))
        except ImproperlyConfigured as e:
            messages.append(checks.Error(f"plugin {name!r}: {e}", hint=f"Give each service of {where} a name of its own.",
                                         id="tachycore.E008"))
        for protocol in provided(plugin):
            if not isinstance(protocol, type):
                messages.append(checks.Error(
                    f"plugin {name!r}: provides names {protocol!r}, which is not a class",
                    hint=f"List typing.Protocol classes in {where}.provides.", id="tachycore.E008"))
    return messages
