"""Exceptions raised by the plugin kernel; each message names the plugin or key at fault."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured, PermissionDenied


class PluginError(Exception):
    """Base class of every error the plugin manager raises for a refused operation."""


class PluginNotFound(PluginError, LookupError):
    """No plugin with that name is discovered or recorded in the registry."""

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown plugin {name!r}")
        self.name = name


class PluginAlreadyExists(PluginError):
    """``add`` of a plugin that is already in the registry."""

    def __init__(self, name: str) -> None:
        super().__init__(f"plugin {name!r} is already added")
        self.name = name


class PluginMissing(PluginError):
    """The registry names a plugin whose package is no longer installed."""

    def __init__(self, name: str, operation: str) -> None:
        super().__init__(
            f"cannot {operation} plugin {name!r}: its package is missing "
            "(only 'disable' and 'remove' work on a missing plugin)"
        )
        self.name = name


class DependencyError(PluginError):
    """``depends_on`` names an unknown plugin, forms a cycle, or blocks a disable or remove."""


class PluginStateError(PluginError):
    """The operation does not fit the plugin's state (remove an enabled or built-in plugin...)."""


class BuiltInPlugin(PluginStateError):
    """``disable`` or ``remove`` of a built-in plugin: a site turns one off by its setting."""

    def __init__(self, name: str, operation: str, off_switch: str = "") -> None:
        how = f"; to turn it off, {off_switch}" if off_switch else ""
        super().__init__(f"plugin {name!r} is built in and cannot be {operation}d{how}")
        self.name = name


class InvalidOptions(PluginError, ValueError):
    """A plugin's ``options`` are not a JSON object or were refused by the plugin."""


class InvalidPluginName(PluginError, ValueError):
    """A plugin name outside the one rule every registry driver and page applies
    (``tachycore.registry.validation.PLUGIN_NAME``)."""

    def __init__(self, name: object, rule: str, shown: str | None = None) -> None:
        super().__init__(f"invalid plugin name {shown or repr(name)}: a plugin name is {rule}")
        self.name = name


class InvalidRecord(PluginError, ValueError):
    """A registry record field of the wrong type, or options a store cannot keep; the message
    names the plugin and the field."""


class HookFailed(PluginError):
    """A lifecycle hook raised; the operation was rolled back and the error recorded."""

    def __init__(self, name: str, hook: str, error: BaseException) -> None:
        super().__init__(f"plugin {name!r}: hook {hook}() failed: {type(error).__name__}: {error}")
        self.name = name
        self.hook = hook
        self.error = error


class OlderCodeRunning(PluginError):
    """``upgrade`` while live processes still run other code of the plugin (a rolling restart
    that has not finished): its migrations and ``upgrade()`` are written for the new code.
    ``nodes`` are ``(node, version)`` pairs, the version ``""`` for code without the plugin."""

    def __init__(self, name: str, version: str, nodes: list[tuple[str, str]]) -> None:
        running = ", ".join(f"{node} ({found or f'no {name}'})" for node, found in nodes)
        many = "s run" if len(nodes) != 1 else " runs"
        super().__init__(
            f"plugin {name!r} not upgraded to {version}: {len(nodes)} live node{many} other code of it: "
            f"{running}; finish the rolling restart (every process on the new code), or force it with "
            f"'manage.py pm upgrade {name} --force'")
        self.name, self.version, self.nodes = name, version, nodes


class RegistryError(Exception):
    """A registry driver could not read or write its store."""


class InvalidRegistryFile(RegistryError):
    """The JSON registry file cannot be read as a registry: the message names the file and the
    record or field at fault. Nothing is written over it."""


class RegistryFlushError(RegistryError):
    """The dual-write registry could not persist changes; they are kept and retried."""


class RegistryConfigurationError(ImproperlyConfigured):
    """``TACHYCORE["REGISTRY"]`` names a driver that cannot be loaded."""


class RegistryPathError(RegistryConfigurationError):
    """The JSON file registry was given a relative ``PATH`` (it would depend on the directory
    each process starts in)."""


class SyncMessageError(ValueError):
    """A sync message that cannot be sent: not JSON, or over the size limit."""


class PubSubConfigurationError(ImproperlyConfigured):
    """``TACHYCORE["PUBSUB"]`` names an adapter that cannot be loaded."""


class CapabilityDenied(PermissionDenied):
    """A plugin tried something no grant allows: Django's ``PermissionDenied``, so a view
    answers 403; under ``/api/`` the JSON ``detail`` is the message."""

    def __init__(self, message: str, *, plugin: str | None = None, capability: str = "", access: int = 0,
                 target: str = "") -> None:
        super().__init__(message)
        self.plugin, self.capability, self.access, self.target = plugin, capability, access, target


class InvalidGrant(PluginError, ValueError):
    """A grant that cannot be given: an unknown plugin, a malformed capability or access."""


class UngrantedCapabilities(PluginStateError):
    """``enable`` of a plugin that asks for capabilities nobody granted."""


class PluginUnavailable(PluginError):
    """A call into a plugin that has no active instance in this process: it is disabled, or
    its code is missing, or its instance is draining out (``pm disable``)."""

    def __init__(self, name: str, message: str = "") -> None:
        super().__init__(message or f"plugin {name!r} is not enabled")
        self.name = name


class TooManyDraining(PluginStateError):
    """A reload (or an options change) refused while ``MAX_DRAINING`` old instances of the
    plugin still have calls inside them."""


class ServiceNotFound(PluginError, LookupError):
    """``tachycore.invoke`` of a service id that names no plugin, or no service of it."""


class ServiceUnavailable(PluginUnavailable):
    """``tachycore.invoke`` of a service whose plugin is disabled or draining out."""


class EventError(ValueError):
    """An event that cannot be published or subscribed to: a name that is no text, a handler
    that is not callable, or a broadcast payload that is not JSON or too large; raised before
    any handler runs."""
