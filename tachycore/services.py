"""Services: methods a plugin publishes, called by other plugins and the site through the kernel.

A plugin publishes a method with ``@tachycore.service``; its id is ``"<plugin>:<name>"``.
``tachycore.invoke(service_id, *args, **kwargs)`` calls it, in this order:

1. ``ServiceNotFound`` when the id names no installed plugin, or no service of it (or is
   not ``"<plugin>:<name>"`` at all);
2. ``CapabilityDenied`` when the caller (``tachycore.context.current_plugin()``) is a plugin
   holding no grant of ``service:<plugin>:<name>`` (or ``service:<plugin>``) at the
   service's access. The host site (``None``), the callee itself and built-in plugins need
   none. The check is governance's own (``governance.enforce``): a denial is always in the
   audit trail, an allowed call per ``TACHYCORE["AUDIT_ALLOWED"]`` (action
   ``service.invoke``), and the ``"audit"`` mode lets the call through as ``would_deny``;
3. ``ServiceUnavailable`` when the plugin has no active instance in this process (it is
   disabled, or draining out after ``pm disable``);
4. the method runs on the plugin's active instance, holding it while it runs (a reload
   meanwhile lets the call finish on the old instance; the next call goes to the new one),
   and as the plugin (``current_plugin()`` is the callee inside). What it returns or raises
   reaches the caller unchanged.

The call keeps the caller's trace: with the OpenTelemetry SDK configured it runs in a span
of its own, ``service <id>``; without it, no span is made (it would cost more than the call)
and the callee sees the caller's trace id.

``Plugin.provides = (SomeProtocol,)`` says a plugin implements a ``typing.Protocol``;
``tachycore.get_service(SomeProtocol)`` returns a proxy whose every method call is an
``invoke`` of the provider's service of that name.

Services learn which plugins exist from the plugin manager, which registers itself in
``TachycoreConfig.ready()`` (:func:`know_plugins`).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import re
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol, cast

from django.core.exceptions import ImproperlyConfigured
from opentelemetry import trace as otel_trace

from . import governance, trace
from .context import acting_as, current_plugin
from .errors import PluginUnavailable, ServiceNotFound, ServiceUnavailable
from .instances import Instances
from .models import Access

__all__ = ["Service", "ServiceProxy", "get_service", "infer_access", "invoke", "know_plugins", "methods_of",
           "provided", "providers_of", "published", "service"]

#: the audit trail's action for a service call
ACTION = "service.invoke"

#: the first word of a service's name says its access when the decorator does not
READ_WORDS = frozenset({"get", "find", "list", "query", "count", "is", "has"})
WRITE_WORDS = frozenset({"create", "save", "update", "delete", "remove", "add", "set"})

#: a service name: a Python identifier (a Protocol's method names map onto service names)
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_FIRST_WORD = re.compile(r"[A-Z]*[a-z0-9]*")

#: the attribute ``@service`` sets on a method: ``(name, access)``
_MARK = "tachycore_service"


# -- publishing ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Service:
    """One service a plugin class publishes: its name, the method behind it, its access."""

    name: str
    #: the name of the method on the plugin object
    attribute: str
    access: Access


def infer_access(name: str) -> Access:
    """The access of a service called ``name``, by its first word (``get_user``,
    ``queryUser``): get/find/list/query/count/is/has -> READ;
    create/save/update/delete/remove/add/set -> WRITE; anything else -> EXECUTE."""
    head = name.lstrip("_").split("_", 1)[0]
    found = _FIRST_WORD.match(head)  # matches "" at worst
    word = found.group().lower() if found else ""
    if word in READ_WORDS:
        return Access.READ
    if word in WRITE_WORDS:
        return Access.WRITE
    return Access.EXECUTE


def service(name: str | Callable[..., Any] | None = None, access: Any = None) -> Any:
    """Publish a method of a ``Plugin`` subclass as the service ``"<plugin>:<name>"``.

    ``name`` defaults to the method's name; ``access`` (``"READ"``, ``"WRITE"``,
    ``"EXECUTE"`` or an ``Access``) to what the name says (:func:`infer_access`). Use it as
    ``@tachycore.service``, ``@tachycore.service()`` or ``@tachycore.service("query_user",
    access="READ")``. The method itself is left as it is: called directly, it is a plain call.
    """
    if callable(name):  # bare @service
        return service(access=access)(name)
    if name is not None:
        _check_name(name)
    level = _service_access(access) if access is not None else None

    def publish(method: Callable[..., Any]) -> Callable[..., Any]:
        published_name = name if name is not None else getattr(method, "__name__", "")
        _check_name(published_name)
        if inspect.iscoroutinefunction(method) or inspect.isgeneratorfunction(method) \
                or inspect.isasyncgenfunction(method):
            # its body would run after invoke() returned: outside the instance, as the caller
            raise ValueError(f"service {published_name!r}: a service is a plain function; a coroutine "
                             "or generator would run after the call left the plugin's instance")
        setattr(method, _MARK, (published_name, level if level is not None else infer_access(published_name)))
        return method

    return publish


def _check_name(name: Any) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"a service name is a Python identifier (letters, digits, '_'), got {name!r}")


def _service_access(access: Any) -> Access:
    level = governance.parse_access(access)
    if level == Access.NONE:
        raise ValueError("a service's access is READ, WRITE or EXECUTE, not NONE")
    return level


#: what each plugin class publishes, found on first use
_published: dict[type, dict[str, Service]] = {}


def published(plugin_class: type) -> Mapping[str, Service]:
    """The services ``plugin_class`` publishes, by name. A method redefined in a subclass
    without ``@service`` publishes nothing any more. ``ImproperlyConfigured`` when two
    methods publish one name (the ``tachycore.E008`` check reports it at start)."""
    found = _published.get(plugin_class)
    if found is None:
        found = _published[plugin_class] = _scan(plugin_class)
    return found


def _scan(plugin_class: type) -> dict[str, Service]:
    by_name: dict[str, Service] = {}
    for klass in reversed(plugin_class.__mro__):
        for attribute, value in vars(klass).items():
            for replaced in [name for name, known in by_name.items() if known.attribute == attribute]:
                del by_name[replaced]
            mark = getattr(value, _MARK, None)
            if not isinstance(mark, tuple):
                continue
            name, access = mark
            if name in by_name:
                raise ImproperlyConfigured(
                    f"{plugin_class.__module__}.{plugin_class.__qualname__} publishes the service {name!r} "
                    f"twice: by {by_name[name].attribute}() and by {attribute}()")
            by_name[name] = Service(name, attribute, access)
    return dict(sorted(by_name.items()))


def provided(plugin: Any) -> tuple[type, ...]:
    """The Protocols ``plugin`` (an object or a class) says it implements (``Plugin.provides``)."""
    return tuple(getattr(plugin, "provides", ()) or ())


def methods_of(protocol: type) -> list[str]:
    """The public method names of a Protocol (and of the Protocols it extends)."""
    names: list[str] = []
    for klass in protocol.__mro__:
        if klass is object or getattr(klass, "__module__", "") == "typing":
            continue
        for name, value in vars(klass).items():
            if not name.startswith("_") and callable(value) and name not in names:
                names.append(name)
    return names


# -- the plugins: the manager registers itself ----------------------------------------------


class PluginDirectory(Protocol):
    """What services ask of the plugin manager (which registers itself in ``ready()``)."""

    instances: Instances

    @property
    def plugins(self) -> Mapping[str, Any]: ...

    def is_enabled(self, name: str) -> bool: ...


class _NoPlugins:
    def __init__(self) -> None:
        self.instances = Instances()

    @property
    def plugins(self) -> Mapping[str, Any]:
        return {}

    def is_enabled(self, name: str) -> bool:
        return False


_directory: PluginDirectory = _NoPlugins()

#: service id -> (plugin, method name, capability, access): what ``invoke`` parsed once
_targets: dict[str, tuple[str, str, str, Access]] = {}


def know_plugins(directory: PluginDirectory) -> None:
    """Tell services where to find the plugins (``TachycoreConfig.ready()``)."""
    global _directory
    _directory = directory
    _targets.clear()


def _resolve(service_id: Any) -> tuple[str, str, str, Access]:
    """Parse ``service_id`` and find its method; remembered for the next call."""
    if not isinstance(service_id, str) or service_id.count(":") != 1:
        raise ServiceNotFound(f"invalid service id {service_id!r}: a service id is '<plugin>:<service>'")
    plugin_name, name = service_id.split(":")
    plugin = _directory.plugins.get(plugin_name)
    if plugin is None:
        raise ServiceNotFound(f"unknown service {service_id!r}: no plugin named {plugin_name!r} is installed")
    found = published(type(plugin)).get(name)
    if found is None:
        offered = ", ".join(published(type(plugin))) or "none"
        raise ServiceNotFound(f"unknown service {service_id!r}: plugin {plugin_name!r} publishes no service "
                              f"{name!r} (its services: {offered})")
    target = (plugin_name, found.attribute, f"service:{plugin_name}:{name}", found.access)
    _targets[service_id] = target
    return target


# -- calling ---------------------------------------------------------------------------------


def invoke(service_id: str, /, *args: Any, **kwargs: Any) -> Any:
    """Call the service ``"<plugin>:<name>"`` with ``args`` and ``kwargs``; return what it
    returns. ``ServiceNotFound``, ``CapabilityDenied``, ``ServiceUnavailable``: see the
    module's documentation. What the service raises reaches the caller unchanged."""
    if _spans_recorded():
        with trace.span(f"service {service_id}"):
            return _call(service_id, args, kwargs)
    return _call(service_id, args, kwargs)


def _call(service_id: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    # the hot path: one dict lookup, the state check when due, the grant, one instance held
    try:
        plugin, attribute, capability, access = _targets[service_id]
    except (KeyError, TypeError):  # not parsed yet, or not even hashable
        plugin, attribute, capability, access = _resolve(service_id)
    directory = _directory
    directory.is_enabled(plugin)  # re-reads the plugin states when a check is due
    caller = current_plugin()
    if caller is not None and caller != plugin:
        governance.enforce(caller, capability, access, action=ACTION, target=service_id)
    entries = directory.instances
    try:
        instance = entries.enter(plugin)
    except PluginUnavailable:
        raise ServiceUnavailable(plugin, f"service {service_id!r} is unavailable: plugin {plugin!r} is "
                                         "not enabled") from None
    token = entries.entering(instance)  # current_instance() inside is this instance's object
    try:
        with acting_as(plugin):
            return getattr(instance.plugin, attribute)(*args, **kwargs)
    finally:
        entries.left(token)
        entries.leave(instance)


#: whether a tracer provider that makes spans (the OpenTelemetry SDK) is set; once set, it
#: stays (OpenTelemetry refuses to replace it). Until then it is asked at most once a second:
#: asking costs about as much as the call itself.
_sdk_tracing = False
_sdk_checked = float("-inf")
SDK_CHECK_INTERVAL = 1.0


def _spans_recorded() -> bool:
    global _sdk_tracing, _sdk_checked
    if _sdk_tracing:
        return True
    now = time.monotonic()
    if now - _sdk_checked < SDK_CHECK_INTERVAL:
        return False
    _sdk_checked = now
    provider = otel_trace.get_tracer_provider()
    _sdk_tracing = not isinstance(provider, otel_trace.ProxyTracerProvider | otel_trace.NoOpTracerProvider)
    return _sdk_tracing


# -- Protocols -------------------------------------------------------------------------------


def providers_of(protocol: type) -> list[str]:
    """The installed plugins that say they provide ``protocol`` (or a Protocol extending it)."""
    return [name for name, plugin in sorted(_directory.plugins.items())
            if any(protocol in getattr(offered, "__mro__", ()) for offered in provided(plugin))]


class ServiceProxy:
    """Stands for a Protocol: each of its methods is an ``invoke`` of the provider's service
    of that name (so each call is checked, runs as the provider, and is audited)."""

    def __init__(self, protocol: type, provider: str, methods: list[str]) -> None:
        self._protocol = protocol
        self._provider = provider
        for name in methods:
            setattr(self, name, functools.partial(invoke, f"{provider}:{name}"))

    def __repr__(self) -> str:
        return f"<ServiceProxy {self._protocol.__qualname__} of plugin {self._provider!r}>"


def get_service[T](protocol: type[T], *, plugin: str | None = None) -> T:
    """A proxy for ``protocol``, a ``typing.Protocol`` that a plugin names in its
    ``provides``: its every method call goes through :func:`invoke`.

    The provider is the one installed plugin providing it (among several, the one enabled;
    ``plugin`` names one). ``ServiceNotFound`` when none does, when it is ambiguous, or when
    the provider does not publish a service for each of the Protocol's methods.
    """
    if not isinstance(protocol, type):
        raise TypeError(f"get_service() takes a Protocol class, got {protocol!r}")
    what = f"{protocol.__module__}.{protocol.__qualname__}"
    providers = providers_of(protocol)
    if plugin is not None:
        if plugin not in providers:
            raise ServiceNotFound(f"plugin {plugin!r} does not provide {what} (Plugin.provides)")
        providers = [plugin]
    if not providers:
        raise ServiceNotFound(f"no installed plugin provides {what} (Plugin.provides)")
    if len(providers) > 1:
        enabled = [name for name in providers if _directory.is_enabled(name)]
        if len(enabled) != 1:
            raise ServiceNotFound(f"{len(enabled) or len(providers)} plugins provide {what}: "
                                  f"{', '.join(enabled or providers)}; name one: get_service(..., plugin=...)")
        providers = enabled
    provider = providers[0]
    methods = methods_of(protocol)
    offered = published(type(_directory.plugins[provider]))
    missing = [name for name in methods if name not in offered]
    if missing:
        raise ServiceNotFound(f"plugin {provider!r} provides {what} but publishes no service for "
                              f"{', '.join(missing)} (@tachycore.service on a method of that name)")
    return cast(T, ServiceProxy(protocol, provider, methods))
